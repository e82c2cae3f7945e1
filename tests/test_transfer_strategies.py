"""Transfer strategies: what trains, what stays fixed, frozen BatchNorm, embedding cache, mAP@3, few-shot."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from panns_core.config import AudioConfig
from panns_core.metrics import map_at_k
from panns_core.transfer import ClipAudio, EmbeddingCache, TransferConfig, TransferRunner, make_standin, parse_task
from panns_core.transfer.fewshot import ALL, parse_shots, run_curves, shot_subset, summarise, write_results
from panns_core.transfer.runner import score
from panns_core.transfer.strategies import head_of, trainable_parameter_names, transfer_model


class TinyBackbone(nn.Module):
    """A PANN-shaped toy backbone: framewise energy features, conv + BatchNorm + dropout, embedding."""

    embedding_size = 16
    returns_embedding = True

    def __init__(self):
        super().__init__()
        self.audio_config = AudioConfig(sample_rate=8000)
        self.conv = nn.Conv1d(16, 16, kernel_size=1)  # mixes 16 log band energies
        self.bn = nn.BatchNorm1d(16)
        self.fc1 = nn.Linear(16, self.embedding_size)
        self.fc_audioset = nn.Linear(self.embedding_size, 527)

    def forward(self, waveform, mixup_lambda=None):
        spec = torch.stft(waveform, 256, 128, window=torch.hann_window(256), return_complex=True).abs() ** 2
        bands = torch.log(spec[:, 1:129].reshape(len(waveform), 16, 8, -1).sum(2) + 1e-6)  # (B, 16, frames)
        x = torch.relu(self.bn(self.conv(bands.mean(-1, keepdim=True)))).mean(-1)
        emb = nn.functional.dropout(torch.relu(self.fc1(x)), 0.5, self.training)
        return {"clipwise_output": torch.sigmoid(self.fc_audioset(emb)), "embedding": emb}


@pytest.fixture(scope="module")
def esc(tmp_path_factory):
    root = make_standin("esc50", str(tmp_path_factory.mktemp("esc") / "esc50"), seconds=0.5)
    data = parse_task("esc50", root)
    audio = ClipAudio(8000)
    return audio.load(data), audio


def _cfg(**kw):
    base = dict(backbone=TinyBackbone(), iterations=3, head_iterations=40, batch_size=8, clip_seconds=0.5)
    base.update(kw)
    return TransferConfig(**base)


@pytest.mark.parametrize("strategy,frozen,hidden", [("scratch", False, 0), ("finetune", False, 0),
                                                    ("freeze_l1", True, 0), ("freeze_l3", True, 2)])
def test_which_parameters_train(strategy, frozen, hidden):
    model = transfer_model(strategy, TinyBackbone(), 5)
    names = trainable_parameter_names(model)
    head_linears = [m for m in head_of(model) if isinstance(m, nn.Linear)]
    assert len(head_linears) == hidden + 1  # Freeze_L1: one layer; Freeze_L3: three FC layers
    assert all(n.startswith("head.") for n in names) == frozen
    assert any(n.startswith("base.conv") for n in names) == (not frozen)
    model.train()
    assert model.base.training == (not frozen)  # a frozen base stays in eval mode


def test_frozen_base_and_batchnorm_stats_do_not_change(esc):
    data, audio = esc
    runner = TransferRunner(data, audio, _cfg())
    before = copy.deepcopy(runner.pretrained().state_dict())
    row, model = runner.run("freeze_l3", 1, return_model=True)
    after = model.base.state_dict()
    for key, value in before.items():  # weights and BatchNorm running_mean/var/num_batches_tracked
        assert torch.equal(value, after[key]), key
    assert row["steps"] == 40 and row["last_loss"] < row["first_loss"]
    # even a direct training step through the full model leaves the frozen base untouched
    model.train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loss = model(torch.randn(4, 4000))["clipwise_output"].mean()
    opt.zero_grad(); loss.backward(); opt.step()
    assert torch.equal(model.base.bn.running_mean, before["bn.running_mean"])


def test_finetune_changes_backbone_and_scratch_starts_fresh(esc):
    data, audio = esc
    runner = TransferRunner(data, audio, _cfg(iterations=2))
    start = copy.deepcopy(runner.pretrained().state_dict())
    _, tuned = runner.run("finetune", 1, return_model=True)
    assert not torch.equal(tuned.base.conv.weight, start["conv.weight"])
    assert torch.equal(runner.pretrained().state_dict()["conv.weight"], start["conv.weight"])  # copy trained


def test_embeddings_computed_once_across_folds_shots_and_seeds(esc, tmp_path):
    data, audio = esc
    cache = EmbeddingCache(str(tmp_path))
    runner = TransferRunner(data, audio, _cfg(head_iterations=5), cache)
    results = run_curves(runner, ["freeze_l1", "freeze_l3"], [1, ALL], folds=2, seeds=[0, 1], log=None)
    assert len(results) == 2 * 2 * 2 * 2 and cache.computed == 1
    assert len(list(tmp_path.glob("esc50_*.npz"))) == 1
    same_weights = copy.deepcopy(runner.pretrained())
    again = EmbeddingCache(str(tmp_path))  # a new process re-reads the disk cache (same weights)
    TransferRunner(data, audio, _cfg(backbone=same_weights, head_iterations=5), again).run("freeze_l1", 1)
    assert again.computed == 0
    other = EmbeddingCache(str(tmp_path))  # other weights: a different key, computed anew
    TransferRunner(data, audio, _cfg(head_iterations=5), other).run("freeze_l1", 1)
    assert other.computed == 1


def test_frozen_heads_learn_the_standin(esc):
    data, audio = esc
    row = TransferRunner(data, audio, _cfg(head_iterations=300)).run("freeze_l3", 1)
    assert row["score"] >= 0.6 and row["last_loss"] < 0.5 * row["first_loss"]  # chance is 0.2


def test_few_shot_subsets_are_nested_and_capped(esc):
    data, _ = esc
    train, test = data.split(1)
    subsets = {k: set(shot_subset(data, train, k, seed=3).tolist()) for k in (1, 2, 5, 100)}
    assert subsets[1] < subsets[2] < subsets[5]
    assert len(subsets[1]) == 5 and len(subsets[100]) == 40  # capped by the 8 clips per class
    assert subsets[100] == set(shot_subset(data, train, ALL, 0).tolist())
    assert not subsets[100] & set(test.tolist())
    assert parse_shots("5,1,all,2") == [1, 2, 5, ALL]


def test_results_files_and_summary(esc, tmp_path):
    data, audio = esc
    runner = TransferRunner(data, audio, _cfg(head_iterations=5))
    results = run_curves(runner, ["freeze_l1"], [1, ALL], folds=[1, 2], seeds=[0, 1], log=None)
    paths = write_results(results, str(tmp_path), "esc50", {"note": "test"})
    summary = summarise(results)
    assert list(summary["n"]) == [4, 4] and list(summary["clips_per_class"]) == [1, 8]
    expected = results[results["shots"] == "1"]["score"]
    assert summary["mean"].iloc[0] == pytest.approx(expected.mean())
    assert summary["std"].iloc[0] == pytest.approx(np.std(expected))
    assert set(paths) == {"results", "summary", "run"}


def test_map_at_3_hand_checked():
    scores = np.array([[0.9, 0.05, 0.03, 0.02],   # true 0 at rank 1 -> 1
                       [0.5, 0.3, 0.15, 0.05],    # true 1 at rank 2 -> 1/2
                       [0.5, 0.3, 0.15, 0.05],    # true 2 at rank 3 -> 1/3
                       [0.5, 0.3, 0.15, 0.05]])   # true 3 at rank 4 -> 0
    assert map_at_k([0, 1, 2, 3], scores, k=3) == pytest.approx((1 + 1 / 2 + 1 / 3 + 0) / 4)
    assert score("mAP@3", np.array([0, 1, 2, 3]), scores) == pytest.approx(11 / 24)
    assert score("accuracy", np.array([0, 1, 2, 3]), scores) == pytest.approx(0.25)


def test_segmented_task_averages_over_segments(tmp_path):
    root = make_standin("dcase2018_task2", str(tmp_path / "fsd"), seconds=0.5)
    data = parse_task("dcase2018_task2", root)
    audio = ClipAudio(8000)
    data = audio.load(data)
    cfg = _cfg(head_iterations=5, clip_seconds=30.0, segment_seconds=0.25)
    runner = TransferRunner(data, audio, cfg)
    table = runner.embeddings()
    lengths = {cid: len(audio[cid]) for cid in table}
    assert all(len(table[cid]) == int(np.ceil(n / 2000)) for cid, n in lengths.items())
    row = runner.run("freeze_l1", "test")
    assert row["metric"] == "mAP@3" and 0 <= row["score"] <= 1


def test_bad_inputs_raise_clear_errors(esc):
    data, audio = esc
    runner = TransferRunner(data, audio, _cfg())
    with pytest.raises(ValueError, match="unknown transfer strategy"):
        runner.run("linear_probe", 1)
    with pytest.raises(ValueError, match="fold 9"):
        runner.run("freeze_l1", 9)
    train, test = data.split(1)
    with pytest.raises(ValueError, match="training clips are test clips"):
        runner.run("freeze_l1", 1, train_idx=np.concatenate([train, test[:1]]))


def test_fine_tune_folder_returns_a_waveform_classifier(tmp_path):
    import soundfile as sf

    from panns_core.transfer import fine_tune_folder
    from panns_core.transfer.synthetic import class_sound

    rng = np.random.default_rng(0)
    rows = ["filename,label,fold"]
    for i in range(12):
        label = i % 2
        sf.write(tmp_path / f"c{i}.wav", class_sound(label, 2, 0.5, 16000, rng, channels=1 + i % 2), 16000)
        rows.append(f"c{i}.wav,{'high' if label else 'low'},{'test' if i >= 8 else 'train'}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    model, row = fine_tune_folder(str(tmp_path / "labels.csv"), backbone=TinyBackbone(), strategy="freeze_l1",
                                  iterations=2, head_iterations=200, batch_size=4, clip_seconds=0.5)
    assert row["classes"] == ["high", "low"] and row["train_clips"] == 8 and row["test_clips"] == 4
    out = model.eval()(torch.zeros(2, 4000))["clipwise_output"]
    assert out.shape == (2, 2) and torch.allclose(out.exp().sum(-1), torch.ones(2))


def test_backbone_takes_the_class_count_of_its_checkpoint(tmp_path):
    """A backbone pretrained on a K-class corpus loads without naming K: the head is replaced anyway."""
    from panns_core.checkpoints import save_checkpoint
    from panns_core.models import create_model
    from panns_core.transfer.strategies import make_backbone

    source = create_model("Cnn6", classes_num=7)
    path = tmp_path / "best.pt"
    save_checkpoint(path, source)
    base = make_backbone("Cnn6", checkpoint=str(path))
    assert base.fc_audioset.out_features == 7
    for (name, a), b in zip(source.state_dict().items(), base.state_dict().values()):
        assert torch.equal(a, b), name


def test_new_head_learning_rate_puts_the_head_in_its_own_adam_group():
    from panns_core.transfer.finetune import STRATEGY_DEFAULTS
    from panns_core.transfer.runner import parameter_groups

    model = transfer_model("finetune", TinyBackbone(), 5)
    head_ids = {id(p) for p in head_of(model).parameters()}
    (single,) = parameter_groups(model, TransferConfig(learning_rate=1e-4))  # the paper runs: one rate
    assert len(single["params"]) == len(list(model.parameters())) and "lr" not in single
    cfg = TransferConfig(learning_rate=1e-4, new_head_learning_rate=1e-3)
    optimizer = torch.optim.Adam(parameter_groups(model, cfg), lr=cfg.learning_rate)
    backbone_group, head_group = optimizer.param_groups
    assert backbone_group["lr"] == 1e-4 and head_group["lr"] == 1e-3
    assert {id(p) for p in head_group["params"]} == head_ids
    assert not head_ids & {id(p) for p in backbone_group["params"]}
    assert len(backbone_group["params"]) + len(head_group["params"]) == len(list(model.parameters()))
    # panns finetune's measured default (docs/transfer.md): backbone 1e-4, new head 1e-3
    assert STRATEGY_DEFAULTS["finetune"]["learning_rate"] == 1e-4
    assert STRATEGY_DEFAULTS["finetune"]["new_head_learning_rate"] == 1e-3
    with pytest.raises(ValueError, match="new_head_learning_rate must be > 0"):
        TransferConfig(new_head_learning_rate=0.0)
