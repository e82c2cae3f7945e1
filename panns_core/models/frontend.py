"""The log-mel front end, input checks and mixup shared by every PANNs model.

The released checkpoints store the front end as top-level modules of each model
(``spectrogram_extractor``, ``logmel_extractor``, ``bn0``), so the front end is a
mixin that registers those modules on the model itself instead of a nested
module; a nested module would rename every key and break checkpoint loading.
"""

from __future__ import annotations

import contextlib
import functools
import math

import torch
import torch.nn as nn
from torchlibrosa.augmentation import SpecAugmentation
from torchlibrosa.stft import LogmelFilterBank, Spectrogram

from panns_core.config import AudioConfig
from panns_core.precision import front_end_fp32

SPEC_AUG_TIME_DROP_WIDTH = 64
"""SpecAugment time-stripe width of every official log-mel model."""
SPEC_AUG_STRIPES = 2
"""Number of time stripes and of frequency stripes dropped per clip."""
DEFAULT_FREQ_DROP_WIDTH = 8
"""Frequency-stripe width for 64 mel bins (Cnn14_mel32 uses 4, the 128-bin models 16)."""


def do_mixup(x: torch.Tensor, mixup_lambda: torch.Tensor) -> torch.Tensor:
    """Mix consecutive pairs: ``out[i] = lam[2i] * x[2i] + lam[2i+1] * x[2i+1]``.

    This halves the batch, as the official ``pytorch_utils.do_mixup`` does; the
    targets must be mixed with the same lambdas by the caller.
    """
    lam = mixup_lambda.to(dtype=x.dtype, device=x.device)
    shape = (-1,) + (1,) * (x.dim() - 1)
    return x[0::2] * lam[0::2].reshape(shape) + x[1::2] * lam[1::2].reshape(shape)


def check_mixup_lambda(mixup_lambda, batch_size: int) -> torch.Tensor:
    """Validate the ``(2B,)`` pairwise lambdas against the input batch."""
    lam = torch.as_tensor(mixup_lambda)
    if lam.dim() != 1 or lam.shape[0] != batch_size:
        raise ValueError(
            f"mixup_lambda must have shape ({batch_size},) (one value per input clip), "
            f"got {tuple(lam.shape)}"
        )
    if batch_size % 2:
        raise ValueError(f"mixup mixes consecutive pairs and needs an even batch, got {batch_size} clips")
    return lam


def _version_of(tensor: torch.Tensor):
    """In-place write counter; tensors made under ``torch.inference_mode`` have none, so use a sample of values."""
    try:
        return tensor._version
    except RuntimeError:
        return tuple(tensor.detach().reshape(-1)[::4099].tolist())


@functools.lru_cache(maxsize=8)
def _dft_tables(n_fft: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the one-sided DFT, ``(n_fft // 2 + 1, n_fft)``, computed in float64."""
    bins = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
    angle = (2 * math.pi / n_fft) * torch.remainder(bins * torch.arange(n_fft, dtype=torch.float64), n_fft)
    return torch.cos(angle).to(device, dtype), torch.sin(angle).to(device, dtype)


class FFTSpectrogram(Spectrogram):
    """torchlibrosa's power spectrogram, computed with ``torch.stft`` instead of two Conv1d.

    The official front end multiplies every frame by a windowed DFT matrix held in
    ``stft.conv_real`` / ``stft.conv_imag`` (2 x 513 x 1024 weights at n_fft 1024):
    about 1 GMAC per 10-s clip in fp32, 34 % of the GPU time of a Cnn14 training step
    (docs/training.md) and 3.4x the time of an FFT on a CPU (benchmarks/bench_frontend.py).
    This subclass keeps both Conv1d modules, so ``state_dict()`` keys, shapes and
    checkpoint loading are unchanged, and computes the same power with an FFT whose
    window is read from those weights (row 0 of ``conv_real`` is the window itself).

    The FFT is used only while the weights are a windowed DFT (checked once per
    weight version, e.g. after ``load_state_dict``), frozen, and the input is
    float32/float64; otherwise, or with ``use_fft = False``, the official Conv1d
    runs. The two agree to about 2e-6 of the largest power (1.5e-5 dB in log-mel).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.use_fft = True
        self._checked: tuple | None = None  # (weight identity, version) -> is a windowed DFT

    def _weights_are_windowed_dft(self) -> bool:
        real, imag = self.stft.conv_real.weight, self.stft.conv_imag.weight
        key = (real.data_ptr(), _version_of(real), imag.data_ptr(), _version_of(imag), real.device, real.dtype)
        if self._checked is not None and self._checked[0] == key:
            return self._checked[1]
        n_fft = real.shape[-1]
        ok = real.shape == imag.shape and real.shape[1] == 1 and real.shape[0] == n_fft // 2 + 1
        if ok:  # compared where the weights live (no copy; DataParallel replicas get new tensors each call)
            cos, sin = _dft_tables(n_fft, real.device, real.dtype)
            window = real.detach()[0, 0]
            ok = bool(torch.allclose(real.detach()[:, 0], window * cos, atol=1e-5)
                      and torch.allclose(imag.detach()[:, 0], -window * sin, atol=1e-5))
        self._checked = (key, ok)
        return ok

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        stft = self.stft
        trainable = torch.is_grad_enabled() and (stft.conv_real.weight.requires_grad
                                                 or stft.conv_imag.weight.requires_grad)
        if torch.compiler.is_compiling():
            # the check reads values and version counters, which dynamo cannot trace (under
            # inference_mode it fails): use the answer check_stft_weights gave before compiling
            dft = self._checked is not None and self._checked[1]
        else:
            dft = self._weights_are_windowed_dft()
        if not self.use_fft or trainable or input.dtype not in (torch.float32, torch.float64) or not dft:
            return super().forward(input)
        n_fft = stft.conv_real.weight.shape[-1]
        window = stft.conv_real.weight.detach()[0, 0].to(input.dtype)
        spec = torch.stft(input, n_fft, hop_length=stft.hop_length, win_length=n_fft, window=window,
                          center=stft.center, pad_mode=stft.pad_mode, normalized=False, onesided=True,
                          return_complex=True)
        # view_as_real: real arithmetic from here on (inductor generates no code for complex operators)
        power = torch.view_as_real(spec).pow(2).sum(-1).transpose(1, 2)[:, None]  # (B, 1, frames, n_fft/2+1)
        return power if self.power == 2.0 else power ** (self.power / 2.0)


def check_stft_weights(model: nn.Module) -> nn.Module:
    """Check now, outside any tracing, whether each FFT front end's weights are a windowed DFT.

    Call it before ``torch.compile``: compiled code cannot run the check and uses this
    answer (the Conv1d STFT where no answer was recorded). Weights loaded afterwards
    need another call and a recompile.
    """
    for module in model.modules():
        if isinstance(module, FFTSpectrogram):
            module._weights_are_windowed_dft()
    return model


def compile_model(model: nn.Module) -> nn.Module:
    """``torch.compile(model)`` after :func:`check_stft_weights`: the one way the package compiles
    a PANNs model (training, the inference copy, the benchmarks), so compiled code takes the
    FFT front end wherever eager code would."""
    return torch.compile(check_stft_weights(model))


def set_stft_backend(model: nn.Module, backend: str) -> nn.Module:
    """``"fft"`` (default) or ``"conv"`` (the official Conv1d STFT) for every front end in ``model``."""
    if backend not in ("fft", "conv"):
        raise ValueError(f"STFT backend must be 'fft' or 'conv', got {backend!r}")
    for module in model.modules():
        if isinstance(module, FFTSpectrogram):
            module.use_fft = backend == "fft"
    return model


@contextlib.contextmanager
def stft_backend(model: nn.Module, backend: str):
    """Run ``model`` with the given STFT backend inside the block, then restore each front end's own."""
    spectrograms = [m for m in model.modules() if isinstance(m, FFTSpectrogram)]
    before = [m.use_fft for m in spectrograms]
    set_stft_backend(model, backend)
    try:
        yield model
    finally:
        for module, use_fft in zip(spectrograms, before):
            module.use_fft = use_fft


def check_waveform(waveform: torch.Tensor, min_samples: int, model_name: str) -> None:
    """Reject inputs the official code would crash on (or silently turn into NaN)."""
    if not isinstance(waveform, torch.Tensor):
        raise ValueError(f"{model_name}: waveform must be a torch.Tensor, got {type(waveform).__name__}")
    if waveform.dim() != 2:
        raise ValueError(
            f"{model_name}: waveform must have shape (batch, samples), got {tuple(waveform.shape)}; "
            "use waveform[None, :] for a single clip"
        )
    if waveform.shape[0] == 0 or waveform.shape[1] == 0:
        raise ValueError(f"{model_name}: waveform is empty, shape {tuple(waveform.shape)}")
    if not waveform.is_floating_point():
        raise ValueError(f"{model_name}: waveform must be floating point in [-1, 1], got {waveform.dtype}")
    if not torch.isfinite(waveform).all():
        raise ValueError(f"{model_name}: waveform contains NaN or infinite values")
    if waveform.shape[1] < min_samples:
        raise ValueError(
            f"{model_name}: {waveform.shape[1]} samples is shorter than the {min_samples} samples "
            "its pooling stack needs; zero-pad the clip (AudioSet clips are 10 s)"
        )


class LogmelFrontEnd:
    """Mixin adding the official STFT -> log-mel -> per-mel-bin BatchNorm -> SpecAugment chain.

    ``_build_logmel`` must be called inside ``__init__`` at the point where the
    official class creates these modules, so that ``state_dict()`` keeps the
    official key order.
    """

    def _build_logmel(
        self,
        config: AudioConfig,
        freq_drop_width: int = DEFAULT_FREQ_DROP_WIDTH,
        spec_augment: bool = True,
        freq_halvings: int = 0,
    ) -> None:
        if config.mel_bins < 2 ** freq_halvings:
            raise ValueError(
                f"{type(self).__name__} halves the mel axis {freq_halvings} times and needs "
                f"mel_bins >= {2 ** freq_halvings}, got {config.mel_bins}"
            )
        self.spectrogram_extractor = FFTSpectrogram(
            n_fft=config.window_size, hop_length=config.hop_size, win_length=config.window_size,
            window="hann", center=True, pad_mode="reflect", freeze_parameters=True,
        )
        self.logmel_extractor = LogmelFilterBank(
            sr=config.sample_rate, n_fft=config.window_size, n_mels=config.mel_bins,
            fmin=config.fmin, fmax=config.fmax, ref=1.0, amin=1e-10, top_db=None,
            freeze_parameters=True,
        )
        self.spec_augmenter = (
            SpecAugmentation(
                time_drop_width=SPEC_AUG_TIME_DROP_WIDTH, time_stripes_num=SPEC_AUG_STRIPES,
                freq_drop_width=freq_drop_width, freq_stripes_num=SPEC_AUG_STRIPES,
            )
            if spec_augment
            else None
        )
        self.bn0 = nn.BatchNorm2d(config.mel_bins)

    def _logmel(self, waveform: torch.Tensor) -> torch.Tensor:
        """(B, samples) -> normalised, (in training) augmented log-mel ``(B, 1, frames, mel_bins)``."""
        with front_end_fp32() as suspended:  # STFT and log in float32 even under bf16/fp16 autocast
            x = self.logmel_extractor(self.spectrogram_extractor(waveform.float() if suspended else waveform))
        # bn0 normalises each mel bin: move the mel axis to the channel axis and back.
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        if self.training and self.spec_augmenter is not None:
            frames = x.shape[2]
            width = self.spec_augmenter.time_dropper.drop_width  # 64 unless set_spec_augment changed it
            if frames < width:
                # torchlibrosa draws a stripe start in [0, frames - width) and crashes otherwise.
                raise ValueError(
                    f"{type(self).__name__}: {frames} frames is too short to train with SpecAugment "
                    f"(time stripes up to {width} frames need at least that many, i.e. "
                    f"{self._min_samples_for_frames(width, self.audio_config)} samples); "
                    "use longer clips, a *_no_specaug model or set_spec_augment with narrower stripes"
                )
            x = self.spec_augmenter(x)
        return x

    @staticmethod
    def _min_samples_for_frames(frames: int, config: AudioConfig) -> int:
        """Fewest samples giving ``frames`` centred STFT frames (reflect padding needs > n_fft/2)."""
        return max((frames - 1) * config.hop_size, config.window_size // 2 + 1)


def scaled_time_drop_width(clip_frames, paper_width=64, paper_frames=1001) -> int:
    """SpecAugment time-stripe width scaled to the clip length (>= 1 frame).

    The paper drops two stripes of up to 64 frames from a 10-s clip (1001 frames,
    about 13 % of it at most); on a 1-s clip (101 frames) the same stripes can hide
    most of the clip. This keeps the paper's fraction instead.
    """
    if clip_frames < 1 or paper_frames < 1 or paper_width < 1:
        raise ValueError(f"clip_frames, paper_width and paper_frames must be >= 1, got "
                         f"{clip_frames}, {paper_width}, {paper_frames}")
    return max(1, int(round(paper_width * clip_frames / paper_frames)))


def set_spec_augment(model, *, time_drop_width, time_stripes_num=2,
                     freq_drop_width=8, freq_stripes_num=2) -> None:
    """Change the model's torchlibrosa SpecAugmentation in place (no parameters, no state_dict keys).

    Raises ValueError for a model without SpecAugment (``*_no_specaug`` models,
    1-D models) or for widths < 1.
    """
    augmenter = getattr(model, "spec_augmenter", None)
    if not isinstance(augmenter, SpecAugmentation):
        raise ValueError(f"{type(model).__name__} has no SpecAugment (spec_augmenter) to adjust")
    for name, value in (("time_drop_width", time_drop_width), ("time_stripes_num", time_stripes_num),
                        ("freq_drop_width", freq_drop_width), ("freq_stripes_num", freq_stripes_num)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"set_spec_augment: {name} must be an integer >= 1, got {value!r}")
    time_dropper, freq_dropper = augmenter.time_dropper, augmenter.freq_dropper
    time_dropper.drop_width, time_dropper.stripes_num = time_drop_width, time_stripes_num
    freq_dropper.drop_width, freq_dropper.stripes_num = freq_drop_width, freq_stripes_num
