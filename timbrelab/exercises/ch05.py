"""Exercises of Chapter 5 (contrastive timbre embeddings): checks and reference solutions.

1. ``info_nce(points, labels, temperature)``: the supervised InfoNCE loss of unit vectors
   with multi-hot instrument labels (Li & Zhu, eq. 8), as :func:`timbrelab.losses.info_nce`.
2. ``note_embedding(embedding, weights, row, start, stop)``: one note's timbre embedding,
   the activation-weighted mean of its bins, L2-normalised, as
   :func:`timbrelab.decode.note_embeddings`.
3. ``eigengap(affinity, max_clusters)``: the number of clusters read off the spectrum of the
   symmetric normalised Laplacian, as :func:`timbrelab.decode.estimate_n_clusters`.
4. ``best_assignment_f1(table)``: the mean F1 of the best one-to-one assignment of estimated
   to reference sources, as :func:`timbrelab.metrics.separated_note_scores`.

See :mod:`timbrelab.exercises` for what a check prints, returns and raises.

Chapter: book/05_contrastive_clustering.md
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from timbrelab.decode.clustering import affinity_matrix
from timbrelab.exercises import (
    Case,
    Exercise,
    Mistake,
    exercise_check,
    expect_array,
    expect_number,
    first_mismatch,
    show_numbers,
)
from timbrelab.losses.contrastive import info_nce as _package_info_nce

# --- reference solutions (shown in the chapter behind a toggle) -------------------------------


def solution_info_nce(points: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Reference: for every anchor ``i`` with at least one positive (``j != i`` sharing a
    label), ``l_i = -log(sum_{j in P(i)} exp(s_ij / tau) / sum_{j != i} exp(s_ij / tau))``
    with ``s_ij = v_i . v_j``; the loss is the mean of ``l_i``, 0 without such anchors.

    Chapter: book/05_contrastive_clustering.md
    """
    n = len(points)
    scores = np.exp(points @ points.T / temperature)
    not_self = ~np.eye(n, dtype=bool)
    positive = (labels @ labels.T > 0) & not_self
    anchors = positive.any(axis=1)
    if not anchors.any():
        return 0.0
    numerator = (scores * positive).sum(axis=1)[anchors]
    denominator = (scores * not_self).sum(axis=1)[anchors]
    return float(np.mean(-np.log(numerator / denominator)))


def solution_note_embedding(
    embedding: np.ndarray, weights: np.ndarray, row: int, start: int, stop: int
) -> np.ndarray:
    """Reference: ``sum_t w[t] e[:, t] / sum_t w[t]`` over the note's frames
    ``start .. stop - 1`` of pitch row ``row`` (the plain mean when all its weights are 0),
    divided by its length.

    Chapter: book/05_contrastive_clustering.md
    """
    bins = embedding[:, row, start:stop]
    w = weights[row, start:stop]
    mean = bins @ w / w.sum() if w.sum() > 0 else bins.mean(axis=1)
    return mean / np.linalg.norm(mean)


def solution_eigengap(affinity: np.ndarray, max_clusters: int) -> int:
    """Reference: the eigenvalues ``l_1 <= l_2 <= ...`` of ``I - D^-1/2 A D^-1/2`` (``D``: the
    row sums of ``A``); ``K = argmax_k (l_{k+1} - l_k)`` over ``k = 1 .. max_clusters``.

    Chapter: book/05_contrastive_clustering.md
    """
    scale = 1.0 / np.sqrt(affinity.sum(axis=1))
    laplacian = np.eye(len(affinity)) - scale[:, None] * affinity * scale[None, :]
    values = np.linalg.eigvalsh(laplacian)[: max_clusters + 1]  # ascending
    return int(np.argmax(np.diff(values))) + 1


def solution_best_assignment_f1(table: np.ndarray) -> float:
    """Reference: ``table[i, j]`` is the F1 of reference source ``i`` scored against estimated
    source ``j``; the best one-to-one assignment (Hungarian algorithm) maximises the summed
    F1, and the result is its mean over the reference sources (an unassigned one scores 0).

    Chapter: book/05_contrastive_clustering.md
    """
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / table.shape[0])


def _explain_number(case: Case, got: float, want: float, index: tuple) -> str:
    shown_want, shown_got = show_numbers(want, got)
    return f"expected {shown_want}, got {shown_got}"


# --- exercise 1: InfoNCE ------------------------------------------------------------------


def _nce_like(
    self_in_denominator: bool = False,
    self_positive: bool = False,
    tau: Callable[[float], float] = lambda t: t,
    reduce: str = "mean",
    log_of_each: bool = False,
) -> Callable:
    """InfoNCE with one typical mistake (see the catalogued mistakes below)."""

    def answer(points, labels, temperature):
        n = len(points)
        scores = np.exp(points @ points.T / tau(temperature))
        not_self = ~np.eye(n, dtype=bool)
        shared = labels @ labels.T > 0
        positive = shared if self_positive else shared & not_self
        anchors = positive.any(axis=1)
        below = scores if self_in_denominator else scores * not_self
        denominator = below.sum(axis=1)
        if log_of_each:  # SupCon's L_out: the mean over positives of -log(one positive)
            logs = -np.log(scores / denominator[:, None])
            losses = (logs * positive).sum(axis=1) / np.maximum(positive.sum(axis=1), 1)
        else:
            losses = -np.log((scores * positive).sum(axis=1) / denominator)
        if reduce == "all":  # every point is an anchor; those without positives add 0
            return float(np.where(anchors, losses, 0.0).sum() / n)
        if not anchors.any():
            return 0.0
        kept = losses[anchors]
        return float(kept.sum() if reduce == "sum" else kept.mean())

    return answer


def _counts_lonely_anchors(got: float, want: float, case: Case) -> bool:
    """The mean over all points: lonely anchors add 0 (or make it inf / NaN)."""
    points, labels, _ = case.args
    shared = (labels @ labels.T > 0) & ~np.eye(len(points), dtype=bool)
    if not np.isfinite(got):
        return not shared.any(axis=1).all()
    return first_mismatch(got, _nce_like(reduce="all")(*case.args), rtol=1e-5, atol=1e-8) is None


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    v = rng.standard_normal((n, d))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _nce_case(label: str, points: np.ndarray, labels: np.ndarray, tau: float) -> Case:
    n, d = points.shape
    call = f"info_nce(<{label}: points ({n}, {d}), labels {labels.shape}>, temperature={tau})"
    return Case(call, (points, labels, tau))


def _nce_cases(rng: np.random.Generator) -> list[Case]:
    """Every anchor with positives; a lonely anchor and a shared bin; no positives at all;
    one instrument (loss 0)."""
    taus = rng.choice([0.07, 0.1, 0.15, 0.2, 0.3, 0.5], size=3, replace=False)
    n = int(rng.integers(8, 13))
    labels = np.eye(3)[np.arange(n) % 3][rng.permutation(n)]
    cases = [_nce_case("3 instruments", _unit(rng, n, 4), labels, float(taus[0]))]
    n = int(rng.integers(7, 11))
    labels = np.eye(3)[np.r_[2, np.arange(n - 1) % 2]]  # instrument 2 plays once
    labels[1, :2] = 1.0  # a bin both instruments 0 and 1 play
    cases.append(
        _nce_case("a lonely note and a shared bin", _unit(rng, n, 4), labels, float(taus[1]))
    )
    n = int(rng.integers(3, 6))
    cases.append(_nce_case("no two points share a label", _unit(rng, n, 4), np.eye(n), 0.1))
    n = int(rng.integers(4, 7))
    cases.append(_nce_case("one instrument", _unit(rng, n, 4), np.ones((n, 1)), float(taus[2])))
    return cases


_INFO_NCE = Exercise(
    name="info_nce",
    reference=lambda points, labels, tau: float(
        _package_info_nce(torch.from_numpy(points), torch.from_numpy(labels), tau)
    ),
    read=lambda value, case: expect_number(value, case.call, "the loss, the mean over anchors"),
    explain=_explain_number,
    rule=(
        "loss = mean over anchors i with a positive of -log(sum_{j in P(i)} exp(s_ij / tau) "
        "/ sum_{j != i} exp(s_ij / tau)); P(i): the points j != i that share a label with i; "
        "0 when no anchor has a positive"
    ),
    rtol=1e-5,
    atol=1e-8,
    hidden=lambda rng: [_nce_cases(rng)],
    mistakes=(
        Mistake(
            "the denominator sums over j != i: leave the anchor's similarity with itself "
            "(exp(1 / tau), the largest term) out",
            _nce_like(self_in_denominator=True),
        ),
        Mistake(
            "divide the similarities by the temperature tau before exp: s_ij / tau",
            _nce_like(tau=lambda t: 1.0),
        ),
        Mistake(
            "average over the anchors, do not sum: the loss should not grow with the number "
            "of points",
            _nce_like(reduce="sum"),
        ),
        Mistake(
            "an anchor with no positive (a point whose instrument plays nowhere else) has no "
            "term: average over the anchors that have one, not over all points",
            _nce_like(reduce="all"),
            _counts_lonely_anchors,
        ),
        Mistake(
            "the anchor is not its own positive: P(i) holds the OTHER points that share a "
            "label with i (remove the diagonal from the positive mask)",
            _nce_like(self_positive=True),
            lambda got, want, case: any(
                first_mismatch(
                    got,
                    _nce_like(self_positive=True, self_in_denominator=s)(*case.args),
                    rtol=1e-5,
                    atol=1e-8,
                )
                is None
                for s in (False, True)
            ),
        ),
        Mistake(
            "this is the mean over positives of -log(one positive / all): eq. 8 takes -log "
            "of the SUM over positives, divided by the sum over all j != i",
            _nce_like(log_of_each=True),
        ),
    ),
)


@exercise_check(_INFO_NCE)
def check_info_nce(fn: Callable) -> str:
    """Check ``fn(points (N, D), labels (N, K), temperature) -> float``, InfoNCE.

    Chapter: book/05_contrastive_clustering.md
    """
    cases = _nce_cases(np.random.default_rng(5))
    _INFO_NCE.grade(fn, cases)
    return (
        f"matches Li & Zhu's eq. 8 on {len(cases)} sets of points (a lonely anchor, no "
        "positives and a single instrument included)"
    )


# --- exercise 2: one note's embedding -----------------------------------------------------


def _note_like(weighted: bool = True, normalise: bool = True, extra: int = 0) -> Callable:
    """A note embedding with one typical mistake."""

    def answer(embedding, weights, row, start, stop):
        bins = embedding[:, row, start : stop + extra]
        w = weights[row, start : stop + extra] if weighted else np.ones(bins.shape[1])
        mean = bins @ w / w.sum()
        return mean / np.linalg.norm(mean) if normalise else mean

    return answer


def _parallel_not_unit(got: np.ndarray, want: np.ndarray, case: Case) -> bool:
    """Points the right way but is not of length 1 (a mean or a sum, unnormalised), or is
    right where that makes no difference."""
    if first_mismatch(got, want, rtol=1e-5, atol=1e-7) is None:
        return True  # e.g. a one-frame note of a unit bin: the mistake does not show
    norm = np.linalg.norm(got)
    return (
        bool(np.all(np.isfinite(got)))
        and norm > 0
        and not np.isclose(norm, 1.0, rtol=1e-4)
        and first_mismatch(got / norm, want, rtol=1e-5, atol=1e-7) is None
    )


def _no_silent_fallback(got: np.ndarray, want: np.ndarray, case: Case) -> bool:
    """Right where weights are positive, NaN / inf / zero where they are all 0."""
    embedding, weights, row, start, stop = case.args
    if weights[row, start:stop].sum() > 0:
        return first_mismatch(got, want, rtol=1e-5, atol=1e-7) is None
    return not np.all(np.isfinite(got)) or not np.any(got)


def _volume(rng: np.random.Generator, d: int, p: int, t: int) -> np.ndarray:
    v = rng.standard_normal((d, p, t))
    return v / np.linalg.norm(v, axis=0, keepdims=True)


def _note_case(embedding, weights, row: int, start: int, stop: int, label: str = "") -> Case:
    d, p, t = embedding.shape
    call = (
        f"note_embedding(<embedding ({d}, {p}, {t})>, <weights ({p}, {t}){label}>, "
        f"row={row}, start={start}, stop={stop})"
    )
    return Case(call, (embedding, weights, row, start, stop))


def _note_cases(rng: np.random.Generator) -> list[list[Case]]:
    """Stage 1: notes of several frames (ending before the last frame) and a one-frame note;
    stage 2: a note whose weights are all 0."""
    d, p, t = 5, int(rng.integers(5, 9)), int(rng.integers(16, 24))
    embedding = _volume(rng, d, p, t)
    weights = rng.uniform(0.05, 1.0, (p, t))
    first = []
    for length in (int(rng.integers(4, 8)), int(rng.integers(3, 6)), 1):
        row, start = int(rng.integers(0, p)), int(rng.integers(0, t - length - 1))
        first.append(_note_case(embedding, weights, row, start, start + length))
    silent = weights.copy()
    row, start = int(rng.integers(0, p)), int(rng.integers(0, t - 5))
    silent[row, start : start + 4] = 0.0
    second = [_note_case(embedding, silent, row, start, start + 4, ", 0 on this note")]
    return [first, second]


def _explain_note(case: Case, got: np.ndarray, want: np.ndarray, index: tuple) -> str:
    shown_want, shown_got = show_numbers(want, got)
    return (
        f"expected the unit vector [{shown_want}], got [{shown_got}] (length "
        f"{np.linalg.norm(got):.4g})"
    )


_NOTE_EMBEDDING = Exercise(
    name="note_embedding",
    reference=solution_note_embedding,
    read=lambda value, case: expect_array(
        value, case.call, (case.args[0].shape[0],), "the note's embedding, one unit vector"
    ),
    explain=_explain_note,
    rule=(
        "embedding = sum_t w[t] e[:, row, t] / sum_t w[t] over t = start .. stop - 1 (the "
        "plain mean when all w[t] are 0), then divided by its length"
    ),
    rtol=1e-5,
    atol=1e-7,
    hidden=_note_cases,
    mistakes=(
        Mistake(
            "weight every frame by its activation weights[row, t]: the frames where the note "
            "clearly sounds should count most",
            _note_like(weighted=False),
        ),
        Mistake(
            "divide the mean by its length (np.linalg.norm): the clustering compares "
            "directions, so the embedding must be a unit vector",
            _note_like(normalise=False),
            _parallel_not_unit,
        ),
        Mistake(
            "the note ends BEFORE frame stop: frames start .. stop - 1, i.e. [start:stop]",
            _note_like(extra=1),
        ),
        Mistake(
            "when all the note's weights are 0, sum(w) is 0: use the plain mean of its bins "
            "then, not a division by zero",
            lambda e, w, row, start, stop: _note_like()(e, w, row, start, stop),
            _no_silent_fallback,
        ),
    ),
)


@exercise_check(_NOTE_EMBEDDING)
def check_note_embedding(fn: Callable) -> str:
    """Check ``fn(embedding (D, P, T), weights (P, T), row, start, stop) -> (D,)``.

    Chapter: book/05_contrastive_clustering.md
    """
    stages = _note_cases(np.random.default_rng(6))
    _NOTE_EMBEDDING.grade(fn, *stages)
    return (
        f"matches the weighted, normalised mean on {sum(map(len, stages))} notes (a one-frame "
        "note and a note with zero weights included)"
    )


# --- exercise 3: the eigengap ------------------------------------------------------------


def _gap_like(
    laplacian: str = "normalised", order: str = "smallest", shift: int = 1, top: int = 1
) -> Callable:
    """The eigengap estimate with one typical mistake."""

    def answer(affinity, max_clusters):
        if laplacian == "normalised":
            scale = 1.0 / np.sqrt(affinity.sum(axis=1))
            matrix = np.eye(len(affinity)) - scale[:, None] * affinity * scale[None, :]
        else:
            matrix = np.diag(affinity.sum(axis=1)) - affinity
        values = np.linalg.eigvalsh(matrix)
        values = values if order == "smallest" else values[::-1]
        values = values[: max_clusters + top]
        gaps = np.abs(np.diff(values))
        return int(np.argmax(gaps)) + shift

    return answer


def _groups(rng: np.random.Generator, sizes: tuple[int, ...], spread: float) -> np.ndarray:
    """Unit vectors in ``len(sizes)`` groups around orthogonal centres, 12 dimensions."""
    centres = np.linalg.qr(rng.standard_normal((12, 12)))[0][: len(sizes)]
    points = np.concatenate(
        [c + spread * rng.standard_normal((n, 12)) for c, n in zip(centres, sizes, strict=True)]
    )
    points = points[rng.permutation(len(points))]
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def _gap_case(
    rng: np.random.Generator, sizes: tuple[int, ...], max_clusters: int, fooled: bool = False
) -> Case:
    """Tight groups (within-group cosine about 0.96) drawn until the eigengap finds them all
    and, with ``fooled``, until the unnormalised Laplacian does not."""
    while True:
        affinity = affinity_matrix(_groups(rng, sizes, 0.06))
        found = solution_eigengap(affinity, max_clusters) == len(sizes)
        unnormalised = _gap_like(laplacian="unnormalised")(affinity, max_clusters)
        if found and not (fooled and unnormalised == len(sizes)):
            break
    shown = ", ".join(map(str, sizes))
    what = f"{len(sizes)} group{'s' * (len(sizes) > 1)} of {shown} notes"
    call = f"eigengap(<affinity of {what}>, max_clusters={max_clusters})"
    return Case(call, (affinity, max_clusters))


def _gap_cases(rng: np.random.Generator) -> list[Case]:
    """Balanced groups; one group (answer 1); answer = max_clusters; unbalanced groups."""
    k = int(rng.integers(2, 4))
    big = int(rng.integers(12, 17))
    return [
        _gap_case(rng, (int(rng.integers(6, 9)),) * k, 6),
        _gap_case(rng, (int(rng.integers(8, 12)),), 4),
        _gap_case(rng, (int(rng.integers(5, 8)),) * 3, 3),
        _gap_case(rng, (big, 3, 2), 6, fooled=True),
    ]


_EIGENGAP = Exercise(
    name="eigengap",
    reference=solution_eigengap,
    read=lambda value, case: expect_number(value, case.call, "the number of clusters"),
    explain=lambda case, got, want, index: f"expected {want:g} clusters, got {got:g}",
    rule=(
        "K = argmax_k (l_{k+1} - l_k) over k = 1 .. max_clusters, for the eigenvalues "
        "l_1 <= l_2 <= ... of L = I - D^-1/2 A D^-1/2"
    ),
    hidden=lambda rng: [_gap_cases(rng)],
    mistakes=(
        Mistake(
            "K counts eigenvalues: the gap after l_k (index k - 1 in numpy) means k clusters, "
            "so add 1 to the argmax of np.diff",
            _gap_like(shift=0),
        ),
        Mistake(
            "use the SMALLEST eigenvalues of the Laplacian (np.linalg.eigvalsh sorts them "
            "ascending): K nearly disconnected groups give K eigenvalues near 0",
            _gap_like(order="largest"),
        ),
        Mistake(
            "normalise the Laplacian, I - D^-1/2 A D^-1/2: the eigenvalues of D - A grow with "
            "the size of a group, so a large group's own eigenvalues open the biggest gap",
            _gap_like(laplacian="unnormalised"),
        ),
        Mistake(
            "keep the max_clusters + 1 smallest eigenvalues: the gap after l_max_clusters "
            "decides whether the answer is max_clusters",
            _gap_like(top=0),
        ),
    ),
)


@exercise_check(_EIGENGAP)
def check_eigengap(fn: Callable) -> str:
    """Check ``fn(affinity (M, M), max_clusters) -> int``, the eigengap estimate.

    Chapter: book/05_contrastive_clustering.md
    """
    cases = _gap_cases(np.random.default_rng(7))
    _EIGENGAP.grade(fn, cases)
    return (
        f"finds the number of groups in {len(cases)} affinity matrices (one group, "
        "max_clusters groups and unbalanced groups included)"
    )


# --- exercise 4: the best assignment ------------------------------------------------------


def _identity_f1(table: np.ndarray) -> float:
    n = min(table.shape)
    return float(np.trace(table[:n, :n]) / table.shape[0])


def _greedy_f1(table: np.ndarray) -> float:
    table, total = table.astype(float).copy(), 0.0
    for _ in range(min(table.shape)):
        i, j = np.unravel_index(np.argmax(table), table.shape)
        total += table[i, j]
        table[i, :], table[:, j] = -np.inf, -np.inf
    return total / table.shape[0]


def _per_assigned_f1(table: np.ndarray) -> float:
    return solution_best_assignment_f1(table) * table.shape[0] / min(table.shape)


def _assignment_tables(rng: np.random.Generator) -> list[np.ndarray]:
    """A square table where greedy loses and the identity is wrong; fewer and more estimated
    than reference sources."""
    tables = []
    while len(tables) < 3:
        shape = ((3, 3), (3, 2), (2, 3))[len(tables)]
        table = np.round(rng.uniform(0.05, 0.6, shape), 2)
        high = round(float(rng.uniform(0.8, 0.95)), 2)
        table[0, 0], table[0, 1], table[1, 0] = high, high - 0.08, high - 0.1
        table = table[rng.permutation(shape[0])][:, rng.permutation(shape[1])]
        right = solution_best_assignment_f1(table)
        others = (_identity_f1(table), _greedy_f1(table), table.max(axis=1).mean())
        if all(abs(right - o) > 0.01 for o in others):
            tables.append(table)
    return tables


def _assignment_cases(rng: np.random.Generator) -> list[Case]:
    cases = []
    for table in _assignment_tables(rng):
        rows = "; ".join(" ".join(f"{x:.2f}" for x in row) for row in table)
        cases.append(Case(f"best_assignment_f1(np.array([{rows}]))", (table,)))
    return cases


_BEST_ASSIGNMENT = Exercise(
    name="best_assignment_f1",
    reference=solution_best_assignment_f1,
    read=lambda value, case: expect_number(value, case.call, "the mean F1 over references"),
    explain=_explain_number,
    rule=(
        "pair every reference source with at most one estimated source and vice versa, so "
        "that the summed F1 is largest (scipy.optimize.linear_sum_assignment(table, "
        "maximize=True)); return that sum divided by the number of reference sources"
    ),
    rtol=1e-9,
    atol=1e-12,
    hidden=lambda rng: [_assignment_cases(rng)],
    mistakes=(
        Mistake(
            "cluster j is not instrument j: cluster numbers are arbitrary, so search the "
            "assignment of clusters to instruments that maximises the summed F1",
            _identity_f1,
        ),
        Mistake(
            "taking the best remaining pair first (greedy) can block a better pairing of the "
            "others: search the assignment that maximises the SUM (the Hungarian algorithm)",
            _greedy_f1,
        ),
        Mistake(
            "one estimated source may serve only one reference source: each row's maximum "
            "counts some columns twice",
            lambda table: float(table.max(axis=1).mean()),
        ),
        Mistake(
            "divide by the number of reference sources: one left without an estimated "
            "source scores 0 and still counts",
            _per_assigned_f1,
        ),
    ),
)


@exercise_check(_BEST_ASSIGNMENT)
def check_best_assignment_f1(fn: Callable) -> str:
    """Check ``fn(table (R, E)) -> float``, the mean F1 of the best assignment.

    Chapter: book/05_contrastive_clustering.md
    """
    cases = _assignment_cases(np.random.default_rng(8))
    _BEST_ASSIGNMENT.grade(fn, cases)
    return (
        f"finds the best one-to-one assignment in {len(cases)} F1 tables (fewer and more "
        "estimated than reference sources included)"
    )
