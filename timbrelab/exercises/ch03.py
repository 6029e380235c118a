"""Exercises of Chapter 3 (Timbre-Trap): checks and reference solutions.

1. ``salience_loss(estimate, target)``: the transcription loss of eq. 1, a squared error whose
   active bins weigh as much as their frame's inactive ones, as
   :func:`timbrelab.losses.timbre_trap.salience_loss`.
2. ``frequency_peaks(salience, threshold)``: the bins a salience map's decoder keeps, strict
   local maxima along frequency at or above a threshold, as
   :func:`timbrelab.decode.salience.salience_peaks`.
3. ``si_sdr(reference, estimate)``: the scale-invariant signal-to-distortion ratio of a
   reconstruction in dB, as :func:`timbrelab.metrics.sdr` with ``scale_invariant=True``.

See :mod:`timbrelab.exercises` for what a check prints, returns and raises.

Chapter: book/03_timbre_trap.md
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from timbrelab.decode.salience import salience_peaks
from timbrelab.exercises import (
    Case,
    Exercise,
    Mistake,
    exercise_check,
    expect_mask,
    expect_number,
    mismatches,
    show_numbers,
)
from timbrelab.losses.timbre_trap import salience_loss as _package_salience_loss
from timbrelab.metrics import sdr

# --- reference solutions (shown in the chapter behind a toggle) -------------------------------


def solution_salience_loss(estimate: np.ndarray, target: np.ndarray) -> float:
    """Reference: eq. 1 for a salience ``estimate`` and binary ``target``, both ``(B, F, T)``.

    ``gamma = Y * (sum_F(1 - Y) / sum_F(Y)) + (1 - Y)``, with the sums over the frequency axis
    of each item and frame, weights the squared error; the weighted errors are summed over
    frequency and averaged over items and frames. A frame without an active bin divides by 1,
    not 0: all its bins weigh 1.

    Chapter: book/03_timbre_trap.md
    """
    positives = target.sum(axis=1, keepdims=True)
    negatives = (1 - target).sum(axis=1, keepdims=True)
    gamma = target * (negatives / np.maximum(positives, 1)) + (1 - target)
    return float(np.mean(np.sum(gamma * (target - estimate) ** 2, axis=1)))


def solution_frequency_peaks(salience: np.ndarray, threshold: float) -> np.ndarray:
    """Reference: ``(F, T)`` bool, True where a bin is greater than the bins just below and
    above it in its frame (bins outside the map count as 0) and at least ``threshold``; a flat
    top of equal bins gives no peak.

    Chapter: book/03_timbre_trap.md
    """
    padded = np.pad(salience, ((1, 1), (0, 0)))
    lower, higher = padded[:-2], padded[2:]
    return (salience > lower) & (salience > higher) & (salience >= threshold)


def solution_si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Reference: project the estimate on the reference, ``s_t = (<s_hat, s> / |s|^2) s``, and
    return ``10 log10(|s_t|^2 / |s_hat - s_t|^2)``, so rescaling the estimate changes nothing.

    Chapter: book/03_timbre_trap.md
    """
    projection = np.dot(estimate, reference) / np.dot(reference, reference) * reference
    return float(10 * np.log10(np.sum(projection**2) / np.sum((estimate - projection) ** 2)))


# --- checks --------------------------------------------------------------------------------


# --- exercise 1: the balanced salience loss

_LOSS_RTOL, _LOSS_ATOL = 1e-5, 1e-7  # float32 arithmetic, whichever way it is summed

#: Axes over which a ratio pooled over more than one frame is counted (a typical mistake):
#: the whole batch, each item, each frame index across the batch. Eq. 1 counts over axis 1.
_POOLINGS = ((0, 1, 2), (1, 2), (0, 1))


def _ratio(
    target: np.ndarray, axes: int | tuple[int, ...], at_least_one: bool = True
) -> np.ndarray:
    """Inactive over active bins of ``target``, counted over ``axes`` (kept, to broadcast).

    With ``at_least_one`` it divides by at least 1; without, a frame with no active bin
    divides by 0 (a typical mistake): its ratio is inf, and its weights ``0 * inf`` NaN.
    """
    positives = target.sum(axis=axes, keepdims=True)
    negatives = (1 - target).sum(axis=axes, keepdims=True)
    return negatives / (np.maximum(positives, 1) if at_least_one else positives)


def _loss_weighted_by(weights: Callable[[np.ndarray], np.ndarray]) -> Callable:
    """The loss with other weights, ``weights(target) -> gamma`` (a typical mistake)."""

    def answer(estimate, target):
        return float(np.mean(np.sum(weights(target) * (target - estimate) ** 2, axis=1)))

    return answer


def _pooled_loss(axes: tuple[int, ...]) -> Callable:
    """The loss with the ratio counted over ``axes``, not per item and frame."""
    return _loss_weighted_by(lambda y: y * _ratio(y, axes) + (1 - y))


def _pooled_over_frames(got: float, want: float, case: Case) -> bool:
    """The loss whose ratio is counted over several frames, any of ``_POOLINGS``."""
    return any(
        not mismatches(got, _pooled_loss(axes)(*case.args), rtol=_LOSS_RTOL, atol=_LOSS_ATOL)
        for axes in _POOLINGS
    )


def _silent_frames(target: np.ndarray) -> int:
    """How many (item, frame) pairs of ``target`` have no active bin."""
    return int(np.sum(target.sum(axis=1) == 0))


def _targets(rng: np.random.Generator, shape: tuple[int, int, int], silent: int) -> np.ndarray:
    """A binary ``(B, F, T)`` target with 1 to 4 active bins per frame, but none in ``silent``
    frames drawn at random."""
    items, _, frames = shape
    active = rng.integers(1, 5, (items, frames))
    active.flat[rng.choice(items * frames, silent, replace=False)] = 0
    ranks = rng.random(shape).argsort(axis=1).argsort(axis=1)  # each frame's bins, shuffled
    return (ranks < active[:, None, :]).astype(np.float32)


def _salience_case(
    rng: np.random.Generator, shape: tuple[int, int, int], silent: int, estimate: str
) -> Case:
    """A target of ``shape`` with ``silent`` silent frames and a ``"random"`` or ``"zero"``
    estimate."""
    target = _targets(rng, shape, silent)
    values = rng.random(shape, np.float32) if estimate == "random" else np.zeros_like(target)
    frames = f"{silent} silent frames" if silent else "every frame with active bins"
    call = f"salience_loss(<{estimate} estimate {shape}>, <target {shape}, {frames}>)"
    return Case(call, (values, target))


def _salience_stages(
    rng: np.random.Generator, shapes: Sequence[tuple[int, int, int]]
) -> list[list[Case]]:
    """Random estimates for targets of ``shapes[0]`` and ``shapes[1]`` whose every frame has
    active bins (the formula); then, a stage of its own so that a formula mistake is named
    first, a target of ``shapes[2]`` with a quarter of its frames silent (the zero
    denominator), for a random estimate and for an estimate of zeros."""
    formula = [_salience_case(rng, shape, 0, "random") for shape in shapes[:2]]
    items, _, frames = shapes[2]
    silent = max(1, items * frames // 4)
    silence = [_salience_case(rng, shapes[2], silent, e) for e in ("random", "zero")]
    return [formula, silence]


def _hidden_salience_loss(rng: np.random.Generator) -> list[list[Case]]:
    """Grading cases: the check's stages for batches of other shapes (more bins than any the
    check shows, and at least two items, so that a ratio pooled over the batch differs)."""
    shapes = [
        (int(rng.integers(2, 5)), int(rng.integers(30, 72)), int(rng.integers(3, 12)))
        for _ in range(3)
    ]
    return _salience_stages(rng, shapes)


def _explain_salience(case: Case, got: float, want: float, index: tuple) -> str:
    target = case.args[1]
    shown_want, shown_got = show_numbers(want, got)
    return (
        f"expected {shown_want}, got {shown_got} ({target.shape[0] * target.shape[2]} frames, "
        f"{_silent_frames(target)} without an active bin)"
    )


_SALIENCE_LOSS = Exercise(
    name="salience_loss",
    reference=lambda estimate, target: float(
        _package_salience_loss(torch.from_numpy(estimate), torch.from_numpy(target))
    ),
    read=lambda value, case: expect_number(
        value, case.call, "the loss, summed over frequency and averaged over items and frames"
    ),
    explain=_explain_salience,
    rule=(
        "gamma = Y * sum_F(1 - Y) / max(sum_F(Y), 1) + (1 - Y), the sums over frequency "
        "(axis 1) of each item and frame; loss = sum over F of gamma * (Y - Y')**2, averaged "
        "over items and frames"
    ),
    rtol=_LOSS_RTOL,
    atol=_LOSS_ATOL,
    hidden=_hidden_salience_loss,
    mistakes=(
        Mistake(
            "this is the plain squared error: scale the error of every active bin (Y = 1) by "
            "its frame's ratio of inactive to active bins, gamma = Y * sum_F(1 - Y) / sum_F(Y) "
            "+ (1 - Y)",
            _loss_weighted_by(np.ones_like),
        ),
        Mistake(
            "the ratio of inactive to active bins is counted over more than one frame: count "
            "it per item and frame, summing over frequency only (axis=1, keepdims=True)",
            _pooled_loss(_POOLINGS[0]),
            recognise=_pooled_over_frames,
        ),
        Mistake(
            "your loss is 1/F of the expected: sum the weighted errors over frequency (axis 1), "
            "then average over items and frames",
            lambda estimate, target: solution_salience_loss(estimate, target) / target.shape[1],
        ),
        Mistake(
            "the weights are inverted: the active bins (Y = 1) get the ratio "
            "sum_F(1 - Y) / sum_F(Y), the inactive bins weight 1",
            _loss_weighted_by(lambda y: y + (1 - y) * _ratio(y, 1)),
        ),
        Mistake(
            "your loss is NaN or inf when a frame has no active bin: its ratio divides by "
            "sum_F(Y) = 0. Divide by max(sum_F(Y), 1), so that every bin of a silent frame "
            "weighs 1",
            _loss_weighted_by(lambda y: y * _ratio(y, 1, at_least_one=False) + (1 - y)),
            recognise=lambda got, want, case: (
                _silent_frames(case.args[1]) > 0 and not np.isfinite(got)
            ),
        ),
        Mistake(
            "the frames without an active bin add nothing to your loss, but their bins weigh "
            "1 (gamma = 1 - Y = 1 there): rather than replacing NaN by 0, divide by "
            "max(sum_F(Y), 1)",
            _loss_weighted_by(
                lambda y: np.nan_to_num(y * _ratio(y, 1, at_least_one=False) + (1 - y))
            ),
        ),
    ),
)


@exercise_check(_SALIENCE_LOSS)
def check_salience_loss(fn: Callable) -> str:
    """Check ``fn(estimate (B, F, T), target (B, F, T)) -> float``, the loss of eq. 1.

    Chapter: book/03_timbre_trap.md
    """
    stages = _salience_stages(np.random.default_rng(7), [(2, 24, 6), (1, 12, 5), (3, 16, 4)])
    _SALIENCE_LOSS.grade(fn, *stages)
    return (
        f"matches timbrelab.losses.timbre_trap.salience_loss on {sum(map(len, stages))} "
        "batches (silent frames included)"
    )


# --- exercise 2: peaks along frequency


def _peaks_like(below: Callable, above: Callable, at_least: Callable) -> Callable:
    """Peak picking with other comparisons (a typical mistake): ``below(x, lower bin)``,
    ``above(x, higher bin)`` and ``at_least(x, threshold)`` each give a bool mask."""

    def answer(salience, threshold):
        padded = np.pad(salience, ((1, 1), (0, 0)))
        lower, higher = padded[:-2], padded[2:]
        return below(salience, lower) & above(salience, higher) & at_least(salience, threshold)

    return answer


def _interior_only(salience: np.ndarray, threshold: float) -> np.ndarray:
    """Peaks found only between the lowest and the highest bin (as with slices)."""
    inner = salience[1:-1]
    peaks = (inner > salience[:-2]) & (inner > salience[2:]) & (inner >= threshold)
    return np.pad(peaks, ((1, 1), (0, 0)))


def _explain_peaks(case: Case, got: np.ndarray, want: np.ndarray, index: tuple) -> str:
    row, frame = index
    first = max(row - 2, 0)
    around = np.round(case.args[0][first : row + 3, frame], 3).tolist()
    return (
        f"bin {row} of frame {frame} should be {bool(want[index])}, got {bool(got[index])} "
        f"(bins {first}..{first + len(around) - 1} of that frame hold {around})"
    )


#: Hand-made salience frames, one per row (10 bins, threshold 0.5): every boundary a peak
#: picker can get wrong. The exercise takes them as columns, ``(F, T)``.
_CRAFTED_FRAMES = np.array(
    [
        [0.0, 0.9, 0.2, 0.1, 0.0, 0.0, 0.7, 0.8, 0.3, 0.0],  # two single peaks
        [0.6, 0.3, 0.0, 0.0, 0.4, 0.0, 0.0, 0.2, 0.3, 0.9],  # a peak at each end; one too low
        [0.0, 0.6, 0.6, 0.1, 0.0, 0.0, 0.8, 0.8, 0.8, 0.0],  # flat tops of 2 and 3 bins: none
        [0.0, 0.5, 0.2, 0.0, 0.3, 0.0, 0.1, 0.55, 0.5, 0.1],  # peak AT threshold; 0.5 on a slope
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95],  # a ramp: one peak, its top bin
        [0.7, 0.7, 0.0, 0.1, 0.5, 0.5, 0.0, 0.2, 0.0, 0.0],  # flat tops at an end, AT threshold
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # a silent frame
    ]
)


def _random_salience(rng: np.random.Generator, bins: int, frames: int) -> np.ndarray:
    """Random salience in [0, 1], smoothed over three bins so that it has peaks and slopes."""
    noise = rng.random((bins + 2, frames))
    return (noise[:-2] + noise[1:-1] + noise[2:]) / 3


def _peaks_case(salience: np.ndarray, threshold: float, label: str) -> Case:
    return Case(
        f"frequency_peaks(<{label} {salience.shape} salience>, threshold={threshold:.4g})",
        (salience, threshold),
    )


def _hidden_frequency_peaks(rng: np.random.Generator) -> list[list[Case]]:
    """Grading cases: the hand-made frames shuffled and rescaled (with their threshold, so every
    boundary stays), then a random salience map of another shape and threshold."""
    scale, offset = round(float(rng.uniform(0.5, 1.0)), 2), round(float(rng.uniform(0, 0.05)), 2)
    crafted = (scale * rng.permutation(_CRAFTED_FRAMES) + offset).T
    threshold = scale * 0.5 + offset  # computed as the frames' 0.5 was: exactly equal to it
    smooth = _random_salience(rng, int(rng.integers(30, 60)), int(rng.integers(10, 40)))
    random_threshold = round(float(rng.uniform(0.3, 0.6)), 2)
    return [
        [
            _peaks_case(crafted, threshold, "a hand-made"),
            _peaks_case(smooth, random_threshold, "a random"),
        ]
    ]


_FREQUENCY_PEAKS = Exercise(
    name="frequency_peaks",
    reference=salience_peaks,
    read=lambda value, case: expect_mask(
        value, case.call, case.args[0].shape, "a boolean mask of the input's shape (True at peaks)"
    ),
    explain=_explain_peaks,
    rule=(
        "a peak is a bin > the bins just below and above it in its frame (along axis 0; bins "
        "outside the map count as 0) and >= threshold"
    ),
    hidden=_hidden_frequency_peaks,
    mistakes=(
        Mistake(
            "every bin at or above the threshold is marked: a peak must also be greater than "
            "the bins just below and above it",
            lambda salience, threshold: salience >= threshold,
        ),
        Mistake(
            "peaks below the threshold are marked too: also require salience >= threshold",
            _peaks_like(np.greater, np.greater, lambda x, t: np.ones(x.shape, bool)),
        ),
        Mistake(
            "a peak exactly at the threshold is left out: compare with salience >= threshold, "
            "not >",
            _peaks_like(np.greater, np.greater, np.greater),
        ),
        Mistake(
            "every bin of a flat top is marked: a peak is strictly greater (>) than both "
            "neighbouring bins, so equal bins give no peak",
            _peaks_like(np.greater_equal, np.greater_equal, np.greater_equal),
        ),
        Mistake(
            "a flat top (equal neighbouring bins) is marked at its first bin, as Chapter 2's "
            "onsets are; here it gives no peak: compare with > on both sides",
            _peaks_like(np.greater, np.greater_equal, np.greater_equal),
        ),
        Mistake(
            "the lowest or the highest bin is handled wrongly: a peak can sit at either end; "
            "treat the bins outside the map as 0",
            _interior_only,
            recognise=lambda got, want, case: np.array_equal(got[1:-1], want[1:-1]),
        ),
        Mistake(
            "you found maxima over time (axis 1): salience peaks are along frequency (axis 0), "
            "within each frame",
            lambda salience, threshold: solution_frequency_peaks(salience.T, threshold).T,
        ),
    ),
)


@exercise_check(_FREQUENCY_PEAKS)
def check_frequency_peaks(fn: Callable) -> str:
    """Check ``fn(salience (F, T), threshold) -> (F, T) bool``, the peaks along frequency.

    Chapter: book/03_timbre_trap.md
    """
    smooth = _random_salience(np.random.default_rng(8), 24, 30)
    cases = [
        _peaks_case(_CRAFTED_FRAMES.T, 0.5, "a hand-made"),
        _peaks_case(smooth, 0.4, "a random"),
    ]
    _FREQUENCY_PEAKS.grade(fn, cases)
    return (
        f"peaks match timbrelab.decode.salience.salience_peaks on {len(cases)} salience maps "
        "(flat tops, both ends and peaks exactly at the threshold included)"
    )


# --- exercise 3: scale-invariant SDR

_SDR_RTOL, _SDR_ATOL = 1e-6, 1e-6


def _energy(x: np.ndarray) -> float:
    return float(np.sum(x**2))


def _decibels(signal: np.ndarray, error: np.ndarray) -> float:
    """``10 log10`` of the energy of ``signal`` over that of ``error``."""
    return 10 * np.log10(_energy(signal) / _energy(error))


def _scale_on_reference(reference: np.ndarray, estimate: np.ndarray) -> float:
    """The projection's scale, ``<s_hat, s> / |s|^2``."""
    return float(np.dot(estimate, reference) / np.dot(reference, reference))


def _si_sdr_like(scale: Callable, error: Callable) -> Callable:
    """SI-SDR with another projection scale, ``scale(s, s_hat)``, or another error,
    ``error(s, s_hat, s_t)`` (a typical mistake)."""

    def answer(reference, estimate):
        projection = scale(reference, estimate) * reference
        return _decibels(projection, error(reference, estimate, projection))

    return answer


def _si_sdr_cases(
    rng: np.random.Generator, lengths: tuple[int, int], scales: tuple[float, float]
) -> list[Case]:
    """A two-partial tone of ``lengths[0]`` samples estimated as ``scales[0]`` times itself
    with a little noise (where SDR and SI-SDR differ most), ``scales[1] < 0`` times itself with
    more noise, and itself with some noise; then a tone of ``lengths[1]`` samples with loud
    noise."""
    cases = []
    for n, estimates in (
        (lengths[0], ((scales[0], 0.01), (scales[1], 0.3), (1.0, 0.05))),
        (lengths[1], ((1.0, 0.5),)),
    ):
        t = np.arange(n) / 8000
        f0 = rng.uniform(100, 400)
        reference = np.sin(2 * np.pi * f0 * t) + 0.3 * np.sin(2 * np.pi * 3 * f0 * t)
        for scale, noise in estimates:
            estimate = scale * reference + noise * rng.standard_normal(n)
            scaled = "reference" if scale == 1 else f"{scale:g} * reference"
            call = f"si_sdr(<a tone of {n} samples>, {scaled} + {noise:g} * noise)"
            cases.append(Case(call, (reference, estimate)))
    return cases


def _hidden_si_sdr(rng: np.random.Generator) -> list[list[Case]]:
    """Grading cases: the check's estimates for tones of other lengths and other scales."""
    lengths = (int(rng.integers(1500, 3500)), int(rng.integers(400, 900)))
    scales = (round(float(rng.uniform(0.2, 0.8)), 2), -round(float(rng.uniform(1.5, 3.0)), 2))
    return [_si_sdr_cases(rng, lengths, scales)]


def _explain_si_sdr(case: Case, got: float, want: float, index: tuple) -> str:
    shown_want, shown_got = show_numbers(want, got)
    scale = _scale_on_reference(*case.args)
    return f"should be {shown_want} dB, got {shown_got} dB (<s_hat, s> / |s|^2 = {scale:.4g})"


_SI_SDR = Exercise(
    name="si_sdr",
    reference=lambda reference, estimate: sdr(reference, estimate, scale_invariant=True),
    read=lambda value, case: expect_number(value, case.call, "the SI-SDR in dB"),
    explain=_explain_si_sdr,
    rule="s_t = (<s_hat, s> / |s|^2) * s, SI-SDR = 10 * log10(|s_t|^2 / |s_hat - s_t|^2)",
    rtol=_SDR_RTOL,
    atol=_SDR_ATOL,
    hidden=_hidden_si_sdr,
    mistakes=(
        Mistake(
            "this is the plain SDR, 10 log10(|s|^2 / |s - s_hat|^2), which a rescaled estimate "
            "lowers: first project the estimate on the reference, s_t = (<s_hat, s> / |s|^2) s",
            lambda reference, estimate: _decibels(reference, reference - estimate),
        ),
        Mistake(
            "twice the expected: |s_t|^2 and |s_hat - s_t|^2 are energies already, so take "
            "10 * log10 of their ratio (20 * log10 is for ratios of amplitudes)",
            lambda reference, estimate: 2 * solution_si_sdr(reference, estimate),
        ),
        Mistake(
            "half the expected: a norm |x| is an amplitude, so take 10 * log10 of the ratio of "
            "SQUARED norms (energies), or 20 * log10 of the ratio of norms",
            lambda reference, estimate: solution_si_sdr(reference, estimate) / 2,
        ),
        Mistake(
            "the error is what the estimate has beyond the projection, s_hat - s_t, not "
            "s - s_t (that is only the projection's error of scale)",
            _si_sdr_like(_scale_on_reference, lambda s, s_hat, s_t: s - s_t),
        ),
        Mistake(
            "the error is s_hat - s_t, the estimate minus its projection, not s_hat - s (the "
            "error of plain SDR, which a rescaled estimate increases)",
            _si_sdr_like(_scale_on_reference, lambda s, s_hat, s_t: s_hat - s),
        ),
        Mistake(
            "the projection's scale divides by the reference's energy: <s_hat, s> / |s|^2, not "
            "<s_hat, s> / |s_hat|^2",
            _si_sdr_like(
                lambda s, s_hat: np.dot(s_hat, s) / np.dot(s_hat, s_hat),
                lambda s, s_hat, s_t: s_hat - s_t,
            ),
        ),
    ),
)


@exercise_check(_SI_SDR)
def check_si_sdr(fn: Callable) -> str:
    """Check ``fn(reference (N,), estimate (N,)) -> float``, the SI-SDR in dB.

    Chapter: book/03_timbre_trap.md
    """
    cases = _si_sdr_cases(np.random.default_rng(9), lengths=(4000, 1000), scales=(0.5, -2.0))
    _SI_SDR.grade(fn, cases)
    return (
        f"matches timbrelab.metrics.sdr(..., scale_invariant=True) on {len(cases)} estimates "
        "(rescaled, negatively scaled and noisy ones)"
    )
