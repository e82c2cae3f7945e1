import os

import pytest
import torch

# Two cores are shared by the pytest workers; one thread each avoids oversubscription.
torch.set_num_threads(1)
os.environ.setdefault("MPLBACKEND", "Agg")

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared")


@pytest.fixture(scope="session")
def official_spec():
    """The official interface spec, when the shared reference folder is present."""
    import json

    path = os.path.join(SHARED, "reference", "official_models.json")
    if not os.path.exists(path):
        # The same spec is vendored into the repository for clean clones.
        path = os.path.join(os.path.dirname(__file__), "data", "official_models.json")
    with open(path) as f:
        return json.load(f)
