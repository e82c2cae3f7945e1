"""Model complexity: parameters, the paper's "multi-adds" and plain MACs; Table XII.

The paper's Table XII numbers come from the official counter
``pytorch_utils.count_flops`` (see ``docs/checkpoints.md``).
:func:`count_multiply_adds` reproduces its convention exactly, quirks included:

* Conv1d/Conv2d: ``2 * k * (C_in / groups)`` per output element, ``+1`` per
  output element when the layer has a bias (so these are FLOPs, about twice
  the multiply-accumulates). The STFT, two frozen ``Conv1d`` layers in
  torchlibrosa, is counted like any convolution.
* Linear: ``2 * weight.numel() + bias.numel()`` per batch row; for a 3-D input
  the official hook assumes batch 1 and counts the layer once, not once per
  time step (this only matters for the decision-level SED models).
* BatchNorm1d/2d and ``nn.ReLU`` *modules*: ``2 * numel`` of their input.
* ``nn.AvgPool*``/``nn.MaxPool*`` *modules*: ``k * k`` (2-D) or ``k`` (1-D)
  per output element.
* Not counted: functional ops (``F.relu_``, ``F.avg_pool2d``, ...),
  ``nn.ReLU6``, the mel matmul, ``power_to_db``, SpecAugment, dropout.

:func:`count_macs` is the plain count (one per multiply-accumulate of every
Conv1d/Conv2d/Linear call, no bias, no factor 2), what most papers call MACs.

Both run one forward pass of a single random clip with temporary forward
hooks, which are always removed; the model's train/eval mode is restored.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable

import pandas as pd
import torch
import torch.nn as nn

TABLE_XI_MODELS = (
    # (paper name, class name) in the paper's order
    ("CNN6", "Cnn6"),
    ("CNN10", "Cnn10"),
    ("CNN14", "Cnn14"),
    ("ResNet22", "ResNet22"),
    ("ResNet38", "ResNet38"),
    ("ResNet54", "ResNet54"),
    ("MobileNetV1", "MobileNetV1"),
    ("MobileNetV2", "MobileNetV2"),
    ("DaiNet", "DaiNet19"),
    ("LeeNet11", "LeeNet11"),
    ("LeeNet24", "LeeNet24"),
    ("Res1dNet31", "Res1dNet31"),
    ("Res1dNet51", "Res1dNet51"),
    ("Wavegram-CNN", "Wavegram_Cnn14"),
    ("Wavegram-Logmel-CNN", "Wavegram_Logmel_Cnn14"),
)
"""The 15 architectures of Tables XI and XII: paper name -> class name."""

MULT_ADDS_DECIMALS = 3
"""Table XII prints multi-adds as x.xxx (in units of 1e9)."""


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters only, the paper's convention.

    The frozen STFT kernels and mel filterbank (1,083,456 values at 32 kHz)
    are ``nn.Parameter``s in the state_dict but are excluded, as are any other
    frozen weights; parameters of modules built but never called are included.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --------------------------------------------------------------------------- hooks


def _leaf_modules(model: nn.Module):
    """Modules without children: the official counter hooks only these."""
    for module in model.modules():
        if next(module.children(), None) is None:
            yield module


def _per_output(output: torch.Tensor) -> int:
    """Output elements of one example (the official hooks read ``output[0]``)."""
    return output[0].numel()


def _conv_mult_adds(module, inputs, output) -> int:
    batch = inputs[0].shape[0]
    kernel = math.prod(module.kernel_size) * (module.in_channels // module.groups) * 2
    bias = 1 if module.bias is not None else 0
    return batch * (kernel + bias) * _per_output(output)


def _linear_mult_adds(module, inputs, output) -> int:
    # Official quirk: batch is read only from a 2-D input; a 3-D input counts once.
    x = inputs[0]
    batch = x.shape[0] if x.dim() == 2 else 1
    bias = module.bias.numel() if module.bias is not None else 0
    return batch * (module.weight.numel() * 2 + bias)


def _elementwise_mult_adds(module, inputs, output) -> int:
    return 2 * inputs[0].numel()


def _pool_mult_adds(module, inputs, output) -> int:
    k = module.kernel_size
    if isinstance(k, tuple):
        window = math.prod(k)
    else:  # an int kernel is square for the 2-D pools
        window = k * k if isinstance(module, (nn.AvgPool2d, nn.MaxPool2d)) else k
    return inputs[0].shape[0] * window * _per_output(output)


def _paper_rule(module: nn.Module) -> Callable | None:
    """The official count_flops rule for a leaf module, or None if it is not counted."""
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        return _conv_mult_adds
    if isinstance(module, nn.Linear):
        return _linear_mult_adds
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return _elementwise_mult_adds
    if isinstance(module, nn.ReLU):  # not ReLU6, which is a Hardtanh
        return _elementwise_mult_adds
    if isinstance(module, (nn.AvgPool1d, nn.MaxPool1d, nn.AvgPool2d, nn.MaxPool2d)):
        return _pool_mult_adds
    return None


def _conv_macs(module, inputs, output) -> int:
    per_output = math.prod(module.kernel_size) * (module.in_channels // module.groups)
    return per_output * output.numel()


def _linear_macs(module, inputs, output) -> int:
    return module.in_features * output.numel()


def _mac_rule(module: nn.Module) -> Callable | None:
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        return _conv_macs
    if isinstance(module, nn.Linear):
        return _linear_macs
    return None


def _check_num_samples(num_samples) -> int:
    """A positive integer (numpy integers accepted); floats and bools are refused."""
    try:
        n = operator.index(num_samples)
    except TypeError:
        n = None
    if isinstance(num_samples, bool) or n is None or n < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    return n


def _count(model: nn.Module, num_samples: int, rule_for: Callable, by_type: dict | None = None) -> int:
    """Run one forward pass of a (1, num_samples) clip and sum ``rule(module, in, out)``.

    Hooks are removed and the train/eval mode restored even if the forward fails.
    """
    from panns_core.models.frontend import stft_backend

    num_samples = _check_num_samples(num_samples)
    total = 0

    def make_hook(rule):
        def hook(module, inputs, output):
            nonlocal total
            n = int(rule(module, inputs, output))
            total += n
            if by_type is not None:
                key = type(module).__name__
                by_type[key] = by_type.get(key, 0) + n
        return hook

    handles = []
    was_training = {m: m.training for m in model.modules()}
    try:
        for module in _leaf_modules(model):
            rule = rule_for(module)
            if rule is not None:
                handles.append(module.register_forward_hook(make_hook(rule)))
        model.eval()
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        generator = torch.Generator().manual_seed(0)  # leave the global RNG alone
        waveform = torch.rand(1, num_samples, generator=generator).to(device)
        # The paper counted the official Conv1d STFT, so count with it (the FFT path skips those modules).
        with torch.no_grad(), stft_backend(model, "conv"):
            model(waveform)
    finally:
        for handle in handles:
            handle.remove()
        for module, mode in was_training.items():
            module.training = mode
    return total


def count_multiply_adds(model: nn.Module, num_samples: int, breakdown: dict | None = None) -> int:
    """The paper's "multi-adds" for one clip of ``num_samples`` samples (exact integer).

    Reproduces the official ``count_flops`` (factor 2 per MAC, bias, BN, ReLU
    modules, pooling modules, STFT included; see the module docstring). For
    Table XII use ``num_samples = 10 * sample_rate``. Pass a dict as
    ``breakdown`` to receive the total per module type.
    """
    return _count(model, num_samples, _paper_rule, breakdown)


def count_macs(model: nn.Module, num_samples: int, breakdown: dict | None = None) -> int:
    """Plain multiply-accumulates of every Conv1d/Conv2d/Linear call (no bias, no factor 2)."""
    return _count(model, num_samples, _mac_rule, breakdown)


# --------------------------------------------------------------------------- Table XII


def _paper_values(class_name: str) -> dict:
    """Table XII numbers for a class, from panns_core.paper (or ModelInfo.paper)."""
    try:
        from panns_core.paper import TABLE_XII

        if class_name in TABLE_XII:
            return TABLE_XII[class_name]
    except ImportError:
        pass
    from panns_core.models import model_info

    paper = model_info(class_name).paper or {}
    return {"mult_adds": paper.get("mult_adds"), "params": paper.get("params")}


def _build(class_name: str) -> nn.Module:
    """The registered model, built without random init (counts depend only on shapes)."""
    from panns_core.checkpoints import skip_weight_init
    from panns_core.models import create_model

    with skip_weight_init():
        return create_model(class_name)


def _sample_rate(model: nn.Module) -> int:
    audio = getattr(model, "audio_config", None)
    return int(audio.sample_rate) if audio is not None else 32000


def table_xii(models=TABLE_XI_MODELS, seconds: float = 10.0, with_macs: bool = True,
              progress: bool = False) -> pd.DataFrame:
    """Table XII computed from the code, with the paper's values beside ours.

    Columns: ``paper_name``, ``class``, ``paper_mult_adds_e9``,
    ``mult_adds`` (exact count), ``mult_adds_e9`` (ours rounded as printed),
    ``mult_adds_match``, ``paper_params``, ``params``, ``params_match`` and
    (if ``with_macs``) ``macs_e9``, the plain multiply-accumulates. Each model
    is counted on a ``seconds``-long clip at its own sample rate.
    """
    rows = []
    for paper_name, class_name in models:
        if progress:
            print(f"counting {class_name} ...", flush=True)
        model = _build(class_name)
        num_samples = int(round(_sample_rate(model) * seconds))
        paper = _paper_values(class_name)
        ours = count_multiply_adds(model, num_samples)
        ours_e9 = round(ours / 1e9, MULT_ADDS_DECIMALS)
        paper_e9 = paper.get("mult_adds")
        paper_e9 = round(paper_e9 / 1e9, MULT_ADDS_DECIMALS) if paper_e9 is not None else None
        params = count_parameters(model)
        row = {
            "paper_name": paper_name,
            "class": class_name,
            "paper_mult_adds_e9": paper_e9,
            "mult_adds": ours,
            "mult_adds_e9": ours_e9,
            "mult_adds_match": paper_e9 is not None and ours_e9 == paper_e9,
            "paper_params": paper.get("params"),
            "params": params,
            "params_match": paper.get("params") == params,
        }
        if with_macs:
            row["macs_e9"] = round(count_macs(model, num_samples) / 1e9, MULT_ADDS_DECIMALS)
        rows.append(row)
        del model
    return pd.DataFrame(rows)


def format_table_xii(df: pd.DataFrame) -> str:
    """Markdown rendering of :func:`table_xii` (what ``python -m panns_core.complexity`` prints)."""
    shown = df.copy()
    shown["mult_adds_match"] = shown["mult_adds_match"].map({True: "yes", False: "NO"})
    shown["params_match"] = shown["params_match"].map({True: "yes", False: "NO"})
    headers = {
        "paper_name": "model", "class": "class", "paper_mult_adds_e9": "paper multi-adds (1e9)",
        "mult_adds_e9": "ours (1e9)", "mult_adds_match": "match", "paper_params": "paper params",
        "params": "ours", "params_match": "match", "macs_e9": "plain MACs (1e9)",
    }
    cols = [c for c in headers if c in shown.columns]
    shown = shown[cols]
    lines = ["| " + " | ".join(headers[c] for c in cols) + " |",
             "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in shown.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            if c in ("paper_mult_adds_e9", "mult_adds_e9", "macs_e9"):
                cells.append(f"{v:.3f}")
            elif c in ("paper_params", "params"):
                cells.append(f"{int(v):,}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    """Print Table XII; exit status 1 if any row differs from the paper."""
    import argparse

    parser = argparse.ArgumentParser(description="Compute the paper's Table XII from the model code.")
    parser.add_argument("--models", nargs="*", help="class names (default: the 15 of Table XI)")
    parser.add_argument("--no-macs", action="store_true", help="skip the plain-MAC column (faster)")
    parser.add_argument("--csv", help="also write the table to this CSV file")
    args = parser.parse_args(argv)
    models = TABLE_XI_MODELS
    if args.models:
        known = dict((c, p) for p, c in TABLE_XI_MODELS)
        models = tuple((known.get(c, c), c) for c in args.models)
    df = table_xii(models, with_macs=not args.no_macs, progress=False)
    print("Table XII: multi-adds per 10-s clip (official count_flops convention: 2 per MAC, "
          "STFT included) and trainable parameters")
    print(format_table_xii(df))
    if args.csv:
        df.to_csv(args.csv, index=False)
    ok = bool(df["mult_adds_match"].all() and df["params_match"].all())
    print("all rows match the paper" if ok else "SOME ROWS DIFFER FROM THE PAPER")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
