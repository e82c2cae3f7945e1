"""The study on a SLURM cluster: Snakemake's SLURM executor plugin, for real, against stand-in commands.

The plugin builds and submits each job with ``sbatch``, follows it with ``sacct``, checks the
account with ``sacctmgr``; inside the job its jobstep plugin runs the stage with ``srun``. The
stand-ins (tests/fake_slurm.py) run every job on this machine and record what was asked; the
stages are the fast stand-in notebooks of tests/fake_study.py, executed by real kernels.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from snakemake.utils import available_cpu_count

import fake_slurm
from fake_study import ALL_STEMS, calls, small_profile, write_fake_notebooks
from panns_core.study import workflow
from panns_core.study.workflow import StudyError, run_study

# Status checks a second after submission and right after each completed job (the plugin's defaults,
# 40 s and 10 s, suit hour-long jobs); a user with short jobs passes the same after `--`.
FAST_STATUS = ["--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "0"]
CLUSTER = {"partition": "gpu", "account": "studyacct",
           "default": {"runtime_minutes": 30, "mem_mb": 2000, "cpus": 1},
           "train": {"runtime_minutes": 600, "mem_mb": 16000, "cpus": 2}}


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    """(root, notebooks dir, SLURM state dir): the stand-in SLURM commands first on PATH."""
    state = tmp_path / "slurm"
    bin_dir = fake_slurm.install(tmp_path / "bin", state, accounts=["otheracct", "studyacct"], gpus=["6", "7"])
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    root = tmp_path / "proj"
    root.mkdir()
    return root, write_fake_notebooks(tmp_path / "notebooks", ALL_STEMS), state


def record(root, stage):
    return json.loads((Path(root) / "runs" / "fake" / "stages" / f"{stage}.json").read_text())


def by_stage(submitted):
    """{stage: [sbatch options of each submission]} (the plugin's --comment names the rule)."""
    out: dict[str, list[dict]] = {}
    for s in submitted:
        out.setdefault(s["options"]["--comment"].removeprefix("rule_stage_"), []).append(s["options"])
    return out


def statuses(path, root, notebooks):
    """What ``--status`` says of each stage."""
    return {r["stage"]: r["status"] for r in workflow.status_rows(workflow.plan_for_status(path, root, notebooks))}


@pytest.mark.slow(34)
def test_each_stage_is_one_slurm_job_with_the_profiles_requests_and_a_failed_job_resumes(cluster, tmp_path, capsys):
    root, notebooks, state = cluster
    path = small_profile(tmp_path, notebooks=["03_train_system"], retries=0, cluster=CLUSTER,
                         runs={"a": {"device": "cuda"}, "b": {"mel_bins": 32, "groups": ["mel_bins"]}})
    (root / "fail").mkdir()
    (root / "fail" / "train_b").write_text("node lost")
    (root / "slow").mkdir()
    (root / "slow" / "train_a").write_text("3")  # train_b fails first: both end in one status check

    # As on a login node: no GPU here, no --gpus; the plugin's settings after --.
    command = ["--profile", path, "--root", str(root), "--notebooks-dir", str(notebooks), "--slurm", "--", *FAST_STATUS]
    assert workflow.main(command) == 1
    out = capsys.readouterr().out
    assert statuses(path, str(root), str(notebooks)) == {"train_a": "done", "train_b": "failed",
                                                         "manifest": "waiting", "build_report": "waiting"}, out
    first = by_stage(fake_slurm.submissions(state))
    assert {stage: len(subs) for stage, subs in first.items()} == {"train_a": 1, "train_b": 1}, out
    train = {"-t": "600", "--mem": "16000", "--cpus-per-task": "2", "-p": "gpu", "-A": "studyacct",
             "-D": str(root / "runs" / "fake")}
    a, b = first["train_a"][0], first["train_b"][0]
    assert {k: a.get(k) for k in train} == train and a["--gpus"] == "1"
    assert {k: b.get(k) for k in train} == train and "--gpus" not in b
    # The CUDA stage ran on the GPU SLURM gave its job (the stand-in node's first, "6").
    seen = {c["stage"]: c for c in calls(root)}
    assert seen["train_a"]["cuda"] == "6" and record(root, "train_a")["gpus"] == ["6"]
    assert "GPUs 6 (CUDA_VISIBLE_DEVICES=6)" in (root / "runs" / "fake" / "logs" / "train_a.log").read_text()
    # Inside each job the jobstep plugin ran the stage with srun, asking for the job's GPUs and cores.
    jobids = {stage: sub["jobid"] for sub in fake_slurm.submissions(state)
              for stage in [sub["options"]["--comment"].removeprefix("rule_stage_")]}
    steps = {s["job"]: s for s in map(json.loads, (state / "srun.jsonl").read_text().splitlines())}
    assert {"--gpus=1", "--cpus-per-task=2"} <= set(steps[jobids["train_a"]]["options"])
    assert "stage_train_b:" in steps[jobids["train_b"]]["command"]

    # The failed job: FAILED in SLURM, failed in the study with its record, its log and its SLURM log kept.
    assert fake_slurm.job_states(state)[jobids["train_b"]] == "FAILED"
    rec = record(root, "train_b")
    assert rec["status"] == "failed" and "node lost" in rec["error"]
    assert "node lost" in (root / "runs" / "fake" / "logs" / "train_b.log").read_text()
    assert "node lost" in Path(b["--output"].replace("%j", jobids["train_b"])).read_text()
    assert "1 failed (train_b; logs in runs/fake/logs/)" in out

    # Resumed (GPU ids given this time: they only cap the GPU jobs in flight): only what is not done is submitted.
    (root / "fail" / "train_b").unlink()
    log: list[str] = []
    result = run_study(path, root=str(root), notebooks_dir=str(notebooks), executor="slurm", gpus="0",
                       snakemake_args=FAST_STATUS, log=log.append)
    assert result.ok, "\n".join(log)
    second = by_stage(fake_slurm.submissions(state)[2:])
    assert {stage: len(subs) for stage, subs in second.items()} == {"train_b": 1, "manifest": 1, "build_report": 1}
    default = {"-t": "30", "--mem": "2000", "--cpus-per-task": "1", "-p": "gpu", "-A": "studyacct"}
    for stage in ("manifest", "build_report"):
        options = second[stage][0]
        assert {k: options.get(k) for k in default} == default and "--gpus" not in options
    assert set(statuses(path, str(root), str(notebooks)).values()) == {"done"}
    assert (root / "runs" / "fake" / "report.html").exists()
    # each job's kernel got the role's cores (at most the node's: this machine's, as Snakemake counts them)
    assert record(root, "train_b")["threads"] == min(2, available_cpu_count())
    assert record(root, "build_report")["threads"] == 1


def test_slurm_without_its_plugin_or_sbatch_stops_with_one_sentence(tmp_path, monkeypatch, capsys):
    path = small_profile(tmp_path)
    root = tmp_path / "proj"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no sbatch
    with pytest.raises(StudyError, match="sbatch, which is not on PATH: run it on the cluster's login node"):
        run_study(path, root=str(root), executor="slurm")
    assert workflow.main(["--profile", path, "--root", str(root), "--slurm"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --slurm submits every stage with sbatch") and err.count("\n") == 1
    assert not root.exists()  # stopped before writing anything
    monkeypatch.setitem(sys.modules, "snakemake_executor_plugin_slurm", None)  # as if not installed
    with pytest.raises(StudyError, match="pip install snakemake-executor-plugin-slurm$"):
        run_study(path, root=str(root), executor="slurm", dry_run=True)
