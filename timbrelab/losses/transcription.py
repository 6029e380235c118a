"""Losses for frame/onset transcription: focal loss, Basic Pitch's weighted BCE, plain BCE.

All functions take *logits* (pre-sigmoid scores), never probabilities: working in the logit
domain with ``logsigmoid`` keeps the losses finite when a model becomes very confident.

Chapter: book/02_focal_loss_amt.md
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

_REDUCTIONS = ("mean", "sum", "none")
LOSS_KINDS = ("focal", "basic_pitch", "bce")

#: Li & Zhu's focal-loss settings for their AMT branch (authors' code, ``model/loss.py``):
#: gamma 1, positive-class weight 0.2 on frames and 0.06 on the sparser onsets. Their
#: Figure 2 shows why: a *large* positive weight smears onsets into frames and blurs note
#: ends, so the rarer the positives, the smaller their weight.
FOCAL_DEFAULTS = {"frame_alpha": 0.2, "onset_alpha": 0.06, "gamma": 1.0}
#: Basic Pitch (Bittner et al. 2022): BCE on every output with label smoothing 0.2 (the
#: released training code's default), and a class-balanced BCE on onsets, weight 0.95 on
#: the positive class and 0.05 on the negative class (paper, Section 3).
BASIC_PITCH_DEFAULTS = {"label_smoothing": 0.2, "onset_positive_weight": 0.95}


def _check_pair(logits: torch.Tensor, targets: torch.Tensor, name: str) -> None:
    if logits.shape != targets.shape:
        raise ValueError(
            f"{name}: logits shape {tuple(logits.shape)} != targets shape {tuple(targets.shape)}"
        )


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _smooth(targets: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    # Keras convention (Basic Pitch): squeeze labels towards 0.5.
    return targets * (1.0 - label_smoothing) + 0.5 * label_smoothing


def focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    alpha: float = 0.25,
    gamma: float = 2.0,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Binary focal loss (Lin et al. 2017) on logits.

    .. math::
        \ell = -\alpha\, y\, (1-p)^\gamma \log p - (1-\alpha)(1-y)\, p^\gamma \log(1-p),
        \qquad p = \sigma(\text{logit})

    ``alpha`` is the weight of the positive class, ``gamma`` down-weights easy examples.
    With ``gamma=0, alpha=0.5`` it is half the binary cross entropy. Targets may be soft
    (in [0, 1]); for binary targets this is exactly Lin et al.'s :math:`-\alpha_t (1-p_t)^\gamma
    \log p_t`.

    Parameters
    ----------
    logits, targets : Tensor
        Same shape, e.g. ``(B, 88, T)``; targets in [0, 1].
    alpha : float
        Positive-class weight in [0, 1].
    gamma : float
        Focusing parameter, >= 0.
    reduction : {"mean", "sum", "none"}

    Returns
    -------
    Tensor
        Scalar, or the element-wise loss for ``reduction="none"``.

    Chapter: book/02_focal_loss_amt.md
    """
    _check_pair(logits, targets, "focal_loss")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"focal_loss: alpha must be in [0, 1], got {alpha}")
    if gamma < 0:
        raise ValueError(f"focal_loss: gamma must be >= 0, got {gamma}")
    targets = targets.to(logits.dtype)
    log_p = F.logsigmoid(logits)
    log_not_p = F.logsigmoid(-logits)
    # (1-p)^gamma = exp(gamma * log(1-p)): stable for any logit.
    positive = alpha * targets * torch.exp(gamma * log_not_p) * log_p
    negative = (1.0 - alpha) * (1.0 - targets) * torch.exp(gamma * log_p) * log_not_p
    return _reduce(-(positive + negative), reduction)


def bce(
    logits: torch.Tensor,
    targets: torch.Tensor,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Binary cross entropy on logits, optionally with label smoothing towards 0.5.

    Parameters
    ----------
    logits, targets : Tensor
        Same shape; targets in [0, 1].
    label_smoothing : float
        ``targets * (1 - s) + 0.5 * s``.
    reduction : {"mean", "sum", "none"}

    Returns
    -------
    Tensor

    Chapter: book/02_focal_loss_amt.md
    """
    _check_pair(logits, targets, "bce")
    smoothed = _smooth(targets.to(logits.dtype), label_smoothing)
    loss = F.binary_cross_entropy_with_logits(logits, smoothed, reduction="none")
    return _reduce(loss, reduction)


def weighted_bce(
    logits: torch.Tensor,
    targets: torch.Tensor,
    positive_weight: float = BASIC_PITCH_DEFAULTS["onset_positive_weight"],
    label_smoothing: float = BASIC_PITCH_DEFAULTS["label_smoothing"],
) -> torch.Tensor:
    r"""Basic Pitch's class-balanced BCE (its onset loss).

    The mean BCE over the negative elements (target exactly 0) and the mean BCE over the
    others are computed separately, then combined:

    .. math:: (1 - w)\,\overline{\text{BCE}}_{y=0} + w\,\overline{\text{BCE}}_{y>0}

    so the few positives count as much as ``w`` however rare they are. Labels are smoothed
    towards 0.5 *after* the split (as in Basic Pitch). A class with no element contributes 0.

    Parameters
    ----------
    logits, targets : Tensor
        Same shape; targets in [0, 1].
    positive_weight : float
        ``w`` in [0, 1]; Basic Pitch uses 0.95 for onsets.
    label_smoothing : float

    Returns
    -------
    Tensor
        Scalar.

    Chapter: book/02_focal_loss_amt.md
    """
    _check_pair(logits, targets, "weighted_bce")
    if not 0.0 <= positive_weight <= 1.0:
        raise ValueError(f"weighted_bce: positive_weight must be in [0, 1], got {positive_weight}")
    targets = targets.to(logits.dtype)
    elementwise = bce(logits, targets, label_smoothing=label_smoothing, reduction="none")
    negative = targets == 0
    positive = ~negative
    # Masked means without boolean indexing: shape-static, so it also runs under torch.compile.
    neg_mean = (elementwise * negative).sum() / negative.sum().clamp(min=1)
    pos_mean = (elementwise * positive).sum() / positive.sum().clamp(min=1)
    return (1.0 - positive_weight) * neg_mean + positive_weight * pos_mean


def contour_target(frame: torch.Tensor, bins_per_semitone: int = 3) -> torch.Tensor:
    """Contour (multipitch) target from a frame roll: each pitch spread over its CQT bins.

    Pitch ``i`` is centred on CQT bin ``bins_per_semitone * i`` (the CQT starts at the
    lowest key's centre frequency), so its bins are ``3i - 1, 3i, 3i + 1`` for 3 bins per
    semitone; the half-bin below the lowest key is dropped.

    Parameters
    ----------
    frame : Tensor
        ``(B, P, T)`` frame roll.
    bins_per_semitone : int
        Odd, >= 1.

    Returns
    -------
    Tensor
        ``(B, P * bins_per_semitone, T)``.

    Chapter: book/02_focal_loss_amt.md
    """
    if bins_per_semitone < 1 or bins_per_semitone % 2 == 0:
        raise ValueError(f"bins_per_semitone must be odd and >= 1, got {bins_per_semitone}")
    if frame.dim() != 3:
        raise ValueError(f"contour_target: frame must be (B, P, T), got {tuple(frame.shape)}")
    spread = frame.repeat_interleave(bins_per_semitone, dim=1)
    half = bins_per_semitone // 2
    # Shift down by half a semitone's bins so bin 3i (the key centre) is the middle one.
    return F.pad(spread[:, half:], (0, 0, 0, half))


def transcription_loss(
    outputs: Mapping[str, torch.Tensor],
    batch: Mapping[str, torch.Tensor],
    kind: str = "focal",
    **params: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Training loss of a transcription model: frame + onset (+ contour) terms, summed.

    ``kind`` picks the recipe:

    - ``"focal"`` (Li & Zhu): :func:`focal_loss` on every head; params ``frame_alpha``
      (also used for the contour), ``onset_alpha``, ``gamma`` (defaults
      :data:`FOCAL_DEFAULTS`).
    - ``"basic_pitch"`` (Bittner et al.): :func:`bce` with label smoothing on frame and
      contour, :func:`weighted_bce` on onsets; params ``label_smoothing``,
      ``onset_positive_weight`` (defaults :data:`BASIC_PITCH_DEFAULTS`).
    - ``"bce"`` (Onsets and Frames' original): plain :func:`bce` on every head.

    The contour term is added when ``outputs`` has ``"contour"``; its target is
    ``batch["contour"]`` when given, else :func:`contour_target` of the frame roll.

    Parameters
    ----------
    outputs : mapping
        Model output: ``"frame"``, ``"onset"`` logits ``(B, 88, T)``, optional
        ``"contour"`` ``(B, 264, T)``.
    batch : mapping
        ``"frame"``, ``"onset"`` rolls ``(B, 88, T)`` in {0, 1}; optional ``"contour"``.
    kind : {"focal", "basic_pitch", "bce"}
    **params
        Overrides of the recipe's defaults (unknown names raise ``ValueError``).

    Returns
    -------
    total : Tensor
        Scalar to back-propagate.
    parts : dict[str, float]
        Detached value of each term (``"frame"``, ``"onset"``, maybe ``"contour"``).

    Chapter: book/02_focal_loss_amt.md
    """
    defaults = {"focal": FOCAL_DEFAULTS, "basic_pitch": BASIC_PITCH_DEFAULTS, "bce": {}}
    if kind not in defaults:
        raise ValueError(f"transcription_loss: kind must be one of {LOSS_KINDS}, got {kind!r}")
    unknown = set(params) - set(defaults[kind])
    if unknown:
        raise ValueError(
            f"transcription_loss: unknown parameter(s) {sorted(unknown)} for kind={kind!r}; "
            f"known: {sorted(defaults[kind])}"
        )
    p = {**defaults[kind], **params}
    for key in ("frame", "onset"):
        if key not in outputs:
            raise ValueError(f"transcription_loss: outputs has no {key!r} (keys {sorted(outputs)})")
        if key not in batch:
            raise ValueError(f"transcription_loss: batch has no {key!r} (keys {sorted(batch)})")
    targets = {"frame": batch["frame"], "onset": batch["onset"]}
    if "contour" in outputs:
        contour = batch.get("contour")
        if contour is None:
            bins = outputs["contour"].shape[1] // batch["frame"].shape[1]
            contour = contour_target(batch["frame"], bins_per_semitone=bins)
        targets["contour"] = contour

    terms: dict[str, torch.Tensor] = {}
    for key, target in targets.items():
        logits = outputs[key].float()  # losses in float32, also under mixed precision
        if logits.shape != target.shape:
            raise ValueError(
                f"transcription_loss: outputs[{key!r}] has shape {tuple(logits.shape)} but its "
                f"target has shape {tuple(target.shape)}"
            )
        target = target.to(device=logits.device, dtype=torch.float32)
        if kind == "focal":
            alpha = p["onset_alpha"] if key == "onset" else p["frame_alpha"]
            terms[key] = focal_loss(logits, target, alpha=alpha, gamma=p["gamma"])
        elif kind == "basic_pitch" and key == "onset":
            terms[key] = weighted_bce(
                logits,
                target,
                positive_weight=p["onset_positive_weight"],
                label_smoothing=p["label_smoothing"],
            )
        else:
            terms[key] = bce(logits, target, label_smoothing=p.get("label_smoothing", 0.0))
    total = torch.stack(list(terms.values())).sum()
    return total, {key: float(value.detach()) for key, value in terms.items()}
