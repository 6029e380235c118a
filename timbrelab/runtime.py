"""Where and how reproducibly code runs: the device to use, and seeding every random generator.

Used by training, inference and the command line alike, so it lives apart from all three.

Chapter: book/02_focal_loss_amt.md
"""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's global generator and torch (all devices).

    Chapter: book/02_focal_loss_amt.md
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA if available, else Apple MPS, else CPU; anything else as given.

    Chapter: book/02_focal_loss_amt.md
    """
    if str(device) != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
