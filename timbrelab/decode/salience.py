"""Pitch salience on a CQT grid -> frame-level pitches -> notes (Timbre-Trap, Chapter 3).

Timbre-Trap's transcription is a salience map over the CQT's bins (several bins per semitone),
not one row per key. Following the paper (section 4.1), a bin counts as a pitch in a frame when
it is a local peak along frequency and its salience is at least 0.5; each peak is then rounded
to the nearest key, and the keys' rolls go through Chapter 2's note decoder.

Chapter: book/03_timbre_trap.md
"""

from __future__ import annotations

import numpy as np

from timbrelab.constants import FRAME_RATE, MIDI_MIN, N_PITCHES
from timbrelab.notes import Note

#: Salience a peak needs to count as a pitch (the paper's threshold).
PEAK_THRESHOLD = 0.5


def salience_peaks(salience: np.ndarray, threshold: float = PEAK_THRESHOLD) -> np.ndarray:
    """Bins that are local maxima along frequency with salience at least ``threshold``.

    A peak is strictly greater than both neighbours along axis ``-2`` (the first and last bins
    compare with 0 outside), so a flat top of equal values gives no peak, as in
    ``scipy.signal.argrelmax``.

    Parameters
    ----------
    salience : (..., F, T) array
    threshold : float

    Returns
    -------
    (..., F, T) bool array

    Chapter: book/03_timbre_trap.md
    """
    s = np.asarray(salience, dtype=np.float64)
    if s.ndim < 2:
        raise ValueError(f"salience_peaks: salience must be (..., F, T), got shape {s.shape}")
    padded = np.pad(s, [(0, 0)] * (s.ndim - 2) + [(1, 1), (0, 0)])
    centre = padded[..., 1:-1, :]
    return (centre > padded[..., :-2, :]) & (centre > padded[..., 2:, :]) & (centre >= threshold)


def bin_pitches(frequencies: np.ndarray) -> np.ndarray:
    """Nearest MIDI key of each bin centre (``-1`` for 0 Hz and anything off the 88 keys).

    Parameters
    ----------
    frequencies : (F,) array of Hz

    Chapter: book/03_timbre_trap.md
    """
    f = np.asarray(frequencies, dtype=np.float64)
    with np.errstate(divide="ignore"):
        keys = np.rint(69 + 12 * np.log2(f / 440.0))
    on_keyboard = np.isfinite(keys) & (keys >= MIDI_MIN) & (keys < MIDI_MIN + N_PITCHES)
    return np.where(on_keyboard, keys, -1).astype(np.int64)


def salience_to_pitch_roll(
    salience: np.ndarray, frequencies: np.ndarray, threshold: float = PEAK_THRESHOLD
) -> np.ndarray:
    """Peak salience per key: ``(F, T)`` -> ``(88, T)``, 0 where a key has no peak.

    Several bins round to one key (5 per semitone at 60 bins per octave); the key takes the
    largest of their peaks.

    Chapter: book/03_timbre_trap.md
    """
    s = np.asarray(salience, dtype=np.float32)
    keys = bin_pitches(frequencies)
    if s.ndim != 2 or s.shape[0] != len(keys):
        raise ValueError(
            f"salience_to_pitch_roll: salience must be ({len(keys)}, T), got {s.shape}"
        )
    peaks = np.where(salience_peaks(s, threshold), s, 0.0)
    roll = np.zeros((N_PITCHES, s.shape[1]), np.float32)
    on = keys >= 0
    np.maximum.at(roll, keys[on] - MIDI_MIN, peaks[on])
    return roll


def resample_roll(roll: np.ndarray, from_rate: float, to_rate: float = FRAME_RATE) -> np.ndarray:
    """Max-pool a roll ``(P, T)`` at ``from_rate`` frames/s onto a grid of ``to_rate`` frames/s.

    Target frame ``i`` covers ``[i, i + 1) / to_rate`` seconds and takes the largest value of
    the source frames that start inside it, so a short pitch survives a coarser grid.

    Chapter: book/03_timbre_trap.md
    """
    roll = np.asarray(roll, dtype=np.float32)
    n_out = max(1, int(np.ceil(roll.shape[1] * to_rate / from_rate)))
    target = (np.arange(roll.shape[1]) * to_rate / from_rate).astype(np.int64)
    target = np.minimum(target, n_out - 1)
    out = np.zeros((roll.shape[0], n_out), np.float32)
    np.maximum.at(out.T, target, roll.T)
    return out


def salience_to_notes(
    salience: np.ndarray,
    frequencies: np.ndarray,
    frame_rate: float,
    threshold: float = PEAK_THRESHOLD,
    **decoder_options: float,
) -> list[Note]:
    """Notes of a salience map: peaks -> keys -> Chapter 2's decoder.

    The key roll is max-pooled onto the decoder's grid (``FRAME_RATE``) and decoded by
    :func:`~timbrelab.decode.posteriorgram_to_notes` with no onset head: notes start where
    the salience jumps (inferred onsets) or, with the melodia trick, wherever energy is left.

    Parameters
    ----------
    salience : (F, T) array
        In [0, 1].
    frequencies : (F,) array
        Bin centres in Hz.
    frame_rate : float
        Frames per second of ``salience``.
    threshold : float
        Peak threshold; also the decoder's frame threshold.
    **decoder_options
        Other :func:`~timbrelab.decode.posteriorgram_to_notes` settings.

    Chapter: book/03_timbre_trap.md
    """
    from timbrelab.decode.transcription import posteriorgram_to_notes

    roll = resample_roll(salience_to_pitch_roll(salience, frequencies, threshold), frame_rate)
    options = {"frame_threshold": threshold, **decoder_options}
    return posteriorgram_to_notes(roll, np.zeros_like(roll), **options)
