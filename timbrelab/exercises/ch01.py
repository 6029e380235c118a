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

from timbrelab.exercises import (
    Case,
    Exercise,
    Mistake,
    exercise_check,
    expect_array,
    expect_number,
    show_numbers,
)
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

# --- exercise 1: bin centre frequencies


def _evenly_spaced(freqs: np.ndarray) -> bool:
    """Equal steps in Hz from bin to bin (vacuously so for fewer than three bins)."""
    return bool(np.allclose(np.diff(freqs, 2), 0.0, atol=1e-9 * np.abs(freqs).max()))


def _hidden_cqt_frequencies(rng: np.random.Generator) -> list[list[Case]]:
    """Grading cases: other lowest frequencies and lengths, four resolutions besides 12, and a
    single bin."""
    resolutions = rng.permutation([12, 24, 36, 48, 60])[:4]
    settings = [(round(rng.uniform(20, 110), 2), int(rng.integers(3, 300)), int(b))
                for b in resolutions]  # fmt: skip
    settings.append((round(rng.uniform(20, 880), 2), 1, int(resolutions[0])))
    return [[Case(f"cqt_frequencies({f}, {n}, {b})", (f, n, b)) for f, n, b in settings]]


_CQT_FREQUENCIES = Exercise(
    name="cqt_frequencies",
    reference=_reference_frequencies,
    read=lambda value, case: expect_array(
        value, case.call, (case.args[1],), "one centre frequency per bin (k = 0 .. n_bins - 1)"
    ),
    explain=lambda case, got, want, i: "bin {} should be {} Hz, got {} Hz".format(
        i[0], *show_numbers(want[i], got[i])
    ),
    rule="f_k = fmin * 2 ** (k / bins_per_octave) for k = 0 .. n_bins - 1",
    rtol=1e-6,
    hidden=_hidden_cqt_frequencies,
    mistakes=(
        Mistake(
            "your bins are one bin too high: k starts at 0, so bin 0 is fmin itself",
            lambda fmin, n, b: fmin * 2.0 ** (np.arange(1, n + 1) / b),
        ),
        Mistake(
            "your bins are a semitone apart whatever bins_per_octave is: divide k by "
            "bins_per_octave, not by 12",
            lambda fmin, n, b: fmin * 2.0 ** (np.arange(n) / 12),
        ),
        Mistake(
            "2 ** k / bins_per_octave means (2 ** k) / bins_per_octave: put the exponent in "
            "parentheses, 2 ** (k / bins_per_octave)",
            lambda fmin, n, b: fmin * 2.0 ** np.arange(n) / b,
        ),
        Mistake(
            "your bins are evenly spaced in Hz (like an STFT); CQT bins are evenly spaced in "
            "log-frequency: each one is 2 ** (1 / bins_per_octave) times the one before",
            lambda fmin, n, b: fmin + fmin * np.arange(n) / b,
            recognise=lambda got, want, case: _evenly_spaced(got),
        ),
    ),
)


@exercise_check(_CQT_FREQUENCIES)
def check_cqt_frequencies(fn: Callable) -> str:
    """Check ``fn(fmin, n_bins, bins_per_octave) -> (n_bins,)`` bin centre frequencies in Hz.

    Chapter: book/01_cqt_features.md
    """
    settings = [(27.5, 88, 12), (32.70, 84, 12), (27.5, 264, 36), (55.0, 10, 24), (440.0, 1, 12)]
    cases = [Case(f"cqt_frequencies({f}, {n}, {b})", (f, n, b)) for f, n, b in settings]
    _CQT_FREQUENCIES.grade(fn, cases)
    return f"bin centres match for {len(cases)} settings (12, 24 and 36 bins per octave, one bin)"


# --- exercise 2: where the harmonics are


def _read_shift(value: object, case: Case) -> float:
    shift = expect_number(value, case.call, "a whole number of bins")
    if not shift.is_integer():
        raise AssertionError(
            f"{case.call} returned {shift:g}; a shift is a whole number of bins: round "
            "bins_per_octave * log2(h) to the nearest integer"
        )
    return shift


def _exact_shift(case: Case) -> float:
    h, b = case.args
    return b * math.log2(h)


def _cut_off(got: float, want: float, case: Case) -> bool:
    """The shift with its fraction cut off (int() towards 0, // and floor() downwards)."""
    return got in (math.trunc(_exact_shift(case)), math.floor(_exact_shift(case)))


def _linear_in_bins(got: float, want: float, case: Case) -> bool:
    """Harmonics b bins apart: harmonic h at b * h or b * (h - 1) bins."""
    h, b = case.args
    return got in (b * h, b * (h - 1))


def _wrong_log(got: float, want: float, case: Case) -> bool:
    """The natural log or log10 in place of log2."""
    h, b = case.args
    return got in (round(b * math.log(h)), round(b * math.log10(h)))


def _hidden_harmonic_shift(rng: np.random.Generator) -> list[list[Case]]:
    """Grading cases: the fundamental, a sub-harmonic and six harmonics up to 12, at 12 bins
    per octave and at one other resolution."""
    harmonics = [1, float(rng.choice([0.25, 0.5])), *sorted(rng.choice(range(2, 13), 6, False))]
    resolutions = (12, int(rng.choice([24, 36, 48, 60])))
    return [[Case(f"harmonic_shift({h}, {b})", (h, b)) for b in resolutions for h in harmonics]]


_HARMONIC_SHIFT = Exercise(
    name="harmonic_shift",
    reference=solution_harmonic_shift,
    read=_read_shift,
    explain=lambda case, got, want, i: (
        f"should be {want:g}, got {got:g} (bins_per_octave * log2(h) = {_exact_shift(case):.3f})"
    ),
    rule="the shift is bins_per_octave * log2(h), rounded to the nearest whole bin",
    hidden=_hidden_harmonic_shift,
    mistakes=(
        Mistake(
            "round to the nearest bin: int() and // cut the fraction off",
            lambda h, b: int(b * math.log2(h)),
            recognise=_cut_off,
        ),
        Mistake(
            "a sub-harmonic (h < 1) lies below the fundamental: its shift is negative",
            lambda h, b: abs(round(b * math.log2(h))),
        ),
        Mistake(
            "harmonics are evenly spaced in Hz, not in CQT bins: harmonic h lies log2(h) "
            "octaves above the fundamental, and an octave is bins_per_octave bins",
            lambda h, b: b * (h - 1),
            recognise=_linear_in_bins,
        ),
        Mistake(
            "an octave is a doubling of frequency: use log2(h), not the natural log or log10",
            lambda h, b: round(b * math.log(h)),
            recognise=_wrong_log,
        ),
        Mistake(
            "an octave is bins_per_octave bins (36 at 36 bins per octave), not 12: multiply "
            "log2(h) by bins_per_octave",
            lambda h, b: round(12 * math.log2(h)),
        ),
    ),
)


@exercise_check(_HARMONIC_SHIFT)
def check_harmonic_shift(fn: Callable) -> str:
    """Check ``fn(h, bins_per_octave) -> int``, the bin offset of harmonic ``h``.

    Chapter: book/01_cqt_features.md
    """
    harmonics = (0.5, 1, 2, 3, 4, 5, 6, 7)  # 1: no shift at all; 0.5: a negative one
    cases = [Case(f"harmonic_shift({h}, {b})", (h, b)) for b in (12, 36) for h in harmonics]
    _HARMONIC_SHIFT.grade(fn, cases)
    return f"shifts match for harmonics {harmonics} at 12 and 36 bins per octave"


# --- exercise 3: log-magnitude compression


def _log_compress_reference(mag: np.ndarray, eps: float) -> torch.Tensor:
    return _reference_log_magnitude(torch.from_numpy(mag), eps)


def _hidden_log_compress(rng: np.random.Generator) -> list[list[Case]]:
    """Grading cases: random magnitudes of another shape with zeros and a magnitude exactly at
    each eps, for two of four eps values."""
    epsilons = [float(eps) for eps in rng.choice([1e-6, 1e-5, 1e-4, 1e-3], 2, replace=False)]
    shape = (int(rng.integers(4, 10)), int(rng.integers(6, 12)))
    special = [0.0, 0.0, *epsilons, 1.0, float(rng.uniform(2, 50))]
    random = rng.exponential(rng.uniform(0.01, 1.0), shape[0] * shape[1] - len(special))
    mag = rng.permutation(np.concatenate([special, random])).reshape(shape)
    return [
        [
            Case(f"log_compress(<{shape} magnitudes, zeros included>, eps={eps})", (mag, eps))
            for eps in epsilons
        ]
    ]


_LOG_COMPRESS = Exercise(
    name="log_compress",
    reference=_log_compress_reference,
    read=lambda value, case: expect_array(
        value,
        case.call,
        case.args[0].shape,
        "one decibel value per magnitude (keep the input's shape)",
    ),
    explain=lambda case, got, want, i: (
        "at index {} (mag = {:.6g}) expected {} dB, got {} dB".format(
            i, case.args[0][i], *show_numbers(want[i], got[i])
        )
    ),
    rule="decibels of a magnitude are 20 * log10(mag + eps)",
    hidden=_hidden_log_compress,
    rtol=1e-5,
    atol=1e-4,
    mistakes=(
        Mistake(
            "your values are half the expected: 10 * log10 is for power (squared "
            "magnitude); for magnitudes use 20 * log10",
            lambda mag, eps: 10 * np.log10(mag + eps),
        ),
        Mistake(
            "some values are -inf or NaN: log10(0) is -inf, so add eps to the magnitude "
            "before taking the log",
            lambda mag, eps: 20 * np.log10(mag),
            recognise=lambda got, want, case: not np.isfinite(got).all(),
        ),
        Mistake(
            "use log10 (decibels), not the natural log",
            lambda mag, eps: 20 * np.log(mag + eps),
        ),
        Mistake(
            "add eps to the magnitude (mag + eps) rather than clipping it at eps",
            lambda mag, eps: 20 * np.log10(np.maximum(mag, eps)),
        ),
        Mistake(
            "use the eps you are given, not a fixed 1e-5",
            lambda mag, eps: 20 * np.log10(mag + 1e-5),
        ),
    ),
)


@exercise_check(_LOG_COMPRESS)
def check_log_compress(fn: Callable) -> str:
    """Check ``fn(mag, eps) -> 20 log10(mag + eps)`` on magnitudes that include zeros.

    Chapter: book/01_cqt_features.md
    """
    rng = np.random.default_rng(1)
    # zeros, and a magnitude exactly at each eps (where adding and clipping differ most)
    special = [0.0, 1e-5, 1e-3, 1.0, 10.0]
    mag = np.concatenate([special, rng.exponential(0.1, 64 - len(special))]).reshape(8, 8)
    cases = [
        Case(f"log_compress(<(8, 8) magnitudes, zeros included>, eps={eps})", (mag, eps))
        for eps in (1e-5, 1e-3)
    ]
    _LOG_COMPRESS.grade(fn, cases)
    return "matches timbrelab.features.log_magnitude, zeros included"


# --- exercise 4: signal-to-noise ratio


def _energy(x: np.ndarray) -> float:
    return float(np.sum(x**2))


def _hidden_snr_db(rng: np.random.Generator) -> list[list[Case]]:
    """Grading cases: a random two-partial tone, estimated with noise, scaled, scaled with
    noise, and as silence (exactly 0 dB)."""
    t = np.arange(int(rng.integers(2000, 6000))) / 8000
    f0, gain = rng.uniform(100, 400), rng.uniform(0.1, 0.5)
    reference = np.sin(2 * np.pi * f0 * t) + gain * np.sin(2 * np.pi * 3 * f0 * t)
    scale = round(float(rng.uniform(0.2, 0.9)), 2)
    estimates = {
        "reference + noise": reference + rng.uniform(0.005, 0.05) * rng.standard_normal(t.size),
        f"{scale} * reference": scale * reference,
        "2 * reference + noise": 2 * reference + 0.3 * rng.standard_normal(t.size),
        "zeros": np.zeros_like(reference),
    }
    return [[Case(f"snr_db(reference, {label})", (reference, e)) for label, e in estimates.items()]]


_SNR_DB = Exercise(
    name="snr_db",
    reference=solution_snr_db,
    read=lambda value, case: expect_number(value, case.call, "the SNR in dB"),
    explain=lambda case, got, want, i: "should be {} dB, got {} dB".format(
        *show_numbers(want, got)
    ),
    rule="SNR = 10 * log10( sum(reference**2) / sum((reference - estimate)**2) )",
    hidden=_hidden_snr_db,
    rtol=1e-6,
    atol=1e-6,
    mistakes=(
        Mistake(
            "twice the expected: sums of squares are energies already, so take 10 * log10 of "
            "their ratio (20 * log10 is for ratios of amplitudes)",
            lambda r, e: 20 * np.log10(_energy(r) / _energy(r - e)),
        ),
        Mistake(
            "half the expected: a norm (or an RMS) is an amplitude, so take 20 * log10 of a "
            "ratio of norms, or 10 * log10 of the ratio of energies",
            lambda r, e: 10 * np.log10(np.linalg.norm(r) / np.linalg.norm(r - e)),
        ),
        Mistake(
            "the ratio is upside down: signal energy over noise energy",
            lambda r, e: 10 * np.log10(_energy(r - e) / _energy(r)),
        ),
        Mistake(
            "the signal energy is the reference's, not the estimate's: "
            "sum(reference**2) / sum((reference - estimate)**2)",
            lambda r, e: 10 * np.log10(_energy(e) / _energy(r - e)),
        ),
        Mistake(
            "this is the ratio of energies itself: convert it to decibels with 10 * log10",
            lambda r, e: _energy(r) / _energy(r - e),
        ),
    ),
)


@exercise_check(_SNR_DB)
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
        "zeros": np.zeros_like(reference),  # the error is the whole signal: exactly 0 dB
    }
    cases = [Case(f"snr_db(reference, {label})", (reference, e)) for label, e in estimates.items()]
    _SNR_DB.grade(fn, cases)
    return f"SNR matches on {len(cases)} reference/estimate pairs (0 dB included)"
