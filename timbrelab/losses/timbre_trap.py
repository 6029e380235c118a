"""Timbre-Trap's objectives (section 3.3): transcription (eq. 1), reconstruction (eq. 2),
consistency (eq. 3) and their weighted sum (eq. 4). All are squared errors summed over the
frequency (and channel) axis and averaged over frames and items.

Chapter: book/03_timbre_trap.md
"""

from __future__ import annotations

import torch
from torch import nn


def _check_same(estimate: torch.Tensor, target: torch.Tensor, name: str, ndim: int) -> None:
    if estimate.shape != target.shape or estimate.dim() != ndim:
        raise ValueError(
            f"{name}: estimate {tuple(estimate.shape)} and target {tuple(target.shape)} must "
            f"have the same {ndim}-D shape"
        )


def salience_loss(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 1: balanced squared error between pitch salience and binary targets.

    ``gamma = Y * (sum(1 - Y) / sum(Y)) + (1 - Y)`` scales the error of every active bin by
    the ratio of inactive to active bins *of its frame* (the authors' released code balances
    per frame), so a frame's few active pitches weigh as much as its many silent bins; a
    silent frame has only weight-1 negatives.

    Parameters
    ----------
    estimate, target : (B, F, T) tensors
        Salience in [0, 1] and binary targets.

    Returns
    -------
    Tensor
        Scalar: ``sum over F of gamma (Y - Y')^2``, averaged over B and T.

    Chapter: book/03_timbre_trap.md
    """
    _check_same(estimate, target, "salience_loss", 3)
    positives = target.sum(dim=1, keepdim=True)
    negatives = (1 - target).sum(dim=1, keepdim=True)
    positive_weight = negatives / positives.clamp(min=1.0)
    gamma = target * positive_weight + (1 - target)
    return (gamma * (estimate - target) ** 2).sum(dim=1).mean()


def coefficient_loss(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 2: squared error of real and imaginary parts (or magnitudes), summed over channels
    and frequency, averaged over B and T.

    Parameters
    ----------
    estimate, target : (B, C, F, T) tensors

    Chapter: book/03_timbre_trap.md
    """
    _check_same(estimate, target, "coefficient_loss", 4)
    return ((estimate - target) ** 2).sum(dim=(1, 2)).mean()


def consistency_loss(
    transcription: torch.Tensor,
    reconstructed_again: torch.Tensor,
    transcribed_again: torch.Tensor,
) -> torch.Tensor:
    """Eq. 3: transcription coefficients ``Z`` fed back in must come out unchanged in both
    modes: ``L_rc(Z, T(Z, reconstruct)) + L_rc(Z, T(Z, transcribe))``.

    Timbre-less audio has no timbre left to remove, and it is still audio to reconstruct.
    Gradients flow into ``Z`` too, as in the authors' training.

    Parameters
    ----------
    transcription : (B, 2, F, T)
        ``Z``, the transcription-mode coefficients.
    reconstructed_again, transcribed_again : (B, 2, F, T)
        The model's two outputs for input ``Z`` (:meth:`TimbreTrap.round_trip`).

    Chapter: book/03_timbre_trap.md
    """
    return coefficient_loss(reconstructed_again, transcription) + coefficient_loss(
        transcribed_again, transcription
    )


def timbre_trap_loss(
    model: nn.Module,
    outputs: dict[str, torch.Tensor],
    salience_target: torch.Tensor | None,
    reconstruction_weight: float = 1.0,
    consistency_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Eq. 4, weighted: ``L_tr + w_rc L_rc + w_cc L_cc``.

    Parameters
    ----------
    model : TimbreTrap
        Needed for the consistency term's second pass.
    outputs : dict
        ``model(audio)``.
    salience_target : (B, F, T) tensor or None
        Binary targets on the CQT grid; None for unlabelled audio, which trains the
        reconstruction term only (section 4.3).
    reconstruction_weight, consistency_weight : float
        0 removes a term (and its computation).

    Returns
    -------
    (Tensor, dict)
        The loss and its parts (``transcription``, ``reconstruction``, ``consistency``; only
        those computed).

    Chapter: book/03_timbre_trap.md
    """
    terms: dict[str, tuple[float, torch.Tensor]] = {}
    if salience_target is not None:
        terms["transcription"] = (1.0, salience_loss(outputs["salience"], salience_target))
    if reconstruction_weight > 0:
        recon = coefficient_loss(outputs["reconstruction"], outputs["features"])
        terms["reconstruction"] = (reconstruction_weight, recon)
    if consistency_weight > 0 and salience_target is not None:
        z = outputs["transcription"]
        terms["consistency"] = (consistency_weight, consistency_loss(z, *model.round_trip(z)))
    if not terms:
        raise ValueError("timbre_trap_loss: no term to compute (no targets and no reconstruction)")
    total = sum(weight * value for weight, value in terms.values())
    return total, {name: float(value.detach()) for name, (_, value) in terms.items()}
