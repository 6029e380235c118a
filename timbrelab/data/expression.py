"""Expressive rendering: play a score the way a person would, and keep the labels true.

A score from :mod:`~timbrelab.data.pianorolls` is exact: every note in tune, on time, at one
loudness, in a dry room. Recordings are not, and a model trained only on exact scores meets
real instruments unprepared. Li & Zhu's released code perturbs each MIDI file before FluidSynth
renders it (their ``midi_randomize``): velocities follow a random walk, every note gets its own
small pitch bend, the mod wheel (CC1) adds vibrato, onsets move within a frame, and FluidSynth's
reverb and chorus stay on. This module draws such a :class:`Performance` for one stem from the
ranges of an :class:`Expression`.

Two kinds of change, kept apart:

- **changes to the notes**, which move the labels with them: onset jitter (the label onset is
  the jittered one), the velocity walk, and the sustain pedal. A pedalled note sounds until the
  pedal lifts, and its label is extended to that point, as in Onsets and Frames / MAESTRO
  (Hawthorne et al., 2019): a frame label should say what can be heard, or the model is taught
  to call a sounding string silent. Bach10, where the models are judged, has no keyboards, so
  its played-note labels do not decide the question.
- **controls of the sound**, which leave the labels alone: detune (labels stay at the written
  pitch, as a player slightly out of tune still plays that note), vibrato, expression (CC11)
  swells, reverb and chorus. :func:`~timbrelab.data.render.render_notes` plays them.

A MIDI pitch bend acts on a whole channel, so notes that overlap in time on one channel would
share one detune. The renderer therefore plays each note with its own detune on a channel of
its own (15 channels in turn; see :func:`~timbrelab.data.render.render_notes`). Keyboards are
the exception: a piano is tuned once, not played in tune note by note, so a keyboard stem gets
one detune for all its notes (its tuning against A440) on one channel, which is also what a
sustain pedal needs to behave like a piano's (a restruck key ends its pedalled predecessor).

Chapter: book/01_cqt_features.md
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from timbrelab.constants import HOP_LENGTH, SAMPLE_RATE
from timbrelab.data.gm import INSTRUMENT_CLASSES, is_drum_program, is_sustained, program_to_class
from timbrelab.data.pianorolls import cut_at_restrikes
from timbrelab.notes import Note

#: MIDI controllers a :class:`Performance` sends: mod wheel (vibrato), expression, sustain pedal.
CC_MODULATION, CC_EXPRESSION, CC_SUSTAIN = 1, 11, 64

# Keyboards are tuned once (one detune per stem); pianos also take the sustain pedal.
_KEYBOARD_CLASSES = frozenset(
    INSTRUMENT_CLASSES.index(name)
    for name in ("Piano", "Electric Piano", "Harpsichord", "Clavinet", "Organ", "Accordion")
)
_PEDAL_CLASSES = frozenset(INSTRUMENT_CLASSES.index(name) for name in ("Piano", "Electric Piano"))
# Expression (CC11) curve: one value every this many seconds (a control-rate lane, as a
# sequencer draws it); FluidSynth applies each value from the next 64-sample block.
_SWELL_STEP = 0.05
# Pedalling: how often a clip is pedalled at all, how long the pedal stays down, and how soon
# it goes down again after lifting (a "legato" pedal change).
_PEDAL_PROBABILITY = 0.8
_PEDAL_HOLD = (0.5, 2.5)
_PEDAL_GAP = (0.03, 0.15)


class Reverb(NamedTuple):
    """FluidSynth reverb settings (``synth.reverb.*``); its defaults are 0.2, 0.0, 0.5, 0.9.

    Chapter: book/01_cqt_features.md
    """

    room_size: float
    damping: float
    width: float
    level: float


class Chorus(NamedTuple):
    """FluidSynth chorus settings (``synth.chorus.*``); its defaults are 3, 2.0, 0.3, 8.0.

    Chapter: book/01_cqt_features.md
    """

    voices: int
    level: float
    speed_hz: float
    depth_ms: float


@dataclass(frozen=True)
class Performance:
    """How one stem is played beyond its notes: what the renderer sends besides note events.

    The default ``Performance()`` is a plain dry rendering, the same as none.

    Attributes
    ----------
    detune_cents : tuple of float
        Pitch bend of every note, in the order of the notes handed to the renderer (empty: no
        bends). Cents, within the GM bend range of +-200.
    controls : tuple of (float, int, int)
        ``(seconds, controller, value)`` MIDI control changes, sent to every channel the stem
        plays on: CC1 vibrato depth, CC11 expression, CC64 sustain pedal.
    vibrato_hz : float or None
        Rate of the vibrato that CC1 opens (FluidSynth's vibrato LFO, shifted from the preset's
        rate, 8.2 Hz in GM soundfonts, to this); None keeps the preset's.
    reverb : Reverb or None
        FluidSynth reverb, None for off.
    chorus : Chorus or None
        FluidSynth chorus, None for off.

    Chapter: book/01_cqt_features.md
    """

    detune_cents: tuple[float, ...] = ()
    controls: tuple[tuple[float, int, int], ...] = ()
    vibrato_hz: float | None = None
    reverb: Reverb | None = None
    chorus: Chorus | None = None


@dataclass(frozen=True)
class Expression:
    """Ranges an expressive performance is drawn from; each lever can be turned off alone.

    Defaults follow Li & Zhu's released synthesis code where it has the lever: velocities
    46..127 as a random walk, a per-note bend (triangular, here within +-24 cents), onsets moved
    by up to half a frame, FluidSynth's reverb and chorus on (their defaults lie inside the
    ranges drawn). CC1 depth is drawn once per stem. Swells and the pedal are additions.

    Attributes
    ----------
    detune_cents : float
        Largest detune; 0 turns detuning off.
    vibrato_depth : int
        Largest CC1 (mod wheel) value, 0..127; a stem of a sustained instrument draws its
        depth uniformly up to it (GM soundfonts: 127 is about +-50 cents). 0: no vibrato.
    vibrato_hz : (float, float)
        Range of the vibrato rate.
    velocity_range : (int, int) or None
        Bounds of the velocity random walk, or None to keep the score's velocities.
    swell_depth : float
        Deepest expression (CC11) dip of sustained instruments, as a fraction of full scale
        (0..1); 0: no swells.
    pedal : bool
        Sustain pedal on pianos and electric pianos (labels extended by it).
    onset_jitter : float
        Largest onset shift in seconds (uniform); default half a label frame at 22.05 kHz with
        hop 256.
    effects : bool
        FluidSynth reverb and chorus (drawn per clip by :func:`draw_effects`).

    Chapter: book/01_cqt_features.md
    """

    detune_cents: float = 24.0
    vibrato_depth: int = 64
    vibrato_hz: tuple[float, float] = (4.5, 6.5)
    velocity_range: tuple[int, int] | None = (46, 127)
    swell_depth: float = 0.5
    pedal: bool = True
    onset_jitter: float = 0.5 * HOP_LENGTH / SAMPLE_RATE
    effects: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.detune_cents <= 200:
            raise ValueError(
                f"detune_cents must be 0..200 (the bend range), got {self.detune_cents}"
            )
        if not 0 <= self.vibrato_depth <= 127:
            raise ValueError(f"vibrato_depth must be a CC value 0..127, got {self.vibrato_depth}")
        if not 0 < self.vibrato_hz[0] <= self.vibrato_hz[1]:
            raise ValueError(f"vibrato_hz must be (lo, hi), 0 < lo <= hi, got {self.vibrato_hz}")
        if self.velocity_range is not None:
            lo, hi = self.velocity_range
            if not 1 <= lo <= hi <= 127:
                raise ValueError(f"velocity_range must lie in 1..127, got {self.velocity_range}")
        if not 0 <= self.swell_depth <= 1:
            raise ValueError(f"swell_depth must be 0..1, got {self.swell_depth}")
        if not self.onset_jitter >= 0:
            raise ValueError(f"onset_jitter must be >= 0 s, got {self.onset_jitter}")


def draw_effects(rng: np.random.Generator) -> tuple[Reverb, Chorus]:
    """Reverb and chorus for one clip (every stem of a mixture plays in the same room).

    Ranges are centred on FluidSynth's defaults, which Li & Zhu rendered with: room size
    0.1..0.8, damping 0..0.6, width 0.3..1, level 0.4..1; 2..4 chorus voices, level 0.5..2.5,
    0.2..0.5 Hz, 4..12 ms.

    Chapter: book/01_cqt_features.md
    """
    reverb = Reverb(*(float(rng.uniform(lo, hi)) for lo, hi in
                      ((0.1, 0.8), (0.0, 0.6), (0.3, 1.0), (0.4, 1.0))))  # fmt: skip
    voices = int(rng.integers(2, 5))
    level, speed, depth = (float(rng.uniform(lo, hi)) for lo, hi in
                           ((0.5, 2.5), (0.2, 0.5), (4.0, 12.0)))  # fmt: skip
    return reverb, Chorus(voices, level, speed, depth)


def velocity_walk(
    n: int, rng: np.random.Generator, velocity_range: tuple[int, int] = (46, 127)
) -> np.ndarray:
    """Velocities of ``n`` successive notes as a random walk reflected at the bounds.

    Starts mid-range; each step is Gaussian with a standard deviation of 1/16 of the range, so
    dynamics drift over a phrase instead of jumping note to note (Li & Zhu's scheme).

    Returns
    -------
    np.ndarray ``(n,)`` int64

    Chapter: book/01_cqt_features.md
    """
    lo, hi = velocity_range
    level, step = (lo + hi) / 2, (hi - lo) / 16
    out = np.empty(n, np.int64)
    for i, move in enumerate(rng.normal(0.0, step, n)):
        level += move
        level = 2 * hi - level if level > hi else 2 * lo - level if level < lo else level
        out[i] = round(min(max(level, lo), hi))  # a huge step could reflect past the far bound
    return out


def jitter_onsets(notes: Iterable[Note], rng: np.random.Generator, max_shift: float) -> list[Note]:
    """Move every onset by a uniform amount in ``[-max_shift, max_shift]``; offsets stay.

    The returned notes are the labels of what is rendered, so labels move with the audio. A
    shift never takes more than half a note, nor an onset below 0, and a note whose pitch is
    restruck earlier than before ends at the new onset.

    Returns
    -------
    list of Note
        Sorted by onset, then pitch.

    Chapter: book/01_cqt_features.md
    """
    notes = list(notes)
    moved = []
    for note, shift in zip(notes, rng.uniform(-max_shift, max_shift, len(notes)), strict=True):
        onset = min(max(note.onset + shift, 0.0), (note.onset + note.offset) / 2)
        moved.append(Note(onset, note.offset, note.pitch, note.velocity, note.source))
    return cut_at_restrikes(moved)


def extend_by_pedal(
    notes: Iterable[Note], pedal: Sequence[tuple[float, float]], seconds: float | None = None
) -> list[Note]:
    """Labels of pedalled notes: a key released while the pedal is down sounds until it lifts.

    The MAESTRO convention (Hawthorne et al., 2019): the offset moves to the pedal release, but
    no later than the next onset of the same pitch (a restruck key ends its predecessor) nor
    than ``seconds``.

    Parameters
    ----------
    notes : iterable of Note
    pedal : sequence of (down, up)
        Times in seconds the sustain pedal goes down and up, intervals not overlapping.
    seconds : float or None
        End of the clip.

    Returns
    -------
    list of Note
        Sorted by onset, then pitch.

    Chapter: book/01_cqt_features.md
    """
    extended = []
    for note in notes:
        offset = note.offset
        for down, up in pedal:
            if down < offset < up:
                offset = up if seconds is None else min(up, seconds)
                break
        extended.append(Note(note.onset, max(offset, note.offset), note.pitch, note.velocity,
                             note.source))  # fmt: skip
    return cut_at_restrikes(extended)


def _draw_pedal(seconds: float, rng: np.random.Generator) -> list[tuple[float, float]]:
    if rng.random() >= _PEDAL_PROBABILITY:
        return []
    pedal, t = [], float(rng.uniform(0.0, 0.5))
    while t < seconds:
        up = t + float(rng.uniform(*_PEDAL_HOLD))
        pedal.append((t, up))
        t = up + float(rng.uniform(*_PEDAL_GAP))
    return pedal


def _swell(seconds: float, depth: float, rng: np.random.Generator) -> list[tuple[float, int, int]]:
    """CC11 following a slow cosine (period 1.5..5 s) between full and ``1 - depth`` scale."""
    period, phase = rng.uniform(1.5, 5.0), rng.uniform(0.0, 2 * np.pi)
    times = np.arange(0.0, seconds, _SWELL_STEP)
    values = np.rint(127 * (1 - depth * 0.5 * (1 - np.cos(2 * np.pi * times / period + phase))))
    keep = np.r_[True, values[1:] != values[:-1]]  # send a value only when it changes
    return [(float(t), CC_EXPRESSION, int(v)) for t, v in zip(times[keep], values[keep],
                                                                  strict=True)]  # fmt: skip


def draw_performance(
    notes: Iterable[Note],
    program: int,
    seconds: float,
    rng: np.random.Generator,
    expression: Expression = Expression(),  # noqa: B008 (frozen, so a shared default is safe)
    effects: tuple[Reverb, Chorus] | None = None,
) -> tuple[list[Note], Performance]:
    """Draw how one stem is played, and the notes (labels) that result.

    Every lever draws from its own random stream, so turning one off (in ``expression``)
    leaves the others' draws unchanged. Drums get the onset jitter and the velocity walk only.

    Parameters
    ----------
    notes : iterable of Note
        The stem's score.
    program : int
        GM program 0..127, or 128 for drums.
    seconds : float
        Length of the clip (pedalled notes end by then).
    rng : numpy.random.Generator
    expression : Expression
        Ranges to draw from.
    effects : (Reverb, Chorus) or None
        The clip's room (:func:`draw_effects`); used when ``expression.effects``.

    Returns
    -------
    notes : list of Note
        The performed notes, sorted by onset then pitch: the labels.
    performance : Performance
        Its ``detune_cents`` follow the order of ``notes``.

    Chapter: book/01_cqt_features.md
    """
    cls, drum = program_to_class(program), is_drum_program(program)
    jitter_rng, velocity_rng, pedal_rng, detune_rng, swell_rng, vibrato_rng = rng.spawn(6)
    notes = sorted(notes, key=lambda n: (n.onset, n.pitch))
    if expression.onset_jitter > 0:
        notes = jitter_onsets(notes, jitter_rng, expression.onset_jitter)
    if expression.velocity_range is not None:
        velocities = velocity_walk(len(notes), velocity_rng, expression.velocity_range)
        notes = [Note(n.onset, n.offset, n.pitch, int(v), n.source)
                 for n, v in zip(notes, velocities, strict=True)]  # fmt: skip
    controls: list[tuple[float, int, int]] = []
    if expression.pedal and cls in _PEDAL_CLASSES:
        pedal = _draw_pedal(seconds, pedal_rng)
        notes = extend_by_pedal(notes, pedal, seconds)
        for down, up in pedal:
            controls += [(down, CC_SUSTAIN, 127), (up, CC_SUSTAIN, 0)]
    detune: tuple[float, ...] = ()
    if expression.detune_cents > 0 and not drum:
        # triangular like Li & Zhu's bends: most notes nearly in tune, a few well off
        size = 1 if cls in _KEYBOARD_CLASSES else len(notes)
        cents = detune_rng.triangular(-expression.detune_cents, 0.0, expression.detune_cents, size)
        detune = tuple(float(c) for c in np.broadcast_to(cents, len(notes)))
    vibrato_hz = None
    if not drum and is_sustained(program):
        if expression.swell_depth > 0:
            depth = swell_rng.uniform(0.0, expression.swell_depth)
            controls += _swell(seconds, depth, swell_rng)
        if expression.vibrato_depth > 0:
            depth = int(vibrato_rng.integers(0, expression.vibrato_depth + 1))
            controls.append((0.0, CC_MODULATION, depth))
            vibrato_hz = float(vibrato_rng.uniform(*expression.vibrato_hz))
    reverb, chorus = effects if expression.effects and effects is not None else (None, None)
    performance = Performance(tuple(detune), tuple(sorted(controls)), vibrato_hz, reverb, chorus)
    return notes, performance
