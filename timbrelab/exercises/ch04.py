"""Exercises of Chapter 4 (Cerberus): checks and reference solutions.

1. ``deep_clustering_loss(V, Y)``: the deep-clustering loss of one item from ``D x D``,
   ``D x S`` and ``S x S`` products, never the ``N x N`` affinity matrices, as
   :func:`timbrelab.losses.deep_clustering_loss` without weights.
2. ``psa_target(mixture, source, clip)``: the truncated phase-sensitive mask of one source,
   as :func:`timbrelab.losses.phase_sensitive_target`.
3. ``ideal_binary_mask(stem_magnitudes)``: the one-hot assignment of every bin to its
   loudest source, the target of deep clustering (:func:`timbrelab.losses.ideal_assignment`).

See :mod:`timbrelab.exercises` for what a check prints, returns and raises.

Chapter: book/04_cerberus.md
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from timbrelab.exercises import (
    Case,
    Exercise,
    Mistake,
    exercise_check,
    expect_array,
    expect_number,
    show_numbers,
)
from timbrelab.losses import deep_clustering_loss as _package_dc_loss
from timbrelab.losses import ideal_assignment, phase_sensitive_target

# --- reference solutions (shown in the chapter behind a toggle) -------------------------------


def solution_deep_clustering_loss(v: np.ndarray, y: np.ndarray) -> float:
    """Reference: ``(|V^T V|^2 - 2 |V^T Y|^2 + |Y^T Y|^2) / N^2`` (squared Frobenius norms)
    for embeddings ``V (N, D)`` and one-hot assignments ``Y (N, S)`` of ``N`` bins, which
    equals ``|V V^T - Y Y^T|^2 / N^2`` without building the ``N x N`` matrices.

    Chapter: book/04_cerberus.md
    """
    n = len(v)
    vv = np.sum((v.T @ v) ** 2)
    vy = np.sum((v.T @ y) ** 2)
    yy = np.sum((y.T @ y) ** 2)
    return float((vv - 2 * vy + yy) / n**2)


def solution_psa_target(mixture: np.ndarray, source: np.ndarray, clip: float) -> np.ndarray:
    """Reference: ``clip(|S| cos(angle S - angle X) / |X|, 0, clip)`` bin by bin, for complex
    spectrograms ``mixture`` and ``source`` ``(F, T)``.

    Chapter: book/04_cerberus.md
    """
    ratio = np.abs(source) * np.cos(np.angle(source) - np.angle(mixture)) / np.abs(mixture)
    return np.clip(ratio, 0.0, clip)


def solution_ideal_binary_mask(stem_magnitudes: np.ndarray) -> np.ndarray:
    """Reference: ``(S, F, T)`` with a 1 in every ``(f, t)`` for the source ``s`` of largest
    magnitude there, 0 for the others.

    Chapter: book/04_cerberus.md
    """
    loudest = np.argmax(stem_magnitudes, axis=0)
    return (np.arange(len(stem_magnitudes))[:, None, None] == loudest).astype(np.float64)


# --- exercise 1: the efficient deep-clustering loss ------------------------------------------


def _dc_terms(v: np.ndarray, y: np.ndarray) -> tuple[float, float, float, int]:
    """Squared Frobenius norms of V^T V, V^T Y, Y^T Y, and N."""
    return (
        float(np.sum((v.T @ v) ** 2)),
        float(np.sum((v.T @ y) ** 2)),
        float(np.sum((y.T @ y) ** 2)),
        len(v),
    )


def _dc_like(combine: Callable[[float, float, float, int], float]) -> Callable:
    """A loss made of the right terms, combined otherwise (a typical mistake)."""
    return lambda v, y: combine(*_dc_terms(v, y))


def _dc_unsquared(v: np.ndarray, y: np.ndarray) -> float:
    """Frobenius norms, not their squares."""
    norm = np.linalg.norm
    return float((norm(v.T @ v) - 2 * norm(v.T @ y) + norm(y.T @ y)) / len(v) ** 2)


def _dc_case(label: str, v: np.ndarray, y: np.ndarray) -> Case:
    return Case(f"deep_clustering_loss(<{label}: V {v.shape}, Y {y.shape}>)", (v, y))


def _embeddings(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    v = np.abs(rng.standard_normal((n, d)))  # sigmoid outputs are positive
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _assignments(rng: np.random.Generator, n: int, s: int) -> np.ndarray:
    return np.eye(s)[rng.integers(0, s, n)]


def _dc_cases(rng: np.random.Generator) -> list[Case]:
    """Random embeddings for two sizes, and an ideal embedding (loss 0)."""
    cases = []
    for n, d, s in ((int(rng.integers(30, 60)), 20, 2), (int(rng.integers(60, 120)), 8, 3)):
        y = _assignments(rng, n, s)
        cases.append(_dc_case("random unit embeddings", _embeddings(rng, n, d), y))
    y = _assignments(rng, 40, 3)
    ideal = np.concatenate([y, np.zeros((40, 2))], axis=1)  # V = Y, padded to D = 5
    cases.append(_dc_case("embeddings equal to the assignments", ideal, y))
    return cases


def _explain_dc(case: Case, got: float, want: float, index: tuple) -> str:
    shown_want, shown_got = show_numbers(want, got)
    return f"expected {shown_want}, got {shown_got}"


_DEEP_CLUSTERING = Exercise(
    name="deep_clustering_loss",
    reference=lambda v, y: float(
        _package_dc_loss(
            torch.from_numpy(v).T[None, :, :, None], torch.from_numpy(y).T[None, :, :, None]
        )
    ),
    read=lambda value, case: expect_number(value, case.call, "the loss of this item"),
    explain=_explain_dc,
    rule="loss = (|V^T V|^2 - 2 |V^T Y|^2 + |Y^T Y|^2) / N^2 with squared Frobenius norms",
    rtol=1e-6,
    atol=1e-9,
    hidden=lambda rng: [_dc_cases(rng)],
    mistakes=(
        Mistake(
            "divide by N^2 (the number of pairs of bins), so the loss does not grow with the "
            "length of the clip",
            _dc_like(lambda vv, vy, yy, n: vv - 2 * vy + yy),
        ),
        Mistake(
            "divide by N^2, not N: the loss sums over pairs of bins",
            _dc_like(lambda vv, vy, yy, n: (vv - 2 * vy + yy) / n),
        ),
        Mistake(
            "the cross term is subtracted: |A - B|^2 = |A|^2 - 2 <A, B> + |B|^2",
            _dc_like(lambda vv, vy, yy, n: (vv + 2 * vy + yy) / n**2),
        ),
        Mistake(
            "|Y^T Y|^2 does not depend on V, but it is part of the loss (without it the "
            "loss of ideal embeddings is not 0)",
            _dc_like(lambda vv, vy, yy, n: (vv - 2 * vy) / n**2),
        ),
        Mistake(
            "square the Frobenius norms: np.sum(M ** 2), not np.linalg.norm(M)",
            _dc_unsquared,
        ),
    ),
)


@exercise_check(_DEEP_CLUSTERING)
def check_deep_clustering_loss(fn: Callable) -> str:
    """Check ``fn(V (N, D), Y (N, S)) -> float``, the efficient deep-clustering loss.

    Chapter: book/04_cerberus.md
    """
    cases = _dc_cases(np.random.default_rng(4))
    _DEEP_CLUSTERING.grade(fn, cases)
    return (
        f"matches the affinity form |VV^T - YY^T|^2 / N^2 on {len(cases)} items (ideal "
        "embeddings included)"
    )


# --- exercise 2: the phase-sensitive target ---------------------------------------------------


def _psa_like(ratio: Callable, clip_low: bool, clip_high: bool) -> Callable:
    """A target from another ratio, clipped below at 0 and/or above at ``clip`` or not (a
    typical mistake)."""

    def answer(mixture, source, clip):
        value = ratio(mixture, source)
        value = np.maximum(value, 0.0) if clip_low else value
        return np.minimum(value, clip) if clip_high else value

    return answer


def _phase_ratio(mixture: np.ndarray, source: np.ndarray) -> np.ndarray:
    return np.abs(source) * np.cos(np.angle(source) - np.angle(mixture)) / np.abs(mixture)


def _psa_cases(rng: np.random.Generator) -> list[Case]:
    """Random complex spectrograms whose ratio falls below 0 and above ``clip``."""
    cases = []
    for clip in (1.0, round(float(rng.uniform(1.5, 2.5)), 2)):
        f, t = int(rng.integers(5, 12)), int(rng.integers(6, 15))
        mixture = rng.standard_normal((f, t)) + 1j * rng.standard_normal((f, t))
        source = 1.5 * (rng.standard_normal((f, t)) + 1j * rng.standard_normal((f, t)))
        call = f"psa_target(<mixture {f}x{t}>, <source {f}x{t}>, clip={clip})"
        cases.append(Case(call, (mixture, source, clip)))
    return cases


def _explain_psa(case: Case, got: np.ndarray, want: np.ndarray, index: tuple) -> str:
    x, s = case.args[0][index], case.args[1][index]
    shown_want, shown_got = show_numbers(want[index], got[index])
    return (
        f"at bin {index} (|X| {abs(x):.3f}, |S| {abs(s):.3f}, phase difference "
        f"{np.angle(s) - np.angle(x):.3f} rad) expected {shown_want}, got {shown_got}"
    )


_PSA = Exercise(
    name="psa_target",
    reference=lambda mixture, source, clip: phase_sensitive_target(
        torch.from_numpy(mixture)[None], torch.from_numpy(source)[None, None], clip
    )[0, 0].numpy(),
    read=lambda value, case: expect_array(
        value, case.call, case.args[0].shape, "one real mask value per time-frequency bin"
    ),
    explain=_explain_psa,
    rule="target = clip(|S| cos(angle(S) - angle(X)) / |X|, 0, clip)",
    rtol=1e-6,
    atol=1e-9,
    hidden=lambda rng: [_psa_cases(rng)],
    mistakes=(
        Mistake(
            "this is the magnitude ratio |S| / |X|: multiply by cos(angle(S) - angle(X)), the "
            "part of S in the direction of the mixture's phase",
            _psa_like(lambda x, s: np.abs(s) / np.abs(x), True, True),
        ),
        Mistake(
            "clip the target to [0, clip]: a mask from a softmax or sigmoid cannot reach "
            "negative values or values above clip",
            _psa_like(_phase_ratio, False, False),
        ),
        Mistake(
            "negative values remain: clip below at 0 too",
            _psa_like(_phase_ratio, False, True),
        ),
        Mistake(
            "values above clip remain: clip above at clip too",
            _psa_like(_phase_ratio, True, False),
        ),
        Mistake(
            "use the phase DIFFERENCE angle(S) - angle(X), not the sum",
            _psa_like(
                lambda x, s: np.abs(s) * np.cos(np.angle(s) + np.angle(x)) / np.abs(x),
                True,
                True,
            ),
        ),
    ),
)


@exercise_check(_PSA)
def check_psa_target(fn: Callable) -> str:
    """Check ``fn(mixture (F, T), source (F, T), clip) -> (F, T)``, the PSA target.

    Chapter: book/04_cerberus.md
    """
    cases = _psa_cases(np.random.default_rng(5))
    _PSA.grade(fn, cases)
    return f"matches the truncated phase-sensitive target on {len(cases)} spectrograms"


# --- exercise 3: the ideal binary mask --------------------------------------------------------


def _ibm_cases(rng: np.random.Generator) -> list[Case]:
    """Three and four sources (with two, "more than half" is the same as "loudest")."""
    cases = []
    for s in (3, 4):
        shape = (s, int(rng.integers(4, 10)), int(rng.integers(5, 12)))
        magnitudes = rng.random(shape)
        cases.append(Case(f"ideal_binary_mask(<magnitudes {shape}>)", (magnitudes,)))
    return cases


def _explain_ibm(case: Case, got: np.ndarray, want: np.ndarray, index: tuple) -> str:
    _, f, t = index
    column = np.round(case.args[0][:, f, t], 3).tolist()
    return (
        f"at source {index[0]}, bin ({f}, {t}) expected {want[index]:g}, got {got[index]:g} "
        f"(the sources' magnitudes there: {column})"
    )


def _soft_mask(magnitudes: np.ndarray) -> np.ndarray:
    return magnitudes / magnitudes.sum(axis=0, keepdims=True)


_IBM = Exercise(
    name="ideal_binary_mask",
    reference=lambda m: ideal_assignment(torch.from_numpy(m)[None])[0].numpy(),
    read=lambda value, case: expect_array(
        value, case.call, case.args[0].shape, "one 0/1 mask per source"
    ),
    explain=_explain_ibm,
    rule="mask[s, f, t] = 1 where source s is the loudest of all sources at (f, t), else 0",
    hidden=lambda rng: [_ibm_cases(rng)],
    mistakes=(
        Mistake(
            "this is a soft (ratio) mask: the ideal BINARY mask gives each bin wholly to its "
            "loudest source",
            _soft_mask,
        ),
        Mistake(
            "a source above half the total is not the same as the loudest one when there are "
            "more than two sources: compare the sources with each other (argmax over axis 0)",
            lambda m: (_soft_mask(m) > 0.5).astype(float),
        ),
        Mistake(
            "the loudest is taken along frequency (axis 1): compare the sources, axis 0",
            lambda m: (np.arange(m.shape[1])[None, :, None] == m.argmax(axis=1)[:, None]).astype(
                float
            ),
        ),
    ),
)


@exercise_check(_IBM)
def check_ideal_binary_mask(fn: Callable) -> str:
    """Check ``fn(stem_magnitudes (S, F, T)) -> (S, F, T)``, the ideal binary mask.

    Chapter: book/04_cerberus.md
    """
    cases = _ibm_cases(np.random.default_rng(6))
    _IBM.grade(fn, cases)
    return f"matches the one-hot assignment to the loudest source for {len(cases)} mixtures"
