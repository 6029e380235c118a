from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from timbrelab.constants import HOP_LENGTH, MIDI_MIN, SAMPLE_RATE
from timbrelab.data.gm import DRUM_PROGRAM, program_to_class
from timbrelab.data.mixtures import dominant_source, make_mixture, mixture_labels
from timbrelab.notes import Note


@pytest.fixture(scope="module")
def mix():
    return make_mixture(3, seconds=1.5, seed=11)


def test_mixture_shapes_and_sum(mix):
    n = round(1.5 * SAMPLE_RATE)
    assert mix.audio.shape == (n,) and mix.stems.shape == (3, n)
    assert mix.audio.dtype == mix.stems.dtype == np.float32
    assert np.array_equal(mix.audio, mix.stems.sum(axis=0))  # exactly, not approximately
    assert 0.25 < np.abs(mix.audio).max() <= 0.9 + 1e-6  # scaled to a random peak, no clipping
    assert len({program_to_class(p) for p in mix.programs}) == 3
    assert {n.source for n in mix.notes} <= {0, 1, 2} and len(mix.notes) > 3
    for k in range(3):  # every stem plays, within its own program's range
        assert np.abs(mix.stems[k]).max() > 0
        assert mix.stem_notes(k)


def test_same_seed_same_bytes_different_seed_different_audio(mix):
    again = make_mixture(3, seconds=1.5, seed=11)
    assert again.audio.tobytes() == mix.audio.tobytes()
    assert again.stems.tobytes() == mix.stems.tobytes()
    assert again.notes == mix.notes and again.programs == mix.programs
    other = make_mixture(3, seconds=1.5, seed=12)
    assert not np.array_equal(other.audio, mix.audio)
    # a sequence seed, as the datasets use
    assert make_mixture(1, 0.5, seed=[3, 4]).audio.tobytes() == make_mixture(
        1, 0.5, seed=[3, 4]).audio.tobytes()


def test_stem_gains_keep_velocity_and_balance():
    plain = make_mixture(2, 1.0, seed=5, programs=[0, 40], expressive=False)
    assert np.abs(plain.audio).max() == pytest.approx(0.9, rel=1e-5)
    assert plain.programs == [0, 40]
    # one factor scales the whole mix: each stem is its plain render times that factor
    from timbrelab.data.render import render_notes

    raw = render_notes(plain.stem_notes(1), 40, seconds=1.0)
    factor = np.abs(plain.stems[1]).max() / np.abs(raw).max()
    np.testing.assert_allclose(plain.stems[1], raw * factor, atol=1e-6)


def test_programs_drums_and_score_overrides():
    mix = make_mixture(2, 1.0, seed=1, drums=True)
    assert mix.programs[-1] == DRUM_PROGRAM and list(mix.is_drum) == [False, True]
    labels = mixture_labels(mix, dominant=False)
    pitched = [n for n in mix.notes if n.source == 0]
    assert labels["frame"].sum() > 0 and not labels["stem_frame"][1].any()
    assert labels["onset"].sum() == len({(n.pitch, round(n.onset * SAMPLE_RATE / HOP_LENGTH))
                                         for n in pitched})
    mono = make_mixture(1, 2.0, seed=2, programs=[0], pitch_range=(60, 62), max_polyphony=1)
    assert {n.pitch for n in mono.notes} <= {60, 61, 62}
    with pytest.raises(ValueError, match="n_instruments"):
        make_mixture(9, 1.0, seed=0)
    with pytest.raises(ValueError, match="programs"):
        make_mixture(2, 1.0, seed=0, programs=[0])
    with pytest.raises(TypeError, match="unknown"):
        make_mixture(1, 1.0, seed=0, polyphony=3)


def test_labels_match_the_notes(mix):
    hop = 512
    labels = mixture_labels(mix, hop_length=hop)
    t = 1 + len(mix.audio) // hop
    assert labels["frame"].shape == labels["onset"].shape == (88, t)
    assert labels["stem_frame"].shape == (3, 88, t)
    assert labels["dominant_source"].shape == (88, t)
    assert labels["dominant_source"].dtype == np.int64
    assert np.array_equal(labels["frame"], labels["stem_frame"].max(axis=0))
    for note in mix.notes:
        row, frame = note.pitch - MIDI_MIN, round(note.onset * SAMPLE_RATE / hop)
        assert labels["onset"][row, frame] == 1
        assert labels["stem_frame"][note.source, row, int(np.ceil(note.onset * SAMPLE_RATE / hop))]
    assert list(labels["programs"]) == mix.programs
    # where exactly one stem has a note, the loudest stem at that key is usually that one
    active = labels["stem_frame"].sum(axis=0) == 1
    owner = labels["stem_frame"].argmax(axis=0)
    agree = (labels["dominant_source"][active] == owner[active]).mean()
    assert agree > 0.8
    assert labels["dominant_source"].min() == -1  # silent bins exist (above the top notes)
    assert mixture_labels(mix, n_frames=50, dominant=False)["stem_frame"].shape == (3, 88, 50)


def test_dominant_source_on_handmade_magnitudes():
    mags = np.zeros((2, 3, 4))
    mags[0, 0, :] = 1.0
    mags[1, 0, 2:] = 2.0
    mags[1, 1, 1] = 1e-4  # -86 dB below the loudest bin: silent
    mags[0, 2, 3] = 0.5
    expected = np.array([[0, 0, 1, 1], [-1, -1, -1, -1], [-1, -1, -1, 0]])
    assert np.array_equal(dominant_source(mags), expected)
    assert dominant_source(mags, silence_db=-100)[1, 1] == 1
    assert (dominant_source(np.zeros((3, 2, 2))) == -1).all()
    with pytest.raises(ValueError, match="K, F, T"):
        dominant_source(np.zeros((3, 4)))


def test_dominant_source_of_two_separated_notes():
    notes = [Note(0.1, 0.9, 48, 100, 0), Note(0.1, 0.9, 84, 100, 1)]
    from timbrelab.data.mixtures import Mixture
    from timbrelab.data.render import render_notes

    stems = np.stack([render_notes([n], p, seconds=1.0) for n, p in zip(notes, (0, 73),
                                                                         strict=True)])
    mix = Mixture(stems.sum(0), stems, notes, [0, 73], SAMPLE_RATE)
    dom = mixture_labels(mix)["dominant_source"]
    middle = slice(20, 60)
    assert (dom[48 - MIDI_MIN, middle] == 0).all()
    assert (dom[84 - MIDI_MIN, middle] == 1).all()


def test_dense_and_ensemble_styles():
    dense = make_mixture(1, 3.0, seed=0, programs=[0], style="dense")
    assert len(dense.notes) > 8 and all(24 <= n.pitch <= 107 for n in dense.notes)
    assert dense.audio.tobytes() == make_mixture(1, 3.0, seed=0, programs=[0],
                                                 style="dense").audio.tobytes()  # fmt: skip
    quartet = make_mixture(4, 3.0, seed=1, programs=[40, 71, 65, 70], style="ensemble")
    voices = [quartet.stem_notes(k) for k in range(4)]
    assert all(v and all(a.offset <= b.onset for a, b in pairwise(v)) for v in voices)
    for t in sorted({n.onset for n in quartet.notes}):  # violin >= clarinet >= sax >= bassoon
        sounding = [next((n.pitch for n in v if n.onset <= t < n.offset), None) for v in voices]
        present = [p for p in sounding if p is not None]
        assert present == sorted(present, reverse=True)
    with_drums = make_mixture(3, 2.0, seed=2, drums=True, style="ensemble")
    assert with_drums.stem_notes(2) and with_drums.is_drum[2]
    with pytest.raises(ValueError, match="style"):
        make_mixture(1, 1.0, seed=0, style="fugue")
    with pytest.raises(TypeError, match="only apply to style='random'"):
        make_mixture(1, 1.0, seed=0, style="dense", max_polyphony=2)


def test_expressive_performance_is_seeded_and_labelled():
    plain = make_mixture(3, 2.0, seed=4, programs=[0, 40, 73])
    played = make_mixture(3, 2.0, seed=4, programs=[0, 40, 73], expression=True)
    again = make_mixture(3, 2.0, seed=4, programs=[0, 40, 73], expression=True)
    assert played.audio.tobytes() == again.audio.tobytes() and played.notes == again.notes
    assert not np.array_equal(played.audio, plain.audio)
    assert all(46 <= n.velocity <= 127 for n in played.notes)
    # same written pitches; onsets moved by at most half a frame
    assert sorted(n.pitch for n in played.notes) == sorted(n.pitch for n in plain.notes)
    for a, b in zip(sorted(plain.notes, key=lambda n: (n.source, n.pitch, n.onset)),
                    sorted(played.notes, key=lambda n: (n.source, n.pitch, n.onset)), strict=True):
        assert abs(a.onset - b.onset) <= 0.5 * HOP_LENGTH / SAMPLE_RATE + 1e-9
    # the pedal lengthens the piano's labels; without it the offsets are the written ones
    from timbrelab.data.expression import Expression

    unpedalled = make_mixture(3, 2.0, seed=4, programs=[0, 40, 73],
                              expression=Expression(pedal=False))  # fmt: skip
    assert sum(n.duration for n in played.stem_notes(0)) > sum(
        n.duration for n in unpedalled.stem_notes(0))
    assert [n.offset for n in unpedalled.stem_notes(1)] == [n.offset for n in played.stem_notes(1)]
    assert unpedalled.audio.tobytes() != played.audio.tobytes()
