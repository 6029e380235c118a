"""Random scores for synthetic training data.

Two kinds of score:

- :func:`random_score`: random piano rolls with a controlled pitch range, polyphony, note
  density, durations and velocities, the kind of data Li & Zhu train their timbre-agnostic
  transcriber on. Optional onset grid with timing jitter and a slow velocity curve add a little
  of the regularity and expression of played music at no cost.
- :func:`instrument_ascension` / :func:`pairwise_ascension`: the Durham report's "instrument
  ascension" (every note of an instrument's range, one after another) and its two-instrument
  version (every pair of notes of two monophonic instruments, played together).

Chapter: book/01_cqt_features.md
"""

from __future__ import annotations

import numpy as np

from timbrelab.constants import MIDI_MAX, MIDI_MIN
from timbrelab.data.gm import DRUM_PROGRAM, INSTRUMENT_CLASSES, program_to_class
from timbrelab.notes import Note

# Comfortable (not extreme) ranges per Jointist class; programs that differ within a class are
# overridden in _PROGRAM_RANGE. Random notes at the very edge of a range sound unlike the
# instrument, so these stay a little inside the textbook ranges.
_CLASS_RANGE = {
    "Piano": (28, 100), "Electric Piano": (28, 91), "Harpsichord": (29, 89), "Clavinet": (36, 84),
    "Chromatic Percussion": (53, 96), "Organ": (36, 96), "Accordion": (53, 89),
    "Harmonica": (60, 84), "Acoustic Guitar": (40, 84), "Electric Guitar": (40, 86),
    "Bass": (28, 55), "Violin": (55, 100), "Viola": (48, 88), "Cello": (36, 76),
    "Contrabass": (28, 60), "Strings": (36, 96), "Harp": (24, 103), "Timpani": (40, 55),
    "Voice": (48, 79), "Trumpet": (54, 84), "Trombone": (40, 72), "Tuba": (28, 58),
    "Horn": (41, 77), "Brass": (40, 84), "Saxophone": (49, 80), "Oboe": (58, 91),
    "Bassoon": (34, 75), "Clarinet": (50, 91), "Piccolo": (74, 108), "Flute": (60, 96),
    "Recorder": (60, 86), "Pipe": (60, 96), "Synth Lead": (48, 96), "Synth Pad": (36, 84),
    "Synth Effects": (36, 96), "Ethnic": (48, 84), "Percussive": (48, 84),
    "Sound Effects": (36, 84), "Drums": (35, 81),
}  # fmt: skip
_PROGRAM_RANGE = {
    8: (60, 108), 9: (79, 108), 10: (60, 96), 11: (53, 89), 12: (45, 96), 13: (65, 108),
    14: (60, 77), 15: (48, 84),  # celesta .. dulcimer
    64: (56, 87), 65: (49, 80), 66: (44, 75), 67: (36, 68),  # soprano .. baritone sax
    69: (52, 81),  # English horn (class "Horn" is the French horn's range)
    78: (60, 78),  # whistle: TimGM6mb has no samples above
}  # fmt: skip


def program_pitch_range(program: int, is_drum: bool = False) -> tuple[int, int]:
    """A sensible playable MIDI range ``(lo, hi)`` (inclusive) for a GM program.

    Bass programs sit low, piccolo and glockenspiel high; drums (program 128 or
    ``is_drum=True``) get the GM percussion keys 35..81. Ranges lie within MIDI 21..108.

    Chapter: book/01_cqt_features.md
    """
    cls = program_to_class(program, is_drum)
    if is_drum or program == DRUM_PROGRAM:
        return _CLASS_RANGE["Drums"]
    return _PROGRAM_RANGE.get(int(program), _CLASS_RANGE[INSTRUMENT_CLASSES[cls]])


def _as_rng(seed: int | np.random.Generator | None, rng: np.random.Generator | None):
    if rng is not None:
        return rng
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        raise ValueError("give a seed or an rng: scores are never drawn from global random state")
    return np.random.default_rng(seed)


def _check_range(pitch_range: tuple[int, int], name: str = "pitch_range") -> tuple[int, int]:
    lo, hi = (int(p) for p in pitch_range)
    if not 0 <= lo <= hi <= 127:
        raise ValueError(f"{name} must be (lo, hi) with 0 <= lo <= hi <= 127, got {pitch_range}")
    return lo, hi


def random_score(
    seconds: float,
    seed: int | np.random.Generator | None = None,
    *,
    rng: np.random.Generator | None = None,
    pitch_range: tuple[int, int] = (MIDI_MIN, MIDI_MAX),
    max_polyphony: int = 3,
    note_density: float = 4.0,
    min_duration: float = 0.1,
    max_duration: float = 1.0,
    velocity_range: tuple[int, int] = (40, 120),
    grid: float | None = None,
    timing_jitter: float = 0.0,
    source: int | None = None,
) -> list[Note]:
    """Draw a random piano roll.

    Onsets fall uniformly in ``[0, seconds - min_duration)`` (snapped to ``grid`` when given,
    then shifted by Gaussian ``timing_jitter``), durations are log-uniform in
    ``[min_duration, max_duration]`` (cut at ``seconds``), pitches uniform in ``pitch_range``.
    A note that restrikes a sounding pitch, or would exceed ``max_polyphony`` sounding notes,
    ends the clashing (or the oldest) note at its onset, as a player would; it is dropped
    instead when that would leave the old note shorter than ``min_duration``. Velocities follow
    a slow random sine ("phrasing") plus a little per-note noise, within ``velocity_range``.

    Parameters
    ----------
    seconds : float
        Length of the score.
    seed, rng : int or numpy.random.Generator
        Source of randomness (one of them is required; never the global state).
    pitch_range : (int, int)
        Lowest and highest MIDI pitch, inclusive.
    max_polyphony : int
        Most notes sounding at once (1 = monophonic).
    note_density : float
        Notes drawn per second before polyphony limits.
    min_duration, max_duration : float
        Note length bounds in seconds.
    velocity_range : (int, int)
        MIDI velocity bounds, 1..127.
    grid : float or None
        Onset grid step in seconds (e.g. an eighth note), or None for free onsets.
    timing_jitter : float
        Standard deviation in seconds of the onset deviation from the grid.
    source : int or None
        ``source`` of every note.

    Returns
    -------
    list of Note
        Sorted by onset then pitch.

    Chapter: book/01_cqt_features.md
    """
    if not seconds > 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    if max_polyphony < 1:
        raise ValueError(f"max_polyphony must be >= 1, got {max_polyphony}")
    if note_density < 0:
        raise ValueError(f"note_density must be >= 0, got {note_density}")
    if not 0 < min_duration <= max_duration:
        raise ValueError(
            f"need 0 < min_duration <= max_duration, got {min_duration}, {max_duration}"
        )
    v_lo, v_hi = (int(v) for v in velocity_range)
    if not 1 <= v_lo <= v_hi <= 127:
        raise ValueError(f"velocity_range must lie in 1..127 with lo <= hi, got {velocity_range}")
    lo, hi = _check_range(pitch_range)
    rng = _as_rng(seed, rng)

    # Draw everything up front, in a fixed order, so the score depends only on the generator.
    n = int(rng.poisson(note_density * seconds))
    latest = max(seconds - min_duration, 0.0)
    onsets = np.sort(rng.uniform(0.0, latest, n))
    durations = np.exp(rng.uniform(np.log(min_duration), np.log(max_duration), n))
    pitches = rng.integers(lo, hi + 1, n)
    swell_period = rng.uniform(2.0, 8.0)
    swell_phase = rng.uniform(0.0, 2 * np.pi)
    noise = rng.normal(0.0, 0.05, n)
    jitter = rng.normal(0.0, timing_jitter, n) if timing_jitter > 0 else np.zeros(n)
    if grid is not None:
        if not grid > 0:
            raise ValueError(f"grid must be > 0 seconds, got {grid}")
        onsets = np.round(onsets / grid) * grid
    onsets = np.maximum(onsets + jitter, 0.0)
    order = np.argsort(onsets, kind="stable")

    # velocity curve in [0, 1] -> velocity_range
    level = 0.5 + 0.4 * np.sin(2 * np.pi * onsets / swell_period + swell_phase) + noise
    velocities = np.rint(v_lo + np.clip(level, 0.0, 1.0) * (v_hi - v_lo)).astype(int)

    # [onset, offset, pitch, velocity] of accepted notes; offsets may still be shortened
    kept: list[list] = []
    for i in order:
        onset, pitch = float(onsets[i]), int(pitches[i])
        offset = min(onset + float(durations[i]), float(seconds))
        if onset > latest:  # pushed past the end by the grid or the jitter
            continue
        sounding = [note for note in kept if note[1] > onset]
        # A restruck pitch, or one voice too many, cuts the clashing (or oldest) sounding note
        # short, as a player would; if that note would become shorter than min_duration, the
        # new note is dropped instead (so note_density is an upper bound).
        clash = [note for note in sounding if note[2] == pitch]
        if not clash and len(sounding) >= max_polyphony:
            clash = [min(sounding, key=lambda note: note[0])]
        if clash:
            if onset - clash[0][0] < min_duration:
                continue
            clash[0][1] = onset
        kept.append([onset, offset, pitch, int(velocities[i])])
    notes = [Note(on, off, pitch, vel, source) for on, off, pitch, vel in kept]
    return sorted(notes, key=lambda n: (n.onset, n.pitch))


def instrument_ascension(
    pitch_range: tuple[int, int],
    note_seconds: float = 0.5,
    gap_seconds: float = 0.0,
    velocity: int = 100,
    start: float = 0.0,
    source: int | None = None,
) -> list[Note]:
    """Every note of a range, lowest to highest, one at a time (Durham's "instrument ascension").

    Note ``i`` (pitch ``lo + i``) lasts ``note_seconds`` from
    ``start + i * (note_seconds + gap_seconds)``; the default 0.5 s is a crotchet at 120 bpm.

    Returns
    -------
    list of Note
        ``hi - lo + 1`` notes.

    Chapter: book/01_cqt_features.md
    """
    lo, hi = _check_range(pitch_range)
    if not note_seconds > 0 or gap_seconds < 0 or start < 0:
        raise ValueError("need note_seconds > 0, gap_seconds >= 0 and start >= 0")
    step = note_seconds + gap_seconds
    return [
        Note(start + i * step, start + i * step + note_seconds, pitch, velocity, source)
        for i, pitch in enumerate(range(lo, hi + 1))
    ]


def pairwise_ascension(
    range_a: tuple[int, int],
    range_b: tuple[int, int],
    note_seconds: float = 0.5,
    gap_seconds: float = 0.0,
    velocity: int = 100,
    sources: tuple[int, int] = (0, 1),
) -> tuple[list[Note], list[Note]]:
    """Every pair of notes of two monophonic instruments, each pair played together.

    The two-instrument ascension of the Durham report: for each pitch ``a`` of ``range_a``
    (ascending) and each pitch ``b`` of ``range_b`` (ascending), instrument A plays ``a`` while
    instrument B plays ``b``; pairs follow one another every ``note_seconds + gap_seconds``.

    Returns
    -------
    notes_a, notes_b : list of Note
        One note per pair each, ``source`` from ``sources``.

    Chapter: book/01_cqt_features.md
    """
    lo_a, hi_a = _check_range(range_a, "range_a")
    lo_b, hi_b = _check_range(range_b, "range_b")
    if not note_seconds > 0 or gap_seconds < 0:
        raise ValueError("need note_seconds > 0 and gap_seconds >= 0")
    step = note_seconds + gap_seconds
    notes_a, notes_b = [], []
    pairs = [(a, b) for a in range(lo_a, hi_a + 1) for b in range(lo_b, hi_b + 1)]
    for i, (a, b) in enumerate(pairs):
        t = i * step
        notes_a.append(Note(t, t + note_seconds, a, velocity, sources[0]))
        notes_b.append(Note(t, t + note_seconds, b, velocity, sources[1]))
    return notes_a, notes_b
