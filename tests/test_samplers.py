"""Samplers: official balanced algorithm exactly, empty classes, resume, sharding."""

import io

import numpy as np
import pytest
import torch

from panns_core.data.index import IndexTable, write_index
from panns_core.samplers import (
    AlternateSampler, BalancedSampler, EvaluateSampler, SamplerStateError, TrainSampler, take,
)


def single_label_table(counts, path="/data/w.h5"):
    """One label per clip; class k has counts[k] clips, rows interleaved."""
    labels = np.concatenate([np.full(n, k) for k, n in enumerate(counts)])
    labels = labels[np.random.default_rng(0).permutation(len(labels))]
    targets = np.zeros((len(labels), len(counts)), dtype=bool)
    targets[np.arange(len(labels)), labels] = True
    return IndexTable([f"Y{i:011d}.wav" for i in range(len(labels))], [path] * len(labels),
                      np.arange(len(labels)), targets), labels


def reference_balanced(targets, batch_size, n_batches, seed=1234):
    """The official BalancedTrainSampler, restated from research/official_pipeline.md section 5."""
    rs = np.random.RandomState(seed)
    classes_num = targets.shape[1]
    samples_num_per_class = np.sum(targets, axis=0)
    indexes_per_class = [np.where(targets[:, k] == 1)[0] for k in range(classes_num)]
    for k in range(classes_num):
        rs.shuffle(indexes_per_class[k])
    queue, pointers = [], [0] * classes_num
    batches = []
    for _ in range(n_batches):
        batch = []
        while len(batch) < batch_size:
            if not queue:
                classes = np.arange(classes_num).tolist()
                rs.shuffle(classes)
                queue += classes
            c = queue.pop(0)
            p = pointers[c]
            pointers[c] += 1
            index = indexes_per_class[c][p]
            if pointers[c] >= samples_num_per_class[c]:
                pointers[c] = 0
                rs.shuffle(indexes_per_class[c])
            batch.append(int(index))
        batches.append(batch)
    return batches


def rows(batches):
    return [[m["index_in_hdf5"] for m in b] for b in batches]


def test_balanced_equals_official_algorithm():
    table, _ = single_label_table([3, 50, 1, 7, 20, 2])
    multi = table.targets.copy()
    multi[::5, 0] = True  # some multi-label clips too
    table = IndexTable(table.audio_names, table.hdf5_paths, table.index_in_hdf5, multi)
    sampler = BalancedSampler(table, batch_size=8)
    assert rows(take(sampler, 40)) == reference_balanced(multi.astype(np.float32), 8, 40)


@pytest.mark.parametrize("k", [1, 3])
def test_each_class_exactly_k_times_in_k_times_c_draws(k):
    counts = [1, 2, 5, 40, 3, 11, 7]
    table, labels = single_label_table(counts)
    c = len(counts)
    sampler = BalancedSampler(table, batch_size=c)
    drawn = [p for b in take(sampler, k) for p in rows([b])[0]]
    assert np.bincount(labels[drawn], minlength=c).tolist() == [k] * c
    # a class with n clips shows n distinct clips before repeating one
    stream = [p for b in take(BalancedSampler(table, batch_size=c), 40) for p in rows([b])[0]]
    class3 = [p for p in stream if labels[p] == 3][:40]
    assert len(set(class3)) == 40


def test_empty_class_is_skipped_not_crashing():
    table, labels = single_label_table([4, 0, 6, 0, 2])
    sampler = BalancedSampler(table, batch_size=3)
    assert sampler.empty_classes == [1, 3]
    drawn = [p for b in rows(take(sampler, 10)) for p in b]
    assert len(drawn) == 30
    assert set(labels[drawn]) == {0, 2, 4}
    assert np.bincount(labels[drawn[:3]], minlength=5)[[0, 2, 4]].tolist() == [1, 1, 1]


@pytest.mark.parametrize("cls", [BalancedSampler, TrainSampler, AlternateSampler])
def test_resume_equals_uninterrupted(cls, tmp_path):
    table, _ = single_label_table([5, 9, 2, 13])
    full = rows(take(cls(table, batch_size=6, random_seed=7), 25))
    first = cls(table, batch_size=6, random_seed=7)
    part = rows(take(first, 11))
    torch.save({"sampler": first.state_dict()}, tmp_path / "ckpt.pt")
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)["sampler"]
    resumed = cls(table, batch_size=6, random_seed=7)
    resumed.load_state_dict(state)
    assert part + rows(take(resumed, 14)) == full


def test_state_from_other_index_is_refused():
    a, _ = single_label_table([5, 9])
    b, _ = single_label_table([5, 10])
    with pytest.raises(SamplerStateError, match="does not match"):
        BalancedSampler(b, 4).load_state_dict(BalancedSampler(a, 4).state_dict())


@pytest.mark.parametrize("cls", [BalancedSampler, TrainSampler, AlternateSampler])
def test_sharding_partitions_the_global_batch(cls):
    table, _ = single_label_table([5, 9, 2, 13, 4])
    world, bs = 3, 4
    global_batches = rows(take(cls(table, batch_size=bs * world), 6))
    shards = [rows(take(cls(table, batch_size=bs, rank=r, world_size=world), 6)) for r in range(world)]
    for i, g in enumerate(global_batches):
        assert [p for r in range(world) for p in shards[r][i]] == g
        assert all(len(shards[r][i]) == bs for r in range(world))


def test_train_sampler_is_a_permutation_per_epoch():
    table, _ = single_label_table([3, 4, 5])
    drawn = [p for b in rows(take(TrainSampler(table, batch_size=4), 3)) for p in b]
    assert sorted(drawn) == list(range(12))


def test_alternate_odd_balanced_even_uniform():
    table, _ = single_label_table([3, 30, 2])
    alt = rows(take(AlternateSampler(table, batch_size=5, random_seed=3), 4))
    bal = rows(take(BalancedSampler(table, batch_size=5, random_seed=3), 2))
    uni = rows(take(TrainSampler(table, batch_size=5, random_seed=3), 2))
    assert alt == [bal[0], uni[0], bal[1], uni[1]]


def test_evaluate_sampler_and_index_file(tmp_path):
    table, _ = single_label_table([3, 4])
    path = tmp_path / "idx.h5"
    write_index(str(path), table)
    batches = list(EvaluateSampler(str(path), batch_size=3))
    assert [len(b) for b in batches] == [3, 3, 1]
    assert [m["index_in_hdf5"] for b in batches for m in b] == list(range(7))
    assert batches[0][0] == {"hdf5_path": "/data/w.h5", "index_in_hdf5": 0}
    r0 = [m["index_in_hdf5"] for b in EvaluateSampler(str(path), 2, rank=0, world_size=2) for m in b]
    r1 = [m["index_in_hdf5"] for b in EvaluateSampler(str(path), 2, rank=1, world_size=2) for m in b]
    assert sorted(r0 + r1) == list(range(7)) and not set(r0) & set(r1)


def test_black_list_removes_clips(tmp_path):
    table, _ = single_label_table([3, 4])
    bl = tmp_path / "bl.csv"
    bl.write_text("youtube_id\n" + "\n".join(n[1:12] for n in table.audio_names[:3]) + "\n")
    drawn = {p for b in rows(take(BalancedSampler(table, 4, black_list_csv=str(bl)), 10)) for p in b}
    assert drawn == set(range(3, 7))


def test_bad_arguments():
    table, _ = single_label_table([3])
    with pytest.raises(ValueError, match="rank"):
        BalancedSampler(table, 4, rank=2, world_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        TrainSampler(table, 0)
