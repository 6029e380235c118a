"""The training engine, with nothing system-specific in it: each system's recipe supplies the
model, loss, data, metrics, optimiser and schedule (:mod:`timbrelab.systems`).

Chapter: book/02_focal_loss_amt.md
"""

from timbrelab.training.logs import plot_losses, write_history
from timbrelab.training.trainer import (
    BEST,
    CHECKPOINT,
    LRSchedule,
    Recipe,
    ResumeError,
    StepBatches,
    TrainConfig,
    Trainer,
    adamw,
    frozen_modules,
)
from timbrelab.training.weights import save_weights, write_model_card

__all__ = [
    "BEST",
    "CHECKPOINT",
    "LRSchedule",
    "Recipe",
    "ResumeError",
    "StepBatches",
    "TrainConfig",
    "Trainer",
    "adamw",
    "frozen_modules",
    "plot_losses",
    "save_weights",
    "write_history",
    "write_model_card",
]
