"""Papermill orchestration: one command reruns the study from a profile.

``python -m panns_core.study --profile smoke`` derives a list of stages from a
profile (data, one training stage per run line, evaluation, table/figure
notebooks, transfer, inference, manifest, report), executes each stage's
notebook with papermill into ``runs/<profile>/notebooks/<NN>_<stage>.ipynb``
(kept as the record) and writes ``runs/<profile>/stages/<stage>.json`` with the
parameters, status, times and a fingerprint.

Why fingerprints: a stage is skipped when its fingerprint (parameters, the
notebook's code, the package version and the fingerprints of the stages it
reads) equals the recorded one and its outputs exist; so editing one run line
reruns that run and the tables, nothing else, and a run that failed half-way
resumes at the failed stage. A failed stage does not stop independent stages
(like ``make -k``): tables are still drawn from the runs that exist, and the
manifest says what is missing and why.

Why ``jobs``: on a small CPU one short training run cannot keep every core busy
(a batch of 8 one-second clips scales poorly over threads), so a profile's
``jobs: N`` (or ``--jobs N``) runs up to N stages at once, each kernel with
``cpu_count // N`` threads. A stage starts only when every stage it reads
(``deps`` and ``soft_deps``) has finished, so the tables still see all runs.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import copy
import datetime as _dt
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
import traceback
import uuid
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable, Sequence

import yaml

from panns_core import __version__
from panns_core.study.artefacts import ARTEFACT_IDS, ARTEFACT_OWNERS, build_manifest, write_json
from panns_core.study.notebook_roles import role_of, stems_with_role

# ----------------------------------------------------------------------------
# Profiles
# ----------------------------------------------------------------------------

DEFAULT_PROFILE = "smoke"
LAST_PROFILE_FILE = "last_profile.json"
"""Written to ``runs/`` at every pipeline start: the profile the notebooks open on by default."""
PROFILE_PACKAGE = "panns_core.profiles"

TRAIN_NOTEBOOK = stems_with_role("train")[0]
REPORT_NOTEBOOK = stems_with_role("report")[0]

#: Training-run groups: which ablation a run belongs to, and the artefacts drawn from it.
RUN_GROUPS = {
    "architectures": ("table_XI", "fig_4a", "fig_5"),
    "balancing_augmentation": ("table_V", "fig_4b"),
    "hop_size": ("table_VI",),
    "embedding_size": ("table_VII", "fig_4c"),
    "data_amount": ("table_VIII", "fig_4d"),
    "sample_rate": ("table_IX", "fig_4e"),
    "mel_bins": ("table_X", "fig_4f"),
}

REQUIRED_PROFILE_KEYS = ("name", "data_source", "data", "notebooks")
DATA_SOURCES = ("generated", "audioset")
"""Sources the data stages can make; any other ``data_source`` (your own data) needs ``data: {packed: PATH}``."""

USER_DATA_TRAIN_DEFAULTS = {"max_eval_clips": 1000, "eval_splits": ["eval", "validation"]}
"""``train`` defaults of a profile on your own data (a ``data_source`` other than generated/audioset): each
evaluation scores at most 1,000 clips of the eval and validation splits (validation still chooses ``best.pt``),
not the whole training split too. A profile's own ``train`` values win."""


class ProfileError(ValueError):
    """A profile file is malformed (the message names the file and the key)."""


class PipelineError(RuntimeError):
    """A stage could not be set up (bad notebook, bad parameters)."""


def profile_path(name_or_path: str) -> Path:
    """``smoke`` -> the packaged ``profiles/smoke.yaml``; a path -> that file.

    Anything that looks like a path (has a separator or a .yaml/.yml suffix) is
    taken as the user's own copy, so a copied profile never shadows a packaged one
    by accident.
    """
    text = os.fspath(name_or_path)
    if os.sep in text or "/" in text or text.endswith((".yaml", ".yml")):
        path = Path(text)
        if not path.is_file():
            raise ProfileError(f"{path}: profile file not found")
        return path
    packaged = Path(str(resources.files(PROFILE_PACKAGE).joinpath(f"{text}.yaml")))
    if not packaged.is_file():
        raise ProfileError(
            f"unknown profile {text!r}: no {packaged}; packaged profiles: {', '.join(list_profiles())}"
        )
    return packaged


def list_profiles() -> list[str]:
    folder = resources.files(PROFILE_PACKAGE)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_profile(name_or_path: str) -> dict:
    """Read and validate a profile; returns a plain dict with ``_path`` added."""
    path = profile_path(name_or_path)
    try:
        with open(path) as f:
            profile = yaml.safe_load(f)
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(profile, dict):
        raise ProfileError(f"{path}: a profile is a YAML mapping, got {type(profile).__name__}")
    expand_seeds(profile, path)
    validate_profile(profile, path)
    profile["_path"] = str(path)
    return profile


def expand_seeds(profile: dict, path) -> None:
    """A run line with ``seeds: [1, 2, 3]`` becomes one run per seed: ``<name>_seed1`` ... with ``seed: k``.

    Paired designs train every arm with the same seeds; one line per arm keeps the profile readable.
    ``reference_run``/``classwise_run`` naming such a line resolve to its first seed's run.
    """
    runs = profile.get("runs")
    if not isinstance(runs, dict):
        return
    expanded: dict = {}
    first_of: dict = {}
    for name, spec in runs.items():
        seeds = spec.get("seeds") if isinstance(spec, dict) else None
        if seeds is None:
            expanded[name] = spec
            continue
        if (not isinstance(seeds, list) or not seeds
                or not all(isinstance(k, int) and not isinstance(k, bool) for k in seeds)
                or len(set(seeds)) != len(seeds)):
            raise ProfileError(f"{path}: run {name!r}: seeds must be a list of distinct whole numbers, got {seeds!r}")
        if "seed" in spec:
            raise ProfileError(f"{path}: run {name!r} has both seed and seeds; keep one")
        rest = {k: v for k, v in spec.items() if k != "seeds"}
        for k in seeds:
            expanded[f"{name}_seed{k}"] = {**copy.deepcopy(rest), "seed": k}
        first_of[name] = f"{name}_seed{seeds[0]}"
    profile["runs"] = expanded
    for key in ("reference_run", "classwise_run"):
        if profile.get(key) in first_of:
            profile[key] = first_of[profile[key]]


def validate_profile(profile: dict, path) -> None:
    missing = [k for k in REQUIRED_PROFILE_KEYS if k not in profile]
    if missing:
        raise ProfileError(f"{path}: missing key(s) {missing}")
    if not isinstance(profile["data"], dict) or not ("root" in profile["data"] or profile["data"].get("packed")):
        raise ProfileError(f"{path}: data must be a mapping with a 'root' folder (or 'packed': an already packed copy)")
    source = profile["data_source"]
    if not isinstance(source, str) or not source.replace("_", "").replace("-", "").isalnum():
        raise ProfileError(f"{path}: data_source must be a name (generated, audioset or your data's), got {source!r}")
    if source not in DATA_SOURCES and not profile["data"].get("packed"):
        raise ProfileError(f"{path}: data_source {source!r} is not one the data stages can make ({DATA_SOURCES}); "
                           f"point data.packed at your packed copy (python -m panns_core.data pack)")
    if "compare_to_paper" in profile and not isinstance(profile["compare_to_paper"], bool):
        raise ProfileError(f"{path}: compare_to_paper must be true or false")
    runs = profile.get("runs") or {}
    if not isinstance(runs, dict):
        raise ProfileError(f"{path}: runs must map run names to override mappings")
    for name, spec in runs.items():
        if not isinstance(spec, dict):
            raise ProfileError(f"{path}: run {name!r} must be a mapping of TrainConfig overrides")
        if not str(name).replace("_", "").replace("-", "").isalnum():
            raise ProfileError(f"{path}: run name {name!r} may use letters, digits, '_' and '-' only")
        for group in spec.get("groups", []) or []:
            if group not in RUN_GROUPS:
                raise ProfileError(
                    f"{path}: run {name!r} names unknown group {group!r}; known: {', '.join(RUN_GROUPS)}")
    modes = profile.get("fingerprint_code") or {}
    if not isinstance(modes, dict):
        raise ProfileError(f"{path}: fingerprint_code must map roles or stage names to a mode")
    for key, mode in modes.items():
        if mode not in FINGERPRINT_CODE_MODES:
            raise ProfileError(f"{path}: fingerprint_code.{key} must be one of {FINGERPRINT_CODE_MODES}, got {mode!r}")
    jobs = profile.get("jobs", 1)
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ProfileError(f"{path}: jobs must be a whole number >= 1 (stages run at once), got {jobs!r}")
    for key in ("reference_run", "classwise_run"):
        if profile.get(key) is not None and profile[key] not in runs:
            raise ProfileError(f"{path}: {key} {profile[key]!r} is not one of the runs")
    _notebook_items(profile, path)  # validates the list


def _notebook_items(profile: dict, path) -> list[tuple[str, dict]]:
    """The profile's ``notebooks`` list as (stem, extra parameters) pairs."""
    items = []
    for item in profile["notebooks"]:
        if isinstance(item, str):
            items.append((item, {}))
        elif isinstance(item, dict) and len(item) == 1:
            stem, params = next(iter(item.items()))
            if params is not None and not isinstance(params, dict):
                raise ProfileError(f"{path}: parameters of notebook {stem!r} must be a mapping")
            items.append((stem, dict(params or {})))
        else:
            raise ProfileError(f"{path}: each notebooks entry is a name or {{name: {{parameters}}}}, got {item!r}")
    stems = [s for s, _ in items]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise ProfileError(f"{path}: notebook(s) listed twice: {dupes}")
    return items


# ----------------------------------------------------------------------------
# Stages
# ----------------------------------------------------------------------------


@dataclass
class Stage:
    """One unit of work: a notebook execution (or the manifest/report step)."""

    name: str
    notebook: str | None  # notebook stem; None for the manifest step
    parameters: dict
    role: str = ""        # the notebook's role (panns_core.study.notebook_roles), or "manifest"
    deps: list[str] = field(default_factory=list)        # must have completed
    soft_deps: list[str] = field(default_factory=list)   # read if present (tables read the runs that exist)
    outputs: list[str] = field(default_factory=list)     # paths (relative to root) that must exist
    artefacts: list[str] = field(default_factory=list)   # ids this stage should produce

    def output_notebook(self, run_root: str) -> str:
        number = self.notebook.split("_", 1)[0] if self.notebook else "99"
        return os.path.join(run_root, "notebooks", f"{number}_{self.name}.ipynb")


def stage_name_for(stem: str) -> str:
    """``10_tables_audioset`` -> ``tables_audioset`` (the stage name drops the number)."""
    head, _, rest = stem.partition("_")
    return rest if head.isdigit() and rest else stem


def common_parameters(profile: dict) -> dict:
    name = profile["name"]
    return {
        "profile": name,
        "run_root": f"runs/{name}",
        "figures_dir": f"figures/{name}",
    }


def _data_parameters(profile: dict) -> dict:
    data = profile["data"]
    return {"data_root": data.get("packed") or data["root"], "data_source": profile["data_source"]}


def compare_to_paper(profile: dict) -> bool:
    """Whether tables show the paper's columns: the profile's ``compare_to_paper``, else only on
    AudioSet and its generated stand-in (whose paper columns are labelled as not comparable)."""
    from panns_core.study.tables import compare_to_paper_default

    return bool(profile.get("compare_to_paper", compare_to_paper_default(profile["data_source"])))


def run_config(profile: dict, run_name: str) -> dict:
    """TrainConfig fields of one run: the profile's ``train`` defaults + the run line."""
    spec = dict(profile.get("runs", {})[run_name])
    spec.pop("groups", None)
    config = copy.deepcopy(USER_DATA_TRAIN_DEFAULTS) if profile["data_source"] not in DATA_SOURCES else {}
    config.update(copy.deepcopy(profile.get("train") or {}))
    config.update(spec)
    return config


def derive_stages(profile: dict) -> list[Stage]:
    """The ordered stage list of a profile.

    What each notebook is given and waits for comes from its row in
    :data:`panns_core.study.notebook_roles.NOTEBOOK_ROLES`. The training notebook
    expands to one stage per run line (``train_<run>``), so adding an ablation
    to a profile is one line and reruns only that run and the tables that read it.
    """
    path = profile.get("_path", "<profile>")
    common = common_parameters(profile)
    data = _data_parameters(profile)
    run_root = common["run_root"]
    stages: list[Stage] = []
    by_role: dict[str, list[str]] = {}

    def earlier(roles) -> list[str]:
        return [name for role in roles for name in by_role.get(role, [])]

    for stem, extra in _notebook_items(profile, path):
        try:
            role = role_of(stem)
        except KeyError as exc:
            raise ProfileError(f"{path}: {exc.args[0]}") from None
        params = dict(common)
        if "data" in role.parameters:
            params.update(data)
        if "packed" in role.parameters:
            params["packed"] = bool(profile["data"].get("packed"))
        if "compare" in role.parameters:
            params["compare_to_paper"] = compare_to_paper(profile)
        for section in ("generate", "acquire", "pack"):
            if section in role.parameters:
                params[section] = _section(profile, section)
        deps, soft = earlier(role.reads), earlier(role.reads_if_present)
        if role.role == "train":
            for run in profile.get("runs") or {}:
                train_params = {**params, "run_name": run, "config": run_config(profile, run), **extra}
                stages.append(Stage(
                    name=f"train_{run}", notebook=stem, role=role.role, parameters=train_params, deps=list(deps),
                    outputs=[f"{run_root}/train/{run}/statistics.jsonl", f"{run_root}/train/{run}/config.json"],
                ))
                by_role.setdefault(role.role, []).append(f"train_{run}")
            continue
        if "run_name" in role.parameters:  # evaluate one trained system (default: the reference run)
            params["run_name"] = extra.get("run_name", profile.get("reference_run"))
            if params["run_name"]:
                deps.append(f"train_{params['run_name']}")
        params.update(extra)
        deps += [d for d in _referenced_runs(params, run_root, by_role.get("train", [])) if d not in deps]
        name = stage_name_for(stem)
        stages.append(Stage(name=name, notebook=stem, role=role.role, parameters=params, deps=deps, soft_deps=soft,
                            artefacts=list(role.produces)))
        by_role.setdefault(role.role, []).append(name)
    everything = [s.name for s in stages]
    stages.append(Stage(name="manifest", notebook=None, role="manifest", parameters=dict(common),
                        soft_deps=everything))
    stages.append(Stage(name="build_report", notebook=REPORT_NOTEBOOK, role="report",
                        parameters={**common, "data_source": profile["data_source"],
                                    "label": profile.get("label", "")},
                        soft_deps=everything + ["manifest"],
                        outputs=[f"{run_root}/report.html"]))
    names = [s.name for s in stages]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ProfileError(f"{path}: duplicate stage name(s) {dupes}")
    return stages


def _referenced_runs(params: dict, run_root: str, train_names: Sequence[str]) -> list[str]:
    """Train stages whose run folder a parameter points into (e.g. a transfer checkpoint)."""
    found = []
    text = json.dumps(params, default=str)
    for stage_name in train_names:
        run = stage_name[len("train_"):]
        if f"{run_root}/train/{run}/" in text:
            found.append(stage_name)
    return found


def _section(profile: dict, key: str) -> dict:
    value = profile["data"].get(key) or {}
    if not isinstance(value, dict):
        raise ProfileError(f"{profile.get('_path')}: data.{key} must be a mapping")
    return value


# ----------------------------------------------------------------------------
# Fingerprints and stage records
# ----------------------------------------------------------------------------


def notebook_code(path: str) -> str:
    """The code cells' sources, joined (narrative, outputs and metadata left out)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    return "\0".join(cell.source for cell in nb.cells if cell.cell_type == "code")


def notebook_code_hash(path: str) -> str:
    """Hash of the code cells' sources only: narrative, outputs and metadata never trigger a rerun."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    h = hashlib.sha256()
    for cell in nb.cells:
        if cell.cell_type == "code":
            h.update(cell.source.encode())
            h.update(b"\0")
    return h.hexdigest()


FINGERPRINT_CODE_MODES = ("package", "notebook_only")
"""``package``: a stage's fingerprint covers the notebook's code and the source of every
``panns_core`` module it imports (transitively); ``notebook_only``: the notebook's code and
the package version only (for multi-day training runs that a comment fix must not restart)."""


def _cell_imports_source(cell_source: str) -> str | None:
    """The cell as Python, IPython magics and shell lines dropped; None if it still does not parse."""
    import ast

    for text in (cell_source, "\n".join(line for line in cell_source.splitlines()
                                       if not line.lstrip().startswith(("%", "!")))):
        try:
            ast.parse(text)
            return text
        except SyntaxError:
            continue
    return None


def package_modules_of_notebook(code: str, graph: dict | None = None, package_dir=None) -> set[str]:
    """``panns_core`` modules that running the notebook code imports, transitively (read with ast).

    A cell that is not valid Python even without magics makes the answer the
    whole package: a fingerprint may cover too much, never too little.
    """
    from panns_core.study import codegraph

    package_dir = package_dir or codegraph.PACKAGE_DIR
    cells = [_cell_imports_source(cell) for cell in code.split("\0")]
    if any(cell is None for cell in cells):
        return set(codegraph.package_modules(package_dir))
    return codegraph.modules_used_by("\n".join(cells), package_dir, graph=graph)


def package_code_hash(code: str, graph: dict | None = None, package_dir=None) -> str:
    """sha256 over the sources of the package modules the notebook code reaches.

    ``graph`` is :func:`panns_core.study.codegraph.import_graph` of ``package_dir``
    (default: this package), read once per pipeline run.
    """
    from panns_core.study import codegraph

    package_dir = package_dir or codegraph.PACKAGE_DIR
    return codegraph.source_hash(package_modules_of_notebook(code, graph, package_dir), package_dir)


def fingerprint(stage: Stage, notebook_hash: str | None, inputs: dict, package_hash: str | None = None) -> str:
    """What decides a rerun: the stage, its parameters and notebook code, the package code it
    runs (``package_hash``; None under ``fingerprint_code: notebook_only``) and its inputs."""
    payload = {
        "stage": stage.name,
        "notebook": stage.notebook,
        "notebook_code": notebook_hash,
        "package_code": package_hash,
        "parameters": stage.parameters,
        "package_version": __version__,
        "inputs": inputs,
    }
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def fingerprint_code_mode(profile: dict, stage: Stage) -> str:
    """The profile's ``fingerprint_code`` entry for this stage (by stage name, then by role)."""
    modes = profile.get("fingerprint_code") or {}
    return modes.get(stage.name, modes.get(stage.role, "package"))


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def stage_record_path(run_root: str, name: str) -> str:
    return os.path.join(run_root, "stages", f"{name}.json")


def read_stage_record(run_root: str, name: str) -> dict | None:
    path = stage_record_path(run_root, name)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None  # a torn record means "not done": the stage reruns


# ----------------------------------------------------------------------------
# Execution
# ----------------------------------------------------------------------------


def default_notebooks_dir() -> Path:
    """``notebooks/`` of the source tree this package was imported from."""
    return Path(__file__).resolve().parents[2] / "notebooks"


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
"""Environment variables that size a kernel's thread pools (torch reads them at import)."""


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a running process and its reaped children (Linux ``/proc``; else None)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
        return round(ticks / os.sysconf("SC_CLK_TCK"), 2)
    except (OSError, ValueError, IndexError):
        return None


def local_kernel_manager_class(threads: int | None = None, usage: dict | None = None):
    """A kernel manager whose kernel does not talk plain TCP.

    By default a kernel listens on TCP ports without encryption (and says so in an
    ``IPKernelApp`` warning at every start). The pipeline's kernels are local
    children, so on POSIX they use Unix-domain (IPC) sockets, which other users
    cannot reach; elsewhere the manager provisions CurveZMQ keys when the kernel
    declares support for them. ``threads`` sets the kernel's ``OMP_NUM_THREADS``
    (when stages share the CPU), unless the user set it. ``usage`` receives the
    kernel's CPU seconds (``cpu_s``) just before it is shut down: wall time says
    little when stages share the CPU, CPU seconds say what a stage costs.
    """
    import zmq
    from jupyter_client.manager import AsyncKernelManager

    class LocalKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            if os.name == "posix":
                kwargs.setdefault("transport", "ipc")
                # IPC socket files are named <ip>-<port>; a name of its own per kernel keeps kernels
                # started at the same moment (``jobs``) from picking the same files.
                kwargs.setdefault("ip", os.path.join(tempfile.gettempdir(), f"panns-kernel-{uuid.uuid4().hex[:12]}"))
            elif zmq.has("curve"):
                kwargs.setdefault("transport_encryption", "auto")
            # A kernel that needs more than jupyter_client's 5 s to exit (a loaded CPU, big tensors freed) would
            # be sent SIGINT and print a KeyboardInterrupt error for a notebook that succeeded.
            kwargs.setdefault("shutdown_wait_time", 30.0)
            super().__init__(**kwargs)

        async def start_kernel(self, **kw):
            if threads is not None and "OMP_NUM_THREADS" not in os.environ:
                env = dict(kw.get("env") or os.environ)
                env.update({name: str(threads) for name in THREAD_VARIABLES})
                kw["env"] = env
            return await super().start_kernel(**kw)

        async def _async_interrupt_kernel(self):
            # jupyter_client interrupts a kernel before shutting it down; the notebook has finished by then,
            # and the SIGINT only makes ipykernel print "KeyboardInterrupt caught in kernel" to the console.
            if getattr(self, "shutting_down", False):
                return None
            return await super()._async_interrupt_kernel()

        async def shutdown_kernel(self, now: bool = False, restart: bool = False):
            pid = getattr(self.provisioner, "pid", None)
            if usage is not None and pid:
                usage["cpu_s"] = process_cpu_seconds(pid)
            return await super().shutdown_kernel(now=now, restart=restart)

    return LocalKernelManager


def execute_notebook(input_path: str, output_path: str, parameters: dict, cwd: str,
                     threads: int | None = None) -> dict:
    """Run one notebook with papermill (module-level so tests can wrap it).

    ``threads``: the kernel's thread count (None: the libraries' default, all cores).
    Returns ``{"cpu_s": ...}``, the kernel's CPU seconds where the platform tells them.
    """
    import papermill as pm

    usage: dict = {}
    pm.execute_notebook(
        input_path, output_path, parameters=parameters, cwd=cwd, kernel_name="python3",
        progress_bar=False, log_output=False, report_mode=False,
        kernel_manager_class=local_kernel_manager_class(threads, usage),
    )
    return usage


def threads_per_job(jobs: int) -> int | None:
    """Threads each of ``jobs`` concurrent kernels gets (None when stages run one at a time)."""
    return None if jobs <= 1 else max(1, (os.cpu_count() or 1) // jobs)


def declared_parameters(notebook_path: str) -> set[str]:
    """Names assigned in the notebook's ``parameters`` cell.

    Parsed with :mod:`ast` (papermill's own inspector trips over quotes in
    comments), so a profile typo is caught before the kernel starts.
    """
    import ast

    import nbformat

    nb = nbformat.read(notebook_path, as_version=4)
    cell = next((c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])), None)
    if cell is None:
        raise PipelineError(f"{notebook_path}: no code cell tagged 'parameters'")
    try:
        tree = ast.parse(cell.source)
    except SyntaxError as exc:
        raise PipelineError(f"{notebook_path}: parameters cell is not valid Python ({exc})") from exc
    names = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for t in targets:
            names.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
    return names


@dataclass
class StageResult:
    name: str
    status: str  # completed | up_to_date | failed | skipped | unavailable
    message: str = ""
    duration_s: float = 0.0
    cpu_s: float | None = None  # the kernel's CPU seconds (None: not measured)


class Pipeline:
    """Runs a profile's stages in order under ``root`` (the project folder)."""

    def __init__(self, profile: dict, root: str = ".", notebooks_dir: str | os.PathLike | None = None,
                 log: Callable[[str], None] = print):
        self.profile = profile
        self.root = os.path.abspath(root)
        self.notebooks_dir = Path(notebooks_dir) if notebooks_dir else default_notebooks_dir()
        self.stages = derive_stages(profile)
        self.by_name = {s.name: s for s in self.stages}
        common = common_parameters(profile)
        self.run_root = os.path.join(self.root, common["run_root"])
        self.figures_dir = os.path.join(self.root, common["figures_dir"])
        self.log = log
        self.fingerprints: dict[str, str] = {}
        self.results: dict[str, StageResult] = {}
        self.threads: int | None = None  # per-kernel threads when stages run concurrently
        self._prepare_lock = threading.Lock()
        self._graph: dict | None = None  # panns_core's import graph, read once per run

    # -- helpers -------------------------------------------------------------
    def notebook_path(self, stage: Stage) -> Path:
        return self.notebooks_dir / f"{stage.notebook}.ipynb"

    def _outputs_exist(self, stage: Stage) -> bool:
        paths = [os.path.join(self.root, p) for p in stage.outputs]
        if stage.notebook:
            paths.append(stage.output_notebook(self.run_root))
        return all(os.path.exists(p) for p in paths)

    def _inputs(self, stage: Stage) -> dict:
        """Fingerprints of the stages this one reads (absent ones count as 'absent')."""
        out = {}
        for dep in stage.deps + stage.soft_deps:
            out[dep] = self.fingerprints.get(dep, "absent")
        return out

    def _write_record(self, stage: Stage, **fields) -> dict:
        record = {
            "stage": stage.name,
            "notebook": stage.notebook,
            "profile": self.profile["name"],
            "parameters": stage.parameters,
            "deps": stage.deps,
            "soft_deps": stage.soft_deps,
            "package_version": __version__,
            **fields,
        }
        if stage.notebook:
            record["output_notebook"] = os.path.relpath(stage.output_notebook(self.run_root), self.root)
        write_json(record, stage_record_path(self.run_root, stage.name))
        return record

    def plan(self) -> list[dict]:
        """What ``--list`` prints: stage, notebook, dependencies, recorded status."""
        rows = []
        for s in self.stages:
            rec = read_stage_record(self.run_root, s.name) or {}
            rows.append({"stage": s.name, "notebook": s.notebook or "-", "status": rec.get("status", "not run"),
                         "deps": ",".join(s.deps) or "-"})
        return rows

    # -- running -------------------------------------------------------------
    def select(self, only: Sequence[str] | None = None, start: str | None = None) -> list[str]:
        names = [s.name for s in self.stages]
        for n in list(only or []) + ([start] if start else []):
            if n not in self.by_name:
                raise PipelineError(f"unknown stage {n!r}; stages of profile {self.profile['name']!r}: {', '.join(names)}")
        if only:
            return [n for n in names if n in set(only)]
        if start:
            return names[names.index(start):]
        return names

    def run(self, force: bool = False, only: Sequence[str] | None = None, start: str | None = None,
            jobs: int | None = None) -> bool:
        """Run the selected stages; returns True when none failed.

        ``only``/``start`` force the stages they select (that is why one names
        them); stages outside the selection keep their recorded fingerprints so
        that later stages still see their inputs. ``jobs`` (default: the
        profile's ``jobs``, else 1) stages may run at once.
        """
        selected = set(self.select(only, start))
        forced = force or bool(only) or bool(start)
        jobs = int(jobs or self.profile.get("jobs", 1))
        if jobs < 1:
            raise PipelineError(f"jobs must be >= 1, got {jobs}")
        self.threads = threads_per_job(jobs)
        os.makedirs(os.path.join(self.run_root, "notebooks"), exist_ok=True)
        os.makedirs(os.path.join(self.run_root, "stages"), exist_ok=True)
        write_json(self._profile_snapshot(), os.path.join(self.run_root, "profile.json"))
        write_json({"profile": self.profile["name"], "run_root": os.path.relpath(self.run_root, self.root),
                    "profile_file": self.profile.get("_path"), "started": _now()},
                   os.path.join(os.path.dirname(self.run_root), LAST_PROFILE_FILE))
        t_all = time.time()
        todo = []
        for stage in self.stages:
            if stage.name in selected:
                todo.append(stage)
                continue
            rec = read_stage_record(self.run_root, stage.name)
            if rec and rec.get("status") == "completed":
                self.fingerprints[stage.name] = rec["fingerprint"]
        if jobs == 1:
            for stage in todo:
                self._finish(stage, self._run_stage(stage, forced))
        else:
            self._run_concurrently(todo, forced, jobs)
        failed = [r for r in self.results.values() if r.status == "failed"]
        cpu = [r.cpu_s for r in self.results.values() if r.cpu_s is not None]
        self.log(f"pipeline {self.profile['name']}: {len(self.results)} stage(s) in {time.time() - t_all:.1f} s"
                 + (f" ({jobs} at a time)" if jobs > 1 else "") + (f", kernels {sum(cpu):.0f} CPU s" if cpu else "")
                 + f", {len(failed)} failed"
                 + (f" ({', '.join(r.name for r in failed)})" if failed else ""))
        return not failed

    def _finish(self, stage: Stage, result: StageResult) -> None:
        self.results[stage.name] = result
        timing = f"{result.duration_s:.1f} s" if result.duration_s else ""
        if result.cpu_s is not None:
            timing += f", {result.cpu_s:.0f} CPU s"
        self.log(f"[{result.status:>11}] {stage.name}" + (f" ({timing})" if timing else "")
                 + (f": {result.message}" if result.message else ""))

    def _run_concurrently(self, todo: list[Stage], forced: bool, jobs: int) -> None:
        """Up to ``jobs`` stages at once, each started once every stage it reads has finished.

        Among the ready stages, the ones that are not training runs go first, then the
        profile's order: the reference run (first run line, the longest) starts first,
        and as soon as it ends its readers (evaluation, transfer) start beside the
        remaining ablations instead of after them (measured on the default profile:
        the transfer stage otherwise ran alone at the end while one core idled).
        """
        waiting = list(todo)
        unfinished = {s.name for s in todo}
        running: dict[concurrent.futures.Future, Stage] = {}
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="stage") as pool:
            while waiting or running:
                for stage in sorted(waiting, key=lambda s: s.role == "train"):  # stable: profile order within
                    if len(running) >= jobs:
                        break
                    if not any(d in unfinished for d in stage.deps + stage.soft_deps):
                        waiting.remove(stage)
                        running[pool.submit(self._run_stage, stage, forced)] = stage
                if not running:  # cannot happen with a valid stage list (deps point backwards); never hang
                    raise PipelineError(f"stages {[s.name for s in waiting]} wait on each other")
                done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    stage = running.pop(future)
                    try:
                        result = future.result()
                    except Exception as exc:  # noqa: BLE001 - a scheduler error fails that stage only
                        result = StageResult(stage.name, "failed", _short_error(exc))
                    unfinished.discard(stage.name)
                    self._finish(stage, result)

    def _profile_snapshot(self) -> dict:
        snap = {k: v for k, v in self.profile.items() if not k.startswith("_")}
        snap["profile_file"] = self.profile.get("_path")
        snap["run_groups"] = {g: list(ids) for g, ids in RUN_GROUPS.items()}
        return snap

    def _run_stage(self, stage: Stage, forced: bool) -> StageResult:
        # Fingerprinting parses code with ``ast``, which CPython 3.11 does not allow from two threads at once
        # ("AST constructor recursion depth mismatch"): concurrent stages take turns here, then run in parallel.
        with self._prepare_lock:
            prepared = self._prepare_stage(stage, forced)
        if isinstance(prepared, StageResult):
            return prepared
        nb_path, fp = prepared
        return self._execute(stage, nb_path, fp)

    def _prepare_stage(self, stage: Stage, forced: bool):
        """A finished result (skipped, unavailable, up to date, manifest) or ``(notebook, fingerprint)`` to run."""
        failed_deps = [d for d in stage.deps if self.results.get(d) and self.results[d].status in ("failed", "skipped")]
        missing_deps = [d for d in stage.deps if d not in self.fingerprints and d not in failed_deps]
        if failed_deps or missing_deps:
            why = f"dependency {', '.join(failed_deps + missing_deps)} did not complete"
            self._write_record(stage, status="skipped", error=why, ended=_now())
            return StageResult(stage.name, "skipped", why)
        if stage.name == "manifest":
            return self._run_manifest(stage)
        nb_path = self.notebook_path(stage)
        if not nb_path.is_file():
            why = f"notebook {nb_path.name} is not built yet"
            self._write_record(stage, status="unavailable", error=why, ended=_now())
            return StageResult(stage.name, "unavailable", why)
        package_hash = None
        if fingerprint_code_mode(self.profile, stage) == "package":
            if self._graph is None:
                from panns_core.study.codegraph import import_graph

                self._graph = import_graph()
            package_hash = package_code_hash(notebook_code(str(nb_path)), self._graph)
        fp = fingerprint(stage, notebook_code_hash(str(nb_path)), self._inputs(stage), package_hash)
        previous = read_stage_record(self.run_root, stage.name)
        if (not forced and previous and previous.get("status") == "completed"
                and previous.get("fingerprint") == fp and self._outputs_exist(stage)):
            self.fingerprints[stage.name] = fp
            return StageResult(stage.name, "up_to_date")
        self._clear_stale_run(stage, fp)
        self._write_record(stage, status="running", fingerprint=fp, started=_now())
        unknown = set(stage.parameters) - declared_parameters(str(nb_path))
        if unknown:
            why = (f"{nb_path.name}: parameter(s) {sorted(unknown)} are not declared in its parameters cell "
                   f"(check the profile {self.profile.get('_path')})")
            self._write_record(stage, status="failed", fingerprint=fp, ended=_now(), error=why)
            return StageResult(stage.name, "failed", why)
        return nb_path, fp

    def _clear_stale_run(self, stage: Stage, fp: str) -> None:
        """A training stage whose parameters changed starts from an empty run folder.

        With the same fingerprint (a crash, a kill) the folder is kept, so training
        resumes from ``checkpoints/latest.pt`` exactly where it stopped.
        """
        if stage.role != "train":
            return
        previous = read_stage_record(self.run_root, stage.name)
        run_dir = os.path.join(self.run_root, "train", stage.parameters["run_name"])
        if previous and previous.get("fingerprint") not in (None, fp) and os.path.isdir(run_dir):
            import shutil

            self.log(f"[{'clearing':>11}] {run_dir}: its configuration changed")
            shutil.rmtree(run_dir)

    def _drop_latest_checkpoint(self, stage: Stage) -> None:
        """``keep_latest_checkpoint: false`` deletes a finished run's ``latest.pt`` (resume state).

        The pipeline never resumes a *completed* run (a changed configuration
        starts from an empty folder), so on small profiles the optimizer state is
        only disk use; ``best.pt`` stays for evaluation, transfer and inference.
        """
        if stage.role != "train" or self.profile.get("keep_latest_checkpoint", True):
            return
        latest = os.path.join(self.run_root, "train", stage.parameters["run_name"], "checkpoints", "latest.pt")
        if os.path.exists(latest):
            os.remove(latest)

    def _execute(self, stage: Stage, nb_path: Path, fp: str) -> StageResult:
        started, t0 = _now(), time.time()
        self._write_record(stage, status="running", fingerprint=fp, started=started)
        try:
            out = stage.output_notebook(self.run_root)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            usage = execute_notebook(str(nb_path), out, stage.parameters, cwd=self.root,
                                     **({"threads": self.threads} if self.threads else {}))
            cpu_s = usage.get("cpu_s") if isinstance(usage, dict) else None
            if stage.name == "build_report":
                from panns_core.study.report import notebook_to_html

                notebook_to_html(out, os.path.join(self.run_root, "report.html"))
            missing = [p for p in stage.outputs if not os.path.exists(os.path.join(self.root, p))]
            if missing:
                raise PipelineError(f"{nb_path.name} finished but did not write {missing}")
        except Exception as exc:  # noqa: BLE001 - recorded, reported, and the pipeline goes on
            message = _short_error(exc)
            self._write_record(stage, status="failed", fingerprint=fp, started=started, ended=_now(),
                               duration_s=round(time.time() - t0, 2), error=message,
                               traceback=traceback.format_exc(limit=5))
            return StageResult(stage.name, "failed", message, time.time() - t0)
        self._drop_latest_checkpoint(stage)
        duration = time.time() - t0
        self._write_record(stage, status="completed", fingerprint=fp, started=started, ended=_now(),
                           duration_s=round(duration, 2), cpu_s=cpu_s, threads=self.threads)
        self.fingerprints[stage.name] = fp
        return StageResult(stage.name, "completed", "", duration, cpu_s)

    def not_in_profile(self) -> dict[str, str]:
        """Artefacts this profile does not make (not expected, so not 'missing').

        Those whose owner notebook it does not list, and the tables/figures of the paper's
        transfer tasks its transfer stage does not run (e.g. ``tasks: []`` on the generated corpus).
        """
        listed = {a for s in self.stages for a in s.artefacts}
        out = {a: f"not in this profile (its notebook {ARTEFACT_OWNERS[a]} is not listed)"
               for a in ARTEFACT_IDS if a not in listed}
        from panns_core.paper import TRANSFER_TASKS

        for stage in self.stages:
            if stage.role != "transfer" or "tasks" not in stage.parameters:
                continue
            tasks = stage.parameters["tasks"]
            run = set(TRANSFER_TASKS) if tasks == "all" else {tasks} if isinstance(tasks, str) else set(tasks or [])
            for task, (table_id, figure_id, name) in TRANSFER_TASKS.items():
                if task not in run:
                    for aid in (table_id, figure_id):
                        out.setdefault(aid, f"not in this profile ({stage.notebook} does not run the {name} "
                                            f"task: tasks {tasks!r})")
        return out

    def missing_reasons(self) -> dict[str, str]:
        """Why each artefact of a stage that did not complete is missing."""
        reasons = {}
        owner_stage = {}
        for s in self.stages:
            for a in s.artefacts:
                owner_stage[a] = s
        for artefact_id in ARTEFACT_IDS:
            stage = owner_stage.get(artefact_id)
            if stage is None:
                reasons[artefact_id] = (f"notebook {ARTEFACT_OWNERS[artefact_id]} is not part of profile "
                                        f"{self.profile['name']!r}")
                continue
            rec = read_stage_record(self.run_root, stage.name) or {}
            status = rec.get("status", "not run")
            if status != "completed":
                detail = f": {rec['error']}" if rec.get("error") else ""
                reasons[artefact_id] = f"stage {stage.name} {status}{detail}"
                continue
            upstream = []  # the owner ran, but a stage it reads may have failed
            for dep in stage.deps + stage.soft_deps:
                dep_rec = read_stage_record(self.run_root, dep) or {}
                if dep_rec.get("status") not in (None, "completed"):
                    upstream.append(f"stage {dep} {dep_rec['status']}"
                                    + (f": {dep_rec['error']}" if dep_rec.get("error") else ""))
            reasons[artefact_id] = (f"not written by {stage.notebook}"
                                    + (f" ({'; '.join(upstream)})" if upstream else ""))
        return reasons

    def _run_manifest(self, stage: Stage) -> StageResult:
        t0 = time.time()
        extra = {
            "data_source": self.profile["data_source"],
            "label": self.profile.get("label", ""),
            "profile_file": self.profile.get("_path"),
            "stages": {s.name: (read_stage_record(self.run_root, s.name) or {}).get("status", "not run")
                       for s in self.stages if s.name not in ("manifest", "build_report")},
        }
        manifest = build_manifest(self.figures_dir, self.profile["name"], missing_reasons=self.missing_reasons(),
                                  not_in_profile=self.not_in_profile(), root=self.root, extra=extra)
        write_json(manifest, os.path.join(self.run_root, "manifest.json"))
        fp = hashlib.sha256(json.dumps(manifest["artefacts"], sort_keys=True, default=str).encode()).hexdigest()
        self.fingerprints[stage.name] = fp
        self._write_record(stage, status="completed", fingerprint=fp, ended=_now(),
                           duration_s=round(time.time() - t0, 2),
                           produced=len(manifest["artefacts"]), missing=len(manifest["missing"]),
                           not_in_profile=len(manifest["not_in_profile"]))
        message = f"{len(manifest['artefacts'])} artefacts, {len(manifest['missing'])} missing"
        if manifest["not_in_profile"]:
            message += f", {len(manifest['not_in_profile'])} not in this profile"
        return StageResult(stage.name, "completed", message, time.time() - t0)


def _short_error(exc: BaseException) -> str:
    ename = getattr(exc, "ename", None)
    if ename:  # papermill's PapermillExecutionError
        return f"{ename}: {getattr(exc, 'evalue', '')}"[:2000]
    return f"{type(exc).__name__}: {exc}"[:2000]


# ----------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------


def run_pipeline(profile: str = DEFAULT_PROFILE, *, root: str = ".", force: bool = False,
                 only: Sequence[str] | None = None, start: str | None = None,
                 notebooks_dir: str | None = None, log: Callable[[str], None] = print,
                 jobs: int | None = None) -> bool:
    pipeline = Pipeline(load_profile(profile), root=root, notebooks_dir=notebooks_dir, log=log)
    return pipeline.run(force=force, only=only, start=start, jobs=jobs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m panns_core.study",
        description="Rerun the PANNs study: execute the notebooks of a profile with papermill.")
    parser.add_argument("--profile", default=DEFAULT_PROFILE,
                        help=f"packaged profile name ({', '.join(list_profiles())}) or a path to a YAML copy")
    parser.add_argument("--root", default=".", help="project folder for runs/ and figures/ (default: .)")
    parser.add_argument("--notebooks-dir", default=None, help="notebook folder (default: the source tree's notebooks/)")
    parser.add_argument("--force", action="store_true", help="rerun stages even when up to date")
    parser.add_argument("--only", action="append", metavar="STAGE", help="run only this stage (repeatable)")
    parser.add_argument("--from", dest="start", metavar="STAGE", help="rerun from this stage onwards")
    parser.add_argument("--jobs", type=int, default=None, metavar="N",
                        help="stages run at once, each with cpu_count/N threads (default: the profile's jobs, else 1)")
    parser.add_argument("--list", action="store_true", help="list the stages and their recorded status, run nothing")
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        parser.error("--jobs must be >= 1")
    try:
        pipeline = Pipeline(load_profile(args.profile), root=args.root, notebooks_dir=args.notebooks_dir)
        if args.list:
            for row in pipeline.plan():
                print(f"{row['stage']:<32} {row['notebook']:<34} {row['status']:<12} deps: {row['deps']}")
            return 0
        ok = pipeline.run(force=args.force, only=args.only, start=args.start, jobs=args.jobs)
    except (ProfileError, PipelineError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
