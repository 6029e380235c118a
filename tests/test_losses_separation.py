"""Cerberus's losses against their naive formulas on tiny cases."""

from __future__ import annotations

import itertools

import pytest
import torch

from timbrelab.losses.separation import (
    affinity_deep_clustering_loss,
    deep_clustering_loss,
    ideal_assignment,
    mask_inference_loss,
    phase_sensitive_target,
    salient_bins,
    source_transcription_loss,
)


def _tiny_case(seed: int = 0, b: int = 2, d: int = 3, s: int = 2, f: int = 4, t: int = 5):
    g = torch.Generator().manual_seed(seed)
    embedding = torch.nn.functional.normalize(torch.randn(b, d, f, t, generator=g), dim=1)
    stems = torch.rand(b, s, f, t, generator=g)
    weights = (torch.rand(b, f, t, generator=g) > 0.3).double()
    return embedding.double(), ideal_assignment(stems).double(), weights


def test_the_efficient_loss_equals_the_affinity_loss_and_the_pairwise_sum():
    embedding, assignment, weights = _tiny_case()
    efficient = deep_clustering_loss(embedding, assignment, weights)
    explicit = affinity_deep_clustering_loss(embedding, assignment, weights)
    assert torch.allclose(efficient, explicit, atol=1e-12)
    # the definition, pair by pair, for each item
    per_item = []
    for v, y, w in zip(embedding, assignment, weights, strict=True):
        v, y, w = v.flatten(1).T, y.flatten(1).T, w.flatten()
        total = sum(w[i] * w[j] * (v[i] @ v[j] - y[i] @ y[j]) ** 2
                    for i, j in itertools.product(range(len(v)), repeat=2))  # fmt: skip
        per_item.append(total / w.sum() ** 2)
    assert torch.allclose(efficient, torch.stack(per_item).mean(), atol=1e-12)
    # unweighted too
    unweighted = deep_clustering_loss(embedding, assignment)
    assert torch.allclose(unweighted, affinity_deep_clustering_loss(embedding, assignment))


def test_ideal_embeddings_score_zero_and_silent_bins_do_not_count():
    _, assignment, weights = _tiny_case(s=3)
    # embedding = the one-hot assignment padded to D = 4: affinities are exactly Y Y^T
    ideal = torch.cat([assignment, torch.zeros_like(assignment[:, :1])], dim=1)
    assert float(deep_clustering_loss(ideal, assignment, weights)) == pytest.approx(0, abs=1e-12)
    wrong = torch.roll(ideal, 1, dims=2)
    assert float(deep_clustering_loss(wrong, assignment)) > 0.05
    # changing the embedding on zero-weight bins leaves the loss alone
    embedding, _, _ = _tiny_case(seed=1, s=3)
    moved = torch.where(weights[:, None] > 0, embedding, -embedding)
    assert torch.allclose(deep_clustering_loss(embedding, assignment, weights),
                          deep_clustering_loss(moved, assignment, weights))  # fmt: skip


def test_shapes_are_checked():
    embedding, assignment, _ = _tiny_case()
    with pytest.raises(ValueError, match="must be"):
        deep_clustering_loss(embedding[..., :3], assignment)


def test_ideal_assignment_and_salient_bins():
    stems = torch.tensor([[[[1.0, 0.1]], [[0.5, 0.2]]]])  # (B=1, S=2, F=1, T=2)
    assert ideal_assignment(stems).tolist() == [[[[1.0, 0.0]], [[0.0, 1.0]]]]
    mixture = torch.tensor([[[1.0, 0.1, 0.001]]])
    assert salient_bins(mixture, threshold_db=-40).tolist() == [[[1.0, 1.0, 0.0]]]


def test_the_phase_sensitive_target_is_the_clipped_projection_bin_by_bin():
    g = torch.Generator().manual_seed(2)
    mixture = torch.complex(torch.randn(1, 3, 4, generator=g), torch.randn(1, 3, 4, generator=g))
    stems = torch.complex(torch.randn(1, 2, 3, 4, generator=g),
                          torch.randn(1, 2, 3, 4, generator=g))  # fmt: skip
    target = phase_sensitive_target(mixture, stems, clip=1.0)
    for k, f, t in itertools.product(range(2), range(3), range(4)):
        x, s = complex(mixture[0, f, t]), complex(stems[0, k, f, t])
        phase = torch.angle(torch.tensor(s)) - torch.angle(torch.tensor(x))
        naive = abs(s) * float(torch.cos(phase)) / abs(x)
        assert float(target[0, k, f, t]) == pytest.approx(min(max(naive, 0.0), 1.0), abs=1e-5)


def test_masks_equal_to_the_target_have_zero_mask_inference_loss():
    g = torch.Generator().manual_seed(3)
    stems = torch.complex(torch.rand(2, 2, 5, 6, generator=g), torch.zeros(2, 2, 5, 6))
    mixture = stems.sum(dim=1)  # real, positive: the target is S / X, already in [0, 1]
    target = phase_sensitive_target(mixture, stems)
    assert float(mask_inference_loss(target, mixture, stems)) == pytest.approx(0, abs=1e-6)
    assert torch.allclose(target.sum(dim=1), torch.ones(2, 5, 6))
    flat = torch.full_like(target, 0.5)
    naive = ((flat - target) * mixture.abs()[:, None]).abs().mean() / mixture.abs().mean()
    assert torch.allclose(mask_inference_loss(flat, mixture, stems), naive)


def test_transcription_losses_match_their_formulas():
    logits = torch.tensor([[-2.0, 0.0, 3.0]])
    target = torch.tensor([[0.0, 1.0, 1.0]])
    p = torch.sigmoid(logits)
    l2 = ((p - target) ** 2).mean()
    bce = -(target * p.log() + (1 - target) * (1 - p).log()).mean()
    assert torch.allclose(source_transcription_loss(logits, target, "l2"), l2)
    assert torch.allclose(source_transcription_loss(logits, target, "bce"), bce)
    with pytest.raises(ValueError, match="kind"):
        source_transcription_loss(logits, target, "focal")
