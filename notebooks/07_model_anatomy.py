# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
profile = "smoke"
run_root = "runs/smoke"
figures_dir = "figures/smoke"
data_root = "data/smoke"
data_source = "generated"
model_name = "Cnn14"
seconds = 10.0

# %% [markdown]
# # 07 · Anatomy of Cnn14
#
# **What the paper did.** Cnn14: a log-mel front end (64 bins, 32 kHz, hop 10 ms), six blocks of two 3x3 convolutions with BatchNorm and ReLU, 2x2 average pooling after each block, global pooling over time (mean + max) and two fully connected layers, 80,753,615 trainable parameters and 42.22 G multiply-adds for a 10-s clip (Table XII of the code release).
#
# **What we do.** Run one 10-s clip through the model and list every layer with its output shape, parameters and multiply-adds, counted with the rule of the official `count_flops` written out below; the total must equal `panns_core.complexity.count_multiply_adds`.
#
# **Where we differ, and why.** Nothing: the counting rule is the paper's, quirks included (only layers that are modules are seen by its hooks, as in the official script; the STFT and mel filter bank count as frozen convolutions; our models compute that STFT with an FFT, so the count below runs the model with the official Conv1d STFT).

# %%
import math

import pandas as pd
import torch
from torch import nn

from panns_core.complexity import count_multiply_adds
from panns_core.models import create_model
from panns_core.models.frontend import set_stft_backend

# The paper counted torchlibrosa's STFT as two Conv1d layers; our models compute the same STFT
# with an FFT (docs/models.md), so switch back to the Conv1d for the count.
model = set_stft_backend(create_model(model_name).eval(), "conv")
samples = int(model.audio_config.sample_rate * seconds)


def multiply_adds(module, x, out):
    """The official rule: 2 per multiply-add of a conv/linear (+ bias), 2 per element for BN and ReLU."""
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        kernel = math.prod(module.kernel_size) * (module.in_channels // module.groups) * 2
        return x.shape[0] * (kernel + (module.bias is not None)) * out[0].numel()
    if isinstance(module, nn.Linear):
        return (x.shape[0] if x.dim() == 2 else 1) * (module.weight.numel() * 2 + (module.bias.numel() if module.bias is not None else 0))
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU)) and type(module) is not nn.ReLU6:
        return 2 * x.numel()
    if isinstance(module, (nn.AvgPool1d, nn.MaxPool1d, nn.AvgPool2d, nn.MaxPool2d)):
        k = module.kernel_size
        window = math.prod(k) if isinstance(k, tuple) else (k * k if isinstance(module, (nn.AvgPool2d, nn.MaxPool2d)) else k)
        return x.shape[0] * window * out[0].numel()
    return 0


rows, hooks = [], []
for name, module in model.named_modules():
    if list(module.children()):
        continue
    def hook(m, inputs, out, name=name):
        out = out if torch.is_tensor(out) else out[0]
        rows.append({"layer": name, "type": type(m).__name__, "output shape": tuple(out.shape),
                     "parameters": sum(p.numel() for p in m.parameters() if p.requires_grad),
                     "multiply-adds": multiply_adds(m, inputs[0], out)})
    hooks.append(module.register_forward_hook(hook))
with torch.no_grad():
    model(torch.zeros(1, samples))
for h in hooks:
    h.remove()
layers = pd.DataFrame(rows)
total = int(layers["multiply-adds"].sum())
assert total == count_multiply_adds(model, samples), "the rule above and panns_core.complexity disagree"
print(f"{model_name}: {layers['parameters'].sum() / 1e6:.1f} M trainable parameters, {total / 1e9:.1f} G multiply-adds "
      f"for {seconds:g} s")
layers

# %% [markdown]
# ## Where the multiply-adds go

# %%
layers.groupby("type")["multiply-adds"].sum().sort_values(ascending=False).div(1e9).round(2).rename("G multiply-adds").to_frame()

# %% [markdown]
# ## The STFT: a frozen convolution, computed as an FFT
#
# torchlibrosa computes the STFT as two frozen `Conv1d` layers whose kernels are a Hann-windowed DFT matrix (the real and the imaginary part; each frame meets every one of their 2 x 513 x 1024 weights at 32 kHz): that is the `Conv1d` row above, which the paper counts. An FFT computes the same numbers with far fewer operations. Our models keep both `Conv1d` modules, because their weights are in every released checkpoint, and run `torch.stft` with the window read from row 0 of `conv_real` (`panns_core.models.frontend.FFTSpectrogram`). Both ways on one clip:

# %%
import time

clip = 0.1 * torch.randn(1, samples, generator=torch.Generator().manual_seed(0))
power, seconds_taken = {}, {}
with torch.no_grad():
    for backend in ("conv", "fft"):
        set_stft_backend(model, backend)
        model.spectrogram_extractor(clip)  # warm-up
        start = time.perf_counter()
        power[backend] = model.spectrogram_extractor(clip)
        seconds_taken[backend] = time.perf_counter() - start
set_stft_backend(model, "conv")
relative = float((power["conv"] - power["fft"]).abs().max() / power["conv"].abs().max())
assert relative < 1e-5, relative
pd.DataFrame({"seconds": seconds_taken,
              "largest difference / largest power": {"conv": 0.0, "fft": relative}}).rename_axis("STFT")
