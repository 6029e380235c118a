"""Salience peaks -> keys -> notes (Timbre-Trap's decoding)."""

from __future__ import annotations

import numpy as np
import pytest

from timbrelab.constants import FRAME_RATE
from timbrelab.decode.salience import (
    bin_pitches,
    resample_roll,
    salience_peaks,
    salience_to_notes,
    salience_to_pitch_roll,
)
from timbrelab.notes import midi_to_hz


def test_peaks_are_strict_local_maxima_at_or_above_the_threshold():
    column = np.array([0.6, 0.2, 0.5, 0.4, 0.7, 0.7, 0.1, 0.49, 0.3])[:, None]
    peaks = salience_peaks(column, threshold=0.5)[:, 0]
    # bin 0 (edge, above 0 outside), bin 2 (exactly 0.5); the 0.7 plateau and 0.49 are not
    assert np.flatnonzero(peaks).tolist() == [0, 2]
    with pytest.raises(ValueError, match="F, T"):
        salience_peaks(np.zeros(5))


def test_bins_round_to_keys_and_off_keyboard_bins_are_minus_one():
    freqs = np.array([0.0, 27.5, 440.0 * 2 ** (0.4 / 12), 440.0 * 2 ** (0.6 / 12), 20000.0])
    assert bin_pitches(freqs).tolist() == [-1, 21, 69, 70, -1]


def test_pitch_roll_takes_the_largest_peak_of_a_key():
    freqs = np.array([0.0, 430.0, 440.0, 450.0, 700.0, 880.0])  # bins 1-3 round to A4 (69)
    salience = np.array([[0.0], [0.6], [0.55], [0.8], [0.1], [0.9]])  # peaks: bins 1, 3, 5
    roll = salience_to_pitch_roll(salience, freqs)
    assert roll.shape == (88, 1)
    assert roll[69 - 21, 0] == pytest.approx(0.8) and roll[81 - 21, 0] == pytest.approx(0.9)
    assert np.count_nonzero(roll) == 2


def test_resampling_keeps_a_one_frame_blip():
    roll = np.zeros((1, 40), np.float32)
    roll[0, 17] = 0.9
    coarse = resample_roll(roll, from_rate=4 * FRAME_RATE, to_rate=FRAME_RATE)
    assert coarse.shape == (1, 10) and coarse[0, 4] == pytest.approx(0.9)
    assert np.count_nonzero(coarse) == 1


def test_a_steady_peak_becomes_one_note():
    frame_rate = 4000 / 48
    freqs = np.array([0.0, midi_to_hz(59), midi_to_hz(60), midi_to_hz(61), 2000.0])
    salience = np.zeros((5, round(2 * frame_rate)), np.float32)
    salience[2, round(0.5 * frame_rate) : round(1.5 * frame_rate)] = 0.9  # C4, 0.5 s to 1.5 s
    (note,) = salience_to_notes(salience, freqs, frame_rate)
    assert note.pitch == 60
    assert note.onset == pytest.approx(0.5, abs=0.02)
    assert note.offset == pytest.approx(1.5, abs=0.03)
