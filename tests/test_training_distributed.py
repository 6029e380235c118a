"""Training on several processes (DistributedDataParallel over gloo, on CPU).

Two processes that each take half of a global batch of 4 must end with the weights of one
process taking the whole batch; a run stopped on two processes must resume on one; and
``torchrun -m timbrelab train`` must train and write its files. Children run with one
OpenMP thread and no visible GPU, so they use gloo on any machine.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import Dataset

from timbrelab.io import load_checked
from timbrelab.pretrained import load_weights
from timbrelab.training import CHECKPOINT, TrainConfig, Trainer, distributed

STEPS, BATCH, WORLD = 6, 4, 2


class Pairs(Dataset):
    """10 items, each a pure function of its index: 2 batches of 4 per epoch, 2 left over."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        x = torch.randn(6, generator=torch.Generator().manual_seed(i))
        return {"x": x, "y": torch.tanh(x[:3] - x[3:]), "index": torch.tensor(i)}


def mlp() -> nn.Module:
    """A model without BatchNorm or dropout: its steps depend on the batch alone."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))


class Interrupted(Exception):
    """Raised by the loss to stop a run part-way, as a killed job would."""


def train(out_dir: Path, resume: bool = False, stop_after: int | None = None) -> list[list[int]]:
    """Train :func:`mlp` on :class:`Pairs` for ``STEPS`` steps in this process's share.

    Parameters
    ----------
    out_dir : Path
        Run folder; a checkpoint is written every 3 steps (rank 0).
    resume : bool
        Continue from ``out_dir/checkpoint.pt``.
    stop_after : int, optional
        Raise :class:`Interrupted` when step ``stop_after + 1`` begins.

    Returns
    -------
    list of list of int
        The item indices this process trained on, one list per step.
    """
    seen: list[list[int]] = []

    def mse(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        if len(seen) == stop_after:
            raise Interrupted
        seen.append(batch["index"].tolist())
        return (model(batch["x"]) - batch["y"]).square().mean(), {}

    config = TrainConfig(
        steps=STEPS, batch_size=BATCH, lr=1e-2, checkpoint_every=3, device="cpu", progress=False
    )
    Trainer(mlp(), mse, Pairs(), None, config, out_dir).fit(resume=resume)
    return seen


def _worker(rank: int, world: int, port: int, out_dir: str, stop_after: int | None) -> None:
    """One of ``world`` processes (``torch.multiprocessing.spawn`` passes ``rank``).

    It joins the group the way torchrun describes it, trains, and writes the indices it saw to
    ``out_dir/seen-rank{rank}.json``.
    """
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
    )
    joined = distributed.init_from_environment()
    assert joined
    try:
        seen = train(Path(out_dir), stop_after=stop_after)
    except Interrupted:
        seen = []
    finally:
        distributed.shutdown()
    (Path(out_dir) / f"seen-rank{rank}.json").write_text(json.dumps(seen))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(out_dir: Path, stop_after: int | None = None) -> list[list[list[int]]]:
    """Train on ``WORLD`` processes; the indices each rank saw, per step."""
    out_dir.mkdir(parents=True)
    mp.spawn(_worker, args=(WORLD, free_port(), str(out_dir), stop_after), nprocs=WORLD)
    return [json.loads((out_dir / f"seen-rank{r}.json").read_text()) for r in range(WORLD)]


@pytest.fixture
def children_env(monkeypatch):
    """Spawned children inherit one OpenMP thread and no GPU (so gloo, whatever the host)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> tuple[dict[str, torch.Tensor], list[list[int]]]:
    """Final weights and per-step indices of the straight run on one process."""
    out_dir = tmp_path_factory.mktemp("one_process")
    seen = train(out_dir)
    return load_checked(out_dir / CHECKPOINT)["model"], seen


def assert_same_weights(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert state.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.allclose(state[key], value, atol=1e-6), key


def test_two_processes_take_the_same_steps_as_one(tmp_path, children_env, one_process):
    expected, expected_seen = one_process
    seen = spawn(tmp_path / "two")

    # each step, the ranks split the one-process batch between them, item r::2 to rank r
    assert len(expected_seen) == STEPS
    for step, batch in enumerate(expected_seen):
        assert [seen[r][step] for r in range(WORLD)] == [batch[r::WORLD] for r in range(WORLD)]
    state = load_checked(tmp_path / "two" / CHECKPOINT)
    assert state["step"] == STEPS
    assert_same_weights(state["model"], expected)
    assert not torch.allclose(state["model"]["0.weight"], mlp().state_dict()["0.weight"])


def test_a_run_stopped_on_two_processes_resumes_on_one(tmp_path, children_env, one_process):
    expected, expected_seen = one_process
    out_dir = tmp_path / "run"
    spawn(out_dir, stop_after=3)
    assert load_checked(out_dir / CHECKPOINT)["step"] == 3

    seen = train(out_dir, resume=True)

    assert seen == expected_seen[3:]
    state = load_checked(out_dir / CHECKPOINT)
    assert state["step"] == STEPS
    assert_same_weights(state["model"], expected)


@pytest.mark.slow
def test_torchrun_trains_from_the_command_line(tmp_path):
    out_dir = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    torchrun = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}"]
    cli = ["-m", "timbrelab", *"train amt --tier quick --steps 1 --device cpu".split()]
    command = [sys.executable, *torchrun, *cli, "--out", str(out_dir)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)

    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained amt to step 1") == 1  # rank 0 alone reports and saves
    assert load_checked(out_dir / CHECKPOINT)["step"] == 1
    assert load_weights(out_dir / "weights.pt").name == "amt"
