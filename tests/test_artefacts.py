"""Artefact saving, records and the manifest built from them."""

import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from panns_core.study import artefacts  # noqa: E402


def _table():
    return pd.DataFrame({"system": ["CNN14", "a_b"], "paper mAP": [0.431, np.nan], "ours": [0.1234, 0.5]})


def test_ids_cover_the_paper_in_order():
    ids = artefacts.ARTEFACT_IDS
    assert ids[0] == "table_IV" and "table_XVIII" in ids
    assert [i for i in ids if i.startswith("fig_4")] == [f"fig_4{c}" for c in "abcdef"]
    assert {"fig_3", "fig_5", "fig_12"} <= set(ids)
    assert [f"fig_{n}" for n in range(6, 12)] == [i for i in ids if i in artefacts.TRANSFER_IDS and i.startswith("fig")]
    assert len(ids) == 15 + 1 + 6 + 1 + 6 + 1
    assert set(artefacts.AUDIOSET_IDS) | set(artefacts.TRANSFER_IDS) == set(ids)
    assert set(artefacts.ARTEFACT_OWNERS) == set(ids)


def test_save_table_writes_all_formats_and_record(tmp_path):
    rec = artefacts.save_table(_table(), "table_XI", tmp_path, sources=["runs/x/train/a"], profile="tiny",
                               caption="Architectures", meta={"eval_set_sha256": "abc"})
    for ext in ("csv", "md", "tex", "json"):
        assert (tmp_path / f"table_XI.{ext}").exists()
    back = pd.read_csv(tmp_path / "table_XI.csv")
    assert back["ours"].tolist() == [0.1234, 0.5]
    md = (tmp_path / "table_XI.md").read_text()
    assert "| CNN14 | 0.431 | 0.123 |" in md and "| a_b | – | 0.500 |" in md
    tex = (tmp_path / "table_XI.tex").read_text()
    assert "a\\_b & -- & 0.500 \\\\" in tex and "\\toprule" in tex
    on_disk = json.loads((tmp_path / "table_XI.json").read_text())
    assert on_disk == rec
    assert rec["files"] == ["table_XI.csv", "table_XI.md", "table_XI.tex"]
    assert rec["profile"] == "tiny" and rec["sources"] == ["runs/x/train/a"]
    assert rec["meta"] == {"eval_set_sha256": "abc"}


def test_save_figure_writes_png_pdf(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    rec = artefacts.save_figure(fig, "fig_4a", tmp_path, sources=[], profile="tiny")
    plt.close(fig)
    assert (tmp_path / "fig_4a.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "fig_4a.pdf").read_bytes()[:4] == b"%PDF"
    assert rec["kind"] == "figure"


def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown artefact id 'table_13'"):
        artefacts.save_table(_table(), "table_13", tmp_path, sources=[], profile="p")
    with pytest.raises(TypeError, match="DataFrame"):
        artefacts.save_table([[1]], "table_V", tmp_path, sources=[], profile="p")
    with pytest.raises(TypeError, match="Figure"):
        artefacts.save_figure("nope", "fig_5", tmp_path, sources=[], profile="p")
    (tmp_path / "table_V.json").write_text("{not json")
    with pytest.raises(ValueError, match="table_V.json: unreadable"):
        artefacts.read_record("table_V", tmp_path)


def test_manifest_lists_produced_and_missing_with_reasons(tmp_path):
    figs = tmp_path / "figures" / "tiny"
    artefacts.save_table(_table(), "table_V", figs, sources=[str(tmp_path / "runs" / "a")], profile="tiny")
    artefacts.save_table(_table(), "table_VI", figs, sources=[], profile="other")
    artefacts.save_table(_table(), "table_VII", figs, sources=[], profile="tiny")
    os.remove(figs / "table_VII.tex")
    m = artefacts.build_manifest(figs, "tiny", missing_reasons={"fig_3": "stage train_x failed"},
                                 root=str(tmp_path))
    assert list(m["artefacts"]) == ["table_V"]
    entry = m["artefacts"]["table_V"]
    assert entry["paths"] == [f"figures/tiny/table_V.{e}" for e in ("csv", "md", "tex")]
    assert entry["sources"] == ["runs/a"] and entry["profile"] == "tiny"
    assert "belongs to profile 'other'" in m["missing"]["table_VI"]
    assert "table_VII.tex" in m["missing"]["table_VII"]
    assert m["missing"]["fig_3"] == "stage train_x failed"
    assert "21_transfer_tables_figures" in m["missing"]["fig_6"]
    assert m["counts"] == {"produced": 1, "missing": len(artefacts.ARTEFACT_IDS) - 1, "not_in_profile": 0,
                           "expected": len(artefacts.ARTEFACT_IDS)}
    # Ids whose notebook the profile does not run are not expected, so not "missing".
    m = artefacts.build_manifest(figs, "tiny", not_in_profile={"fig_6": "not in this profile"}, root=str(tmp_path))
    assert m["not_in_profile"] == {"fig_6": "not in this profile"} and "fig_6" not in m["missing"]
    assert m["counts"]["expected"] == len(artefacts.ARTEFACT_IDS) - 1 and m["counts"]["not_in_profile"] == 1
    assert set(m["artefacts"]) | set(m["missing"]) | set(m["not_in_profile"]) == set(artefacts.ARTEFACT_IDS)
