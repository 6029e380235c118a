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

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from timbrelab.exercises import (
    Case,
    Exercise,
    Mistake,
    exercise_check,
    expect_array,
    expect_mask,
    mismatches,
    show_numbers,
)
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

# --- exercise 1: the focal loss

_RTOL, _ATOL = 1e-3, 1e-5  # float32 arithmetic, whichever way it is written


def _focal_like(weights: Callable, factors: Callable) -> Callable:
    """A focal loss with other class weights or modulating factors (a typical mistake).

    ``weights(alpha)`` gives the weights of the positive and negative terms; ``factors(p)``
    their modulating factors (before ``** gamma``). ``log p`` comes from ``logsigmoid``, so
    the look-alike is as stable as the reference and only the mistake differs.
    """

    def answer(logits, targets, alpha, gamma):
        log_p, log_not_p = F.logsigmoid(logits.double()), F.logsigmoid(-logits.double())
        (w_pos, w_neg), (f_pos, f_neg) = weights(alpha), factors(log_p.exp())
        y = targets.double()
        return -(w_pos * y * f_pos**gamma * log_p + w_neg * (1 - y) * f_neg**gamma * log_not_p)

    return answer


def _naive_focal_loss(logits, targets, alpha, gamma):
    """The focal loss through sigmoid and log: right, except where sigmoid rounds to 0 or 1."""
    p = torch.sigmoid(logits)
    return -(
        alpha * targets * (1 - p) ** gamma * torch.log(p)
        + (1 - alpha) * (1 - targets) * p**gamma * torch.log(1 - p)
    )


def _right_for_moderate_logits(got: np.ndarray, want: np.ndarray, case: Case) -> bool:
    """Right wherever |logit| < 15, where float32 sigmoid is still well away from 0 and 1."""
    moderate = np.abs(case.args[0].numpy()) < 15
    return not mismatches(got[moderate], want[moderate], rtol=_RTOL, atol=_ATOL).any()


def _explain_focal(case: Case, got: np.ndarray, want: np.ndarray, i: tuple) -> str:
    logits, targets = case.args[0].numpy(), case.args[1].numpy()
    return "at index {} (logit {:.3f}, target {:g}) expected {}, got {}".format(
        i, logits[i], targets[i], *show_numbers(want[i], got[i])
    )


def _hidden_focal_loss(rng: np.random.Generator) -> list[list[Case]]:
    """Grading cases: random logits of another shape for four random (alpha, gamma), then
    confident logits of random size beyond float32 sigmoid's range (a stage of its own)."""
    shape = (int(rng.integers(2, 5)), 88, int(rng.integers(10, 30)))
    logits = torch.from_numpy(np.clip(3 * rng.standard_normal(shape), -8, 8).astype(np.float32))
    targets = torch.from_numpy((rng.random(shape) < rng.uniform(0.05, 0.2)).astype(np.float32))
    alphas = [round(float(a), 2) for a in rng.uniform(0.1, 0.45, 4) * rng.choice([1, 2], 4)]
    gammas = [float(g) for g in rng.permutation([0.0, 1.0, 2.0, 3.0])]
    cases = [
        Case(f"focal_loss(logits, targets, alpha={a}, gamma={g})", (logits, targets, a, g))
        for a, g in zip(alphas, gammas, strict=True)
    ]
    signs = np.array([-1, -1, 1, 1, -1, 1])  # confidently wrong, then confidently right
    extreme = torch.tensor(signs * rng.uniform(30, 150, 6).round(1), dtype=torch.float32)
    extreme_targets = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 1.0])
    confident = Case(
        f"focal_loss(logits={extreme.tolist()}, targets={extreme_targets.tolist()}, "
        "alpha=0.25, gamma=2.0)",
        (extreme, extreme_targets, 0.25, 2.0),
    )
    return [cases, [confident]]


_FOCAL_LOSS = Exercise(
    name="focal_loss",
    reference=lambda logits, targets, alpha, gamma: _reference_focal_loss(
        logits, targets, alpha, gamma, reduction="none"
    ),
    read=lambda value, case: expect_array(
        value,
        case.call,
        tuple(case.args[0].shape),
        "the element-wise loss, one value per logit (the training loss takes the mean later)",
    ),
    explain=_explain_focal,
    rule=(
        "loss = -alpha * y * (1 - p)**gamma * log(p) - (1 - alpha) * (1 - y) * p**gamma * "
        "log(1 - p) with p = sigmoid(logits)"
    ),
    rtol=_RTOL,
    atol=_ATOL,
    hidden=_hidden_focal_loss,
    mistakes=(
        Mistake(
            "the loss is negative: it is MINUS alpha_t (1 - p_t)^gamma log p_t (log p < 0)",
            lambda x, y, alpha, gamma: -solution_focal_loss(x, y, alpha, gamma),
        ),
        Mistake(
            "this is plain binary cross entropy: weight it by alpha_t and (1 - p_t)^gamma",
            lambda x, y, alpha, gamma: F.binary_cross_entropy_with_logits(x, y, reduction="none"),
        ),
        Mistake(
            "alpha and 1 - alpha are swapped: alpha weights the positive class (target 1), "
            "1 - alpha the negatives",
            _focal_like(lambda a: (1 - a, a), lambda p: (1 - p, p)),
        ),
        Mistake(
            "the negative term needs the weight (1 - alpha)",
            _focal_like(lambda a: (a, 1.0), lambda p: (1 - p, p)),
        ),
        Mistake(
            "the negative term is weighted by 1 - alpha, not by alpha",
            _focal_like(lambda a: (a, a), lambda p: (1 - p, p)),
        ),
        Mistake(
            "the modulating factors are swapped: a positive is scaled by (1 - p)^gamma and a "
            "negative by p^gamma, so examples the model already gets right count less",
            _focal_like(lambda a: (a, 1 - a), lambda p: (p, 1 - p)),
        ),
        Mistake(
            "your loss is right except for confident predictions: beyond |logit| ~ 17, float32 "
            "sigmoid rounds p to exactly 0 or 1, so log(p) or log(1 - p) is -inf (and 0 * inf "
            "is nan; clamping p makes it inaccurate instead). Compute log p as "
            "F.logsigmoid(logits) and log(1 - p) as F.logsigmoid(-logits)",
            _naive_focal_loss,
            recognise=_right_for_moderate_logits,
        ),
    ),
)


@exercise_check(_FOCAL_LOSS)
def check_focal_loss(fn: Callable) -> str:
    """Check ``fn(logits, targets, alpha, gamma) -> Tensor``, the element-wise focal loss.

    Chapter: book/02_focal_loss_amt.md
    """
    generator = torch.Generator().manual_seed(2)
    # |logit| <= 8: even a float32 log(sigmoid(x)) is accurate here (extremes come last)
    logits = (torch.randn(4, 88, 20, generator=generator) * 3).clamp(-8.0, 8.0)
    targets = (torch.rand(4, 88, 20, generator=generator) < 0.1).float()
    settings = ((0.25, 2.0), (0.5, 0.0), (0.2, 1.0), (0.9, 3.0))
    cases = [
        Case(f"focal_loss(logits, targets, alpha={a}, gamma={g})", (logits, targets, a, g))
        for a, g in settings
    ]
    # then a confident model: float32 sigmoid rounds p to exactly 0 or 1 (a stage of its own,
    # so that a formula mistake is found even in code that is also unstable)
    extreme = torch.tensor([-120.0, -30.0, 30.0, 120.0, -120.0, 120.0])
    extreme_targets = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 1.0])
    confident = Case(
        f"focal_loss(logits={extreme.tolist()}, targets={extreme_targets.tolist()}, "
        "alpha=0.25, gamma=2.0)",
        (extreme, extreme_targets, 0.25, 2.0),
    )
    _FOCAL_LOSS.grade(fn, cases, [confident])
    return (
        f"matches timbrelab.losses.focal_loss for {len(settings)} (alpha, gamma) "
        "settings and stays finite at logits of +-120"
    )


# --- exercise 2: onset peaks


def _neighbours(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The previous and the next frame of every frame, -inf beyond either edge."""
    padded = np.pad(probs, ((0, 0), (1, 1)), constant_values=-np.inf)
    return padded[:, :-2], padded[:, 2:]


def _peaks_like(before: Callable, after: Callable, above: Callable) -> Callable:
    """Peak picking with other comparisons (a typical mistake): ``before(x, previous)``,
    ``after(x, next)`` and ``above(x, threshold)`` each give a bool mask."""

    def answer(probs, threshold):
        previous, following = _neighbours(probs)
        return before(probs, previous) & after(probs, following) & above(probs, threshold)

    return answer


def _interior_only(probs: np.ndarray, threshold: float) -> np.ndarray:
    """Peaks found only between the first and the last frame (as with slices and np.diff)."""
    inner = probs[:, 1:-1]
    peaks = (inner > probs[:, :-2]) & (inner >= probs[:, 2:]) & (inner > threshold)
    return np.pad(peaks, ((0, 0), (1, 1)))


def _one_frame_off(got: np.ndarray, want: np.ndarray, case: Case) -> bool:
    """The right peaks, shifted one frame later or earlier."""
    return np.array_equal(got[:, 1:], want[:, :-1]) or np.array_equal(got[:, :-1], want[:, 1:])


def _explain_peaks(case: Case, got: np.ndarray, want: np.ndarray, i: tuple) -> str:
    row, col = i
    first = max(col - 2, 0)
    context = np.round(case.args[0][row, first : col + 3], 3).tolist()
    return (
        f"pitch row {row}, frame {col} should be {bool(want[i])}, got {bool(got[i])} "
        f"(frames {first}..{first + len(context) - 1} hold {context})"
    )


#: Hand-made onset posteriorgram (threshold 0.5): every boundary a peak picker can get wrong.
_CRAFTED_ONSETS = np.array(
    [
        [0.0, 0.9, 0.2, 0.1, 0.0, 0.0, 0.7, 0.8, 0.3, 0.0],  # two single peaks
        [0.0, 0.6, 0.6, 0.1, 0.0, 0.0, 0.0, 0.2, 0.3, 0.9],  # a flat top; a peak at the end
        [0.8, 0.3, 0.0, 0.0, 0.4, 0.0, 0.0, 0.55, 0.2, 0.0],  # a peak at frame 0; one too low
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95],  # a ramp: one peak, at the end
        [0.0, 0.5, 0.2, 0.0, 0.7, 0.7, 0.7, 0.1, 0.0, 0.0],  # a peak AT the threshold; 3 equal
        [0.7, 0.7, 0.0, 0.1, 0.5, 0.5, 0.0, 0.2, 0.6, 0.6],  # flat tops: at frame 0, AT the
    ]  # threshold, at the end
)


def _hidden_onset_peaks(rng: np.random.Generator) -> list[list[Case]]:
    """Grading cases: the hand-made rows shuffled and rescaled (with their threshold, so every
    boundary stays), then a random smooth posteriorgram of another shape and threshold."""
    scale, offset = round(float(rng.uniform(0.5, 1.0)), 2), round(float(rng.uniform(0, 0.05)), 2)
    crafted = scale * rng.permutation(_CRAFTED_ONSETS) + offset
    threshold = scale * 0.5 + offset  # computed as the rows' 0.5 was: exactly equal to it
    rows, frames = int(rng.integers(4, 12)), int(rng.integers(30, 80))
    smooth = np.convolve(rng.random(rows * frames), np.ones(3) / 3, mode="same")
    random_threshold = round(float(rng.uniform(0.3, 0.6)), 2)
    return [
        [
            Case(
                f"onset_peaks(<a hand-made (6, 10) posteriorgram>, threshold={threshold:.4g})",
                (crafted, threshold),
            ),
            Case(
                f"onset_peaks(<a random ({rows}, {frames}) posteriorgram>, "
                f"threshold={random_threshold})",
                (smooth.reshape(rows, frames), random_threshold),
            ),
        ]
    ]


_ONSET_PEAKS = Exercise(
    name="onset_peaks",
    reference=solution_onset_peaks,
    read=lambda value, case: expect_mask(
        value, case.call, case.args[0].shape, "a boolean mask of the input's shape (True at peaks)"
    ),
    explain=_explain_peaks,
    rule=(
        "a peak is > the previous frame, >= the next frame (frames outside the clip count as "
        "-inf) and > threshold"
    ),
    hidden=_hidden_onset_peaks,
    mistakes=(
        Mistake(
            "every frame above the threshold is marked: a peak must also be a local maximum "
            "over time",
            lambda probs, threshold: probs > threshold,
        ),
        Mistake(
            "peaks below the threshold are marked too: also require onset_probs > threshold",
            _peaks_like(np.greater, np.greater_equal, lambda x, t: np.ones(x.shape, bool)),
        ),
        Mistake(
            "a peak exactly at the threshold is marked, but it is not above it: compare with "
            "onset_probs > threshold, not >=",
            _peaks_like(np.greater, np.greater_equal, np.greater_equal),
        ),
        Mistake(
            "every frame of a flat top is marked: compare with > to the previous frame and "
            ">= to the next, so a plateau counts once, at its first frame",
            _peaks_like(np.greater_equal, np.greater_equal, np.greater),
        ),
        Mistake(
            "a flat top (equal frames) gives no peak at all: use > for the previous frame "
            "and >= for the next",
            _peaks_like(np.greater, np.greater, np.greater),
        ),
        Mistake(
            "the first or last frame is handled wrongly: a peak can sit at either edge; "
            "treat the frames outside the clip as -inf",
            _interior_only,
            recognise=lambda got, want, case: np.array_equal(got[:, 1:-1], want[:, 1:-1]),
        ),
        Mistake(
            "your peaks are one frame off: mark the frame of the maximum itself",
            lambda probs, threshold: np.roll(solution_onset_peaks(probs, threshold), 1, axis=1),
            recognise=_one_frame_off,
        ),
        Mistake(
            "you found maxima along pitch (axis 0): onsets are peaks over time (axis 1)",
            lambda probs, threshold: solution_onset_peaks(probs.T, threshold).T,
        ),
    ),
)


@exercise_check(_ONSET_PEAKS)
def check_onset_peaks(fn: Callable) -> str:
    """Check ``fn(onset_probs (P, T), threshold) -> (P, T) bool``, the onset peaks.

    Chapter: book/02_focal_loss_amt.md
    """
    rng = np.random.default_rng(3)
    crafted = _CRAFTED_ONSETS
    smooth = np.convolve(rng.random(400), np.ones(3) / 3, mode="same").reshape(8, 50)
    cases = [
        Case("onset_peaks(<a hand-made (6, 10) posteriorgram>, threshold=0.5)", (crafted, 0.5)),
        Case("onset_peaks(<a random (8, 50) posteriorgram>, threshold=0.4)", (smooth, 0.4)),
    ]
    _ONSET_PEAKS.grade(fn, cases)
    return (
        f"peaks match on {len(cases)} posteriorgrams (flat tops, edges and peaks exactly at "
        "the threshold included)"
    )


# --- exercise 3: frame precision, recall and F1

_PRF = ("precision", "recall", "f1")
_PRF_ATOL = 1e-9


def _counts(ref: np.ndarray, est: np.ndarray) -> tuple[int, int, int]:
    """(TP, FP, FN) of two rolls."""
    ref, est = np.asarray(ref) > 0.5, np.asarray(est) > 0.5
    return int(np.sum(ref & est)), int(np.sum(~ref & est)), int(np.sum(ref & ~est))


def _with_f1(f1: Callable[[float, float, int, int, int], float]) -> Callable:
    """Right precision and recall with another F1 (a typical mistake): ``f1(P, R, TP, FP, FN)``."""

    def answer(ref, est):
        precision, recall, _ = solution_frame_prf(ref, est)
        return precision, recall, f1(precision, recall, *_counts(ref, est))

    return answer


def _unguarded_prf(ref: np.ndarray, est: np.ndarray) -> tuple[float, float, float]:
    """The scores without the 0-denominator convention: nan where a denominator is 0."""
    tp, fp, fn = (np.float64(n) for n in _counts(ref, est))
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return precision, recall, 2 * precision * recall / (precision + recall)


def _right_where_defined(got: np.ndarray, want: np.ndarray, case: Case) -> bool:
    """Right wherever the score's denominator is not 0 (F1's, P + R, is 0 when TP is)."""
    tp, fp, fn = _counts(*case.args)
    defined = np.array([tp + fp > 0, tp + fn > 0, tp > 0])
    return not mismatches(got[defined], want[defined], atol=_PRF_ATOL).any()


def _right_but_f1_is_tp_over_all(got: np.ndarray, want: np.ndarray, case: Case) -> bool:
    """Right precision and recall, and F1 = TP / (TP + FP + FN) (where that is defined)."""
    tp, fp, fn = _counts(*case.args)
    theirs = np.array([want[0], want[1], tp / (tp + fp + fn) if tp + fp + fn else got[2]])
    return not mismatches(got, theirs, atol=_PRF_ATOL).any()


def _explain_prf(case: Case, got: np.ndarray, want: np.ndarray, i: tuple) -> str:
    tp, fp, fn = _counts(*case.args)
    bad = mismatches(got, want, atol=_PRF_ATOL)
    wrong = [name for name, differs in zip(_PRF, bad, strict=True) if differs]
    listed = wrong[0] if len(wrong) == 1 else ", ".join(wrong[:-1]) + " and " + wrong[-1]
    shown_want, shown_got = show_numbers(want, got)
    return (
        f"with TP={tp}, FP={fp}, FN={fn}, (precision, recall, f1) should be ({shown_want}), "
        f"got ({shown_got}): {listed} differ{'s' * (len(wrong) == 1)}"
    )


def _hidden_frame_prf(rng: np.random.Generator) -> list[list[Case]]:
    """Grading cases: random rolls of another length and density, a run with false alarms at
    a random place, and every zero denominator; then the same noisy pair as float rolls."""
    shape = (88, int(rng.integers(40, 100)))
    ref = rng.random(shape) < rng.uniform(0.03, 0.1)
    est = np.where(rng.random(shape) < rng.uniform(0.6, 0.9), ref, rng.random(shape) < 0.05)
    key, start, length = (int(rng.integers(low, high)) for low, high in ((0, 80), (0, 20), (3, 15)))
    few = np.zeros(shape, bool)
    few[key, start : start + length] = True
    over = few.copy()
    over[key, start : start + 2 * length] = True
    over[key + 5, start + 1 : start + 4] = True
    silent = np.zeros(shape, bool)
    pairs = {
        "a noisy estimate": (ref, est),
        "an estimate with false alarms": (few, over),
        "an estimate without a hit": (few, over & ~few),
        "an empty estimate": (ref, silent),
        "an empty reference": (silent, est),
        "an empty reference and estimate": (silent, silent),
    }
    floats = (ref.astype(np.float32), est.astype(np.float32))
    return [
        [Case(f"frame_prf(<{label}>)", pair) for label, pair in pairs.items()],
        [Case("frame_prf(<a noisy estimate, float 0/1 rolls>)", floats)],
    ]


_FRAME_PRF = Exercise(
    name="frame_prf",
    reference=solution_frame_prf,
    read=lambda value, case: expect_array(
        value, case.call, (3,), "three numbers (precision, recall, f1)"
    ),
    explain=_explain_prf,
    rule=(
        "precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2PR / (P + R), each 0 "
        "where its denominator is 0"
    ),
    atol=_PRF_ATOL,
    hidden=_hidden_frame_prf,
    mistakes=(
        Mistake(
            "precision and recall are swapped (or the two rolls are): precision = "
            "TP / (TP + FP), recall = TP / (TP + FN), and ref_roll comes first",
            lambda ref, est: solution_frame_prf(est, ref),
        ),
        Mistake(
            "return fractions in [0, 1], not percentages",
            lambda ref, est: tuple(100 * s for s in solution_frame_prf(ref, est)),
        ),
        Mistake(
            "F1 is the harmonic mean 2PR / (P + R), not the arithmetic mean (P + R) / 2",
            _with_f1(lambda p, r, tp, fp, fn: (p + r) / 2),
        ),
        Mistake(
            "TP / (TP + FP + FN) is the frame accuracy, not F1: F1 = 2 TP / (2 TP + FP + FN)",
            _with_f1(lambda p, r, tp, fp, fn: tp / max(tp + fp + fn, 1)),
            recognise=_right_but_f1_is_tp_over_all,
        ),
        Mistake(
            "your scores are wrong only where a denominator is 0 (a division by zero): nothing "
            "estimated, nothing to find, or no hit at all (P + R = 0); that score is 0 by "
            "convention",
            _unguarded_prf,
            recognise=_right_where_defined,
        ),
    ),
)


@exercise_check(_FRAME_PRF)
def check_frame_prf(fn: Callable) -> str:
    """Check ``fn(ref_roll, est_roll) -> (precision, recall, f1)`` on binary rolls.

    Chapter: book/02_focal_loss_amt.md
    """
    rng = np.random.default_rng(4)
    ref = rng.random((88, 60)) < 0.05
    est = np.where(rng.random((88, 60)) < 0.8, ref, rng.random((88, 60)) < 0.05)
    few = np.zeros((88, 60), bool)
    few[40, :10] = True
    over = few.copy()
    over[40, :20] = True
    over[52, 5:8] = True
    silent = np.zeros((88, 60), bool)
    pairs = {
        "a noisy estimate": (ref, est),
        "an estimate with false alarms": (few, over),
        "a perfect estimate": (ref, ref),
        "an estimate without a hit": (few, over & ~few),  # TP = 0: P + R = 0
        "an empty estimate": (ref, silent),  # TP + FP = 0
        "an empty reference": (silent, est),  # TP + FN = 0
        "an empty reference and estimate": (silent, silent),
    }
    cases = [Case(f"frame_prf(<{label}>)", pair) for label, pair in pairs.items()]
    # then what the chapter passes (labels["frame"]): rolls of 0.0/1.0, not True/False
    floats = Case(
        "frame_prf(<a noisy estimate, float 0/1 rolls>)",
        (ref.astype(np.float32), est.astype(np.float32)),
    )
    _FRAME_PRF.grade(fn, cases, [floats])
    return (
        f"precision, recall and F1 match on {len(cases) + 1} roll pairs (zero denominators "
        "and float rolls included)"
    )


# --- exercise 4: a minimum note length


def _edge_runs(roll: np.ndarray) -> np.ndarray:
    """Cells of the runs that touch the first or the last frame."""
    active = np.asarray(roll) > 0.5
    from_start = np.cumprod(active, axis=1).astype(bool)
    from_end = np.cumprod(active[:, ::-1], axis=1)[:, ::-1].astype(bool)
    return from_start | from_end


def _inner_runs_only(roll: np.ndarray, min_frames: int) -> np.ndarray:
    """The filter applied to the runs between the edges only; runs at an edge are dropped."""
    kept = solution_remove_short_runs(roll, min_frames) > 0.5
    return kept & ~_edge_runs(roll)


def _right_between_the_edges(got: np.ndarray, want: np.ndarray, case: Case) -> bool:
    """Right everywhere except on the runs that touch the first or the last frame."""
    inner = ~_edge_runs(case.args[0])
    return np.array_equal(got & inner, want & inner)


def _explain_runs(case: Case, got: np.ndarray, want: np.ndarray, i: tuple) -> str:
    row, col = i
    given = "".join(str(int(v)) for v in np.asarray(case.args[0][row]) > 0.5)
    return (
        f"pitch row {row}, frame {col} should be {int(want[i])}, got {int(got[i])} "
        f"(the input row is {given})"
    )


def _runs_at_every_boundary(min_frames: int) -> np.ndarray:
    """A (4, T) float roll with runs of min_frames - 1 and exactly min_frames frames, between
    and at both edges, a single frame and a row active throughout."""
    short, exact = min_frames - 1, min_frames
    frames = 4 * min_frames + 8
    roll = np.zeros((4, frames), np.float32)
    roll[0, 1 : 1 + short] = 1
    roll[0, short + 3 : short + 3 + exact] = 1
    roll[0, frames - 3] = 1
    roll[1, :short] = 1
    roll[1, frames - short :] = 1
    roll[2, :] = 1
    roll[3, :exact] = 1
    roll[3, frames - exact :] = 1
    return roll


def _hidden_remove_short_runs(rng: np.random.Generator) -> list[list[Case]]:
    """Grading cases: the boundary runs for a random min_frames, a random roll of another
    shape at two lengths; then that roll thresholded to True/False."""
    min_frames = int(rng.integers(3, 7))
    boundary = _runs_at_every_boundary(min_frames)
    shape = (int(rng.integers(6, 14)), int(rng.integers(30, 60)))
    noisy = (rng.random(shape) < rng.uniform(0.4, 0.7)).astype(np.float32)
    short, long = int(rng.integers(2, 4)), int(rng.integers(4, 7))
    cases = [
        Case(f"remove_short_runs(<a hand-made (4, {boundary.shape[1]}) roll>, "
             f"min_frames={min_frames})", (boundary, min_frames)),
        Case(f"remove_short_runs(<a random {shape} roll>, min_frames={short})", (noisy, short)),
        Case(f"remove_short_runs(<a random {shape} roll>, min_frames={long})", (noisy, long)),
    ]  # fmt: skip
    flags = Case(f"remove_short_runs(<a random {shape} bool roll>, min_frames={long})",
                 (noisy > 0.5, long))  # fmt: skip
    return [cases, [flags]]


_REMOVE_SHORT_RUNS = Exercise(
    name="remove_short_runs",
    reference=solution_remove_short_runs,
    read=lambda value, case: expect_mask(
        value, case.call, case.args[0].shape, "a binary roll of the input's shape"
    ),
    explain=_explain_runs,
    rule=(
        "keep each run of consecutive active frames of a pitch row that is at least "
        "min_frames long (runs at either edge included), set the others to 0"
    ),
    hidden=_hidden_remove_short_runs,
    mistakes=(
        Mistake(
            "runs of exactly min_frames frames must be kept: compare a run's length with "
            ">= min_frames, not >",
            lambda roll, min_frames: solution_remove_short_runs(roll, min_frames + 1),
        ),
        Mistake(
            "runs of min_frames - 1 frames must go too (they are shorter than min_frames): "
            "check how you count a run's length (frames a to b inclusive are b - a + 1 frames)",
            lambda roll, min_frames: solution_remove_short_runs(roll, min_frames - 1),
        ),
        Mistake(
            "runs that touch the first or last frame are runs too",
            _inner_runs_only,
            recognise=_right_between_the_edges,
        ),
        Mistake(
            "you removed the long runs and kept the short ones",
            lambda roll, min_frames: (
                (roll > 0.5) & ~(solution_remove_short_runs(roll, min_frames) > 0.5)
            ),
        ),
        Mistake(
            "the roll came back unchanged: set the runs shorter than min_frames to 0",
            lambda roll, min_frames: roll.copy(),
        ),
        Mistake(
            "you filtered runs along pitch (axis 0): a run is consecutive frames of one key, "
            "along time (axis 1)",
            lambda roll, min_frames: solution_remove_short_runs(roll.T, min_frames).T,
        ),
    ),
)


@exercise_check(_REMOVE_SHORT_RUNS)
def check_remove_short_runs(fn: Callable) -> str:
    """Check ``fn(roll (P, T), min_frames) -> (P, T)`` without runs shorter than ``min_frames``.

    Chapter: book/02_focal_loss_amt.md
    """
    rng = np.random.default_rng(5)
    crafted = np.zeros((4, 16), np.float32)
    crafted[0, 2:4] = 1  # 2 frames: too short for 3
    crafted[0, 6:9] = 1  # exactly 3: kept
    crafted[0, 12] = 1  # a single frame
    crafted[1, :2] = 1  # short run at the start
    crafted[1, 14:] = 1  # short run at the end
    crafted[2, :] = 1  # the whole clip
    crafted[3, :3] = 1  # exactly 3 at the start ...
    crafted[3, 13:] = 1  # ... and at the end: kept
    noisy = (rng.random((10, 40)) < 0.5).astype(np.float32)
    cases = [
        Case(f"remove_short_runs(<{label}>, min_frames={n})", (roll, n))
        for label, roll, n in (
            ("a hand-made (4, 16) roll", crafted, 3),
            ("a hand-made (4, 16) roll", crafted, 1),  # nothing is too short
            ("a random (10, 40) roll", noisy, 2),
            ("a random (10, 40) roll", noisy, 4),
        )
    ]
    # then what the chapter passes, a thresholded posteriorgram: True/False, not 1.0/0.0
    flags = Case("remove_short_runs(<a random (10, 40) bool roll>, min_frames=3)", (noisy > 0.5, 3))
    _REMOVE_SHORT_RUNS.grade(fn, cases, [flags])
    return (
        f"the filter matches on {len(cases) + 1} rolls (runs at both edges, runs of exactly "
        "min_frames and a bool roll included)"
    )
