"""Chapter 3 exercise checks: typical wrong answers fail with a message that helps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import argrelmax

from timbrelab.decode.salience import salience_peaks
from timbrelab.exercises import Exercise, ch02, ch03, check_hidden
from timbrelab.losses.timbre_trap import salience_loss
from timbrelab.metrics import sdr

CHECKS = [
    pytest.param(ch03.check_salience_loss, ch03.solution_salience_loss, id="salience_loss"),
    pytest.param(ch03.check_frequency_peaks, ch03.solution_frequency_peaks, id="frequency_peaks"),
    pytest.param(ch03.check_si_sdr, ch03.solution_si_sdr, id="si_sdr"),
]

# --- exercise 1: the balanced salience loss ------------------------------------------------


def _loss(estimate, target, ratio, *, positive_weight=True, over_bins=np.sum):
    """Eq. 1 written out with a pluggable ratio of inactive to active bins; the ratio weights
    the active bins (or, if not ``positive_weight``, the inactive ones)."""
    weight = ratio(target)
    if positive_weight:
        gamma = target * weight + (1 - target)
    else:
        gamma = target + (1 - target) * weight
    return float(np.mean(over_bins(gamma * (target - estimate) ** 2, axis=1)))


def _inactive_per_active(axes, *, guarded=True):
    """The ratio of inactive to active bins, counted over ``axes``; ``guarded`` divides by at
    least one active bin."""

    def ratio(target):
        positives = target.sum(axis=axes, keepdims=True)
        negatives = (1 - target).sum(axis=axes, keepdims=True)
        return negatives / (np.maximum(positives, 1) if guarded else positives)

    return ratio


_per_frame = _inactive_per_active(1)
_per_frame_unguarded = _inactive_per_active(1, guarded=False)
_per_batch = _inactive_per_active((0, 1, 2))
_per_item = _inactive_per_active((1, 2))


def _silent_frames_dropped(estimate, target):
    """Replaces the NaN of silent frames by 0, so those frames add nothing."""
    gamma = np.nan_to_num(target * _per_frame_unguarded(target) + (1 - target))
    return float(np.mean(np.sum(gamma * (target - estimate) ** 2, axis=1)))


def _torch_loss(estimate, target):
    """Right, in torch (a student may well write it so): a single-number tensor is a number."""
    return salience_loss(torch.from_numpy(estimate), torch.from_numpy(target))


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda e, y: float(np.mean(np.sum((y - e) ** 2, axis=1))), "plain squared error"),
        (lambda e, y: _loss(e, y, _per_batch), "counted over more than one frame"),
        (lambda e, y: _loss(e, y, _per_item), "counted over more than one frame"),
        (lambda e, y: _loss(e, y, _per_frame, over_bins=np.mean), "1/F of the expected"),
        (lambda e, y: _loss(e, y, _per_frame, positive_weight=False), "weights are inverted"),
        (lambda e, y: _loss(e, y, _per_frame_unguarded), "NaN or inf when a frame has no"),
        (_silent_frames_dropped, "add nothing to your loss"),
    ],
    ids=["plain", "batch", "item", "mean", "inverted", "nan", "nan-to-zero"],
)
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # silent frames divide by zero
def test_salience_loss_mistakes(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        ch03.check_salience_loss(wrong)


def test_salience_solution_is_the_package_loss():
    rng = np.random.default_rng(0)
    target = (rng.random((3, 20, 8)) < 0.1).astype(np.float32)
    target[1, :, 2] = 0  # a silent frame
    estimate = rng.random((3, 20, 8)).astype(np.float32)
    expected = salience_loss(torch.from_numpy(estimate), torch.from_numpy(target))
    assert ch03.solution_salience_loss(estimate, target) == pytest.approx(float(expected))


def test_a_torch_salience_loss_passes_too(capsys):
    ch03.check_salience_loss(_torch_loss, strict=True)
    assert capsys.readouterr().out.startswith("✓")


def test_a_formula_mistake_is_named_before_the_silent_frames():
    # inverted AND unguarded: the frames with notes come first, so the inversion is named
    def inverted_and_unguarded(e, y):
        return _loss(e, y, _per_frame_unguarded, positive_weight=False)

    with pytest.raises(AssertionError, match="weights are inverted"), np.errstate(all="ignore"):
        ch03.check_salience_loss(inverted_and_unguarded, strict=True)


# --- exercise 2: peaks along frequency -----------------------------------------------------


def _below_above(s):
    padded = np.pad(s, ((1, 1), (0, 0)))
    return padded[:-2], padded[2:]


def _scipy_peaks(s, t):
    # argrelmax never reports the first or the last bin
    peaks = np.zeros(s.shape, bool)
    peaks[argrelmax(s, axis=0)] = True
    return peaks & (s >= t)


def _peaks_in_place(s, t):
    s[~ch03.solution_frequency_peaks(s, t)] = 0
    return s > 0


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda s, t: s >= t, "every bin at or above the threshold"),
        (lambda s, t: (s > _below_above(s)[0]) & (s > _below_above(s)[1]), "peaks below"),
        (
            lambda s, t: (s > _below_above(s)[0]) & (s > _below_above(s)[1]) & (s > t),
            "exactly at the threshold is left out",
        ),
        (
            lambda s, t: (s >= _below_above(s)[0]) & (s >= _below_above(s)[1]) & (s >= t),
            "every bin of a flat top",
        ),
        (
            lambda s, t: (s > _below_above(s)[0]) & (s >= _below_above(s)[1]) & (s >= t),
            "as Chapter 2's onsets are",
        ),
        (_scipy_peaks, "at either end"),
        (lambda s, t: salience_peaks(s.T, t).T, "over time \\(axis 1\\)"),
        (_peaks_in_place, "changed its input"),
    ],
    ids=[
        "threshold-only",
        "no-threshold",
        "strict-threshold",
        "plateau-all",
        "plateau-first",
        "edges",
        "time-axis",
        "in-place",
    ],  # fmt: skip
)
def test_frequency_peaks_mistakes(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        ch03.check_frequency_peaks(wrong)


def test_frequency_peaks_solution_is_the_decoders():
    rng = np.random.default_rng(1)
    salience = rng.random((40, 25))
    salience[10:12, :] = 0.8  # flat tops of two bins in every frame
    expected = salience_peaks(salience, 0.5)
    assert np.array_equal(ch03.solution_frequency_peaks(salience, 0.5), expected)


def test_chapter_2s_onset_peaks_along_frequency_get_the_rule_not_a_hint():
    # two mistakes at once (flat tops at their first bin, and > threshold): no single hint
    def onset_style(s, t):
        return ch02.solution_onset_peaks(s.T, t).T

    with pytest.raises(AssertionError, match="Remember: a peak is a bin") as failure:
        ch03.check_frequency_peaks(onset_style, strict=True)
    assert "Hint:" not in str(failure.value)


# --- exercise 3: scale-invariant SDR -------------------------------------------------------


def _projected(s, s_hat, energy_of=None):
    energy_of = s if energy_of is None else energy_of
    return np.dot(s_hat, s) / np.dot(energy_of, energy_of) * s


def _db(signal, error, factor=10):
    return factor * np.log10(np.sum(signal**2) / np.sum(error**2))


def _norm_ratio_db(s, s_hat):
    projection = _projected(s, s_hat)
    return 10 * np.log10(np.linalg.norm(projection) / np.linalg.norm(s_hat - projection))


def _si_sdr_in_place(s, s_hat):
    projection = _projected(s, s_hat)
    s_hat -= projection  # the error, computed into the estimate
    return _db(projection, s_hat)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda s, e: sdr(s, e), "this is the plain SDR"),
        (lambda s, e: _db(_projected(s, e), e - _projected(s, e), factor=20), "twice the"),
        (_norm_ratio_db, "half the expected"),
        (lambda s, e: _db(_projected(s, e), s - _projected(s, e)), "not s - s_t"),
        (lambda s, e: _db(_projected(s, e), e - s), "not s_hat - s"),
        (
            lambda s, e: _db(_projected(s, e, e), e - _projected(s, e, e)),
            "divides by the reference's energy",
        ),
        (_si_sdr_in_place, "changed its input"),
    ],
    ids=["plain-sdr", "20-log10", "norms", "error-s", "error-plain", "estimate-energy", "in-place"],
)
def test_si_sdr_mistakes(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        ch03.check_si_sdr(wrong)


def test_si_sdr_solution_is_the_package_metric():
    rng = np.random.default_rng(2)
    reference = rng.standard_normal(500)
    estimate = -0.7 * reference + 0.2 * rng.standard_normal(500)
    expected = sdr(reference, estimate, scale_invariant=True)
    assert ch03.solution_si_sdr(reference, estimate) == pytest.approx(expected)


def test_swapped_arguments_give_the_same_si_sdr(capsys):
    # SI-SDR is 10 log10(cos^2 / sin^2) of the angle between the signals: symmetric, so
    # projecting the reference on the estimate is no mistake in value and passes
    ch03.check_si_sdr(lambda s, e: ch03.solution_si_sdr(e, s), strict=True)
    assert capsys.readouterr().out.startswith("✓")


def test_an_unrecognised_si_sdr_gets_the_rule_not_a_hint():
    def natural_log(s, e):
        return 10 * np.log(np.sum(_projected(s, e) ** 2) / np.sum((e - _projected(s, e)) ** 2))

    with pytest.raises(AssertionError, match="Remember: s_t = ") as failure:
        ch03.check_si_sdr(natural_log, strict=True)
    assert "Hint:" not in str(failure.value)


# --- hidden grading cases ------------------------------------------------------------------


def _shown_cases(check, solution, monkeypatch) -> list:
    """The cases ``check`` shows a student, recorded as it grades ``solution``."""
    shown, grade = [], Exercise.grade

    def recording(self, fn, *stages):
        shown.extend(case for stage in stages for case in stage)
        return grade(self, fn, *stages)

    monkeypatch.setattr(Exercise, "grade", recording)
    check(solution, strict=True)
    monkeypatch.undo()
    return shown


def _same_arguments(one, other) -> bool:
    return len(one.args) == len(other.args) and all(
        np.shape(a) == np.shape(b) and np.array_equal(a, b)
        for a, b in zip(one.args, other.args, strict=True)
    )


@pytest.mark.parametrize("check, solution", CHECKS)
def test_hidden_cases_differ_from_the_shown_ones_and_the_solution_passes(
    check, solution, monkeypatch, capsys
):
    shown = _shown_cases(check, solution, monkeypatch)
    capsys.readouterr()
    for seed in (0, 1, 2):
        stages = check.exercise.hidden(np.random.default_rng(seed))
        assert not any(_same_arguments(h, s) for stage in stages for h in stage for s in shown)
        check_hidden(check, solution, seed)
        assert capsys.readouterr().out.startswith(f"✓ {check.exercise.name}: right on all ")


@pytest.mark.parametrize("check, solution", CHECKS)
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # some mistakes divide by zero
def test_hidden_cases_tell_every_mistake_apart(check, solution, seed):
    for mistake in check.exercise.mistakes:
        with pytest.raises(AssertionError, match="Hint: ") as failure:
            check_hidden(check, mistake.answer, seed)
        assert f"Hint: {mistake.hint}" in str(failure.value)


# --- typical wrong answers across the chapter ----------------------------------------------


def _loss_without_return(estimate, target):
    ch03.solution_salience_loss(estimate, target)  # computed, but not returned


def _loss_per_frame(estimate, target):
    gamma = target * _per_frame(target) + (1 - target)
    return np.sum(gamma * (target - estimate) ** 2, axis=1)  # (B, T): not yet averaged


def _energies(s, e):
    return np.sum(_projected(s, e) ** 2), np.sum((e - _projected(s, e)) ** 2)


TYPICAL_WRONG_ANSWERS = [
    ("loss-none", ch03.check_salience_loss, _loss_without_return,
     "returned None: did you forget `return`?"),
    ("loss-per-frame", ch03.check_salience_loss, _loss_per_frame,
     "returned a numpy array of shape (2, 6); expected the loss, summed over frequency and "
     "averaged over items and frames, one number"),
    ("loss-plain", ch03.check_salience_loss,
     lambda e, y: float(np.mean(np.sum((y - e) ** 2, axis=1))), "the plain squared error"),
    ("loss-batch-ratio", ch03.check_salience_loss, lambda e, y: _loss(e, y, _per_batch),
     "counted over more than one frame"),
    ("loss-mean-over-bins", ch03.check_salience_loss,
     lambda e, y: _loss(e, y, _per_frame, over_bins=np.mean), "1/F of the expected"),
    ("peaks-indices", ch03.check_frequency_peaks,
     lambda s, t: np.argwhere(ch03.solution_frequency_peaks(s, t)),
     "expected a boolean mask of the input's shape"),
    ("peaks-values", ch03.check_frequency_peaks,
     lambda s, t: np.where(ch03.solution_frequency_peaks(s, t), s, 0.0),
     "returned values other than 0 and 1"),
    ("peaks-interior-slice", ch03.check_frequency_peaks,
     lambda s, t: ch03.solution_frequency_peaks(s, t)[1:-1],
     "returned a numpy array of shape (8, 7); expected a boolean mask of the input's shape"),
    ("peaks-strict-threshold", ch03.check_frequency_peaks,
     lambda s, t: salience_peaks(s, t) & (s > t), "exactly at the threshold is left out"),
    ("peaks-time-axis", ch03.check_frequency_peaks, lambda s, t: salience_peaks(s.T, t).T,
     "over time (axis 1)"),
    ("sdr-plain", ch03.check_si_sdr, lambda s, e: sdr(s, e), "this is the plain SDR"),
    ("sdr-20-log10", ch03.check_si_sdr, lambda s, e: 20 * np.log10(np.divide(*_energies(s, e))),
     "20 * log10 is for ratios of amplitudes"),
    ("sdr-energies", ch03.check_si_sdr, _energies, "expected the SI-SDR in dB, one number"),
    ("sdr-error-s", ch03.check_si_sdr,
     lambda s, e: _db(_projected(s, e), s - _projected(s, e)), "not s - s_t"),
]  # fmt: skip
