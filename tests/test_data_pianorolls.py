from __future__ import annotations

import numpy as np
import pytest

from timbrelab.data.pianorolls import (
    instrument_ascension,
    pairwise_ascension,
    program_pitch_range,
    random_score,
)


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
