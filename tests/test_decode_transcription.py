from __future__ import annotations

import numpy as np
import pytest
import torch

from timbrelab.constants import FRAME_RATE, MIDI_MIN
from timbrelab.decode import add_inferred_onsets, onsets_frames_decode, posteriorgram_to_notes
from timbrelab.notes import Note

DECODERS = [posteriorgram_to_notes, onsets_frames_decode]


def posteriorgrams(notes_frames, n_frames=200, level=0.9, onset_level=0.95):
    """(frame, onset) probabilities with a note per (pitch, start, stop) in frames."""
    frames = np.zeros((88, n_frames), np.float32)
    onsets = np.zeros_like(frames)
    for pitch, start, stop in notes_frames:
        frames[pitch - MIDI_MIN, start:stop] = level
        onsets[pitch - MIDI_MIN, start] = onset_level
    return frames, onsets


@pytest.mark.parametrize("decode", DECODERS)
def test_a_known_note_comes_out_with_its_times_and_pitch(decode):
    frames, onsets = posteriorgrams([(60, 20, 70)])
    (note,) = decode(frames, onsets)
    assert note.pitch == 60
    assert note.onset == pytest.approx(20 / FRAME_RATE, abs=0.5 / FRAME_RATE)
    assert note.offset == pytest.approx(70 / FRAME_RATE, abs=0.5 / FRAME_RATE)
    assert note.velocity == round(127 * 0.9)


@pytest.mark.parametrize("decode", DECODERS)
def test_two_onsets_of_one_pitch_stay_two_notes(decode):
    frames, onsets = posteriorgrams([(64, 10, 40), (64, 40, 80)])
    notes = decode(frames, onsets)
    assert [(round(n.onset * FRAME_RATE), round(n.offset * FRAME_RATE)) for n in notes] == [
        (10, 40),
        (40, 80),
    ]


@pytest.mark.parametrize("decode", DECODERS)
def test_torch_input_and_frame_rate_are_honoured(decode):
    frames, onsets = posteriorgrams([(50, 10, 30)])
    (note,) = decode(torch.from_numpy(frames), torch.from_numpy(onsets), frame_rate=100.0)
    assert (note.onset, note.offset, note.pitch) == pytest.approx((0.1, 0.3, 50))


@pytest.mark.parametrize("decode", DECODERS)
def test_empty_and_silent_inputs_give_no_notes(decode):
    assert decode(np.zeros((88, 0)), np.zeros((88, 0))) == []
    assert decode(np.zeros((88, 50)), np.zeros((88, 50))) == []


@pytest.mark.parametrize("decode", DECODERS)
def test_bad_shapes_are_refused(decode):
    with pytest.raises(ValueError, match="onset_probs"):
        decode(np.zeros((88, 10)), np.zeros((88, 11)))
    with pytest.raises(ValueError, match="2-D"):
        decode(np.zeros(10), np.zeros(10))


def test_thresholds_decide_what_counts():
    frames, onsets = posteriorgrams([(60, 20, 70)], level=0.4, onset_level=0.6)
    kw = dict(infer_onsets=False, melodia_trick=False)
    assert len(posteriorgram_to_notes(frames, onsets, **kw)) == 1
    assert posteriorgram_to_notes(frames, onsets, onset_threshold=0.7, **kw) == []
    # frame below threshold: the note is only its onset frame, shorter than the minimum
    assert posteriorgram_to_notes(frames, onsets, frame_threshold=0.5, **kw) == []
    assert onsets_frames_decode(frames, onsets, onset_threshold=0.7) == []
    (short,) = onsets_frames_decode(frames, onsets, frame_threshold=0.5)
    assert round(short.duration * FRAME_RATE) == 1


def test_short_dips_are_bridged_long_gaps_split():
    frames, onsets = posteriorgrams([(60, 10, 100)])
    frames[60 - MIDI_MIN, 40:45] = 0.0  # 5 quiet frames < tolerance 11
    frames[60 - MIDI_MIN, 60:80] = 0.0  # 20 quiet frames end the note
    kw = dict(infer_onsets=False, melodia_trick=False)
    (note,) = posteriorgram_to_notes(frames, onsets, **kw)
    assert round(note.offset * FRAME_RATE) == 60
    # the melodia trick picks up the onset-less tail as its own note
    tail = posteriorgram_to_notes(frames, onsets, infer_onsets=False)[-1]
    assert [round(t * FRAME_RATE) for t in (tail.onset, tail.offset)] == [80, 100]
    # with tolerance 1, any dip ends the note
    first = posteriorgram_to_notes(frames, onsets, energy_tolerance=1, **kw)[0]
    assert round(first.offset * FRAME_RATE) == 40


def test_minimum_length():
    frames, onsets = posteriorgrams([(60, 10, 14), (62, 10, 15)])
    notes = posteriorgram_to_notes(frames, onsets, min_note_seconds=5 / FRAME_RATE)
    assert [n.pitch for n in notes] == [62]


def test_onsets_are_inferred_from_frame_jumps():
    frames, _ = posteriorgrams([(60, 30, 60)])
    onsets = np.zeros_like(frames)
    onsets[70 - MIDI_MIN, 5] = 0.8  # some other onset sets the scale
    inferred = add_inferred_onsets(onsets, frames)
    assert inferred[60 - MIDI_MIN, 30] == pytest.approx(0.8)
    assert inferred[60 - MIDI_MIN, 31:].max() == 0.0
    notes = posteriorgram_to_notes(frames, onsets, melodia_trick=False)
    assert [(n.pitch, round(n.onset * FRAME_RATE)) for n in notes] == [(60, 30)]
    assert posteriorgram_to_notes(frames, onsets, melodia_trick=False, infer_onsets=False) == []


def test_melodia_trick_recovers_onsetless_notes_but_not_neighbour_leakage():
    frames, onsets = posteriorgrams([(60, 10, 50)])
    frames[61 - MIDI_MIN, 10:50] = 0.5  # semitone leakage of the real note
    frames[72 - MIDI_MIN, 100:140] = 0.7  # a note with no onset at all
    kw = dict(infer_onsets=False)
    notes = posteriorgram_to_notes(frames, onsets, **kw)
    assert [(n.pitch, round(n.onset * FRAME_RATE)) for n in notes] == [(60, 10), (72, 100)]
    assert [n.pitch for n in posteriorgram_to_notes(frames, onsets, melodia_trick=False, **kw)] == [
        60
    ]


def test_onsets_frames_ignores_frames_without_onset():
    frames, onsets = posteriorgrams([(60, 10, 50)])
    frames[72 - MIDI_MIN, 100:140] = 0.9
    notes = onsets_frames_decode(frames, onsets)
    assert notes == [Note(10 / FRAME_RATE, 50 / FRAME_RATE, 60, round(127 * 0.9))]
