"""Losses for mask-based separation with per-source transcription: Cerberus's three terms.

- Deep clustering (Hershey et al., 2016): embeddings ``V`` of the time-frequency bins should
  have the affinities ``V V^T`` of the ideal binary assignment ``Y Y^T``. The ``TF x TF``
  affinity matrices never need to exist: ``|V V^T - Y Y^T|_F^2 = |V^T V|_F^2 - 2 |V^T Y|_F^2
  + |Y^T Y|_F^2`` uses only ``D x D``, ``D x S`` and ``S x S`` products.
  :func:`affinity_deep_clustering_loss` is the explicit form, for teaching and tests.
- Mask inference on the truncated phase-sensitive target (Erdogan et al., 2015; Chimera).
- Transcription of each source's piano roll: the paper's L2 on probabilities, or BCE.

Chapter: book/04_cerberus.md
"""

from __future__ import annotations

import torch

from timbrelab.losses.transcription import bce

#: Transcription loss kinds: the paper's (squared error of probabilities) and BCE.
TRANSCRIPTION_KINDS = ("l2", "bce")


def salient_bins(mixture_magnitude: torch.Tensor, threshold_db: float = -40.0) -> torch.Tensor:
    """Weights ``(B, F, T)``: 1 for bins within ``threshold_db`` of the item's loudest bin,
    else 0, so that silent bins (whose dominant source is noise) do not count.

    ``mixture_magnitude``: ``(B, F, T)``.

    Chapter: book/04_cerberus.md
    """
    peak = mixture_magnitude.amax(dim=(1, 2), keepdim=True)
    return (mixture_magnitude > peak * 10 ** (threshold_db / 20)).to(mixture_magnitude.dtype)


def ideal_assignment(stem_magnitudes: torch.Tensor) -> torch.Tensor:
    """One-hot ideal binary assignment ``Y`` ``(B, S, F, T)``: the loudest source of each bin.

    ``stem_magnitudes``: ``(B, S, F, T)``.

    Chapter: book/04_cerberus.md
    """
    winner = stem_magnitudes.argmax(dim=1)
    return (
        torch.nn.functional.one_hot(winner, stem_magnitudes.shape[1])
        .permute(0, 3, 1, 2)
        .to(stem_magnitudes.dtype)
    )


def _flatten_bins(
    embedding: torch.Tensor, assignment: torch.Tensor, weights: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``V (B, TF, D)``, ``Y (B, TF, S)`` and weights ``w (B, TF)``."""
    b, d = embedding.shape[:2]
    if embedding.shape[2:] != assignment.shape[2:] or assignment.shape[0] != b:
        raise ValueError(
            f"deep clustering: embedding {tuple(embedding.shape)} and assignment "
            f"{tuple(assignment.shape)} must be (B, D, F, T) and (B, S, F, T)"
        )
    v = embedding.reshape(b, d, -1).transpose(1, 2)
    y = assignment.reshape(b, assignment.shape[1], -1).transpose(1, 2).to(v.dtype)
    w = torch.ones_like(v[..., 0]) if weights is None else weights.reshape(b, -1).to(v.dtype)
    return v, y, w


def deep_clustering_loss(
    embedding: torch.Tensor, assignment: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Weighted deep-clustering loss in its ``D x D`` form, averaged over the batch.

    For one item with bin embeddings ``v_i``, assignments ``y_i`` and weights ``w_i``::

        L = sum_ij w_i w_j (v_i . v_j - y_i . y_j)^2 / (sum_i w_i)^2
          = (|V'^T V'|^2 - 2 |V'^T Y'|^2 + |Y'^T Y'|^2) / (sum_i w_i)^2,  V' = sqrt(w) V

    (Frobenius norms), so the cost is ``O(TF D^2)``, not ``O((TF)^2)``.

    Parameters
    ----------
    embedding : (B, D, F, T) tensor
    assignment : (B, S, F, T) tensor
        One-hot ideal assignment (:func:`ideal_assignment`).
    weights : (B, F, T) tensor, optional
        Per-bin weights (:func:`salient_bins`); default all ones.

    Chapter: book/04_cerberus.md
    """
    v, y, w = _flatten_bins(embedding, assignment, weights)
    root = w.sqrt()[..., None]
    v, y = v * root, y * root
    vv = torch.linalg.matrix_norm(v.transpose(1, 2) @ v) ** 2
    vy = torch.linalg.matrix_norm(v.transpose(1, 2) @ y) ** 2
    yy = torch.linalg.matrix_norm(y.transpose(1, 2) @ y) ** 2
    return ((vv - 2 * vy + yy) / w.sum(dim=1).clamp_min(1.0) ** 2).mean()


def affinity_deep_clustering_loss(
    embedding: torch.Tensor, assignment: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """The same loss as :func:`deep_clustering_loss`, computed from the explicit ``TF x TF``
    affinity matrices ``V V^T`` and ``Y Y^T``. Memory grows with ``(TF)^2``: tiny inputs only.

    Chapter: book/04_cerberus.md
    """
    v, y, w = _flatten_bins(embedding, assignment, weights)
    difference = v @ v.transpose(1, 2) - y @ y.transpose(1, 2)  # (B, TF, TF)
    pair_weights = w[:, :, None] * w[:, None, :]
    per_item = (pair_weights * difference**2).sum(dim=(1, 2))
    return (per_item / w.sum(dim=1).clamp_min(1.0) ** 2).mean()


def phase_sensitive_target(
    mixture: torch.Tensor, stems: torch.Tensor, clip: float = 1.0
) -> torch.Tensor:
    """Truncated phase-sensitive mask ``(B, S, F, T)`` of each source.

    ``clip(|S| cos(angle S - angle X) / |X|, 0, clip)``: the real mask that, applied to the
    mixture ``X`` with its own phase, comes closest to the source ``S`` in the complex
    plane, kept in ``[0, clip]`` like the masks a network can produce.

    Parameters
    ----------
    mixture : (B, F, T) complex tensor
    stems : (B, S, F, T) complex tensor
    clip : float
        Upper bound (Chimera uses 1).

    Chapter: book/04_cerberus.md
    """
    x = mixture[:, None]
    # Re(S conj(X)) / |X|^2 = |S| cos(phase difference) / |X|
    ratio = (stems * x.conj()).real / x.abs().square().clamp_min(1e-12)
    return ratio.clamp(0.0, clip)


def mask_inference_loss(
    masks: torch.Tensor, mixture: torch.Tensor, stems: torch.Tensor, clip: float = 1.0
) -> torch.Tensor:
    """Chimera's mask-inference loss: L1 distance of the masked mixture ``M |X|`` to the
    phase-sensitive target ``PSA |X|``, divided by the mean ``|X|`` of the batch so that its
    scale does not depend on the recording level (and the loss weights stay comparable).

    Parameters
    ----------
    masks : (B, S, F, T) tensor
    mixture : (B, F, T) complex tensor
    stems : (B, S, F, T) complex tensor
    clip : float
        See :func:`phase_sensitive_target`.

    Chapter: book/04_cerberus.md
    """
    if masks.shape != stems.shape:
        raise ValueError(f"masks {tuple(masks.shape)} and stems {tuple(stems.shape)} differ")
    magnitude = mixture.abs()[:, None]
    target = phase_sensitive_target(mixture, stems, clip)
    return ((masks - target) * magnitude).abs().mean() / magnitude.mean().clamp_min(1e-8)


def source_transcription_loss(
    logits: torch.Tensor, targets: torch.Tensor, kind: str = "bce"
) -> torch.Tensor:
    """Loss of per-source piano rolls ``(B, S, 88, T)``: ``"l2"`` (the paper's: squared error
    of the sigmoid probabilities) or ``"bce"`` (binary cross-entropy of the logits).

    Chapter: book/04_cerberus.md
    """
    if logits.shape != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ")
    if kind == "l2":
        return (torch.sigmoid(logits) - targets).square().mean()
    if kind == "bce":
        return bce(logits, targets)
    raise ValueError(f"transcription loss kind must be one of {TRANSCRIPTION_KINDS}, got {kind!r}")
