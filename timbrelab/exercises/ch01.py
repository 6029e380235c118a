"""Exercises of Chapter 1 (CQT features): checks and reference solutions.

1. ``cqt_frequencies(fmin, n_bins, bins_per_octave)``: the bin centre frequencies.
2. ``harmonic_shift(h, bins_per_octave)``: how many bins harmonic ``h`` lies above its
   fundamental (what :class:`timbrelab.features.HarmonicCQT` undoes per channel).
3. ``log_compress(mag, eps)``: decibel compression of magnitudes, as
   :func:`timbrelab.features.log_magnitude`.
4. ``snr_db(reference, estimate)``: signal-to-noise ratio of a reconstruction in dB.

See :mod:`timbrelab.exercises` for what a check prints, returns and raises.

Chapter: book/01_cqt_features.md
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from timbrelab.exercises import as_array, call_student, exercise_check
from timbrelab.features import cqt_frequencies as _reference_frequencies
from timbrelab.features import log_magnitude as _reference_log_magnitude

# --- reference solutions (shown in the chapter behind a toggle) -------------------------------


def solution_cqt_frequencies(fmin: float, n_bins: int, bins_per_octave: int) -> np.ndarray:
    """Reference: ``f_k = fmin * 2 ** (k / bins_per_octave)`` for ``k = 0 .. n_bins - 1``.

    Chapter: book/01_cqt_features.md
    """
    k = np.arange(n_bins)
    return fmin * 2.0 ** (k / bins_per_octave)


def solution_harmonic_shift(h: float, bins_per_octave: int) -> int:
    """Reference: harmonic ``h`` lies ``log2(h)`` octaves up, i.e. ``b * log2(h)`` bins.

    Chapter: book/01_cqt_features.md
    """
    return round(bins_per_octave * math.log2(h))


def solution_log_compress(mag: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Reference: ``20 * log10(mag + eps)`` (decibels of a magnitude; ``eps`` avoids log 0).

    Chapter: book/01_cqt_features.md
    """
    return 20.0 * np.log10(mag + eps)


def solution_snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Reference: ``10 log10(sum reference**2 / sum (reference - estimate)**2)``.

    Chapter: book/01_cqt_features.md
    """
    noise = reference - estimate
    return float(10.0 * np.log10(np.sum(reference**2) / np.sum(noise**2)))


# --- checks --------------------------------------------------------------------------------


@exercise_check("cqt_frequencies")
def check_cqt_frequencies(fn: Callable) -> str:
    """Check ``fn(fmin, n_bins, bins_per_octave) -> (n_bins,)`` bin centre frequencies in Hz.

    Chapter: book/01_cqt_features.md
    """
    cases = [(27.5, 88, 12), (32.70, 84, 12), (27.5, 264, 36), (55.0, 10, 24)]
    for fmin, n_bins, b in cases:
        call = f"cqt_frequencies({fmin}, {n_bins}, {b})"
        got = as_array(call_student(fn, "cqt_frequencies", fmin, n_bins, b), call).reshape(-1)
        want = _reference_frequencies(fmin, n_bins, b)
        if got.shape != want.shape:
            raise AssertionError(
                f"{call} returned {got.size} values; expected n_bins={n_bins} "
                "(one per bin, k = 0 .. n_bins - 1)"
            )
        if np.allclose(got, want, rtol=1e-6):
            continue
        k = np.arange(n_bins)
        if np.allclose(got, want * 2.0 ** (1 / b), rtol=1e-6):
            hint = "your bins are one bin too high: k starts at 0, so bin 0 is fmin itself"
        elif b != 12 and np.allclose(got, fmin * 2.0 ** (k / 12), rtol=1e-6):
            hint = (
                "your bins are a semitone apart whatever bins_per_octave is: divide k by "
                "bins_per_octave, not by 12"
            )
        elif np.allclose(np.diff(got), np.diff(got)[0], rtol=1e-6):
            hint = (
                "your bins are evenly spaced in Hz (like an STFT); CQT bins are evenly "
                "spaced in log-frequency: each one is 2**(1/bins_per_octave) times the last"
            )
        else:
            hint = "f_k = fmin * 2 ** (k / bins_per_octave)"
        bad = int(np.argmax(~np.isclose(got, want, rtol=1e-6)))
        raise AssertionError(
            f"{call}: bin {bad} should be {want[bad]:.4f} Hz, got {got[bad]:.4f} Hz. Hint: {hint}"
        )
    return f"bin centres match for {len(cases)} settings (12, 24 and 36 bins per octave)"


@exercise_check("harmonic_shift")
def check_harmonic_shift(fn: Callable) -> str:
    """Check ``fn(h, bins_per_octave) -> int``, the bin offset of harmonic ``h``.

    Chapter: book/01_cqt_features.md
    """
    harmonics = (0.5, 1, 2, 3, 4, 5, 6, 7)
    for b in (12, 36):
        for h in harmonics:
            call = f"harmonic_shift({h}, {b})"
            got = call_student(fn, "harmonic_shift", h, b)
            want = solution_harmonic_shift(h, b)
            if isinstance(got, bool) or not isinstance(got, int | np.integer):
                if isinstance(got, float | np.floating) and float(got).is_integer():
                    got = int(got)
                else:
                    raise AssertionError(
                        f"{call} returned {got!r}; a shift is a whole number "
                        "of bins: round b * log2(h) to the nearest integer"
                    )
            if got == want:
                continue
            exact = b * math.log2(h)
            if got == math.floor(exact):
                hint = (
                    f"b * log2(h) = {exact:.2f} is nearer to {want}: round to the nearest "
                    "bin (int() and // cut the fraction off)"
                )
            elif h < 1 and got > 0:
                hint = "a sub-harmonic (h < 1) lies *below* the fundamental: the shift is negative"
            elif got in (b * h, b * (h - 1)):
                hint = (
                    "harmonics are evenly spaced in Hz, not in CQT bins: harmonic h lies "
                    "log2(h) octaves above the fundamental, and an octave is b bins"
                )
            else:
                hint = "the shift is b * log2(h), rounded to a whole bin"
            raise AssertionError(f"{call} should be {want}, got {got}. Hint: {hint}")
    return f"shifts match for harmonics {harmonics} at 12 and 36 bins per octave"


@exercise_check("log_compress")
def check_log_compress(fn: Callable) -> str:
    """Check ``fn(mag, eps) -> 20 log10(mag + eps)`` on magnitudes that include zeros.

    Chapter: book/01_cqt_features.md
    """
    rng = np.random.default_rng(1)
    mag = np.concatenate([[0.0, 1e-5, 1.0, 10.0], rng.exponential(0.1, 60)]).reshape(8, 8)
    for eps in (1e-5, 1e-3):
        call = f"log_compress(mag, eps={eps})"
        got = as_array(call_student(fn, "log_compress", mag.copy(), eps), call)
        want = _reference_log_magnitude(torch.from_numpy(mag), eps).numpy()
        if got.shape != want.shape:
            raise AssertionError(
                f"{call} returned shape {got.shape}; it must keep the input's shape {want.shape}"
            )
        if np.allclose(got, want, rtol=1e-5, atol=1e-4):
            continue
        if not np.isfinite(got).all():
            hint = (
                "some values are -inf or NaN: the log of 0 is -inf, so add eps to the "
                "magnitude before taking the log"
            )
        elif np.allclose(got, want / 2, rtol=1e-5, atol=1e-4):
            hint = (
                "your values are half the expected: 10 * log10 is for power (squared "
                "magnitude); for magnitudes use 20 * log10"
            )
        elif np.allclose(got, want * math.log(10), rtol=1e-5, atol=1e-4):
            hint = "use log10 (decibels), not the natural log"
        elif np.allclose(got, 20 * np.log10(np.maximum(mag, eps)), rtol=1e-5, atol=1e-4):
            hint = "add eps to the magnitude (mag + eps) rather than clipping it at eps"
        else:
            hint = "decibels of a magnitude are 20 * log10(mag + eps)"
        bad = np.unravel_index(np.argmax(~np.isclose(got, want, rtol=1e-5, atol=1e-4)), want.shape)
        raise AssertionError(
            f"{call}: for mag = {mag[bad]:.6g} expected {want[bad]:.4f} dB, "
            f"got {got[bad]:.4f}. Hint: {hint}"
        )
    return "matches timbrelab.features.log_magnitude, zeros included"


@exercise_check("snr_db")
def check_snr_db(fn: Callable) -> str:
    """Check ``fn(reference, estimate) -> float``, the SNR of ``estimate`` in dB.

    Chapter: book/01_cqt_features.md
    """
    rng = np.random.default_rng(0)
    t = np.arange(4000) / 8000
    reference = np.sin(2 * np.pi * 220 * t) + 0.3 * np.sin(2 * np.pi * 660 * t)
    estimates = {
        "reference + noise": reference + 0.01 * rng.standard_normal(t.size),
        "0.5 * reference": 0.5 * reference,
        "1.5 * reference + noise": 1.5 * reference + 0.2 * rng.standard_normal(t.size),
    }
    for label, estimate in estimates.items():
        call = f"snr_db(reference, {label})"
        value = call_student(fn, "snr_db", reference.copy(), estimate.copy())
        got = float(as_array(value, call).reshape(-1)[0]) if np.size(value) == 1 else None
        if got is None:
            raise AssertionError(f"{call} should return one number (dB), got {_describe(value)}")
        want = solution_snr_db(reference, estimate)
        if math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-6):
            continue
        noise_energy = np.sum((reference - estimate) ** 2)
        swapped = 10 * np.log10(np.sum(estimate**2) / noise_energy)
        if math.isclose(got, 2 * want, rel_tol=1e-6):
            hint = (
                "twice the expected: energies are already squared, so use 10 * log10 of the "
                "energy ratio (or 20 * log10 of an amplitude ratio, not of energies)"
            )
        elif math.isclose(got, want / 2, rel_tol=1e-6):
            hint = "half the expected: square the samples (energy), or use 20 * log10 of amplitudes"
        elif math.isclose(got, -want, rel_tol=1e-6):
            hint = "the ratio is upside down: signal energy over noise energy"
        elif math.isclose(got, swapped, rel_tol=1e-6):
            hint = (
                "the signal energy is the reference's, not the estimate's: "
                "sum(reference**2) / sum((reference - estimate)**2)"
            )
        else:
            hint = "SNR = 10 log10( sum(reference**2) / sum((reference - estimate)**2) )"
        raise AssertionError(f"{call} should be {want:.3f} dB, got {got:.3f}. Hint: {hint}")
    return f"SNR matches on {len(estimates)} reference/estimate pairs"


def _describe(value: object) -> str:
    shape = getattr(value, "shape", None)
    return f"{type(value).__name__} of shape {tuple(shape)}" if shape is not None else repr(value)
