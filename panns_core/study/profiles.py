"""Profiles: the user's plain-YAML description of a study, read strictly, and the stages it implies.

A profile names the data, the training runs (one line each: TrainConfig overrides) and the
notebooks to execute; :func:`derive_stages` turns it into stages (one per notebook, one per
run line for the training notebook, then the manifest and the report), each with the
parameters its notebook receives and the stages it reads. The workflow
(:mod:`panns_core.study.workflow`) hands those stages to Snakemake.

Reading is strict because a typo must not silently change an experiment: a misspelt
``trian:`` would otherwise leave the paper's 600k-iteration recipe in place. Every key, at
every level, is checked against the code that consumes it (TrainConfig fields, the corpus
generator's, the acquirers' and the packer's keyword arguments, each notebook's parameters
cell), a duplicated YAML key is refused, and the error names the file, the key and the
nearest valid key.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

import yaml

from panns_core.study.notebook_roles import role_of, stems_with_role

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

DATA_SOURCES = ("generated", "audioset")
"""Sources the data stages can make; any other ``data_source`` (your own data) needs ``data: {packed: PATH}``."""

USER_DATA_TRAIN_DEFAULTS = {"max_eval_clips": 1000, "eval_splits": ["eval", "validation"]}
"""``train`` defaults of a profile on your own data (a ``data_source`` other than generated/audioset): each
evaluation scores at most 1,000 clips of the eval and validation splits (validation still chooses ``best.pt``),
not the whole training split too. A profile's own ``train`` values win."""

STUDY_TRAIN_DEFAULTS = {"log_every_s": 120}
"""``train`` defaults of every profile: a progress line in the stage's log every 2 minutes."""

FINGERPRINT_CODE_MODES = ("package", "notebook_only")
"""``package``: a stage reruns when its notebook's code or the source of any ``panns_core`` module it
imports (transitively) changes; ``notebook_only``: only the notebook's code and the package version count
(for multi-day training runs that a comment fix must not restart)."""

CLUSTER_ROLE_KEYS = ("runtime_minutes", "mem_mb", "cpus")
"""What a profile's ``cluster`` section may request per stage role (SLURM: ``-t``, ``--mem``, ``--cpus-per-task``)."""


class ProfileError(ValueError):
    """A profile file is malformed (the message names the file and the key)."""


# ----------------------------------------------------------------------------- reading YAML strictly


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last one silently)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False):
    loader.flatten_mapping(node)
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice in one mapping (first on line {seen[key] + 1})",
                key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def profile_path(name_or_path: str) -> Path:
    """``smoke`` -> the packaged ``profiles/smoke.yaml``; a path -> that file.

    Anything that looks like a path (has a separator or a .yaml/.yml suffix) is taken as the
    user's own copy, so a copied profile never shadows a packaged one by accident.
    """
    text = os.fspath(name_or_path)
    if os.sep in text or "/" in text or text.endswith((".yaml", ".yml")):
        path = Path(text)
        if not path.is_file():
            raise ProfileError(f"{path}: profile file not found")
        return path
    packaged = Path(str(resources.files(PROFILE_PACKAGE).joinpath(f"{text}.yaml")))
    if not packaged.is_file():
        raise ProfileError(f"unknown profile {text!r}: no {packaged}; packaged profiles: {', '.join(list_profiles())}")
    return packaged


def list_profiles() -> list[str]:
    folder = resources.files(PROFILE_PACKAGE)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_profile(name_or_path: str, notebooks_dir: str | os.PathLike | None = None) -> dict:
    """Read and validate a profile; returns a plain dict with ``_path`` added.

    ``notebooks_dir`` (default: the source tree's ``notebooks/``) is where each listed
    notebook's parameters cell is read, so that a misspelt notebook parameter is refused
    here too, before anything runs.
    """
    path = profile_path(name_or_path)
    try:
        with open(path, encoding="utf-8") as f:
            profile = yaml.load(f, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML ({exc})") from None
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not isinstance(profile, dict):
        raise ProfileError(f"{path}: a profile is a YAML mapping, got {type(profile).__name__}")
    expand_seeds(profile, path)
    validate_profile(profile, path, notebooks_dir=notebooks_dir)
    profile["_path"] = str(path)
    return profile


# ----------------------------------------------------------------------------- the schema


def _nearest(key: str, valid: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(key), sorted(valid), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def refuse_unknown(mapping: dict, valid: Iterable[str], where: str, path) -> None:
    """Raise naming the first key of ``mapping`` that is not in ``valid`` (and the nearest valid one)."""
    valid = set(valid)
    for key in mapping:
        if key not in valid:
            raise ProfileError(f"{path}: unknown key {where}{key!r}{_nearest(key, valid)} "
                               f"(valid here: {', '.join(sorted(map(str, valid)))})")


def _keywords(*functions, drop: Sequence[str] = ()) -> set[str]:
    """Keyword parameters of ``functions`` (what a profile section is passed to)."""
    names: set[str] = set()
    for fn in functions:
        for p in inspect.signature(fn).parameters.values():
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in drop:
                names.add(p.name)
    return names


def section_keys() -> dict[str, set[str]]:
    """Valid keys of ``data.generate``, ``data.acquire`` (per source) and ``data.pack``, read from the code."""
    from dataclasses import fields

    from panns_core.data import acquire as acq
    from panns_core.data import hf_audioset, pack, synthetic
    from panns_core.study import stages

    positional = ("data_root", "root", "split", "segments", "labels", "audios_dir", "out_h5")
    generate = _keywords(synthetic.generate_corpus, drop=positional) | {f.name for f in fields(synthetic.CorpusConfig)}
    common_acquire = {"splits", "source", "skip_metadata"}
    pack_keys = _keywords(stages.prepare_indexes, pack.pack_split, pack.pack_segments, drop=positional)
    return {
        "generate": generate,
        "acquire:yt-dlp": common_acquire | _keywords(acq.acquire_split, drop=positional),
        "acquire:hf": common_acquire | _keywords(hf_audioset.acquire_split_hf, drop=positional),
        "pack": pack_keys,
    }


PROFILE_KEYS = {
    "name": "the profile's name: runs/<name>/ and figures/<name>/",
    "description": "one paragraph for people",
    "data_source": "generated, audioset, or your data's name (with data.packed)",
    "label": "how tables label this profile's numbers",
    "data": "root / packed, generate, acquire, pack",
    "train": "TrainConfig defaults of every run",
    "runs": "run name -> TrainConfig overrides (+ groups, seeds)",
    "notebooks": "the notebooks in order, each a name or {name: {parameters}}",
    "dropped": "what this profile leaves out of the paper, and why (text)",
    "reference_run": "the run the tables and evaluation treat as the reference",
    "classwise_run": "the run Figs. 3 and 12 draw",
    "keep_latest_checkpoint": "keep latest.pt (resume state) after a run finished",
    "jobs": "stages at once on one machine, each with cores/jobs threads",
    "fingerprint_code": "role or stage -> package | notebook_only",
    "compare_to_paper": "whether tables show the paper's columns",
    "retries": "times a failed training stage is retried (each retry resumes from latest.pt)",
    "disk_check": "check free space before stages that write large files (default true)",
    "cluster": "SLURM requests: partition, account, and per role runtime_minutes, mem_mb, cpus",
}
DATA_KEYS = ("root", "packed", "generate", "acquire", "pack")
RUN_EXTRA_KEYS = ("groups", "seeds")
REQUIRED_PROFILE_KEYS = ("name", "data_source", "data", "notebooks")


def _check_type(value, kind, where: str, path) -> None:
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        names = {str: "text", int: "a whole number", bool: "true or false", dict: "a mapping", list: "a list"}
        raise ProfileError(f"{path}: {where} must be {names.get(kind, kind.__name__)}, got {value!r}")


def validate_profile(profile: dict, path, notebooks_dir: str | os.PathLike | None = None) -> None:
    """Refuse anything the code would not use as written; see the module docstring."""
    from panns_core.train import CONFIG_EXTRA_KEYS, TrainConfig

    refuse_unknown(profile, PROFILE_KEYS, "", path)
    missing = [k for k in REQUIRED_PROFILE_KEYS if k not in profile]
    if missing:
        raise ProfileError(f"{path}: missing key(s) {missing}")
    for key, kind in (("name", str), ("data", dict), ("notebooks", list), ("description", str), ("label", str),
                      ("train", dict), ("runs", dict), ("dropped", dict), ("keep_latest_checkpoint", bool),
                      ("jobs", int), ("fingerprint_code", dict), ("compare_to_paper", bool), ("retries", int),
                      ("disk_check", bool), ("cluster", dict)):
        if profile.get(key) is not None:
            _check_type(profile[key], kind, key, path)
    if not str(profile["name"]).replace("_", "").replace("-", "").isalnum():
        raise ProfileError(f"{path}: name {profile['name']!r} may use letters, digits, '_' and '-' only")
    data = profile["data"]
    refuse_unknown(data, DATA_KEYS, "data.", path)
    if not ("root" in data or data.get("packed")):
        raise ProfileError(f"{path}: data must be a mapping with a 'root' folder (or 'packed': an already packed copy)")
    source = profile["data_source"]
    if not isinstance(source, str) or not source.replace("_", "").replace("-", "").isalnum():
        raise ProfileError(f"{path}: data_source must be a name (generated, audioset or your data's), got {source!r}")
    if source not in DATA_SOURCES and not data.get("packed"):
        raise ProfileError(f"{path}: data_source {source!r} is not one the data stages can make ({DATA_SOURCES}); "
                           f"point data.packed at your packed copy (python -m panns_core.data pack)")
    keys = section_keys()
    for name in ("generate", "acquire", "pack"):
        section = data.get(name)
        if section is None:
            continue
        _check_type(section, dict, f"data.{name}", path)
        if name == "acquire":
            acquire_source = section.get("source", "yt-dlp")
            if acquire_source not in ("yt-dlp", "hf"):
                raise ProfileError(f"{path}: data.acquire.source must be 'yt-dlp' or 'hf', got {acquire_source!r}")
            refuse_unknown(section, keys[f"acquire:{acquire_source}"], f"data.acquire (source {acquire_source}).", path)
        else:
            refuse_unknown(section, keys[name], f"data.{name}.", path)

    train_fields = {f for f in TrainConfig.__dataclass_fields__} | set(CONFIG_EXTRA_KEYS)
    refuse_unknown(profile.get("train") or {}, train_fields, "train.", path)
    runs = profile.get("runs") or {}
    for name, spec in runs.items():
        if not isinstance(spec, dict):
            raise ProfileError(f"{path}: run {name!r} must be a mapping of TrainConfig overrides")
        if not str(name).replace("_", "").replace("-", "").isalnum():
            raise ProfileError(f"{path}: run name {name!r} may use letters, digits, '_' and '-' only")
        refuse_unknown(spec, train_fields | set(RUN_EXTRA_KEYS), f"runs.{name}.", path)
        for group in spec.get("groups", []) or []:
            if group not in RUN_GROUPS:
                raise ProfileError(f"{path}: run {name!r} names unknown group {group!r}; known: {', '.join(RUN_GROUPS)}")
        config = run_config(profile, name)
        try:
            TrainConfig.from_dict({**config, "data_root": "-", "run_dir": "-"}, source=f"{path}: run {name!r}")
        except (ValueError, TypeError) as exc:
            raise ProfileError(str(exc)) from None
    for key, mode in (profile.get("fingerprint_code") or {}).items():
        if mode not in FINGERPRINT_CODE_MODES:
            raise ProfileError(f"{path}: fingerprint_code.{key} must be one of {FINGERPRINT_CODE_MODES}, got {mode!r}")
    if profile.get("jobs") is not None and profile["jobs"] < 1:
        raise ProfileError(f"{path}: jobs must be a whole number >= 1 (stages run at once), got {profile['jobs']!r}")
    if profile.get("retries") is not None and profile["retries"] < 0:
        raise ProfileError(f"{path}: retries must be >= 0, got {profile['retries']!r}")
    _validate_cluster(profile.get("cluster") or {}, path)
    for key in ("reference_run", "classwise_run"):
        if profile.get(key) is not None and profile[key] not in runs:
            raise ProfileError(f"{path}: {key} {profile[key]!r} is not one of the runs")
    items = notebook_items(profile, path)
    folder = Path(notebooks_dir) if notebooks_dir else default_notebooks_dir()
    for stem, params in items:
        try:
            role_of(stem)
        except KeyError as exc:
            raise ProfileError(f"{path}: {exc.args[0]}") from None
        notebook = folder / f"{stem}.ipynb"
        if params and notebook.is_file():
            refuse_unknown(params, declared_parameters(str(notebook)), f"notebooks.{stem}.", path)


def _validate_cluster(cluster: dict, path) -> None:
    roles = {"default", "train", "evaluate", "transfer", "released", "acquire", "pack"}
    refuse_unknown(cluster, {"partition", "account", *roles}, "cluster.", path)
    for role in roles & set(cluster):
        _check_type(cluster[role], dict, f"cluster.{role}", path)
        refuse_unknown(cluster[role], CLUSTER_ROLE_KEYS, f"cluster.{role}.", path)
        for key, value in cluster[role].items():
            _check_type(value, int, f"cluster.{role}.{key}", path)


def notebook_items(profile: dict, path) -> list[tuple[str, dict]]:
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


# ----------------------------------------------------------------------------- stages


@dataclass
class Stage:
    """One unit of work: a notebook execution (or the manifest step)."""

    name: str
    notebook: str | None  # notebook stem; None for the manifest step
    parameters: dict
    role: str = ""        # the notebook's role (panns_core.study.notebook_roles), or "manifest"
    deps: list[str] = field(default_factory=list)        # stages it needs
    soft_deps: list[str] = field(default_factory=list)   # stages whose results it reads (tables read the runs)
    outputs: list[str] = field(default_factory=list)     # paths (relative to root) it must leave behind
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
    return {"profile": name, "run_root": f"runs/{name}", "figures_dir": f"figures/{name}"}


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
    config = dict(STUDY_TRAIN_DEFAULTS)
    if profile["data_source"] not in DATA_SOURCES:
        config.update(copy.deepcopy(USER_DATA_TRAIN_DEFAULTS))
    config.update(copy.deepcopy(profile.get("train") or {}))
    config.update(spec)
    return config


def _section(profile: dict, key: str) -> dict:
    return dict(profile["data"].get(key) or {})


def derive_stages(profile: dict) -> list[Stage]:
    """The ordered stage list of a profile.

    What each notebook is given and waits for comes from its row in
    :data:`panns_core.study.notebook_roles.NOTEBOOK_ROLES`. The training notebook expands to
    one stage per run line (``train_<run>``), so adding an ablation to a profile is one line
    and reruns only that run and the tables that read it.
    """
    path = profile.get("_path", "<profile>")
    common = common_parameters(profile)
    data = _data_parameters(profile)
    run_root = common["run_root"]
    stages: list[Stage] = []
    by_role: dict[str, list[str]] = {}

    def earlier(roles) -> list[str]:
        return [name for role in roles for name in by_role.get(role, [])]

    for stem, extra in notebook_items(profile, path):
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
        if "device" in role.parameters and "device" not in extra:
            params["device"] = (profile.get("train") or {}).get("device", "cpu")
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
                        soft_deps=everything, outputs=[f"{run_root}/manifest.json"]))
    stages.append(Stage(name="build_report", notebook=REPORT_NOTEBOOK, role="report",
                        parameters={**common, "data_source": profile["data_source"],
                                    "label": profile.get("label", "")},
                        soft_deps=everything + ["manifest"], outputs=[f"{run_root}/report.html"]))
    names = [s.name for s in stages]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ProfileError(f"{path}: duplicate stage name(s) {dupes}")
    return stages


def _referenced_runs(params: dict, run_root: str, train_names: Sequence[str]) -> list[str]:
    """Train stages whose run folder a parameter points into (e.g. a transfer checkpoint)."""
    text = json.dumps(params, default=str)
    return [name for name in train_names if f"{run_root}/train/{name[len('train_'):]}/" in text]


def stage_device(stage: Stage) -> str:
    """``cuda`` or ``cpu``: where the stage's notebook computes (training: its config's device)."""
    if stage.role == "train":
        device = stage.parameters["config"].get("device", "cuda")
    else:
        device = stage.parameters.get("device", "cpu")
    return "cuda" if str(device).startswith("cuda") else "cpu"


def stage_gpus(stage: Stage) -> int:
    """GPUs a stage holds while it runs: ``nproc_per_node`` for training on CUDA, 1 for other CUDA stages."""
    if stage_device(stage) != "cuda":
        return 0
    if stage.role == "train":
        return int(stage.parameters.get("nproc_per_node", 1) or 1)
    return 1


# ----------------------------------------------------------------------------- notebooks


def default_notebooks_dir() -> Path:
    """``notebooks/`` of the source tree this package was imported from."""
    return Path(__file__).resolve().parents[2] / "notebooks"


def declared_parameters(notebook_path: str) -> set[str]:
    """Names assigned in the notebook's ``parameters`` cell.

    Parsed with :mod:`ast` (papermill's own inspector trips over quotes in comments), so a
    profile typo is caught before any kernel starts.
    """
    import ast

    import nbformat

    nb = nbformat.read(notebook_path, as_version=4)
    cell = next((c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])), None)
    if cell is None:
        raise ProfileError(f"{notebook_path}: no code cell tagged 'parameters'")
    try:
        tree = ast.parse(cell.source)
    except SyntaxError as exc:
        raise ProfileError(f"{notebook_path}: parameters cell is not valid Python ({exc})") from exc
    names = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for t in targets:
            names.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
    return names
