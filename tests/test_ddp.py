"""DistributedDataParallel path: gloo backend, 2 CPU processes, the torchrun environment variables.

Every rank takes its slice of the one-process batch (and of the mixup lambdas),
so with a model without BatchNorm two processes must end with the weights of
one process on the whole batch; both ranks must hold identical weights and only
rank 0 may write run files.
"""

import os
import socket
import sys

import pytest
import torch
import torch.multiprocessing as mp

from panns_core.train import read_statistics, run_loop, train
from train_doubles import in_memory_data, tiny_config, tiny_net_factory

STEPS = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, root: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    # One process start serves two runs (starting processes is the slow part):
    # a BatchNorm-free net (exact comparison with one process) and a real CNN.
    for model, factory in (("tiny", tiny_net_factory), ("cnn", None)):
        # Each rank gets its own run_dir so the test can see which rank wrote files.
        config = tiny_config(f"{root}/{model}_rank{rank}", iterations=STEPS, eval_every=STEPS,
                             checkpoint_every=STEPS)
        # run_loop runs the notebook's loop (notebooks/03_train_system.py) and returns its namespace.
        loop = run_loop(config, data=in_memory_data(), model_factory=factory)
        torch.save(loop["model"].state_dict(), f"{root}/{model}_weights_rank{rank}.pt")
    torch.distributed.destroy_process_group()


@pytest.mark.slow(12)
@pytest.mark.skipif(not torch.distributed.is_available() or sys.platform == "win32", reason="needs gloo")
def test_two_gloo_processes(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)

    # BatchNorm-free net: ranks identical, equal to one process on the whole batch, rank 0 writes.
    w0 = torch.load(tmp_path / "tiny_weights_rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "tiny_weights_rank1.pt", weights_only=True)
    for key in w0:
        assert torch.equal(w0[key], w1[key]), key
    assert (tmp_path / "tiny_rank0" / "checkpoints" / "latest.pt").exists()
    assert not (tmp_path / "tiny_rank1").exists()

    single = tmp_path / "single"
    train(tiny_config(single, iterations=STEPS, eval_every=STEPS, checkpoint_every=STEPS), data=in_memory_data(),
          model_factory=tiny_net_factory)
    ref = torch.load(single / "checkpoints" / "latest.pt", weights_only=True)
    for key in w0:
        torch.testing.assert_close(w0[key], ref["model"][key], rtol=1e-5, atol=1e-6)
    ddp_lines, ref_lines = read_statistics(tmp_path / "tiny_rank0"), read_statistics(single)
    assert [l["iteration"] for l in ddp_lines] == [0, STEPS]
    assert ddp_lines[-1]["train_loss"] == pytest.approx(ref_lines[-1]["train_loss"], rel=1e-5)
    assert ddp_lines[-1]["mAP"] == pytest.approx(ref_lines[-1]["mAP"], abs=1e-6)
    saved = torch.load(tmp_path / "tiny_rank0" / "checkpoints" / "latest.pt", weights_only=True)
    assert len(saved["rng"]) == 2  # every rank's RNG state, for an exact resume

    # A BatchNorm CNN from the registry: parameters stay identical across ranks.
    c0 = torch.load(tmp_path / "cnn_weights_rank0.pt", weights_only=True)
    c1 = torch.load(tmp_path / "cnn_weights_rank1.pt", weights_only=True)
    assert set(c0) == set(c1)
    for key in c0:
        if key.endswith(("running_mean", "running_var", "num_batches_tracked")):
            continue  # buffers are broadcast from rank 0 at the next forward, not after the last step
        assert torch.equal(c0[key], c1[key]), key
    assert not (tmp_path / "cnn_rank1").exists()
