"""Inference engine: chunking, aggregation, stitching, event tables, bad files, saving.

Most tests use a *probe* model whose outputs are exact functions of its input
(e.g. frame ``f`` of the framewise output is the input sample at ``f * hop``), so
chunking, batching and stitching can be checked to the sample. Real registry
models are used only where the architecture matters (official SED upsampling).
"""

import os

import numpy as np
import pytest
import soundfile as sf
import torch

from panns_core.config import AudioConfig
from panns_core.inference import (
    AudioResult, ChunkPlan, Failure, InferenceError, Pretrained, class_thresholds, cut_chunks,
    detect_events, load_embeddings, plan_chunks, save_embeddings, stitch_framewise, tags_table,
    top_k_indices,
)
from panns_core.labels import LABELS, generic_labels, labels_for

SR, HOP = 1000, 10
CFG = AudioConfig(sample_rate=SR, window_size=32, hop_size=HOP, mel_bins=8, fmin=0, fmax=500)
LAB = generic_labels(4)


class Probe(torch.nn.Module):
    """Outputs that reveal exactly which samples each window held.

    clipwise = [max x, min x, length / 1e4, first sample]; embedding = [mean x, length];
    framewise[f] = x[f * HOP] in every class (frames = length // HOP + 1, last frame
    repeats the last sample).
    """

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x):
        self.calls.append(tuple(x.shape))
        n = x.shape[1]
        clip = torch.stack([x.max(1).values, x.min(1).values, torch.full_like(x[:, 0], n / 1e4), x[:, 0]], 1)
        idx = torch.clamp(torch.arange(n // HOP + 1) * HOP, max=n - 1)
        frames = x[:, idx].unsqueeze(-1).repeat(1, 1, 4)
        emb = torch.stack([x.mean(1), torch.full_like(x[:, 0], float(n))], 1)
        return {"clipwise_output": clip, "embedding": emb, "framewise_output": frames}


def probe(**options):
    options.setdefault("chunk_seconds", 1.0)
    options.setdefault("min_seconds", 0.2)
    return Pretrained(Probe(), "Probe", CFG, LAB, **options)


# --------------------------------------------------------------------------- chunk plans


def test_plan_short_file_is_one_window_at_its_own_length_padded_to_minimum():
    assert plan_chunks(700, 1000, 1000, 10, 200) == ChunkPlan((0,), 700, 700)
    assert plan_chunks(150, 1000, 1000, 10, 200) == ChunkPlan((0,), 200, 150)
    assert plan_chunks(1000, 1000, 1000, 10, 200) == ChunkPlan((0,), 1000, 1000)


def test_plan_long_file_aligns_last_window_to_the_end_on_a_frame_boundary():
    assert plan_chunks(2500, 1000, 1000, 10, 200).starts == (0, 1000, 1500)
    assert plan_chunks(3000, 1000, 1000, 10, 200).starts == (0, 1000, 2000)
    # 2505 - 1000 = 1505 -> rounded up to 1510: 5 samples of padding in the last window
    plan = plan_chunks(2505, 1000, 1000, 10, 200)
    assert plan.starts == (0, 1000, 1510)
    chunks = cut_chunks(np.arange(2505, dtype=np.float32), plan)
    assert [c.shape[0] for c in chunks] == [1000] * 3
    assert chunks[2][994] == 2504 and np.all(chunks[2][995:] == 0)
    assert plan_chunks(2500, 1000, 500, 10, 200).starts == (0, 500, 1000, 1500)


def test_stitch_gives_one_frame_per_hop_plus_one():
    x = np.arange(2505, dtype=np.float32)
    plan = plan_chunks(2505, 1000, 1000, HOP, 200)
    frames = [np.clip(np.arange(101) * HOP, 0, 999)[:, None] + s for s in plan.starts]
    out = stitch_framewise([f.astype(float) for f in frames], plan, HOP)
    assert out.shape == (2505 // HOP + 1, 1)
    np.testing.assert_array_equal(out[:, 0], x[np.arange(251) * HOP])


# --------------------------------------------------------------------------- engine


def test_engine_aggregates_windows_max_mean_and_concatenation():
    rng = np.random.default_rng(0)
    wave = rng.uniform(-1, 1, 2505).astype(np.float32)
    (res,) = probe(batch_size=2).sed(wave)
    assert res.duration_s == pytest.approx(2.505) and res.chunk_starts_s == [0.0, 1.0, 1.51]
    assert res.clipwise[0] == pytest.approx(wave.max()) and res.clipwise[1] == pytest.approx(
        max(wave[0:1000].min(), wave[1000:2000].min(), min(wave[1510:].min(), 0.0)))
    assert res.chunk_clipwise.shape == (3, 4)
    padded = np.concatenate([wave, np.zeros(5, np.float32)])
    want_emb = np.mean([padded[0:1000].mean(), padded[1000:2000].mean(), padded[1510:2510].mean()])
    assert res.embedding[0] == pytest.approx(want_emb, abs=1e-6) and res.embedding[1] == 1000
    assert res.framewise.shape == (251, 4)
    np.testing.assert_array_equal(res.framewise[:, 0], wave[np.arange(251) * HOP])


def test_short_inputs_run_at_own_length_and_batches_are_shared():
    model = probe(batch_size=3)
    model.output_keys()  # the one-off probe forward that checks which outputs exist
    model.model.calls.clear()
    waves = [np.full(n, 0.5, np.float32) for n in (2000, 2000, 700, 100)]
    results = model.tag(waves)
    assert [r.path for r in results] == ["array_0", "array_1", "array_2", "array_3"]
    # 4 windows of 1000 -> one batch of 3 then 1; the 700- and 200-sample (padded) inputs alone
    assert sorted(model.model.calls) == sorted([(3, 1000), (1, 1000), (1, 700), (1, 200)])
    assert results[2].clipwise[2] == pytest.approx(0.07) and results[3].clipwise[2] == pytest.approx(0.02)
    assert results[3].clipwise[1] == 0.0  # padding zeros are part of the minimum-length window


def test_bad_files_are_reported_and_skipped(tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, np.full(1500, 0.25, np.float32), SR)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 8)
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    model = probe()
    out = list(model.run([str(corrupt), str(good), str(empty), str(tmp_path / "missing.wav")]))
    assert [type(o) for o in out] == [Failure, AudioResult, Failure, Failure]
    assert out[0].path == str(corrupt) and "cannot decode" in out[0].reason
    assert "empty" in out[2].reason and "not found" in out[3].reason
    assert out[1].clipwise[0] == pytest.approx(0.25, abs=1e-4)
    results = model.tag([str(corrupt), str(good)])
    assert len(results) == 1 and [f.path for f in model.last_failures] == [str(corrupt)]


def test_missing_outputs_give_clear_errors():
    class ClipOnly(torch.nn.Module):
        def forward(self, x):
            return {"clipwise_output": torch.sigmoid(x[:, :4])}

    model = Pretrained(ClipOnly(), "ClipOnly", CFG, LAB, chunk_seconds=1.0, min_seconds=0.2)
    with pytest.raises(InferenceError, match="DecisionLevel"):
        model.sed(np.zeros(500, np.float32))
    with pytest.raises(InferenceError, match="no 'embedding' output"):
        model.embed(np.zeros(500, np.float32))
    assert model.tag(np.zeros(500, np.float32))[0].clipwise.shape == (4,)


def test_bf16_path_runs_and_rejects_unknown_precision():
    with pytest.raises(ValueError, match="precision"):
        probe(precision="fp8")
    wave = np.linspace(-1, 1, 1200, dtype=np.float32)
    (a,) = probe().tag(wave)
    (b,) = probe(precision="bf16").tag(wave)
    np.testing.assert_allclose(a.clipwise, b.clipwise, atol=1e-2)


# --------------------------------------------------------------------------- events


def _result(framewise, labels=LAB):
    return AudioResult(path="x.wav", duration_s=(framewise.shape[0] - 1) * HOP / SR, sample_rate=SR,
                       hop_size=HOP, labels=labels, chunk_starts_s=[0.0], framewise=framewise,
                       clipwise=framewise.max(0))


def test_event_table_on_a_constructed_case():
    fw = np.zeros((201, 4), np.float32)  # 100 frames/s, 2 s
    fw[10:50, 0] = 0.9  # class_0: 0.1-0.5 s
    fw[55:60, 0] = 0.6  # 5-frame gap, then 0.55-0.6 s
    fw[100:103, 1] = 0.7  # class_1: 30 ms blip
    fw[150:190, 2], fw[190:201, 2] = 0.8, 1.0  # class_2 runs to the end
    fw[:, 3] = 0.4  # below 0.5 everywhere
    table = _result(fw).events(threshold=0.5)
    assert list(table.columns) == ["file", "onset", "offset", "label", "index", "score"]
    got = [(r.label, round(r.onset, 3), round(r.offset, 3), round(r.score, 3)) for r in table.itertuples()]
    assert got == [("class_0", 0.1, 0.5, 0.9), ("class_0", 0.55, 0.6, 0.6),
                   ("class_1", 1.0, 1.03, 0.7), ("class_2", 1.5, 2.0, 1.0)]
    merged = _result(fw).events(threshold=0.5, min_gap=0.05, min_duration=0.04)
    got = [(r.label, round(r.onset, 3), round(r.offset, 3)) for r in merged.itertuples()]
    assert got == [("class_0", 0.1, 0.6), ("class_2", 1.5, 2.0)]
    per_class = _result(fw).events(threshold={"default": 0.95, "class_3": 0.3})
    got = [(r.label, round(r.onset, 3), round(r.offset, 3)) for r in per_class.itertuples()]
    assert got == [("class_3", 0.0, 2.0), ("class_2", 1.9, 2.0)]
    assert detect_events(fw, LAB, 100.0, threshold=1.01).empty


def test_thresholds_by_name_mid_or_array_and_typos_rejected():
    labels = labels_for(527)
    t = class_thresholds({"default": 0.4, "Speech": 0.2, "/m/04rlf": 0.7}, labels)
    assert t[0] == 0.2 and t[labels.ids.index("/m/04rlf")] == 0.7 and t[1] == 0.4
    with pytest.raises(KeyError, match="Speeech"):
        class_thresholds({"Speeech": 0.1}, labels)
    with pytest.raises(ValueError, match="shape"):
        class_thresholds(np.zeros(3), labels)


def test_top_k_and_tags_table():
    scores = np.array([0.1, 0.9, 0.5, 0.9])
    assert top_k_indices(scores, 3).tolist() == [1, 3, 2]
    res = _result(np.tile(scores.astype(np.float32), (3, 1)))
    assert res.top(2) == [("class_1", pytest.approx(0.9)), ("class_3", pytest.approx(0.9))]
    table = tags_table([res], k=2)
    assert table["rank"].tolist() == [1, 2] and table["label"].tolist() == ["class_1", "class_3"]


def test_audioset_names_in_top_labels():
    clip = np.zeros(527, np.float32)
    clip[[0, 137, 74]] = [0.8, 0.95, 0.3]
    res = AudioResult("a.wav", 1.0, SR, HOP, labels_for(527), [0.0], clipwise=clip)
    assert [name for name, _ in res.top(3)] == ["Music", "Speech", LABELS[74]]


# --------------------------------------------------------------------------- saving


@pytest.mark.parametrize("name", ["emb.npy", "emb.h5"])
def test_embeddings_round_trip(tmp_path, name):
    results = probe().embed([np.full(300, 0.1, np.float32), np.full(1200, -0.2, np.float32)])
    written = save_embeddings(results, tmp_path / name, model_name="Probe")
    assert all(os.path.exists(p) for p in written)
    names, matrix = load_embeddings(tmp_path / name)
    assert names == ["array_0", "array_1"] and matrix.dtype == np.float32 and matrix.shape == (2, 2)
    np.testing.assert_allclose(matrix[:, 0], [0.1, -0.2], atol=1e-6)
    with pytest.raises(ValueError, match="npy"):
        save_embeddings(results, tmp_path / "emb.txt")


# --------------------------------------------------------------------------- audio decoding


def test_files_are_resampled_to_the_model_rate_and_averaged_to_mono(tmp_path):
    import librosa

    rng = np.random.default_rng(1)
    stereo = rng.uniform(-0.5, 0.5, (4000, 2)).astype(np.float32)  # 0.5 s at 8 kHz
    sf.write(tmp_path / "s.wav", stereo, 8000, subtype="FLOAT")
    (res,) = probe().tag(str(tmp_path / "s.wav"))
    want = librosa.resample(stereo.mean(1), orig_sr=8000, target_sr=SR)
    assert res.duration_s == pytest.approx(0.5) and res.sample_rate == SR
    assert res.clipwise[0] == pytest.approx(want.max(), abs=1e-6)
    assert res.clipwise[1] == pytest.approx(want.min(), abs=1e-6)


def test_ffmpeg_fallback_decodes_what_libsndfile_cannot(tmp_path):
    from panns_core.audio_io import AudioReadError, ffmpeg_executable, load_audio

    exe = ffmpeg_executable()
    if exe is None:
        pytest.skip("imageio-ffmpeg binary not available")
    t = np.arange(22050) / 22050
    sf.write(tmp_path / "a.wav", np.stack([0.5 * np.sin(2 * np.pi * 440 * t)] * 2, 1), 22050)
    import subprocess

    subprocess.run([exe, "-v", "error", "-y", "-i", str(tmp_path / "a.wav"), str(tmp_path / "a.m4a")], check=True)
    audio = load_audio(tmp_path / "a.m4a", 16000)
    assert audio.dtype == np.float32 and abs(audio.shape[0] - 16000) < 2000
    assert 0.3 < np.abs(audio).max() < 0.7
    (tmp_path / "b.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A " + b"\x01" * 100)
    with pytest.raises(AudioReadError, match=r"b\.m4a: cannot decode audio: soundfile: .*ffmpeg"):
        load_audio(tmp_path / "b.m4a", 16000)


# --------------------------------------------------------------------------- a real SED model


@pytest.fixture(scope="module")
def sed_model():
    """Untrained Cnn14_DecisionLevelMax with BatchNorm statistics set from one noise batch,
    so that its outputs vary over time (with the default statistics they are nearly constant)."""
    from panns_core.models import create_model

    torch.manual_seed(0)
    model = create_model("Cnn14_DecisionLevelMax")
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None
            m.reset_running_stats()
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(np.random.default_rng(0).uniform(-0.5, 0.5, (2, 32000)).astype(np.float32)))
    return model.eval()


def test_official_sed_upsampling_and_window_stitching(sed_model):
    from panns_core.models import model_info

    captured = []
    handle = sed_model.fc_audioset.register_forward_hook(lambda m, i, o: captured.append(o.detach()))
    rng = np.random.default_rng(2)
    t = np.arange(800000) / 32000  # 25 s
    wave = (0.3 * np.sin(2 * np.pi * (200 + 40 * t) * t) * (np.sin(2 * np.pi * 0.3 * t) > 0)
            + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    with torch.inference_mode():
        direct = sed_model(torch.from_numpy(wave[None, :320000]))
    handle.remove()
    framewise = direct["framewise_output"][0].numpy()
    segments = torch.sigmoid(captured[0][0]).numpy()  # (31, 527)
    assert segments.shape == (31, 527) and framewise.shape == (1001, 527)
    # official upsampling: every segment 32 times (992 frames), then the last frame repeated
    want = np.concatenate([np.repeat(segments, 32, axis=0), np.repeat(segments[-1:], 9, axis=0)])
    np.testing.assert_allclose(framewise, want, rtol=0, atol=1e-6)
    assert framewise.std(axis=0).max() > 1e-3  # outputs vary over time: the checks below bite

    model = Pretrained(sed_model, "Cnn14_DecisionLevelMax", model_info("Cnn14_DecisionLevelMax").config,
                       labels_for(527), batch_size=2, optimize=False)  # stitching exact to 1e-5
    (res,) = model.sed(wave)
    assert res.framewise.shape == (800000 // 320 + 1, 527) and res.frames_per_second == 100
    assert res.chunk_starts_s == [0.0, 10.0, 15.0]
    np.testing.assert_allclose(res.framewise[:1000], framewise[:1000], atol=1e-5)
    with torch.inference_mode():
        last = sed_model(torch.from_numpy(wave[None, 480000:]))
    np.testing.assert_allclose(res.framewise[1500:], last["framewise_output"][0].numpy(), atol=1e-5)
    np.testing.assert_allclose(res.clipwise, res.chunk_clipwise.max(0))
    np.testing.assert_allclose(res.chunk_clipwise[0], direct["clipwise_output"][0].numpy(), atol=1e-5)
    table = res.events(threshold=float(np.quantile(res.framewise, 0.999)), min_duration=0.1)
    assert not table.empty and (table.offset <= 25.0).all() and (table.offset - table.onset >= 0.1 - 1e-9).all()
