"""Losses, one module per family, each a small tested function a system's loss sums with weights.

- :mod:`~timbrelab.losses.transcription`: focal loss, Basic Pitch's weighted BCE, plain BCE
  (Chapter 2).
- :mod:`~timbrelab.losses.separation`: deep clustering, phase-sensitive mask inference and
  per-source transcription, Cerberus's three terms (Chapter 4).
- :mod:`~timbrelab.losses.contrastive`: InfoNCE over bins or notes and the affinity MSE that
  teach Li & Zhu's timbre embedding (Chapter 5).

Later chapters add their families beside it (reconstruction, clustering, contrastive,
separation).

Chapter: book/02_focal_loss_amt.md
"""

from timbrelab.losses.contrastive import (
    affinity_loss,
    bin_info_nce,
    info_nce,
    note_ids,
    note_info_nce,
)
from timbrelab.losses.separation import (
    affinity_deep_clustering_loss,
    deep_clustering_loss,
    ideal_assignment,
    mask_inference_loss,
    phase_sensitive_target,
    salient_bins,
    source_transcription_loss,
)
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
    "affinity_deep_clustering_loss",
    "affinity_loss",
    "bce",
    "bin_info_nce",
    "contour_target",
    "deep_clustering_loss",
    "focal_loss",
    "ideal_assignment",
    "info_nce",
    "mask_inference_loss",
    "note_ids",
    "note_info_nce",
    "phase_sensitive_target",
    "salient_bins",
    "source_transcription_loss",
    "transcription_loss",
    "weighted_bce",
]
