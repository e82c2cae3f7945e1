# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
profile = None      # None: the profile you ran last, or the one given to make lab
run_root = None     # None: the run folder of that profile, e.g. runs/default
figures_dir = None
data_root = None
data_source = None
run_name = None     # None: the lesson (the recipe loop). The pipeline passes one run line's name: train that run
config = {}         # TrainConfig fields: the run line's (pipeline), or changes to the lesson's run
lesson = {"iterations": 20, "eval_every": 5}  # the lesson's short run (on top of the profile's train defaults)
nproc_per_node = 1  # > 1: launch torchrun with that many processes (one per GPU)

# %% [markdown]
# # 03 · The training loop
#
# **You will learn** how one step of PANNs training is put together (balanced batch, mixup, binary
# cross-entropy, Adam), what a training curve looks like after a few steps, and how the production loop
# that trains the study's runs adds checkpoints, resume and several GPUs around the same recipe.
#
# **What the paper did.** Trained every system with the binary cross-entropy of its eq. (1) between the
# sigmoid outputs and the clip labels, the Adam optimizer with learning rate 0.001 and batch size 32, for
# about 600k iterations (about 3 days per system on one Tesla V100). Mini-batches were balanced so that
# every sound class is sampled about equally, and augmented with mixup (lambda drawn from a Beta
# distribution, on the log-mel spectrogram by default) and SpecAugment. Fig. 4 plots the train and eval
# mAP against the iteration.
#
# **What we do.** The recipe as the official code runs it: Adam with `amsgrad`, a batch of 2 x 32 clips
# drawn by the balanced sampler and mixed in pairs with lambda ~ Beta(1, 1), SpecAugment with two time
# stripes of up to 64 frames and two frequency stripes of up to 8 mel bins, evaluation every 2,000
# iterations. The loop below is that recipe and nothing else (one process, fp32, no checkpoints), short
# enough to read top to bottom; `panns_core.train.run_loop` is the production loop the pipeline runs.
#
# **Where we differ, and why.** Short profiles train 1-s clips for a few hundred steps, with SpecAugment
# time stripes scaled to the clip (`spec_augment_time_width`): their curves show the mechanics, not
# converged systems. The production loop picks `best.pt` on a validation split (the official code
# selected on the eval set) and adds exact resume, several GPUs, bf16/fp16 and gradient accumulation.

# %%
import os

from panns_core import train as T
from panns_core.study.notebook_inputs import open_profile, lesson_data

here = open_profile(profile, run_root=run_root, figures_dir=figures_dir, data_root=data_root,
                    data_source=data_source)
profile, run_root, figures_dir, data_root, data_source = (here.profile, here.run_root, here.figures_dir,
                                                          here.data_root, here.data_source)
is_lesson = run_name is None
if is_lesson:  # the profile's data (or a small example corpus), the profile's train defaults, a short run
    lesson_root, train_defaults = lesson_data(here)
    recipe_config = T.TrainConfig.from_dict(
        {**train_defaults, "eval_splits": ["eval"], **lesson, **config, "data_root": lesson_root,
         "run_dir": os.path.join(run_root, "lesson"), "progress": False}, source="lesson parameters")
    print(f"lesson run: {recipe_config.model}, batch {recipe_config.batch_size}, "
          f"{recipe_config.iterations} iterations, data {lesson_root}")

# %% [markdown]
# ## The recipe, top to bottom
#
# One function, one process, fp32. Each iteration: the balanced sampler picks `2 x batch_size` clips (every
# class about equally often) -> mixup draws one lambda per pair -> the model mixes each pair after its
# log-mel front end -> the targets are mixed with the same lambdas -> binary cross-entropy -> `backward()`
# -> one Adam step. Every `eval_every` steps (and at the end) the model scores the eval clips.

# %% tags=["recipe"]
import torch
import torch.nn.functional as F

from panns_core.evaluate import evaluate
from panns_core.mixup import Mixup
from panns_core.models.frontend import do_mixup
from panns_core.samplers import BalancedSampler
from panns_core.train import create_model_from_config, seed_everything, set_time_stripe_width


# %% tags=["recipe"]
def recipe_loop(config, data):
    """The paper's training recipe on one fp32 process; returns one row per evaluation."""
    seed_everything(config.seed)
    model = create_model_from_config(config, data.classes_num)
    if config.spec_augment_time_width:  # short clips: narrower SpecAugment time stripes
        set_time_stripe_width(model, config.spec_augment_time_width)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, amsgrad=True)
    sampler = iter(BalancedSampler(data.train_table, 2 * config.batch_size, random_seed=config.seed))
    mixup = Mixup(config.mixup_alpha, random_seed=config.seed)
    history, losses = [], []
    for i in range(config.iterations + 1):
        if i % config.eval_every == 0 or i == config.iterations:  # evaluate every eval_every steps and at the end
            scores = evaluate(model, data.eval_tables["eval"], dataset=data.eval_dataset,
                              batch_size=config.batch_size)
            history.append({"iteration": i, "mAP": scores["mAP"], "AP": scores["AP"], "AUC": scores["AUC"],
                            "train_loss": sum(losses) / len(losses) if losses else None})
            losses = []
        if i == config.iterations:
            return history
        batch = data.collate_fn([data.train_dataset[clip] for clip in next(sampler)])  # 2 x batch_size clips
        waveform, target = torch.from_numpy(batch["waveform"]), torch.from_numpy(batch["target"])
        lam = torch.from_numpy(mixup.get_lambda(len(waveform)))  # [lam, 1 - lam] for each pair of clips
        model.train()
        output = model(waveform, lam)["clipwise_output"]  # the model mixes each pair after its front end
        loss = F.binary_cross_entropy(output, do_mixup(target, lam))  # mixed targets, clip-level BCE
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()  # Adam (amsgrad), constant learning rate
        losses.append(loss.item())


# %% [markdown]
# ## Run it
# The lesson's run: the profile's training settings, `lesson["iterations"]` steps (about a minute on a
# 2-core CPU). The pipeline's training stages skip this cell and train their run line with the
# production loop below.

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

if is_lesson:
    recipe_data = T.build_run_data(recipe_config)
    history = pd.DataFrame(recipe_loop(recipe_config, recipe_data))
    fig, ax = plt.subplots(1, 2, figsize=(9, 3))
    ax[0].plot(history["iteration"], history["mAP"], "o-")
    ax[0].set(xlabel="iteration", ylabel="eval mAP", title="eval mAP of the recipe loop")
    ax[1].plot(history["iteration"], history["train_loss"], "o-", color="tab:orange")
    ax[1].set(xlabel="iteration", ylabel="mean BCE since last evaluation", title="training loss")
    plt.tight_layout()
    plt.show()
    display(history[["iteration", "mAP", "train_loss"]])

# %% [markdown]
# **What to notice.** The loss falls from the first steps while the eval mAP, scored on clips the model never
# trains on, rises more slowly and unevenly: a batch of mixed pairs is a harder target than the eval clips.
# At iteration 0 the model is untrained: its mAP is close to what random scores would give (about the
# fraction of positive clips per class).

# %% [markdown]
# ## Exercise 03.1: the mixed target
# Clips `2k` and `2k + 1` of a batch are mixed as `lam[2k] * x[2k] + lam[2k+1] * x[2k+1]`, with
# `lam[2k+1] = 1 - lam[2k]`; their targets must be mixed the same way (one row per pair). Write
# `mix_targets(target, lam)` without `do_mixup`.

# %% tags=["exercise"]
# Exercise 03.1: mix the targets of each pair of clips
def mix_targets(target, lam):
    """target: (2B, classes) tensor, lam: (2B,) tensor -> (B, classes) mixed targets."""
    raise NotImplementedError


# %% tags=["check"]
from panns_core.study.exercises import check

example_target = (torch.rand(8, 5) < 0.3).float()
example_lam = torch.from_numpy(Mixup(1.0, random_seed=0).get_lambda(8))
with check("03.1", hint="take rows 0, 2, 4 ... times lam[0::2] plus rows 1, 3, 5 ... times lam[1::2]"):
    mixed = mix_targets(example_target, example_lam)
    assert tuple(mixed.shape) == (4, 5), f"expected one row per pair, shape (4, 5); got {tuple(mixed.shape)}"
    assert torch.allclose(mixed, do_mixup(example_target, example_lam)), "some mixed targets differ from do_mixup's"

# %% [markdown]
# ## Exercise 03.2: the loss of eq. (1)
# The paper's loss is $l = -\sum_n \sum_k y_{nk} \ln f_{nk} + (1 - y_{nk}) \ln(1 - f_{nk})$; PyTorch's
# `binary_cross_entropy` averages it over clips and classes. Write it with tensor operations only.

# %% tags=["exercise"]
# Exercise 03.2: binary cross-entropy, averaged over clips and classes
def bce(output, target):
    """output: sigmoid scores in (0, 1), target: same shape, in [0, 1] -> a scalar tensor."""
    raise NotImplementedError


# %% tags=["check"]
example_output = torch.rand(4, 5) * 0.98 + 0.01
example_mixed = do_mixup(example_target, example_lam)
with check("03.2", hint="-(y * log(f) + (1 - y) * log(1 - f)), then .mean()"):
    ours, torchs = bce(example_output, example_mixed), F.binary_cross_entropy(example_output, example_mixed)
    assert ours.dim() == 0, "return one number (a 0-dimensional tensor): average over clips and classes"
    assert torch.isclose(ours, torchs), f"your loss {float(ours):.5f}, PyTorch's {float(torchs):.5f}"

# %% [markdown]
# ## The same recipe in production
# `python -m panns_core.train`, `torchrun -m panns_core.train` and the pipeline's training stages run
# `panns_core.train.run_loop` ([source](../panns_core/train.py)): the recipe above plus a run folder
# (`config.json`, one `statistics.jsonl` line per evaluation and split, checkpoints with every optimizer,
# sampler, mixup and RNG state so that a killed run resumes exactly), DDP under torchrun (each process
# takes its slice of the batch), gradient accumulation, bf16/fp16 autocast, an optional warm-up and early
# stop. `tests/test_recipe_loop.py` runs both loops on one config and checks that every evaluation gives
# the same numbers.
#
# With `run_name` set (the pipeline sets it, one stage per run line of the profile) the cell below trains
# that run; in the lesson it opens the profile's reference run instead, trained by `make reproduce`.

# %%
from panns_core import distributed as D

trained_dir = None
if not is_lesson:
    run_config = T.TrainConfig.from_dict(
        {"progress": False, **config, "data_root": data_root, "run_dir": os.path.join(run_root, "train", run_name)},
        source=f"profile {profile}, run {run_name}")
    if not str(run_config.training_set).endswith(".h5"):
        from panns_core.study.notebook_inputs import require_packed_data
        require_packed_data(data_root, profile, index=run_config.training_set)  # says which notebooks make the data
    if nproc_per_node > 1 and not D.env_dist_info().enabled:
        # Several GPUs: torchrun runs the loop once per GPU; train() below then reopens the finished run.
        T.launch_processes(run_config, nproc_per_node)
    trained_dir = T.train(run_config)
    print("run folder:", trained_dir)
else:
    reference = os.path.join(run_root, "train", here.spec.get("reference_run") or "base")
    if os.path.exists(os.path.join(reference, "statistics.jsonl")):
        trained_dir = reference
    else:
        print(f"no reference run under {reference} yet: `make reproduce` (or "
              f"`python -m panns_core.study --profile {profile}`) trains it with the production loop")

# %% [markdown]
# ## Training curves of that run (train dashed, eval solid)

# %%
if trained_dir is not None:
    from panns_core.study import plots as P
    from panns_core.study import tables as TB

    P.apply_style()
    trained = TB.load_run(str(trained_dir))
    fig, ax = plt.subplots(figsize=(P.COLUMN_WIDTH * 1.4, 3.0))
    for split, style in (("balanced_train", "--"), ("validation", ":"), ("eval", "-")):
        curve = trained.curve(split) if split in trained.splits() else None
        if curve is not None:
            ax.plot(curve["iteration"], curve["mAP"], style, label=split)
    ax.set(xlabel="iteration", ylabel="mAP", title=os.path.basename(str(trained_dir)))
    ax.legend()
    P.finish(fig)
    sel = TB.select_evaluation(trained)
    print(f"selected iteration {sel.iteration} ({sel.rule}): eval mAP {sel.metrics['mAP']:.4f}")

# %% [markdown]
# ## Questions
# 1. Predict the curves of the recipe loop with mixup off (`lam = None`, targets unmixed, a batch of
#    `batch_size` clips): will the training loss be lower or higher? The eval mAP after 20 steps? Then
#    change the loop and run it. (Table V of the paper compares both on AudioSet.)
# 2. The balanced sampler draws every class about equally often. Which classes of the eval set would you
#    expect to gain most from it, and which might lose?
# 3. Why does the production loop need the sampler's and the mixup generator's states in its checkpoints
#    for a resumed run to equal an uninterrupted one?
