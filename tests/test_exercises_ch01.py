"""Chapter 1 exercise checks: typical wrong answers fail with a message that helps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from timbrelab.exercises import ch01


def _truncated_shift(h, bins_per_octave):
    return int(bins_per_octave * math.log2(h))


def _printed_shift(h, bins_per_octave):
    print(round(bins_per_octave * math.log2(h)))  # shown, but not returned


def _log_compress_in_place(mag, eps):
    mag += eps
    return 20 * np.log10(mag)


def _snr_as_text(reference, estimate):
    return f"{ch01.solution_snr_db(reference, estimate):.1f} dB"


# Typical wrong answers across the chapter, each with a phrase its message must contain.
TYPICAL_WRONG_ANSWERS = [
    ("cqt-none", ch01.check_cqt_frequencies, lambda fmin, n, b: None,
     "returned None: did you forget `return`?"),
    ("shift-printed", ch01.check_harmonic_shift, _printed_shift,
     "returned None: did you forget `return`?"),
    ("snr-text", ch01.check_snr_db, _snr_as_text, "returned a str ('37.4 dB'); expected the SNR"),
    ("snr-dict", ch01.check_snr_db, lambda r, e: {"snr": 1.0}, "returned a dict"),
    ("cqt-list-of-str", ch01.check_cqt_frequencies, lambda fmin, n, b: ["27.5"] * n,
     "not numbers"),
    ("cqt-off-by-one", ch01.check_cqt_frequencies,
     lambda fmin, n, b: fmin * 2.0 ** (np.arange(1, n + 1) / b), "k starts at 0"),
    ("shift-truncated", ch01.check_harmonic_shift, _truncated_shift, "int() and // cut"),
    ("shift-float", ch01.check_harmonic_shift, lambda h, b: b * math.log2(h),
     "returned 19.0196; a shift is a whole number of bins"),
    ("shift-semitones", ch01.check_harmonic_shift, lambda h, b: round(12 * math.log2(h)),
     "multiply log2(h) by bins_per_octave"),
    ("log-in-place", ch01.check_log_compress, _log_compress_in_place, "changed its input"),
    ("log-fixed-eps", ch01.check_log_compress, lambda mag, eps: 20 * np.log10(mag + 1e-5),
     "use the eps you are given"),
    ("snr-not-db", ch01.check_snr_db, lambda r, e: np.sum(r**2) / np.sum((r - e) ** 2),
     "convert it to decibels"),
]  # fmt: skip


def test_a_near_miss_shows_enough_digits_to_differ():
    def slightly_off(fmin, n, b):
        return fmin * 2.0 ** (np.arange(n) / b) * (1 + 1e-5)

    with pytest.raises(AssertionError, match=r"bin 0 should be 27\.5000 Hz, got 27\.5003 Hz"):
        ch01.check_cqt_frequencies(slightly_off)


def test_an_unrecognised_mistake_gets_the_rule_not_a_hint():
    def sharp(fmin, n, b):
        return 1.01 * fmin * 2.0 ** (np.arange(n) / b)

    with pytest.raises(AssertionError, match="Remember: f_k = ") as failure:
        ch01.check_cqt_frequencies(sharp)
    assert "Hint:" not in str(failure.value)


def test_student_exception_names_the_failing_call():
    def broken(fmin, n_bins, bins_per_octave):
        return fmin * 2 ** (np.arange(n_bins) / bins_per_octave) + undefined_name  # noqa: F821

    with pytest.raises(AssertionError, match=r"cqt_frequencies\(27.5, 88, 12\) raised NameError"):
        ch01.check_cqt_frequencies(broken)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda fmin, n, b: fmin * 2.0 ** (np.arange(1, n + 1) / b), "k starts at 0"),
        (lambda fmin, n, b: fmin * 2.0 ** (np.arange(n) / 12), "divide k by bins_per_octave"),
        (lambda fmin, n, b: fmin + fmin * np.arange(n) / b, "evenly spaced in Hz"),
        (
            lambda fmin, n, b: fmin * 2.0 ** (np.arange(n - 1) / b),
            r"shape \(87,\); .* shape \(88,\)",
        ),
    ],
    ids=["off-by-one", "semitone-only", "linear", "too-few"],
)
def test_cqt_frequencies_mistakes(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        ch01.check_cqt_frequencies(wrong)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda h, b: int(b * math.log2(h)), "round to the nearest bin"),
        (lambda h, b: b * (h - 1), "log2\\(h\\) octaves"),
        (lambda h, b: abs(round(b * math.log2(h))), "shift is negative"),
        (lambda h, b: b * math.log2(h), "whole number of bins"),
    ],
    ids=["truncated", "linear", "positive-subharmonic", "not-rounded"],
)
def test_harmonic_shift_mistakes(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        ch01.check_harmonic_shift(wrong)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda mag, eps: 10 * np.log10(mag + eps), "10 \\* log10 is for power"),
        (lambda mag, eps: 20 * np.log10(mag), "-inf or NaN"),
        (lambda mag, eps: 20 * np.log(mag + eps), "not the natural log"),
        (lambda mag, eps: 20 * np.log10(np.maximum(mag, eps)), "rather than clipping"),
        (lambda mag, eps: (20 * np.log10(mag + eps)).ravel(), "keep the input's shape"),
    ],
    ids=["power-db", "no-eps", "ln", "clip", "flattened"],
)
@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_log_compress_mistakes(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        ch01.check_log_compress(wrong)


def test_log_compress_accepts_torch_output():
    import torch

    ch01.check_log_compress(
        lambda mag, eps: 20 * torch.log10(torch.from_numpy(mag) + eps), strict=True
    )


def _energy(x):
    return np.sum(x**2)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda r, e: 20 * np.log10(_energy(r) / _energy(r - e)), "twice the expected"),
        (lambda r, e: 10 * np.log10(np.sum(np.abs(r)) / np.sum(np.abs(r - e))), "Remember: SNR"),
        (lambda r, e: 10 * np.log10(_energy(r - e) / _energy(r)), "upside down"),
        (lambda r, e: 10 * np.log10(_energy(e) / _energy(r - e)), "the reference's"),
        (lambda r, e: 10 * np.log10(r**2 / (r - e) ** 2 + 1), "one number"),
    ],
    ids=["20log-energy", "abs", "inverted", "estimate-energy", "per-sample"],
)
@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # the estimate of zeros
def test_snr_mistakes(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        ch01.check_snr_db(wrong)


def test_harmonic_shift_solution_is_the_shift_of_harmonic_cqt():
    from timbrelab.features import HarmonicCQT

    for b in (12, 36):
        hcqt = HarmonicCQT(n_bins=12, bins_per_octave=b, fmin=55.0)
        assert hcqt.shifts == [ch01.solution_harmonic_shift(h, b) for h in hcqt.harmonics]
