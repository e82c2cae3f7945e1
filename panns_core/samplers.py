"""Training and evaluation samplers (official algorithms, resumable and shardable).

Every sampler is an iterable of batches; a batch is a list of
``{'hdf5_path': str, 'index_in_hdf5': int}`` dicts, used as a DataLoader
``batch_sampler``. The trainer passes ``2 * batch_size`` when mixup is on, as the
official code does.

Differences from the official ``utils/data_generator.py`` (all opt-in or
invisible when not triggered; with ``world_size=1`` and no black list the
stream of :class:`BalancedSampler` equals the official one draw for draw):

* ``state_dict()`` also captures the RandomState, so a resumed run continues
  the exact stream instead of replaying it from the seed;
* classes without clips are skipped instead of raising ``IndexError``;
* black-listed clips are removed before the per-class lists are built (the
  official code advances the class pointer and leaves the slot empty; it never
  used a black list, ``main.py`` hard-codes ``None``);
* ``rank``/``world_size``: every rank runs the same global stream of
  ``batch_size * world_size`` clips and keeps its own contiguous slice, so the
  shares are disjoint, deterministic and together equal the one-GPU batch.
"""

from __future__ import annotations

from typing import Iterable, Optional, Union

import numpy as np

from panns_core.data.audioset import read_black_list, ytid_from_audio_name
from panns_core.data.index import IndexTable, read_index

DEFAULT_SEED = 1234
"""The official samplers' seed (``np.random.RandomState(1234)``)."""


class SamplerStateError(ValueError):
    """A state dict does not belong to this sampler's index or settings."""


def _load_table(index: Union[str, IndexTable]) -> IndexTable:
    return index if isinstance(index, IndexTable) else read_index(index)


def _rng_state_to_builtin(rs: np.random.RandomState) -> dict:
    """RandomState state as plain Python types (loadable with ``weights_only=True``)."""
    name, keys, pos, has_gauss, cached = rs.get_state()
    return {"name": name, "keys": keys.tolist(), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def _rng_state_from_builtin(rs: np.random.RandomState, state: dict) -> None:
    rs.set_state((state["name"], np.asarray(state["keys"], dtype=np.uint32), state["pos"],
                  state["has_gauss"], state["cached_gaussian"]))


class _TrainBase:
    """Shared plumbing: index loading, black list, sharding, batch assembly, state checks."""

    kind = "base"

    def __init__(self, index: Union[str, IndexTable], batch_size: int, *,
                 black_list_csv: Optional[str] = None, random_seed: int = DEFAULT_SEED,
                 rank: int = 0, world_size: int = 1):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        table = _load_table(index)
        if black_list_csv:
            banned = read_black_list(black_list_csv)
            keep = [i for i, n in enumerate(table.audio_names) if ytid_from_audio_name(n) not in banned]
            table = table.subset(keep)
        if len(table) == 0:
            raise ValueError(f"{index if isinstance(index, str) else 'index'}: no clips to sample from")
        self.table = table
        self.batch_size = int(batch_size)
        self.rank, self.world_size = int(rank), int(world_size)
        self.random_seed = int(random_seed)
        self.random_state = np.random.RandomState(self.random_seed)
        self.hdf5_paths = table.hdf5_paths
        self.indexes_in_hdf5 = table.index_in_hdf5
        self.audios_num, self.classes_num = table.targets.shape

    @property
    def global_batch_size(self) -> int:
        return self.batch_size * self.world_size

    def _meta(self, position: int) -> dict:
        return {"hdf5_path": self.hdf5_paths[position], "index_in_hdf5": int(self.indexes_in_hdf5[position])}

    def _shard(self, positions: list) -> list:
        start = self.rank * self.batch_size
        return [self._meta(p) for p in positions[start:start + self.batch_size]]

    def next_positions(self, n: int) -> list:
        """Positions (rows of the index) of the next ``n`` clips of the global stream."""
        raise NotImplementedError

    def __iter__(self):
        while True:
            yield self._shard(self.next_positions(self.global_batch_size))

    def _fingerprint(self) -> dict:
        return {"kind": self.kind, "audios_num": int(self.audios_num),
                "classes_num": int(self.classes_num), "random_seed": self.random_seed}

    def _check_fingerprint(self, state: dict) -> None:
        mine = self._fingerprint()
        theirs = {k: state.get(k) for k in mine}
        if theirs != mine:
            raise SamplerStateError(f"sampler state does not match this sampler: saved {theirs}, here {mine}")


class TrainSampler(_TrainBase):
    """Uniform sampling without replacement: shuffle, walk, reshuffle at the end (official)."""

    kind = "train"

    def __init__(self, index, batch_size, **kwargs):
        super().__init__(index, batch_size, **kwargs)
        self.indexes = np.arange(self.audios_num)
        self.random_state.shuffle(self.indexes)
        self.pointer = 0

    def next_positions(self, n):
        out = []
        for _ in range(n):
            out.append(int(self.indexes[self.pointer]))
            self.pointer += 1
            if self.pointer >= self.audios_num:
                self.pointer = 0
                self.random_state.shuffle(self.indexes)
        return out

    def state_dict(self) -> dict:
        return {**self._fingerprint(), "indexes": self.indexes.tolist(), "pointer": int(self.pointer),
                "rng": _rng_state_to_builtin(self.random_state)}

    def load_state_dict(self, state: dict) -> None:
        self._check_fingerprint(state)
        self.indexes = np.asarray(state["indexes"], dtype=np.int64)
        self.pointer = int(state["pointer"])
        _rng_state_from_builtin(self.random_state, state["rng"])


class BalancedSampler(_TrainBase):
    """The official balanced sampler, draw for draw.

    A FIFO queue of class ids is refilled with a freshly shuffled permutation
    of all classes whenever it runs empty; each slot pops one class and takes
    the next clip of that class's shuffled list; a class whose list is
    exhausted is reshuffled and restarts. Classes without clips are popped
    and skipped (the official code crashes there), so subsets that miss some
    classes work; the permutations still include them so that the random
    stream is unchanged when every class has clips.
    """

    kind = "balanced"

    def __init__(self, index, batch_size, **kwargs):
        super().__init__(index, batch_size, **kwargs)
        targets = self.table.targets
        self.samples_num_per_class = targets.sum(axis=0).astype(np.int64)
        self.indexes_per_class = [np.where(targets[:, k])[0] for k in range(self.classes_num)]
        for k in range(self.classes_num):
            self.random_state.shuffle(self.indexes_per_class[k])
        self.queue = []
        self.pointers_of_classes = [0] * self.classes_num
        self.empty_classes = [k for k in range(self.classes_num) if self.samples_num_per_class[k] == 0]
        if len(self.empty_classes) == self.classes_num:
            raise ValueError("no class has any clip: every target row is all-false")

    def _expand_queue(self) -> None:
        classes = np.arange(self.classes_num).tolist()
        self.random_state.shuffle(classes)
        self.queue += classes

    def next_positions(self, n):
        out = []
        while len(out) < n:
            if not self.queue:
                self._expand_queue()
            c = self.queue.pop(0)
            if self.samples_num_per_class[c] == 0:
                continue
            pointer = self.pointers_of_classes[c]
            self.pointers_of_classes[c] += 1
            out.append(int(self.indexes_per_class[c][pointer]))
            if self.pointers_of_classes[c] >= self.samples_num_per_class[c]:
                self.pointers_of_classes[c] = 0
                self.random_state.shuffle(self.indexes_per_class[c])
        return out

    def state_dict(self) -> dict:
        return {**self._fingerprint(),
                "indexes_per_class": [a.tolist() for a in self.indexes_per_class],
                "queue": list(map(int, self.queue)),
                "pointers_of_classes": list(map(int, self.pointers_of_classes)),
                "rng": _rng_state_to_builtin(self.random_state)}

    def load_state_dict(self, state: dict) -> None:
        self._check_fingerprint(state)
        self.indexes_per_class = [np.asarray(a, dtype=np.int64) for a in state["indexes_per_class"]]
        self.queue = list(state["queue"])
        self.pointers_of_classes = list(state["pointers_of_classes"])
        _rng_state_from_builtin(self.random_state, state["rng"])


class AlternateSampler(_TrainBase):
    """Official ``AlternateTrainSampler``: odd batches balanced, even batches uniform.

    Both inner samplers are seeded with the same seed, as in the official code.
    """

    kind = "alternate"

    def __init__(self, index, batch_size, **kwargs):
        super().__init__(index, batch_size, **kwargs)
        kwargs = {**kwargs, "random_seed": self.random_seed}
        self.balanced = BalancedSampler(self.table, batch_size, **{k: v for k, v in kwargs.items() if k != "black_list_csv"})
        self.uniform = TrainSampler(self.table, batch_size, **{k: v for k, v in kwargs.items() if k != "black_list_csv"})
        self.count = 0

    def __iter__(self):
        while True:
            self.count += 1
            source = self.balanced if self.count % 2 == 1 else self.uniform
            yield self._shard(source.next_positions(self.global_batch_size))

    def state_dict(self) -> dict:
        return {**self._fingerprint(), "count": int(self.count),
                "balanced": self.balanced.state_dict(), "uniform": self.uniform.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self._check_fingerprint(state)
        self.count = int(state["count"])
        self.balanced.load_state_dict(state["balanced"])
        self.uniform.load_state_dict(state["uniform"])


class EvaluateSampler:
    """Every clip once, in index order; the last batch may be short (official).

    With ``world_size > 1`` rank ``r`` takes positions ``r, r + W, r + 2W, ...``
    so that ranks share the work without overlap.
    """

    def __init__(self, index: Union[str, IndexTable], batch_size: int, *, rank: int = 0, world_size: int = 1):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        self.table = _load_table(index)
        self.batch_size = int(batch_size)
        self.positions = np.arange(rank, len(self.table), world_size)

    def __len__(self) -> int:
        return (len(self.positions) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        for start in range(0, len(self.positions), self.batch_size):
            yield [{"hdf5_path": self.table.hdf5_paths[p], "index_in_hdf5": int(self.table.index_in_hdf5[p])}
                   for p in self.positions[start:start + self.batch_size]]


SAMPLERS = {"balanced": BalancedSampler, "none": TrainSampler, "alternate": AlternateSampler}
"""``--balanced`` values of the official ``main.py`` -> sampler class."""


def create_train_sampler(balanced: str, index, batch_size: int, **kwargs):
    """Sampler for the official ``balanced`` option (``balanced``, ``none``, ``alternate``)."""
    try:
        cls = SAMPLERS[balanced]
    except KeyError:
        raise ValueError(f"unknown balancing {balanced!r}; choose from {sorted(SAMPLERS)}") from None
    return cls(index, batch_size, **kwargs)


def take(sampler: Iterable, n_batches: int) -> list:
    """The next ``n_batches`` batches of an (infinite) sampler; convenience for tests and tools."""
    it = iter(sampler)
    return [next(it) for _ in range(n_batches)]
