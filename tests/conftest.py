import json
import os

import matplotlib
import pytest
import torch

# Two cores are shared by the pytest workers; one thread each avoids oversubscription.
torch.set_num_threads(1)
# Figures drawn in this process need no display. Not through MPLBACKEND: the notebooks' kernels (the
# tiny pipeline) keep their inline backend, so their figures are in the executed notebooks and the
# course site built from them (tests/test_book.py).
matplotlib.use("Agg")


def pytest_collection_modifyitems(config, items):
    """Longest first. Under pytest-xdist a long test sent last runs alone while the other worker idles;
    started first (the ``slow(seconds)`` marks, measured on a 2-core CPU), the short ones fill in around
    them. Everything else keeps its order (the sort is stable)."""
    def seconds(item):
        mark = item.get_closest_marker("slow")
        return mark.args[0] if mark and mark.args else 0

    items.sort(key=seconds, reverse=True)


@pytest.fixture(scope="session")
def official_spec():
    """The official implementation's interface spec (every class's kwargs, state_dict
    keys/shapes/dtypes, outputs and counts), vendored as test data."""
    with open(os.path.join(os.path.dirname(__file__), "data", "official_models.json")) as f:
        return json.load(f)


@pytest.fixture(scope="session")
def load_benchmark():
    """``load_benchmark("bench_training")``: a script of ``benchmarks/`` imported as a module (they are
    scripts, not a package; each is loaded once per session)."""
    import importlib.util

    folder = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks")
    loaded = {}

    def load(name: str):
        if name not in loaded:
            spec = importlib.util.spec_from_file_location(name, os.path.join(folder, f"{name}.py"))
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            loaded[name] = module
        return loaded[name]

    return load
