"""Posteriorgrams to notes: the step between a network's frame/onset probabilities and MIDI.

Two decoders, from simple to careful:

* :func:`onsets_frames_decode` (Hawthorne et al., 2018): a note starts where the onset
  probability rises above a threshold and lasts while the frame probability stays above one.
* :func:`posteriorgram_to_notes` (in the spirit of Basic Pitch's note creation, Bittner et al.,
  2022): onset *peaks* start notes, a note survives short dips of its frame probability,
  onsets missed by the onset head are inferred from jumps of the frame probability, and the
  "melodia trick" recovers notes that have frame energy but no onset at all.

Chapter: book/02_focal_loss_amt.md
"""

from __future__ import annotations

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
    frames: np.ndarray, row: int, start: int, stop: int, frame_rate: float, midi_min: int
) -> Note:
    """Note for frames ``start .. stop-1`` of ``row``; velocity from the mean frame probability.

    Times follow :func:`timbrelab.notes.notes_to_rolls`: frame ``t`` sits at ``t / frame_rate``,
    so the note covers ``[start, stop) / frame_rate``.
    """
    amplitude = float(frames[row, start:stop].mean())
    velocity = min(max(round(127 * amplitude), 1), 127)
    return Note(start / frame_rate, stop / frame_rate, midi_min + row, velocity)


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


def add_inferred_onsets(onset_probs, frame_probs, n_diff: int = 2) -> np.ndarray:
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
    padded = np.pad(frames, ((0, 0), (n_diff, 0)))
    n_frames = frames.shape[1]
    rises = [frames - padded[:, n_diff - n : n_diff - n + n_frames] for n in range(1, n_diff + 1)]
    jumps = np.clip(np.min(rises, axis=0), 0.0, None)
    peak = jumps.max(initial=0.0)
    if peak > 0:
        jumps *= onsets.max() / peak
    return np.maximum(onsets, jumps)


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
    _check_rate(frame_rate)
    if energy_tolerance < 1:
        raise ValueError(f"energy_tolerance must be >= 1 frame, got {energy_tolerance}")
    min_frames = max(1, round(min_note_seconds * frame_rate))
    if infer_onsets:
        onsets = add_inferred_onsets(onsets, frames)
    remaining = frames.copy()  # frame energy not yet claimed by a note
    notes = []

    def claim(row: int, start: int, stop: int) -> None:
        remaining[max(row - 1, 0) : row + 2, start:stop] = 0.0
        if stop - start >= min_frames:
            notes.append(_make_note(frames, row, start, stop, frame_rate, midi_min))

    # (plain Python ints: indexing with NumPy scalars is several times slower)
    peak_rows, peak_times = _onset_peaks(onsets, onset_threshold)
    for row, start in zip(peak_rows.tolist(), peak_times.tolist(), strict=True):
        stop = _walk(remaining[row], start, 1, frame_threshold, energy_tolerance)
        claim(row, start, stop)

    if melodia_trick:
        # strongest first; equivalent to repeatedly taking the argmax of what remains
        rows, times = np.nonzero(remaining > frame_threshold)
        order = np.argsort(-remaining[rows, times], kind="stable")
        for row, mid in zip(rows[order].tolist(), times[order].tolist(), strict=True):
            if remaining[row, mid] <= frame_threshold:
                continue  # claimed by a note found since
            stop = _walk(remaining[row], mid, 1, frame_threshold, energy_tolerance)
            start = _walk(remaining[row], mid, -1, frame_threshold, energy_tolerance) + 1
            claim(row, start, stop)
    return sorted(notes, key=_by_time)
