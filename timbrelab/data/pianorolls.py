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

from collections.abc import Iterable, Sequence

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


def cut_at_restrikes(notes: Iterable[Note]) -> list[Note]:
    """End every note no later than the next onset of its pitch (in the same source).

    A key cannot sound twice at once: a restrike ends the note before it. Of two notes of one
    pitch starting together, only the later-listed one is kept.

    Returns
    -------
    list of Note
        Sorted by onset, then pitch.

    Chapter: book/01_cqt_features.md
    """
    out = []
    by_key = sorted(notes, key=lambda n: (-1 if n.source is None else n.source, n.pitch, n.onset))
    for note, after in zip(by_key, [*by_key[1:], None], strict=True):
        if after is not None and (after.source, after.pitch) == (note.source, note.pitch):
            if after.onset <= note.onset:
                continue
            if after.onset < note.offset:
                note = Note(note.onset, after.onset, note.pitch, note.velocity, note.source)
        out.append(note)
    return sorted(out, key=lambda n: (n.onset, n.pitch))


def _truncated_normal(
    rng: np.random.Generator, mean: float, sigma: float, lo: float, hi: float
) -> float:
    """One draw of a normal restricted to ``[lo, hi]`` (inverse CDF: no rejection loop)."""
    from scipy.special import ndtr, ndtri

    a, b = ndtr((lo - mean) / sigma), ndtr((hi - mean) / sigma)
    return float(np.clip(mean + sigma * ndtri(rng.uniform(a, b)), lo, hi))


def dense_score(
    seconds: float,
    seed: int | np.random.Generator | None = None,
    *,
    rng: np.random.Generator | None = None,
    pitch_range: tuple[int, int] = (24, 107),
    octave_weights: Sequence[int] = (1, 3, 5, 6, 5, 3, 1),
    mean_duration: float = 0.372,
    min_duration: float = 0.046,
    chord_probability: float = 0.17,
    chord_intervals: Sequence[int] = (4, 5, 7, 12),
    near_probability: float = 0.7,
    velocity: int = 100,
    source: int | None = None,
) -> list[Note]:
    """A dense single-instrument score in the style of Li & Zhu's synthetic training data.

    A melodic line fills the clip: each note starts between the previous note's onset and a
    third of its length after its end (a truncated normal around "just before it ends"), and
    lasts a truncated normal duration (``min_duration`` to 5x ``mean_duration``, mean
    ``mean_duration``, standard deviation ``(mean - min) / 2``: 46 ms to 1.9 s, mean 372 ms, a
    quarter note at 161 bpm). Pitches come from a shuffled deck that holds every pitch of the
    range as often as the weight of its part of the range (``octave_weights`` cut the range
    into equal parts: with the defaults, the octaves C1..B7, the outer ones rare because
    timbres converge there), so a clip covers the range evenly; with ``near_probability`` the
    next pitch is instead the one nearest the previous among the next 9 of the deck, which
    gives the line some continuity and repeated notes. A note then gets a partner at its onset
    with probability ``chord_probability`` plus up to 0.2 for long notes, and again with
    ``chord_probability`` (so chords of 3, 4 notes occur); 85% of partners lie at one of
    ``chord_intervals`` (whose harmonics overlap the note's: the hard case for a
    transcriber), upwards from the lower half of the range and downwards from the upper half,
    the rest anywhere. A key still sounding is restruck when it ends.

    Parameters
    ----------
    seconds : float
        Length of the score.
    seed, rng : int or numpy.random.Generator
        Source of randomness (one of them is required).
    pitch_range : (int, int)
        Lowest and highest MIDI pitch, inclusive (default C1..B7, MIDI 24..107).
    octave_weights : sequence of int
        Relative frequency of each part of the range, >= 0, not all 0.
    mean_duration, min_duration : float
        Note lengths in seconds.
    chord_probability : float
        Base probability that a note gets a partner at its onset.
    chord_intervals : sequence of int
        Semitone intervals of most partners.
    near_probability : float
        Probability that the next pitch is drawn near the previous one.
    velocity : int
        Velocity of every note (dynamics come with :mod:`~timbrelab.data.expression`).
    source : int or None
        ``source`` of every note.

    Returns
    -------
    list of Note
        Sorted by onset then pitch; no two notes of one pitch overlap.

    Chapter: book/01_cqt_features.md
    """
    if not seconds > 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    if not 0 < min_duration < mean_duration:
        raise ValueError(f"need 0 < min_duration < mean_duration, got {min_duration}, "
                         f"{mean_duration}")  # fmt: skip
    weights = np.asarray(octave_weights, np.int64)
    if weights.ndim != 1 or len(weights) == 0 or (weights < 0).any() or weights.sum() == 0:
        raise ValueError(f"octave_weights must be integers >= 0, not all 0, got {octave_weights}")
    lo, hi = _check_range(pitch_range)
    rng = _as_rng(seed, rng)
    max_duration, sigma = 5 * mean_duration, (mean_duration - min_duration) / 2
    middle = (lo + hi) / 2
    pitches = np.arange(lo, hi + 1)
    deck_pool = np.repeat(pitches, weights[(pitches - lo) * len(weights) // len(pitches)])
    deck: list[int] = []

    def draw_pitch(near: int | None) -> int:
        if not deck:
            deck.extend(int(p) for p in rng.permutation(deck_pool))
        if near is not None and rng.random() < near_probability:
            # bring the nearest of the next 9 cards to the top
            window = deck[-9:]
            nearest = len(deck) - len(window) + int(np.argmin([abs(p - near) for p in window]))
            deck[nearest], deck[-1] = deck[-1], deck[nearest]
        return deck.pop()

    kept: list[list] = []  # [onset, offset, pitch]

    def place(onset: float, pitch: int) -> list | None:
        """Add a note at ``onset`` (later if its key still sounds); None if no room is left."""
        duration = _truncated_normal(rng, mean_duration, sigma, min_duration, max_duration)
        for note in kept:
            if note[2] == pitch and note[0] <= onset < note[1]:
                onset = note[1]
        if onset >= seconds or (onset + duration > seconds and seconds - onset < mean_duration / 2):
            return None  # no room, or a note the end would cut too short
        kept.append([onset, min(onset + duration, seconds), pitch])
        return kept[-1]

    chords, previous = [], None
    while True:
        if previous is None:
            onset = 0.0
        else:
            length = previous[1] - previous[0]
            gap = _truncated_normal(rng, -min_duration, sigma, -length, length / 3)
            onset = previous[1] + gap
        note = place(onset, draw_pitch(None if previous is None else previous[2]))
        if note is None:
            break
        length = note[1] - note[0]
        if rng.random() < chord_probability + 0.2 * length / max_duration:
            chords.append((note[0], note[2]))
        previous = note
    for onset, pitch in chords:  # grows while it runs: a partner may get a partner
        if rng.random() < chord_probability:
            chords.append((onset, pitch))
        if rng.random() < 0.85:
            interval = int(rng.choice(chord_intervals)) * (1 if pitch < middle else -1)
            if not lo <= pitch + interval <= hi:  # a narrow range: try the other way
                interval = -interval
            partner = int(np.clip(pitch + interval, lo, hi))
        else:
            partner = draw_pitch(None)
        place(onset, partner)
    notes = [Note(on, off, pitch, velocity, source) for on, off, pitch in kept]
    return cut_at_restrikes(notes)


# Scales of the ensemble style (pitch classes above the tonic): major and harmonic minor.
_SCALES = ((0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 11))
# Melodic steps in scale degrees and their probabilities: mostly stepwise, a few leaps.
_STEPS = (0, 1, -1, 2, -2, 3, -3, 4, -4, 7, -7)
_STEP_P = (0.15, 0.3, 0.3, 0.08, 0.08, 0.02, 0.02, 0.015, 0.015, 0.01, 0.01)


def _registers(
    ranges: list[tuple[int, int]], width: int, rng: np.random.Generator
) -> list[tuple[int, int]]:
    """Narrow windows, one per voice (highest voice first), descending where the ranges allow."""
    bounds = [(lo + min(width, hi - lo) / 2, hi - min(width, hi - lo) / 2) for lo, hi in ranges]
    centres: list[float] = []
    for a, b in bounds:  # top down: each voice 3..8 semitones below the one above
        target = rng.uniform(a, b) if not centres else centres[-1] - rng.uniform(3.0, 8.0)
        centres.append(float(np.clip(target, a, b)))
    for r in range(len(centres) - 2, -1, -1):  # bottom up: lift a voice the range pushed under
        centres[r] = min(max(centres[r], centres[r + 1] + 3.0), bounds[r][1])
    return [(round(c - min(width, hi - lo) / 2), round(c + min(width, hi - lo) / 2))
            for c, (lo, hi) in zip(centres, ranges, strict=True)]  # fmt: skip


def ensemble_score(
    seconds: float,
    ranges: Sequence[tuple[int, int]],
    seed: int | np.random.Generator | None = None,
    *,
    rng: np.random.Generator | None = None,
    tempo: tuple[float, float] = (60.0, 100.0),
    register: int = 14,
    velocity_range: tuple[int, int] = (60, 100),
    sources: Sequence[int] | None = None,
) -> list[list[Note]]:
    """Monophonic voices written together, chorale-like, one per instrument (as in Bach10).

    Voices are ranked by the centre of their instrument's range (highest first = soprano) and
    each gets a narrow register (``register`` semitones) inside its range, each 3..8 semitones
    below the one above where the ranges allow. All voices share a key (major or harmonic
    minor) and a rhythm grid of eighth notes at a tempo drawn in ``tempo`` (quarter notes per
    minute): on each beat a voice plays a quarter (70%), two eighths (15%) or holds its note
    (15%). Melodies move mostly by step (scale steps 0, +-1, +-2 with 15%, 60%, 16%, the
    rest +-3, +-4 or an octave) and never cross: a voice sounds at or below the voice above it and
    at or above the voice below it at every instant (a unison is allowed); where its register
    would force a crossing, the order wins. Each note ends 0..30 ms before the voice's next
    onset (articulation); the last runs to the end.

    Parameters
    ----------
    seconds : float
        Length of the score.
    ranges : sequence of (int, int)
        Playable range of each voice's instrument
        (:func:`program_pitch_range`), any order.
    seed, rng : int or numpy.random.Generator
        Source of randomness (one of them is required).
    tempo : (float, float)
        Range of the tempo in beats per minute.
    register : int
        Width in semitones of each voice's register.
    velocity_range : (int, int)
        Each voice plays at one velocity drawn in this range.
    sources : sequence of int or None
        ``source`` of each voice's notes (default: its index).

    Returns
    -------
    list of list of Note
        The notes of each voice, in the order of ``ranges``; each voice is monophonic.

    Chapter: book/01_cqt_features.md
    """
    if not seconds > 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    ranges = [_check_range(r, "ranges") for r in ranges]
    k = len(ranges)
    sources = list(range(k)) if sources is None else [int(s) for s in sources]
    if k == 0 or len(sources) != k:
        raise ValueError(f"need at least one range and one source per range, got {k}, {sources}")
    if not 0 < tempo[0] <= tempo[1] or register < 1:
        raise ValueError(f"need 0 < tempo[0] <= tempo[1] and register >= 1, got {tempo}, "
                         f"{register}")  # fmt: skip
    rng = _as_rng(seed, rng)
    order = sorted(range(k), key=lambda v: (-(ranges[v][0] + ranges[v][1]), v))
    windows = dict(zip(order, _registers([ranges[v] for v in order], register, rng), strict=True))
    tonic, scale = int(rng.integers(12)), _SCALES[int(rng.integers(2))]
    in_key = np.array([p for p in range(128) if (p - tonic) % 12 in scale])
    eighth = 30.0 / rng.uniform(*tempo)
    n_beats = int(np.ceil(seconds / (2 * eighth)))
    velocities = rng.integers(velocity_range[0], velocity_range[1] + 1, k)

    # rhythm: the grid points (eighths) where each voice strikes
    strikes = [set() for _ in range(k)]
    for v in range(k):
        for beat, u in enumerate(rng.random(n_beats)):
            if beat == 0 or u < 0.85:  # else (15%) the voice holds through the beat
                strikes[v].add(2 * beat)
            if 0.7 <= u < 0.85:  # two eighths
                strikes[v].add(2 * beat + 1)
    # pitches, grid point by grid point, top voice first
    current: dict[int, int] = {}
    played: list[list[tuple[int, int]]] = [[] for _ in range(k)]  # (grid point, pitch)
    for g in sorted(set().union(*strikes)):
        for r, v in enumerate(order):
            if g not in strikes[v]:
                continue
            upper = current[order[r - 1]] if r > 0 else MIDI_MAX
            below = [current[w] for w in order[r + 1 :] if w in current and g not in strikes[w]]
            lower = max(below, default=MIDI_MIN)
            w_lo, w_hi = windows[v]
            if v in current:
                degree = int(np.searchsorted(in_key, current[v]))
                step = int(rng.choice(_STEPS, p=_STEP_P))
                target = int(in_key[np.clip(degree + step, 0, len(in_key) - 1)])
            else:
                target = (w_lo + w_hi) // 2
            candidates = in_key[(in_key >= max(lower, w_lo)) & (in_key <= min(upper, w_hi))]
            if len(candidates) == 0:  # the register would cross a neighbour: the order wins
                candidates = in_key[(in_key >= lower) & (in_key <= upper)]
            if len(candidates) == 0:
                candidates = np.arange(lower, upper + 1)
            current[v] = int(candidates[np.argmin(np.abs(candidates - target))])
            played[v].append((g, current[v]))

    voices = []
    for v in range(k):
        timed = [(g * eighth, pitch) for g, pitch in played[v] if g * eighth < seconds]
        notes = []
        for (onset, pitch), end in zip(timed, [t for t, _ in timed[1:]] + [seconds], strict=True):
            gap = rng.uniform(0.0, min(0.03, (end - onset) / 4)) if end < seconds else 0.0
            notes.append(Note(onset, end - gap, pitch, int(velocities[v]), sources[v]))
        voices.append(notes)
    return voices
