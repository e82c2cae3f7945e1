"""The recipe loop of notebook 03 and the production loop give the same statistics.

Notebook 03 writes the paper's recipe out in one short function (``recipe_loop``:
balanced-sampler batch -> mixup lambdas -> model -> mixed targets -> BCE ->
backward -> Adam(amsgrad) step, evaluation every N steps) for students;
``panns_core.train.run_loop`` is what the pipeline and ``python -m
panns_core.train`` run (resume, DDP, accumulation, autocast around the same
recipe). For one fp32 process and an uninterrupted run both must give exactly
the same numbers at every evaluation, so the lesson cannot drift from the code
that produces the study's results.
"""

from pathlib import Path

import jupytext
import pytest

from panns_core.train import read_statistics, train
from train_doubles import in_memory_data, tiny_config

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "03_train_system.py"


def notebook_recipe_loop():
    """``recipe_loop`` as the notebook defines it (its cells tagged ``recipe``, run in order)."""
    cells = [c for c in jupytext.read(NOTEBOOK).cells if "recipe" in c.metadata.get("tags", [])]
    assert cells, "notebook 03 has no cells tagged 'recipe'"
    namespace: dict = {}
    for cell in cells:
        exec(compile(cell.source, f"{NOTEBOOK.name}:recipe", "exec"), namespace)
    return namespace["recipe_loop"]


def test_the_recipe_is_short_enough_to_read():
    source = "\n".join(c.source for c in jupytext.read(NOTEBOOK).cells if "recipe" in c.metadata.get("tags", []))
    body = source[source.index("def recipe_loop"):]
    assert len(body.splitlines()) <= 32


@pytest.mark.parametrize("changes", [{}, {"spec_augment_time_width": 6, "seed": 7, "eval_every": 2}])
def test_recipe_loop_equals_the_production_loop(tmp_path, changes):
    data = in_memory_data()
    config = tiny_config(tmp_path / "production", **changes)
    assert (config.balanced, config.augmentation, config.precision, config.accumulation_steps) == \
        ("balanced", "mixup", "fp32", 1)
    train(config, data=data)
    production = read_statistics(config.run_dir)
    recipe = notebook_recipe_loop()(config, data)

    assert [row["iteration"] for row in recipe] == [line["iteration"] for line in production]
    for ours, theirs in zip(recipe, production):
        for key in ("mAP", "AP", "AUC", "train_loss"):
            assert ours[key] == theirs[key], f"iteration {ours['iteration']}: {key} differs"
    assert production[-1]["train_loss"] > 0 and production[-1]["mAP"] > 0
