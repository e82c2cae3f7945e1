"""Saving paper artefacts (tables and figures) with a provenance record.

Every table and figure of the paper is saved under its paper id (``table_XI``,
``fig_4a`` ...) into ``figures/<profile>/`` together with a sidecar
``<id>.json`` record naming the profile and the run folders / statistics files
it was computed from. The pipeline never guesses what a notebook produced: it
builds ``runs/<profile>/manifest.json`` from these records only, so an id
without a record is reported as missing instead of being faked.

The record is written *after* the data files, so a record always implies that
its files exist (a crash half-way leaves no record and the id stays missing).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from typing import Iterable, Mapping, Sequence

import pandas as pd

from panns_core import __version__, fsutil, paper
from panns_core.study import notebook_roles

# ----------------------------------------------------------------------------
# Artefact ids and the notebooks that own them
# ----------------------------------------------------------------------------

ARTEFACT_IDS: tuple[str, ...] = tuple(paper.ARTEFACT_IDS)
"""Every artefact id the manifest knows, in paper order (defined in :mod:`panns_core.paper`)."""
TABLE_IDS: tuple[str, ...] = tuple(i for i in ARTEFACT_IDS if i.startswith("table_"))
FIGURE_IDS: tuple[str, ...] = tuple(i for i in ARTEFACT_IDS if i.startswith("fig_"))

AUDIOSET_IDS: tuple[str, ...] = (
    TABLE_IDS[:9] + ("fig_3",) + tuple(f"fig_4{c}" for c in "abcdef") + ("fig_5", "fig_12")
)
TRANSFER_IDS: tuple[str, ...] = TABLE_IDS[9:] + tuple(f"fig_{n}" for n in range(6, 12))

ARTEFACT_OWNERS: dict[str, str] = {i: owner for i, owner in sorted(
    notebook_roles.artefact_owners().items(), key=lambda item: ARTEFACT_IDS.index(item[0]))}
"""Which notebook (file stem) produces each id, from :mod:`panns_core.study.notebook_roles`: explains missing ids."""

TABLE_FORMATS = ("csv", "md", "tex")
FIGURE_FORMATS = ("png", "pdf")
FIGURE_DPI = 200


def check_artefact_id(artefact_id: str) -> str:
    """Reject ids the manifest does not know, so typos cannot create orphan files."""
    if artefact_id not in ARTEFACT_IDS:
        raise ValueError(
            f"unknown artefact id {artefact_id!r}; expected one of {', '.join(ARTEFACT_IDS)}"
        )
    return artefact_id


def _check_sources(sources) -> list[str]:
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    if sources is None:
        raise ValueError("sources must list the run folders/statistics files used (may be empty)")
    return [os.fspath(s) for s in sources]


# ----------------------------------------------------------------------------
# Table rendering (Markdown and LaTeX without extra dependencies)
# ----------------------------------------------------------------------------


def format_cell(value, float_format: str = "{:.3f}") -> str:
    """One cell as text: floats with ``float_format``, missing values as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return float_format.format(value)
    try:
        if pd.isna(value):
            return "–"
    except (TypeError, ValueError):
        pass
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalar
        return format_cell(value.item(), float_format)
    return str(value)


def _formatted_rows(df: pd.DataFrame, float_format: str) -> list[list[str]]:
    return [[format_cell(v, float_format) for v in row] for row in df.itertuples(index=False)]


def to_markdown(df: pd.DataFrame, float_format: str = "{:.3f}", caption: str = "") -> str:
    """A GitHub-flavoured Markdown table (numbers right-aligned)."""
    header = [str(c) for c in df.columns]
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]
    lines = []
    if caption:
        lines += [f"**{caption}**", ""]
    esc = lambda s: s.replace("|", "\\|")  # noqa: E731
    lines.append("| " + " | ".join(esc(h) for h in header) + " |")
    lines.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
    for row in _formatted_rows(df, float_format):
        lines.append("| " + " | ".join(esc(c) for c in row) + " |")
    return "\n".join(lines) + "\n"


_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
    "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "–": "--", "−": "$-$",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in text)


def to_latex(df: pd.DataFrame, float_format: str = "{:.3f}", caption: str = "",
             label: str = "") -> str:
    """A booktabs ``table`` environment, ready to ``\\input`` into a paper."""
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]
    spec = "".join("r" if n else "l" for n in numeric)
    out = ["\\begin{table}[t]", "\\centering"]
    if caption:
        out.append(f"\\caption{{{latex_escape(caption)}}}")
    if label:
        out.append(f"\\label{{{latex_escape(label)}}}")
    out += [f"\\begin{{tabular}}{{{spec}}}", "\\toprule",
            " & ".join(latex_escape(str(c)) for c in df.columns) + " \\\\", "\\midrule"]
    for row in _formatted_rows(df, float_format):
        out.append(" & ".join(latex_escape(c) for c in row) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------
# Saving
# ----------------------------------------------------------------------------


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def record_path(artefact_id: str, figures_dir) -> str:
    return os.path.join(os.fspath(figures_dir), f"{artefact_id}.json")


def _write_record(kind, artefact_id, figures_dir, files, *, sources, profile, caption, meta):
    record = {
        "id": artefact_id,
        "kind": kind,
        "files": files,
        "profile": str(profile),
        "sources": sources,
        "caption": caption,
        "created": _now(),
        "package_version": __version__,
        "meta": dict(meta or {}),
    }
    path = record_path(artefact_id, figures_dir)
    fsutil.write_json(record, path, sort_keys=True, trailing_newline=False)
    return record


def save_table(df: pd.DataFrame, artefact_id: str, figures_dir, *, sources, profile,
               caption: str = "", float_format: str = "{:.3f}", meta: Mapping | None = None) -> dict:
    """Write ``<id>.csv``, ``<id>.md``, ``<id>.tex`` and the ``<id>.json`` record.

    The CSV keeps full precision (for re-analysis); Markdown and LaTeX are
    rounded with ``float_format`` for reading. ``meta`` carries extra provenance
    such as the eval-set sha256 or the data source. Returns the record.
    """
    check_artefact_id(artefact_id)
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"save_table({artefact_id!r}) needs a pandas DataFrame, got {type(df).__name__}")
    sources = _check_sources(sources)
    figures_dir = os.fspath(figures_dir)
    os.makedirs(figures_dir, exist_ok=True)
    stem = os.path.join(figures_dir, artefact_id)
    df.to_csv(stem + ".csv", index=False)
    with open(stem + ".md", "w") as f:
        f.write(to_markdown(df, float_format, caption))
    with open(stem + ".tex", "w") as f:
        f.write(to_latex(df, float_format, caption, label=artefact_id.replace("_", ":")))
    files = [f"{artefact_id}.{ext}" for ext in TABLE_FORMATS]
    return _write_record("table", artefact_id, figures_dir, files, sources=sources,
                         profile=profile, caption=caption, meta=meta)


def save_figure(fig, artefact_id: str, figures_dir, *, sources, profile, caption: str = "",
                meta: Mapping | None = None) -> dict:
    """Write ``<id>.png`` (for the report) and ``<id>.pdf`` (vector, for print) and the record."""
    check_artefact_id(artefact_id)
    if not hasattr(fig, "savefig"):
        raise TypeError(f"save_figure({artefact_id!r}) needs a matplotlib Figure, got {type(fig).__name__}")
    sources = _check_sources(sources)
    figures_dir = os.fspath(figures_dir)
    os.makedirs(figures_dir, exist_ok=True)
    stem = os.path.join(figures_dir, artefact_id)
    fig.savefig(stem + ".png", dpi=FIGURE_DPI, bbox_inches="tight")
    fig.savefig(stem + ".pdf", bbox_inches="tight")
    files = [f"{artefact_id}.{ext}" for ext in FIGURE_FORMATS]
    return _write_record("figure", artefact_id, figures_dir, files, sources=sources,
                         profile=profile, caption=caption, meta=meta)


# ----------------------------------------------------------------------------
# Reading records and building the manifest
# ----------------------------------------------------------------------------


def read_record(artefact_id: str, figures_dir) -> dict | None:
    """The record of one id, or ``None`` when the id was not produced.

    A record whose files have gone missing is reported as ``None`` too (the
    manifest must not point at files that are not there).
    """
    path = record_path(artefact_id, figures_dir)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: unreadable artefact record ({exc})") from exc
    if record.get("id") != artefact_id:
        raise ValueError(f"{path}: record names id {record.get('id')!r}, expected {artefact_id!r}")
    return record


def missing_files(record: Mapping, figures_dir) -> list[str]:
    return [name for name in record.get("files", [])
            if not os.path.exists(os.path.join(os.fspath(figures_dir), name))]


def read_records(figures_dir, ids: Iterable[str] = ARTEFACT_IDS) -> dict[str, dict]:
    """Every readable record in ``figures_dir``, keyed by id."""
    out = {}
    for artefact_id in ids:
        record = read_record(artefact_id, figures_dir)
        if record is not None:
            out[artefact_id] = record
    return out


def _display_path(path: str, root: str | None) -> str:
    """Paths relative to the project root when inside it, so a manifest can be moved with the tree."""
    path = os.path.abspath(path)
    if root:
        root = os.path.abspath(root)
        if os.path.commonpath([path, root]) == root:
            return os.path.relpath(path, root)
    return path


def build_manifest(figures_dir, profile: str, *, ids: Sequence[str] = ARTEFACT_IDS,
                   missing_reasons: Mapping[str, str] | None = None,
                   not_in_profile: Mapping[str, str] | None = None,
                   root: str | None = None, extra: Mapping | None = None) -> dict:
    """The manifest of one profile: produced ids with paths and sources, the rest as missing.

    ``missing_reasons`` lets the caller (the pipeline) say *why* an id is absent
    (stage failed, ...); ids without a stated reason get a default naming the
    notebook that owns them. ``not_in_profile`` ({id: why}) lists ids whose
    notebook the profile does not run: without a record they are reported
    under ``not_in_profile``, not as missing, and are not expected.
    """
    figures_dir = os.fspath(figures_dir)
    missing_reasons = dict(missing_reasons or {})
    not_in_profile = dict(not_in_profile or {})
    artefacts, missing, skipped = {}, {}, {}
    for artefact_id in ids:
        check_artefact_id(artefact_id)
        record = read_record(artefact_id, figures_dir)
        owner = ARTEFACT_OWNERS.get(artefact_id, "?")
        if record is None and artefact_id in not_in_profile:
            skipped[artefact_id] = not_in_profile[artefact_id]
            continue
        if record is None:
            missing[artefact_id] = missing_reasons.get(
                artefact_id, f"not produced: notebook {owner} did not write it")
            continue
        if record.get("profile") != str(profile):
            missing[artefact_id] = (
                f"record in {figures_dir} belongs to profile {record.get('profile')!r}, not {profile!r}")
            continue
        gone = missing_files(record, figures_dir)
        if gone:
            missing[artefact_id] = f"record exists but files are missing: {', '.join(gone)}"
            continue
        artefacts[artefact_id] = {
            "kind": record["kind"],
            "paths": [_display_path(os.path.join(figures_dir, n), root) for n in record["files"]],
            "profile": record["profile"],
            "sources": [_display_path(s, root) if os.path.isabs(s) else s for s in record["sources"]],
            "caption": record.get("caption", ""),
            "created": record.get("created"),
            "notebook": owner,
            "meta": record.get("meta", {}),
        }
    manifest = {
        "profile": str(profile),
        "created": _now(),
        "package_version": __version__,
        "figures_dir": _display_path(figures_dir, root),
        "artefacts": artefacts,
        "missing": missing,
        "not_in_profile": skipped,
        "counts": {"produced": len(artefacts), "missing": len(missing), "not_in_profile": len(skipped),
                   "expected": len(ids) - len(skipped)},
    }
    if extra:
        manifest.update(extra)
    return manifest


def write_json(obj, path) -> str:
    """Atomic JSON write (a reader never sees a half-written file)."""
    return fsutil.write_json(obj, path)
