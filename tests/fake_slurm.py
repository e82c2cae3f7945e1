"""A one-machine stand-in for the SLURM commands the Snakemake SLURM executor plugin calls.

:func:`install` writes executables named ``sbatch``, ``srun``, ``sacct``, ``squeue``, ``scancel``,
``sinfo``, ``scontrol``, ``sacctmgr`` and ``sshare`` into a folder (put it first on ``PATH``); each
is this file run by the test's Python, and answers in the formats the plugin parses
(snakemake_executor_plugin_slurm 2.x and its jobstep plugin):

* ``sbatch --parsable ... --wrap="CMD"`` (or a script on stdin with ``/dev/stdin``) records its
  arguments and stdin in ``submissions.jsonl``, starts the job in the background (in its own
  session, in the ``-D`` folder, output to ``--output`` with ``%j`` replaced, the submitter's
  environment as ``--export=ALL`` says, plus ``SLURM_JOB_ID`` and, for ``--gpus=N``, the job's GPUs
  in ``CUDA_VISIBLE_DEVICES`` taken from the fake node's ``gpus``) and prints the job id. The job
  writes its state: PENDING, RUNNING, then COMPLETED, or FAILED with its exit code.
* ``sacct -X --parsable2 ... --name NAME`` and ``squeue --format=%i|%T ... --name NAME`` print
  ``id|STATE`` for the jobs of that name. They answer once one of the jobs pending or running when
  they were called has COMPLETED, or all of them have ended (at most ``POLL_LIMIT_S`` later): the
  plugin waits 10 s longer after every check that finds no job completed (before its next check,
  and before Snakemake exits), which a cluster's hour-long jobs never notice and a test of
  seconds-long jobs would spend most of its time in. Each answer is recorded in ``queries.jsonl``.
* ``srun [options] CMD`` runs CMD (recorded in ``srun.jsonl``); ``scancel ID`` ends a job's session.
* ``sinfo``, ``scontrol show config``, ``sacctmgr``/``sshare`` describe one partition, the
  limits the plugin reads and the user's accounts.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = ("sbatch", "srun", "sacct", "squeue", "scancel", "sinfo", "scontrol", "sacctmgr", "sshare")
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")
POLL_LIMIT_S = 40.0  # the plugin gives a status query 60 s
# sbatch options that take a value as the next argument (the plugin writes these with a space)
SBATCH_VALUE_OPTIONS = {"--job-name", "-J", "--output", "-o", "--comment", "-A", "--account", "-p", "--partition",
                        "-t", "--time", "--mem", "--mem-per-cpu", "-D", "--chdir", "-C", "--constraint",
                        "--clusters", "-M"}


def install(bin_dir, state_dir, *, accounts=("studyacct",), partition="gpu", gpus=("6", "7")) -> Path:
    """Write the commands into ``bin_dir``; their records and job states go to ``state_dir``."""
    bin_dir, state_dir = Path(bin_dir), Path(state_dir)
    bin_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "jobs").mkdir(parents=True, exist_ok=True)
    config = {"state": str(state_dir), "accounts": list(accounts), "partition": partition, "gpus": list(gpus)}
    source = Path(__file__).read_text()
    for name in COMMANDS:
        path = bin_dir / name
        path.write_text(f"#!{sys.executable} -IS\nCONFIG = {json.dumps(config)!r}\n{source}")
        path.chmod(0o755)
    return bin_dir


def submissions(state_dir) -> list[dict]:
    """Every sbatch call: ``{"jobid", "argv", "options", "stdin", "gpus"}`` in submission order."""
    path = Path(state_dir) / "submissions.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def job_states(state_dir) -> dict[str, str]:
    return {p.stem: json.loads(p.read_text())["state"] for p in sorted((Path(state_dir) / "jobs").glob("*.json"))}


def parse_sbatch(argv: list[str]) -> dict:
    """sbatch's options as ``{option: value}`` (flags map to True); the script path under ``"script"``."""
    options: dict = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--") and "=" in arg:
            key, value = arg.split("=", 1)
            options[key] = value
        elif arg in SBATCH_VALUE_OPTIONS and i + 1 < len(argv):
            options[arg] = argv[i + 1]
            i += 1
        elif arg.startswith("-"):
            options[arg] = True
        else:
            options["script"] = arg
        i += 1
    return options


# ----------------------------------------------------------------------------- the commands (run as executables)


def _cfg() -> dict:
    return json.loads(CONFIG)  # noqa: F821 - prepended by install()


def _state_dir() -> Path:
    return Path(_cfg()["state"])


def _write_job(jobid: str, **fields) -> None:
    path = _state_dir() / "jobs" / f"{jobid}.json"
    record = json.loads(path.read_text()) if path.exists() else {}
    record.update(fields)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)  # readers never see half a record


def _jobs(name: str | None) -> dict[str, dict]:
    out = {}
    for path in (_state_dir() / "jobs").glob("*.json"):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if name is None or record.get("name") == name:
            out[path.stem] = record
    return dict(sorted(out.items(), key=lambda kv: int(kv[0])))


def _append(filename: str, record: dict) -> None:
    import fcntl

    with open(_state_dir() / filename, "a", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # the plugin submits from two threads
        f.write(json.dumps(record) + "\n")


def _next_jobid() -> str:
    import fcntl

    with open(_state_dir() / "counter", "a+", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        jobid = int(f.read().strip() or 1000) + 1
        f.seek(0)
        f.truncate()
        f.write(str(jobid))
    return str(jobid)


def sbatch(argv: list[str]) -> int:
    options = parse_sbatch(argv)
    stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    command = options.get("--wrap")
    if command is None and options.get("script") == "/dev/stdin":
        command = stdin
    if not command or "--parsable" not in options:
        print("sbatch (stub): expected --parsable and --wrap=CMD or a script on /dev/stdin", file=sys.stderr)
        return 1
    jobid = _next_jobid()
    gpus = int(options.get("--gpus", 0) or 0)
    node_gpus = _cfg()["gpus"][:gpus]
    _append("submissions.jsonl", {"jobid": jobid, "argv": argv, "options": options, "stdin": stdin,
                                  "gpus": node_gpus})
    _write_job(jobid, name=options.get("--job-name"), state="PENDING")
    output = str(options.get("--output", "slurm-%j.out")).replace("%j", jobid)
    workdir = options.get("-D", os.getcwd())
    env = dict(os.environ, SLURM_JOB_ID=jobid, SLURM_JOBID=jobid, SLURM_JOB_NAME=str(options.get("--job-name")),
               SLURM_SUBMIT_DIR=os.getcwd(), SLURM_CPUS_PER_TASK=str(options.get("--cpus-per-task", 1)))
    if gpus:
        env.update(SLURM_GPUS=str(gpus), CUDA_VISIBLE_DEVICES=",".join(node_gpus))
    if os.fork() == 0:  # the job: detached from sbatch's pipes, in a session of its own (scancel ends it)
        try:
            os.setsid()
            Path(output).parent.mkdir(parents=True, exist_ok=True)
            out = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
            _write_job(jobid, state="RUNNING", pid=os.getpid())
            code = subprocess.call(["/bin/sh", "-c", command], cwd=workdir, env=env)
            if _jobs(None)[jobid]["state"] != "CANCELLED":
                _write_job(jobid, state="COMPLETED" if code == 0 else "FAILED", exit_code=code)
        finally:
            os._exit(0)
    print(jobid)
    return 0


def _states(argv: list[str]) -> int:
    """sacct -X --parsable2 ... --name NAME / squeue --format=%i|%T ... --name NAME: ``id|STATE`` lines."""
    name = argv[argv.index("--name") + 1] if "--name" in argv else None
    if "-j" in argv:  # sacct -j ID.STEP --format=Reason (why a job failed): nothing more to say
        return 0
    waiting_for = {j for j, r in _jobs(name).items() if r["state"] not in TERMINAL}
    start = time.time()
    deadline = start + POLL_LIMIT_S
    while waiting_for and time.time() < deadline:
        states = [r["state"] for j, r in _jobs(name).items() if j in waiting_for]
        if "COMPLETED" in states or all(state in TERMINAL for state in states):
            break
        time.sleep(0.05)
    for jobid, record in _jobs(name).items():
        print(f"{jobid}|{record['state']}")
    _append("queries.jsonl", {"argv": argv, "waited": sorted(waiting_for), "start": start, "end": time.time(),
                              "states": {j: r["state"] for j, r in _jobs(name).items()}})
    return 0


def srun(argv: list[str]) -> int:
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 1
    _append("srun.jsonl", {"options": argv[:i], "command": argv[i:], "job": os.environ.get("SLURM_JOB_ID")})
    if i == len(argv):
        print("srun (stub): no command", file=sys.stderr)
        return 1
    os.execvp(argv[i], argv[i:])


def scancel(argv: list[str]) -> int:
    for jobid in (a for a in argv if a.split("_")[0].isdigit()):
        record = _jobs(None).get(jobid)
        if record and record["state"] not in TERMINAL:
            _write_job(jobid, state="CANCELLED")
            if record.get("pid"):
                try:
                    os.killpg(record["pid"], signal.SIGTERM)
                except OSError:
                    pass
    return 0


def main(argv: list[str]) -> int:
    command, args = os.path.basename(argv[0]), argv[1:]
    if command == "sbatch":
        return sbatch(args)
    if command in ("sacct", "squeue"):
        return _states(args)
    if command == "srun":
        return srun(args)
    if command == "scancel":
        return scancel(args)
    if command == "sinfo":
        print(f"PARTITION\n{_cfg()['partition']}*")
    elif command == "scontrol":
        print("MaxArraySize            = 1001\nMinJobAge               = 300 sec")
    elif command in ("sacctmgr", "sshare"):
        print("\n".join(_cfg()["accounts"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
