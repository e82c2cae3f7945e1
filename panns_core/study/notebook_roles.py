"""Which notebook is which pipeline stage: what it is given, what it reads, what it writes.

One table, keyed by notebook stem (the file name without ``.ipynb``/``.py``), read
by the pipeline (:mod:`panns_core.study.profiles`: stage parameters and dependencies)
and by the artefact manifest (:data:`panns_core.study.artefacts.ARTEFACT_OWNERS`).
A notebook's number orders the course; it decides nothing here. Data only (no
``panns_core`` imports), so anything may read it.

Adding a notebook to a profile requires a row here; a notebook that only
teaches (no stage of any profile) needs none.
"""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("environment", "acquire", "pack", "teaching", "train", "evaluate", "released", "artefacts",
         "released_artefacts", "transfer", "transfer_artefacts", "findings", "inference", "report")
"""Kinds of stage. ``acquire`` and ``pack`` are the data stages every later data reader waits for."""

DATA_ROLES = ("acquire", "pack")

PARAMETER_GROUPS = ("data", "generate", "acquire", "pack", "packed", "compare", "run_name", "device")
"""Profile sections a role is given besides the common ``profile``/``run_root``/``figures_dir``:
``data`` = ``data_root`` + ``data_source``; ``generate``/``acquire``/``pack`` = that
``data.<key>`` mapping; ``packed`` = whether ``data.packed`` names an already packed copy (the data
stages then only verify it and build missing indexes); ``compare`` = ``compare_to_paper`` (paper columns
in the tables); ``run_name`` = the profile's ``reference_run`` (the run to evaluate); ``device`` = the profile's
``train.device`` (evaluation and transfer compute where training does)."""


@dataclass(frozen=True)
class NotebookRole:
    """One notebook's place in the pipeline."""

    stem: str
    role: str
    parameters: tuple[str, ...] = ()
    """Parameter groups (:data:`PARAMETER_GROUPS`) the stage receives."""
    reads: tuple[str, ...] = ()
    """Roles whose stages must have completed (a failed one skips this stage)."""
    reads_if_present: tuple[str, ...] = ()
    """Roles whose results it reads when they exist (tables draw from the runs that exist)."""
    writes: tuple[str, ...] = ()
    """What it writes under ``runs/<profile>/`` (``{run}`` = the stage's run name)."""
    produces: tuple[str, ...] = ()
    """Artefact ids (tables, figures) it saves under ``figures/<profile>/``."""


_AUDIOSET_TABLES = ("table_IV", "table_V", "table_VI", "table_VII", "table_VIII", "table_IX", "table_X", "table_XI")
_TRANSFER = ("table_XIII", "table_XIV", "table_XV", "table_XVI", "table_XVII", "table_XVIII",
             "fig_6", "fig_7", "fig_8", "fig_9", "fig_10", "fig_11")

NOTEBOOK_ROLES: dict[str, NotebookRole] = {r.stem: r for r in (
    NotebookRole("00_environment_and_data", "environment", parameters=("data",), writes=("environment.json",)),
    NotebookRole("01_download_audioset", "acquire", parameters=("data", "generate", "acquire", "packed")),
    NotebookRole("02_pack_and_index", "pack", parameters=("data", "pack", "packed"), reads=("acquire",)),
    # Teaching notebooks: each shows one piece of the recipe on the packed data (a tiny
    # in-memory example when it is absent); they produce no artefact.
    NotebookRole("05_sampler_and_mixup", "teaching", parameters=("data",), reads=DATA_ROLES),
    NotebookRole("06_metrics", "teaching", parameters=("data",), reads=DATA_ROLES),
    NotebookRole("07_model_anatomy", "teaching", parameters=("data",)),
    # One stage per run line of the profile (train_<run>).
    NotebookRole("03_train_system", "train", parameters=("data",), reads=DATA_ROLES, writes=("train/{run}/",)),
    # Its own run's training stage is a dependency too (see profiles.derive_stages).
    NotebookRole("04_evaluate_system", "evaluate", parameters=("data", "run_name", "device"), reads=DATA_ROLES,
                 writes=("evaluate/",)),
    # The released profile: score the released checkpoints on the packed eval set (no training).
    NotebookRole("08_score_released_checkpoints", "released", parameters=("data",), reads=DATA_ROLES,
                 writes=("released/",)),
    NotebookRole("10_tables_audioset", "artefacts", parameters=("compare",), reads_if_present=("train", "evaluate"),
                 produces=_AUDIOSET_TABLES),
    # Table XII counts the models' code, not runs: it waits for nothing and overlaps training (``jobs``).
    NotebookRole("11_table_complexity", "artefacts", produces=("table_XII",)),
    NotebookRole("12_figure_classwise_ap", "artefacts", reads_if_present=("train", "evaluate"),
                 produces=("fig_3",)),
    NotebookRole("13_figure_training_curves", "artefacts", reads_if_present=("train", "evaluate"),
                 produces=tuple(f"fig_4{c}" for c in "abcdef")),
    NotebookRole("14_figure_map_vs_multiply_adds", "artefacts", parameters=("compare",),
                 reads_if_present=("train", "evaluate"),
                 produces=("fig_5",)),
    NotebookRole("15_figure_classwise_ap_sorted", "artefacts", reads_if_present=("train", "evaluate"),
                 produces=("fig_12",)),
    # Second owner of these ids (artefact_owners keeps the first): the released profile's tables and figures.
    NotebookRole("16_released_tables_figures", "released_artefacts", parameters=("data",),
                 reads_if_present=("released", "transfer"), writes=("findings.json",),
                 produces=("table_VII", "table_IX", "table_X", "table_XI", "fig_3", "fig_5", "fig_12")),
    # Always the last stage; reads every stage's record and the manifest.
    NotebookRole("19_build_report", "report", writes=("report.html",)),
    # A backbone checkpoint named in its parameters makes that training stage a dependency.
    # In the released profile it reads the checkpoint the released stage downloaded and verified.
    NotebookRole("20_transfer_task", "transfer", parameters=("device",), reads_if_present=("released",), writes=("transfer/",)),
    NotebookRole("21_transfer_tables_figures", "transfer_artefacts", reads_if_present=("transfer",),
                 produces=_TRANSFER),
    # The paper's claims -> verdicts from every run and transfer result of the profile (list it after
    # the transfer notebooks); the report opens with its table.
    NotebookRole("18_findings", "findings", reads_if_present=("train", "evaluate", "transfer"),
                 writes=("findings.json",)),
    NotebookRole("30_pretrained_inference_demo", "inference", writes=("inference/",)),
)}


def role_of(stem: str) -> NotebookRole:
    """The row of ``stem``; ``KeyError`` naming the table when the notebook has none."""
    try:
        return NOTEBOOK_ROLES[stem]
    except KeyError:
        raise KeyError(f"notebook {stem!r} has no row in panns_core/study/notebook_roles.py (NOTEBOOK_ROLES); "
                       f"notebooks with a role: {', '.join(NOTEBOOK_ROLES)}") from None


def stems_with_role(role: str) -> list[str]:
    return [r.stem for r in NOTEBOOK_ROLES.values() if r.role == role]


def artefact_owners() -> dict[str, str]:
    """Artefact id -> stem of the notebook that produces it (the first row naming it: the training
    profiles' owner; a profile's own stage list says which notebook made it there)."""
    owners: dict[str, str] = {}
    for r in NOTEBOOK_ROLES.values():
        for artefact_id in r.produces:
            owners.setdefault(artefact_id, r.stem)
    return owners
