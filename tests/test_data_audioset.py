"""Metadata parsing on hand-written fixtures in the official AudioSet formats."""

import os

import numpy as np
import pytest

from panns_core.data.audioset import (
    MetadataError, Segment, audio_name_for, label_quality, read_black_list, read_class_labels,
    read_qa_true_counts, read_segments_csv, segments_targets, write_class_labels, write_segments_csv,
    ytid_from_audio_name,
)

FIX = os.path.join(os.path.dirname(__file__), "fixtures")
LABELS = os.path.join(os.path.dirname(__file__), "..", "panns_core", "resources", "class_labels_indices.csv")


def test_class_labels_527_with_quoted_commas():
    labels = read_class_labels(LABELS)
    assert len(labels) == 527
    assert labels.mids[0] == "/m/09x0r" and labels.names[0] == "Speech"
    assert labels.names[1] == "Male speech, man speaking"
    assert labels.index_of("/m/05zppz") == 1


def test_segments_csv_official_format():
    segs = read_segments_csv(os.path.join(FIX, "eval_segments.csv"))
    assert len(segs) == 6
    assert segs[0] == Segment("--4gqARaEJE", 0.0, 10.0, ("/m/068hy", "/m/07q6cd_", "/m/0bt9lr", "/m/0jbk"))
    assert segs[0].audio_name == "Y--4gqARaEJE.wav"
    assert segs[5].ytid == "_A30xsM1NJQ" and segs[5].duration == pytest.approx(8.75)
    targets = segments_targets(segs, read_class_labels(LABELS))
    assert targets.shape == (6, 527) and targets.dtype == bool
    assert targets.sum() == 10
    assert targets[4].nonzero()[0].tolist() == [0]


def test_segments_roundtrip(tmp_path):
    segs = read_segments_csv(os.path.join(FIX, "balanced_train_segments.csv"))
    out = tmp_path / "x.csv"
    write_segments_csv(str(out), segs)
    lines = out.read_text().splitlines()
    assert lines[2] == "# YTID, start_seconds, end_seconds, positive_labels"
    assert lines[3] == '--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"'
    assert read_segments_csv(str(out)) == segs


def test_unquoted_labels_error_names_file_and_line():
    path = os.path.join(FIX, "bad_segments_unquoted.csv")
    with pytest.raises(MetadataError, match=r"bad_segments_unquoted\.csv:4: label list must be double-quoted"):
        read_segments_csv(path)


def test_bad_class_labels(tmp_path):
    p = tmp_path / "labels.csv"
    p.write_text('index,mid,display_name\n0,/m/a,"A"\n2,/m/b,"B"\n')
    with pytest.raises(MetadataError, match="labels.csv:3: index 2 out of order"):
        read_class_labels(str(p))
    p.write_text("idx,mid\n")
    with pytest.raises(MetadataError, match="expected header"):
        read_class_labels(str(p))


def test_class_labels_roundtrip_and_unknown_mid(tmp_path):
    p = tmp_path / "labels.csv"
    write_class_labels(str(p), ["/m/a", "/m/b"], ['Say "hi", loudly', "B"])
    labels = read_class_labels(str(p))
    assert labels.names == ['Say "hi", loudly', "B"]
    assert labels.multi_hot(["/m/b"]).tolist() == [False, True]
    with pytest.raises(MetadataError, match="somefile: unknown label id '/m/zzz'"):
        labels.multi_hot(["/m/zzz"], source="somefile")


def test_qa_true_counts():
    rows = read_qa_true_counts(os.path.join(FIX, "qa_true_counts.csv"))
    assert [(r.mid, r.num_rated, r.num_true) for r in rows][:2] == [("/m/09x0r", 10, 10), ("/m/05zppz", 10, 9)]
    assert rows[2].quality is None and rows[3].quality == pytest.approx(0.3)
    q = label_quality(os.path.join(FIX, "qa_true_counts.csv"), read_class_labels(LABELS))
    assert q[0] == 1.0 and q[1] == pytest.approx(0.9) and np.isnan(q[2]) and np.isnan(q[100])


def test_black_list_formats():
    ids = read_black_list(os.path.join(FIX, "black_list.csv"))
    assert ids == {"--4gqARaEJE", "--BfvyPmVMo", "-0BIyqJj9ZU"}


def test_audio_name_roundtrip():
    assert audio_name_for("-0Gj8-vB1q4") == "Y-0Gj8-vB1q4.wav"
    assert ytid_from_audio_name(b"Y-0Gj8-vB1q4.wav") == "-0Gj8-vB1q4"
