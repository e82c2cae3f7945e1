# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
profile = None      # None: the profile you ran last, or the one given to make lab
run_root = None     # None: the run folder of that profile, e.g. runs/default
figures_dir = None
data_root = None
data_source = None
model_name = "Cnn14"
seconds = 10.0

# %% [markdown]
# # 07 · Anatomy of CNN14
#
# **You will learn** what CNN14 is made of, block by block (drawn below), how the shape of a 10-s clip
# shrinks from 320,000 samples to one 2,048-dimensional embedding, where its 80.8 M parameters and 42 G
# multiply-adds are, and how those numbers are counted.
#
# **What the paper did.** Table I: CNN14 reads a log-mel spectrogram (1000 frames x 64 mel bins for 10 s)
# and has six convolutional blocks, each two 3 x 3 convolutions with batch normalisation and ReLU, with
# 64, 128, 256, 512, 1024 and 2048 channels; 2 x 2 average pooling follows each of the first five blocks
# (average pooling had done better than max pooling in the authors' earlier work). After the last block a
# global pooling adds the mean and the maximum, a fully connected layer of 2048 units with ReLU gives the
# embedding, and a final fully connected layer with sigmoid outputs the 527 class probabilities. Dropout
# follows every downsampling and fully connected layer. Table XII: 80,753,615 parameters and 42.22 x 10^9
# multiply-adds for a 10-s clip.
#
# **What we do.** Run one 10-s clip through the model and list every layer with its output shape,
# parameters and multiply-adds, counted with the rule of the official code's `count_flops` written out
# below; the total must equal `panns_core.complexity.count_multiply_adds`. The global pooling of the official
# code first averages over the mel axis, then adds the maximum and the mean over time.
#
# **Where we differ, and why.** Nothing: the counting rule is the official code's, quirks included (2
# operations per multiply-accumulate; only layers that are modules are seen by its hooks, so functional ReLU
# and pooling are not counted; the STFT and the mel filter bank count as frozen convolutions). Our models
# compute that STFT with an FFT, so the count below runs the model with the official Conv1d STFT.

# %%
import math

import pandas as pd
import torch
from torch import nn

from panns_core.complexity import count_multiply_adds
from panns_core.models import create_model
from panns_core.models.frontend import set_stft_backend
from panns_core.study.notebook_inputs import open_profile

here = open_profile(profile, run_root=run_root, figures_dir=figures_dir, data_root=data_root,
                    data_source=data_source)

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
# ## The block diagram
# The shape of one 10-s clip after each stage (channels x frames x mel bins), read from the model itself
# with forward hooks.

# %%
import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

shapes, stage_hooks = {}, []
stages = ["logmel_extractor", "bn0"] + [f"conv_block{i}" for i in range(1, 7)] + ["fc1", "fc_audioset"]
modules = dict(model.named_modules())
for name in stages:
    if name in modules:
        stage_hooks.append(modules[name].register_forward_hook(
            lambda m, i, o, name=name: shapes.__setitem__(name, tuple((o if torch.is_tensor(o) else o[0]).shape))))
with torch.no_grad():
    model(torch.zeros(1, samples))
for h in stage_hooks:
    h.remove()


def describe(name, shape):
    if name == "logmel_extractor":
        return "STFT + log-mel", f"1 x {shape[2]} x {shape[3]}"
    if name == "bn0":  # it normalises with the mel axis moved to the channels: (1, mel bins, frames, 1)
        return "BatchNorm per mel bin (+ SpecAugment in training)", f"1 x {shape[2]} x {shape[1]}"
    if name.startswith("conv_block"):
        block = int(name[-1])
        pool = "2 x 2 average pooling" if block < 6 else "no pooling"
        return f"block {block}: 2 x (3x3 conv, BN, ReLU), {pool}", f"{shape[1]} x {shape[2]} x {shape[3]}"
    if name == "fc1":
        return "mean over mel bins, max + mean over time, FC + ReLU (embedding)", f"{shape[1]}"
    return "FC + sigmoid: class probabilities", f"{shape[1]}"


rows = [("waveform", f"{samples:,} samples")] + [describe(n, shapes[n]) for n in stages if n in shapes]
fig, ax = plt.subplots(figsize=(8, 0.55 * len(rows) + 0.4))
for i, (label, shape) in enumerate(rows):
    y = len(rows) - 1 - i
    colour = "#dbe9f6" if "block" in label else "#f3e6d4"
    ax.add_patch(FancyBboxPatch((0.05, y + 0.12), 0.9, 0.7, boxstyle="round,pad=0.02", fc=colour, ec="#555"))
    ax.text(0.08, y + 0.47, label, va="center", fontsize=9)
    ax.text(0.92, y + 0.47, shape, va="center", ha="right", fontsize=9, family="monospace")
    if i:
        ax.annotate("", xy=(0.5, y + 0.84), xytext=(0.5, y + 1.12), arrowprops={"arrowstyle": "->"})
ax.set(xlim=(0, 1), ylim=(0, len(rows)), title=f"{model_name}: one {seconds:g}-s clip, top to bottom")
ax.axis("off")
plt.show()

# %% [markdown]
# **What to notice.** Each pooling halves both axes, so the channels can double at the same cost per block;
# block 6 keeps its 31 x 2 grid. Most multiply-adds are in the convolutions of the middle blocks, most
# parameters in the last block and the 2048-unit layer.
#
# ## Exercise 07.1: block 1's multiply-accumulates
# Block 1 applies two 3 x 3 convolutions without bias to the `frames x mel_bins` log-mel image: the first
# from 1 channel to 64, the second from 64 to 64, each keeping the image size (padding 1). Write
# `block1_macs(frames, mel_bins)`: how many multiply-accumulates the two convolutions make together (one
# per kernel weight per output value). The paper's count is twice that (it counts a multiply and an add).

# %% tags=["exercise"]
# Exercise 07.1: multiply-accumulates of block 1's two convolutions
def block1_macs(frames, mel_bins):
    raise NotImplementedError


# %% tags=["check"]
from panns_core.study.exercises import check

block1_convs = layers[layers["layer"].isin(["conv_block1.conv1", "conv_block1.conv2"])]
frames, mel_bins = shapes["logmel_extractor"][2:4]
with check("07.1", hint="output values x kernel size x input channels, for each convolution"):
    answer = int(block1_macs(frames, mel_bins))
    counted = int(block1_convs["multiply-adds"].sum()) // 2
    assert answer == counted, (f"the hooks count {counted:,} multiply-accumulates for a {frames} x {mel_bins} "
                               f"image, you said {answer:,}")

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

# %% [markdown]
# ## Questions
# 1. Halving the hop size doubles the frames. By how much does it change the multiply-adds, and the
#    parameters? (Table VI of the paper trades hop size against mAP.)
# 2. The global pooling adds the maximum and the mean over time. Which kind of sound event would the mean
#    alone miss?
