"""The paper's four transfer strategies on any backbone, and the frozen-embedding cache.

=============  ==================================  =====================================
strategy       backbone                            trained
=============  ==================================  =====================================
scratch        fresh random initialisation         everything (backbone + new head)
finetune       loaded from the checkpoint          everything (backbone + new head)
freeze_l1      loaded, frozen, **eval mode**       one linear layer on the embedding
freeze_l3      loaded, frozen, **eval mode**       three fully connected layers
=============  ==================================  =====================================

Unlike the official ``Transfer_Cnn14`` (whose frozen base stays in training
mode, so BatchNorm statistics keep moving and dropout/SpecAugment stay on), the
frozen strategies here run the backbone once in eval mode and cache its
embeddings (:class:`EmbeddingCache`): they are reused across epochs, folds,
shot counts and seeds, in memory and optionally on disk keyed by the backbone
weights' hash, the dataset and the audio geometry.

The head is :class:`panns_core.models.TransferModel`'s (``hidden_layers=0`` for
Freeze_L1 and fine-tuning, ``2`` for Freeze_L3), so a head trained on cached
embeddings drops into the full model for inference on waveforms.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from typing import Callable

import numpy as np
import torch
from torch import nn

from panns_core.transfer.audio import ClipAudio, clip_segments
from panns_core.transfer.base import TransferData

STRATEGIES = ("scratch", "finetune", "freeze_l1", "freeze_l3")
HIDDEN_LAYERS = {"scratch": 0, "finetune": 0, "freeze_l1": 0, "freeze_l3": 2}
FROZEN = ("freeze_l1", "freeze_l3")


def check_strategy(strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown transfer strategy {strategy!r}; known: {STRATEGIES}")
    return strategy


def is_frozen(strategy: str) -> bool:
    return check_strategy(strategy) in FROZEN


# ----------------------------------------------------------------------------
# Backbones and transfer models
# ----------------------------------------------------------------------------


def make_backbone(backbone, checkpoint: str | None = None, **overrides) -> nn.Module:
    """A backbone by registry name (``create_model(name, **overrides)``) or a ready module.

    With ``checkpoint`` the weights are loaded (official ``{'model': ...}`` files
    included) with :func:`panns_core.checkpoints.load_checkpoint`'s checks. A
    ``panns finetune`` model (``model.pth``) gives its backbone's weights: a fine-tuned
    model can be fine-tuned again, on the same or new classes.
    """
    from panns_core.checkpoints import load_state_checked, read_checkpoint

    state = None
    if checkpoint:
        state, meta = read_checkpoint(checkpoint)
        if meta.get("kind") == "panns_transfer":  # TransferModel: the backbone is its ``base``
            state = {k[len("base."):]: v for k, v in state.items() if k.startswith("base.")}
    if isinstance(backbone, nn.Module):
        base = backbone
    else:
        from panns_core.models import create_model

        head = None if state is None else state.get("fc_audioset.weight")
        if head is not None and "classes_num" not in overrides:
            # The AudioSet head is replaced by the transfer head anyway: build the backbone with
            # the checkpoint's own class count (527 for released files, K for our corpus runs).
            overrides = {**overrides, "classes_num": int(head.shape[0])}
        base = create_model(str(backbone), **overrides)
    if state is not None:
        load_state_checked(base, state, checkpoint)
    return base


def transfer_model(strategy: str, base: nn.Module, classes_num: int) -> nn.Module:
    """Wrap ``base`` for ``strategy``: ``TransferModel(base, classes_num, freeze_base, hidden_layers)``.

    ``base`` must already hold the right weights (random for scratch, the
    checkpoint for the others); it is used as is, so pass a copy when reusing it.
    """
    from panns_core.models import TransferModel

    return TransferModel(base, classes_num, freeze_base=is_frozen(strategy),
                         hidden_layers=HIDDEN_LAYERS[check_strategy(strategy)])


def head_of(model: nn.Module) -> nn.Module:
    """The new classifier of a TransferModel (the part a frozen strategy trains)."""
    for name in ("head", "fc_transfer", "classifier"):
        if isinstance(getattr(model, name, None), nn.Module):
            return getattr(model, name)
    raise AttributeError(f"{type(model).__name__} has no head/fc_transfer/classifier module")


def base_of(model: nn.Module) -> nn.Module:
    base = getattr(model, "base", None)
    if not isinstance(base, nn.Module):
        raise AttributeError(f"{type(model).__name__} has no .base backbone")
    return base


def logits_of(output) -> torch.Tensor:
    """Class scores from a model output dict; ``cross_entropy`` treats logits and log-softmax alike."""
    if isinstance(output, dict):
        for key in ("logits", "clipwise_output"):
            if key in output:
                return output[key]
        raise KeyError(f"model output has none of 'logits'/'clipwise_output': {sorted(output)}")
    return output


def trainable_parameter_names(model: nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


def state_hash(module: nn.Module) -> str:
    """sha256 over the module's state_dict (names, shapes, bytes): identifies backbone weights."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(str(t.dtype).encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


def fresh_copy(base: nn.Module) -> nn.Module:
    """An independent copy of a backbone (so each fold/seed starts from the same weights)."""
    return copy.deepcopy(base)


# ----------------------------------------------------------------------------
# Embedding cache
# ----------------------------------------------------------------------------


@torch.no_grad()
def compute_embeddings(base: nn.Module, segments: list[np.ndarray], batch_size: int = 32,
                       progress: Callable[[int, int], None] | None = None) -> list[np.ndarray]:
    """Embeddings ``(n_segments, D)`` per clip from a backbone in eval mode (restored afterwards)."""
    was_training = base.training
    base.eval()
    try:
        flat = [(i, s) for i, segs in enumerate(segments) for s in segs]
        out = [[] for _ in segments]
        for start in range(0, len(flat), batch_size):
            chunk = flat[start:start + batch_size]
            x = torch.from_numpy(np.stack([s for _, s in chunk]).astype(np.float32))
            x = x.to(next(base.parameters()).device)
            emb = base(x)["embedding"].float().cpu().numpy()
            for (i, _), e in zip(chunk, emb):
                out[i].append(e)
            if progress:
                progress(min(start + batch_size, len(flat)), len(flat))
        return [np.stack(o).astype(np.float32) for o in out]
    finally:
        base.train(was_training)


class EmbeddingCache:
    """Frozen-backbone embeddings per clip, computed once per (weights, dataset, audio geometry).

    ``get`` returns ``{clip_id: (n_segments, D)}``. The key combines the sha256
    of the backbone's weights, the dataset name and clip ids, the audio config
    and the clip/segment lengths; with ``cache_dir`` the arrays are also stored
    as ``<cache_dir>/<key>.npz`` and re-read by later runs.
    """

    def __init__(self, cache_dir: str | None = None):
        self.cache_dir = cache_dir
        self._memory: dict[str, dict[str, np.ndarray]] = {}
        self.computed = 0  # how many times embeddings were actually computed (tests read this)

    @staticmethod
    def key(base: nn.Module, data: TransferData, clip_seconds: float, segment_seconds: float | None,
            weights_hash: str | None = None, pad: str = "zeros") -> str:
        audio_config = getattr(base, "audio_config", None)
        cfg = audio_config.__dict__ if hasattr(audio_config, "__dict__") else str(audio_config)
        ids = hashlib.sha256("\n".join(sorted(c.clip_id for c in data.clips)).encode()).hexdigest()
        blob = json.dumps({"weights": weights_hash or state_hash(base), "model": type(base).__name__,
                           "task": data.task, "clips": ids, "audio": cfg, "clip_seconds": clip_seconds,
                           "segment_seconds": segment_seconds, **({"pad": pad} if pad != "zeros" else {})},
                          sort_keys=True, default=str)  # zero padding keeps the keys of existing caches
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def get(self, base: nn.Module, data: TransferData, audio: ClipAudio, clip_seconds: float,
            segment_seconds: float | None, batch_size: int = 32, weights_hash: str | None = None,
            pad: str = "zeros") -> dict[str, np.ndarray]:
        key = self.key(base, data, clip_seconds, segment_seconds, weights_hash, pad)
        if key in self._memory:
            return self._memory[key]
        path = os.path.join(self.cache_dir, f"{data.task}_{key}.npz") if self.cache_dir else None
        if path and os.path.exists(path):
            with np.load(path) as z:
                ids = [str(i) for i in z["clip_ids"]]
                offsets = z["offsets"]
                flat = z["embeddings"]
            table = {cid: flat[offsets[i]:offsets[i + 1]] for i, cid in enumerate(ids)}
        else:
            sr = audio.sample_rate
            segments = [clip_segments(audio[c.clip_id], sr, clip_seconds, segment_seconds, pad) for c in data.clips]
            embeddings = compute_embeddings(base, segments, batch_size)
            self.computed += 1
            table = {c.clip_id: e for c, e in zip(data.clips, embeddings)}
            if path:
                from panns_core.fsutil import atomic_path

                counts = [len(e) for e in embeddings]
                with atomic_path(path, suffix=".npz") as tmp:
                    np.savez(tmp, clip_ids=np.array([c.clip_id for c in data.clips]),
                             offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                             embeddings=np.concatenate(embeddings))
        self._memory[key] = table
        return table
