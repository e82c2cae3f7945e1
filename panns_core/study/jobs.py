"""One Snakemake job = one stage: execute its notebook with papermill, keep the record and the log.

``python -m panns_core.study.jobs PLAN STAGE --threads N`` is the command of every rule of the
study's Snakefile. PLAN is the JSON the workflow wrote (:mod:`panns_core.study.workflow`): the
profile's stages with their parameters and fingerprints. The job

1. appends a header to ``runs/<profile>/logs/<stage>.log`` (host, pid, attempt, GPUs),
2. checks free disk space against what the stage will write (:mod:`panns_core.study.machine`),
3. takes its GPUs (distinct ids on one box; SLURM's assignment on a cluster),
4. starts a training run whose parameters changed from an empty folder (a retry or a rerun after
   a kill keeps the folder, so training resumes from ``latest.pt``),
5. executes the notebook into ``runs/<profile>/notebooks/NN_<stage>.ipynb`` (kept as the record,
   also when it fails) with the kernel's output streamed into the log; training progress lines
   are echoed to the console,
6. writes ``runs/<profile>/stages/<stage>.json`` (status, times, CPU seconds, GPUs, error) and, on
   success, ``stages/<stage>.done``: the file Snakemake knows the stage by.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import io
import json
import os
import shutil
import socket
import sys
import tempfile
import time
import traceback
import uuid
from pathlib import Path

from panns_core.fsutil import write_json

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
"""Environment variables that size a kernel's thread pools (torch reads them at import)."""
PROGRESS_PREFIX = "[progress] "
"""Lines of the kernel's output echoed to the console (panns_core.train.PROGRESS_PREFIX)."""


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------- plan, records, markers


def read_plan(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def stage_record_path(run_root: str, name: str) -> str:
    return os.path.join(run_root, "stages", f"{name}.json")


def done_path(run_root: str, name: str) -> str:
    return os.path.join(run_root, "stages", f"{name}.done")


def log_path(run_root: str, name: str) -> str:
    return os.path.join(run_root, "logs", f"{name}.log")


def read_stage_record(run_root: str, name: str) -> dict | None:
    path = stage_record_path(run_root, name)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None  # absent or torn: "not done", the stage reruns


def output_notebook(run_root: str, stage: dict) -> str:
    number = stage["notebook"].split("_", 1)[0] if stage.get("notebook") else "99"
    return os.path.join(run_root, "notebooks", f"{number}_{stage['name']}.ipynb")


def write_record(plan: dict, stage: dict, **fields) -> dict:
    record = {
        "stage": stage["name"], "notebook": stage.get("notebook"), "profile": plan["profile"],
        "parameters": stage["parameters"], "deps": stage["deps"], "soft_deps": stage["soft_deps"],
        "fingerprint": stage["fingerprint"], "log": os.path.relpath(log_path(plan["run_root"], stage["name"]),
                                                                     plan["root"]),
        **fields,
    }
    if stage.get("notebook"):
        record["output_notebook"] = os.path.relpath(output_notebook(plan["run_root"], stage), plan["root"])
    write_json(record, stage_record_path(plan["run_root"], stage["name"]))
    return record


# ----------------------------------------------------------------------------- the kernel


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a running process and its reaped children (Linux ``/proc``; else None)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
        return round(ticks / os.sysconf("SC_CLK_TCK"), 2)
    except (OSError, ValueError, IndexError):
        return None


def local_kernel_manager_class(threads: int | None = None, usage: dict | None = None, env: dict | None = None):
    """A kernel manager for the stage's kernel.

    On POSIX the kernel talks over Unix-domain (IPC) sockets instead of unencrypted TCP ports
    (elsewhere the manager provisions CurveZMQ keys when the kernel supports them). ``threads``
    sets ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` unless the user set them; ``env`` adds variables
    (``CUDA_VISIBLE_DEVICES``); ``usage`` receives the kernel's CPU seconds just before shutdown.
    """
    import zmq
    from jupyter_client.manager import AsyncKernelManager

    class LocalKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            if os.name == "posix":
                kwargs.setdefault("transport", "ipc")
                # IPC socket files are named <ip>-<port>: a name of its own per kernel keeps kernels started
                # at the same moment from picking the same files.
                kwargs.setdefault("ip", os.path.join(tempfile.gettempdir(), f"panns-kernel-{uuid.uuid4().hex[:12]}"))
            elif zmq.has("curve"):
                kwargs.setdefault("transport_encryption", "auto")
            # A kernel that needs more than 5 s to exit (a loaded CPU, big tensors freed) would be sent SIGINT
            # and print a KeyboardInterrupt for a notebook that succeeded.
            kwargs.setdefault("shutdown_wait_time", 30.0)
            super().__init__(**kwargs)

        async def start_kernel(self, **kw):
            kernel_env = dict(kw.get("env") or os.environ)
            if threads is not None and "OMP_NUM_THREADS" not in os.environ:
                kernel_env.update({name: str(threads) for name in THREAD_VARIABLES})
            kernel_env.update(env or {})
            kw["env"] = kernel_env
            return await super().start_kernel(**kw)

        async def _async_interrupt_kernel(self):
            # The notebook has finished when jupyter_client interrupts before shutdown; the SIGINT would only
            # make ipykernel print "KeyboardInterrupt caught in kernel".
            if getattr(self, "shutting_down", False):
                return None
            return await super()._async_interrupt_kernel()

        async def shutdown_kernel(self, now: bool = False, restart: bool = False):
            pid = getattr(self.provisioner, "pid", None)
            if usage is not None and pid:
                usage["cpu_s"] = process_cpu_seconds(pid)
            return await super().shutdown_kernel(now=now, restart=restart)

    return LocalKernelManager


class LogStream(io.TextIOBase):
    """Where the kernel's stdout/stderr go: the stage's log file, and progress lines also to the console."""

    def __init__(self, log_file, stage_name: str, console=None):
        self.log_file, self.stage_name = log_file, stage_name
        self.console = console if console is not None else sys.stdout
        self._partial = ""

    def write(self, text: str) -> int:
        self.log_file.write(text)
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            if line.startswith(PROGRESS_PREFIX):
                self.console.write(f"[{'running':>11}] {self.stage_name}: {line[len(PROGRESS_PREFIX):]}\n")
                self.console.flush()
        return len(text)

    def flush(self) -> None:
        self.log_file.flush()


def execute_notebook(input_path: str, output_path: str, parameters: dict, cwd: str, *, threads: int | None = None,
                     env: dict | None = None, stream: LogStream | None = None) -> dict:
    """Run one notebook with papermill; returns ``{"cpu_s": ...}`` where the platform tells them."""
    import papermill as pm

    usage: dict = {}
    pm.execute_notebook(
        input_path, output_path, parameters=parameters, cwd=cwd, kernel_name="python3",
        progress_bar=False, log_output=False, report_mode=False, stdout_file=stream, stderr_file=stream,
        kernel_manager_class=local_kernel_manager_class(threads, usage, env),
    )
    return usage


def short_error(exc: BaseException) -> str:
    ename = getattr(exc, "ename", None)
    if ename:  # papermill's PapermillExecutionError
        return f"{ename}: {getattr(exc, 'evalue', '')}"[:2000]
    return f"{type(exc).__name__}: {exc}"[:2000]


# ----------------------------------------------------------------------------- the manifest


def missing_reasons(plan: dict) -> dict[str, str]:
    """Why each artefact of a stage that did not complete is missing."""
    from panns_core.study.artefacts import ARTEFACT_IDS, ARTEFACT_OWNERS

    owner_stage = {a: s for s in plan["stages"] for a in s["artefacts"]}
    reasons = {}
    for artefact_id in ARTEFACT_IDS:
        stage = owner_stage.get(artefact_id)
        if stage is None:
            reasons[artefact_id] = f"notebook {ARTEFACT_OWNERS[artefact_id]} is not part of profile {plan['profile']!r}"
            continue
        rec = read_stage_record(plan["run_root"], stage["name"]) or {}
        status = rec.get("status", "not run")
        if status != "completed":
            reasons[artefact_id] = f"stage {stage['name']} {status}" + (f": {rec['error']}" if rec.get("error") else "")
            continue
        upstream = []  # the owner ran, but a stage it reads may have failed
        for dep in stage["deps"] + stage["soft_deps"]:
            dep_rec = read_stage_record(plan["run_root"], dep) or {}
            if dep_rec.get("status") not in (None, "completed"):
                upstream.append(f"stage {dep} {dep_rec['status']}" + (f": {dep_rec['error']}" if dep_rec.get("error") else ""))
        reasons[artefact_id] = f"not written by {stage['notebook']}" + (f" ({'; '.join(upstream)})" if upstream else "")
    return reasons


def write_manifest(plan: dict) -> dict:
    from panns_core.study.artefacts import build_manifest

    extra = {
        "data_source": plan["data_source"], "label": plan.get("label", ""), "profile_file": plan.get("profile_file"),
        "stages": {s["name"]: (read_stage_record(plan["run_root"], s["name"]) or {}).get("status", "not run")
                   for s in plan["stages"] if s["name"] not in ("manifest", "build_report")},
    }
    manifest = build_manifest(plan["figures_dir"], plan["profile"], missing_reasons=missing_reasons(plan),
                              not_in_profile=plan["not_in_profile"], root=plan["root"], extra=extra)
    write_json(manifest, os.path.join(plan["run_root"], "manifest.json"))
    return manifest


# ----------------------------------------------------------------------------- one job


def _clear_changed_run(plan: dict, stage: dict, log) -> None:
    """A training stage starts from an empty run folder when its parameters changed, or when a finished run
    is run again (forced, or its data changed). A retry, or a rerun after a crash or a kill, keeps the
    folder: training resumes from ``latest.pt`` exactly where it stopped."""
    if stage["role"] != "train":
        return
    previous = read_stage_record(plan["run_root"], stage["name"]) or {}
    run_dir = os.path.join(plan["root"], stage["parameters"]["run_root"], "train", stage["parameters"]["run_name"])
    changed = previous.get("fingerprint") not in (None, stage["fingerprint"])
    if os.path.isdir(run_dir) and (changed or previous.get("status") == "completed"):
        log(f"clearing {run_dir}: " + ("its parameters or code changed" if changed else "a finished run runs again"))
        shutil.rmtree(run_dir)


def _drop_latest_checkpoint(plan: dict, stage: dict) -> None:
    """``keep_latest_checkpoint: false``: a finished run's ``latest.pt`` (resume state) is only disk use."""
    if stage["role"] != "train" or plan.get("keep_latest_checkpoint", True):
        return
    latest = os.path.join(plan["root"], stage["parameters"]["run_root"], "train", stage["parameters"]["run_name"],
                          "checkpoints", "latest.pt")
    if os.path.exists(latest):
        os.remove(latest)


def run_job(plan: dict, name: str, threads: int | None = None, console=None, partial: bool = False) -> int:
    """Run stage ``name`` of ``plan``; returns the exit status (0: done).

    ``partial``: the manifest or report of a study in which a stage failed, written so that the user sees
    what exists; its stage is not marked done (it runs again once the failed stage has been fixed).
    """
    from panns_core.study import machine

    console = console if console is not None else sys.stdout
    stages = {s["name"]: s for s in plan["stages"]}
    if name not in stages:
        print(f"error: stage {name!r} is not in the plan {plan.get('plan_file')}", file=sys.stderr)
        return 2
    stage = stages[name]
    run_root, root = plan["run_root"], plan["root"]
    os.makedirs(os.path.join(run_root, "logs"), exist_ok=True)
    os.makedirs(os.path.join(run_root, "stages"), exist_ok=True)
    previous = read_stage_record(run_root, name) or {}
    attempt = int(previous.get("attempt", 0)) + 1 if previous.get("status") in ("failed", "running") else 1
    started, t0 = now(), time.time()

    with open(log_path(run_root, name), "a", encoding="utf-8", buffering=1) as log_file:
        def log(message: str) -> None:
            log_file.write(f"[{now()}] {message}\n")

        log(f"stage {name} (notebook {stage.get('notebook') or '-'}), attempt {attempt}, host {socket.gethostname()}, "
            f"pid {os.getpid()}, threads {threads}")
        record = dict(started=started, host=socket.gethostname(), pid=os.getpid(), attempt=attempt, threads=threads)
        try:
            if name == "manifest":
                manifest = write_manifest(plan)
                message = f"{len(manifest['artefacts'])} artefacts, {len(manifest['missing'])} missing"
                if manifest["not_in_profile"]:
                    message += f", {len(manifest['not_in_profile'])} not in this profile"
                write_record(plan, stage, status="completed", ended=now(), duration_s=round(time.time() - t0, 2),
                             message=message, partial=partial, **record)
                if not partial:
                    _mark_done(plan, stage)
                console.write(f"[{'completed':>11}] manifest: {message}\n")
                return 0
            if plan.get("disk_check", True) and stage.get("disk"):
                need = stage["disk"]
                machine.check_free_space(name, need["bytes"], os.path.join(root, need["folder"]), need["what"],
                                         shown_as=need["folder"])
            with machine.gpu_slots(stage.get("gpus", 0), plan.get("gpu_ids", []), plan["gpu_slot_dir"], log=log) as gpus:
                env = {"CUDA_VISIBLE_DEVICES": ",".join(gpus)} if stage.get("gpus", 0) else {}
                if gpus:
                    log(f"GPUs {','.join(gpus)} (CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']})")
                _clear_changed_run(plan, stage, log)
                record["gpus"] = gpus
                write_record(plan, stage, status="running", **record)
                console.write(f"[{'started':>11}] {name}" + (f" on GPU {','.join(gpus)}" if gpus else "") + "\n")
                console.flush()
                notebook = os.path.join(plan["notebooks_dir"], f"{stage['notebook']}.ipynb")
                out = output_notebook(run_root, stage)
                os.makedirs(os.path.dirname(out), exist_ok=True)
                usage = execute_notebook(notebook, out, stage["parameters"], cwd=root, threads=threads, env=env,
                                         stream=LogStream(log_file, name, console))
            if stage["role"] == "report":
                from panns_core.study.report import notebook_to_html

                notebook_to_html(out, os.path.join(run_root, "report.html"))
            missing = [p for p in stage["outputs"] if not os.path.exists(os.path.join(root, p))]
            if missing:
                raise RuntimeError(f"{stage['notebook']} finished but did not write {missing}")
        except BaseException as exc:  # noqa: BLE001 - recorded; Snakemake sees the exit status
            error = short_error(exc) if not isinstance(exc, KeyboardInterrupt) else "interrupted (SIGINT)"
            log(f"failed: {error}")
            log_file.write(traceback.format_exc(limit=8))
            write_record(plan, stage, status="failed", ended=now(), duration_s=round(time.time() - t0, 2),
                         error=error, **record)
            console.write(f"[{'failed':>11}] {name}: {error.splitlines()[0] if error else ''} "
                          f"(log: {os.path.relpath(log_path(run_root, name), root)})\n")
            return 130 if isinstance(exc, KeyboardInterrupt) else 1
        _drop_latest_checkpoint(plan, stage)
        duration = time.time() - t0
        cpu_s = usage.get("cpu_s")
        write_record(plan, stage, status="completed", ended=now(), duration_s=round(duration, 2), cpu_s=cpu_s,
                     partial=partial, **record)
        if not partial:
            _mark_done(plan, stage)
        log(f"completed in {duration:.1f} s" + (f", kernel {cpu_s:.0f} CPU s" if cpu_s is not None else ""))
        console.write(f"[{'completed':>11}] {name} ({duration:.1f} s" + (f", {cpu_s:.0f} CPU s" if cpu_s else "")
                      + ")\n")
        return 0


def _mark_done(plan: dict, stage: dict) -> None:
    write_json({"stage": stage["name"], "fingerprint": stage["fingerprint"], "ended": now()},
               done_path(plan["run_root"], stage["name"]))


def fingerprint_digest(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m panns_core.study.jobs",
                                     description="Run one stage of a study plan (the command of each Snakemake rule).")
    parser.add_argument("plan", help="the plan JSON the workflow wrote (runs/<profile>/workflow/plan.json)")
    parser.add_argument("stage")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    plan = read_plan(args.plan)
    return run_job(plan, args.stage, args.threads)


if __name__ == "__main__":
    sys.exit(main())
