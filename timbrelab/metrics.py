"""Transcription and separation metrics: thin, tested wrappers around ``mir_eval``.

All scores are fractions in ``[0, 1]`` (multiply by 100 only when printing); SDR is in dB.

- frame level (multi-pitch): :func:`frame_scores`, :func:`multipitch_scores`;
- note level: :func:`note_scores` (onset and pitch), :func:`note_with_offset_scores`
  (onset, pitch and offset);
- per instrument: :func:`separated_note_scores`, :func:`separated_frame_scores` (best
  assignment of estimated sources);
- separation: :func:`sdr` (plain or scale-invariant);

Chapter: book/02_focal_loss_amt.md
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np

from timbrelab.notes import Note, midi_to_hz, notes_to_mir_eval

_SCORE_KEYS = ("precision", "recall", "f1")


def _f1(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


@contextlib.contextmanager
def _quiet_mir_eval() -> Iterator[None]:
    """Silence mir_eval's "... empty" warnings: empty inputs are legal and score 0."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*\bempty\b", category=UserWarning)
        yield


def notes_to_multipitch(notes: Iterable[Note], times: np.ndarray) -> list[np.ndarray]:
    """Render notes onto a time grid as ``mir_eval.multipitch`` frequency lists.

    A note covers the frames whose centre ``times[k]`` lies in ``[onset, offset)``. Overlapping
    notes of the same pitch (e.g. two instruments in unison) each contribute an entry.

    Parameters
    ----------
    notes : iterable of Note
    times : (F,) float array
        Frame centres in seconds, increasing.

    Returns
    -------
    list of F arrays
        Active frequencies (Hz) per frame.

    Chapter: book/02_focal_loss_amt.md
    """
    times = np.asarray(times, np.float64)
    per_frame: list[list[float]] = [[] for _ in range(len(times))]
    for note in notes:
        hz = float(midi_to_hz(note.pitch))
        first, stop = np.searchsorted(times, [note.onset, note.offset], side="left")
        for k in range(first, stop):
            per_frame[k].append(hz)
    return [np.array(sorted(f), np.float64) for f in per_frame]


def multipitch_scores(
    ref_times: np.ndarray,
    ref_freqs: Sequence[np.ndarray],
    est_times: np.ndarray,
    est_freqs: Sequence[np.ndarray],
) -> dict[str, float]:
    """Frame-level multi-pitch scores by ``mir_eval.multipitch.evaluate``.

    A reference pitch counts as found in a frame when an estimated one lies within half a
    semitone of it. ``f1`` is the harmonic mean of precision and recall.

    Parameters
    ----------
    ref_times, est_times : (F,) float arrays
        Frame times in seconds (the estimate is resampled to the reference times if they differ).
    ref_freqs, est_freqs : sequences of F arrays
        Active frequencies (Hz) in each frame.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1``, ``accuracy`` (fractions; all 0 when either side has no
        active pitch at all).

    Chapter: book/02_focal_loss_amt.md
    """
    import mir_eval

    with _quiet_mir_eval():
        scores = mir_eval.multipitch.evaluate(
            np.asarray(ref_times, np.float64),
            list(ref_freqs),
            np.asarray(est_times, np.float64),
            list(est_freqs),
        )
    precision, recall = float(scores["Precision"]), float(scores["Recall"])
    return {
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
        "accuracy": float(scores["Accuracy"]),
    }


def frame_scores(
    ref_notes: Iterable[Note],
    est_notes: Iterable[Note],
    hop_s: float = 0.01,
    times: np.ndarray | None = None,
) -> dict[str, float]:
    """Frame-level precision, recall, F1 and accuracy of estimated notes against reference notes.

    Both note lists are rendered onto the same grid with :func:`notes_to_multipitch` and scored
    by :func:`multipitch_scores`.

    Parameters
    ----------
    ref_notes, est_notes : iterables of Note
    hop_s : float
        Grid step in seconds when ``times`` is None; the grid ``0, hop_s, 2 hop_s, ...`` covers
        the latest offset of either list.
    times : (F,) float array, optional
        Frame centres to use instead.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1``, ``accuracy`` (fractions).

    Chapter: book/02_focal_loss_amt.md
    """
    ref_notes, est_notes = list(ref_notes), list(est_notes)
    if times is None:
        if hop_s <= 0:
            raise ValueError(f"hop_s must be > 0, got {hop_s}")
        end = max((n.offset for n in ref_notes + est_notes), default=0.0)
        times = np.arange(math.ceil(end / hop_s) + 1) * hop_s
    times = np.asarray(times, np.float64)
    return multipitch_scores(
        times,
        notes_to_multipitch(ref_notes, times),
        times,
        notes_to_multipitch(est_notes, times),
    )


def note_scores(
    ref_notes: Iterable[Note],
    est_notes: Iterable[Note],
    onset_tolerance: float = 0.05,
    offset_ratio: float | None = None,
    pitch_tolerance_cents: float = 50.0,
) -> dict[str, float]:
    """Note-level precision, recall and F1 by ``mir_eval.transcription``.

    An estimated note matches a reference note (one-to-one) when its pitch is within
    ``pitch_tolerance_cents`` and its onset within ``onset_tolerance``; with ``offset_ratio``
    set, its offset must also lie within ``max(offset_ratio * ref_duration, 50 ms)``.
    Sources are ignored (see :func:`separated_note_scores`).

    Parameters
    ----------
    ref_notes, est_notes : iterables of Note
    onset_tolerance : float
        Seconds.
    offset_ratio : float or None
        None scores onsets only ("note" F1); 0.2 is the usual "note with offset" F1.
    pitch_tolerance_cents : float
        Pitch tolerance.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1`` (fractions; 0 when either list is empty) and
        ``overlap`` (mean overlap ratio of the matched notes).

    Chapter: book/02_focal_loss_amt.md
    """
    import mir_eval

    ref_intervals, ref_pitches = notes_to_mir_eval(ref_notes)
    est_intervals, est_pitches = notes_to_mir_eval(est_notes)
    with _quiet_mir_eval():
        precision, recall, f1, overlap = mir_eval.transcription.precision_recall_f1_overlap(
            ref_intervals,
            ref_pitches,
            est_intervals,
            est_pitches,
            onset_tolerance=onset_tolerance,
            pitch_tolerance=pitch_tolerance_cents,
            offset_ratio=offset_ratio,
        )
    return {
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "overlap": float(overlap),
    }


def note_with_offset_scores(
    ref_notes: Iterable[Note], est_notes: Iterable[Note], onset_tolerance: float = 0.05
) -> dict[str, float]:
    """:func:`note_scores` with offsets: ``offset_ratio=0.2``, the usual "note w/ offset" F1.

    Chapter: book/02_focal_loss_amt.md
    """
    return note_scores(ref_notes, est_notes, onset_tolerance, offset_ratio=0.2)


def _split_by_source(notes: Iterable[Note], role: str) -> dict[int, list[Note]]:
    groups: dict[int, list[Note]] = {}
    for note in notes:
        if note.source is None:
            raise ValueError(f"separated scores need a source on every {role} note, got {note}")
        groups.setdefault(note.source, []).append(note)
    return groups


def _best_assignment_scores(
    ref_notes: Iterable[Note],
    est_notes: Iterable[Note],
    n_sources: int | None,
    score: Callable[[list[Note], list[Note]], dict],
) -> dict:
    """Score every reference source against every estimated source with ``score`` and keep
    the one-to-one assignment maximising the summed F1; see :func:`separated_note_scores`."""
    from scipy.optimize import linear_sum_assignment

    ref_groups = _split_by_source(ref_notes, "reference")
    est_groups = _split_by_source(est_notes, "estimated")
    ref_sources = sorted(ref_groups) if n_sources is None else list(range(n_sources))
    if n_sources is not None and any(s >= n_sources for s in ref_groups):
        raise ValueError(f"reference notes have sources >= n_sources={n_sources}")
    est_sources = sorted(est_groups)
    table = [
        [score(ref_groups.get(r, []), est_groups[e]) for e in est_sources] for r in ref_sources
    ]
    zero = dict.fromkeys(_SCORE_KEYS, 0.0)
    assignment: dict[int, int | None] = dict.fromkeys(ref_sources)
    per_source = {r: dict(zero) for r in ref_sources}
    if ref_sources and est_sources:
        f1 = np.array([[cell["f1"] for cell in row] for row in table])
        for i, j in zip(*linear_sum_assignment(f1, maximize=True), strict=True):
            assignment[ref_sources[i]] = est_sources[j]
            per_source[ref_sources[i]] = {k: table[i][j][k] for k in _SCORE_KEYS}
    means = {
        k: float(np.mean([s[k] for s in per_source.values()])) if per_source else 0.0
        for k in _SCORE_KEYS
    }
    return {**means, "per_source": per_source, "assignment": assignment}


def separated_note_scores(
    ref_notes: Iterable[Note],
    est_notes: Iterable[Note],
    n_sources: int | None = None,
    onset_tolerance: float = 0.05,
    offset_ratio: float | None = None,
) -> dict:
    """Per-instrument note scores, each reference source against its best estimated source.

    Estimated source indices are arbitrary (clusters, output heads), so every reference source
    ``i`` is scored against estimated source ``j`` and the one-to-one assignment maximising the
    summed note F1 is chosen (Hungarian algorithm, ``scipy.optimize.linear_sum_assignment``).
    With fewer estimated than reference sources the unassigned reference sources score 0; extra
    estimated sources are left out (their notes still count in the unseparated
    :func:`note_scores`).

    Parameters
    ----------
    ref_notes, est_notes : iterables of Note
        Every note needs a ``source``.
    n_sources : int or None
        Reference sources are ``0 .. n_sources - 1`` (a source with no notes then still counts);
        by default, the sources present in ``ref_notes``.
    onset_tolerance, offset_ratio
        As in :func:`note_scores`.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1``: means over reference sources; ``per_source``:
        ``{ref_source: {"precision", "recall", "f1"}}``; ``assignment``:
        ``{ref_source: est_source or None}``.

    Chapter: book/02_focal_loss_amt.md
    """
    return _best_assignment_scores(
        ref_notes,
        est_notes,
        n_sources,
        lambda ref, est: note_scores(ref, est, onset_tolerance, offset_ratio),
    )


def separated_frame_scores(
    ref_notes: Iterable[Note],
    est_notes: Iterable[Note],
    n_sources: int | None = None,
    hop_s: float = 0.01,
) -> dict:
    """Per-instrument frame scores (:func:`frame_scores` on one ``hop_s`` grid covering both
    lists), each reference source against its best estimated source (the assignment that
    maximises the summed frame F1, found as in :func:`separated_note_scores`). Returns what
    :func:`separated_note_scores` returns.

    Chapter: book/05_contrastive_clustering.md
    """
    ref_notes, est_notes = list(ref_notes), list(est_notes)
    if hop_s <= 0:
        raise ValueError(f"hop_s must be > 0, got {hop_s}")
    end = max((n.offset for n in ref_notes + est_notes), default=0.0)
    times = np.arange(math.ceil(end / hop_s) + 1) * hop_s
    return _best_assignment_scores(
        ref_notes, est_notes, n_sources, lambda ref, est: frame_scores(ref, est, times=times)
    )


def sdr(
    reference: np.ndarray, estimate: np.ndarray, scale_invariant: bool = False
) -> float | np.ndarray:
    """Signal-to-distortion ratio in dB.

    Plain SDR is ``10 log10(|s|^2 / |s - s_hat|^2)``. The scale-invariant SI-SDR (Le Roux et al.,
    2019) first projects the estimate on the reference, ``s_t = (<s_hat, s> / |s|^2) s``, and
    returns ``10 log10(|s_t|^2 / |s_hat - s_t|^2)``, so a rescaled estimate is not penalised.

    Parameters
    ----------
    reference, estimate : (..., N) float arrays
        Same shape; leading dimensions are scored independently.
    scale_invariant : bool
        Compute SI-SDR instead of SDR.

    Returns
    -------
    float or (...,) array
        dB; ``inf`` for a perfect estimate.

    Raises
    ------
    ValueError
        Shapes differ, or a reference is all zeros (SDR is undefined).

    Chapter: book/02_focal_loss_amt.md
    """
    s = np.asarray(reference, np.float64)
    s_hat = np.asarray(estimate, np.float64)
    if s.shape != s_hat.shape or s.ndim == 0:
        raise ValueError(f"reference {s.shape} and estimate {s_hat.shape} must be equal (..., N)")
    energy = np.sum(s**2, axis=-1)
    if np.any(energy == 0):
        raise ValueError("sdr: a reference signal is all zeros; SDR is undefined")
    if scale_invariant:
        s = (np.sum(s_hat * s, axis=-1) / energy)[..., None] * s
        energy = np.sum(s**2, axis=-1)
    error = np.sum((s_hat - s) ** 2, axis=-1)
    with np.errstate(divide="ignore"):
        result = 10 * np.log10(energy / error)
    return float(result) if result.ndim == 0 else result
