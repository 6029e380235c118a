"""Chapter 5 exercise checks: typical wrong answers fail with a message that helps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from timbrelab.decode import estimate_n_clusters, note_embeddings
from timbrelab.exercises import ch05, check_hidden
from timbrelab.notes import Note


def _nce_by_torch(points, labels, temperature):
    """Right, in torch with a log-sum-exp: another way to the same number."""
    v, y = torch.from_numpy(points), torch.from_numpy(labels)
    s = v @ v.T / temperature
    eye = torch.eye(len(v), dtype=torch.bool)
    positive = ((y @ y.T) > 0) & ~eye
    anchors = positive.any(1)
    if not anchors.any():
        return torch.tensor(0.0)
    low = torch.finfo(s.dtype).min
    loss = s.masked_fill(eye, low).logsumexp(1) - s.masked_fill(~positive, low).logsumexp(1)
    return loss[anchors].mean()


def _nce_float32(points, labels, temperature):
    return _nce_by_torch(points.astype(np.float32), labels.astype(np.float32), temperature)


def _note_by_sum(embedding, weights, row, start, stop):
    """Weighted SUM, then normalised: the same direction, so right."""
    bins, w = embedding[:, row, start:stop], weights[row, start:stop]
    total = bins @ w if w.sum() > 0 else bins.sum(axis=1)
    return total / np.linalg.norm(total)


def _gap_random_walk(affinity, max_clusters):
    """I - D^-1 A has the eigenvalues of the symmetric normalised Laplacian: right."""
    walk = np.eye(len(affinity)) - affinity / affinity.sum(axis=1, keepdims=True)
    values = np.sort(np.linalg.eigvals(walk).real)[: max_clusters + 1]
    return int(np.argmax(np.diff(values))) + 1


def _best_by_permutations(table):
    """Every assignment tried: slow, but right."""
    from itertools import permutations

    r, e = table.shape
    if r <= e:
        best = max(sum(table[i, p[i]] for i in range(r)) for p in permutations(range(e), r))
    else:
        best = max(sum(table[p[j], j] for j in range(e)) for p in permutations(range(r), e))
    return best / r


@pytest.mark.parametrize(
    ("check", "right"),
    [
        (ch05.check_info_nce, _nce_by_torch),
        (ch05.check_info_nce, _nce_float32),
        (ch05.check_note_embedding, _note_by_sum),
        (ch05.check_eigengap, _gap_random_walk),
        (ch05.check_best_assignment_f1, _best_by_permutations),
    ],
)
def test_other_right_answers_pass(check, right, capsys):
    check(right, strict=True)
    for seed in range(3):
        check_hidden(check, right, seed)
    assert capsys.readouterr().out.startswith("✓")


def test_the_info_nce_solution_is_the_package_loss():
    rng = np.random.default_rng(0)
    for case in ch05._nce_cases(rng):
        points, labels, tau = case.args
        package = ch05._INFO_NCE.reference(points, labels, tau)
        assert ch05.solution_info_nce(points, labels, tau) == pytest.approx(package, rel=1e-9)


def test_the_note_solution_is_the_package_note_embedding():
    rng = np.random.default_rng(1)
    embedding = rng.standard_normal((4, 5, 30))
    embedding /= np.linalg.norm(embedding, axis=0)
    weights = rng.random((5, 30))
    note = Note(pitch=21 + 2, onset=0.1, offset=0.3)  # frames 2 .. 5 at 20 frames/s
    package = note_embeddings(embedding, weights, [note], frame_rate=20.0, midi_min=21)[0]
    mine = ch05.solution_note_embedding(embedding, weights, 2, 2, 6)
    np.testing.assert_allclose(mine, package, rtol=1e-5)


def test_the_eigengap_solution_is_the_package_estimate():
    rng = np.random.default_rng(2)
    for sizes in ((6, 6, 6), (14, 3, 2), (9,)):
        points = ch05._groups(rng, sizes, 0.06)
        affinity = ch05.affinity_matrix(points)
        assert ch05.solution_eigengap(affinity, 5) == estimate_n_clusters(points, 5)


def test_the_unbalanced_case_fools_the_unnormalised_laplacian():
    for seed in range(5):
        case = ch05._gap_cases(np.random.default_rng(seed))[-1]
        assert ch05.solution_eigengap(*case.args) == 3
        assert ch05._gap_like(laplacian="unnormalised")(*case.args) != 3


def test_greedy_loses_on_every_drawn_table():
    for seed in range(5):
        for table in ch05._assignment_tables(np.random.default_rng(seed)):
            assert ch05._greedy_f1(table) < ch05.solution_best_assignment_f1(table) - 0.01


@pytest.mark.parametrize(
    "check",
    [
        ch05.check_info_nce,
        ch05.check_note_embedding,
        ch05.check_eigengap,
        ch05.check_best_assignment_f1,
    ],
)
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_hidden_cases_fail_every_mistake(check):
    solution = getattr(ch05, "solution_" + check.__name__.removeprefix("check_"))
    for seed in range(5):
        check_hidden(check, solution, seed)
        for mistake in check.exercise.mistakes:
            with pytest.raises(AssertionError):
                check_hidden(check, mistake.answer, seed)


def _nce_inf_for_lonely(points, labels, temperature):
    """Every point an anchor: a lonely one makes -log(0) = inf."""
    s = np.exp(points @ points.T / temperature)
    off = ~np.eye(len(points), dtype=bool)
    positive = (labels @ labels.T > 0) & off
    with np.errstate(divide="ignore"):
        return np.mean(-np.log((s * positive).sum(1) / (s * off).sum(1)))


def _nce_unmasked(points, labels, temperature):
    """No diagonal mask anywhere: the anchor is its own positive and in the denominator."""
    s = np.exp(points @ points.T / temperature)
    positive = labels @ labels.T > 0
    return np.mean(-np.log((s * positive).sum(1) / s.sum(1)))


TYPICAL_WRONG_ANSWERS = [
    ("nce-none", ch05.check_info_nce, lambda p, y, t: None,
     "returned None: did you forget `return`?"),
    ("nce-per-anchor", ch05.check_info_nce,
     lambda p, y, t: np.ones(len(p)), "expected the loss, the mean over anchors, one number"),
    ("nce-lonely-inf", ch05.check_info_nce, _nce_inf_for_lonely,
     "an anchor with no positive"),
    ("nce-unmasked", ch05.check_info_nce, _nce_unmasked, "the anchor is not its own positive"),
    ("note-matrix", ch05.check_note_embedding,
     lambda e, w, r, a, b: e[:, r, a:b], "expected the note's embedding, one unit vector"),
    ("note-unweighted-sum", ch05.check_note_embedding,
     lambda e, w, r, a, b: e[:, r, a:b].sum(1), "Remember: embedding = sum_t w[t]"),
    ("note-weighted-sum", ch05.check_note_embedding,
     lambda e, w, r, a, b: e[:, r, a:b] @ w[r, a:b], "divide the mean by its length"),
    ("note-plain", ch05.check_note_embedding,
     lambda e, w, r, a, b: (m := e[:, r, a:b].mean(1)) / np.linalg.norm(m),
     "weight every frame by its activation"),
    ("gap-eigenvalues", ch05.check_eigengap,
     lambda a, k: np.linalg.eigvalsh(a)[:k], "expected the number of clusters, one number"),
    ("gap-plus-zero", ch05.check_eigengap,
     lambda a, k: ch05.solution_eigengap(a, k) - 1, "K counts eigenvalues"),
    ("best-assignment-pairs", ch05.check_best_assignment_f1,
     lambda t: np.array([[0, 0], [1, 1]]), "expected the mean F1 over references, one number"),
    ("best-identity", ch05.check_best_assignment_f1,
     lambda t: np.mean(np.diag(t)) * min(t.shape) / t.shape[0], "cluster j is not instrument j"),
]  # fmt: skip
