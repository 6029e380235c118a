from __future__ import annotations

import dataclasses

import librosa
import numpy as np
import pytest

from timbrelab.constants import HOP_LENGTH, MIDI_MIN, SAMPLE_RATE
from timbrelab.data import render
from timbrelab.data.expression import (
    CC_EXPRESSION,
    CC_MODULATION,
    CC_SUSTAIN,
    Expression,
    Performance,
    draw_effects,
    draw_performance,
    extend_by_pedal,
    jitter_onsets,
    velocity_walk,
)
from timbrelab.data.mixtures import semitone_spectrogram
from timbrelab.data.render import render_notes
from timbrelab.notes import Note, midi_to_hz

SR = SAMPLE_RATE
needs_fluidsynth = pytest.mark.skipif(
    not render.fluidsynth_available(), reason="FluidSynth C library not installed"
)


def _rng(seed=0):
    return np.random.default_rng(seed)


def _cents(audio, pitch, start, stop):
    """Fundamental of ``pitch`` between two times, in cents from equal temperament."""
    segment = audio[round(start * SR) : round(stop * SR)]
    size = 1 << 19  # zero-padded: 0.04 Hz bins
    spectrum = np.abs(np.fft.rfft(segment * np.hanning(len(segment)), size))
    hz = np.fft.rfftfreq(size, 1 / SR)
    near = (hz > midi_to_hz(pitch - 1)) & (hz < midi_to_hz(pitch + 1))
    return 1200 * np.log2(hz[near][spectrum[near].argmax()] / midi_to_hz(pitch))


def test_velocity_walk_stays_in_bounds_and_drifts():
    walk = velocity_walk(2000, _rng(), (46, 127))
    assert walk.min() >= 46 and walk.max() <= 127 and walk.max() - walk.min() > 40
    assert np.abs(np.diff(walk)).mean() < 8  # a walk, not independent draws
    assert np.array_equal(walk, velocity_walk(2000, _rng(), (46, 127)))


def test_jitter_moves_onsets_and_keeps_offsets():
    notes = [Note(0.1 * i, 0.1 * i + 0.08, 60 + i % 3, 90, 0) for i in range(50)]
    moved = jitter_onsets(notes, _rng(), 0.005)
    assert len(moved) == 50
    shifts = np.array([m.onset - n.onset for m, n in zip(moved, notes, strict=True)])
    assert 0 < np.abs(shifts).max() <= 0.005 and shifts.std() > 0.001
    assert [m.offset for m in moved] == [n.offset for n in notes]
    # a restrike pulled early ends the note before it
    tight = [Note(0.0, 0.1, 60), Note(0.1, 0.2, 60)]
    for seed in range(10):
        first, second = jitter_onsets(tight, _rng(seed), 0.02)
        assert first.offset <= second.onset


def test_pedal_extends_labels_to_the_release():
    notes = [Note(0.0, 0.2, 60), Note(0.1, 0.3, 64), Note(0.5, 0.6, 60), Note(1.5, 1.6, 67)]
    pedal = [(0.15, 1.0), (1.2, 3.0)]
    out = extend_by_pedal(notes, pedal, seconds=2.0)
    by = {(n.pitch, n.onset): n.offset for n in out}
    assert by[(60, 0.0)] == 0.5  # restruck at 0.5 before the pedal lifts
    assert by[(64, 0.1)] == 1.0  # held to the release
    assert by[(60, 0.5)] == 1.0
    assert by[(67, 1.5)] == 2.0  # cut at the end of the clip
    assert extend_by_pedal(notes, []) == sorted(notes, key=lambda n: (n.onset, n.pitch))


def test_performance_levers():
    notes = [Note(0.2 * i, 0.2 * i + 0.3, 60 + i % 5, 80, 0) for i in range(20)]
    violin_notes, violin = draw_performance(notes, 40, 5.0, _rng(), effects=draw_effects(_rng()))
    assert len(violin.detune_cents) == len(violin_notes) == 20
    assert max(abs(c) for c in violin.detune_cents) <= 24 and len(set(violin.detune_cents)) == 20
    controllers = {c for _, c, _ in violin.controls}
    assert controllers == {CC_MODULATION, CC_EXPRESSION} and violin.vibrato_hz is not None
    assert violin.reverb is not None and violin.chorus is not None
    assert {n.velocity for n in violin_notes} != {80} and all(46 <= n.velocity <= 127
                                                                for n in violin_notes)
    # a piano is tuned once and pedalled; drums are neither bent nor swelled
    piano_notes, piano = draw_performance(notes, 0, 5.0, _rng(1))
    assert len(set(piano.detune_cents)) == 1 and {c for _, c, _ in piano.controls} <= {CC_SUSTAIN}
    assert piano.reverb is None  # no effects given
    _, drums = draw_performance(notes, 128, 5.0, _rng())
    assert drums.detune_cents == () and drums.controls == ()
    # each lever has its own stream: turning one off leaves the others alone
    no_vibrato = Expression(vibrato_depth=0)
    same_notes, other = draw_performance(notes, 40, 5.0, _rng(), no_vibrato)
    assert same_notes == violin_notes and other.detune_cents == violin.detune_cents
    assert CC_MODULATION not in {c for _, c, _ in other.controls}
    off = Expression(0.0, 0, velocity_range=None, swell_depth=0.0, pedal=False, onset_jitter=0.0,
                     effects=False)  # fmt: skip
    assert draw_performance(notes, 0, 5.0, _rng(), off) == (notes, Performance())
    with pytest.raises(ValueError, match="vibrato_depth"):
        Expression(vibrato_depth=200)


@needs_fluidsynth
def test_an_empty_performance_renders_as_none():
    notes = [Note(0.05, 0.4, 64, 90), Note(0.2, 0.6, 67, 70)]
    plain = render_notes(notes, 40, seconds=0.8)
    assert plain.tobytes() == render_notes(notes, 40, seconds=0.8,
                                           performance=Performance()).tobytes()  # fmt: skip
    zero = Performance(detune_cents=(0.0, 0.0))
    assert plain.tobytes() == render_notes(notes, 40, seconds=0.8, performance=zero).tobytes()
    with pytest.raises(ValueError, match="one value per note"):
        render_notes(notes, 40, seconds=0.8, performance=Performance(detune_cents=(1.0,)))


@needs_fluidsynth
def test_overlapping_notes_keep_their_own_detune():
    """Two notes sounding together, bent apart: each on its own channel, each at its bend."""
    notes = [Note(0.1, 1.1, 69, 100), Note(0.1, 1.1, 76, 100)]
    plain = render_notes(notes, 73, seconds=1.2)
    bent = render_notes(notes, 73, seconds=1.2, performance=Performance(detune_cents=(20.0, -20.0)))
    for pitch, bend in ((69, 20.0), (76, -20.0)):
        moved = _cents(bent, pitch, 0.3, 1.0) - _cents(plain, pitch, 0.3, 1.0)
        assert abs(moved - bend) < 3


@needs_fluidsynth
@pytest.mark.parametrize("program", [40, 73])
def test_labels_stay_at_the_written_pitch_under_detune_and_vibrato(program):
    """The CQT peak of a note bent the most, with the deepest vibrato, is still its key."""
    notes = [Note(0.1, 1.1, 69, 100)]
    depth = Expression().vibrato_depth
    wild = Performance(detune_cents=(24.0,), controls=((0.0, CC_MODULATION, depth),),
                       vibrato_hz=5.5)  # fmt: skip
    audio = render_notes(notes, program, seconds=1.2, performance=wild)
    during = slice(round(0.3 * SR / HOP_LENGTH), round(1.0 * SR / HOP_LENGTH))
    assert semitone_spectrogram(audio)[:, during].mean(axis=1).argmax() == 69 - MIDI_MIN
    # at 5 bins per semitone: the peak within half a semitone of the key
    fine = np.abs(librosa.cqt(audio, sr=SR, hop_length=HOP_LENGTH, fmin=midi_to_hz(60),
                              n_bins=100, bins_per_octave=60))[:, during].mean(axis=1)  # fmt: skip
    assert abs(fine.argmax() - 5 * (69 - 60)) <= 2


@needs_fluidsynth
def test_vibrato_widens_the_pitch_and_swells_change_the_level():
    notes = [Note(0.1, 1.1, 69, 100)]

    def spread(depth):  # standard deviation of the fundamental over time, in cents
        performance = Performance(controls=((0.0, CC_MODULATION, depth),), vibrato_hz=5.5)
        audio = render_notes(notes, 40, seconds=1.2, performance=performance)
        spec = np.abs(librosa.stft(audio, n_fft=4096, hop_length=256))[:, 20:85]
        bins = np.arange(len(spec))[:, None]
        band = (bins > 0.95 * 440 / SR * 4096) & (bins < 1.05 * 440 / SR * 4096)
        centroid = (bins * spec * band).sum(0) / (spec * band).sum(0)
        return (1200 * np.log2(centroid / centroid.mean())).std()

    assert spread(0) < 3 < 8 < spread(64)
    swell = Performance(controls=((0.0, CC_EXPRESSION, 127), (0.6, CC_EXPRESSION, 40)))
    audio = render_notes(notes, 40, seconds=1.2, performance=swell)
    before, after = (np.sqrt((audio[round(a * SR) : round(b * SR)] ** 2).mean())
                     for a, b in ((0.3, 0.55), (0.7, 1.0)))  # fmt: skip
    assert after < 0.3 * before


@needs_fluidsynth
def test_onsets_under_jitter_match_their_labels():
    """The audio starts where the jittered label says, to within one label frame."""
    written = [Note(0.1 + 0.5 * i, 0.1 + 0.5 * i + 0.25, 72 + 2 * i, 110) for i in range(6)]
    played = jitter_onsets(written, _rng(3), 0.02)
    assert max(abs(p.onset - w.onset) for p, w in zip(played, written, strict=True)) > 0.01
    audio = render_notes(played, 0, seconds=3.2)
    for note in played:  # each note starts from near silence (0.25 s of release before it)
        window = np.abs(audio[round((note.onset - 0.04) * SR) : round((note.onset + 0.05) * SR)])
        start = note.onset - 0.04 + np.argmax(window > 0.1 * window.max()) / SR
        assert abs(start - note.onset) * SR / HOP_LENGTH < 1.0


@needs_fluidsynth
def test_pedal_and_effects_lengthen_the_sound_deterministically():
    note = [Note(0.1, 0.3, 60, 100)]
    pedal = Performance(controls=((0.05, CC_SUSTAIN, 127), (1.2, CC_SUSTAIN, 0)))
    dry, held = (render_notes(note, 0, seconds=2.0, performance=p) for p in (None, pedal))

    def energy(audio, a, b):
        return float((audio[round(a * SR) : round(b * SR)] ** 2).sum())

    assert energy(held, 0.6, 1.1) > 50 * energy(dry, 0.6, 1.1)
    assert energy(held, 1.7, 2.0) < 0.01 * energy(held, 0.6, 1.1)  # released with the pedal
    reverb, chorus = draw_effects(_rng(2))
    wet = Performance(reverb=reverb, chorus=chorus)
    a = render_notes([Note(0.1, 0.5, 69, 100)], 40, seconds=1.5, performance=wet)
    b = render_notes([Note(0.1, 0.5, 69, 100)], 40, seconds=1.5, performance=wet)
    assert a.tobytes() == b.tobytes()
    plain = render_notes([Note(0.1, 0.5, 69, 100)], 40, seconds=1.5)
    assert energy(a, 1.0, 1.5) > 10 * energy(plain, 1.0, 1.5)
    drier = dataclasses.replace(wet, reverb=reverb._replace(level=0.1))
    assert not np.array_equal(a, render_notes([Note(0.1, 0.5, 69, 100)], 40, seconds=1.5,
                                              performance=drier))  # fmt: skip
