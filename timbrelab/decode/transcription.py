"""Posteriorgrams to notes: the step between a network's frame/onset probabilities and MIDI.

Two decoders, from simple to careful:

* :func:`onsets_frames_decode` (Hawthorne et al., 2018): a note starts where the onset
  probability rises above a threshold and lasts while the frame probability stays above one.
* :func:`posteriorgram_to_notes` (in the spirit of Basic Pitch's note creation, Bittner et al.,
  2022): onset *peaks* start notes, a note survives short dips of its frame probability,
  onsets missed by the onset head are inferred from jumps of the frame probability, and the
  "melodia trick" recovers notes that have frame energy but no onset at all.

:func:`posteriorgram_pieces_to_notes` gives :func:`posteriorgram_to_notes`'s notes for a
posteriorgram that arrives in pieces, holding only a few minutes of it at a time.

Chapter: book/02_focal_loss_amt.md
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from timbrelab.constants import FRAME_RATE, MIDI_MIN
from timbrelab.notes import Note


def _as_posteriorgrams(frame_probs, onset_probs) -> tuple[np.ndarray, np.ndarray]:
    """Both posteriorgrams as float32 numpy ``(P, T)`` arrays of the same shape."""
    frames, onsets = (
        np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float32)
        for x in (frame_probs, onset_probs)
    )
    if frames.ndim != 2:
        raise ValueError(f"frame_probs must be 2-D (pitches, frames), got shape {frames.shape}")
    if onsets.shape != frames.shape:
        raise ValueError(
            f"onset_probs has shape {onsets.shape} but frame_probs has {frames.shape}; "
            "they must match"
        )
    return frames, onsets


def _check_rate(frame_rate: float) -> None:
    if frame_rate <= 0:
        raise ValueError(f"frame_rate must be > 0, got {frame_rate}")


def _by_time(note: Note) -> tuple[float, int]:
    return note.onset, note.pitch


def _make_note(
    frames: np.ndarray,
    row: int,
    start: int,
    stop: int,
    frame_rate: float,
    midi_min: int,
    first_frame: int = 0,
) -> Note:
    """Note for frames ``start .. stop-1`` of ``row``; velocity from the mean frame probability.

    Times follow :func:`timbrelab.notes.notes_to_rolls`: frame ``t`` sits at ``t / frame_rate``,
    so the note covers ``[start, stop) / frame_rate``; ``frames`` may be a piece of a longer
    posteriorgram that starts at its frame ``first_frame``.
    """
    amplitude = float(frames[row, start:stop].mean())
    velocity = min(max(round(127 * amplitude), 1), 127)
    return Note(
        (first_frame + start) / frame_rate,
        (first_frame + stop) / frame_rate,
        midi_min + row,
        velocity,
    )


def onsets_frames_decode(
    frame_probs,
    onset_probs,
    frame_rate: float = FRAME_RATE,
    onset_threshold: float = 0.5,
    frame_threshold: float = 0.5,
    min_note_seconds: float = 0.0,
    midi_min: int = MIDI_MIN,
) -> list[Note]:
    """Decode with the Onsets and Frames rule: no onset, no note.

    Per pitch, a note starts at each frame where the onset probability rises above
    ``onset_threshold`` and continues while the onset or the frame probability stays above
    its threshold. A new onset while a note sounds ends that note and starts the next one, so
    repeated notes of one pitch stay separate; frame activity without an onset is ignored.

    Parameters
    ----------
    frame_probs, onset_probs : (P, T) array or Tensor
        Frame and onset probabilities (after the sigmoid), row ``p`` = MIDI ``midi_min + p``.
    frame_rate : float
        Frames per second.
    onset_threshold, frame_threshold : float
        Activity thresholds (Hawthorne et al. use 0.5 for both).
    min_note_seconds : float
        Notes shorter than this are dropped.
    midi_min : int
        MIDI pitch of row 0.

    Returns
    -------
    list of Note
        Sorted by onset, then pitch; velocity is ``127 *`` the mean frame probability over
        the note.

    Chapter: book/02_focal_loss_amt.md
    """
    frames, onsets = _as_posteriorgrams(frame_probs, onset_probs)
    _check_rate(frame_rate)
    min_frames = max(1, round(min_note_seconds * frame_rate))
    onset_on = onsets > onset_threshold
    sounding = onset_on | (frames > frame_threshold)
    # rising edges of the onset detector: a two-frame onset is one onset, not two notes
    starts = onset_on & ~np.pad(onset_on, ((0, 0), (1, 0)))[:, :-1]
    notes = []
    n_frames = frames.shape[1]
    for row, start in zip(*np.nonzero(starts), strict=True):
        stop = start + 1
        while stop < n_frames and sounding[row, stop] and not starts[row, stop]:
            stop += 1
        if stop - start >= min_frames:
            notes.append(_make_note(frames, row, start, stop, frame_rate, midi_min))
    return sorted(notes, key=_by_time)


#: Frames over which add_inferred_onsets looks for a jump, as posteriorgram_to_notes uses it.
_JUMP_FRAMES = 2


def _frame_jumps(frames: np.ndarray, before: np.ndarray) -> np.ndarray:
    """``(P, T)`` jumps of ``frames`` (see :func:`add_inferred_onsets`), not yet rescaled.

    ``before`` holds the ``(P, n_diff)`` frames that precede ``frames`` (zeros at the start
    of a recording).
    """
    n_diff, n_frames = before.shape[1], frames.shape[1]
    padded = np.concatenate([before, frames], axis=1)
    rises = [frames - padded[:, n_diff - n : n_diff - n + n_frames] for n in range(1, n_diff + 1)]
    return np.clip(np.min(rises, axis=0), 0.0, None)


def _add_jumps(
    onsets: np.ndarray, jumps: np.ndarray, onset_peak: float, jump_peak: float
) -> np.ndarray:
    """Element-wise maximum of onsets and jumps, the jumps rescaled in place so that the largest
    (``jump_peak``) equals the largest onset probability (``onset_peak``). The peaks are the
    float32 maxima of the arrays, so the scale is computed in float32 wherever they come from."""
    if jump_peak > 0:
        jumps *= onset_peak / jump_peak
    return np.maximum(onsets, jumps)


def add_inferred_onsets(onset_probs, frame_probs, n_diff: int = _JUMP_FRAMES) -> np.ndarray:
    """Strengthen onsets with jumps of the frame probability (Basic Pitch's onset inference).

    A jump is the smallest of the rises ``frame[t] - frame[t - n]`` for ``n = 1 .. n_diff``
    (taking the smallest ignores one-frame flicker); jumps are rescaled so the largest equals
    the largest onset probability, and the result is the element-wise maximum of onsets and
    jumps. Frames before the recording count as silent, so a note sounding from frame 0 has
    an inferred onset there.

    Parameters
    ----------
    onset_probs, frame_probs : (P, T) array

    Returns
    -------
    (P, T) float32 array

    Chapter: book/02_focal_loss_amt.md
    """
    frames, onsets = _as_posteriorgrams(frame_probs, onset_probs)
    jumps = _frame_jumps(frames, np.zeros((frames.shape[0], n_diff), np.float32))
    return _add_jumps(onsets, jumps, onsets.max(initial=-np.inf), jumps.max(initial=0.0))


def _onset_peaks(onsets: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(rows, frames) of local maxima along time above ``threshold``, latest frame first.

    A peak is higher than the previous frame and at least as high as the next, so a plateau
    counts once, at its first frame.
    """
    padded = np.pad(onsets, ((0, 0), (1, 1)), constant_values=-np.inf)
    peaks = (onsets > padded[:, :-2]) & (onsets >= padded[:, 2:]) & (onsets > threshold)
    rows, times = np.nonzero(peaks)
    order = np.argsort(-times, kind="stable")
    return rows[order], times[order]


def _walk(energy: np.ndarray, start: int, step: int, threshold: float, tolerance: int) -> int:
    """Index one past the last frame at or above ``threshold`` walking from ``start`` by ``step``.

    The walk stops after ``tolerance`` consecutive frames below ``threshold`` (or at the edge);
    the trailing quiet frames are not part of the note. ``start`` itself is always included.
    """
    last, quiet, i = start, 0, start + step
    while 0 <= i < energy.shape[0] and quiet < tolerance:
        if energy[i] < threshold:
            quiet += 1
        else:
            last, quiet = i, 0
        i += step
    return last + step


@dataclass(frozen=True)
class _NoteRules:
    """The settings of :func:`posteriorgram_to_notes` that turn onsets and frames into notes."""

    frame_rate: float
    onset_threshold: float
    frame_threshold: float
    min_note_seconds: float
    energy_tolerance: int
    melodia_trick: bool
    midi_min: int

    def __post_init__(self) -> None:
        _check_rate(self.frame_rate)
        if self.energy_tolerance < 1:
            raise ValueError(f"energy_tolerance must be >= 1 frame, got {self.energy_tolerance}")

    @property
    def min_frames(self) -> int:
        return max(1, round(self.min_note_seconds * self.frame_rate))


def _notes_of(
    frames: np.ndarray, onsets: np.ndarray, rules: _NoteRules, first_frame: int = 0
) -> list[Note]:
    """Steps 2 to 4 of :func:`posteriorgram_to_notes` on ``(P, T)`` posteriorgrams whose onsets
    already include the inferred ones; ``first_frame``: where they start in the recording."""
    remaining = frames.copy()  # frame energy not yet claimed by a note
    notes = []
    threshold, tolerance = rules.frame_threshold, rules.energy_tolerance

    def claim(row: int, start: int, stop: int) -> None:
        remaining[max(row - 1, 0) : row + 2, start:stop] = 0.0
        if stop - start >= rules.min_frames:
            notes.append(
                _make_note(frames, row, start, stop, rules.frame_rate, rules.midi_min, first_frame)
            )

    # (plain Python ints: indexing with NumPy scalars is several times slower)
    peak_rows, peak_times = _onset_peaks(onsets, rules.onset_threshold)
    for row, start in zip(peak_rows.tolist(), peak_times.tolist(), strict=True):
        stop = _walk(remaining[row], start, 1, threshold, tolerance)
        claim(row, start, stop)

    if rules.melodia_trick:
        # strongest first; equivalent to repeatedly taking the argmax of what remains
        rows, times = np.nonzero(remaining > threshold)
        order = np.argsort(-remaining[rows, times], kind="stable")
        for row, mid in zip(rows[order].tolist(), times[order].tolist(), strict=True):
            if remaining[row, mid] <= threshold:
                continue  # claimed by a note found since
            stop = _walk(remaining[row], mid, 1, threshold, tolerance)
            start = _walk(remaining[row], mid, -1, threshold, tolerance) + 1
            claim(row, start, stop)
    return sorted(notes, key=_by_time)


def posteriorgram_to_notes(
    frame_probs,
    onset_probs,
    frame_rate: float = FRAME_RATE,
    onset_threshold: float = 0.5,
    frame_threshold: float = 0.3,
    min_note_seconds: float = 0.058,
    energy_tolerance: int = 11,
    infer_onsets: bool = True,
    melodia_trick: bool = True,
    midi_min: int = MIDI_MIN,
) -> list[Note]:
    """Decode frame and onset posteriorgrams into notes, Basic Pitch style.

    1. Optionally add onsets inferred from jumps of the frame probability
       (:func:`add_inferred_onsets`).
    2. Each onset peak above ``onset_threshold`` starts a note. Peaks are taken latest first;
       the note extends forward while the frame probability is at least ``frame_threshold``,
       tolerating up to ``energy_tolerance - 1`` frames below it, and ends after its last
       active frame. Its frames (and those of the neighbouring semitones, which hold the
       same partials' leakage) are then used up, so an earlier onset of the same pitch ends
       where the later note starts: repeated notes stay separate.
    3. With ``melodia_trick``, frame energy left over (sounding but never started by an onset)
       also becomes notes: from the strongest remaining frame, walk both ways the same way.
    4. Notes shorter than ``min_note_seconds`` are dropped.

    Parameters
    ----------
    frame_probs, onset_probs : (P, T) array or Tensor
        Probabilities (after the sigmoid); row ``p`` is MIDI ``midi_min + p``.
    frame_rate : float
        Frames per second (default 22050 / 256).
    onset_threshold, frame_threshold : float
        Onset peak and frame activity thresholds (Basic Pitch's defaults 0.5 and 0.3).
    min_note_seconds : float
        Shortest note kept (0.058 s is 5 frames at 86 frames/s).
    energy_tolerance : int
        Number of consecutive frames below ``frame_threshold`` that ends a note.
    infer_onsets, melodia_trick : bool
        Steps 1 and 3 above.
    midi_min : int
        MIDI pitch of row 0.

    Returns
    -------
    list of Note
        Sorted by onset, then pitch; velocity is ``127 *`` the mean frame probability over
        the note.

    Chapter: book/02_focal_loss_amt.md
    """
    frames, onsets = _as_posteriorgrams(frame_probs, onset_probs)
    rules = _NoteRules(
        frame_rate,
        onset_threshold,
        frame_threshold,
        min_note_seconds,
        energy_tolerance,
        melodia_trick,
        midi_min,
    )
    if infer_onsets:
        onsets = add_inferred_onsets(onsets, frames)
    return _notes_of(frames, onsets, rules)


# --- decoding a posteriorgram that arrives in pieces ----------------------------------------


def _with_jumps(
    pieces: Iterable[tuple[np.ndarray, np.ndarray]],
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(frames, onsets, jumps)`` of each piece; jumps look back across piece boundaries."""
    before = None
    for frame_probs, onset_probs in pieces:
        frames, onsets = _as_posteriorgrams(frame_probs, onset_probs)
        if before is None:  # silence before the recording, as in add_inferred_onsets
            before = np.zeros((frames.shape[0], _JUMP_FRAMES), np.float32)
        yield frames, onsets, _frame_jumps(frames, before)
        before = np.concatenate([before, frames[:, -_JUMP_FRAMES:]], axis=1)[:, -_JUMP_FRAMES:]


def _next_cut(
    frames: np.ndarray, onsets: np.ndarray, rules: _NoteRules, max_frames: int
) -> int | None:
    """Where to cut the ``(P, T)`` frames held by :func:`posteriorgram_pieces_to_notes`.

    The latest exact cut if there is one: a frame ``c`` with every pitch below the frame
    threshold at frames ``c - tol .. c + tol - 1`` (``tol = energy_tolerance``) and no onset
    above the onset threshold at ``c - 1`` and ``c``. Otherwise, once ``max_frames`` are held,
    the quietest cut: the fewest loud cells in that window, a cut without onsets preferred.
    None: wait for more frames.
    """
    tol, (n_pitches, n_frames) = rules.energy_tolerance, frames.shape
    if n_frames < 2 * tol:
        return None
    loud = np.count_nonzero(frames >= rules.frame_threshold, axis=0)
    running = np.concatenate([[0], np.cumsum(loud)])
    cost = running[2 * tol :] - running[: -2 * tol]  # loud cells around c = tol, tol + 1, ...
    calm = np.all(onsets <= rules.onset_threshold, axis=0)
    onset_at_cut = ~(calm[tol - 1 : n_frames - tol] & calm[tol : n_frames - tol + 1])
    cost = cost + onset_at_cut * (2 * tol * n_pitches + 1)  # outweighs any count of loud cells
    best = cost.size - 1 - int(np.argmin(cost[::-1]))  # the latest of the cheapest
    if cost[best] == 0 or n_frames >= max_frames:
        return tol + best
    return None


def posteriorgram_pieces_to_notes(
    pieces: Iterable[tuple[np.ndarray, np.ndarray]],
    frame_rate: float = FRAME_RATE,
    onset_threshold: float = 0.5,
    frame_threshold: float = 0.3,
    min_note_seconds: float = 0.058,
    energy_tolerance: int = 11,
    infer_onsets: bool = True,
    melodia_trick: bool = True,
    midi_min: int = MIDI_MIN,
    max_segment_seconds: float = 300.0,
) -> list[Note]:
    """:func:`posteriorgram_to_notes` for a posteriorgram that arrives in pieces.

    Memory is bounded by ``max_segment_seconds`` of frames, whatever the recording's length.
    ``pieces`` is read twice. The first pass finds the two numbers of the whole recording
    that the inferred onsets need: the largest onset probability and the largest frame jump,
    which set the jumps' scale. The second pass holds frames until it can cut them, and
    decodes what lies before the cut on its own.

    A cut before frame ``c`` is *exact* -- the notes of the two sides are the notes
    ``posteriorgram_to_notes`` finds in the whole posteriorgram -- when every pitch is below
    ``frame_threshold`` at the ``energy_tolerance`` frames on either side of it, and no onset
    (inferred ones included) is above ``onset_threshold`` at frames ``c - 1`` and ``c``:

    * the onset peaks are the same: only a frame next to the cut compares itself with a
      frame across it, and neither frame has an onset above the threshold;
    * no walk crosses the cut: a walk from one side ends after ``energy_tolerance`` quiet
      frames, and across the cut it meets that many, quiet whatever has been claimed
      (claiming only lowers frame energy), so it ends where it ends at the side's edge;
    * so each side's claims stay on its side and depend only on that side: the order in
      which the whole decode visits the two sides (onset peaks latest first, the melodia
      trick strongest first) interleaves two independent sequences and changes nothing.

    A pause of a quarter of a second (22 frames at the defaults) gives an exact cut. Where
    none comes for ``max_segment_seconds``, the frames are cut anyway, at the quietest frame;
    a note sounding across that cut may be split or shortened there. That is the only way
    the result can differ from ``posteriorgram_to_notes``.

    Parameters
    ----------
    pieces : collection of ((P, T_k), (P, T_k)) pairs
        ``(frame_probs, onset_probs)`` of consecutive frames: concatenated along time, the
        posteriorgrams ``posteriorgram_to_notes`` takes. Read twice, so not an iterator (a
        list, or an object whose ``__iter__`` starts over).
    frame_rate, onset_threshold, frame_threshold, min_note_seconds, energy_tolerance, \
infer_onsets, melodia_trick, midi_min
        As in :func:`posteriorgram_to_notes`, with the same defaults.
    max_segment_seconds : float
        Most frames held while no exact cut comes (88 pitches: 1.8 MB per minute).

    Returns
    -------
    list of Note
        Sorted by onset, then pitch; velocity as in ``posteriorgram_to_notes``.

    Chapter: book/02_focal_loss_amt.md
    """
    rules = _NoteRules(
        frame_rate,
        onset_threshold,
        frame_threshold,
        min_note_seconds,
        energy_tolerance,
        melodia_trick,
        midi_min,
    )
    max_frames = round(max_segment_seconds * frame_rate)
    if max_frames <= 2 * energy_tolerance:
        raise ValueError(
            f"max_segment_seconds ({max_segment_seconds}) must span more than "
            f"2 * energy_tolerance = {2 * energy_tolerance} frames"
        )
    if iter(pieces) is pieces:
        raise TypeError("pieces is read twice: pass a collection such as a list, not an iterator")
    onset_peak, jump_peak = -np.inf, 0.0
    if infer_onsets:
        for _, onsets, jumps in _with_jumps(pieces):
            onset_peak = max(onset_peak, onsets.max(initial=-np.inf))
            jump_peak = max(jump_peak, jumps.max(initial=0.0))

    notes: list[Note] = []
    held_frames = held_onsets = None  # frames not decoded yet, from recording frame first_frame
    first_frame = 0
    for frames, onsets, jumps in _with_jumps(pieces):
        if infer_onsets:
            onsets = _add_jumps(onsets, jumps, onset_peak, jump_peak)
        if held_frames is None:
            held_frames, held_onsets = frames, onsets
        else:
            held_frames = np.concatenate([held_frames, frames], axis=1)
            held_onsets = np.concatenate([held_onsets, onsets], axis=1)
        while (cut := _next_cut(held_frames, held_onsets, rules, max_frames)) is not None:
            notes += _notes_of(held_frames[:, :cut], held_onsets[:, :cut], rules, first_frame)
            held_frames, held_onsets = held_frames[:, cut:], held_onsets[:, cut:]
            first_frame += cut
    if held_frames is not None:
        notes += _notes_of(held_frames, held_onsets, rules, first_frame)
    return notes
