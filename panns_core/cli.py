"""``panns``: tag, embed and detect sound events with released PANNs checkpoints.

::

    panns tag dog.wav                                   # top-10 AudioSet labels (Cnn14)
    panns sed street.flac --events events.csv --plot-dir plots/
    panns embed clips/ --output embeddings.h5
    panns models                                        # registry + released checkpoints
    panns download Cnn14                                # fetch once into the cache
    panns finetune my_sounds/labels.csv --strategy finetune --checkpoint Cnn14 --output runs/mine
    panns tag new.wav --checkpoint runs/mine/model.pth  # your own labels

Exit status (:data:`EXIT_CODES`): 0 when every input was processed; 3 when some inputs
were skipped (each listed on stderr as ``skipped <file>: <reason>`` and optionally in
``--failures``) and the others processed and written; 1 when no input could be
processed; 2 for usage errors, a model/checkpoint that cannot be loaded or an output
that cannot be written (one line ``panns: error: ...``); 130 when interrupted (Ctrl-C;
``panns finetune`` saves its state first and a rerun of the same command resumes).
Everything printed that comes from files (paths, label names, reasons) has its control
characters escaped, so a crafted file name or checkpoint cannot forge terminal output.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import sys

DEFAULT_CHECKPOINTS = {"tag": "Cnn14", "embed": "Cnn14", "sed": "Cnn14_DecisionLevelMax"}

EXIT_OK, EXIT_NOTHING_SUCCEEDED, EXIT_USAGE, EXIT_SOME_SKIPPED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_CODES = {
    EXIT_OK: "every input processed",
    EXIT_NOTHING_SUCCEEDED: "no input could be processed",
    EXIT_USAGE: "usage error, unloadable model/checkpoint, unwritable output",
    EXIT_SOME_SKIPPED: "some inputs skipped (listed on stderr), the others processed and written",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C); panns finetune resumes when rerun",
}


class CliError(Exception):
    """An error the user can fix; printed as ``panns: error: ...`` with exit status 2."""


_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Bidirectional overrides and isolates reorder what the terminal shows (a label can hide text).
_BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def printable(text) -> str:
    """``text`` safe for a terminal: control and bidi characters escaped (``\\x1b``, ``\\n``, ``\\u202e``).

    File names, label names from a checkpoint or CSV and decoder messages reach the
    terminal through this, so an ANSI escape or a newline in them cannot move the
    cursor or forge an output line. Undecodable bytes of a file name (Python's
    surrogate escapes) are shown as ``\\xNN`` instead of failing to print.
    """
    import unicodedata

    out = []
    for ch in str(text):
        if ch in _NAMED_ESCAPES:
            out.append(_NAMED_ESCAPES[ch])
        elif "\udc80" <= ch <= "\udcff":
            out.append(f"\\x{ord(ch) - 0xdc00:02x}")
        elif ch in _BIDI or unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp"):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def _err(*parts) -> None:
    print(*(printable(p) for p in parts), file=sys.stderr)


class _PrintableFormatter(logging.Formatter):
    """Library warnings reach the terminal escaped too (they may quote file names)."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


def _escape_log_output() -> None:
    root = logging.getLogger()
    if not root.handlers:  # an application (or pytest) that configured logging keeps its own
        handler = logging.StreamHandler()
        handler.setLevel(logging.WARNING)
        handler.setFormatter(_PrintableFormatter("%(levelname)s: %(message)s"))
        root.addHandler(handler)


def _positive(kind, zero: bool = False):
    """An argparse type: a finite number of ``kind`` (int/float) that must be > 0 (>= 0 with ``zero``)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {'whole ' if kind is int else ''}number, got {text!r}")
        if not (0 <= value if zero else 0 < value) or not value < float("inf"):  # also NaN
            raise argparse.ArgumentTypeError(f"must be {'>=' if zero else '>'} 0, got {text}")
        return value

    parse.__name__ = f"{'non-negative' if zero else 'positive'} {kind.__name__}"
    return parse


POSITIVE_INT, POSITIVE_FLOAT, NON_NEGATIVE_FLOAT = _positive(int), _positive(float), _positive(float, zero=True)


# --------------------------------------------------------------------------- parser


def _common_model_options(p: argparse.ArgumentParser, task: str) -> None:
    g = p.add_argument_group("model")
    g.add_argument("-c", "--checkpoint", default=None,
                   help=f"released checkpoint (model or file name) or local .pth path "
                        f"(default: {DEFAULT_CHECKPOINTS[task]})")
    g.add_argument("--model", default=None,
                   help="model class of a local checkpoint when it cannot be inferred")
    g.add_argument("--untrained", metavar="MODEL", default=None,
                   help="use MODEL with random weights instead of a checkpoint (outputs are "
                        "meaningless; for trying the tool and for tests)")
    g.add_argument("--cache-dir", default=None,
                   help="checkpoint cache (default: $PANNS_CACHE or ~/.cache/panns)")
    g.add_argument("--offline", action="store_true",
                   help="never download: use the cached checkpoint or fail with a message")
    g.add_argument("--labels", default=None, help="class_labels_indices.csv for a non-AudioSet head")
    g.add_argument("--generic-labels", action="store_true",
                   help="name classes class_<i> when the model does not have 527 outputs")
    r = p.add_argument_group("processing")
    r.add_argument("--batch-size", type=POSITIVE_INT, default=8, help="windows per forward pass (default 8)")
    r.add_argument("--chunk-seconds", type=POSITIVE_FLOAT, default=None,
                   help="window length for long files (default 10 s, the AudioSet clip length; "
                        "a `panns finetune` checkpoint: its training clip length)")
    r.add_argument("--hop-seconds", type=POSITIVE_FLOAT, default=None,
                   help="window hop (default: the window length, no overlap)")
    r.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="auto (default) = bf16 where the CPU/GPU runs bfloat16 natively (AVX512-BF16/"
                        "AMX), else fp32; bf16 has a small accuracy cost, see docs/inference.md")
    r.add_argument("--compile", action="store_true",
                   help="torch.compile the model (first batch compiles: seconds; inductor caches it on disk)")
    r.add_argument("--device", default="cpu", help="torch device (default cpu)")
    r.add_argument("--threads", type=POSITIVE_INT, default=None, help="torch CPU threads")
    r.add_argument("--failures", default=None, help="write skipped files and reasons to this CSV")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress or result printing")
    p.add_argument("inputs", nargs="+", help="audio files or folders (any format ffmpeg/libsndfile reads)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="panns", description="Audio tagging, embeddings and sound event detection with PANNs.",
        epilog="Exit status: 0 every input processed; 3 some skipped (listed), the rest processed; 1 none "
               "processed; 2 usage error, unloadable model or unwritable output; 130 interrupted.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("tag", help="top-k AudioSet labels per file")
    _common_model_options(p, "tag")
    p.add_argument("-k", "--top-k", type=POSITIVE_INT, default=10, help="labels per file (default 10)")
    p.add_argument("-o", "--output", default=None, help="CSV: file, rank, label, mid, index, score")
    p.add_argument("--probabilities", default=None,
                   help="also save all clipwise probabilities (.npy + .names.txt, or .h5)")

    p = sub.add_parser("embed", help="embedding vector per file (mean over 10-s windows)")
    _common_model_options(p, "embed")
    p.add_argument("-o", "--output", required=True, help="output .npy (plus .names.txt) or .h5")

    p = sub.add_parser("sed", help="framewise sound event detection (DecisionLevel models)")
    _common_model_options(p, "sed")
    p.add_argument("--events", default=None, help="event table CSV: file, onset, offset, label, index, score")
    p.add_argument("--threshold", type=float, default=0.5, help="default class threshold (0.5)")
    p.add_argument("--class-threshold", action="append", default=[], metavar="LABEL=VALUE",
                   help="per-class threshold by display name or mid (repeatable)")
    p.add_argument("--thresholds-csv", default=None, help="CSV with columns label,threshold")
    p.add_argument("--min-duration", type=float, default=0.0, help="drop events shorter than this (s)")
    p.add_argument("--min-gap", type=float, default=0.0, help="merge events separated by at most this (s)")
    p.add_argument("--plot-dir", default=None, help="save <file>.png: spectrogram + top classes over time")
    p.add_argument("--plot-top-k", type=int, default=10, help="classes shown in the plot (default 10)")
    p.add_argument("--framewise-dir", default=None, help="save <file>.framewise.npy (frames x classes)")

    p = sub.add_parser("models", help="list the registered models and released checkpoints")
    p.add_argument("--released", action="store_true", help="only models with a released checkpoint")

    p = sub.add_parser("finetune", help="train a PANN on your labelled audio; report + checkpoint",
                       description="Fine-tune (or train from scratch, or train a head on frozen embeddings of) "
                                   "a PANN on LABELS.csv (filename,label[,fold]; see docs/transfer.md). Writes "
                                   "predictions.csv, per_class.csv, confusion_matrix.png, training_curve.png, "
                                   "result.json and model.pth (for `panns tag --checkpoint`) to --output.")
    p.add_argument("labels_csv", metavar="LABELS.csv", help="filename,label[,fold] (a folder: its labels.csv)")
    p.add_argument("--strategy", choices=("scratch", "finetune", "freeze_l1", "freeze_l3"), default="finetune",
                   help="scratch: random init; finetune: whole pretrained model; freeze_l1/freeze_l3: "
                        "1 or 3 layers on frozen embeddings (default finetune)")
    p.add_argument("--backbone", default=None,
                   help="model name (default: the checkpoint's model, else Cnn14)")
    p.add_argument("-c", "--checkpoint", default=None,
                   help="pretrained weights: released name (e.g. Cnn14) or .pth path (required unless scratch)")
    p.add_argument("--cache-dir", default=None, help="checkpoint cache (default: $PANNS_CACHE or ~/.cache/panns)")
    p.add_argument("--offline", action="store_true", help="never download the checkpoint")
    p.add_argument("--iterations", type=POSITIVE_INT, default=1000, help="optimiser steps (default 1000)")
    p.add_argument("--batch-size", type=POSITIVE_INT, default=16, help="clips per step (default 16)")
    p.add_argument("-o", "--output", required=True,
                   help="report folder: created; a folder holding an interrupted run with the same settings "
                        "is resumed, one holding a finished run is refused unless --overwrite")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the finished (or differently configured, interrupted) run in --output")
    p.add_argument("--clip-seconds", type=POSITIVE_FLOAT, default=None,
                   help="clip length (default: 95th percentile of the durations, rounded up to whole hops, "
                        "at most 10 s)")
    p.add_argument("--learning-rate", type=float, default=None,
                   help="the backbone's rate for scratch/finetune, the head's for freeze_l1/l3 "
                        "(default: per strategy, docs/transfer.md)")
    p.add_argument("--new-head-learning-rate", type=float, default=None,
                   help="finetune/scratch: the new head's own rate (default: per strategy, docs/transfer.md)")
    p.add_argument("--warmup-fraction", type=float, default=None, help="share of steps with linear warm-up")
    p.add_argument("--schedule", choices=("constant", "cosine"), default=None, help="rate after warm-up")
    p.add_argument("--spec-augment", choices=("scaled", "official", "off"), default="scaled",
                   help="scaled: time stripes scaled to the clip length (default); official: 64 frames")
    p.add_argument("--pad", choices=("repeat", "zeros"), default="repeat",
                   help="clips shorter than --clip-seconds: repeat them end to end (default) or pad with "
                        "silence; `panns tag` with the saved model pads the same way")
    p.add_argument("--precise-bn", action=argparse.BooleanOptionalAction, default=None,
                   help="recompute BatchNorm statistics over the training clips before each evaluation "
                        "(default: on for scratch and finetune; frozen strategies have nothing to recompute)")
    p.add_argument("--evaluations", type=POSITIVE_INT, default=10, help="held-out evaluations during training")
    p.add_argument("--save-every", type=NON_NEGATIVE_FLOAT, default=300.0, metavar="SECONDS",
                   help="save the training state (OUTPUT/resume.pt) this often, besides on Ctrl-C and at the end; "
                        "0 = after every step (default 300)")
    p.add_argument("--device", default="auto", help="torch device: auto (CUDA when present), cpu, cuda ...")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=POSITIVE_INT, default=None, help="torch CPU threads")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or messages")

    p = sub.add_parser("download", help="download a released checkpoint into the cache")
    p.add_argument("names", nargs="+", help="model or checkpoint file name(s), e.g. Cnn14")
    p.add_argument("--cache-dir", default=None, help="default: $PANNS_CACHE or ~/.cache/panns")
    return parser


# --------------------------------------------------------------------------- helpers


def _say(args, *parts) -> None:
    if not getattr(args, "quiet", False):
        print(*(printable(p) for p in parts))


def _check_output_file(path: str | None, option: str) -> None:
    """Refuse an output file that cannot be written, before any work is done."""
    if not path:
        return
    if os.path.isdir(path):
        raise CliError(f"{option} {path}: is a folder; give a file name")
    _check_output_folder(os.path.dirname(os.path.abspath(path)), option, shown=path)


def _check_output_folder(folder: str | None, option: str, shown: str | None = None) -> None:
    if not folder:
        return
    shown = shown or folder
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise CliError(f"{option} {shown}: {folder} exists and is not a folder")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise CliError(f"{option} {shown}: cannot create the folder {folder} ({exc.strerror}); "
                       "choose a writable location") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CliError(f"{option} {shown}: the folder {folder} is not writable; choose a writable location")


def _load_model(args, task: str):
    from .inference import InferenceError, Pretrained
    from .labels import LabelsError

    options = dict(batch_size=args.batch_size, chunk_seconds=args.chunk_seconds,
                   hop_seconds=args.hop_seconds, precision=args.precision, device=args.device,
                   compile=args.compile)
    options = {k: v for k, v in options.items() if v is not None or k == "hop_seconds"}
    try:
        if args.untrained:
            if args.checkpoint:
                raise CliError("--untrained and --checkpoint exclude each other")
            _err(f"WARNING: {args.untrained} with RANDOM weights (--untrained): the labels and "
                 "scores below are meaningless.")
            return Pretrained.untrained(args.untrained, allow_generic_labels=args.generic_labels, **options)
        return Pretrained.load(args.checkpoint or DEFAULT_CHECKPOINTS[task], model=args.model,
                               cache_dir=args.cache_dir, download=not args.offline,
                               labels_path=args.labels, allow_generic_labels=args.generic_labels,
                               progress=not args.quiet, **options)
    except (InferenceError, LabelsError, ValueError, KeyError) as exc:
        # str(KeyError) adds quotes around the message; other errors are printed as they are.
        raise CliError(exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)) from None


def _report_failures(args, model) -> None:
    failures = getattr(model, "last_failures", [])
    for failure in failures:
        _err(f"skipped {failure.path}: {failure.reason}")
    if args.failures:
        from .fsutil import atomic_write

        with atomic_write(args.failures, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["file", "reason"])
            writer.writerows([(x.path, x.reason) for x in failures])


def _exit_status(results, model) -> int:
    failures = len(getattr(model, "last_failures", []))
    if not results:
        _err(f"panns: no input could be processed ({failures} skipped)")
        return EXIT_NOTHING_SUCCEEDED
    if failures:
        _err(f"panns: {len(results)} processed, {failures} skipped (exit status {EXIT_SOME_SKIPPED})")
        return EXIT_SOME_SKIPPED
    return EXIT_OK


def _write_csv(df, path) -> None:
    from .fsutil import atomic_write

    with atomic_write(path, "w", newline="") as f:
        df.to_csv(f, index=False)


def _output_stem(path: str, used: set) -> str:
    """A file name stem for per-input outputs, unique within one run."""
    stem = os.path.splitext(os.path.basename(path))[0] or "audio"
    candidate, n = stem, 1
    while candidate in used:
        n += 1
        candidate = f"{stem}_{n}"
    used.add(candidate)
    return candidate


def _write_output_names(names: list, folder: str, args) -> None:
    """``<folder>/outputs.csv``: input path -> output stem, so renamed outputs (``x.wav``
    and ``x.flac`` -> ``x``, ``x_2``) can be traced back to their input."""
    import pandas as pd

    _write_csv(pd.DataFrame(names, columns=["input", "output"]), os.path.join(folder, "outputs.csv"))
    renamed = [(p, s) for p, s in names if s != (os.path.splitext(os.path.basename(p))[0] or "audio")]
    if renamed:
        _err(f"note: {len(renamed)} output name(s) collided and were suffixed (e.g. {renamed[0][0]} -> "
             f"{renamed[0][1]}); see {os.path.join(folder, 'outputs.csv')}")


# --------------------------------------------------------------------------- commands


def cmd_tag(args) -> int:
    from .inference import save_probabilities, tags_table

    if args.probabilities and os.path.splitext(args.probabilities)[1].lower() not in (".npy", ".h5", ".hdf5"):
        raise CliError(f"--probabilities {args.probabilities}: use a .npy or .h5 file name")
    _check_output_file(args.output, "--output")
    _check_output_file(args.probabilities, "--probabilities")
    _check_output_file(args.failures, "--failures")
    model = _load_model(args, "tag")
    _say(args, f"# {model.describe()}")
    results = model.tag(args.inputs)
    _report_failures(args, model)
    for result in results:
        _say(args, f"{result.path}  ({result.duration_s:.2f} s, {len(result.chunk_starts_s)} window(s))")
        for label, score in result.top(args.top_k):
            _say(args, f"  {score:.3f}  {label}")
    if args.output and results:
        _write_csv(tags_table(results, args.top_k), args.output)
        _say(args, f"wrote {args.output}")
    if args.probabilities and results:
        written = save_probabilities(results, args.probabilities, model_name=model.model_name,
                                     checkpoint=model.checkpoint)
        _say(args, "wrote " + ", ".join(written))
    return _exit_status(results, model)


def cmd_embed(args) -> int:
    from .inference import InferenceError, save_embeddings

    if os.path.splitext(args.output)[1].lower() not in (".npy", ".h5", ".hdf5"):
        raise CliError(f"--output {args.output}: use a .npy or .h5 file name")
    _check_output_file(args.output, "--output")
    _check_output_file(args.failures, "--failures")
    model = _load_model(args, "embed")
    _say(args, f"# {model.describe()}")
    try:
        results = model.embed(args.inputs)
    except InferenceError as exc:
        raise CliError(str(exc)) from None
    _report_failures(args, model)
    if results:
        written = save_embeddings(results, args.output, model_name=model.model_name,
                                  checkpoint=model.checkpoint)
        dim = results[0].embedding.shape[0]
        _say(args, f"wrote {len(results)} embeddings of size {dim}: " + ", ".join(written))
    return _exit_status(results, model)


def _thresholds(args) -> dict:
    thresholds: dict = {"default": args.threshold}
    if args.thresholds_csv:
        try:
            with open(args.thresholds_csv, newline="", encoding="utf-8") as f:
                for row in csv.DictReader(f):
                    thresholds[row["label"]] = float(row["threshold"])
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise CliError(f"{args.thresholds_csv}: need columns label,threshold with numbers ({exc})") from None
    for item in args.class_threshold:
        label, sep, value = item.rpartition("=")
        try:
            thresholds[label] = float(value)
        except ValueError:
            sep = ""
        if not sep or not label:
            raise CliError(f"--class-threshold {item!r}: expected LABEL=VALUE, e.g. Speech=0.3")
    return thresholds


def cmd_sed(args) -> int:
    import numpy as np
    import pandas as pd

    from .inference import InferenceError, plot_sed

    thresholds = _thresholds(args)
    _check_output_file(args.events, "--events")
    _check_output_file(args.failures, "--failures")
    _check_output_folder(args.plot_dir, "--plot-dir")
    _check_output_folder(args.framewise_dir, "--framewise-dir")
    model = _load_model(args, "sed")
    _say(args, f"# {model.describe()}")
    try:
        results = model.sed(args.inputs, keep_waveform=bool(args.plot_dir))
    except InferenceError as exc:
        raise CliError(str(exc)) from None
    _report_failures(args, model)
    tables, stems, names = [], set(), []
    for result in results:
        try:
            table = result.events(thresholds, min_duration=args.min_duration, min_gap=args.min_gap)
        except KeyError as exc:
            # str(KeyError) adds quotes around the message.
            raise CliError(exc.args[0] if exc.args else str(exc)) from None
        tables.append(table)
        _say(args, f"{result.path}  ({result.duration_s:.2f} s, {result.framewise.shape[0]} frames, "
                   f"{len(table)} event(s))")
        for row in table.itertuples():
            _say(args, f"  {row.onset:7.2f} {row.offset:7.2f}  {row.score:.3f}  {row.label}")
        stem = _output_stem(result.path, stems)
        names.append((result.path, stem))
        if args.framewise_dir:
            from .fsutil import atomic_path

            with atomic_path(os.path.join(args.framewise_dir, f"{stem}.framewise.npy"), suffix=".npy") as tmp:
                np.save(tmp, result.framewise)
        if args.plot_dir:
            plot_sed(result, os.path.join(args.plot_dir, f"{stem}.png"), top_k=args.plot_top_k)
            result.waveform = None
    for folder in dict.fromkeys(d for d in (args.framewise_dir, args.plot_dir) if d):
        _write_output_names(names, folder, args)
    if args.events and results:
        _write_csv(pd.concat(tables, ignore_index=True), args.events)
        _say(args, f"wrote {args.events}")
    return _exit_status(results, model)


def cmd_models(args) -> int:
    from .checkpoints import released_checkpoint
    from .models import list_models, model_info

    rows = []
    for name in list_models():
        info = model_info(name)
        released = None
        try:
            released = released_checkpoint(name).filename
        except KeyError:
            pass
        if args.released and not released:
            continue
        paper_map = (info.paper or {}).get("mAP")
        rows.append((name, info.family, str(info.config.sample_rate), str(info.embedding_size),
                     f"{paper_map:.3f}" if paper_map is not None else "-", released or "-"))
    header = ("model", "family", "rate", "emb", "paper mAP", "released checkpoint")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())
    return EXIT_OK


def cmd_download(args) -> int:
    from .inference import InferenceError, fetch_released, released_entry

    status = EXIT_OK
    for name in args.names:
        if released_entry(name) is None:
            raise CliError(f"no released checkpoint named {name!r} (see `panns models --released`)")
        try:
            print(printable(fetch_released(name, args.cache_dir)))
        except InferenceError as exc:
            _err(f"panns: error: {exc}")
            status = EXIT_NOTHING_SUCCEEDED
    return status


def cmd_finetune(args) -> int:
    from .checkpoints import CheckpointError
    from .inference import InferenceError, fetch_released, released_entry
    from .transfer.base import DatasetLayoutError
    from .transfer.finetune import FinetuneInterrupted, finetune
    from .transfer.run_folder import STATE_FILE

    checkpoint = args.checkpoint
    if checkpoint and not os.path.isfile(checkpoint):
        if released_entry(checkpoint) is None:
            raise CliError(f"--checkpoint {checkpoint}: neither a file nor a released checkpoint "
                           "(see `panns models --released`)")
        try:
            checkpoint = fetch_released(checkpoint, args.cache_dir, download=not args.offline,
                                        progress=not args.quiet)
        except InferenceError as exc:
            raise CliError(str(exc)) from None
        args.backbone = args.backbone or released_entry(args.checkpoint).model_name
    log = None if args.quiet else (lambda *parts: print(*(printable(p) for p in parts)))
    try:
        finetune(args.labels_csv, args.output, strategy=args.strategy, backbone=args.backbone,
                 checkpoint=checkpoint, iterations=args.iterations, batch_size=args.batch_size,
                 clip_seconds=args.clip_seconds, learning_rate=args.learning_rate,
                 new_head_learning_rate=args.new_head_learning_rate, warmup_fraction=args.warmup_fraction,
                 schedule=args.schedule, spec_augment=args.spec_augment, pad=args.pad, precise_bn=args.precise_bn,
                 evaluations=args.evaluations, seed=args.seed, device=args.device, overwrite=args.overwrite,
                 save_every_s=args.save_every, progress=not args.quiet, log=log)
    except FinetuneInterrupted as exc:
        _err(f"panns: {exc}")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        state = os.path.join(args.output, STATE_FILE)
        if os.path.exists(state):
            _err(f"panns: interrupted (Ctrl-C); the training state saved last is in {state}: rerun the same "
                 "command to continue from there")
        else:
            _err("panns: interrupted (Ctrl-C) before any training state was saved; rerun the command to start again")
        return EXIT_INTERRUPTED
    except (DatasetLayoutError, CheckpointError, ValueError, FileNotFoundError) as exc:
        raise CliError(str(exc)) from None
    return EXIT_OK


COMMANDS = {"tag": cmd_tag, "finetune": cmd_finetune, "embed": cmd_embed, "sed": cmd_sed, "models": cmd_models,
            "download": cmd_download}


def _check_device(args) -> None:
    device = getattr(args, "device", None)
    if device is None or device == "auto":
        return
    from .runtime import resolve_device

    try:
        resolve_device(device)
    except ValueError as exc:
        raise CliError(f"--device {device}: {exc}") from None


def _os_error_message(exc: OSError) -> str:
    """One line for a failed read or write: the file, the system's reason, what to do."""
    import errno

    where = exc.filename or "a file"
    reason = exc.strerror or str(exc)
    hint = {errno.ENOSPC: "free some space (or choose another location) and rerun",
            errno.EDQUOT: "free some space (or choose another location) and rerun",
            errno.EFBIG: "the file system refuses a file this large; choose another location",
            errno.EACCES: "choose a location you can write to",
            errno.EPERM: "choose a location you can write to",
            errno.EROFS: "the file system is read-only; choose another location"}.get(exc.errno)
    return f"{where}: {reason}" + (f"; {hint}" if hint else "")


def main(argv=None) -> int:
    """Entry point of the ``panns`` console script; returns the exit status (:data:`EXIT_CODES`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _escape_log_output()
    try:
        _check_device(args)
        if getattr(args, "threads", None):
            import torch

            torch.set_num_threads(args.threads)
        return COMMANDS[args.command](args)
    except CliError as exc:
        _err(f"panns: error: {exc}")
        return EXIT_USAGE
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):  # output piped into e.g. `head`: stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_OK
        _err(f"panns: error: {_os_error_message(exc)}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _err("panns: interrupted (Ctrl-C)")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
