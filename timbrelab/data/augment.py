"""Cheap "room and recording" augmentation of rendered stems.

FluidSynth stems are dry and flat: every note stops dead at its offset and every instrument has
the soundfont's exact spectral balance. Real recordings (Bach10 was recorded in a room with
close microphones) have reverb tails that smear offsets and blur onsets, and microphones and
rooms that tilt the spectrum. :func:`room_and_eq` adds both, per stem, so a mixture's stems
still sum to its mix and its labels (the score) stay what was played.

Chapter: book/02_focal_loss_amt.md
"""

from __future__ import annotations

import numpy as np
from scipy.signal import bilinear, fftconvolve, lfilter

#: Range of the room's reverberation time (seconds for the tail to fall by 60 dB).
RT60_RANGE = (0.2, 1.2)
#: Range of the room's direct-to-reverberant energy ratio, dB.
DRR_RANGE_DB = (-3.0, 12.0)
#: Per-stem deviation of the direct-to-reverberant ratio from the room's, dB (+-).
STEM_DRR_SPREAD_DB = 2.0
#: Range of the shelf gain of the per-stem EQ, dB.
EQ_GAIN_DB = 6.0
#: Range of the shelf's corner frequency, Hz.
EQ_CORNER_HZ = (200.0, 4000.0)


def _shelf(gain_db: float, corner_hz: float, high: bool, sample_rate: int) -> tuple:
    """First-order shelf ``(b, a)``: ``gain_db`` below (low shelf) or above (high) the corner."""
    g = 10 ** (gain_db / 20)
    # pre-warp so the digital corner lands at corner_hz after the bilinear transform
    w = 2 * sample_rate * np.tan(np.pi * min(corner_hz, 0.45 * sample_rate) / sample_rate)
    num = [g, w] if high else [1.0, g * w]  # H(s) = (g s + w) / (s + w) or (s + g w) / (s + w)
    return bilinear(num, [1.0, w], fs=sample_rate)


def _impulse_response(
    rt60: float, drr_db: float, damping_hz: float, predelay: float, sample_rate: int,
    rng: np.random.Generator,
) -> np.ndarray:  # fmt: skip
    """Unit-energy IR: a direct impulse at 0, then exponentially decaying low-passed noise."""
    n = max(int(rt60 * sample_rate), 2)
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * np.exp(-3 * np.log(10) * t / rt60)  # -60 dB at rt60
    tail[: int(predelay * sample_rate) + 1] = 0.0  # the first reflections arrive after the direct
    # walls and air absorb highs: a one-pole low-pass dulls the tail (not the direct sound)
    pole = np.exp(-2 * np.pi * damping_hz / sample_rate)
    tail = lfilter([1 - pole], [1.0, -pole], tail)
    tail *= np.sqrt(10 ** (-drr_db / 10) / max(np.sum(tail**2), 1e-12))
    tail[0] = 1.0  # the direct sound, at lag 0 so onsets stay on their labels
    return tail / np.sqrt(np.sum(tail**2))


def room_and_eq(stems: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Put all stems of a mixture in one random room, each through its own random EQ.

    The room (reverberation time ``RT60`` in 0.2..1.2 s, direct-to-reverberant ratio in
    -3..12 dB, tail damping 2..8 kHz, pre-delay 5..25 ms) is drawn once; each stem gets its own
    noise realisation of that room's impulse response, a DRR within +-2 dB of the room's
    (instruments stand at different spots), and a first-order low- or high-shelf with gain
    within +-6 dB and corner 200..4000 Hz (microphone and placement colour). The IR starts with
    the direct sound at lag 0, so onsets stay where the labels put them; tails past the end are
    cut, so the length is unchanged. IRs have unit energy, so stems keep roughly their level
    and balance; the caller rescales the mix (one factor for all stems) to avoid clipping.

    Parameters
    ----------
    stems : np.ndarray ``(K, N)``
        Dry stems.
    sample_rate : int
    rng : numpy.random.Generator
        Source of all randomness (same generator state -> same output).

    Returns
    -------
    np.ndarray ``(K, N)`` float32

    Chapter: book/02_focal_loss_amt.md
    """
    stems = np.asarray(stems)
    if stems.ndim != 2:
        raise ValueError(f"room_and_eq: stems must be (K, N), got shape {stems.shape}")
    if sample_rate <= 0:
        raise ValueError(f"room_and_eq: sample_rate must be > 0, got {sample_rate}")
    k, n = stems.shape
    rt60 = rng.uniform(*RT60_RANGE)
    drr_db = rng.uniform(*DRR_RANGE_DB)
    damping_hz = rng.uniform(2000.0, 8000.0)
    predelay = rng.uniform(0.005, 0.025)
    irs = []
    for _ in range(k):
        ir = _impulse_response(
            rt60, drr_db + rng.uniform(-STEM_DRR_SPREAD_DB, STEM_DRR_SPREAD_DB), damping_hz,
            predelay, sample_rate, rng,
        )  # fmt: skip
        # the shelf is linear: filtering the IR instead of the stem costs nothing extra
        b, a = _shelf(
            rng.uniform(-EQ_GAIN_DB, EQ_GAIN_DB), np.exp(rng.uniform(*np.log(EQ_CORNER_HZ))),
            bool(rng.integers(2)), sample_rate,
        )  # fmt: skip
        irs.append(lfilter(b, a, ir))
    irs = np.stack(irs)
    wet = fftconvolve(stems.astype(np.float64), irs, axes=-1)[:, :n]
    return wet.astype(np.float32)
