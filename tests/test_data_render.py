from __future__ import annotations

import warnings

import librosa
import numpy as np
import pytest

from timbrelab.constants import HOP_LENGTH, SAMPLE_RATE
from timbrelab.data import render
from timbrelab.data.render import is_audible, render_additive, render_notes
from timbrelab.notes import Note, midi_to_hz

SR = SAMPLE_RATE
BACKENDS = [
    pytest.param("fluidsynth", marks=pytest.mark.skipif(
        not render.fluidsynth_available(), reason="FluidSynth C library not installed")),
    "additive",
]  # fmt: skip


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("program", "pitch"), [(0, 57), (40, 69), (73, 76), (33, 45)])
def test_label_alignment(backend, program, pitch):
    """A rendered note's energy sits at its labelled pitch and starts at its onset frame."""
    note = Note(0.5, 1.2, pitch, 100)
    audio = render_notes([note], program, seconds=1.6, backend=backend)
    assert audio.shape == (round(1.6 * SR),) and audio.dtype == np.float32
    spec = np.abs(librosa.stft(audio, n_fft=2048, hop_length=HOP_LENGTH))  # (1025, T)
    onset_frame = round(note.onset * SR / HOP_LENGTH)
    offset_frame = round(note.offset * SR / HOP_LENGTH)
    # pitch: the strongest partial while the note sounds is the fundamental (within a semitone)
    peak_hz = spec[:, onset_frame + 5 : offset_frame].mean(axis=1).argmax() * SR / 2048
    assert abs(12 * np.log2(peak_hz / midi_to_hz(pitch))) < 1.0
    # time: silence before, energy from the labelled onset frame (2-frame window smear allowed)
    energy = (spec**2).sum(axis=0)
    first = int(np.argmax(energy > 0.01 * energy.max()))
    assert abs(first - onset_frame) <= 2
    assert energy[: onset_frame - 3].max() < 1e-6 * energy.max()


@pytest.mark.parametrize("backend", BACKENDS)
def test_exact_length_and_velocity_kept(backend):
    loud = render_notes([Note(0.1, 0.5, 60, 120)], 0, seconds=0.7, backend=backend)
    soft = render_notes([Note(0.1, 0.5, 60, 40)], 0, seconds=0.7, backend=backend)
    assert len(loud) == len(soft) == round(0.7 * SR)
    assert np.abs(loud).max() > 2 * np.abs(soft).max() > 0  # not normalised per render
    # a note running past the end is cut, not the output stretched
    assert len(render_notes([Note(0.1, 3.0, 60)], 0, seconds=1.0, backend=backend)) == SR
    # without a length: one release tail after the last offset
    assert len(render_notes([Note(0.1, 0.5, 60)], 0, backend=backend)) == round(1.5 * SR)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rate", [4000, 6000, 96000])
def test_any_sample_rate_plays_the_written_pitch(backend, rate):
    """Rates FluidSynth cannot play at (below 8 kHz) are rendered higher and resampled."""
    audio = render_notes([Note(0.1, 1.0, 69, 100)], 40, sample_rate=rate, seconds=1.2,
                         backend=backend)  # fmt: skip
    assert audio.shape == (round(1.2 * rate),)
    spectrum = np.abs(np.fft.rfft(audio))
    peak_hz = spectrum.argmax() * rate / len(audio)
    assert abs(12 * np.log2(peak_hz / 440.0)) < 0.5


@pytest.mark.parametrize("backend", BACKENDS)
def test_rendering_does_not_depend_on_what_came_before(backend):
    notes = [Note(0.05, 0.4, 64, 90), Note(0.2, 0.6, 67, 70)]
    first = render_notes(notes, 40, seconds=0.8, seed=3, backend=backend)
    render_notes([Note(0.0, 0.77, 30, 127)], 19, seconds=0.77, backend=backend)  # odd length
    render_notes([Note(0.0, 0.5, 38, 100)], 128, seconds=0.5, backend=backend)  # drums
    again = render_notes(notes, 40, seconds=0.8, seed=3, backend=backend)
    assert first.tobytes() == again.tobytes()


@pytest.mark.parametrize("backend", BACKENDS)
def test_drums_render(backend):
    kit = [Note(0.05, 0.15, 36, 110), Note(0.3, 0.4, 42, 90)]
    audio = render_notes(kit, 128, seconds=0.6, backend=backend)
    assert np.abs(audio).max() > 0.01
    assert np.array_equal(audio, render_notes(kit, 0, is_drum=True, seconds=0.6, backend=backend))


@pytest.mark.skipif(not render.fluidsynth_available(), reason="FluidSynth not installed")
def test_soundfont_holes_are_known():
    def level(program, pitch):
        note = Note(0.0, 0.2, pitch, 100)
        return np.abs(render_notes([note], program, seconds=0.3, backend="fluidsynth")).max()

    for program, pitch in [(65, 64), (67, 80), (68, 35), (78, 79), (122, 90), (128, 26)]:
        assert not is_audible(program, pitch) and level(program, pitch) == 0
    audible = [(65, 63), (65, 65), (67, 79), (68, 36), (78, 78), (122, 60), (128, 27)]
    for program, pitch in audible:
        assert is_audible(program, pitch) and level(program, pitch) > 1e-3
    assert is_audible(65, 64, backend="additive")


def test_additive_is_seeded_and_timbres_differ():
    notes = [Note(0.0, 1.0, 57, 100)]  # A3, 220 Hz: 1 s gives 1 Hz FFT bins
    a = render_additive(notes, 40, seconds=1.0, seed=1)
    assert np.array_equal(a, render_additive(notes, 40, seconds=1.0, seed=1))
    assert not np.array_equal(a, render_additive(notes, 40, seconds=1.0, seed=2))

    def harmonics(program):  # amplitudes of partials 1..6, relative to their sum
        spectrum = np.abs(np.fft.rfft(render_additive(notes, program, seconds=1.0, seed=1)))
        amps = np.array([spectrum[220 * h - 5 : 220 * h + 6].max() for h in range(1, 7)])
        return amps / amps.sum()

    piano, clarinet, flute = harmonics(0), harmonics(71), harmonics(73)
    assert clarinet[2] > clarinet[1] and clarinet[4] > clarinet[3]  # odd partials dominate
    assert flute[0] > piano[0] and flute[0] > 0.8  # nearly pure
    # struck strings decay, blown pipes sustain
    for program, decays in ((0, True), (73, False)):
        tone = render_additive(notes, program, seconds=1.0, seed=1)
        early, late = (np.abs(tone[i : i + 2205]).max() for i in (2205, 17640))
        assert (late < 0.5 * early) == decays


def test_fallback_warns_once(monkeypatch):
    monkeypatch.setattr(render, "fluidsynth_available", lambda: False)
    monkeypatch.setattr(render, "_warned_fallback", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = render_notes([Note(0.0, 0.2, 60)], 0, seconds=0.3)
        render_notes([Note(0.0, 0.2, 62)], 0, seconds=0.3)
    messages = [str(w.message) for w in caught if "FluidSynth" in str(w.message)]
    assert len(messages) == 1 and "additive" in messages[0]
    assert np.array_equal(first, render_additive([Note(0.0, 0.2, 60)], 0, seconds=0.3))
    with pytest.raises(RuntimeError, match="libfluidsynth"):
        render_notes([Note(0.0, 0.2, 60)], 0, seconds=0.3, backend="fluidsynth")


def test_bad_arguments():
    with pytest.raises(ValueError, match="backend"):
        render_notes([], 0, seconds=1.0, backend="fm")
    with pytest.raises(ValueError, match="program"):
        render_notes([], 200, seconds=1.0)
    with pytest.raises(ValueError, match="Note"):
        render_notes([(0.0, 1.0, 60)], 0, seconds=1.0)
    assert render_notes([], 0, seconds=0.5).shape == (round(0.5 * SR),)
