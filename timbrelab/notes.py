"""Note events: the unit every transcription system in the book outputs.

A :class:`Note` is ``(onset_s, offset_s, midi_pitch, velocity, source)``. This module turns notes
into the frame/onset/offset piano rolls that models are trained on, turns binary rolls back into
notes, hands notes to ``mir_eval`` and reads/writes them as MIDI, CSV or JSON.

Chapter: book/02_focal_loss_amt.md
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from timbrelab.constants import FRAME_RATE, MIDI_MIN, N_PITCHES
from timbrelab.io import atomic_output

#: File formats understood by :func:`write_notes` / :func:`read_notes`, by file suffix.
NOTE_FORMATS = {".mid": "mid", ".midi": "mid", ".csv": "csv", ".json": "json"}
_CSV_FIELDS = ("onset", "offset", "pitch", "velocity", "source")
# MIDI time grid: 120 bpm (pretty_midi's default) and 500 ticks per beat = exactly 1 ms per tick,
# far finer than any frame rate used in the book, so MIDI round trips lose at most 0.5 ms.
_MIDI_TEMPO = 120.0
_MIDI_RESOLUTION = 500
_MIDI_TICK_S = 60.0 / (_MIDI_TEMPO * _MIDI_RESOLUTION)


@functools.total_ordering
@dataclass(frozen=True)
class Note:
    """One note event.

    Fields are normalised to plain Python ``float`` / ``int`` (numpy scalars are accepted), so
    notes compare, hash and serialise the same whatever produced them. Notes sort by onset,
    offset, pitch, velocity, then source, with an unknown source (None) before any index.

    Parameters
    ----------
    onset, offset : float
        Start and end in seconds, ``0 <= onset < offset``.
    pitch : int
        MIDI note number, 0..127.
    velocity : int
        MIDI velocity, 0..127.
    source : int or None
        Instrument / cluster index (``>= 0``), or None when unknown.

    Chapter: book/02_focal_loss_amt.md
    """

    onset: float
    offset: float
    pitch: int
    velocity: int = 100
    source: int | None = None

    def __post_init__(self) -> None:
        onset, offset = float(self.onset), float(self.offset)
        if not (math.isfinite(onset) and math.isfinite(offset)):
            raise ValueError(f"Note times must be finite, got onset={onset}, offset={offset}")
        if onset < 0:
            raise ValueError(f"Note onset must be >= 0 s, got {onset}")
        if offset <= onset:
            raise ValueError(f"Note offset ({offset} s) must be after its onset ({onset} s)")
        pitch = _as_int(self.pitch, "pitch", 0, 127)
        velocity = _as_int(self.velocity, "velocity", 0, 127)
        source = None if self.source is None else _as_int(self.source, "source", 0, None)
        # frozen dataclass: normalising the fields needs object.__setattr__
        for name, value in (
            ("onset", onset),
            ("offset", offset),
            ("pitch", pitch),
            ("velocity", velocity),
            ("source", source),
        ):
            object.__setattr__(self, name, value)

    def _order(self) -> tuple:
        return (
            self.onset,
            self.offset,
            self.pitch,
            self.velocity,
            -1 if self.source is None else self.source,
        )

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Note):
            return NotImplemented
        return self._order() < other._order()

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.offset - self.onset


def _as_int(value: object, name: str, lo: int, hi: int | None) -> int:
    """Check that ``value`` is an integer in ``[lo, hi]`` and return it as ``int``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        if not (isinstance(value, float | np.floating) and float(value).is_integer()):
            raise ValueError(f"Note {name} must be an integer, got {value!r}")
    result = int(value)  # type: ignore[call-overload]
    if result < lo or (hi is not None and result > hi):
        bounds = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"Note {name} must be in {bounds}, got {result}")
    return result


def notes_to_rolls(
    notes: Iterable[Note],
    n_frames: int,
    frame_rate: float = FRAME_RATE,
    midi_min: int = MIDI_MIN,
    n_pitches: int = N_PITCHES,
) -> dict[str, np.ndarray]:
    """Render notes as frame, onset and offset piano rolls.

    Frame ``t`` (time ``t / frame_rate``) is active for a note when
    ``onset <= t / frame_rate < offset``; a note shorter than a frame still gets the frame at
    its onset. The onset roll marks frame ``round(onset * frame_rate)``, the offset roll frame
    ``round(offset * frame_rate)``, clipped to the last frame. Notes whose pitch lies outside
    ``midi_min .. midi_min + n_pitches - 1`` or that start after the last frame are left out.

    Parameters
    ----------
    notes : iterable of Note
    n_frames : int
        Number of frames ``T`` of the rolls.
    frame_rate : float
        Frames per second.
    midi_min, n_pitches : int
        Row 0 of a roll is MIDI pitch ``midi_min``; there are ``n_pitches`` rows.

    Returns
    -------
    dict
        ``"frame"``, ``"onset"``, ``"offset"``: each ``(n_pitches, T)`` float32 in {0, 1}.

    Chapter: book/02_focal_loss_amt.md
    """
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    if frame_rate <= 0:
        raise ValueError(f"frame_rate must be > 0, got {frame_rate}")
    rolls = {
        key: np.zeros((n_pitches, n_frames), np.float32) for key in ("frame", "onset", "offset")
    }
    for note in notes:
        row = note.pitch - midi_min
        if not 0 <= row < n_pitches:
            continue
        start = _first_frame_at_or_after(note.onset * frame_rate)
        if start >= n_frames:
            continue
        stop = max(_first_frame_at_or_after(note.offset * frame_rate), start + 1)
        rolls["frame"][row, start : min(stop, n_frames)] = 1.0
        rolls["onset"][row, min(round(note.onset * frame_rate), n_frames - 1)] = 1.0
        rolls["offset"][row, min(round(note.offset * frame_rate), n_frames - 1)] = 1.0
    return rolls


def _first_frame_at_or_after(position: float) -> int:
    """``ceil(position)``, forgiving float error so that 3.0000000001 frames counts as 3."""
    return math.ceil(position - 1e-9)


def roll_to_notes(
    frame_roll: np.ndarray,
    frame_rate: float = FRAME_RATE,
    midi_min: int = MIDI_MIN,
    source: int | None = None,
    threshold: float = 0.5,
    velocity: int = 100,
) -> list[Note]:
    """Turn each run of active frames of a roll into a note: the inverse of :func:`notes_to_rolls`.

    A run of frames ``s .. e-1`` becomes ``Note(s / frame_rate, e / frame_rate, midi_min + row)``,
    so ``notes_to_rolls(roll_to_notes(roll), T)["frame"]`` gives ``roll`` back. This is the plain
    binary inverse; the decoders in ``timbrelab.decode`` turn posteriorgrams into notes.

    Parameters
    ----------
    frame_roll : (P, T) array
        Binary (or probability) roll; a frame is active where ``frame_roll >= threshold``.
    frame_rate : float
        Frames per second.
    midi_min : int
        MIDI pitch of row 0.
    source : int or None
        ``source`` given to every note.
    threshold : float
        Activity threshold.
    velocity : int
        Velocity given to every note.

    Returns
    -------
    list of Note
        Sorted by onset, then pitch.

    Chapter: book/02_focal_loss_amt.md
    """
    roll = np.asarray(frame_roll)
    if roll.ndim != 2:
        raise ValueError(f"frame_roll must be 2-D (pitches, frames), got shape {roll.shape}")
    if frame_rate <= 0:
        raise ValueError(f"frame_rate must be > 0, got {frame_rate}")
    active = roll >= threshold
    # +1 where a run starts, -1 one past where it ends, per row
    padded = np.pad(active.astype(np.int8), ((0, 0), (1, 1)))
    edges = np.diff(padded, axis=1)
    notes = []
    for row in range(active.shape[0]):
        starts = np.flatnonzero(edges[row] == 1)
        stops = np.flatnonzero(edges[row] == -1)
        for start, stop in zip(starts, stops, strict=True):
            notes.append(
                Note(start / frame_rate, stop / frame_rate, midi_min + row, velocity, source)
            )
    return sorted(notes, key=lambda n: (n.onset, n.pitch))


def midi_to_hz(midi: np.ndarray | float) -> np.ndarray:
    """Equal-tempered frequency in Hz of a (fractional) MIDI pitch, A4 = 69 = 440 Hz.

    Chapter: book/02_focal_loss_amt.md
    """
    return 440.0 * 2.0 ** ((np.asarray(midi, np.float64) - 69.0) / 12.0)


def notes_to_mir_eval(notes: Iterable[Note]) -> tuple[np.ndarray, np.ndarray]:
    """Convert notes to the arrays ``mir_eval.transcription`` expects.

    Returns
    -------
    intervals : (n, 2) float64
        ``[onset, offset]`` in seconds.
    pitches : (n,) float64
        Pitches in Hz (A4 = MIDI 69 = 440 Hz).

    Chapter: book/02_focal_loss_amt.md
    """
    notes = list(notes)
    intervals = np.array([[n.onset, n.offset] for n in notes], np.float64).reshape(-1, 2)
    return intervals, midi_to_hz([n.pitch for n in notes])


def _note_format(path: Path, format: str | None) -> str:
    if format is not None:
        key = format.lower().lstrip(".")
        if f".{key}" not in NOTE_FORMATS:
            raise ValueError(f"{path}: unknown note format {format!r}; use mid, midi, csv or json")
        return NOTE_FORMATS[f".{key}"]
    suffix = path.suffix.lower()
    if suffix not in NOTE_FORMATS:
        raise ValueError(
            f"{path}: cannot tell the note format from the suffix {suffix!r}; "
            "use .mid, .midi, .csv or .json (or pass format=)"
        )
    return NOTE_FORMATS[suffix]


def write_notes(
    notes: Iterable[Note],
    path: str | os.PathLike,
    format: str | None = None,
    programs: Sequence[int] | Mapping[int, int] | None = None,
    source_names: Sequence[str] | None = None,
) -> None:
    """Write notes to a MIDI, CSV or JSON file, atomically.

    The same notes always give the same bytes. MIDI files hold one track per source, in source
    order (notes without a source go to a track named ``unassigned``, first), with times on a
    1 ms grid; MIDI cannot store velocity 0, so such notes are written with velocity 1. CSV has
    the header ``onset,offset,pitch,velocity,source``; JSON is a list of objects with those keys.

    Parameters
    ----------
    notes : iterable of Note
    path : str or PathLike
        Output file; its folder must exist.
    format : {"mid", "midi", "csv", "json"} or None
        Defaults to the suffix of ``path``.
    programs : sequence or mapping of int, optional
        MIDI only: General MIDI program (0..127) of each source's track, ``programs[source]``;
        tracks default to program 0 (acoustic grand piano).
    source_names : sequence of str, optional
        MIDI only: tracks are named ``"<source_names[k]> (source k)"`` (e.g. the instruments a
        separating system found) instead of ``"source k"``; :func:`read_notes` reads ``k``
        back from either form.

    Raises
    ------
    ValueError
        Unknown format, a note that is not a :class:`Note`, or a bad program.
    OSError
        The folder is missing or not writable; the message names ``path``.

    Chapter: book/02_focal_loss_amt.md
    """
    path = Path(path)
    fmt = _note_format(path, format)
    notes = list(notes)
    for note in notes:
        if not isinstance(note, Note):
            raise ValueError(f"{path}: write_notes expects Note objects, got {note!r}")
    notes.sort()
    with atomic_output(path) as tmp:
        if fmt == "mid":
            _midi_from_notes(notes, programs, path, source_names).write(str(tmp))
        else:
            text = _csv_text(notes) if fmt == "csv" else _json_text(notes)
            tmp.write_text(text, encoding="utf-8", newline="")


def _csv_text(notes: list[Note]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(_CSV_FIELDS)
    for n in notes:
        source = "" if n.source is None else n.source
        writer.writerow([repr(n.onset), repr(n.offset), n.pitch, n.velocity, source])
    return buffer.getvalue()


def _json_text(notes: list[Note]) -> str:
    return json.dumps([asdict(n) for n in notes], indent=1) + "\n"


def _midi_from_notes(notes: list[Note], programs, path: Path, source_names=None):
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(resolution=_MIDI_RESOLUTION, initial_tempo=_MIDI_TEMPO)
    sources = sorted({n.source for n in notes}, key=lambda s: -1 if s is None else s)
    if source_names is not None and any(s is not None and s >= len(source_names) for s in sources):
        raise ValueError(f"{path}: source_names has no name for some note's source")
    for source in sources:
        program = 0
        if programs is not None and source is not None:
            try:
                program = programs[source]
            except (KeyError, IndexError):
                raise ValueError(f"{path}: programs has no entry for source {source}") from None
        if not (isinstance(program, int | np.integer) and 0 <= program <= 127):
            raise ValueError(f"{path}: program of source {source} must be 0..127, got {program!r}")
        name = "unassigned" if source is None else f"source {source}"
        if source_names is not None and source is not None:
            name = f"{source_names[source]} ({name})"
        track = pretty_midi.Instrument(program=int(program), name=name)
        for n in notes:
            if n.source != source:
                continue
            # snap to the tick grid here (not in pretty_midi) so every note keeps >= 1 tick
            start = round(n.onset / _MIDI_TICK_S)
            stop = max(round(n.offset / _MIDI_TICK_S), start + 1)
            track.notes.append(
                pretty_midi.Note(
                    velocity=max(n.velocity, 1),
                    pitch=n.pitch,
                    start=start * _MIDI_TICK_S,
                    end=stop * _MIDI_TICK_S,
                )
            )
        midi.instruments.append(track)
    return midi


def read_notes(path: str | os.PathLike) -> list[Note]:
    """Read notes from a MIDI, CSV or JSON file (anything :func:`write_notes` writes).

    MIDI tracks named ``source N`` (as written by :func:`write_notes`) give ``source=N``; the
    ``unassigned`` track gives ``source=None``; tracks of other MIDI files get their index in
    the file as source.

    Returns
    -------
    list of Note
        Sorted by onset, offset, pitch, velocity, source.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        Unknown suffix, or the file cannot be parsed; the message names ``path``.

    Chapter: book/02_focal_loss_amt.md
    """
    path = Path(path)
    fmt = _note_format(path, None)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such note file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty file (0 bytes), not a {fmt} note file")
    try:
        if fmt == "mid":
            notes = _notes_from_midi(path)
        elif fmt == "csv":
            notes = _notes_from_csv(path.read_text(encoding="utf-8"))
        else:
            notes = [Note(**row) for row in json.loads(path.read_text(encoding="utf-8"))]
    except (FileNotFoundError, PermissionError):
        raise
    except Exception as err:  # any parse problem becomes one clear error naming the file
        detail = str(err) or type(err).__name__  # some parsers raise without a message
        raise ValueError(f"{path}: not a readable {fmt} note file ({detail})") from err
    return sorted(notes)


def _notes_from_csv(text: str) -> list[Note]:
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != _CSV_FIELDS:
        raise ValueError(f"expected the header {','.join(_CSV_FIELDS)}, got {reader.fieldnames}")
    return [
        Note(
            float(row["onset"]),
            float(row["offset"]),
            int(row["pitch"]),
            int(row["velocity"]),
            int(row["source"]) if row["source"] else None,
        )
        for row in reader
    ]


def _notes_from_midi(path: Path) -> list[Note]:
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(str(path))
    notes = []
    for index, track in enumerate(midi.instruments):
        name = track.name.strip()
        # "source 2" or "Cello (source 2)"
        named = re.fullmatch(r"source (\d+)|.* \(source (\d+)\)", name)
        if name == "unassigned":
            source = None
        elif named:
            source = int(named.group(1) or named.group(2))
        else:
            source = index
        for n in track.notes:
            if n.end > n.start:  # some files hold zero-length notes; they are not events
                notes.append(Note(n.start, n.end, n.pitch, n.velocity, source))
    return notes
