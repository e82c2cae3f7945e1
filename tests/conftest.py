import json
import os

import pytest
import torch

# Two cores are shared by the pytest workers; one thread each avoids oversubscription.
torch.set_num_threads(1)
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def official_spec():
    """The official implementation's interface spec (every class's kwargs, state_dict
    keys/shapes/dtypes, outputs and counts), vendored as test data."""
    with open(os.path.join(os.path.dirname(__file__), "data", "official_models.json")) as f:
        return json.load(f)
