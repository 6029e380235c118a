"""Chapter 2 exercise checks: the reference passes, typical mistakes fail with a useful hint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from timbrelab.decode import posteriorgram_to_notes
from timbrelab.exercises import ch02

# --- exercise 1: focal loss ----------------------------------------------------------------


def _naive(logits, targets, alpha, gamma, *, a_pos=None, a_neg=None, f_pos=None, f_neg=None):
    """Focal loss through sigmoid and log (not stable), with pluggable weights and factors."""
    p = torch.sigmoid(logits)
    a_pos = alpha if a_pos is None else a_pos
    a_neg = 1 - alpha if a_neg is None else a_neg
    f_pos = (1 - p) if f_pos is None else f_pos(p)
    f_neg = p if f_neg is None else f_neg(p)
    return -(
        a_pos * targets * f_pos**gamma * torch.log(p)
        + a_neg * (1 - targets) * f_neg**gamma * torch.log(1 - p)
    )


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda x, y, a, g: ch02.solution_focal_loss(x, y, a, g).mean(), "element-wise loss"),
        (lambda x, y, a, g: -ch02.solution_focal_loss(x, y, a, g), "the loss is negative"),
        (
            lambda x, y, a, g: F.binary_cross_entropy_with_logits(x, y, reduction="none"),
            "plain binary cross entropy",
        ),
        (lambda x, y, a, g: _naive(x, y, a, g, a_pos=1 - a, a_neg=a), "swapped: alpha weights"),
        (lambda x, y, a, g: _naive(x, y, a, g, a_neg=1.0), "needs the weight \\(1 - alpha\\)"),
        (
            lambda x, y, a, g: _naive(x, y, a, g, f_pos=lambda p: p, f_neg=lambda p: 1 - p),
            "modulating factors are swapped",
        ),
        (lambda x, y, a, g: _naive(x, y, a, g), "F.logsigmoid"),
    ],
    ids=["mean", "sign", "bce", "alpha-swapped", "no-1-alpha", "factors-swapped", "unstable"],
)
def test_focal_loss_mistakes(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        ch02.check_focal_loss(wrong)


def test_focal_solution_is_the_package_loss():
    logits, targets = torch.randn(3, 5) * 4, (torch.rand(3, 5) < 0.3).float()
    from timbrelab.losses import focal_loss

    expected = focal_loss(logits, targets, 0.2, 1.0, reduction="none")
    torch.testing.assert_close(ch02.solution_focal_loss(logits, targets, 0.2, 1.0), expected)


# --- exercise 2: onset peaks ---------------------------------------------------------------


def _pad(x):
    return np.pad(x, ((0, 0), (1, 1)), constant_values=-np.inf)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda x, t: x > t, "every frame above the threshold"),
        (lambda x, t: (x > _pad(x)[:, :-2]) & (x >= _pad(x)[:, 2:]), "peaks below the threshold"),
        (
            lambda x, t: (x >= _pad(x)[:, :-2]) & (x >= _pad(x)[:, 2:]) & (x > t),
            "both frames of a flat top",
        ),
        (
            lambda x, t: (x > _pad(x)[:, :-2]) & (x > _pad(x)[:, 2:]) & (x > t),
            "gives no peak at all",
        ),
        (
            # np.diff-style peak picking that never looks at the edge frames
            lambda x, t: np.pad(
                (x[:, 1:-1] > x[:, :-2]) & (x[:, 1:-1] >= x[:, 2:]) & (x[:, 1:-1] > t),
                ((0, 0), (1, 1)),
            ),
            "either edge",
        ),
        (
            lambda x, t: np.roll(ch02.solution_onset_peaks(x, t), 1, axis=1),
            "one frame off",
        ),
        (lambda x, t: ch02.solution_onset_peaks(x.T, t).T, "along pitch"),
        (lambda x, t: np.flatnonzero(ch02.solution_onset_peaks(x, t)), "boolean mask"),
    ],
    ids=[
        "threshold-only",
        "no-threshold",
        "plateau-twice",
        "plateau-never",
        "edges",
        "late",
        "pitch-axis",
        "indices",
    ],  # fmt: skip
)
def test_onset_peaks_mistakes(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        ch02.check_onset_peaks(wrong)


def test_onset_peaks_solution_starts_the_decoders_notes():
    # on a clean posteriorgram every onset peak the solution finds starts a decoded note
    onsets = np.zeros((88, 60), np.float32)
    frames = np.zeros((88, 60), np.float32)
    for pitch, start in ((40, 5), (40, 30), (52, 12)):
        onsets[pitch, start] = 0.9
        frames[pitch, start : start + 15] = 0.9
    peaks = ch02.solution_onset_peaks(onsets, 0.5)
    notes = posteriorgram_to_notes(frames, onsets, infer_onsets=False, melodia_trick=False)
    starts = {(n.pitch - 21, round(n.onset * 22050 / 256)) for n in notes}
    assert starts == set(zip(*np.nonzero(peaks), strict=True))


# --- exercise 3: frame precision, recall, F1 -----------------------------------------------


def _counts(ref, est):
    ref, est = ref > 0.5, est > 0.5
    return np.sum(ref & est), np.sum(~ref & est), np.sum(ref & ~est)


def _swap_pr(precision, recall, f1):
    return recall, precision, f1


def _unsafe_prf(ref, est):
    tp, fp, fn = _counts(ref, est)
    with np.errstate(invalid="ignore", divide="ignore"):
        p, r = np.float64(tp) / (tp + fp), np.float64(tp) / (tp + fn)
        return p, r, 2 * p * r / (p + r)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda r, e: _swap_pr(*ch02.solution_frame_prf(r, e)), "swapped"),
        (lambda r, e: tuple(100 * v for v in ch02.solution_frame_prf(r, e)), "percentages"),
        (
            lambda r, e: (
                *ch02.solution_frame_prf(r, e)[:2],
                sum(ch02.solution_frame_prf(r, e)[:2]) / 2,
            ),
            "harmonic mean",
        ),
        (
            lambda r, e: (
                *ch02.solution_frame_prf(r, e)[:2],
                _counts(r, e)[0] / sum(_counts(r, e)),
            ),
            "is the accuracy",
        ),
        (_unsafe_prf, "division by zero"),
        (lambda r, e: ch02.solution_frame_prf(r, e)[2], "three"),
    ],
    ids=["swapped", "percent", "arithmetic-mean", "accuracy", "zero-division", "f1-only"],
)
def test_frame_prf_mistakes(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        ch02.check_frame_prf(wrong)


def test_frame_prf_solution_agrees_with_compare_rolls_legend():
    from timbrelab.viz import compare_rolls

    rng = np.random.default_rng(0)
    ref = (rng.random((88, 30)) < 0.1).astype(float)
    est = (rng.random((88, 30)) < 0.1).astype(float)
    fig = compare_rolls(ref, est)
    title = fig.axes[0].get_legend().get_title().get_text()
    assert title == f"frame F1 = {ch02.solution_frame_prf(ref, est)[2]:.2f}"


# --- exercise 4: minimum note length -------------------------------------------------------


def _strict(roll, n):
    return ch02.solution_remove_short_runs(roll, n + 1)


def _inner_runs_only(roll, n):
    # finds runs by rising and falling edges inside the roll: misses runs at either edge
    out = np.zeros_like(roll)
    for row in range(roll.shape[0]):
        x = roll[row]
        starts = [t for t in range(1, len(x)) if x[t] and not x[t - 1]]
        stops = [t for t in range(1, len(x)) if not x[t] and x[t - 1]]
        for start in starts:
            stop = next((s for s in stops if s > start), None)
            if stop is not None and stop - start >= n:
                out[row, start:stop] = 1
    return out


def _in_place(roll, n):
    roll[:] = ch02.solution_remove_short_runs(roll, n)
    return roll


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (_strict, "must be kept"),
        (lambda roll, n: ch02.solution_remove_short_runs(roll, n - 1), "must go"),
        (_inner_runs_only, "touch the first or last frame"),
        (lambda roll, n: roll - ch02.solution_remove_short_runs(roll, n), "removed the long"),
        (_in_place, "changed its input"),
        (lambda roll, n: ch02.solution_remove_short_runs(roll, n)[:, :-1], "input's shape"),
    ],
    ids=["strict", "off-by-one", "edges", "inverted", "in-place", "shape"],
)
def test_remove_short_runs_mistakes(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        ch02.check_remove_short_runs(wrong)


def test_student_exception_names_the_failing_call():
    def broken(logits, targets, alpha, gamma):
        return undefined_name  # noqa: F821

    with pytest.raises(AssertionError, match=r"focal_loss\(.*\) raised NameError"):
        ch02.check_focal_loss(broken)
