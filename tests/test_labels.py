"""The 527 AudioSet labels ship with the package and are validated strictly."""

import csv
import socket

import pytest

from panns_core import labels
from panns_core.labels import LabelsError, generic_labels, labels_for, load_labels


def test_packaged_labels_are_the_audioset_list():
    assert len(labels.LABELS) == 527 and len(labels.IDS) == 527
    assert labels.LABELS[0] == "Speech" and labels.IDS[0] == "/m/09x0r"
    assert labels.LABELS[-1] == "Field recording"
    assert labels.id_to_index["/m/09x0r"] == 0
    assert labels.index_to_label[137] == "Music"
    assert len(set(labels.LABELS)) == 527 and len(set(labels.IDS)) == 527


def test_loading_needs_no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access while loading labels")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    assert len(load_labels()) == 527


def _write(path, rows, header=("index", "mid", "display_name")):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def _rows(n=527):
    return [(i, f"/m/x{i}", f"name {i}") for i in range(n)]


def test_valid_custom_file_round_trips(tmp_path):
    loaded = load_labels(_write(tmp_path / "ok.csv", _rows()))
    assert loaded.names[5] == "name 5" and loaded.ids[526] == "/m/x526"


@pytest.mark.parametrize(
    "rows, message",
    [
        (_rows(526), "expected 527 label rows, found 526"),
        (_rows(0), "expected 527 label rows, found 0"),
        (_rows()[:-1] + [(526, "/m/x0", "name 526")], "duplicate mid"),
        (_rows()[:-1] + [(526, "/m/x526", "name 0")], "duplicate display_name"),
        ([(1, "/m/a", "a")] + _rows()[1:], "index 1, expected 0"),
    ],
)
def test_bad_files_raise_naming_the_file(tmp_path, rows, message):
    path = _write(tmp_path / "bad.csv", rows)
    with pytest.raises(LabelsError, match=message) as info:
        load_labels(path)
    assert str(path) in str(info.value)


def test_missing_file_and_wrong_header(tmp_path):
    with pytest.raises(LabelsError, match="not found"):
        load_labels(tmp_path / "nope.csv")
    path = _write(tmp_path / "hdr.csv", _rows(), header=("i", "mid", "name"))
    with pytest.raises(LabelsError, match="lacks column"):
        load_labels(path)


def test_other_class_counts_need_explicit_generic_names():
    assert labels_for(527).names == labels.LABELS
    with pytest.raises(LabelsError, match="10 output classes"):
        labels_for(10)
    assert labels_for(10, allow_generic=True).names == tuple(f"class_{i}" for i in range(10))
    with pytest.raises(LabelsError, match="at least one class"):
        generic_labels(0)
