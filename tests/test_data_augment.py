from __future__ import annotations

import numpy as np
import pytest

from timbrelab.constants import SAMPLE_RATE
from timbrelab.data import SyntheticMixtures, make_mixture, mixture_labels, room_and_eq

SR = SAMPLE_RATE


def _burst(seconds: float = 1.5, note: float = 0.2) -> np.ndarray:
    """(2, N): two stems, a 440 Hz and a 220 Hz tone for ``note`` s, then silence."""
    t = np.arange(round(seconds * SR)) / SR
    on = t < note
    return np.stack([np.sin(2 * np.pi * 440 * t) * on, np.sin(2 * np.pi * 220 * t) * on])


def _energy(x: np.ndarray, start: float, stop: float) -> float:
    return float(np.sum(x[..., round(start * SR) : round(stop * SR)].astype(np.float64) ** 2))


def test_room_and_eq_is_seeded_and_keeps_shape():
    dry = _burst()
    wet = room_and_eq(dry, SR, np.random.default_rng(3))
    assert wet.shape == dry.shape and wet.dtype == np.float32 and np.isfinite(wet).all()
    assert wet.tobytes() == room_and_eq(dry, SR, np.random.default_rng(3)).tobytes()
    assert not np.array_equal(wet, room_and_eq(dry, SR, np.random.default_rng(4)))
    # same room, yet each stem gets its own IR: a stem copied twice comes out different
    twin = room_and_eq(np.stack([dry[0], dry[0]]), SR, np.random.default_rng(3))
    assert not np.allclose(twin[0], twin[1])
    with pytest.raises(ValueError, match="stems must be"):
        room_and_eq(dry[0], SR, np.random.default_rng(0))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reverb_tail_rings_past_the_offset_and_decays(seed):
    dry = _burst()  # silent after 0.2 s
    wet = room_and_eq(dry, SR, np.random.default_rng(seed))
    assert _energy(dry, 0.25, 1.5) == 0.0
    note, early, late = _energy(wet, 0.0, 0.2), _energy(wet, 0.25, 0.35), _energy(wet, 0.6, 0.7)
    assert early > 1e-4 * note  # the room keeps ringing after the note stops (> -40 dB) ...
    assert late < early  # ... and dies away
    assert np.abs(wet[:, : round(0.2 * SR)]).max() > 0.1  # the direct sound is still there


def test_mixture_with_room_sums_and_keeps_labels():
    dry = make_mixture(3, 1.0, seed=7, backend="additive")
    wet = make_mixture(3, 1.0, seed=7, backend="additive", room=True)
    assert np.array_equal(wet.audio, wet.stems.sum(axis=0))  # exactly
    assert np.isfinite(wet.audio).all() and np.abs(wet.stems).max() <= 1.0
    assert np.abs(wet.audio).max() == pytest.approx(np.abs(dry.audio).max(), rel=1e-5)
    assert wet.notes == dry.notes and wet.programs == dry.programs
    a, b = mixture_labels(dry, dominant=False), mixture_labels(wet, dominant=False)
    assert a.keys() == b.keys() and all(np.array_equal(a[key], b[key]) for key in a)
    assert not np.allclose(wet.stems, dry.stems)
    again = make_mixture(3, 1.0, seed=7, backend="additive", room=True)
    assert again.audio.tobytes() == wet.audio.tobytes()


def test_room_off_by_default_changes_nothing():
    default = make_mixture(2, 0.5, seed=9, backend="additive")
    off = make_mixture(2, 0.5, seed=9, backend="additive", room=False)
    assert off.stems.tobytes() == default.stems.tobytes() and off.notes == default.notes
    # room=False keeps the fingerprint of settings without the flag (cache version 2: items
    # carry their identity and checksum)
    assert SyntheticMixtures(2, 1.0, backend="additive")._fingerprint() == "be92b5491ee8c1cc"
    assert SyntheticMixtures(2, 1.0, backend="additive", room=True)._fingerprint() != (
        "be92b5491ee8c1cc"
    )
    item = SyntheticMixtures(1, 0.5, instruments=2, backend="additive", room=True, stems=True)[0]
    assert np.array_equal(item["audio"].numpy(), item["stems"].numpy().sum(axis=0))
