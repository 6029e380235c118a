"""Training on several processes: DistributedDataParallel under ``torchrun``.

``torchrun --nproc_per_node N -m timbrelab train NAME ...`` starts N processes with
``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` in their environment; :func:`init_from_environment`
joins them into one process group (NCCL on GPUs, gloo on CPU). Outside torchrun every function
here is a no-op for a single process, so the Trainer calls them unconditionally.

Chapter: book/02_focal_loss_amt.md
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn


def init_from_environment(device: str | torch.device = "auto") -> bool:
    """Join the process group torchrun describes in the environment; True when distributed.

    The backend follows the training device: NCCL for CUDA (each process on its own GPU,
    ``LOCAL_RANK``, which NCCL's collectives use as the current device), gloo otherwise.

    Chapter: book/02_focal_loss_amt.md
    """
    from timbrelab.runtime import resolve_device

    if dist.is_available() and dist.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if resolve_device(device).type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    return True


def shutdown() -> None:
    """Leave the process group (at the end of a distributed run).

    Chapter: book/02_focal_loss_amt.md
    """
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (``(0, 1)`` when not distributed).

    Chapter: book/02_focal_loss_amt.md
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def device_for_rank(device: torch.device) -> torch.device:
    """On CUDA under torchrun: this process's own GPU (``LOCAL_RANK``); else ``device``.

    Chapter: book/02_focal_loss_amt.md
    """
    if device.type == "cuda" and rank_and_world()[1] > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` for the training forward pass: itself, or DDP-wrapped when distributed.

    On GPUs BatchNorm layers become SyncBatchNorm (statistics over the global batch, as on
    one process; the parameters stay the same objects). On CPU, gloo has no SyncBatchNorm, so
    BatchNorm statistics are per process there.

    Chapter: book/02_focal_loss_amt.md
    """
    if rank_and_world()[1] == 1:
        return model
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index])
    return nn.parallel.DistributedDataParallel(model)


def from_main(value: object) -> object:
    """``value`` as rank 0 has it, on every rank (a plain picklable object).

    Chapter: book/02_focal_loss_amt.md
    """
    if rank_and_world()[1] == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def mean_over_ranks(values: dict[str, float]) -> dict[str, float]:
    """Each value averaged over the ranks (the same keys on every rank); as is on one process.

    Chapter: book/02_focal_loss_amt.md
    """
    if rank_and_world()[1] == 1 or not values:
        return values
    keys = sorted(values)
    device = torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")
    total = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return dict(zip(keys, (total / rank_and_world()[1]).tolist(), strict=True))


def barrier() -> None:
    """Wait for every rank (no-op on one process).

    Chapter: book/02_focal_loss_amt.md
    """
    if rank_and_world()[1] > 1:
        dist.barrier()
