"""The official mixup lambda generator (``utilities.Mixup``), with a saveable state.

The official recipe draws, for every consecutive pair of clips in a doubled
batch (64 clips for batch 32), ``lam ~ Beta(alpha, alpha)`` from its own
``RandomState(1234)`` and emits ``[lam, 1 - lam]``; the model mixes each pair at
its official place (log-mel, waveform or Wavegram) and the targets are mixed the
same way. The official code never saved this RandomState, so a resumed run drew
different lambdas; :meth:`Mixup.state_dict` fixes that.
"""

from __future__ import annotations

import numpy as np


class Mixup:
    """Pairwise Beta(alpha, alpha) lambdas from a private ``np.random.RandomState``."""

    def __init__(self, mixup_alpha: float = 1.0, random_seed: int = 1234):
        if not mixup_alpha > 0:
            raise ValueError(f"mixup_alpha must be > 0, got {mixup_alpha}")
        self.mixup_alpha = float(mixup_alpha)
        self.random_state = np.random.RandomState(random_seed)

    def get_lambda(self, batch_size: int) -> np.ndarray:
        """``[lam_0, 1-lam_0, lam_1, 1-lam_1, ...]`` for an even ``batch_size`` (float32)."""
        if batch_size <= 0 or batch_size % 2:
            raise ValueError(f"mixup needs an even, positive number of clips, got {batch_size}")
        lambdas = []
        for _ in range(0, batch_size, 2):
            # size=1 then [0]: the same draw as the official code, value for value.
            lam = self.random_state.beta(self.mixup_alpha, self.mixup_alpha, 1)[0]
            lambdas.extend((lam, 1.0 - lam))
        return np.asarray(lambdas, dtype=np.float32)

    def state_dict(self) -> dict:
        """Everything needed to continue the lambda stream exactly (numpy-free, loadable with
        ``torch.load(weights_only=True)``)."""
        name, keys, pos, has_gauss, cached = self.random_state.get_state()
        return {
            "mixup_alpha": self.mixup_alpha,
            "random_state": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        }

    def load_state_dict(self, state: dict) -> None:
        if float(state["mixup_alpha"]) != self.mixup_alpha:
            raise ValueError(
                f"mixup state was saved with alpha={state['mixup_alpha']}, this run uses {self.mixup_alpha}"
            )
        name, keys, pos, has_gauss, cached = state["random_state"]
        self.random_state.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
