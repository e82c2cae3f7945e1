"""The papermill orchestration: profiles, stages, skip/resume, manifest, report.

Logic tests swap the notebook executor for a fast fake (no kernel); the tiny
profile is then run for real, end to end, once per session (tests/tiny_pipeline.py).
"""

import json
import os
import threading
import time
import shutil

import nbformat
import pytest
import yaml

from panns_core.study import artefacts, notebook_roles, pipeline
from panns_core.study.pipeline import Pipeline, ProfileError, load_profile
from tiny_pipeline import tiny_run

# --------------------------------------------------------------------------- profiles and stages


def test_packaged_profiles_resolve_and_paths_take_copies(tmp_path):
    assert {"smoke", "tiny", "full"} <= set(pipeline.list_profiles())
    smoke = load_profile("smoke")
    assert smoke["name"] == "smoke" and smoke["data_source"] == "generated"
    copy = tmp_path / "mine.yaml"
    copy.write_text(yaml.safe_dump({**{k: v for k, v in smoke.items() if not k.startswith("_")}, "name": "mine"}))
    assert load_profile(str(copy))["name"] == "mine"
    with pytest.raises(ProfileError, match="unknown profile 'nope'"):
        load_profile("nope")
    with pytest.raises(ProfileError, match="missing.yaml: profile file not found"):
        load_profile(str(tmp_path / "missing.yaml"))


@pytest.mark.parametrize("edit, message", [
    (lambda p: p["runs"].update(bad={"groups": ["hop"]}), "run 'bad' names unknown group 'hop'"),
    (lambda p: p.pop("data_source"), r"missing key\(s\) \['data_source'\]"),
    (lambda p: p.update(reference_run="ghost"), "reference_run 'ghost' is not one of the runs"),
    (lambda p: p["notebooks"].append(["x"]), "each notebooks entry is a name"),
    (lambda p: p["notebooks"].append("10_tables_audioset"), "listed twice"),
    (lambda p: p.update(data_source="my_sounds"), "data_source 'my_sounds' is not one the data stages can make"),
    (lambda p: p.update(compare_to_paper="no"), "compare_to_paper must be true or false"),
])
def test_bad_profiles_name_the_file_and_the_problem(tmp_path, edit, message):
    profile = {k: v for k, v in load_profile("tiny").items() if not k.startswith("_")}
    edit(profile)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(profile))
    with pytest.raises(ProfileError, match=message) as info:
        load_profile(str(path))
    assert str(path) in str(info.value)


def test_one_training_stage_per_run_line():
    profile = load_profile("smoke")
    stages = pipeline.derive_stages(profile)
    names = [s.name for s in stages]
    trains = [n for n in names if n.startswith("train_")]
    assert trains == [f"train_{r}" for r in profile["runs"]]
    assert names.index("pack_and_index") < names.index(trains[0]) and names[-2:] == ["manifest", "build_report"]
    by = {s.name: s for s in stages}
    assert by["train_sr_8k"].parameters["config"]["sample_rate"] == 8000
    assert by["train_sr_8k"].parameters["config"]["model"] == "Cnn6"  # from the train defaults
    assert "groups" not in by["train_sr_8k"].parameters["config"]
    assert "train_base" in by["transfer_task"].deps  # its checkpoint lives in that run folder
    assert set(trains) <= set(by["tables_audioset"].soft_deps)
    profile["runs"]["hop_1000"] = {"hop_size": 1000, "groups": ["hop_size"]}
    assert len(pipeline.derive_stages(profile)) == len(stages) + 1


def test_seeds_expand_one_run_line_into_one_run_per_seed(tmp_path):
    profile = {k: v for k, v in load_profile("tiny").items() if not k.startswith("_")}
    profile["runs"] = {"base": {"seeds": [3, 1, 2]}, "mel_32": {"mel_bins": 32, "seeds": [3, 1, 2]}}
    profile["reference_run"] = profile["classwise_run"] = "base"
    path = tmp_path / "seeded.yaml"
    path.write_text(yaml.safe_dump(profile))
    loaded = load_profile(str(path))
    assert list(loaded["runs"]) == ["base_seed3", "base_seed1", "base_seed2",
                                    "mel_32_seed3", "mel_32_seed1", "mel_32_seed2"]
    assert loaded["runs"]["mel_32_seed1"] == {"mel_bins": 32, "seed": 1}
    assert loaded["reference_run"] == loaded["classwise_run"] == "base_seed3"
    trains = [s for s in pipeline.derive_stages(loaded) if s.role == "train"]
    assert [s.parameters["config"]["seed"] for s in trains] == [3, 1, 2, 3, 1, 2]
    for bad in ([1, 1], [], "1,2", [1.5]):
        profile["runs"] = {"base": {"seeds": bad}}
        path.write_text(yaml.safe_dump(profile))
        with pytest.raises(ProfileError, match="run 'base': seeds must be a list of distinct whole numbers"):
            load_profile(str(path))


def test_parameters_cell_is_parsed_with_ast(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell('a = 1  # the run\'s value\nb: int = 2\nc, d = 3, "x"')
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell]
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, str(path))
    assert pipeline.declared_parameters(str(path)) == {"a", "b", "c", "d"}
    nb.cells[0].metadata["tags"] = []
    nbformat.write(nb, str(path))
    with pytest.raises(pipeline.PipelineError, match="no code cell tagged 'parameters'"):
        pipeline.declared_parameters(str(path))


# --------------------------------------------------------------------------- skip / resume logic (fake executor)


class FakeExecutor:
    """Stands in for papermill: writes the outputs a stage promises, can be told to fail."""

    def __init__(self):
        self.calls, self.fail = [], {}

    def __call__(self, input_path, output_path, parameters, cwd):
        stage = os.path.basename(output_path)[3:-len(".ipynb")]
        self.calls.append(stage)
        if stage in self.fail:
            raise RuntimeError(self.fail[stage])
        nbformat.write(nbformat.v4.new_notebook(), output_path)
        if "run_name" in parameters and "config" in parameters:
            run_dir = os.path.join(cwd, parameters["run_root"], "train", parameters["run_name"])
            os.makedirs(run_dir, exist_ok=True)
            os.makedirs(os.path.join(run_dir, "checkpoints"), exist_ok=True)
            for name in ("statistics.jsonl", "config.json", "checkpoints/latest.pt", "checkpoints/best.pt"):
                with open(os.path.join(run_dir, name), "w") as f:
                    f.write("{}\n")


def small_profile(tmp_path, **changes):
    profile = {
        "name": "fake", "data_source": "generated", "data": {"root": "data/fake"},
        "train": {"model": "Cnn6", "iterations": 1},
        "reference_run": "a", "keep_latest_checkpoint": False,
        "runs": {"a": {}, "b": {"mel_bins": 32, "groups": ["mel_bins"]}},
        "notebooks": ["01_download_audioset", "02_pack_and_index", "03_train_system", "10_tables_audioset"],
    }
    profile.update(changes)
    path = tmp_path / f"{profile['name']}.yaml"
    path.write_text(yaml.safe_dump(profile))
    return str(path)


def run_fake(profile_path, root, fake, **kwargs):
    log = []
    p = Pipeline(load_profile(profile_path), root=str(root), log=log.append)
    ok = p.run(**kwargs)
    return p, ok, log


def record(root, stage):
    with open(os.path.join(root, "runs", "fake", "stages", f"{stage}.json")) as f:
        return json.load(f)


def test_skip_when_up_to_date_resume_after_failure_and_rerun_on_change(tmp_path, monkeypatch):
    fake = FakeExecutor()
    monkeypatch.setattr(pipeline, "execute_notebook", fake)
    root = tmp_path / "proj"
    path = small_profile(tmp_path)
    _, ok, _ = run_fake(path, root, fake)
    assert ok and fake.calls == ["download_audioset", "pack_and_index", "train_a", "train_b", "tables_audioset",
                                 "build_report"]
    rec = record(root, "train_b")
    assert rec["status"] == "completed" and rec["parameters"]["config"] == {"model": "Cnn6", "iterations": 1,
                                                                           "mel_bins": 32}
    assert rec["started"] and rec["ended"] and len(rec["fingerprint"]) == 64
    assert os.path.exists(root / "runs" / "fake" / "report.html")
    ckpts = root / "runs" / "fake" / "train" / "a" / "checkpoints"
    assert sorted(os.listdir(ckpts)) == ["best.pt"]  # keep_latest_checkpoint: false

    fake.calls.clear()
    p, ok, _ = run_fake(path, root, fake)
    assert ok and fake.calls == []  # everything up to date
    assert {r.status for r in p.results.values()} == {"up_to_date", "completed"}  # manifest is always rebuilt

    # Change run b, and make its training crash: the folder is cleared (config changed), the failure recorded,
    # the tables still run on what exists.
    marker = root / "runs" / "fake" / "train" / "b" / "old.txt"
    marker.write_text("stale")
    path = small_profile(tmp_path, runs={"a": {}, "b": {"mel_bins": 128, "groups": ["mel_bins"]}})
    fake.calls.clear()
    fake.fail = {"train_b": "killed"}
    p, ok, log = run_fake(path, root, fake)
    assert not ok and fake.calls == ["train_b", "tables_audioset", "build_report"]
    assert not marker.exists() and any("configuration changed" in line for line in log)
    assert record(root, "train_b")["status"] == "failed" and "killed" in record(root, "train_b")["error"]

    # Resume: only the failed stage and what reads it run again.
    fake.calls.clear()
    fake.fail = {}
    _, ok, _ = run_fake(path, root, fake)
    assert ok and fake.calls == ["train_b", "tables_audioset", "build_report"]

    # --only forces one stage; --from reruns the tail.
    fake.calls.clear()
    run_fake(path, root, fake, only=["train_a"])
    assert fake.calls == ["train_a"]
    fake.calls.clear()
    run_fake(path, root, fake, start="tables_audioset")
    assert fake.calls == ["tables_audioset", "build_report"]
    with pytest.raises(pipeline.PipelineError, match="unknown stage 'nope'"):
        run_fake(path, root, fake, only=["nope"])


def test_failed_dependency_skips_dependents_and_manifest_says_why(tmp_path, monkeypatch):
    fake = FakeExecutor()
    fake.fail = {"pack_and_index": "disk full"}
    monkeypatch.setattr(pipeline, "execute_notebook", fake)
    root = tmp_path / "proj"
    p, ok, _ = run_fake(small_profile(tmp_path), root, fake)
    assert not ok
    assert p.results["train_a"].status == "skipped" and "pack_and_index" in p.results["train_a"].message
    assert "train_a" not in fake.calls and "tables_audioset" in fake.calls
    manifest = json.loads((root / "runs" / "fake" / "manifest.json").read_text())
    assert manifest["artefacts"] == {}
    tables_ids = set(notebook_roles.NOTEBOOK_ROLES["10_tables_audioset"].produces)
    assert set(manifest["missing"]) == tables_ids
    assert set(manifest["not_in_profile"]) == set(artefacts.ARTEFACT_IDS) - tables_ids
    assert manifest["counts"]["expected"] == len(tables_ids)
    assert "not written by 10_tables_audioset" in manifest["missing"]["table_V"]
    assert "stage train_a skipped" in manifest["missing"]["table_V"]
    assert "not in this profile" in manifest["not_in_profile"]["fig_3"]
    assert p.results["manifest"].message == f"0 artefacts, {len(tables_ids)} missing, " \
        f"{len(artefacts.ARTEFACT_IDS) - len(tables_ids)} not in this profile"
    assert manifest["stages"]["pack_and_index"] == "failed"


class TimedExecutor(FakeExecutor):
    """A fake stage that takes a while and records when it ran and with how many threads."""

    def __init__(self, seconds=0.3):
        super().__init__()
        self.seconds, self.spans, self.threads = seconds, {}, {}
        self.lock = threading.Lock()

    def __call__(self, input_path, output_path, parameters, cwd, threads=None):
        stage = os.path.basename(output_path)[3:-len(".ipynb")]
        start = time.monotonic()
        time.sleep(self.seconds)
        super().__call__(input_path, output_path, parameters, cwd)
        with self.lock:
            self.spans[stage] = (start, time.monotonic())
            self.threads[stage] = threads


def test_jobs_run_independent_stages_at_once_and_readers_wait_for_all_they_read(tmp_path, monkeypatch):
    fake = TimedExecutor()
    monkeypatch.setattr(pipeline, "execute_notebook", fake)
    monkeypatch.setattr(pipeline.os, "cpu_count", lambda: 4)
    path = small_profile(tmp_path, jobs=2, runs={"a": {}, "b": {"mel_bins": 32, "groups": ["mel_bins"]},
                                                 "c": {"hop_size": 640, "groups": ["hop_size"]}})
    p, ok, log = run_fake(path, tmp_path / "proj", fake)
    assert ok, log
    spans = fake.spans
    # The two first training runs overlap; the third starts when one of them has finished.
    assert spans["train_a"][0] < spans["train_b"][1] and spans["train_b"][0] < spans["train_a"][1]
    assert spans["train_c"][0] >= min(spans["train_a"][1], spans["train_b"][1])
    # Training starts after packing; the tables start after every run they read has ended.
    assert spans["pack_and_index"][1] <= min(spans[f"train_{r}"][0] for r in "abc")
    assert spans["tables_audioset"][0] >= max(spans[f"train_{r}"][1] for r in "abc")
    assert spans["build_report"][0] >= spans["tables_audioset"][1]
    assert set(fake.threads.values()) == {2}  # 4 cores shared by 2 kernels
    # A reader of the reference run starts as soon as that run ends, before the runs still waiting.
    path4 = small_profile(tmp_path, name="four", jobs=2, runs={"a": {}, "b": {}, "c": {}, "d": {}},
                         notebooks=["01_download_audioset", "02_pack_and_index", "03_train_system",
                                    "04_evaluate_system", "10_tables_audioset"])
    fake = TimedExecutor()
    monkeypatch.setattr(pipeline, "execute_notebook", fake)
    _, ok, _ = run_fake(path4, tmp_path / "proj3", fake)
    spans = fake.spans
    assert ok and spans["evaluate_system"][0] < spans["train_d"][0]
    assert spans["evaluate_system"][0] >= spans["train_a"][1]
    assert "(2 at a time)" in log[-1] and all(r.status == "completed" for r in p.results.values())
    # One job (the default) keeps the profile's order and the libraries' own thread count.
    fake2 = TimedExecutor(seconds=0)
    monkeypatch.setattr(pipeline, "execute_notebook", fake2)
    _, ok, _ = run_fake(path, tmp_path / "proj2", fake2, jobs=1)
    assert ok and list(fake2.spans) == ["download_audioset", "pack_and_index", "train_a", "train_b", "train_c",
                                        "tables_audioset", "build_report"]
    assert set(fake2.threads.values()) == {None}


def test_jobs_a_failed_run_skips_only_its_readers(tmp_path, monkeypatch):
    fake = TimedExecutor(seconds=0.05)
    fake.fail = {"train_b": "out of memory"}
    monkeypatch.setattr(pipeline, "execute_notebook", fake)
    path = small_profile(tmp_path, jobs=3, notebooks=["01_download_audioset", "02_pack_and_index", "03_train_system",
                                                      "04_evaluate_system", "10_tables_audioset"])
    p, ok, _ = run_fake(path, tmp_path / "proj", fake)
    assert not ok and p.results["train_b"].status == "failed"
    assert p.results["evaluate_system"].status == "completed"  # reads the reference run a only
    assert p.results["tables_audioset"].status == "completed"  # tables draw from the runs that exist
    with pytest.raises(ProfileError, match="jobs must be a whole number >= 1"):
        load_profile(small_profile(tmp_path, jobs=0))


def test_finished_kernels_are_not_interrupted_on_shutdown(monkeypatch):
    import asyncio

    from jupyter_client.manager import AsyncKernelManager

    interrupted = []

    async def fake_interrupt(self):
        interrupted.append(self.shutting_down)

    monkeypatch.setattr(AsyncKernelManager, "_async_interrupt_kernel", fake_interrupt)
    manager = pipeline.local_kernel_manager_class()(kernel_name="python3")
    asyncio.run(manager._async_interrupt_kernel())  # a running notebook (e.g. a cell timeout) is interrupted
    manager.shutting_down = True
    asyncio.run(manager._async_interrupt_kernel())  # shutting down after the notebook ended: no SIGINT
    assert interrupted == [False]


def test_kernel_threads_reach_the_kernel_environment(monkeypatch):
    import asyncio

    from jupyter_client.manager import AsyncKernelManager

    seen = {}

    async def fake_start(self, **kw):
        seen.update(kw.get("env") or {})

    monkeypatch.setattr(AsyncKernelManager, "start_kernel", fake_start)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    asyncio.run(pipeline.local_kernel_manager_class(threads=1)(kernel_name="python3").start_kernel())
    assert seen["OMP_NUM_THREADS"] == "1" and seen["MKL_NUM_THREADS"] == "1"
    seen.clear()
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's own setting wins
    asyncio.run(pipeline.local_kernel_manager_class(threads=1)(kernel_name="python3").start_kernel())
    assert "OMP_NUM_THREADS" not in seen


def test_paper_transfer_tasks_a_profile_does_not_run_are_not_in_it_rather_than_missing(tmp_path, monkeypatch):
    fake = FakeExecutor()
    monkeypatch.setattr(pipeline, "execute_notebook", fake)
    for tasks, run_here in (([], set()), (["esc50"], {"table_XIII", "fig_6"})):
        path = small_profile(tmp_path, name=f"t{len(tasks)}", notebooks=[
            "01_download_audioset", "02_pack_and_index", "03_train_system",
            {"20_transfer_task": {"tasks": tasks}}, "21_transfer_tables_figures"])
        root = tmp_path / f"proj{len(tasks)}"
        p, ok, _ = run_fake(path, root, fake)
        assert ok
        manifest = json.loads((root / "runs" / f"t{len(tasks)}" / "manifest.json").read_text())
        transfer_ids = set(notebook_roles.NOTEBOOK_ROLES["21_transfer_tables_figures"].produces)
        paper_task_ids = {i for i in transfer_ids if i.startswith(("table_X", "fig_"))} - {"table_XII"}
        assert {"table_XIII", "fig_11"} <= paper_task_ids
        assert set(manifest["missing"]) & paper_task_ids == run_here  # the fake wrote nothing
        for aid in paper_task_ids - run_here:
            assert "does not run the" in manifest["not_in_profile"][aid], aid
        assert "ESC-50" in manifest["not_in_profile"].get("table_XIII", "ESC-50")


def test_unknown_parameters_and_missing_notebooks_are_reported(tmp_path, monkeypatch):
    fake = FakeExecutor()
    monkeypatch.setattr(pipeline, "execute_notebook", fake)
    monkeypatch.setitem(notebook_roles.NOTEBOOK_ROLES, "30_not_written_yet",
                        notebook_roles.NotebookRole("30_not_written_yet", "inference"))
    path = small_profile(tmp_path, notebooks=["01_download_audioset", {"10_tables_audioset": {"colour": "red"}},
                                              "30_not_written_yet"])
    p, ok, _ = run_fake(path, tmp_path / "proj", fake)
    assert not ok
    assert "10_tables_audioset.ipynb: parameter(s) ['colour'] are not declared" in p.results["tables_audioset"].message
    assert p.results["not_written_yet"].status == "unavailable"
    assert "30_not_written_yet.ipynb is not built yet" in p.results["not_written_yet"].message


def test_stages_follow_the_roles_table_not_file_numbers(tmp_path, monkeypatch):
    # A notebook renumbered (or a new one) keeps its stage kind: the table decides, keyed by stem.
    monkeypatch.setitem(notebook_roles.NOTEBOOK_ROLES, "42_more_tables", notebook_roles.NotebookRole(
        "42_more_tables", "artefacts", reads_if_present=("train", "evaluate")))
    path = small_profile(tmp_path, notebooks=["01_download_audioset", "02_pack_and_index", "03_train_system",
                                              "04_evaluate_system", "42_more_tables"])
    by = {s.name: s for s in pipeline.derive_stages(load_profile(path))}
    assert by["pack_and_index"].deps == ["download_audioset"]
    assert by["evaluate_system"].deps == ["download_audioset", "pack_and_index", "train_a"]
    assert by["more_tables"].soft_deps == ["train_a", "train_b", "evaluate_system"]
    assert "data_root" not in by["more_tables"].parameters
    assert by["train_b"].role == "train"
    owners = artefacts.ARTEFACT_OWNERS
    assert owners == notebook_roles.artefact_owners() and list(owners) == [
        i for i in artefacts.ARTEFACT_IDS if i in owners]
    with pytest.raises(ProfileError, match="'99_unlisted' has no row in panns_core/study/notebook_roles.py"):
        pipeline.derive_stages(load_profile(small_profile(tmp_path, notebooks=["99_unlisted"])))


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
    no_metrics = "from panns_core import plots"
    assert pipeline.package_modules_of_notebook(uses_metrics, package_dir=pkg) == {
        "panns_core", "panns_core.study.tables", "panns_core.metrics"}
    before = (pipeline.package_code_hash(uses_metrics, package_dir=pkg),
              pipeline.package_code_hash(no_metrics, package_dir=pkg))
    (pkg / "metrics.py").write_text("def ap():\n    return 2  # the fix\n")
    after = (pipeline.package_code_hash(uses_metrics, package_dir=pkg),
             pipeline.package_code_hash(no_metrics, package_dir=pkg))
    assert after[0] != before[0] and after[1] == before[1]
    # Code that cannot be read with ast makes the hash cover the whole package.
    assert pipeline.package_modules_of_notebook("def broken(:", package_dir=pkg) == {
        "panns_core", "panns_core.metrics", "panns_core.study.tables", "panns_core.study.plots"}


@pytest.mark.parametrize("mode, reruns", [(None, ["train_a", "train_b"]), ("notebook_only", [])])
def test_a_package_fix_reruns_stages_unless_they_opt_out(tmp_path, monkeypatch, mode, reruns):
    fake = FakeExecutor()
    monkeypatch.setattr(pipeline, "execute_notebook", fake)
    package_version = {"v": "old"}
    monkeypatch.setattr(pipeline, "package_code_hash", lambda code, graph=None: f"{package_version['v']}:{code[:9]}")
    changes = {"notebooks": ["01_download_audioset", "02_pack_and_index", "03_train_system"]}
    if mode:
        changes["fingerprint_code"] = {"train": mode, "download_audioset": mode, "pack_and_index": mode}
    path = small_profile(tmp_path, **changes)
    root = tmp_path / "proj"
    run_fake(path, root, fake)
    fake.calls.clear()
    package_version["v"] = "fixed"  # as if a module every notebook imports changed
    run_fake(path, root, fake)
    expected = ["download_audioset", "pack_and_index"] + reruns if not mode else reruns
    assert [c for c in fake.calls if c != "build_report"] == expected
    with pytest.raises(ProfileError, match="fingerprint_code.train must be one of"):
        load_profile(small_profile(tmp_path, fingerprint_code={"train": "never"}))


# --------------------------------------------------------------------------- the tiny profile, for real


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_run(tmp_path_factory)


def test_tiny_profile_end_to_end(tiny):
    root, p, ok, log = tiny
    statuses = {s.name: (json.loads((root / "runs" / "tiny" / "stages" / f"{s.name}.json").read_text()))["status"]
                for s in p.stages}
    assert ok, log
    assert set(statuses.values()) == {"completed"}
    for s in p.stages:
        if s.notebook:
            assert os.path.exists(s.output_notebook(str(root / "runs" / "tiny")))
    if os.path.exists("/proc/self/stat"):  # each kernel's CPU seconds are recorded (Linux)
        records = [json.loads((root / "runs" / "tiny" / "stages" / f"{s.name}.json").read_text())
                   for s in p.stages if s.notebook]
        assert all(r["cpu_s"] > 0.5 and r["threads"] == max(1, (os.cpu_count() or 1) // 2) for r in records)
        ran_here = [r for r in p.results.values() if r.status == "completed" and r.name != "manifest"]
        if ran_here:  # (another test process may have run the shared tiny pipeline first: then all up to date)
            assert all(r.cpu_s > 0.5 for r in ran_here) and "kernels" in log[-1]
    manifest = json.loads((root / "runs" / "tiny" / "manifest.json").read_text())
    assert manifest["profile"] == "tiny" and manifest["data_source"] == "generated"
    assert set(manifest["artefacts"]) >= set(artefacts.AUDIOSET_IDS)
    assert set(manifest["artefacts"]) | set(manifest["not_in_profile"]) == set(artefacts.ARTEFACT_IDS)
    assert manifest["missing"] == {}
    # tiny runs ESC-50 only: the other five paper transfer tasks' tables and figures are not in it
    assert {"table_XIII", "fig_6"} <= set(manifest["artefacts"])
    assert set(manifest["not_in_profile"]) == {"table_XIV", "table_XV", "table_XVI", "table_XVII", "table_XVIII",
                                               "fig_7", "fig_8", "fig_9", "fig_10", "fig_11"}
    assert all("does not run the" in why for why in manifest["not_in_profile"].values())
    for aid, entry in manifest["artefacts"].items():
        assert entry["profile"] == "tiny"
        for rel in entry["paths"]:
            assert os.path.exists(root / rel), rel
        if aid not in ("table_XII",):
            assert entry["sources"], aid
    assert any("train/base/statistics.jsonl" in s for s in manifest["artefacts"]["table_XI"]["sources"])
    for aid, why in manifest["missing"].items():
        assert why, aid
    html = (root / "runs" / "tiny" / "report.html").read_text()
    assert "generated-corpus results, not paper-scale numbers" in html
    assert "table_XI" in html and "fig_4f" in html and "data:image/png;base64," in html
    findings = json.loads((root / "runs" / "tiny" / "findings.json").read_text())
    assert findings["reference_run"] == "base" and "Findings" in html
    assert html.index("Findings") < html.index("table_XI")  # the report opens with the findings


def test_tiny_rerun_is_a_no_op_and_a_failed_stage_resumes(tiny, tmp_path, monkeypatch):
    root, _, _, _ = tiny
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    calls = []
    real = pipeline.execute_notebook

    def counting(input_path, output_path, parameters, cwd, threads=None):
        calls.append(os.path.basename(output_path))
        return real(input_path, output_path, parameters, cwd, threads=threads)

    monkeypatch.setattr(pipeline, "execute_notebook", counting)
    p = Pipeline(load_profile("tiny"), root=str(copy), log=lambda m: None)
    assert p.run() and calls == [], {n: (r.status, r.message) for n, r in p.results.items() if r.status != "up_to_date"}

    def failing(input_path, output_path, parameters, cwd, threads=None):
        calls.append(os.path.basename(output_path))
        raise RuntimeError("injected failure")

    monkeypatch.setattr(pipeline, "execute_notebook", failing)
    p = Pipeline(load_profile("tiny"), root=str(copy), log=lambda m: None)
    assert not p.run(only=["figure_classwise_ap"])
    rec = json.loads((copy / "runs" / "tiny" / "stages" / "figure_classwise_ap.json").read_text())
    assert rec["status"] == "failed" and "injected failure" in rec["error"]

    calls.clear()
    monkeypatch.setattr(pipeline, "execute_notebook", counting)
    p = Pipeline(load_profile("tiny"), root=str(copy), log=lambda m: None)
    assert p.run()
    assert calls[0] == "12_figure_classwise_ap.ipynb" and not any(c.startswith("03_") for c in calls)
    assert set(calls) <= {"12_figure_classwise_ap.ipynb", "19_build_report.ipynb"}


def test_command_line_lists_stages_and_reports_bad_profiles(tmp_path, capsys):
    assert pipeline.main(["--profile", "tiny", "--root", str(tmp_path), "--list"]) == 0
    out = capsys.readouterr().out
    assert "train_leenet11" in out and "03_train_system" in out and "not run" in out
    assert pipeline.main(["--profile", "nope", "--list"]) == 2
    assert "unknown profile 'nope'" in capsys.readouterr().err
