"""``python -m panns_core.study --profile NAME``: plan a profile's stages, let Snakemake run them.

The profile (plain YAML, :mod:`panns_core.study.profiles`) says what the study is; this module
turns it into a *plan* (``runs/<profile>/workflow/plan.json``: every stage with its parameters,
fingerprint, threads, GPUs, retries, disk need and cluster requests) and hands the plan to
Snakemake, which schedules the jobs of the packaged ``Snakefile`` (local cores, a ``gpu``
resource, or SLURM through the executor plugin). Each job executes one notebook with papermill
(:mod:`panns_core.study.jobs`).

* **Reruns.** A stage's fingerprint covers its parameters, its notebook's code, the source of
  every ``panns_core`` module that code imports (``fingerprint_code: package``, the default)
  and the fingerprints of the stages it reads; Snakemake reruns a stage whose fingerprint
  changed ("params have changed") or whose inputs were rewritten. ``-n`` shows what would run
  and why.
* **One writer.** The run root ``runs/<profile>`` is locked for the whole invocation (and for
  Snakemake, which inherits the lock): a second invocation stops with a sentence naming the
  holder; a lock left by a killed process is cleared.
* **Concurrency.** ``--cores`` (default: every core) shared by stages of ``cores // jobs``
  threads each (the profile's ``jobs``); GPUs through ``--gpus`` ids, each stage on CUDA
  holding distinct ones (:mod:`panns_core.study.machine`).
* **Failures.** Independent stages go on (``--keep-going``); a failed training stage is retried
  (``retries``, resuming from ``latest.pt``); when anything failed, the manifest and the report
  are still written, saying what is missing and why.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

from panns_core import __version__
from panns_core.fsutil import LockHeld, exclusive_lock, write_json
from panns_core.study import jobs, machine
from panns_core.study.artefacts import ARTEFACT_IDS, ARTEFACT_OWNERS
from panns_core.study.profiles import (RUN_GROUPS, ProfileError, Stage, declared_parameters, default_notebooks_dir,
                                       derive_stages, list_profiles, load_profile, stage_gpus)

DEFAULT_PROFILE = "smoke"
LAST_PROFILE_FILE = "last_profile.json"
"""Written to ``runs/`` at every start: the profile the notebooks open on by default."""
SNAKEFILE = Path(__file__).resolve().parent / "Snakefile"
DEFAULT_TRAIN_RETRIES = 1
"""A failed training stage runs once more (resuming from ``latest.pt``) unless the profile says ``retries``."""


class StudyError(RuntimeError):
    """The study could not be planned or started (the message says why and what to do)."""


# ----------------------------------------------------------------------------- code hashing


def notebook_code(path: str) -> str:
    """The code cells' sources, joined (narrative, outputs and metadata left out)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    return "\0".join(cell.source for cell in nb.cells if cell.cell_type == "code")


def notebook_code_hash(path: str) -> str:
    """Hash of the code cells' sources only: narrative, outputs and metadata never trigger a rerun."""
    return hashlib.sha256(notebook_code(path).encode()).hexdigest()


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

    A cell that is not valid Python even without magics makes the answer the whole package: a
    fingerprint may cover too much, never too little.
    """
    from panns_core.study import codegraph

    package_dir = package_dir or codegraph.PACKAGE_DIR
    cells = [_cell_imports_source(cell) for cell in code.split("\0")]
    if any(cell is None for cell in cells):
        return set(codegraph.package_modules(package_dir))
    return codegraph.modules_used_by("\n".join(cells), package_dir, graph=graph)


def package_code_hash(code: str, graph: dict | None = None, package_dir=None) -> str:
    """sha256 over the sources of the package modules the notebook code reaches."""
    from panns_core.study import codegraph

    package_dir = package_dir or codegraph.PACKAGE_DIR
    return codegraph.source_hash(package_modules_of_notebook(code, graph, package_dir), package_dir)


def fingerprint_code_mode(profile: dict, stage: Stage) -> str:
    """The profile's ``fingerprint_code`` entry for this stage (by stage name, then by role)."""
    modes = profile.get("fingerprint_code") or {}
    return modes.get(stage.name, modes.get(stage.role, "package"))


def fingerprint(stage: Stage, notebook_hash: str | None, inputs: dict, package_hash: str | None = None) -> str:
    """What decides a rerun: the stage, its parameters and notebook code, the package code it
    runs (``package_hash``; None under ``fingerprint_code: notebook_only``) and its inputs' fingerprints."""
    return jobs.fingerprint_digest({
        "stage": stage.name, "notebook": stage.notebook, "notebook_code": notebook_hash,
        "package_code": package_hash, "parameters": stage.parameters, "package_version": __version__,
        "inputs": inputs,
    })


# ----------------------------------------------------------------------------- the plan


def not_in_profile(profile: dict, stages: Sequence[Stage]) -> dict[str, str]:
    """Artefacts this profile does not make (not expected, so not 'missing'): those whose owner notebook it
    does not list, and the tables/figures of the paper's transfer tasks its transfer stage does not run."""
    from panns_core.paper import TRANSFER_TASKS

    listed = {a for s in stages for a in s.artefacts}
    out = {a: f"not in this profile (its notebook {ARTEFACT_OWNERS[a]} is not listed)"
           for a in ARTEFACT_IDS if a not in listed}
    for stage in stages:
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


def switch_device(profile: dict, device: str) -> dict:
    """The profile with every training run, evaluation and transfer on ``device`` (``--device cpu`` runs a
    GPU profile on a CPU machine: the gpu-smoke profile in the test suite)."""
    profile = copy.deepcopy(profile)
    profile.setdefault("train", {})["device"] = device
    for name, spec in (profile.get("runs") or {}).items():
        if "device" in spec:
            spec["device"] = device
    return profile


def profile_snapshot(profile: dict) -> dict:
    """``runs/<profile>/profile.json``: the profile as run (the tables read which run is which)."""
    snap = {k: v for k, v in profile.items() if not k.startswith("_")}
    snap["profile_file"] = profile.get("_path")
    snap["run_groups"] = {g: list(ids) for g, ids in RUN_GROUPS.items()}
    return snap


def make_plan(profile: dict, *, root: str = ".", notebooks_dir: str | os.PathLike | None = None,
              cores: int | None = None, jobs_at_once: int | None = None, gpu_ids: Sequence[str] = (),
              executor: str | None = None) -> dict:
    """Everything Snakemake and the jobs need, computed once: stages, fingerprints, resources.

    Threads per stage: ``cores // jobs`` on one machine; under SLURM (``executor``) the role's ``cluster.cpus``."""
    root = os.path.abspath(root)
    notebooks = Path(notebooks_dir) if notebooks_dir else default_notebooks_dir()
    stages = derive_stages(profile)
    path = profile.get("_path", "<profile>")
    name = profile["name"]
    run_root_rel = f"runs/{name}"
    cores = int(cores or os.cpu_count() or 1)
    # stages at once: the profile's jobs; on a GPU box without one, as many as there are GPUs
    uses_gpus = any(stage_gpus(s) for s in stages)
    at_once = int(jobs_at_once or profile.get("jobs") or (len(gpu_ids) if uses_gpus and gpu_ids else 1))
    threads = max(1, cores // at_once)
    graph = None
    fingerprints: dict[str, str] = {}
    planned = []
    train_names = [s.name for s in stages if s.role == "train"]
    retries = profile.get("retries", DEFAULT_TRAIN_RETRIES)
    cluster = profile.get("cluster") or {}
    for stage in stages:
        nb_hash = package_hash = None
        if stage.notebook:
            nb_path = notebooks / f"{stage.notebook}.ipynb"
            if not nb_path.is_file():
                raise StudyError(f"{path}: notebook {nb_path} does not exist (listed as {stage.notebook!r})")
            unknown = set(stage.parameters) - declared_parameters(str(nb_path))
            if unknown:
                raise StudyError(f"{nb_path.name}: parameter(s) {sorted(unknown)} are not declared in its parameters "
                                 f"cell (check the profile {path})")
            nb_hash = notebook_code_hash(str(nb_path))
            if fingerprint_code_mode(profile, stage) == "package":
                if graph is None:
                    from panns_core.study.codegraph import import_graph

                    graph = import_graph()
                package_hash = package_code_hash(notebook_code(str(nb_path)), graph)
        inputs = {d: fingerprints[d] for d in stage.deps + stage.soft_deps}
        fingerprints[stage.name] = fingerprint(stage, nb_hash, inputs, package_hash)
        gpus = stage_gpus(stage)
        if gpus and len(gpu_ids) < gpus and not executor:  # on a cluster SLURM assigns the GPUs
            raise StudyError(
                f"{path}: stage {stage.name} computes on CUDA with {gpus} GPU(s), and "
                + (f"only {len(gpu_ids)} GPU id(s) were given ({','.join(gpu_ids)})" if gpu_ids else "no GPU was found")
                + ": pass --gpus 0,1,... (the ids this machine has), or --device cpu to run the profile on the CPU")
        role_cluster = {**(cluster.get("default") or {}), **(cluster.get(stage.role) or {})}
        resources = {"gpu": gpus}
        if role_cluster.get("runtime_minutes"):
            resources["runtime"] = role_cluster["runtime_minutes"]
        if role_cluster.get("mem_mb"):
            resources["mem_mb"] = role_cluster["mem_mb"]
        if role_cluster.get("cpus"):
            resources["cpus_per_task"] = role_cluster["cpus"]
        if cluster.get("partition"):
            resources["slurm_partition"] = cluster["partition"]
        if cluster.get("account"):
            resources["slurm_account"] = cluster["account"]
        disk = machine.stage_disk_need(stage, profile["data"].get("root") or profile["data"].get("packed") or ".")
        priority = 100 if stage.role != "train" else 50 + len(train_names) - train_names.index(stage.name)
        planned.append({
            **asdict(stage), "rule": "stage_" + stage.name.replace("-", "_"),
            "fingerprint": fingerprints[stage.name], "gpus": gpus,
            "threads": int(role_cluster.get("cpus") or 1) if executor else threads,
            "retries": retries if stage.role == "train" else 0, "priority": priority, "resources": resources,
            "disk": None if disk is None else {"bytes": disk[0], "folder": disk[1], "what": disk[2]},
        })
    return {
        "profile": name, "profile_file": profile.get("_path"), "label": profile.get("label", ""),
        "data_source": profile["data_source"], "root": root, "run_root": os.path.join(root, run_root_rel),
        "figures_dir": os.path.join(root, f"figures/{name}"), "notebooks_dir": str(notebooks.resolve()),
        "cores": cores, "jobs": at_once, "gpu_ids": list(gpu_ids),
        "gpu_slot_dir": os.path.join(root, "runs", ".gpu_slots"),
        "disk_check": profile.get("disk_check", True), "keep_latest_checkpoint": profile.get("keep_latest_checkpoint", True),
        "not_in_profile": not_in_profile(profile, stages), "stages": planned, "package_version": __version__,
    }


def write_plan(plan: dict) -> str:
    path = os.path.join(plan["run_root"], "workflow", "plan.json")
    plan["plan_file"] = path
    write_json(plan, path)
    return path


def forget_vanished_outputs(plan: dict) -> list[str]:
    """Stages marked done whose outputs were deleted since: their marker goes, so Snakemake reruns them."""
    forgotten = []
    for stage in plan["stages"]:
        marker = jobs.done_path(plan["run_root"], stage["name"])
        if not os.path.exists(marker):
            continue
        expected = [os.path.join(plan["root"], p) for p in stage["outputs"]]
        if stage.get("notebook"):
            expected.append(jobs.output_notebook(plan["run_root"], stage))
        record = jobs.read_stage_record(plan["run_root"], stage["name"]) or {}
        if record.get("status") != "completed" or not all(os.path.exists(p) for p in expected):
            os.remove(marker)
            forgotten.append(stage["name"])
    return forgotten


# ----------------------------------------------------------------------------- estimates


def cost_lines(plan: dict) -> list[str]:
    """What a profile with big stages will need: disk per stage and estimated GPU hours (printed before starting)."""
    lines, total_disk, total_hours = [], 0, 0.0
    for stage in plan["stages"]:
        hours = machine.gpu_hours(stage["parameters"]["config"]) if stage["role"] == "train" else None
        disk = stage.get("disk")
        if disk:
            total_disk += disk["bytes"]
        if hours:
            total_hours += hours * max(1, stage["gpus"])
        if (disk and disk["bytes"] > 1e9) or hours:
            lines.append(f"  {stage['name']:<28} " + (f"disk {machine.human_bytes(disk['bytes']):>9}" if disk else " " * 14)
                         + (f"   ~{hours:,.1f} GPU h" if hours else ""))
    if not lines:
        return []
    head = [f"expected for profile {plan['profile']}: disk {machine.human_bytes(total_disk)}"
            + (f", ~{total_hours:,.0f} GPU hours" if total_hours else "")
            + (" (GPU hours scaled from CNN14's 490 clips/s on one H200, fp32; an estimate)" if total_hours else "")]
    return head + lines


# ----------------------------------------------------------------------------- status


def pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError):
        return False
    return True


def last_line(path: str, limit: int = 65536) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            lines = [l.strip() for l in f.read().decode("utf-8", "replace").splitlines() if l.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def stage_status(plan: dict, stage: dict, at: float | None = None) -> dict:
    """done / running (for how long, last log line) / interrupted / failed (last error line) / waiting."""
    import datetime as dt
    import socket

    at = time.time() if at is None else at
    rec = jobs.read_stage_record(plan["run_root"], stage["name"]) or {}
    done = os.path.exists(jobs.done_path(plan["run_root"], stage["name"]))
    status, detail = "waiting", ""
    log = jobs.log_path(plan["run_root"], stage["name"])
    started = rec.get("started")
    since = (at - dt.datetime.fromisoformat(started).timestamp()) if started else None
    if rec.get("status") == "running":
        here = rec.get("host") == socket.gethostname()
        if here and not pid_alive(rec.get("pid")):
            status, detail = "interrupted", f"its process {rec.get('pid')} is gone; the next run resumes it"
        else:
            status = "running"
            detail = (f"for {_ago(since)}" if since is not None else "") + (f" on {rec.get('host')}" if not here else "")
            if rec.get("gpus"):
                detail += f", GPU {','.join(rec['gpus'])}"
            tail = last_line(log)
            detail += f"; last log line: {tail}" if tail else ""
    elif rec.get("status") == "failed":
        status, detail = "failed", (rec.get("error") or "").splitlines()[0] if rec.get("error") else ""
    elif done and rec.get("status") == "completed":
        status = "done"
        detail = f"{rec.get('duration_s', 0):.0f} s" + (f", {rec['cpu_s']:.0f} CPU s" if rec.get("cpu_s") else "")
        if rec.get("fingerprint") != stage["fingerprint"]:
            status, detail = "outdated", "its parameters or code changed since it ran"
    return {"stage": stage["name"], "notebook": stage.get("notebook") or "-", "status": status, "detail": detail,
            "deps": ",".join(stage["deps"]) or "-"}


def status_rows(plan: dict) -> list[dict]:
    return [stage_status(plan, s) for s in plan["stages"]]


def format_status(rows: list[dict], with_deps: bool = False) -> str:
    out = []
    for r in rows:
        line = f"{r['stage']:<30} {r['status']:<12} {r['detail']}"
        if with_deps:
            line = f"{r['stage']:<30} {r['notebook']:<32} {r['status']:<12} deps: {r['deps']}"
        out.append(line.rstrip())
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    out.append(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return "\n".join(out)


# ----------------------------------------------------------------------------- running


@dataclass
class StudyResult:
    ok: bool
    returncode: int
    plan: dict
    seconds: float

    def statuses(self) -> dict[str, str]:
        return {r["stage"]: r["status"] for r in status_rows(self.plan)}


def snakemake_command(plan_file: str, plan: dict, *, cores: int, gpu_ids: Sequence[str], dry_run: bool = False,
                      force: bool = False, only: Sequence[str] = (), start: str | None = None,
                      executor: str | None = None, max_jobs: int | None = None, extra: Sequence[str] = ()) -> list[str]:
    rules = {s["name"]: s["rule"] for s in plan["stages"]}
    targets = [rules[n] for n in only]  # these stages (and what they need that is not done); default: all
    cmd = [sys.executable, "-m", "snakemake", *targets, "--snakefile", str(SNAKEFILE), "--directory", plan["run_root"],
           "--config", f"plan={plan_file}", "--keep-going", "--rerun-incomplete", "--nolock", "--scheduler", "greedy"]
    if gpu_ids or not executor:  # GPU stages at once: the ids given (on a cluster without ids: as SLURM schedules)
        cmd += ["--resources", f"gpu={len(gpu_ids)}"]
    if executor:
        cmd += ["--executor", executor, "--jobs", str(max_jobs or 100)]
    else:
        cmd += ["--cores", str(cores)]
    if dry_run:
        cmd += ["--dry-run"]
    else:
        cmd += ["--quiet", "rules", "host"]
    if force:
        cmd += ["--forceall"]
    forced = [rules[n] for n in (list(only) + ([start] if start else []))]
    if forced:
        cmd += ["--forcerun", *forced]
    cmd += list(extra)
    return cmd


def check_executor(executor: str | None, dry_run: bool = False) -> None:
    """Stop with one sentence, before anything is written, when the executor cannot run here."""
    if not executor:
        return
    import importlib.util

    plugins = [f"snakemake-executor-plugin-{executor}"] + (["snakemake-executor-plugin-slurm-jobstep"]
                                                           if executor == "slurm" else [])
    for package in plugins:
        if importlib.util.find_spec(package.replace("-", "_")) is None:
            raise StudyError(f"the {executor} executor needs Snakemake's plugin {package}, which is not installed "
                             f"in this environment: pip install {package}")
    if executor == "slurm" and not dry_run and shutil.which("sbatch") is None:
        raise StudyError("--slurm submits every stage with sbatch, which is not on PATH: run it on the cluster's "
                         "login node (or leave out --slurm to run the stages on this machine)")


def _selected(plan: dict, names: Sequence[str]) -> None:
    known = [s["name"] for s in plan["stages"]]
    for n in names:
        if n not in known:
            raise StudyError(f"unknown stage {n!r}; stages of profile {plan['profile']!r}: {', '.join(known)}")


def run_study(profile: str | dict = DEFAULT_PROFILE, *, root: str = ".", notebooks_dir=None, cores: int | None = None,
              jobs_at_once: int | None = None, gpus: str | Sequence[str] | None = None, device: str | None = None,
              force: bool = False, only: Sequence[str] = (), start: str | None = None, dry_run: bool = False,
              executor: str | None = None, max_jobs: int | None = None, wait: bool = False,
              log: Callable[[str], None] = print, snakemake_args: Sequence[str] = ()) -> StudyResult:
    """Plan ``profile`` and run it with Snakemake under ``root``; returns when Snakemake does.

    ``snakemake_args`` go to Snakemake as they are (e.g. the SLURM plugin's ``--slurm-qos``)."""
    t0 = time.time()
    check_executor(executor, dry_run)
    profile = load_profile(profile, notebooks_dir=notebooks_dir) if isinstance(profile, str) else profile
    if device:
        profile = switch_device(profile, device)
    root = os.path.abspath(root)
    gpu_ids = machine.parse_gpu_ids(gpus) if gpus not in (None, "auto") else []
    run_root = os.path.join(root, "runs", profile["name"])
    os.makedirs(run_root, exist_ok=True)
    lock_path = os.path.join(run_root, ".lock")
    with contextlib.ExitStack() as stack:
        if not dry_run:
            stack.enter_context(exclusive_lock(lock_path, f"run folder runs/{profile['name']}", wait=wait, log=log,
                                               command=f"panns_core.study --profile {profile['name']}"))
        if gpus in (None, "auto") and not executor and any(stage_gpus(s) for s in derive_stages(profile)):
            gpu_ids = machine.detect_gpus()
        plan = make_plan(profile, root=root, notebooks_dir=notebooks_dir, cores=cores, jobs_at_once=jobs_at_once,
                         gpu_ids=gpu_ids, executor=executor)
        _selected(plan, list(only) + ([start] if start else []))
        plan_file = write_plan(plan)
        for line in cost_lines(plan):
            log(line)
        if not dry_run:
            write_json(profile_snapshot(profile), os.path.join(run_root, "profile.json"))
            write_json({"profile": profile["name"], "run_root": f"runs/{profile['name']}",
                        "profile_file": profile.get("_path"), "started": jobs.now()},
                       os.path.join(root, "runs", LAST_PROFILE_FILE))
            forgotten = forget_vanished_outputs(plan)
            if forgotten:
                log(f"rerunning {', '.join(forgotten)}: outputs deleted or left unfinished since their last run")
        cmd = snakemake_command(plan_file, plan, cores=plan["cores"], gpu_ids=gpu_ids, dry_run=dry_run, force=force,
                                only=only, start=start, executor=executor, max_jobs=max_jobs, extra=snakemake_args)
        lock_fd = None
        if not dry_run:  # Snakemake inherits the lock: a killed wrapper does not free the run root while it runs
            lock_fd = os.open(lock_path, os.O_RDONLY)
        try:
            returncode = _run_snakemake(cmd, root, log, quiet=not dry_run,
                                        pass_fds=(lock_fd,) if lock_fd is not None else ())
        finally:
            if lock_fd is not None:
                os.close(lock_fd)
        result = StudyResult(ok=returncode == 0, returncode=returncode, plan=plan, seconds=time.time() - t0)
        if not dry_run:
            _finish(result, log)
        return result


SNAKEMAKE_CHATTER = ("Select jobs to execute", "Execute ", "Finished jobid", "Assuming unrestricted shared",
                     "Building DAG of jobs", "Using shell:", "Provided cores:", "Rules claiming more threads",
                     "Provided resources:", "Job stats:", "job ", "----", "total ", "stage_", "all ", "Complete log",
                     "host:", "Conda environments: ignored", "Singularity containers: ignored")


def _run_snakemake(cmd: list[str], cwd: str, log: Callable[[str], None], *, quiet: bool, pass_fds=()) -> int:
    """Run Snakemake, passing its output line by line to ``log`` (its bookkeeping chatter dropped when ``quiet``)."""
    import re

    stamp = re.compile(r"^\[\w{3} \w{3} +\d+ [\d:]+ \d{4}\]$")
    with subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                          pass_fds=pass_fds) as proc:
        for line in proc.stdout:
            line = line.rstrip("\n")
            if quiet and (not line.strip() or stamp.match(line) or line.startswith(SNAKEMAKE_CHATTER)):
                continue
            log(line)
        return proc.wait()


def _finish(result: StudyResult, log: Callable[[str], None]) -> None:
    """Summary line; after a failure, the manifest and report still say what exists and what is missing."""
    plan = result.plan
    rows = status_rows(plan)
    failed = [r["stage"] for r in rows if r["status"] in ("failed", "interrupted")]
    if failed:
        log(f"writing the manifest and report of what exists ({len(failed)} stage(s) failed)")
        for name in ("manifest", "build_report"):
            if name in {s["name"] for s in plan["stages"]}:
                jobs.run_job(plan, name, threads=plan["cores"], console=_Console(log), partial=True)
    cpu = sum((jobs.read_stage_record(plan["run_root"], s["name"]) or {}).get("cpu_s") or 0 for s in plan["stages"])
    done = sum(r["status"] == "done" for r in status_rows(plan))
    log(f"study {plan['profile']}: {done} of {len(rows)} stage(s) done in {result.seconds:.1f} s"
        + (f", kernels {cpu:.0f} CPU s" if cpu else "") + f", {len(failed)} failed"
        + (f" ({', '.join(failed)}; logs in runs/{plan['profile']}/logs/)" if failed else ""))
    result.ok = result.ok and not failed


class _Console:
    def __init__(self, log):
        self.log = log

    def write(self, text):
        for line in text.rstrip("\n").splitlines():
            self.log(line)

    def flush(self):
        pass


def plan_for_status(profile: str, root: str = ".", notebooks_dir=None) -> dict:
    """The plan of ``profile`` for ``--status``/``--list`` (the fingerprints tell done from outdated)."""
    loaded = load_profile(profile, notebooks_dir=notebooks_dir)
    written = os.path.join(os.path.abspath(root), "runs", loaded["name"], "workflow", "plan.json")
    gpu_ids: list[str] = []
    if os.path.exists(written):
        with open(written, encoding="utf-8") as f:
            gpu_ids = json.load(f).get("gpu_ids", [])
    needs_gpu = any(stage_gpus(s) for s in derive_stages(loaded))
    if needs_gpu and not gpu_ids:
        gpu_ids = [str(i) for i in range(max(stage_gpus(s) for s in derive_stages(loaded)))]
    return make_plan(loaded, root=root, notebooks_dir=notebooks_dir, gpu_ids=gpu_ids)


# ----------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m panns_core.study",
        description="Run the PANNs study of a profile: Snakemake schedules the stages, papermill executes the notebooks.",
        epilog="Arguments after -- go to Snakemake as they are, e.g. --slurm -- --slurm-qos=long --slurm-logdir LOGS "
               "(the SLURM plugin's settings: python -m snakemake --help).")
    parser.add_argument("--profile", default=DEFAULT_PROFILE,
                        help=f"packaged profile name ({', '.join(list_profiles())}) or a path to a YAML copy")
    parser.add_argument("--root", default=".", help="project folder for runs/ and figures/ (default: .)")
    parser.add_argument("--notebooks-dir", default=None, help="notebook folder (default: the source tree's notebooks/)")
    parser.add_argument("--status", action="store_true",
                        help="each stage: done / running (for how long, last log line) / waiting / failed (last error)")
    parser.add_argument("--list", action="store_true", help="the stages, their notebooks, status and dependencies")
    parser.add_argument("-n", "--dry-run", action="store_true", help="what would run, and why (Snakemake's reasons)")
    parser.add_argument("--force", action="store_true", help="rerun every stage")
    parser.add_argument("--only", action="append", default=[], metavar="STAGE",
                        help="run this stage (and what it needs that is not done); repeatable")
    parser.add_argument("--from", dest="start", metavar="STAGE", help="rerun this stage and everything after it")
    parser.add_argument("--cores", type=int, default=None, help="CPU cores to use (default: all)")
    parser.add_argument("--jobs", type=int, default=None, metavar="N",
                        help="stages at once, each with cores/N threads (default: the profile's jobs, else 1)")
    parser.add_argument("--gpus", default=None, metavar="IDS",
                        help="GPU ids the study may use, e.g. 0,1,2,3 (default: every visible GPU when the profile "
                             "trains on cuda; with --slurm: SLURM's assignment); each CUDA stage gets its own")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help="run every training, evaluation and transfer stage on this device")
    parser.add_argument("--slurm", action="store_true",
                        help="submit each stage as a SLURM job (Snakemake's SLURM executor; requests from the "
                             "profile's cluster section)")
    parser.add_argument("--max-jobs", type=int, default=None, help="with --slurm: jobs queued at once (default 100)")
    parser.add_argument("--wait", action="store_true", help="wait for another invocation on the same run root instead "
                                                            "of stopping")
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    args, snakemake_args = parser.parse_args(argv[:split]), argv[split + 1:]
    if args.jobs is not None and args.jobs < 1:
        parser.error("--jobs must be >= 1")
    if args.cores is not None and args.cores < 1:
        parser.error("--cores must be >= 1")
    try:
        if args.status or args.list:
            plan = plan_for_status(args.profile, args.root, args.notebooks_dir)
            print(format_status(status_rows(plan), with_deps=args.list))
            return 0
        result = run_study(args.profile, root=args.root, notebooks_dir=args.notebooks_dir, cores=args.cores,
                           jobs_at_once=args.jobs, gpus=args.gpus, device=args.device, force=args.force,
                           only=args.only, start=args.start, dry_run=args.dry_run,
                           executor="slurm" if args.slurm else None, max_jobs=args.max_jobs, wait=args.wait,
                           snakemake_args=snakemake_args)
    except (ProfileError, StudyError, LockHeld, machine.NotEnoughDisk) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume (finished stages are kept, training resumes from "
              "latest.pt)", file=sys.stderr)
        return 130
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
