"""The paper's six transfer datasets: official sources, layout parsers and protocols.

Each dataset is described once in :data:`TASKS` (a :class:`TaskInfo`): where its
archives come from (with checksums where they are published; ``None`` means
*unknown*, and the downloader then records the observed sha256), how long its
clips are, its metric, and the parser that turns the dataset's *own* on-disk
layout and metadata into a :class:`~panns_core.transfer.base.TransferData` with
the paper's protocol:

=================  ==========================================  =====================================
task key           layout read                                 protocol
=================  ==========================================  =====================================
esc50              ESC-50-master/meta/esc50.csv, audio/        5 folds of the ``fold`` column
dcase2019_task1    TAU-urban-acoustic-scenes-2019-development/  fold1_train (9,185) vs
                   evaluation_setup/fold1_{train,evaluate}.csv  fold1_evaluate (4,185)
dcase2018_task2    FSDKaggle2018.meta/*.csv,                   train_post_competition (9,473) vs
                   FSDKaggle2018.audio_{train,test}/           test_post_competition_scoring_clips
msos               Logsheet_Development.csv, Development/<cat>/ development (1,500) vs
                   Logsheet_EvaluationMaster.csv, Evaluation/   evaluation (500)
gtzan              genres/<genre>/<genre>.000NN.{wav,au}       10 folds: clip NN -> fold NN % 10 + 1
ravdess            Actor_XX/03-01-EE-II-SS-RR-AA.wav           4 folds by actor: 1-6, 7-12, 13-18, 19-24
=================  ==========================================  =====================================

Parsers only read metadata and check that files exist (missing files are
reported in ``skipped`` and left out); decoding, and hence the detection of
corrupt files such as GTZAN's ``jazz.00054.wav``, happens once in
:mod:`panns_core.transfer.audio`.
"""

from __future__ import annotations

import csv
import glob
import os
import re
from dataclasses import dataclass, field
from typing import Callable

from panns_core.transfer.base import (CROSS_VALIDATION, HOLDOUT, TEST, TRAIN, Clip, DatasetLayoutError,
                                      TransferData, require_dir, require_file)

# ----------------------------------------------------------------------------
# Sources
# ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable archive. ``md5``/``sha256`` of ``None`` means the checksum is unknown."""

    filename: str
    url: str | None
    md5: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class TaskInfo:
    """Everything fixed about one transfer task; see the module docstring."""

    key: str
    display_name: str
    metric: str
    protocol: str
    clip_seconds: float
    segment_seconds: float | None
    native_audio: str
    parse: Callable[[str], TransferData]
    remotes: tuple[RemoteFile, ...] = ()
    page: str = ""
    source_note: str = ""
    classes_num: int = 0
    clips_num: int = 0


_ZENODO_TAU = "https://zenodo.org/record/2589280/files/"
# md5 of each archive as published on the Zenodo record (also used by soundata/dcase_util).
_TAU_AUDIO_MD5 = (
    "aca4ebfd9ed03d5f747d6ba8c24bc728", "c4f170408ce77c8c70c532bf268d7be0", "c7214a07211f10f3250290d05e72c37e",
    "a6a62110f6699cf4432072acb1dffda6", "091a0b6d3c84b8e60e46940aa7d4a8a0", "114f4ca13e074391b98a1cfd8140de65",
    "5951dd2968f7a514e2afbe279c4f060d", "b0b63dc95b327e1509857c8d8a663cc3", "3c32a693a6b111ffb957be3c1dd22e9b",
    "0ffbf60006da520cc761fb74c878b98b", "599055d93b4c11057c29be2df54538d4", "98b8d162ff3665695c4c910e6c372cc8",
    "a356c08b1a5a21d433eba37ef87587f4", "f8969771e7faf7dd471d1cf78b0cf011", "4758c4b0fb7484faa632266e78850820",
    "a18acad9ede8ea76574216feb887f0bc", "1af7703484632f340da5c33662dc9632", "b67402bf3e08f4da394a7c18756c0fd2",
    "035db315f19106eb848b6f9b32bcc47c", "9cb28c74911bf8a3eadcf53f50a5b5d6", "0e44ed85c88ec036a9725b4dd1dfaea0",
)
_TAU_PREFIX = "TAU-urban-acoustic-scenes-2019-development"
TAU2019_REMOTES = tuple(
    RemoteFile(f"{_TAU_PREFIX}.audio.{i}.zip", f"{_ZENODO_TAU}{_TAU_PREFIX}.audio.{i}.zip", md5=md5)
    for i, md5 in enumerate(_TAU_AUDIO_MD5, start=1)
) + (RemoteFile(f"{_TAU_PREFIX}.meta.zip", f"{_ZENODO_TAU}{_TAU_PREFIX}.meta.zip",
                md5="09782f2097e4735687af73c44919329c"),)

_ZENODO_FSD = "https://zenodo.org/record/2552860/files/"
FSDKAGGLE2018_REMOTES = tuple(
    RemoteFile(name, _ZENODO_FSD + name)  # checksums: unknown to us (Zenodo lists them on the record page)
    for name in ("FSDKaggle2018.audio_train.zip", "FSDKaggle2018.audio_test.zip", "FSDKaggle2018.meta.zip")
)

# ESC-50: GitHub's archive of the master branch. The md5 is the one soundata pins; GitHub
# regenerates branch archives when the branch moves, so a mismatch means "new upstream commit".
ESC50_REMOTES = (RemoteFile("ESC-50-master.zip", "https://github.com/karoldvl/ESC-50/archive/master.zip",
                            md5="7771e4b9d86d0945acce719c7a59305a"),)

# GTZAN: the original UVic host is offline; the same archive is mirrored by the Marsyas
# organisation on the Hugging Face hub. md5 as pinned by mirdata for the original archive.
GTZAN_REMOTES = (RemoteFile("genres.tar.gz",
                            "https://huggingface.co/datasets/marsyas/gtzan/resolve/main/data/genres.tar.gz",
                            md5="5b3d6dddb579ab49814ab86dba69e7c7"),)

RAVDESS_REMOTES = (RemoteFile("Audio_Speech_Actors_01-24.zip",
                              "https://zenodo.org/record/1188976/files/Audio_Speech_Actors_01-24.zip",
                              md5="bc696df654c87fed845eb13823edef8a"),)

# MSoS: the archives are linked from the challenge page only; we could not confirm stable
# URLs or checksums, so the user places them (see docs/transfer.md) and we record sha256.
MSOS_REMOTES = (
    RemoteFile("Development.zip", None),
    RemoteFile("Evaluation.zip", None),
    RemoteFile("Logsheet_EvaluationMaster.csv", None),
)

# ----------------------------------------------------------------------------
# Small readers
# ----------------------------------------------------------------------------


def _require_utf8(path: str) -> None:
    """A table that is not UTF-8 (e.g. saved as Latin-1 by a spreadsheet) is refused, naming the line."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise DatasetLayoutError(
            f"{path}: line {line}: byte 0x{raw[exc.start]:02x} is not UTF-8 text; save the file as UTF-8 "
            "(spreadsheets: 'CSV UTF-8'; or iconv -f latin1 -t utf-8)") from None


def read_table(path: str, required: tuple[str, ...], delimiter: str = ",") -> list[dict]:
    """Rows of a CSV/TSV with a header; a clear error names the file and the missing columns."""
    require_file(path, "metadata table")
    _require_utf8(path)
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        if reader.fieldnames is None:
            raise DatasetLayoutError(f"{path}: empty file, expected a header with {list(required)}")
        header = [h.strip() for h in reader.fieldnames]
        missing = [c for c in required if c not in header]
        if missing:
            raise DatasetLayoutError(f"{path}: missing column(s) {missing}; header is {header}")
        rows = []
        for row in reader:
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            if any(row.values()):
                rows.append(row)
    return rows


def find_base(root: str, marker: str, names: tuple[str, ...]) -> str:
    """The folder under ``root`` (itself or one of ``names``, or any child) that contains ``marker``.

    Users extract archives in different places; this accepts the dataset folder
    itself or its parent.
    """
    candidates = [root] + [os.path.join(root, n) for n in names] + sorted(glob.glob(os.path.join(root, "*")))
    for base in candidates:
        if os.path.exists(os.path.join(base, marker)):
            return base
    raise DatasetLayoutError(f"{root}: cannot find {marker} (looked in {root} and its sub-folders)")


def _clip_or_skip(clips: list, skipped: list, path: str, **kwargs) -> None:
    if os.path.isfile(path):
        clips.append(Clip(path=os.path.abspath(path), **kwargs))
    else:
        skipped.append((path, "listed in the metadata but the audio file is missing"))


# ----------------------------------------------------------------------------
# Parsers
# ----------------------------------------------------------------------------


def parse_esc50(root: str) -> TransferData:
    """ESC-50: ``meta/esc50.csv`` (filename, fold, target, category, ..., src_file), ``audio/``.

    The class order is the ``target`` column; the dataset's own 5 folds are the
    protocol. ``src_file`` becomes the clip group (the dataset keeps fragments of
    one Freesound recording in one fold).
    """
    base = find_base(root, os.path.join("meta", "esc50.csv"), ("ESC-50-master",))
    meta = os.path.join(base, "meta", "esc50.csv")
    rows = read_table(meta, ("filename", "fold", "target", "category"))
    names: dict[int, str] = {}
    for row in rows:
        target = int(row["target"])
        if names.setdefault(target, row["category"]) != row["category"]:
            raise DatasetLayoutError(f"{meta}: target {target} has two categories "
                                     f"({names[target]!r}, {row['category']!r})")
    if sorted(names) != list(range(len(names))):
        raise DatasetLayoutError(f"{meta}: targets are not 0..{len(names) - 1}: {sorted(names)}")
    clips, skipped = [], []
    for row in rows:
        _clip_or_skip(clips, skipped, os.path.join(base, "audio", row["filename"]),
                      clip_id=row["filename"], label=int(row["target"]), fold=int(row["fold"]),
                      group=f"src{row.get('src_file', '')}" if row.get("src_file") else "")
    return TransferData("esc50", [names[i] for i in range(len(names))], clips, CROSS_VALIDATION,
                        metric="accuracy", clip_seconds=5.0, root=base, skipped=skipped)


def parse_dcase2019_task1(root: str) -> TransferData:
    """DCASE 2019 Task 1 subtask A: ``evaluation_setup/fold1_{train,evaluate}.csv`` (tab-separated).

    Each setup file has a header ``filename<TAB>scene_label`` with paths relative
    to the dataset folder (``audio/<scene>-<city>-<location>-<segment>-a.wav``).
    The official split is location-disjoint; clips in neither file are unused,
    as in the paper (9,185 train / 4,185 validation).
    """
    setup = os.path.join("evaluation_setup", "fold1_train.csv")
    base = find_base(root, setup, (_TAU_PREFIX,))
    split_rows = {}
    for side, name in ((TRAIN, "fold1_train.csv"), (TEST, "fold1_evaluate.csv")):
        split_rows[side] = read_table(os.path.join(base, "evaluation_setup", name),
                                      ("filename", "scene_label"), delimiter="\t")
    classes = sorted({r["scene_label"] for rows in split_rows.values() for r in rows})
    index = {c: i for i, c in enumerate(classes)}
    clips, skipped = [], []
    for side, rows in split_rows.items():
        for row in rows:
            _clip_or_skip(clips, skipped, os.path.join(base, row["filename"]), clip_id=row["filename"],
                          label=index[row["scene_label"]], fold=side)
    return TransferData("dcase2019_task1", classes, clips, HOLDOUT, metric="accuracy", clip_seconds=10.0,
                        root=base, skipped=skipped)


def parse_dcase2018_task2(root: str) -> TransferData:
    """FSDKaggle2018 (DCASE 2018 Task 2): the post-competition train and scored test lists.

    ``FSDKaggle2018.meta/train_post_competition.csv`` (fname, label, manually_verified, ...)
    with audio in ``FSDKaggle2018.audio_train/``; ``test_post_competition_scoring_clips.csv``
    (fname, label, usage, ...) with audio in ``FSDKaggle2018.audio_test/``. Clips keep their
    own length (0.3-30 s): training uses 4-s segments, predictions are averaged over
    segments, the metric is mAP@3.
    """
    meta_dir = "FSDKaggle2018.meta"
    base = find_base(root, os.path.join(meta_dir, "train_post_competition.csv"), ("FSDKaggle2018",))
    sides = ((TRAIN, "train_post_competition.csv", "FSDKaggle2018.audio_train"),
             (TEST, "test_post_competition_scoring_clips.csv", "FSDKaggle2018.audio_test"))
    tables = {side: (read_table(os.path.join(base, meta_dir, name), ("fname", "label")), audio)
              for side, name, audio in sides}
    classes = sorted({r["label"] for rows, _ in tables.values() for r in rows})
    index = {c: i for i, c in enumerate(classes)}
    clips, skipped = [], []
    for side, (rows, audio_dir) in tables.items():
        for row in rows:
            _clip_or_skip(clips, skipped, os.path.join(base, audio_dir, row["fname"]),
                          clip_id=f"{side}/{row['fname']}", label=index[row["label"]], fold=side,
                          meta={"manually_verified": row.get("manually_verified", "")})
    return TransferData("dcase2018_task2", classes, clips, HOLDOUT, metric="mAP@3", clip_seconds=30.0,
                        segment_seconds=4.0, root=base, skipped=skipped)


def parse_msos(root: str) -> TransferData:
    """Making Sense of Sounds: development and evaluation log sheets.

    ``Logsheet_Development.csv`` has columns ``Category, Event, File`` with audio
    at ``Development/<Category>/<File>``; the evaluation labels released after the
    challenge are ``Logsheet_EvaluationMaster.csv`` (same columns) with audio at
    ``Evaluation/<File>``. Classes: Effects, Human, Music, Nature, Urban.
    """
    base = find_base(root, "Logsheet_Development.csv", ("MSoS", "MSoS_challenge_2018_Development_v1-00"))
    dev_rows = read_table(os.path.join(base, "Logsheet_Development.csv"), ("Category", "Event", "File"))
    try:
        eval_base = find_base(root, "Logsheet_EvaluationMaster.csv", ("MSoS",))
    except DatasetLayoutError:
        raise DatasetLayoutError(f"{root}: Logsheet_EvaluationMaster.csv (the evaluation labels) not found; "
                                 "download it from the challenge page next to the Evaluation folder") from None
    eval_rows = read_table(os.path.join(eval_base, "Logsheet_EvaluationMaster.csv"), ("Category", "Event", "File"))
    classes = sorted({r["Category"] for r in dev_rows + eval_rows})
    index = {c: i for i, c in enumerate(classes)}
    dev_audio = require_dir(os.path.join(base, "Development"), "development audio")
    eval_audio = require_dir(os.path.join(eval_base, "Evaluation"), "evaluation audio")
    clips, skipped = [], []
    for row in dev_rows:
        _clip_or_skip(clips, skipped, os.path.join(dev_audio, row["Category"], row["File"]),
                      clip_id=f"dev/{row['Category']}/{row['File']}", label=index[row["Category"]],
                      fold=TRAIN, meta={"event": row["Event"]})
    for row in eval_rows:
        _clip_or_skip(clips, skipped, os.path.join(eval_audio, row["File"]), clip_id=f"eval/{row['File']}",
                      label=index[row["Category"]], fold=TEST, meta={"event": row["Event"]})
    return TransferData("msos", classes, clips, HOLDOUT, metric="accuracy", clip_seconds=4.0, root=base,
                        skipped=skipped)


GTZAN_NAME = re.compile(r"^(?P<genre>[a-z]+)\.(?P<number>\d{5})\.(?:wav|au)$")


def gtzan_fold(number: int) -> int:
    """GTZAN's 10-fold protocol: clip ``NNNNN`` goes to fold ``NNNNN % 10 + 1``.

    This equals the official ``panns_transfer_to_gtzan`` assignment (sorted
    position modulo 10) when all 1,000 files are present, and stays stable when a
    corrupt file is left out.
    """
    return int(number) % 10 + 1


def parse_gtzan(root: str) -> TransferData:
    """GTZAN: ``genres/<genre>/<genre>.000NN.wav`` (or ``.au`` in the original archive)."""
    base = None
    for name in ("genres", "genres_original", os.path.join("Data", "genres_original")):
        if os.path.isdir(os.path.join(root, name)):
            base = os.path.join(root, name)
            break
    if base is None:
        base = root  # the genre folders themselves
    genres = sorted(d for d in os.listdir(require_dir(base, "GTZAN genres folder"))
                    if os.path.isdir(os.path.join(base, d)))
    if not genres:
        raise DatasetLayoutError(f"{base}: no genre folders (expected genres/<genre>/<genre>.000NN.wav)")
    clips, skipped = [], []
    for label, genre in enumerate(genres):
        for name in sorted(os.listdir(os.path.join(base, genre))):
            path = os.path.join(base, genre, name)
            m = GTZAN_NAME.match(name)
            if not m or m.group("genre") != genre:
                if not name.startswith("."):
                    skipped.append((path, f"name does not follow {genre}/{genre}.000NN.wav"))
                continue
            clips.append(Clip(f"{genre}/{name}", os.path.abspath(path), label, gtzan_fold(int(m.group("number")))))
    return TransferData("gtzan", genres, clips, CROSS_VALIDATION, metric="accuracy", clip_seconds=30.0,
                        root=base, skipped=skipped)


RAVDESS_EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
RAVDESS_NAME = re.compile(r"^(?P<modality>\d\d)-(?P<channel>\d\d)-(?P<emotion>\d\d)-(?P<intensity>\d\d)-"
                          r"(?P<statement>\d\d)-(?P<repetition>\d\d)-(?P<actor>\d\d)\.wav$")


def ravdess_fold(actor: int, folds: int = 4, actors: int = 24) -> int:
    """Actor-disjoint folds: actors 1-6 -> 1, 7-12 -> 2, 13-18 -> 3, 19-24 -> 4 (3 male + 3 female each)."""
    if not 1 <= actor <= actors:
        raise ValueError(f"RAVDESS actor {actor} outside 1..{actors}")
    return (actor - 1) // (actors // folds) + 1


def parse_ravdess(root: str) -> TransferData:
    """RAVDESS speech audio: ``Actor_XX/03-01-EE-II-SS-RR-XX.wav``.

    Name fields: modality (03 audio-only), vocal channel (01 speech), emotion
    (01-08, :data:`RAVDESS_EMOTIONS`), intensity, statement, repetition, actor.
    Files of another modality or channel, or whose actor field disagrees with
    their folder, are reported and skipped.
    """
    actor_dirs = sorted(glob.glob(os.path.join(root, "Actor_*")) + glob.glob(os.path.join(root, "*", "Actor_*")))
    if not actor_dirs:
        raise DatasetLayoutError(f"{root}: no Actor_XX folders (expected Audio_Speech_Actors_01-24.zip extracted)")
    clips, skipped = [], []
    for actor_dir in actor_dirs:
        folder_actor = os.path.basename(actor_dir).split("_")[-1]
        for name in sorted(os.listdir(actor_dir)):
            path = os.path.join(actor_dir, name)
            m = RAVDESS_NAME.match(name)
            if not m:
                skipped.append((path, "name does not follow MM-CC-EE-II-SS-RR-AA.wav"))
                continue
            if m.group("modality") != "03" or m.group("channel") != "01":
                skipped.append((path, f"modality {m.group('modality')} / channel {m.group('channel')}: "
                                      "not audio-only speech (03-01)"))
                continue
            emotion, actor = int(m.group("emotion")), int(m.group("actor"))
            if not 1 <= emotion <= len(RAVDESS_EMOTIONS):
                skipped.append((path, f"emotion code {emotion:02d} outside 01-08"))
                continue
            if m.group("actor") != folder_actor:
                skipped.append((path, f"actor {m.group('actor')} in the name but folder {os.path.basename(actor_dir)}"))
                continue
            clips.append(Clip(f"Actor_{folder_actor}/{name}", os.path.abspath(path), emotion - 1,
                              ravdess_fold(actor), group=f"actor{actor:02d}",
                              meta={"intensity": int(m.group("intensity")), "actor": actor}))
    return TransferData("ravdess", list(RAVDESS_EMOTIONS), clips, CROSS_VALIDATION, metric="accuracy",
                        clip_seconds=4.0, root=root, skipped=skipped)


# ----------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------

TASKS: dict[str, TaskInfo] = {
    "esc50": TaskInfo("esc50", "ESC-50", "accuracy", CROSS_VALIDATION, 5.0, None, "44.1 kHz mono WAV, 5 s",
                      parse_esc50, ESC50_REMOTES, "https://github.com/karolpiczak/ESC-50", classes_num=50,
                      clips_num=2000),
    "dcase2019_task1": TaskInfo("dcase2019_task1", "DCASE 2019 Task 1", "accuracy", HOLDOUT, 10.0, None,
                                "48 kHz stereo WAV, 10 s", parse_dcase2019_task1, TAU2019_REMOTES,
                                "https://zenodo.org/record/2589280", classes_num=10, clips_num=9185 + 4185),
    "dcase2018_task2": TaskInfo("dcase2018_task2", "DCASE 2018 Task 2", "mAP@3", HOLDOUT, 30.0, 4.0,
                                "44.1 kHz mono WAV, 0.3-30 s", parse_dcase2018_task2, FSDKAGGLE2018_REMOTES,
                                "https://zenodo.org/record/2552860", classes_num=41, clips_num=9473 + 1600),
    "msos": TaskInfo("msos", "MSoS", "accuracy", HOLDOUT, 4.0, None, "44.1 kHz WAV, 4 s", parse_msos,
                     MSOS_REMOTES, "https://cvssp.org/projects/making_sense_of_sounds/site/challenge/",
                     source_note="archives linked from the challenge page; place them in the data folder",
                     classes_num=5, clips_num=2000),
    "gtzan": TaskInfo("gtzan", "GTZAN", "accuracy", CROSS_VALIDATION, 30.0, None, "22.05 kHz mono, 30 s",
                      parse_gtzan, GTZAN_REMOTES, "http://marsyas.info/downloads/datasets.html", classes_num=10,
                      clips_num=1000),
    "ravdess": TaskInfo("ravdess", "RAVDESS", "accuracy", CROSS_VALIDATION, 4.0, None, "48 kHz mono WAV, ~3-5 s",
                        parse_ravdess, RAVDESS_REMOTES, "https://zenodo.org/record/1188976", classes_num=8,
                        clips_num=1440),
}
TASK_KEYS = tuple(TASKS)


def task_info(task: str) -> TaskInfo:
    try:
        return TASKS[task]
    except KeyError:
        raise ValueError(f"unknown transfer task {task!r}; known: {list(TASKS)}") from None


def parse_task(task: str, root: str) -> TransferData:
    """Parse ``root`` with the parser of ``task`` (one of :data:`TASK_KEYS`)."""
    if not os.path.isdir(root):
        raise DatasetLayoutError(f"{root}: data folder for {task} does not exist")
    return task_info(task).parse(root)


# ----------------------------------------------------------------------------
# Download
# ----------------------------------------------------------------------------


@dataclass
class DownloadReport:
    """What :func:`download_task` did: archives fetched, their observed sha256, what is missing."""

    task: str
    root: str
    archives: dict = field(default_factory=dict)
    manual: list = field(default_factory=list)


def download_task(task: str, root: str, *, extract: bool = True, progress: bool = True) -> DownloadReport:
    """Fetch (resumably) and safely extract the official archives of ``task`` into ``root``.

    Every archive is verified against its published md5 where we know one;
    otherwise :func:`panns_core.download.download` records the observed sha256,
    which this report and ``<root>/checksums.json`` keep. Archives without a URL
    (MSoS) must be placed in ``root`` by the user; they are still extracted.
    """
    import json

    from panns_core import download as dl

    info = task_info(task)
    os.makedirs(root, exist_ok=True)
    report = DownloadReport(task, root)
    for remote in info.remotes:
        dest = os.path.join(root, remote.filename)
        if remote.url is None:
            if not os.path.exists(dest):
                report.manual.append(f"{remote.filename}: download it from {info.page} into {root}")
                continue
        else:
            dl.download(remote.url, dest, md5=remote.md5, sha256=remote.sha256, resume=True, progress=progress)
        report.archives[remote.filename] = {"url": remote.url, "md5": remote.md5, "sha256": _sha256(dest)}
        if extract and remote.filename.endswith((".zip", ".tar.gz", ".tgz", ".tar")):
            dl.safe_extract(dest, root)
    with open(os.path.join(root, "checksums.json"), "w") as f:
        json.dump({"task": task, "archives": report.archives, "manual": report.manual}, f, indent=1)
    return report


def _sha256(path: str) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
