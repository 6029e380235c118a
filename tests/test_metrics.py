from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from timbrelab.data.bach10 import bach10_scores, f0_matrix_to_multipitch
from timbrelab.metrics import (
    frame_scores,
    midi_to_hz,
    multipitch_scores,
    note_scores,
    note_with_offset_scores,
    notes_to_multipitch,
    sdr,
    separated_note_scores,
)
from timbrelab.notes import Note


def test_notes_to_multipitch_covers_centres_in_onset_offset() -> None:
    times = np.array([0.0, 0.1, 0.2, 0.3])
    freqs = notes_to_multipitch(
        [Note(0.1, 0.3, 69), Note(0.05, 0.1, 57), Note(0.2, 0.25, 69)], times
    )
    # 0.1 and 0.2 lie in [0.1, 0.3); 0.3 does not. [0.05, 0.1) holds no centre.
    assert [f.tolist() for f in freqs] == [[], [440.0], [440.0, 440.0], []]


def test_f0_matrix_to_multipitch() -> None:
    f0 = np.array([[69.0, 0.0, 57.0], [0.0, 0.0, 81.0]])
    freqs = f0_matrix_to_multipitch(f0)
    assert [f.tolist() for f in freqs] == [[440.0], [], [220.0, 880.0]]
    with pytest.raises(ValueError, match="parts, frames"):
        f0_matrix_to_multipitch(np.zeros(3))


def test_frame_scores_by_hand() -> None:
    times = np.arange(5) * 0.1
    ref = [Note(0.0, 0.3, 60), Note(0.1, 0.2, 64)]  # 3 + 1 pitch-frames
    est = [Note(0.0, 0.2, 60), Note(0.1, 0.2, 65)]  # 2 right + 1 a semitone off
    scores = frame_scores(ref, est, times=times)
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["recall"] == pytest.approx(2 / 4)
    assert scores["f1"] == pytest.approx(4 / 7)  # 2PR / (P + R)
    assert scores["accuracy"] == pytest.approx(2 / (2 + 1 + 2))  # TP / (TP + FP + FN)
    # the default 10 ms grid: ref 30 + 10 pitch-frames, est 20 right + 10 wrong
    scores = frame_scores(ref, est)
    assert (scores["precision"], scores["recall"]) == pytest.approx((2 / 3, 1 / 2))


def test_frame_scores_quarter_tone_tolerance() -> None:
    times = np.arange(10) * 0.01
    ref_freqs = [np.array([midi_to_hz(60.4)])] * 10  # 40 cents sharp of C4: still C4
    est = notes_to_multipitch([Note(0.0, 0.05, 60), Note(0.05, 0.1, 61)], times)
    scores = multipitch_scores(times, ref_freqs, times, est)
    assert scores["precision"] == pytest.approx(0.5) and scores["recall"] == pytest.approx(0.5)


def test_empty_inputs_score_zero_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert note_scores([], [Note(0, 1, 60)])["f1"] == 0.0
        assert note_scores([Note(0, 1, 60)], [])["f1"] == 0.0
        assert frame_scores([Note(0, 1, 60)], [])["f1"] == 0.0


def test_note_scores_by_hand() -> None:
    ref = [Note(0.0, 1.0, 60), Note(1.0, 2.0, 62), Note(2.0, 3.0, 64)]
    est = [
        Note(0.04, 1.0, 60),  # onset 40 ms late: within 50 ms
        Note(1.0, 1.3, 62),  # right onset, offset far too early
        Note(2.0, 3.0, 65),  # wrong pitch
    ]
    scores = note_scores(ref, est)
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 / 3)
    # with offsets (within 20 % of 1 s = 200 ms): only the first note still matches
    with_offset = note_with_offset_scores(ref, est)
    assert with_offset == note_scores(ref, est, offset_ratio=0.2)
    assert with_offset["precision"] == pytest.approx(1 / 3)
    assert with_offset["recall"] == pytest.approx(1 / 3)
    # 60 ms late is outside the onset tolerance; 4 estimates for 3 references
    est2 = [Note(0.06, 1.0, 60), Note(1.0, 2.0, 62), Note(2.0, 3.0, 64), Note(2.5, 3.0, 70)]
    scores = note_scores(ref, est2)
    assert (scores["precision"], scores["recall"]) == pytest.approx((2 / 4, 2 / 3))
    assert scores["f1"] == pytest.approx(2 * (1 / 2) * (2 / 3) / (1 / 2 + 2 / 3))


def test_note_scores_ignore_sources() -> None:
    ref = [Note(0.0, 1.0, 60, source=0)]
    assert note_scores(ref, [Note(0.0, 1.0, 60, source=3)])["f1"] == 1.0


def _parts() -> tuple[list[Note], list[Note]]:
    a, b = Note(0.0, 1.0, 60, source=0), Note(1.0, 2.0, 62, source=0)
    c, d = Note(0.0, 1.0, 48, source=1), Note(1.0, 2.0, 50, source=1)
    return [a, b, c, d], [a, b, c, d]


def test_separated_scores_swapped_sources() -> None:
    ref, _ = _parts()
    # est source 5 holds reference part 1 exactly; est source 7 holds part 0's first note
    # and a wrong one
    est = [
        Note(0.0, 1.0, 48, source=5),
        Note(1.0, 2.0, 50, source=5),
        Note(0.0, 1.0, 60, source=7),
        Note(1.0, 2.0, 70, source=7),
    ]
    scores = separated_note_scores(ref, est)
    assert scores["assignment"] == {0: 7, 1: 5}
    assert scores["per_source"][0] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5})
    assert scores["per_source"][1] == pytest.approx({"precision": 1.0, "recall": 1.0, "f1": 1.0})
    assert scores["f1"] == pytest.approx(0.75) and scores["precision"] == pytest.approx(0.75)
    # a silent third reference part counts when n_sources says it exists
    three = separated_note_scores(ref, est, n_sources=3)
    assert three["per_source"][2]["f1"] == 0.0
    assert three["f1"] == pytest.approx(1.5 / 3)


def test_separated_scores_fewer_and_more_estimated_sources() -> None:
    ref, _ = _parts()
    one = [Note(n.onset, n.offset, n.pitch, source=0) for n in ref if n.source == 1]
    scores = separated_note_scores(ref, one)
    assert scores["assignment"] == {0: None, 1: 0}
    assert scores["per_source"][0]["f1"] == 0.0 and scores["f1"] == pytest.approx(0.5)
    # an extra estimated source with junk is not assigned
    many = [Note(n.onset, n.offset, n.pitch, source=n.source) for n in ref]
    many.append(Note(0.0, 2.0, 90, source=2))
    assert separated_note_scores(ref, many)["assignment"] == {0: 0, 1: 1}
    assert separated_note_scores(ref, many)["f1"] == 1.0


def test_separated_scores_need_sources() -> None:
    with pytest.raises(ValueError, match="estimated note"):
        separated_note_scores([Note(0, 1, 60, source=0)], [Note(0, 1, 60)])
    with pytest.raises(ValueError, match="n_sources=1"):
        separated_note_scores([Note(0, 1, 60, source=2)], [], n_sources=1)


def test_sdr_by_hand() -> None:
    s = np.array([1.0, 0.0, 0.0, 0.0])
    noisy = s + np.array([0.0, 0.1, 0.0, 0.0])  # error energy 0.01 of the signal: 20 dB
    assert sdr(s, noisy) == pytest.approx(20.0)
    assert sdr(s, noisy, scale_invariant=True) == pytest.approx(20.0)
    # halved: SDR = 10 log10(1 / 0.25); SI-SDR does not mind the scale
    assert sdr(s, 0.5 * s) == pytest.approx(10 * math.log10(4))
    assert sdr(s, 0.5 * s, scale_invariant=True) == math.inf
    # doubled and noisy: plain SDR = 10 log10(1 / (1 + 0.04)), SI-SDR still 20 dB
    assert sdr(s, 2 * noisy) == pytest.approx(10 * math.log10(1 / 1.04))
    assert sdr(s, 2 * noisy, scale_invariant=True) == pytest.approx(20.0)
    assert sdr(s, s) == math.inf


def test_sdr_batched_and_errors() -> None:
    s = np.array([[1.0, 0.0], [0.0, 2.0]])
    np.testing.assert_allclose(sdr(s, 0.5 * s), [10 * math.log10(4)] * 2)
    with pytest.raises(ValueError, match="must be equal"):
        sdr(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="all zeros"):
        sdr(np.zeros(3), np.ones(3))


def _toy_bach10() -> tuple[list[Note], np.ndarray, np.ndarray]:
    times = 0.023 + 0.01 * np.arange(10)
    f0 = np.zeros((4, 10))
    f0[0, 0:5] = 60.2  # 20 cents sharp: still C4 within mir_eval's half semitone
    f0[1, 2:10] = 64.0
    notes = [
        Note(times[0] - 0.005, times[4] + 0.005, 60, source=0),
        Note(times[2] - 0.005, times[9] + 0.005, 64, source=1),
    ]
    return notes, times, f0


def test_bach10_scores_by_hand() -> None:
    notes, times, f0 = _toy_bach10()
    assert bach10_scores(notes, times, f0, notes) == {"FF": 1.0, "FN": 1.0, "FNO": 1.0}
    # part 1 a semitone high: 5 of 13 pitch-frames right on both sides, 1 of 2 notes
    wrong = [notes[0], Note(notes[1].onset, notes[1].offset, 65, source=1)]
    scores = bach10_scores(notes, times, f0, wrong)
    assert scores["FF"] == pytest.approx(5 / 13)
    assert scores["FN"] == pytest.approx(1 / 2) and scores["FNO"] == pytest.approx(1 / 2)
    # FF uses the fractional GTF0s: at 60.6 the reference is nearer C#4 than C4
    f0_sharp = f0.copy()
    f0_sharp[0, 0:5] = 60.6
    assert bach10_scores(notes, times, f0_sharp, notes)["FF"] == pytest.approx(8 / 13)
    # right onset, offset 70 ms early (tolerance: max(20 % of 80 ms, 50 ms)): FN keeps it,
    # FNO does not
    short = [notes[0], Note(notes[1].onset, notes[1].onset + 0.01, 64, source=1)]
    scores = bach10_scores(notes, times, f0, short)
    assert scores["FN"] == 1.0 and scores["FNO"] == pytest.approx(1 / 2)
    with pytest.raises(ValueError, match="frames"):
        bach10_scores(notes, times[:5], f0, notes)
