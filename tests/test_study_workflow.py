"""The study's workflow: Snakemake schedules the stages, papermill executes each notebook.

Scheduling, reruns, locks, GPU assignment and status are tested with stand-in notebooks
(tests/fake_study.py) executed by real kernels under real Snakemake; the tiny profile then
runs the real notebooks end to end once per session (tests/tiny_pipeline.py).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import yaml

from fake_study import ALL_STEMS, called, calls, reset_calls, small_profile, write_fake_notebooks
from panns_core.fsutil import LockHeld
from panns_core.study import artefacts, jobs, machine, notebook_roles, workflow
from panns_core.study.profiles import ProfileError, load_profile
from panns_core.study.workflow import run_study
from tiny_pipeline import tiny_run

# --------------------------------------------------------------------------- scheduling with stand-in notebooks


@pytest.fixture
def fake(tmp_path):
    """(root, notebooks dir, run(profile_path, **kw) -> StudyResult with its log lines)."""
    root = tmp_path / "proj"
    root.mkdir()
    notebooks = write_fake_notebooks(tmp_path / "notebooks", ALL_STEMS)

    def run(path, **kwargs):
        log: list[str] = []
        result = run_study(path, root=str(root), notebooks_dir=str(notebooks), log=log.append, **kwargs)
        result.log = log
        return result

    return root, notebooks, run


def record(root, stage, profile="fake"):
    return json.loads((Path(root) / "runs" / profile / "stages" / f"{stage}.json").read_text())


@pytest.mark.slow(55)
def test_up_to_date_stages_are_skipped_failures_resume_and_changes_rerun(fake, tmp_path):
    root, _, run = fake
    path = small_profile(tmp_path)
    result = run(path, dry_run=True)  # what would run, and why; nothing runs
    text = "\n".join(result.log)
    assert result.ok and "output files have to be generated" in text and "stage_train_b" in text
    assert called(root) == [] and not (root / "runs" / "fake" / "stages" / "train_a.done").exists()
    result = run(path)
    assert result.ok, result.log
    assert called(root) == ["download_audioset", "pack_and_index", "train_a", "train_b", "tables_audioset",
                            "build_report"]
    rec = record(root, "train_b")
    assert rec["status"] == "completed" and rec["parameters"]["config"] == {
        "model": "Cnn6", "iterations": 1, "device": "cpu", "mel_bins": 32, "log_every_s": 120}
    assert rec["started"] and rec["ended"] and len(rec["fingerprint"]) == 64 and rec["cpu_s"] > 0
    assert (root / "runs" / "fake" / "report.html").exists()
    assert sorted(os.listdir(root / "runs" / "fake" / "train" / "a" / "checkpoints")) == ["best.pt"]
    assert "started" in (root / "runs" / "fake" / "logs" / "train_a.log").read_text()  # the kernel's output
    assert any("train_a: train_a started" in line for line in result.log)  # progress lines reach the console

    reset_calls(root)
    result = run(path)
    assert result.ok and called(root) == []  # everything up to date
    assert "Nothing to be done" in "\n".join(result.log)

    # Run b changes and its training crashes: its folder is cleared (parameters changed), the failure is
    # recorded, its readers wait; the manifest and report still say what exists.
    stale = root / "runs" / "fake" / "train" / "b" / "old.txt"
    stale.write_text("stale")
    path = small_profile(tmp_path, runs={"a": {}, "b": {"mel_bins": 128, "groups": ["mel_bins"]}}, retries=0)
    text = "\n".join(run(path, dry_run=True).log)
    assert "params have changed since last execution" in text and "stage_train_b" in text
    (root / "fail").mkdir()
    (root / "fail" / "train_b").write_text("killed by the test")
    reset_calls(root)
    result = run(path)
    assert not result.ok and called(root) == ["build_report"]  # train_b raised first; the report of what exists
    assert not stale.exists()
    rec = record(root, "train_b")
    assert rec["status"] == "failed" and "killed by the test" in rec["error"]
    assert "killed by the test" in (root / "runs" / "fake" / "logs" / "train_b.log").read_text()
    assert any("1 failed (train_b" in line for line in result.log)
    manifest = json.loads((root / "runs" / "fake" / "manifest.json").read_text())
    assert manifest["stages"]["train_b"] == "failed"

    # Resume: the failed stage and what reads it run again, nothing else.
    (root / "fail" / "train_b").unlink()
    reset_calls(root)
    assert run(path).ok and called(root) == ["train_b", "tables_audioset", "build_report"]

    # --only forces one stage; --from reruns it and everything after it; unknown stages are named.
    reset_calls(root)
    assert run(path, only=["train_a"]).ok and called(root) == ["train_a"]
    reset_calls(root)
    assert run(path, start="tables_audioset").ok and called(root) == ["tables_audioset", "build_report"]
    with pytest.raises(workflow.StudyError, match="unknown stage 'nope'"):
        run(path, only=["nope"])
    # A deleted output makes its stage run again.
    shutil.rmtree(root / "runs" / "fake" / "train" / "a")
    reset_calls(root)
    result = run(path)
    assert result.ok and called(root)[0] == "train_a"
    assert any("rerunning train_a" in line for line in result.log)


@pytest.mark.slow(18)
def test_a_failed_training_stage_is_retried_and_its_folder_kept_for_resume(fake, tmp_path):
    root, notebooks, run = fake
    # The stand-in fails on its first attempt only (it deletes its own failure file).
    nb = nbformat.read(str(notebooks / "03_train_system.ipynb"), as_version=4)
    nb.cells[1].source = nb.cells[1].source.replace(
        "    raise RuntimeError(open(os.path.join(\"fail\", stage)).read())",
        "    os.remove(os.path.join(\"fail\", stage)); raise RuntimeError(\"first attempt\")")
    nbformat.write(nb, str(notebooks / "03_train_system.ipynb"))
    (root / "fail").mkdir()
    (root / "fail" / "train_b").write_text("x")
    result = run(small_profile(tmp_path, retries=1))
    assert result.ok, result.log
    rec = record(root, "train_b")
    assert rec["status"] == "completed" and rec["attempt"] == 2
    # the retry kept the run folder: the first attempt's files were appended to, not removed
    log = (root / "runs" / "fake" / "logs" / "train_b.log").read_text()
    assert "attempt 1" in log and "first attempt" in log and "attempt 2" in log and "clearing" not in log


def test_a_failed_dependency_stops_its_readers_and_the_manifest_says_why(fake, tmp_path):
    root, _, run = fake
    (root / "fail").mkdir()
    (root / "fail" / "pack_and_index").write_text("disk full")
    result = run(small_profile(tmp_path))
    assert not result.ok
    assert called(root) == ["download_audioset", "build_report"]  # the report of what exists
    statuses = result.statuses()
    assert statuses["pack_and_index"] == "failed" and statuses["train_a"] == "waiting"
    manifest = json.loads((root / "runs" / "fake" / "manifest.json").read_text())
    tables_ids = set(notebook_roles.NOTEBOOK_ROLES["10_tables_audioset"].produces)
    assert manifest["artefacts"] == {} and set(manifest["missing"]) == tables_ids
    assert set(manifest["not_in_profile"]) == set(artefacts.ARTEFACT_IDS) - tables_ids
    assert "stage tables_audioset not run" in manifest["missing"]["table_V"]
    assert manifest["stages"]["pack_and_index"] == "failed"
    assert (root / "runs" / "fake" / "report.html").exists()  # the report of what exists


@pytest.mark.slow(24)
def test_stages_share_the_cores_and_readers_wait_for_everything_they_read(fake, tmp_path):
    root, _, run = fake
    (root / "sleep").write_text("1.5")
    path = small_profile(tmp_path, jobs=2, runs={"a": {}, "b": {"mel_bins": 32, "groups": ["mel_bins"]},
                                                 "c": {"hop_size": 640, "groups": ["hop_size"]}})
    result = run(path, cores=4)
    assert result.ok, result.log
    spans = {c["stage"]: (c["start"], c["end"]) for c in calls(root)}
    assert spans["train_a"][0] < spans["train_b"][1] and spans["train_b"][0] < spans["train_a"][1]  # two at once
    assert spans["train_c"][0] >= min(spans["train_a"][1], spans["train_b"][1]) - 0.05  # never three
    assert spans["pack_and_index"][1] <= min(spans[f"train_{r}"][0] for r in "abc")
    assert spans["tables_audioset"][0] >= max(spans[f"train_{r}"][1] for r in "abc")
    assert {c["threads"] for c in calls(root)} == {"2"}  # 4 cores shared by 2 stages


@pytest.mark.slow(19)
def test_concurrent_training_stages_get_distinct_gpus_and_a_fourth_waits(fake, tmp_path):
    root, _, run = fake
    (root / "sleep").write_text("3")
    path = small_profile(tmp_path, train={"model": "Cnn6", "iterations": 1, "device": "cuda"},
                         runs={r: {} for r in "abcd"}, notebooks=["03_train_system"])
    result = run(path, gpus="0,1,2", cores=8)
    assert result.ok, result.log
    trains = {c["stage"]: c for c in calls(root) if c["stage"].startswith("train_")}
    assert set(trains) == {"train_a", "train_b", "train_c", "train_d"}
    assert all(c["cuda"] in ("0", "1", "2") for c in trains.values())
    first = sorted(trains.values(), key=lambda c: c["start"])
    # the first three run at once on three different GPUs; the fourth starts when one of them is free
    assert len({c["cuda"] for c in first[:3]}) == 3
    assert first[2]["start"] < min(c["end"] for c in first[:3])
    assert first[3]["start"] >= min(c["end"] for c in first[:3]) - 0.05
    for name, c in trains.items():
        assert f"GPUs {c['cuda']} (CUDA_VISIBLE_DEVICES={c['cuda']})" in (
            root / "runs" / "fake" / "logs" / f"{name}.log").read_text()
        assert record(root, name)["gpus"] == [c["cuda"]]
    # A CUDA profile on a machine without GPUs is refused before anything runs, naming the way out.
    with pytest.raises(workflow.StudyError, match="--device cpu"):
        run(path, gpus="", force=True)


def test_gpu_slots_hand_out_distinct_ids_and_free_them_when_the_holder_dies(tmp_path):
    with machine.gpu_slots(2, ["0", "1", "2"], str(tmp_path)) as first:
        with machine.gpu_slots(1, ["0", "1", "2"], str(tmp_path)) as second:
            assert len(set(first) | set(second)) == 3
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from panns_core.study.machine import gpu_slots\n"
        "with gpu_slots(2, ['0', '1'], sys.argv[1]) as ids:\n    print(','.join(ids), flush=True); time.sleep(60)"),
        str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "0,1"
    holder.kill()
    holder.wait()
    with machine.gpu_slots(2, ["0", "1"], str(tmp_path), poll_s=0.05) as ids:
        assert ids == ["0", "1"]


@pytest.mark.slow(29)
def test_a_second_invocation_on_one_run_root_stops_naming_the_first(fake, tmp_path):
    root, notebooks, run = fake
    (root / "sleep").write_text("4")
    path = small_profile(tmp_path, notebooks=["01_download_audioset"])
    first = subprocess.Popen([sys.executable, "-m", "panns_core.study", "--profile", path, "--root", str(root),
                              "--notebooks-dir", str(notebooks)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True)
    try:
        lock = root / "runs" / "fake" / ".lock"
        deadline = time.time() + 60
        while not (lock.exists() and lock.read_text()) and time.time() < deadline:
            time.sleep(0.1)
        second = subprocess.run([sys.executable, "-m", "panns_core.study", "--profile", path, "--root", str(root),
                                 "--notebooks-dir", str(notebooks)], capture_output=True, text=True)
        assert second.returncode == 2
        assert f"run folder runs/fake is being written by pid {first.pid} on host " in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        out, _ = first.communicate(timeout=120)
    assert first.returncode == 0, out
    assert called(root).count("download_audioset") == 1  # one writer: the second started nothing


@pytest.mark.slow(37)
def test_a_killed_study_leaves_no_lock_and_status_says_interrupted_not_running(fake, tmp_path):
    root, notebooks, run = fake
    (root / "sleep").write_text("30")
    path = small_profile(tmp_path, notebooks=["01_download_audioset", "02_pack_and_index"])
    study = subprocess.Popen([sys.executable, "-m", "panns_core.study", "--profile", path, "--root", str(root),
                              "--notebooks-dir", str(notebooks)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    status = [sys.executable, "-m", "panns_core.study", "--profile", path, "--root", str(root), "--notebooks-dir",
              str(notebooks), "--status"]
    try:
        deadline = time.time() + 90
        out = ""
        while "last log line: [progress] download_audioset started" not in out and time.time() < deadline:
            time.sleep(0.5)
            out = subprocess.run(status, capture_output=True, text=True).stdout
        assert "download_audioset              running      for " in out, out
        assert "pack_and_index                 waiting" in out
    finally:
        os.killpg(study.pid, signal.SIGKILL)  # the wrapper, Snakemake, the job and its kernel
        study.wait()
    time.sleep(0.5)
    out = subprocess.run(status, capture_output=True, text=True).stdout
    assert "download_audioset              interrupted  its process" in out, out
    (root / "sleep").write_text("0")
    result = run(path)
    assert result.ok and called(root) == ["download_audioset", "pack_and_index", "build_report"]
    assert any("cleared a stale lock on run folder runs/fake" in line for line in result.log)
    assert "4 done" in subprocess.run(status, capture_output=True, text=True).stdout


def test_a_stage_that_would_fill_the_disk_stops_before_writing(fake, tmp_path):
    root, notebooks, _ = fake
    plan = workflow.make_plan(load_profile(small_profile(tmp_path), notebooks_dir=str(notebooks)), root=str(root),
                              notebooks_dir=str(notebooks))
    train_a = next(s for s in plan["stages"] if s["name"] == "train_a")
    assert train_a["disk"]["bytes"] > 4 * 4e6 and "best.pt" in train_a["disk"]["what"]  # Cnn6: ~4.7M parameters
    train_a["disk"]["bytes"] = 10 ** 18
    lines: list[str] = []
    console = type("C", (), {"write": lambda self, t: lines.append(t), "flush": lambda self: None})()
    assert jobs.run_job(plan, "train_a", console=console) == 1
    rec = record(root, "train_a")
    assert rec["status"] == "failed" and "stage train_a needs about 1000000.0 TB in runs/fake/train/a" in rec["error"]
    assert "disk_check: false" in rec["error"] and called(root) == []


def test_disk_estimates_match_the_sizes_users_see():
    from panns_core.study.profiles import derive_stages

    stages = {s.name: s for s in derive_stages(load_profile("full"))}
    need, _, what = machine.stage_disk_need(stages["train_cnn14"], "data/audioset")
    latest = 4 * 4 * 80_753_615
    assert need == 4 * 80_753_615 + 2 * latest and "80.8M parameters" in what  # latest.pt ~1.3 GB
    need, folder, _ = machine.stage_disk_need(stages["pack_and_index"], "data/audioset")
    assert folder == os.path.join("data/audioset", "hdf5s") and 1.2e12 < need < 1.4e12  # ~1.3 TB packed
    assert 9 < machine.gpu_hours({"model": "Cnn14", "iterations": 600000, "batch_size": 32}) < 12
    with pytest.raises(machine.NotEnoughDisk, match="needs about"):
        machine.check_free_space("x", 10 ** 18, "/", "everything")


def test_the_full_profile_prints_its_disk_and_gpu_hours_and_runs_on_slurm_dry(tmp_path):
    log: list[str] = []
    result = run_study("full", root=str(tmp_path), gpus="0,1,2,3,4,5,6,7", dry_run=True, executor="slurm",
                       log=log.append)
    text = "\n".join(log)
    assert result.ok, text
    assert text.startswith("expected for profile full: disk ") and "GPU hours" in text
    assert "train_cnn14" in text and "~10.9 GPU h" in text
    assert "stage_train_wavegram_logmel_cnn14" in text and "This was a dry-run" in text


def test_finished_kernels_are_not_interrupted_on_shutdown(monkeypatch):
    import asyncio

    from jupyter_client.manager import AsyncKernelManager

    interrupted = []

    async def fake_interrupt(self):
        interrupted.append(self.shutting_down)

    monkeypatch.setattr(AsyncKernelManager, "_async_interrupt_kernel", fake_interrupt)
    manager = jobs.local_kernel_manager_class()(kernel_name="python3")
    asyncio.run(manager._async_interrupt_kernel())  # a running notebook (e.g. a cell timeout) is interrupted
    manager.shutting_down = True
    asyncio.run(manager._async_interrupt_kernel())  # shutting down after the notebook ended: no SIGINT
    assert interrupted == [False]


def test_kernel_threads_and_gpus_reach_the_kernel_environment(monkeypatch):
    import asyncio

    from jupyter_client.manager import AsyncKernelManager

    seen = {}

    async def fake_start(self, **kw):
        seen.update(kw.get("env") or {})

    monkeypatch.setattr(AsyncKernelManager, "start_kernel", fake_start)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    asyncio.run(jobs.local_kernel_manager_class(threads=1, env={"CUDA_VISIBLE_DEVICES": "3"})(
        kernel_name="python3").start_kernel())
    assert seen["OMP_NUM_THREADS"] == "1" and seen["MKL_NUM_THREADS"] == "1" and seen["CUDA_VISIBLE_DEVICES"] == "3"
    seen.clear()
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's own setting wins
    asyncio.run(jobs.local_kernel_manager_class(threads=1)(kernel_name="python3").start_kernel())
    assert seen["OMP_NUM_THREADS"] == "3"


def test_progress_prefix_is_the_trainers():
    from panns_core.train import PROGRESS_PREFIX

    assert jobs.PROGRESS_PREFIX == PROGRESS_PREFIX


def test_paper_transfer_tasks_a_profile_does_not_run_are_not_in_it_rather_than_missing(tmp_path):
    for tasks, run_here in (([], set()), (["esc50"], {"table_XIII", "fig_6"})):
        profile = load_profile(small_profile(tmp_path, name=f"t{len(tasks)}", notebooks=[
            "01_download_audioset", "02_pack_and_index", "03_train_system",
            {"20_transfer_task": {"tasks": tasks}}, "21_transfer_tables_figures"]))
        from panns_core.study.profiles import derive_stages

        out = workflow.not_in_profile(profile, derive_stages(profile))
        transfer_ids = set(notebook_roles.NOTEBOOK_ROLES["21_transfer_tables_figures"].produces)
        paper_task_ids = {i for i in transfer_ids if i.startswith(("table_X", "fig_"))} - {"table_XII"}
        assert {"table_XIII", "fig_11"} <= paper_task_ids
        assert set(out) & paper_task_ids == paper_task_ids - run_here
        for aid in paper_task_ids - run_here:
            assert "does not run the" in out[aid], aid


# --------------------------------------------------------------------------- code hashing


def _write_fake_package(root, files):
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root / "panns_core"


def test_package_code_hash_covers_the_modules_a_notebook_imports(tmp_path):
    pkg = _write_fake_package(tmp_path, {
        "panns_core/__init__.py": "",
        "panns_core/metrics.py": "def ap():\n    return 1\n",
        "panns_core/study/tables.py": "def table():\n    from panns_core.metrics import ap\n    return ap()\n",
        "panns_core/study/plots.py": "import numpy\n",
    })
    uses_metrics = "%matplotlib inline\0from panns_core.study.tables import table\0table()"  # magics are skipped
    no_metrics = "from panns_core.study import plots"
    assert workflow.package_modules_of_notebook(uses_metrics, package_dir=pkg) == {
        "panns_core", "panns_core.study.tables", "panns_core.metrics"}
    before = (workflow.package_code_hash(uses_metrics, package_dir=pkg),
              workflow.package_code_hash(no_metrics, package_dir=pkg))
    (pkg / "metrics.py").write_text("def ap():\n    return 2  # the fix\n")
    after = (workflow.package_code_hash(uses_metrics, package_dir=pkg),
             workflow.package_code_hash(no_metrics, package_dir=pkg))
    assert after[0] != before[0] and after[1] == before[1]
    # Code that cannot be read with ast makes the hash cover the whole package.
    assert workflow.package_modules_of_notebook("def broken(:", package_dir=pkg) == {
        "panns_core", "panns_core.metrics", "panns_core.study.tables", "panns_core.study.plots"}


@pytest.mark.parametrize("mode", [None, "notebook_only"])
def test_a_package_fix_changes_the_fingerprints_unless_stages_opt_out(tmp_path, monkeypatch, mode):
    """A changed fingerprint is what makes Snakemake rerun a stage ("params have changed", tested above)."""
    notebooks = write_fake_notebooks(tmp_path / "notebooks", ALL_STEMS)
    package = {"v": "old"}
    monkeypatch.setattr(workflow, "package_code_hash", lambda code, graph=None: f"{package['v']}:{code[:9]}")
    changes = {"notebooks": ["01_download_audioset", "02_pack_and_index", "03_train_system"]}
    if mode:
        changes["fingerprint_code"] = {"train": mode, "download_audioset": mode, "pack_and_index": mode}
    profile = load_profile(small_profile(tmp_path, **changes), notebooks_dir=str(notebooks))

    def fingerprints():
        plan = workflow.make_plan(profile, root=str(tmp_path), notebooks_dir=str(notebooks))
        return {s["name"]: s["fingerprint"] for s in plan["stages"]}

    before = fingerprints()
    package["v"] = "fixed"  # as if a module every notebook imports changed
    after = fingerprints()
    changed = [n for n in before if before[n] != after[n] and n not in ("manifest", "build_report")]
    assert changed == ([] if mode else ["download_audioset", "pack_and_index", "train_a", "train_b"])


# --------------------------------------------------------------------------- the tiny profile, for real


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_run(tmp_path_factory)


def test_tiny_profile_end_to_end(tiny):
    root, result, ok, log = tiny
    run_root = root / "runs" / "tiny"
    assert ok, log
    stages = result.plan["stages"]
    assert {record(root, s["name"], "tiny")["status"] for s in stages} == {"completed"}
    for s in stages:
        if s["notebook"]:
            assert os.path.exists(jobs.output_notebook(str(run_root), s))
            assert (run_root / "logs" / f"{s['name']}.log").stat().st_size > 0
    if os.path.exists("/proc/self/stat"):  # each kernel's CPU seconds are recorded (Linux)
        records = [record(root, s["name"], "tiny") for s in stages if s["notebook"]]
        assert all(r["cpu_s"] > 0.5 and r["threads"] == max(1, (os.cpu_count() or 1) // 2) for r in records)
    train_log = (run_root / "logs" / "train_base.log").read_text()
    assert "[progress] iteration 2/2 (100.0 %), loss " in train_log and "clips/s, ETA" in train_log
    assert json.loads((root / "runs" / "last_profile.json").read_text())["profile"] == "tiny"
    manifest = json.loads((run_root / "manifest.json").read_text())
    assert manifest["profile"] == "tiny" and manifest["data_source"] == "generated"
    assert set(manifest["artefacts"]) >= set(artefacts.AUDIOSET_IDS)
    assert set(manifest["artefacts"]) | set(manifest["not_in_profile"]) == set(artefacts.ARTEFACT_IDS)
    assert manifest["missing"] == {}
    # tiny runs ESC-50 only: the other five paper transfer tasks' tables and figures are not in it
    assert {"table_XIII", "fig_6"} <= set(manifest["artefacts"])
    assert set(manifest["not_in_profile"]) == {"table_XIV", "table_XV", "table_XVI", "table_XVII", "table_XVIII",
                                               "fig_7", "fig_8", "fig_9", "fig_10", "fig_11"}
    for aid, entry in manifest["artefacts"].items():
        assert entry["profile"] == "tiny"
        for rel in entry["paths"]:
            assert os.path.exists(root / rel), rel
        if aid not in ("table_XII",):
            assert entry["sources"], aid
    assert any("train/base/statistics.jsonl" in s for s in manifest["artefacts"]["table_XI"]["sources"])
    html = (run_root / "report.html").read_text()
    assert "generated-corpus results, not paper-scale numbers" in html
    assert "table_XI" in html and "fig_4f" in html and "data:image/png;base64," in html
    findings = json.loads((run_root / "findings.json").read_text())
    assert findings["reference_run"] == "base" and "Findings" in html
    assert html.index("Findings") < html.index("table_XI")  # the report opens with the findings


@pytest.mark.slow(22)
def test_tiny_rerun_is_a_no_op_and_a_failed_stage_resumes(tiny, tmp_path):
    root, _, _, _ = tiny
    copy = tmp_path / "copy"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("*.lock"))
    notebooks = tmp_path / "notebooks"
    shutil.copytree(Path(__file__).resolve().parent.parent / "notebooks", notebooks)
    log: list[str] = []
    result = run_study("tiny", root=str(copy), notebooks_dir=str(notebooks), log=log.append)
    assert result.ok and "Nothing to be done" in "\n".join(log), log

    nb = nbformat.read(str(notebooks / "12_figure_classwise_ap.ipynb"), as_version=4)
    original = nbformat.writes(nb)
    nb.cells[-1].source += "\nraise RuntimeError('injected failure')"
    nbformat.write(nb, str(notebooks / "12_figure_classwise_ap.ipynb"))
    log.clear()
    assert not run_study("tiny", root=str(copy), notebooks_dir=str(notebooks), log=log.append).ok
    rec = record(copy, "figure_classwise_ap", "tiny")
    assert rec["status"] == "failed" and "injected failure" in rec["error"]
    ran = [l.split("] ")[1].split()[0] for l in log if l.startswith("[    started]")]
    assert ran == ["figure_classwise_ap", "build_report"]  # the report of what exists, after the failure

    (notebooks / "12_figure_classwise_ap.ipynb").write_text(original)
    log.clear()
    assert run_study("tiny", root=str(copy), notebooks_dir=str(notebooks), log=log.append).ok
    ran = [l.split("] ")[1].split()[0] for l in log if l.startswith("[    started]")]
    assert ran == ["figure_classwise_ap", "build_report"]


def test_command_line_status_list_and_bad_profiles(tmp_path, capsys):
    assert workflow.main(["--profile", "tiny", "--root", str(tmp_path), "--list"]) == 0
    out = capsys.readouterr().out
    assert "train_leenet11" in out and "03_train_system" in out and "waiting" in out
    assert workflow.main(["--profile", "nope", "--status"]) == 2
    assert "unknown profile 'nope'" in capsys.readouterr().err


@pytest.mark.slow(195)
def test_the_gpu_smoke_profile_runs_every_stage_on_the_cpu(tmp_path):
    """The first command of a GPU box, run here on the CPU (``--device cpu``) at the smallest size, so it
    cannot rot: every stage of `full`, five architecture families, evaluation and transfer where training is."""
    profile = yaml.safe_load(open(load_profile("gpu-smoke")["_path"]))
    for section in ("generate", "pack"):
        profile["data"][section]["clip_seconds"] = 1.0  # 10-s clips on a GPU box; 1 s keeps CNN14 quick on a CPU
    profile["train"].update(iterations=1, eval_every=1, batch_size=2, max_eval_clips=4)
    del profile["runs"]["mel_32"]  # a third CNN14-sized run adds time, not coverage
    transfer = next(n for n in profile["notebooks"] if isinstance(n, dict) and "20_transfer_task" in n)
    transfer["20_transfer_task"].update(strategies=["finetune", "freeze_l3"], shots=["all"])
    path = tmp_path / "gpu-smoke.yaml"
    path.write_text(yaml.safe_dump(profile, sort_keys=False))
    log: list[str] = []
    result = run_study(str(path), root=str(tmp_path / "proj"), device="cpu", log=log.append)
    assert result.ok, "\n".join(log)
    statuses = result.statuses()
    assert set(statuses.values()) == {"done"} and len(statuses) == 24
    families = {s["parameters"]["config"]["model"] for s in result.plan["stages"] if s["role"] == "train"}
    assert {"Cnn14", "ResNet22", "MobileNetV1", "LeeNet11", "Wavegram_Logmel_Cnn14"} <= families
    assert {s["gpus"] for s in result.plan["stages"]} == {0}  # --device cpu: nothing waits for a GPU
    evaluate = next(s for s in result.plan["stages"] if s["name"] == "evaluate_system")
    assert evaluate["parameters"]["device"] == "cpu"
    # on the GPU box itself the same stages take the GPUs: training, evaluation and transfer
    gpu_plan = workflow.make_plan(load_profile(str(path)), root=str(tmp_path / "plan"), gpu_ids=["0", "1"])
    on_gpu = {s["name"] for s in gpu_plan["stages"] if s["gpus"]}
    assert on_gpu == {f"train_{r}" for r in profile["runs"]} | {"evaluate_system", "transfer_task"}


def test_under_slurm_the_jobs_gpus_are_slurms_and_too_few_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
    with machine.gpu_slots(1, [], str(tmp_path)) as ids:
        assert ids == ["5"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    with pytest.raises(RuntimeError, match="SLURM job 77 was given 0"):
        with machine.gpu_slots(1, [], str(tmp_path)):
            pass
