"""Bach10: four-part Bach chorales played by violin, clarinet, tenor saxophone and bassoon.

The real recordings the synthetic-data models are checked on (Duan, Pardo & Zhang, 2010). Each
piece has a mix, the four separately recorded stems, a frame-level pitch ground truth
(``GTF0s``, 10 ms hop) and note ground truth (``GTNotes``). The data is never shipped with the
package: :func:`bach10_root` finds a local copy.

Chapter: book/02_focal_loss_amt.md
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from timbrelab.audio import load_audio
from timbrelab.constants import SAMPLE_RATE
from timbrelab.metrics import (
    multipitch_scores,
    note_scores,
    note_with_offset_scores,
    notes_to_multipitch,
)
from timbrelab.notes import Note, midi_to_hz

#: Environment variable naming the folder that holds the ``NN-Name/`` piece folders.
BACH10_ENV = "TIMBRELAB_BACH10"
#: Parts in the order of the ``GTF0s`` rows and ``GTNotes`` cells (= ``Note.source``).
PARTS = ("violin", "clarinet", "saxophone", "bassoon")
# the dataset's own spelling of the stem files
_STEM_FILE_PARTS = ("violin", "clarinet", "saxphone", "bassoon")
# GTF0s/GTNotes frame grid: 46 ms frames, 10 ms hop, frame k (1-based) centred at 23 + 10 (k - 1) ms
_FIRST_CENTRE_S = 0.023
_HOP_S = 0.010
# a reference note spans its first frame centre - 5 ms to its last frame centre + 5 ms
_HALF_HOP_S = 0.005


def bach10_root() -> Path | None:
    """The local Bach10 folder, or None when there is none.

    ``$TIMBRELAB_BACH10`` when set; otherwise ``<repository>/../shared/data/bach10-dev`` next to
    the repository checkout this package was imported from, if it exists.

    Raises
    ------
    FileNotFoundError
        ``$TIMBRELAB_BACH10`` is set but is not a folder (a typo should not pass unnoticed).

    Chapter: book/02_focal_loss_amt.md
    """
    env = os.environ.get(BACH10_ENV)
    if env:
        root = Path(env).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: ${BACH10_ENV} does not name a folder")
        return root
    default = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "bach10-dev"
    return default if default.is_dir() else None


def _resolve_root(root: str | os.PathLike | None) -> Path:
    if root is None:
        found = bach10_root()
        if found is None:
            raise FileNotFoundError(
                f"no Bach10 data found: set ${BACH10_ENV} to the folder holding the pieces"
            )
        return found
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: Bach10 folder does not exist")
    return root


def list_pieces(root: str | os.PathLike | None = None) -> list[str]:
    """Names of the pieces (``"01-AchGottundHerr"``, ...) under ``root``, sorted.

    Parameters
    ----------
    root : str, PathLike or None
        Defaults to :func:`bach10_root`.

    Chapter: book/02_focal_loss_amt.md
    """
    root = _resolve_root(root)
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and p.name[:2].isdigit() and (p / f"{p.name}.wav").is_file()
    )


@dataclass
class Bach10Piece:
    """One Bach10 piece: audio, stems, frame pitch and note ground truth.

    Attributes
    ----------
    name : str
    mix : (N,) float32
        The mix at ``sample_rate``.
    stems : (4, N) float32
        The parts in :data:`PARTS` order; ``stems.sum(0)`` is ``mix`` (up to a few clipped
        samples in the original mix and resampling error).
    sample_rate : int
    f0_times : (F,) float64
        Centres of the ground-truth frames in seconds (``0.023 + 0.01 k``).
    f0_midi : (4, F) float64
        Fractional MIDI pitch per part and frame, 0 where the part is silent.
    notes : list of Note
        Reference notes, ``source`` = part index.
    parts : tuple of str

    Chapter: book/02_focal_loss_amt.md
    """

    name: str
    mix: np.ndarray
    stems: np.ndarray
    sample_rate: int
    f0_times: np.ndarray
    f0_midi: np.ndarray
    notes: list[Note]
    parts: tuple[str, ...] = PARTS

    def score(self, est_notes: Iterable[Note]) -> dict[str, float]:
        """FF, FN and FNO of ``est_notes`` against this piece: see :func:`bach10_scores`."""
        return bach10_scores(self.notes, self.f0_times, self.f0_midi, est_notes)


def frame_centres(n_frames: int) -> np.ndarray:
    """Centres in seconds of the ``GTF0s`` frames: ``(n_frames,)`` float64.

    Chapter: book/02_focal_loss_amt.md
    """
    return _FIRST_CENTRE_S + _HOP_S * np.arange(n_frames)


def gtnotes_to_notes(gt_notes: np.ndarray) -> list[Note]:
    """Reference notes from a ``GTNotes`` cell array, scored as the project's figures are.

    Each note's onset is its first frame's centre - 5 ms, its offset its last frame's centre
    + 5 ms and its pitch the median of its frames' MIDI pitches, rounded.

    Parameters
    ----------
    gt_notes : (4, 1) object array
        ``scipy.io.loadmat(...)["GTNotes"]``: per part, cells of ``(2, L)`` arrays (row 0 the
        1-based frame indices, row 1 the MIDI pitch per frame).

    Returns
    -------
    list of Note
        Sorted by onset; ``source`` = part index.

    Chapter: book/02_focal_loss_amt.md
    """
    notes = []
    for part, cells in enumerate(np.asarray(gt_notes, dtype=object).ravel()):
        for cell in np.asarray(cells, dtype=object).ravel():
            frames, pitches = np.asarray(cell, np.float64)
            # centre of 1-based frame k: 23 + 10 (k - 1) ms, as in frame_centres
            first, last = _FIRST_CENTRE_S + _HOP_S * (frames[[0, -1]] - 1)
            pitch = int(np.round(np.median(pitches)))
            notes.append(Note(first - _HALF_HOP_S, last + _HALF_HOP_S, pitch, source=part))
    return sorted(notes, key=lambda n: (n.onset, n.source, n.pitch))


def _find_piece(root: Path, name: str) -> Path:
    """The piece folder named ``name``, or the only one whose name starts with it (``"01"``)."""
    if (root / name).is_dir():
        return root / name
    pieces = list_pieces(root)
    matches = [p for p in pieces if p.startswith(name)]
    if len(matches) != 1:
        raise ValueError(
            f"{root}: no single Bach10 piece matches {name!r}; pieces: {', '.join(pieces)}"
        )
    return root / matches[0]


def load_piece(
    name: str, root: str | os.PathLike | None = None, sample_rate: int = SAMPLE_RATE
) -> Bach10Piece:
    """Load a Bach10 piece: mix and stems at ``sample_rate``, frame and note ground truth.

    Parameters
    ----------
    name : str
        Folder name (``"01-AchGottundHerr"``) or a unique prefix of it (``"01"``).
    root : str, PathLike or None
        Defaults to :func:`bach10_root`.
    sample_rate : int
        Audio is resampled to this rate.

    Returns
    -------
    Bach10Piece

    Raises
    ------
    FileNotFoundError
        No Bach10 folder, or a file of the piece is missing.
    ValueError
        No piece matches ``name``, or the stems and mix differ in length.

    Chapter: book/02_focal_loss_amt.md
    """
    import scipy.io

    folder = _find_piece(_resolve_root(root), name)
    base = folder / folder.name
    mix = load_audio(f"{base}.wav", sample_rate)
    # a part may rest for a whole excerpt: a silent stem is data, not a mistake
    stems = np.stack(
        [load_audio(f"{base}-{p}.wav", sample_rate, allow_silent=True) for p in _STEM_FILE_PARTS]
    )
    if stems.shape[1] != mix.shape[0]:
        raise ValueError(f"{folder}: stems have {stems.shape[1]} samples, the mix {mix.shape[0]}")
    f0_midi = scipy.io.loadmat(f"{base}-GTF0s.mat")["GTF0s"].astype(np.float64)
    notes = gtnotes_to_notes(scipy.io.loadmat(f"{base}-GTNotes.mat")["GTNotes"])
    return Bach10Piece(
        name=folder.name,
        mix=mix,
        stems=stems,
        sample_rate=sample_rate,
        f0_times=frame_centres(f0_midi.shape[1]),
        f0_midi=f0_midi,
        notes=notes,
    )


# --- scoring ---------------------------------------------------------------------------------


def f0_matrix_to_multipitch(f0_midi: np.ndarray) -> list[np.ndarray]:
    """Turn a ``(K, F)`` matrix of fractional MIDI pitches (0 = silent) into frequency lists.

    Returns
    -------
    list of F arrays
        The active parts' frequencies (Hz) per frame.

    Chapter: book/02_focal_loss_amt.md
    """
    f0_midi = np.asarray(f0_midi, np.float64)
    if f0_midi.ndim != 2:
        raise ValueError(f"f0_midi must be (parts, frames), got shape {f0_midi.shape}")
    return [midi_to_hz(column[column > 0]) for column in f0_midi.T]


def bach10_scores(
    ref_notes: Sequence[Note],
    ref_f0_times: np.ndarray,
    ref_f0_midi: np.ndarray,
    est_notes: Iterable[Note],
) -> dict[str, float]:
    """Score a transcription of a Bach10 piece the way the project's quoted figures are scored.

    - FF: the estimated notes rendered onto the ``GTF0s`` frame centres (a note covers the
      frames whose centre lies in ``[onset, offset)``), against the ``GTF0s`` pitches, by
      ``mir_eval.multipitch.evaluate``; F1 from its precision and recall.
    - FN: note F1, onset tolerance 50 ms, ``offset_ratio=None``.
    - FNO: the same with ``offset_ratio=0.2``.

    :func:`load_piece` gives all three references (``piece.notes``,
    ``piece.f0_times``, ``piece.f0_midi``). Average the scores over pieces yourself.

    Parameters
    ----------
    ref_notes : sequence of Note
        Reference notes from ``GTNotes``.
    ref_f0_times : (F,) float array
        ``GTF0s`` frame centres in seconds.
    ref_f0_midi : (4, F) float array
        ``GTF0s``: fractional MIDI pitch per part and frame, 0 = silent.
    est_notes : iterable of Note

    Returns
    -------
    dict
        ``FF``, ``FN``, ``FNO`` as fractions in ``[0, 1]``.

    Chapter: book/02_focal_loss_amt.md
    """
    est_notes = list(est_notes)
    times = np.asarray(ref_f0_times, np.float64)
    if np.shape(ref_f0_midi)[-1] != len(times):
        raise ValueError(
            f"ref_f0_midi has {np.shape(ref_f0_midi)[-1]} frames but ref_f0_times has {len(times)}"
        )
    frame = multipitch_scores(
        times, f0_matrix_to_multipitch(ref_f0_midi), times, notes_to_multipitch(est_notes, times)
    )
    return {
        "FF": frame["f1"],
        "FN": note_scores(ref_notes, est_notes)["f1"],
        "FNO": note_with_offset_scores(ref_notes, est_notes)["f1"],
    }
