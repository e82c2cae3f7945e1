"""A faster copy of a PANNs model for inference: BatchNorm folded, channels_last, bf16 weights.

:func:`prepare_for_inference` turns a model into an inference-only copy (the
original is left untouched, so its ``state_dict`` still matches the released
checkpoints):

* **BatchNorm folded into the convolution before it** (:func:`fold_batchnorm`,
  using ``torch.nn.utils.fusion.fuse_conv_bn_eval``): in eval mode
  ``bn(conv(x))`` is one affine map per output channel, so the pair becomes one
  convolution with a bias and the BatchNorm pass over every activation disappears.
  Pairs are found by watching one forward pass (a BatchNorm whose input *is* a
  convolution's output), and the folded copy is checked against the original on
  that input before it is used.
* **channels_last** memory format for the 4-D weights, which oneDNN's convolutions
  prefer.
* **bfloat16 weights** (``precision="bf16"``): the convolutional trunk holds and
  computes in bfloat16 (not autocast, which would cast every weight on every call),
  while the log-mel front end (STFT, mel filterbank, ``bn0``) stays float32 (a power
  spectrum taken to dB in bfloat16 loses most of its low-level detail), and so do
  the fully connected layers (little compute, but they set the output scale), the
  global pooling before them (the trunk's output is cast back, see
  :func:`trunk_output_module`) and the trunk modules of :data:`FP32_MODULES` (the
  CNNs' first block: on Cnn14 this takes the largest clipwise difference against
  fp32 from 0.031 to 0.026 for 11% of the multiply-accumulates; docs/inference.md).
* **torch.compile** (inductor) as an opt-in (``compile=True``): the first call
  compiles (5-20 s for the four benchmarked models on a 2-core CPU, docs/inference.md);
  inductor caches the result on disk (its default folder, or ``TORCHINDUCTOR_CACHE_DIR``),
  so later processes warm up in a few seconds.

:func:`default_precision` picks bfloat16 only where the hardware runs it natively
(AVX512-BF16 or AMX on a CPU, bf16 support on a GPU); elsewhere bfloat16 is emulated
and slower than float32.
"""

from __future__ import annotations

import copy
import functools
import warnings

import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .models.frontend import compile_model

PRECISIONS = ("fp32", "bf16")
FRONT_END_MODULES = ("spectrogram_extractor", "logmel_extractor", "bn0")
"""Modules of the log-mel front end that keep float32 weights in the bf16 copy."""
FP32_MODULES: dict[str, tuple[str, ...]] = {
    "LogmelCnn": ("conv_block1",),
}
"""Trunk modules the bf16 copy keeps in float32, per model family (class name, looked up along
the model's class hierarchy: ``LogmelCnn`` covers Cnn6/Cnn10/Cnn14 and the DecisionLevel SED
models). Measured on Cnn14 (``benchmarks/bench_inference_bf16.py``): rounding the *weights* to
bfloat16 causes most of the clipwise error, and the first block's (about a tenth of the
multiply-adds) the most of any block; keeping it float32 cuts the mean error by a fifth."""
FOLD_CHECK_TOLERANCE = 1e-3
"""Largest output difference (relative to the output's scale) a folded copy may show."""


class FoldError(RuntimeError):
    """Folding BatchNorm changed the model's output (a convolution output has another consumer)."""


# ----------------------------------------------------------------------------- hardware
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    for name in checks:
        probe = getattr(torch.cpu, name, None)
        if probe is not None:
            try:
                if probe():
                    return True
            except Exception:  # noqa: BLE001 - a private probe may be missing or fail
                pass
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = f.read()
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def default_precision(device="cpu") -> str:
    """``"bf16"`` where the device runs bfloat16 natively, else ``"fp32"``."""
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return "fp32"


# ----------------------------------------------------------------------------- BatchNorm folding
def probe_input(model: nn.Module, batch: int = 2) -> torch.Tensor:
    """A short deterministic waveform batch the model accepts (1 s or its minimum length)."""
    config = getattr(model, "audio_config", None)
    rate = getattr(config, "sample_rate", 32000)
    samples = max(int(getattr(model, "min_samples", 0) or 0), rate)
    generator = torch.Generator().manual_seed(0)
    return 0.1 * torch.randn(batch, samples, generator=generator)


def conv_bn_pairs(model: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    """``(conv name, bn name)`` for every BatchNorm applied directly to a convolution's output.

    Found by running ``example`` once with hooks: a BatchNorm qualifies when its input
    tensor is the very object a Conv1d/Conv2d returned, possibly through an unpadded
    average pooling (eval mode, no grad).
    """
    names = {module: name for name, module in model.named_modules()}
    produced: dict[int, tuple[torch.Tensor, nn.Module]] = {}
    pairs: dict[str, str] = {}

    def after_conv(module, inputs, output):
        produced[id(output)] = (output, module)  # keep the tensor alive so its id stays unique

    def after_pool(module, inputs, output):
        # average pooling without padding commutes with a per-channel affine map
        # (MobileNet strides with AvgPool2d between its convolution and BatchNorm)
        hit = produced.get(id(inputs[0]))
        if hit is not None and hit[0] is inputs[0]:
            produced[id(output)] = (output, hit[1])

    def before_bn(module, inputs):
        hit = produced.get(id(inputs[0]))
        if hit is not None and hit[0] is inputs[0]:
            pairs[names[module]] = names[hit[1]]

    handles = []
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            handles.append(module.register_forward_hook(after_conv))
        elif isinstance(module, (nn.AvgPool1d, nn.AvgPool2d)) and not any(_as_tuple(module.padding)):
            handles.append(module.register_forward_hook(after_pool))
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            handles.append(module.register_forward_pre_hook(before_bn))
    _probe_forward(model, example, handles)
    return [(conv, bn) for bn, conv in pairs.items()]


def _probe_forward(model: nn.Module, example: torch.Tensor, handles) -> None:
    """One gradient-free forward of ``example`` that the hooks ``handles`` watch; the hooks are removed after."""
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()


def _as_tuple(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


def _max_rel_diff(a: dict, b: dict) -> float:
    worst = 0.0
    for key, ref in a.items():
        if isinstance(ref, torch.Tensor) and ref.is_floating_point():
            scale = ref.abs().max().clamp_min(1e-6)
            worst = max(worst, float((b[key].float() - ref.float()).abs().max() / scale))
    return worst


def fold_batchnorm(model: nn.Module, example: torch.Tensor | None = None) -> nn.Module:
    """Fold every eval-mode BatchNorm into the convolution feeding it (in place; returns ``model``).

    Each folded BatchNorm becomes ``nn.Identity``. The result is checked on ``example``
    (default :func:`probe_input`) against the unfolded outputs; a difference beyond
    :data:`FOLD_CHECK_TOLERANCE` raises :class:`FoldError` and leaves ``model`` as it was.
    """
    if model.training:
        raise ValueError("fold_batchnorm needs a model in eval mode (model.eval())")
    example = probe_input(model) if example is None else example
    pairs = conv_bn_pairs(model, example)
    if not pairs:
        return model
    with torch.no_grad():
        before = model(example)
    originals = {}
    for conv_name, bn_name in pairs:
        conv, bn = model.get_submodule(conv_name), model.get_submodule(bn_name)
        originals[conv_name], originals[bn_name] = conv, bn
        _set_submodule(model, conv_name, fuse_conv_bn_eval(conv, bn))
        _set_submodule(model, bn_name, nn.Identity())
    with torch.no_grad():
        after = model(example)
    diff = _max_rel_diff(before, after)
    if diff > FOLD_CHECK_TOLERANCE:
        for name, module in originals.items():
            _set_submodule(model, name, module)
        raise FoldError(f"{type(model).__name__}: folding BatchNorm changed the output by {diff:.2e} "
                        "(relative); kept unfolded")
    return model


# ----------------------------------------------------------------------------- bf16 with a fp32 front end
def _front_end_fp32(logmel):
    """Wrap a model's bound ``_logmel``: float32 in, through and out."""

    @functools.wraps(logmel)
    def run(waveform, *args, **kwargs):
        return logmel(waveform.float(), *args, **kwargs).float()

    return run


def _cast_inputs_to_bf16(module, args):
    """Forward pre-hook: floating tensor inputs of a bfloat16 layer become bfloat16."""
    return tuple(a.to(torch.bfloat16) if torch.is_tensor(a) and a.is_floating_point()
                 and a.dtype != torch.bfloat16 else a for a in args)


def _cast_inputs_to_fp32(module, args):
    """Forward pre-hook: floating tensor inputs of a float32 layer become float32."""
    return tuple(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)


def _fp32_waveform_forward(model: nn.Module):
    """Eval-only forward that checks the waveform but keeps it float32 for the front end.

    ``PannsModel.forward`` casts the waveform to the weights' dtype; a bfloat16 waveform
    (8-bit mantissa) would lose the quiet detail the float32 front end is kept for.
    """
    from .models.frontend import check_waveform

    def forward(waveform, mixup_lambda=None):
        check_waveform(waveform, model.min_samples, type(model).__name__)
        return model._forward(waveform.float(), None)

    return forward


def fp32_modules_for(model: nn.Module) -> tuple[str, ...]:
    """Names of the trunk modules :data:`FP32_MODULES` keeps float32 for ``model``'s family."""
    for cls in type(model).__mro__:
        if cls.__name__ in FP32_MODULES:
            return tuple(name for name in FP32_MODULES[cls.__name__] if _has_submodule(model, name))
    return ()


def _has_submodule(model: nn.Module, name: str) -> bool:
    try:
        model.get_submodule(name)
    except AttributeError:
        return False
    return True


def _cast_output_to_fp32(module, args, output):
    """Forward hook: a floating tensor output becomes float32."""
    return output.float() if torch.is_tensor(output) and output.is_floating_point() else output


def trunk_output_module(model: nn.Module, example: torch.Tensor | None = None) -> str | None:
    """Name of the last top-level module called before the first ``nn.Linear`` (one probe forward).

    Its output is what the global pooling (mean over frequency, max + mean over time) and
    then the fully connected head consume. ``None`` when no linear layer runs.
    """
    example = probe_input(model) if example is None else example
    called: list[str] = []
    linear_ids = {id(m) for m in model.modules() if isinstance(m, nn.Linear)}
    handles = [child.register_forward_hook(lambda m, i, o, n=name: called.append(n))
               for name, child in model.named_children() if id(child) not in linear_ids
               and name not in FRONT_END_MODULES]
    first_linear: list[int] = []
    handles += [m.register_forward_pre_hook(lambda m, i: first_linear.append(len(called)))
                for m in model.modules() if isinstance(m, nn.Linear)]
    _probe_forward(model, example, handles)
    if not first_linear or first_linear[0] == 0:
        return None
    return called[first_linear[0] - 1]


def to_bf16_keep_front_end(model: nn.Module, fp32_modules=None, fp32_outputs=None) -> nn.Module:
    """bfloat16 weights except the log-mel front end, the heads and ``fp32_modules`` (in place).

    ``fp32_modules`` (default :func:`fp32_modules_for`) are submodule names that keep
    float32 weights and compute in float32; ``fp32_outputs`` names modules whose output
    is cast to float32 (so what follows them, e.g. functional pooling, runs in float32).
    Meant for an eval-mode copy: the models with a log-mel front end get a forward
    that ignores mixup (inference only).
    """
    fp32_modules = fp32_modules_for(model) if fp32_modules is None else tuple(fp32_modules)
    if fp32_outputs is None:  # the global pooling before the head runs in float32
        trunk = trunk_output_module(model)
        fp32_outputs = (trunk,) if trunk is not None and trunk not in fp32_modules else ()
    front_ends = [m for m in model.modules() if hasattr(m, "_logmel") and hasattr(m, "logmel_extractor")]
    # the fully connected head is a sliver of the compute but sets the output scale: keep it fp32
    heads = [m for m in model.modules() if isinstance(m, nn.Linear)]
    kept = [model.get_submodule(name) for name in fp32_modules] + heads
    kept += [getattr(m, name) for m in front_ends for name in FRONT_END_MODULES if getattr(m, name, None) is not None]
    keep_fp32 = {id(sub) for module in kept for sub in module.modules()}
    # cast module by module (never a round trip through bfloat16, which would round the
    # STFT kernels, mel filters and the kept layers for good)
    for module in model.modules():
        if id(module) not in keep_fp32:
            module._apply(lambda t: t.to(torch.bfloat16) if t.is_floating_point() else t, recurse=False)
    for name in fp32_modules:
        model.get_submodule(name).register_forward_pre_hook(_cast_inputs_to_fp32)
    for head in heads:
        head.register_forward_pre_hook(_cast_inputs_to_fp32)
    for name in fp32_outputs:
        model.get_submodule(name).register_forward_hook(_cast_output_to_fp32)
    for module in front_ends:
        # the log-mel leaves the front end in float32; each bfloat16 layer casts its own input
        module._logmel = _front_end_fp32(module._logmel)
        if hasattr(module, "_forward"):
            module.forward = _fp32_waveform_forward(module)
    for module in model.modules():
        own = list(module.parameters(recurse=False))
        if own and all(p.dtype == torch.bfloat16 for p in own):
            module.register_forward_pre_hook(_cast_inputs_to_bf16)
    return model


# ----------------------------------------------------------------------------- the whole recipe
def prepare_for_inference(model: nn.Module, precision: str = "fp32", *, device="cpu",
                          fold: bool = True, channels_last: bool = True,
                          compile: bool = False, fp32_modules=None, fp32_outputs=None) -> nn.Module:
    """An eval-mode copy of ``model`` optimised for inference (see the module docstring).

    The copy returns the same output dict; call it under ``torch.inference_mode()``.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    fast = copy.deepcopy(model).to("cpu").eval()
    if fold:
        try:
            fold_batchnorm(fast)
        except FoldError as exc:
            warnings.warn(str(exc), RuntimeWarning, stacklevel=2)
    fast = fast.to(device)
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    if precision == "bf16":
        to_bf16_keep_front_end(fast, fp32_modules, fp32_outputs)
    for parameter in fast.parameters():
        parameter.requires_grad_(False)
    if compile:
        # inductor hands torch.stft (a complex result) to the FFT library, which is what the FFT
        # front end wants; its "performance may be worse than eager" warning does not apply
        warnings.filterwarnings("ignore", message="Torchinductor does not support code generation for complex",
                                category=UserWarning)
        fast = compile_model(fast)
    return fast


NEAR_TIE = 0.005
"""fp32 probabilities closer than this to the 10th-ranked one count as tied with it."""


def top10_agreement(fast, reference, near_tie: float = NEAR_TIE) -> tuple[int, int]:
    """``(clips with a different top-10 set, clips whose top-10 is unchanged up to near-ties)``.

    ``fast`` and ``reference`` are ``(clips, classes)`` probabilities. A label may enter or
    leave the top 10 without counting as a change when its fp32 probability is within
    ``near_tie`` of the fp32 10th-ranked probability (an order no low precision can keep).
    """
    fast, reference = torch.as_tensor(fast), torch.as_tensor(reference)
    changed = same_up_to_ties = 0
    for a, b in zip(fast, reference):
        top_a, top_b = set(a.topk(10).indices.tolist()), set(b.topk(10).indices.tolist())
        if top_a != top_b:
            changed += 1
        tenth = b.topk(10).values[-1]
        swapped = top_a ^ top_b
        same_up_to_ties += all(abs(float(b[i] - tenth)) <= near_tie for i in swapped)
    return changed, same_up_to_ties


def calibrate_batchnorm(model: nn.Module, batches) -> nn.Module:
    """Set BatchNorm running statistics from ``batches`` of waveforms (cumulative average).

    For measuring with random weights: default statistics (mean 0, variance 1) let
    activations grow layer after layer, which no trained model does. Returns ``model``
    in eval mode.
    """
    from panns_core.runtime import collecting_batchnorm_statistics

    with collecting_batchnorm_statistics(model, whole_model_in_train_mode=True):
        for batch in batches:
            model(torch.as_tensor(batch))
    return model.eval()
