"""Chapter 4 exercise checks: typical wrong answers fail with a message that helps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from timbrelab.exercises import ch04
from timbrelab.losses import affinity_deep_clustering_loss


def _dc_by_affinities(v, y):
    """Right, but builds the N x N matrices: slow, not wrong."""
    return float(np.sum((v @ v.T - y @ y.T) ** 2) / len(v) ** 2)


def _dc_without_return(v, y):
    ch04.solution_deep_clustering_loss(v, y)


def test_the_dc_solution_is_the_affinity_loss():
    rng = np.random.default_rng(0)
    v = rng.random((30, 4))
    y = np.eye(3)[rng.integers(0, 3, 30)]
    explicit = affinity_deep_clustering_loss(
        torch.from_numpy(v).T[None, :, :, None], torch.from_numpy(y).T[None, :, :, None]
    )
    assert ch04.solution_deep_clustering_loss(v, y) == pytest.approx(float(explicit))


def test_the_affinity_form_passes_too(capsys):
    ch04.check_deep_clustering_loss(_dc_by_affinities, strict=True)
    assert capsys.readouterr().out.startswith("✓")


def test_the_psa_solution_equals_the_mask_that_rebuilds_real_sources():
    # a source in phase with the mixture and smaller than it: the target is |S| / |X|
    mixture = np.array([[2.0 + 0j]])
    assert ch04.solution_psa_target(mixture, np.array([[1.0 + 0j]]), 1.0)[0, 0] == 0.5
    # a source in opposition of phase: 0
    assert ch04.solution_psa_target(mixture, np.array([[-1.0 + 0j]]), 1.0)[0, 0] == 0.0


TYPICAL_WRONG_ANSWERS = [
    ("dc-none", ch04.check_deep_clustering_loss, _dc_without_return,
     "returned None: did you forget `return`?"),
    ("dc-matrix", ch04.check_deep_clustering_loss,
     lambda v, y: v @ v.T - y @ y.T, "expected the loss of this item, one number"),
    ("dc-plus", ch04.check_deep_clustering_loss,
     lambda v, y: (np.sum((v.T @ v) ** 2) + 2 * np.sum((v.T @ y) ** 2)
                   + np.sum((y.T @ y) ** 2)) / len(v) ** 2, "cross term is subtracted"),
    ("dc-unnormalised", ch04.check_deep_clustering_loss,
     lambda v, y: np.sum((v @ v.T - y @ y.T) ** 2), "divide by N^2"),
    ("psa-ratio", ch04.check_psa_target,
     lambda x, s, c: np.clip(np.abs(s) / np.abs(x), 0, c), "magnitude ratio"),
    ("psa-unclipped", ch04.check_psa_target,
     lambda x, s, c: np.real(s * np.conj(x)) / np.abs(x) ** 2, "clip the target to [0, clip]"),
    ("psa-complex", ch04.check_psa_target, lambda x, s, c: s / x, "not numbers"),
    ("ibm-soft", ch04.check_ideal_binary_mask,
     lambda m: m / m.sum(0, keepdims=True), "soft (ratio) mask"),
    ("ibm-indices", ch04.check_ideal_binary_mask, lambda m: m.argmax(0),
     "expected one 0/1 mask per source"),
    ("ibm-half", ch04.check_ideal_binary_mask,
     lambda m: (m / m.sum(0) > 0.5).astype(float), "more than two sources"),
]  # fmt: skip
