from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from timbrelab.data.pianorolls import (
    cut_at_restrikes,
    dense_score,
    ensemble_score,
    instrument_ascension,
    pairwise_ascension,
    program_pitch_range,
    random_score,
)
from timbrelab.notes import Note


def _max_sounding(notes):
    times = sorted({n.onset for n in notes})
    return max(sum(1 for n in notes if n.onset <= t < n.offset) for t in times)


@pytest.mark.parametrize("polyphony", [1, 3])
def test_random_score_respects_its_controls(polyphony):
    notes = random_score(
        8.0, seed=1, pitch_range=(40, 60), max_polyphony=polyphony, note_density=6.0,
        min_duration=0.1, max_duration=0.8, velocity_range=(50, 90), source=2,
    )  # fmt: skip
    assert len(notes) > 10
    assert all(40 <= n.pitch <= 60 and 50 <= n.velocity <= 90 for n in notes)
    assert all(0 <= n.onset < n.offset <= 8.0 and n.source == 2 for n in notes)
    assert all(n.duration <= 0.8 + 1e-9 for n in notes)
    assert _max_sounding(notes) <= polyphony
    if polyphony == 3:
        assert _max_sounding(notes) > 1
    for a in notes:  # never two notes of one pitch at once
        assert not any(b is not a and b.pitch == a.pitch and b.onset < a.offset <= b.offset
                       and a.onset >= b.onset for b in notes)


def test_random_score_is_a_function_of_the_seed():
    assert random_score(4.0, seed=3) == random_score(4.0, rng=np.random.default_rng(3))
    assert random_score(4.0, seed=3) != random_score(4.0, seed=4)
    with pytest.raises(ValueError, match="seed"):
        random_score(4.0)


def test_random_score_grid_and_jitter():
    grid = 0.25
    on_grid = random_score(6.0, seed=0, grid=grid)
    assert all(abs(n.onset / grid - round(n.onset / grid)) < 1e-9 for n in on_grid)
    jittered = random_score(6.0, seed=0, grid=grid, timing_jitter=0.01)
    deviation = [abs(n.onset - grid * round(n.onset / grid)) for n in jittered]
    assert 0 < max(deviation) < 0.06


def test_velocity_curve_varies_velocity():
    velocities = [n.velocity for n in random_score(10.0, seed=5, velocity_range=(20, 120))]
    assert max(velocities) - min(velocities) > 30


@pytest.mark.parametrize("bad", [dict(seconds=0), dict(max_polyphony=0),
                                 dict(pitch_range=(60, 50)), dict(velocity_range=(0, 100)),
                                 dict(min_duration=1.0, max_duration=0.5)])
def test_random_score_rejects_bad_arguments(bad):
    kw = dict(seconds=2.0, seed=0) | bad
    with pytest.raises(ValueError):
        random_score(**kw)


def test_instrument_ascension_plays_every_note_once():
    notes = instrument_ascension((55, 60), note_seconds=0.5, source=1)
    assert [n.pitch for n in notes] == list(range(55, 61))
    assert [n.onset for n in notes] == [0.5 * i for i in range(6)]
    assert all(n.duration == 0.5 and n.source == 1 for n in notes)


def test_pairwise_ascension_plays_every_pair_together():
    a, b = pairwise_ascension((60, 62), (40, 41), note_seconds=0.25, gap_seconds=0.05)
    assert len(a) == len(b) == 6
    assert {(x.pitch, y.pitch) for x, y in zip(a, b, strict=True)} == {
        (p, q) for p in range(60, 63) for q in range(40, 42)
    }
    assert all(x.onset == y.onset and x.offset == y.offset for x, y in zip(a, b, strict=True))
    assert {x.source for x in a} == {0} and {y.source for y in b} == {1}
    assert a[1].onset == pytest.approx(0.3)


def test_program_pitch_ranges_are_sensible():
    bass, flute, piccolo, piano = (program_pitch_range(p) for p in (33, 73, 72, 0))
    assert bass[1] < 60 <= flute[0]
    assert piccolo[0] > flute[0]
    assert piano[1] - piano[0] > 60
    assert program_pitch_range(0, is_drum=True) == (35, 81)
    for p in range(129):
        lo, hi = program_pitch_range(p)
        assert 21 <= lo < hi <= 108


def _no_pitch_overlaps(notes):
    by_pitch = {}
    for n in sorted(notes, key=lambda n: n.onset):
        if n.pitch in by_pitch and by_pitch[n.pitch] > n.onset + 1e-12:
            return False
        by_pitch[n.pitch] = n.offset
    return True


def test_dense_score_follows_li_and_zhu():
    clips = [dense_score(10.0, seed=seed, source=0) for seed in range(20)]
    notes = [n for clip in clips for n in clip]
    assert clips[0] == dense_score(10.0, rng=np.random.default_rng(0), source=0)
    assert all(_no_pitch_overlaps(clip) for clip in clips)
    assert all(0 <= n.onset < n.offset <= 10.0 and n.source == 0 for n in notes)
    assert 30 < len(notes) / 20 < 60  # dense: several notes a second
    durations = np.array([n.duration for n in notes if n.offset < 10.0])
    assert durations.min() >= 0.046 - 1e-9 and 0.3 < durations.mean() < 0.45
    pitches = np.array([n.pitch for n in notes])
    assert pitches.min() >= 24 and pitches.max() <= 107
    octaves = np.bincount((pitches - 24) // 12, minlength=7)
    assert octaves[3] > 4 * octaves[0] and octaves[3] > 4 * octaves[6]  # weights 1,3,5,6,5,3,1
    # chords: most intervals between notes struck together are 4, 5, 7 or 12 semitones
    intervals = []
    for clip in clips:
        by_onset = {}
        for n in clip:
            by_onset.setdefault(n.onset, []).append(n.pitch)
        for chord in by_onset.values():
            intervals += list(np.diff(sorted(chord)))
    assert len(intervals) > 50 and np.isin(intervals, [4, 5, 7, 12]).mean() > 0.6
    # repeated notes happen
    assert sum(a.pitch == b.pitch for clip in clips for a, b in pairwise(clip)) > 10


def _sounding(voice, t):
    return next((n.pitch for n in voice if n.onset <= t < n.offset), None)


def test_ensemble_voices_are_chorale_like():
    ranges = [program_pitch_range(p) for p in (70, 40, 71, 65)]  # bassoon, violin, clar., sax
    steps = []
    for seed in range(10):
        voices = ensemble_score(8.0, ranges, seed=seed, sources=[3, 4, 5, 6])
        assert [{n.source for n in v} for v in voices] == [{3}, {4}, {5}, {6}]
        onsets = sorted({n.onset for v in voices for n in v})
        grid = min(np.diff(onsets))  # a shared grid: every onset a multiple of the smallest step
        assert np.allclose(np.array(onsets) / grid, np.round(np.array(onsets) / grid))
        for v in voices:
            assert all(a.offset <= b.onset for a, b in pairwise(v))  # monophonic
            steps += list(np.abs(np.diff([n.pitch for n in v])))
            span = max(n.pitch for n in v) - min(n.pitch for n in v)
            assert span <= 19  # a narrow register (14 semitones, rarely pushed by a neighbour)
        # never crossing: violin >= clarinet >= sax >= bassoon at every onset
        for t in onsets:
            sounding = [_sounding(voices[i], t) for i in (1, 2, 3, 0)]
            present = [p for p in sounding if p is not None]
            assert present == sorted(present, reverse=True)
    steps = np.array(steps)
    assert (steps <= 2).mean() > 0.6 and (steps <= 4).mean() > 0.85  # mostly stepwise
    assert ensemble_score(4.0, ranges, seed=1) == ensemble_score(4.0, ranges, seed=1)
    with pytest.raises(ValueError, match="range"):
        ensemble_score(4.0, [], seed=1)


def test_cut_at_restrikes():
    notes = [Note(0.0, 1.0, 60, 90, 0), Note(0.5, 0.8, 60, 80, 0), Note(0.5, 0.9, 60, 70, 1)]
    assert cut_at_restrikes(notes) == [Note(0.0, 0.5, 60, 90, 0), Note(0.5, 0.8, 60, 80, 0),
                                       Note(0.5, 0.9, 60, 70, 1)]  # fmt: skip
