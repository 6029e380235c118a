"""Chapter 2 exercise checks: typical wrong answers fail with a message that helps."""

from __future__ import annotations

import re

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
            "every frame of a flat top",
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
            "is the frame accuracy",
        ),
        (_unsafe_prf, "division by zero"),
        (lambda r, e: ch02.solution_frame_prf(r, e)[2], "three"),
    ],
    ids=["swapped", "percent", "arithmetic-mean", "accuracy", "zero-division", "f1-only"],
)
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # 0 / 0 on empty rolls
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


# --- typical wrong answers across the chapter ----------------------------------------------


def _focal_without_return(logits, targets, alpha, gamma):
    ch02.solution_focal_loss(logits, targets, alpha, gamma)  # computed, but not returned


def _peaks_at_or_above(x, t):
    return (x > _pad(x)[:, :-2]) & (x >= _pad(x)[:, 2:]) & (x >= t)


def _arithmetic_f1(ref, est):
    precision, recall, _ = ch02.solution_frame_prf(ref, est)
    return precision, recall, (precision + recall) / 2


def _prf_as_dict(ref, est):
    return dict(zip(("precision", "recall", "f1"), ch02.solution_frame_prf(ref, est), strict=True))


TYPICAL_WRONG_ANSWERS = [
    ("focal-none", ch02.check_focal_loss, _focal_without_return,
     "returned None: did you forget `return`?"),
    ("focal-mean", ch02.check_focal_loss,
     lambda x, y, a, g: ch02.solution_focal_loss(x, y, a, g).mean(),
     "returned a single-number torch tensor"),
    ("prf-dict", ch02.check_frame_prf, _prf_as_dict, "returned a dict"),
    ("peaks-indices", ch02.check_onset_peaks,
     lambda x, t: np.flatnonzero(ch02.solution_onset_peaks(x, t)),
     "returned a numpy array of shape (10,); expected a boolean mask"),
    ("peaks-probabilities", ch02.check_onset_peaks,
     lambda x, t: np.where(ch02.solution_onset_peaks(x, t), x, 0.0),
     "returned values other than 0 and 1"),
    ("peaks-at-threshold", ch02.check_onset_peaks, _peaks_at_or_above,
     "a peak exactly at the threshold is marked"),
    ("peaks-late", ch02.check_onset_peaks,
     lambda x, t: np.roll(ch02.solution_onset_peaks(x, t), 1, axis=1), "one frame off"),
    ("prf-swapped", ch02.check_frame_prf, lambda r, e: ch02.solution_frame_prf(e, r),
     "precision and recall are swapped"),
    ("prf-arithmetic-mean", ch02.check_frame_prf, _arithmetic_f1, "not the arithmetic mean"),
    ("prf-percent", ch02.check_frame_prf,
     lambda r, e: [100 * v for v in ch02.solution_frame_prf(r, e)], "not percentages"),
    ("runs-unchanged", ch02.check_remove_short_runs, lambda roll, n: roll,
     "the roll came back unchanged"),
    ("runs-strict", ch02.check_remove_short_runs, _strict, ">= min_frames, not >"),
    ("runs-pitch-axis", ch02.check_remove_short_runs,
     lambda roll, n: ch02.solution_remove_short_runs(roll.T, n).T, "along pitch (axis 0)"),
]  # fmt: skip


def test_a_wrong_f1_shows_digits_that_differ():
    # arithmetic and harmonic mean agree to 4 digits here: the message must show more
    with pytest.raises(AssertionError) as failure:
        ch02.check_frame_prf(_arithmetic_f1, strict=True)
    shown = re.search(r"should be \((.*)\), got \((.*)\): f1 differs\.", str(failure.value))
    assert shown is not None, str(failure.value)
    want, got = (part.split(", ") for part in shown.groups())
    assert want[:2] == got[:2] and want[2] != got[2]


def test_an_unchanged_roll_gets_no_comparison_hint():
    with pytest.raises(AssertionError) as failure:
        ch02.check_remove_short_runs(lambda roll, n: roll.copy(), strict=True)
    assert "came back unchanged" in str(failure.value)
    assert ">=" not in str(failure.value)


def test_an_unrecognised_mistake_gets_the_rule_not_a_hint():
    def sticky(roll, n):  # keeps every run of at least 2 frames, whatever min_frames is
        return ch02.solution_remove_short_runs(roll, 2)

    with pytest.raises(AssertionError, match="Remember: keep each run") as failure:
        ch02.check_remove_short_runs(sticky, strict=True)
    assert "Hint:" not in str(failure.value)


def test_a_formula_mistake_is_found_in_unstable_code_too():
    # the extreme logits are graded after the formula, so swapped alphas are named first
    def swapped_and_unstable(x, y, a, g):
        return _naive(x, y, a, g, a_pos=1 - a, a_neg=a)

    with pytest.raises(AssertionError, match="alpha and 1 - alpha are swapped"):
        ch02.check_focal_loss(swapped_and_unstable, strict=True)


def test_student_exception_names_the_failing_call():
    def broken(logits, targets, alpha, gamma):
        return undefined_name  # noqa: F821

    with pytest.raises(AssertionError, match=r"focal_loss\(.*\) raised NameError"):
        ch02.check_focal_loss(broken)
