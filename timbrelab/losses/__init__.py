"""Losses, one module per family, each a small tested function a system's loss sums with weights.

- :mod:`~timbrelab.losses.transcription`: focal loss, Basic Pitch's weighted BCE, plain BCE
  (Chapter 2).

Later chapters add their families beside it (reconstruction, clustering, contrastive,
separation).

Chapter: book/02_focal_loss_amt.md
"""

from timbrelab.losses.transcription import (
    BASIC_PITCH_DEFAULTS,
    FOCAL_DEFAULTS,
    LOSS_KINDS,
    bce,
    contour_target,
    focal_loss,
    transcription_loss,
    weighted_bce,
)

__all__ = [
    "BASIC_PITCH_DEFAULTS",
    "FOCAL_DEFAULTS",
    "LOSS_KINDS",
    "bce",
    "contour_target",
    "focal_loss",
    "transcription_loss",
    "weighted_bce",
]
