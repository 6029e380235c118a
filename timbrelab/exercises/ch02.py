"""Exercises of Chapter 2 (focal loss and the AMT model): checks and reference solutions.

1. ``focal_loss(logits, targets, alpha, gamma)``: the element-wise binary focal loss, as
   :func:`timbrelab.losses.focal_loss` with ``reduction="none"``, finite for any logit.
2. ``onset_peaks(onset_probs, threshold)``: where a decoder starts notes, the local maxima
   over time of an onset posteriorgram above a threshold.
3. ``frame_prf(ref_roll, est_roll)``: frame-level precision, recall and F1 from the counts
   of hits, false alarms and misses.
4. ``remove_short_runs(roll, min_frames)``: the minimum-note-length filter on a binary roll.

See :mod:`timbrelab.exercises` for what a check prints, returns and raises.

Chapter: book/02_focal_loss_amt.md
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from timbrelab.exercises import as_array, call_student, exercise_check
from timbrelab.losses import focal_loss as _reference_focal_loss

# --- reference solutions (shown in the chapter behind a toggle) -------------------------------


def solution_focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, alpha: float, gamma: float
) -> torch.Tensor:
    """Reference: ``-alpha y (1-p)^gamma log p - (1-alpha)(1-y) p^gamma log(1-p)``.

    ``log p`` and ``log(1 - p)`` come from ``logsigmoid`` of the logits, so the loss stays
    finite when ``sigmoid`` would round ``p`` to exactly 0 or 1.

    Chapter: book/02_focal_loss_amt.md
    """
    log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)
    p, not_p = log_p.exp(), log_not_p.exp()
    positive = alpha * targets * not_p**gamma * log_p
    negative = (1 - alpha) * (1 - targets) * p**gamma * log_not_p
    return -(positive + negative)


def solution_onset_peaks(onset_probs: np.ndarray, threshold: float) -> np.ndarray:
    """Reference: ``(P, T)`` bool, True where a frame exceeds ``threshold``, is higher than the
    previous frame and at least as high as the next one (frames outside the clip count as
    ``-inf``), so a flat top of equal frames counts once, at its first frame.

    Chapter: book/02_focal_loss_amt.md
    """
    padded = np.pad(onset_probs, ((0, 0), (1, 1)), constant_values=-np.inf)
    previous, following = padded[:, :-2], padded[:, 2:]
    return (onset_probs > previous) & (onset_probs >= following) & (onset_probs > threshold)


def solution_frame_prf(ref_roll: np.ndarray, est_roll: np.ndarray) -> tuple[float, float, float]:
    """Reference: precision ``TP / (TP + FP)``, recall ``TP / (TP + FN)`` and their harmonic
    mean, counted over all ``(pitch, frame)`` cells; 0 where a denominator is 0.

    Chapter: book/02_focal_loss_amt.md
    """
    ref, est = np.asarray(ref_roll) > 0.5, np.asarray(est_roll) > 0.5
    tp = int(np.sum(ref & est))
    fp = int(np.sum(~ref & est))
    fn = int(np.sum(ref & ~est))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def solution_remove_short_runs(roll: np.ndarray, min_frames: int) -> np.ndarray:
    """Reference: a copy of the binary ``(P, T)`` roll without its runs of consecutive active
    frames shorter than ``min_frames`` (runs touching either edge included).

    Chapter: book/02_focal_loss_amt.md
    """
    active = np.asarray(roll) > 0.5
    out = np.zeros(active.shape, dtype=np.asarray(roll).dtype)
    # +1 where a run starts, -1 one past where it ends (silence padded on both sides)
    edges = np.diff(np.pad(active.astype(np.int8), ((0, 0), (1, 1))), axis=1)
    for row in range(active.shape[0]):
        starts = np.flatnonzero(edges[row] == 1)
        stops = np.flatnonzero(edges[row] == -1)
        for start, stop in zip(starts, stops, strict=True):
            if stop - start >= min_frames:
                out[row, start:stop] = 1
    return out


# --- checks --------------------------------------------------------------------------------

_FOCAL_SETTINGS = ((0.25, 2.0), (0.5, 0.0), (0.2, 1.0), (0.9, 3.0))
_RTOL, _ATOL = 1e-3, 1e-5  # float32 arithmetic, whichever way it is written


def _focal_variant(logits, targets, alpha, gamma, *, pos_factor, neg_factor, alpha_neg):
    """Focal-loss look-alikes used to recognise the usual mistakes."""
    p = torch.sigmoid(logits.double())
    y = targets.double()
    return -(
        alpha * y * pos_factor(p) ** gamma * torch.log(p)
        + alpha_neg * (1 - y) * neg_factor(p) ** gamma * torch.log1p(-p)
    ).numpy()


def _focal_hint(got: np.ndarray, logits, targets, alpha: float, gamma: float) -> str:
    want = solution_focal_loss(logits.double(), targets.double(), alpha, gamma).numpy()
    bce = F.binary_cross_entropy_with_logits(logits.double(), targets.double(), reduction="none")

    def close(x) -> bool:
        return np.allclose(got, x, rtol=_RTOL, atol=_ATOL)

    one_minus = lambda p: 1 - p  # noqa: E731
    same = lambda p: p  # noqa: E731
    if close(-want):
        return "the loss is negative: it is MINUS alpha_t (1 - p_t)^gamma log p_t (log p < 0)"
    if close(bce.numpy()):
        return "this is plain binary cross entropy: weight it by alpha and (1 - p_t)^gamma"
    if close(_focal_variant(logits, targets, 1 - alpha, gamma, pos_factor=one_minus,
                            neg_factor=same, alpha_neg=alpha)):  # fmt: skip
        return (
            "alpha and 1 - alpha are swapped: alpha weights the positive class "
            "(target 1), 1 - alpha the negatives"
        )
    if close(_focal_variant(logits, targets, alpha, gamma, pos_factor=one_minus,
                            neg_factor=same, alpha_neg=1.0)):  # fmt: skip
        return "the negative term needs the weight (1 - alpha)"
    if close(_focal_variant(logits, targets, alpha, gamma, pos_factor=one_minus,
                            neg_factor=same, alpha_neg=alpha)):  # fmt: skip
        return "the negative term is weighted by 1 - alpha, not by alpha"
    if close(_focal_variant(logits, targets, alpha, gamma, pos_factor=same,
                            neg_factor=one_minus, alpha_neg=1 - alpha)):  # fmt: skip
        return (
            "the modulating factors are swapped: a positive is scaled by (1 - p)^gamma and a "
            "negative by p^gamma, so examples the model already gets right count less"
        )
    return (
        "loss = -alpha * y * (1 - p)**gamma * log(p) - (1 - alpha) * (1 - y) * p**gamma * "
        "log(1 - p) with p = sigmoid(logits)"
    )


@exercise_check("focal_loss")
def check_focal_loss(fn: Callable) -> str:
    """Check ``fn(logits, targets, alpha, gamma) -> Tensor``, the element-wise focal loss.

    Chapter: book/02_focal_loss_amt.md
    """
    generator = torch.Generator().manual_seed(2)
    # |logit| <= 8: even a float32 log(sigmoid(x)) is accurate here (extremes come last)
    logits = (torch.randn(4, 88, 20, generator=generator) * 3).clamp(-8.0, 8.0)
    targets = (torch.rand(4, 88, 20, generator=generator) < 0.1).float()
    for alpha, gamma in _FOCAL_SETTINGS:
        call = f"focal_loss(logits, targets, alpha={alpha}, gamma={gamma})"
        value = call_student(fn, "focal_loss", logits.clone(), targets.clone(), alpha, gamma)
        got = as_array(value, call)
        want = _reference_focal_loss(logits, targets, alpha, gamma, reduction="none").numpy()
        if got.shape != want.shape:
            what = "one number" if got.size == 1 else f"shape {got.shape}"
            raise AssertionError(
                f"{call} returned {what}; return the element-wise loss, shape {want.shape} like "
                "logits (the training loss takes its mean later)"
            )
        if not np.allclose(got, want, rtol=_RTOL, atol=_ATOL):
            bad = np.unravel_index(np.argmax(np.abs(got - want)), want.shape)
            raise AssertionError(
                f"{call}: for logit {float(logits[bad]):.3f} and target {float(targets[bad]):g} "
                f"expected {want[bad]:.5f}, got {got[bad]:.5f}. "
                f"Hint: {_focal_hint(got, logits, targets, alpha, gamma)}"
            )
    # a confident model: sigmoid rounds p to exactly 0 or 1 in float32
    extreme = torch.tensor([-120.0, -30.0, 30.0, 120.0, -120.0, 120.0])
    extreme_targets = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 1.0])
    call = f"focal_loss(logits={extreme.tolist()}, targets={extreme_targets.tolist()}, 0.25, 2.0)"
    got = as_array(call_student(fn, "focal_loss", extreme, extreme_targets, 0.25, 2.0), call)
    want = _reference_focal_loss(extreme, extreme_targets, 0.25, 2.0, reduction="none").numpy()
    if not np.isfinite(got).all():
        raise AssertionError(
            f"{call} gave {got.tolist()}: not finite. For |logit| > ~100, sigmoid rounds p to "
            "exactly 0 or 1 and log(0) = -inf (and 0 * inf = nan). Hint: compute log p as "
            "F.logsigmoid(logits) and log(1 - p) as F.logsigmoid(-logits)"
        )
    if not np.allclose(got, want, rtol=_RTOL, atol=_ATOL):
        raise AssertionError(
            f"{call} gave {np.round(got, 4).tolist()}, expected {np.round(want, 4).tolist()}: "
            "the loss must stay accurate for very confident predictions (use F.logsigmoid)"
        )
    return (
        f"matches timbrelab.losses.focal_loss for {len(_FOCAL_SETTINGS)} (alpha, gamma) "
        "settings and stays finite at logits of +-120"
    )


def _peak_cases() -> list[tuple[str, np.ndarray, float]]:
    rng = np.random.default_rng(3)
    crafted = np.array(
        [
            [0.0, 0.9, 0.2, 0.1, 0.0, 0.0, 0.7, 0.8, 0.3, 0.0],  # two single peaks
            [0.0, 0.6, 0.6, 0.1, 0.0, 0.0, 0.0, 0.2, 0.3, 0.9],  # a flat top; a peak at the end
            [0.8, 0.3, 0.0, 0.0, 0.4, 0.0, 0.0, 0.55, 0.2, 0.0],  # a peak at frame 0; one too low
            [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95],  # a ramp: one peak, at the end
        ]
    )
    smooth = np.convolve(rng.random(400), np.ones(3) / 3, mode="same").reshape(8, 50)
    return [("a hand-made (4, 10) posteriorgram", crafted, 0.5),
            ("a random (8, 50) posteriorgram", smooth, 0.4)]  # fmt: skip


def _peaks_hint(got: np.ndarray, probs: np.ndarray, threshold: float) -> str:
    want = solution_onset_peaks(probs, threshold)
    padded = np.pad(probs, ((0, 0), (1, 1)), constant_values=-np.inf)
    previous, following = padded[:, :-2], padded[:, 2:]
    above = probs > threshold
    if np.array_equal(got, above):
        return "every frame above the threshold is marked: a peak must also be a local maximum"
    if np.array_equal(got, (probs > previous) & (probs >= following)):
        return "peaks below the threshold are marked too: also require onset_probs > threshold"
    if np.array_equal(got, (probs >= previous) & (probs >= following) & above):
        return (
            "both frames of a flat top are marked: compare with > to the previous frame and "
            ">= to the next, so a plateau counts once, at its first frame"
        )
    if np.array_equal(got, (probs > previous) & (probs > following) & above):
        return (
            "a flat top (two equal frames) gives no peak at all: use > for the previous "
            "frame and >= for the next"
        )
    if np.array_equal(got[:, 1:-1], want[:, 1:-1]):
        return (
            "the first or last frame is handled wrongly: a peak can sit at either edge; "
            "treat the frames outside the clip as -inf"
        )
    if np.array_equal(got[:, 1:], want[:, :-1]) or np.array_equal(got[:, :-1], want[:, 1:]):
        return "your peaks are one frame off: mark the frame of the maximum itself"
    padded_p = np.pad(probs, ((1, 1), (0, 0)), constant_values=-np.inf)
    along_pitch = (probs > padded_p[:-2]) & (probs >= padded_p[2:]) & above
    if np.array_equal(got, along_pitch):
        return "you found maxima along pitch (axis 0): onsets are peaks over time (axis 1)"
    return "a peak is > the previous frame, >= the next frame, and > threshold"


@exercise_check("onset_peaks")
def check_onset_peaks(fn: Callable) -> str:
    """Check ``fn(onset_probs (P, T), threshold) -> (P, T) bool``, the onset peaks.

    Chapter: book/02_focal_loss_amt.md
    """
    cases = _peak_cases()
    for label, probs, threshold in cases:
        call = f"onset_peaks(<{label}>, threshold={threshold})"
        value = call_student(fn, "onset_peaks", probs.copy(), threshold)
        got = as_array(value, call)
        if got.shape != probs.shape:
            raise AssertionError(
                f"{call} returned shape {got.shape}; return a boolean mask of the input's "
                f"shape {probs.shape} (True at the peaks)"
            )
        got = got > 0.5
        want = solution_onset_peaks(probs, threshold)
        if np.array_equal(got, want):
            continue
        rows, cols = np.nonzero(got != want)
        row, col = int(rows[0]), int(cols[0])
        context = np.round(probs[row, max(col - 2, 0) : col + 3], 3).tolist()
        raise AssertionError(
            f"{call}: pitch row {row}, frame {col} (values around it {context}) should be "
            f"{bool(want[row, col])}, got {bool(got[row, col])}. "
            f"Hint: {_peaks_hint(got, probs, threshold)}"
        )
    return f"peaks match on {len(cases)} posteriorgrams (flat tops and edges included)"


def _prf_cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(4)
    ref = rng.random((88, 60)) < 0.05
    est = np.where(rng.random((88, 60)) < 0.8, ref, rng.random((88, 60)) < 0.05)
    few = np.zeros((88, 60), bool)
    few[40, :10] = True
    over = few.copy()
    over[40, :20] = True
    over[52, 5:8] = True
    silent = np.zeros((88, 60), bool)
    return [
        ("a noisy estimate", ref, est),
        ("an estimate with false alarms", few, over),
        ("an empty estimate", ref, silent),
        ("an empty reference and estimate", silent, silent),
    ]


@exercise_check("frame_prf")
def check_frame_prf(fn: Callable) -> str:
    """Check ``fn(ref_roll, est_roll) -> (precision, recall, f1)`` on binary rolls.

    Chapter: book/02_focal_loss_amt.md
    """
    cases = _prf_cases()
    for label, ref, est in cases:
        call = f"frame_prf(<{label}>)"
        value = call_student(fn, "frame_prf", ref.copy(), est.copy())
        got = as_array(value, call).reshape(-1)
        if got.size != 3:
            raise AssertionError(
                f"{call} returned {got.size} number(s); return three: (precision, recall, f1)"
            )
        want = np.array(solution_frame_prf(ref, est))
        if np.allclose(got, want, atol=1e-9):
            continue
        tp, fp, fn_count = (int(np.sum(a & b)) for a, b in ((ref, est), (~ref, est), (ref, ~est)))
        counts = f"TP={tp}, FP={fp}, FN={fn_count}"
        if not np.isfinite(got).all():
            hint = "a division by zero: when a denominator is 0, that score is 0 by convention"
        elif np.allclose(got[:2], want[::-1][1:], atol=1e-9):
            hint = "precision and recall are swapped: precision = TP / (TP + FP)"
        elif np.allclose(got, 100 * want, atol=1e-7):
            hint = "return fractions in [0, 1], not percentages"
        elif np.allclose(got[:2], want[:2]) and math.isclose(got[2], want[:2].mean()):
            hint = "F1 is the harmonic mean 2PR / (P + R), not the arithmetic mean"
        elif math.isclose(got[2], tp / max(tp + fp + fn_count, 1)):
            hint = "TP / (TP + FP + FN) is the accuracy; F1 = 2 TP / (2 TP + FP + FN)"
        else:
            hint = "precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2PR / (P + R)"
        raise AssertionError(
            f"{call} ({counts}) should give {np.round(want, 4).tolist()}, got "
            f"{np.round(got, 4).tolist()}. Hint: {hint}"
        )
    return f"precision, recall and F1 match on {len(cases)} roll pairs (empty ones included)"


def _runs_cases() -> list[tuple[str, np.ndarray, int]]:
    rng = np.random.default_rng(5)
    crafted = np.zeros((3, 16), np.float32)
    crafted[0, 2:4] = 1  # 2 frames: too short for 3
    crafted[0, 6:9] = 1  # exactly 3: kept
    crafted[1, :2] = 1  # short run at the start
    crafted[1, 14:] = 1  # short run at the end
    crafted[2, :16] = 1  # the whole clip
    noisy = (rng.random((10, 40)) < 0.5).astype(np.float32)
    return [("a hand-made (3, 16) roll", crafted, 3), ("a random (10, 40) roll", noisy, 2),
            ("a random (10, 40) roll", noisy, 4)]  # fmt: skip


def _edge_runs(roll: np.ndarray) -> np.ndarray:
    """Cells of the runs that touch the first or the last frame."""
    active = roll > 0.5
    from_start = np.cumprod(active, axis=1).astype(bool)
    from_end = np.cumprod(active[:, ::-1], axis=1)[:, ::-1].astype(bool)
    return from_start | from_end


@exercise_check("remove_short_runs")
def check_remove_short_runs(fn: Callable) -> str:
    """Check ``fn(roll (P, T), min_frames) -> (P, T)`` without runs shorter than ``min_frames``.

    Chapter: book/02_focal_loss_amt.md
    """
    cases = _runs_cases()
    for label, roll, min_frames in cases:
        call = f"remove_short_runs(<{label}>, min_frames={min_frames})"
        given = roll.copy()
        got = as_array(call_student(fn, "remove_short_runs", given, min_frames), call)
        if not np.array_equal(given, roll):
            raise AssertionError(
                f"{call} changed its input roll: work on a copy (roll.copy()) and return it"
            )
        if got.shape != roll.shape:
            raise AssertionError(
                f"{call} returned shape {got.shape}; return a roll of the input's shape "
                f"{roll.shape}"
            )
        got = got > 0.5
        want = solution_remove_short_runs(roll, min_frames) > 0.5
        if np.array_equal(got, want):
            continue
        rows, cols = np.nonzero(got != want)
        row, col = int(rows[0]), int(cols[0])
        if np.array_equal(got, solution_remove_short_runs(roll, min_frames + 1) > 0.5):
            hint = f"runs of exactly min_frames={min_frames} frames must be kept (use >=)"
        elif np.array_equal(got, solution_remove_short_runs(roll, min_frames - 1) > 0.5):
            hint = f"runs of min_frames - 1 = {min_frames - 1} frames must go (use >=, not >)"
        elif np.array_equal(got & ~_edge_runs(roll), want & ~_edge_runs(roll)):
            hint = "runs that touch the first or last frame are runs too"
        elif np.array_equal(got, (roll > 0.5) & ~want):
            hint = "you removed the long runs and kept the short ones"
        else:
            hint = "find each run of consecutive 1s per pitch row; keep it if it is long enough"
        raise AssertionError(
            f"{call}: pitch row {row}, frame {col} should be {int(want[row, col])}, got "
            f"{int(got[row, col])}. Hint: {hint}"
        )
    return f"the filter matches on {len(cases)} rolls (runs at both edges included)"
