# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
profile = "smoke"
run_root = "runs/smoke"
figures_dir = "figures/smoke"
data_root = "data/smoke"
data_source = "generated"
run_name = "notebook"
config = {"model": "Cnn6", "training_set": "full_train_minus_validation", "batch_size": 4, "iterations": 6,
          "eval_every": 3, "max_eval_clips": 48}  # any TrainConfig field (the pipeline passes a profile run's)
nproc_per_node = 1  # > 1: launch torchrun with that many processes (one per GPU)

# %% [markdown]
# # 03 · Train one system
#
# **What the paper did.** Trained each system with Adam (lr 1e-3, amsgrad), batch 32, balanced sampling and mixup (alpha 1) for about 600k iterations, evaluating mAP on the eval set every 2,000 iterations; clip-level binary cross-entropy, constant learning rate.
#
# **What we do.** The loop below *is* the training code: `python -m panns_core.train`, `torchrun -m panns_core.train` and the pipeline all run this notebook's cells (the CLI runs `notebooks/03_train_system.py` as a script). Around the recipe, small `panns_core.train` helpers keep the run folder: `config.json`, `statistics.jsonl` (one line per evaluation and split) and checkpoints that hold every optimizer, sampler, mixup and RNG state, so a killed run resumes exactly.
#
# **Where we differ, and why.** `best.pt` is chosen on the validation split, not on eval (the paper selected on eval). Optional early stop, bf16/fp16 autocast, gradient accumulation and several GPUs under torchrun (each rank takes its slice of the one-process batch, so results do not depend on the GPU count). Short profiles train for a few iterations on small data: their curves show the mechanics, not converged systems.

# %% [markdown]
# ## The run to train
# `config` holds any `TrainConfig` field (the profile's `train` defaults plus one run line). When this file is run by `python -m panns_core.train` or `panns_core.train.train(config)`, `loop_request` hands back *their* config instead.

# %%
import os
import time

import torch
import torch.nn.functional as F

from panns_core import distributed as D
from panns_core import train as T
from panns_core.mixup import Mixup
from panns_core.models.frontend import do_mixup
from panns_core.precision import autocast
from panns_core.samplers import create_train_sampler

fields = {"progress": False, **config, "data_root": data_root, "run_dir": os.path.join(run_root, "train", run_name)}
request = T.loop_request(fields, source=f"profile {profile}, run {run_name}")
config = request.config
if not request.from_code and not str(config.training_set).endswith(".h5"):
    from panns_core.study.notebook_inputs import require_packed_data
    require_packed_data(data_root, profile, index=config.training_set)  # says which notebooks make the data
if nproc_per_node > 1 and not D.env_dist_info().enabled:
    # Several GPUs: torchrun runs this same file once per GPU; the cells below then
    # reopen the finished run (resuming at its last iteration trains nothing).
    T.launch_processes(config, nproc_per_node)

# %% [markdown]
# ## Model, optimizer, sampler, mixup
# One process per GPU under torchrun (`start_run` joins the group); each process reads `clips_per_rank` of the `2 x batch_size` clips of a step.

# %%
run = T.start_run(config, request.data)
T.seed_everything(config.seed + run.dist.rank)
make_model = request.model_factory or T.create_model_from_config
model = make_model(config, run.data.classes_num).to(run.device)
if config.channels_last:
    model = model.to(memory_format=torch.channels_last)
if config.spec_augment_time_width is not None:  # short clips: 64-frame stripes would hide most of a 1-s clip
    T.set_time_stripe_width(model, config.spec_augment_time_width)
optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, betas=(0.9, 0.999), eps=1e-8,
                             weight_decay=0.0, amsgrad=True)
scaler = torch.amp.GradScaler(run.device.type, enabled=config.precision == "fp16")  # loss scaling for fp16 only
sampler = create_train_sampler(config.balanced, run.data.train_table, run.clips_per_rank, random_seed=config.seed,
                               rank=run.dist.rank, world_size=run.dist.world_size,
                               black_list_csv=config.black_list_csv)
mixup = Mixup(config.mixup_alpha, random_seed=config.seed) if config.mixup else None
saved_rng = T.resume(run, model=model, optimizer=optimizer, scaler=scaler, sampler=sampler, mixup=mixup)
net, ddp = T.distribute(model, run)  # DDP wrapper under torchrun, torch.compile when asked
print(f"{config.model}: {sum(p.numel() for p in model.parameters()):,} parameters on {run.device}, "
      f"{run.dist.world_size} process(es); " + (f"resumed at {run.resumed_at}" if run.resumed_at is not None
                                                else "fresh start"))

# %% [markdown]
# ## The loop
# Per iteration `i`: evaluate every `eval_every` iterations (and at the end), save checkpoints, stop at `iterations`; otherwise one step of the recipe:
# balanced-sampler batch -> mixup lambdas -> `model(x, mixup_lambda)` (the model mixes its inputs after the front end) -> mixed targets -> BCE -> `loss.backward()` -> Adam step.
# `TrackedBatches` remembers the sampler state right after each batch a checkpoint needs, because loader workers read ahead.

# %%
T.write_run_files(run, model)
D.barrier(run.dist)
batches_seen = T.TrackedBatches(sampler, run.progress.iteration, run.is_checkpoint_iteration)
initial_sampler_state = sampler.state_dict() if run.resumed_at is None else None
batches = iter(T.train_loader(run, batches_seen))
if saved_rng is not None:  # after the loader exists, so that nothing consumes the restored stream first
    T.set_rng_states(saved_rng)
bar = T.progress_bar(run)
run.clock_start = time.perf_counter()
steps = config.accumulation_steps
try:
    while True:
        i = run.progress.iteration
        stop = False
        if i != run.resumed_at:
            evaluated = i % config.eval_every == 0 or i >= config.iterations
            improved = T.evaluate_and_log(run, model, i) if evaluated else False
            stop = evaluated and T.should_stop_early(run, i)
            if evaluated or i % config.checkpoint_every == 0:
                sampler_state = initial_sampler_state if i == 0 else batches_seen.take(i)
                T.save_checkpoints(run, model=model, optimizer=optimizer, scaler=scaler,
                                   sampler_state=sampler_state, mixup=mixup, improved=improved)
        if i >= config.iterations or stop:
            break

        # one step of the recipe
        batch = next(batches)  # this rank's clips_per_rank clips, drawn by the balanced sampler
        started = time.perf_counter()
        waveform = batch["waveform"].to(run.device, non_blocking=True)
        target = batch["target"].to(run.device, non_blocking=True)
        lam = T.mixup_lambdas(mixup, run)  # one lambda per clip; clips 2k and 2k+1 are mixed together
        for group in optimizer.param_groups:  # linear warm-up when asked; a function of i only, so resume is exact
            group["lr"] = T.learning_rate_at(config, i)
        net.train()
        optimizer.zero_grad(set_to_none=True)
        step_loss = torch.zeros((), device=run.device)
        micro = waveform.shape[0] // steps  # gradient accumulation: micro-batches of whole pairs
        for k in range(steps):
            part = slice(k * micro, (k + 1) * micro)
            lam_k = None if lam is None else lam[part]
            with T.gradient_sync(ddp, last_micro_batch=k == steps - 1):
                with autocast(run.device, config.precision):
                    output = net(waveform[part], lam_k)
                clipwise = output["clipwise_output"].float()  # BCE in fp32, outside autocast
                target_k = target[part] if lam_k is None else do_mixup(target[part], lam_k)
                loss = F.binary_cross_entropy(clipwise, target_k) / steps
                scaler.scale(loss).backward()
            step_loss += loss.detach()
        scaler.step(optimizer)  # Adam(amsgrad); a plain optimizer.step() unless fp16 loss scaling is on
        scaler.update()
        if run.device.type == "cuda":
            torch.cuda.synchronize(run.device)
        T.count_step(run, step_loss, time.perf_counter() - started)
        if bar is not None:
            bar.update(1)
finally:
    if bar is not None:
        bar.close()
    del batches  # stops loader workers
print("run folder:", run.run_dir)

# %% [markdown]
# ## Training curves of this run (train dashed, eval solid)

# %%
if not request.from_code:
    from panns_core.study import plots as P
    from panns_core.study import tables as TB

    import matplotlib.pyplot as plt

    P.apply_style()
    trained = TB.load_run(str(run.run_dir))
    fig, ax = plt.subplots(figsize=(P.COLUMN_WIDTH * 1.4, 3.0))
    for split, style in (("balanced_train", "--"), ("validation", ":"), ("eval", "-")):
        curve = trained.curve(split) if split in trained.splits() else None
        if curve is not None:
            ax.plot(curve["iteration"], curve["mAP"], style, label=split)
    ax.set(xlabel="iteration", ylabel="mAP", title=run_name)
    ax.legend()
    P.finish(fig)
    sel = TB.select_evaluation(trained)
    print(f"selected iteration {sel.iteration} ({sel.rule}): eval mAP {sel.metrics['mAP']:.4f}")
