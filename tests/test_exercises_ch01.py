"""Chapter 1 exercise checks: the reference passes, typical mistakes fail with a useful hint."""

from __future__ import annotations

import math

import numpy as np
import pytest

from timbrelab.exercises import ch01


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
        (lambda fmin, n, b: fmin * 2.0 ** (np.arange(n - 1) / b), "expected n_bins=88"),
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
        (lambda r, e: 10 * np.log10(np.sum(np.abs(r)) / np.sum(np.abs(r - e))), "SNR = 10 log10"),
        (lambda r, e: 10 * np.log10(_energy(r - e) / _energy(r)), "upside down"),
        (lambda r, e: 10 * np.log10(_energy(e) / _energy(r - e)), "the reference's"),
        (lambda r, e: 10 * np.log10(r**2 / (r - e) ** 2 + 1), "one number"),
    ],
    ids=["20log-energy", "abs", "inverted", "estimate-energy", "per-sample"],
)
def test_snr_mistakes(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        ch01.check_snr_db(wrong)


def test_harmonic_shift_solution_is_the_shift_of_harmonic_cqt():
    from timbrelab.features import HarmonicCQT

    for b in (12, 36):
        hcqt = HarmonicCQT(n_bins=12, bins_per_octave=b, fmin=55.0)
        assert hcqt.shifts == [ch01.solution_harmonic_shift(h, b) for h in hcqt.harmonics]
