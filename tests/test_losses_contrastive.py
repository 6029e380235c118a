"""The contrastive losses of Chapter 5 against values computed by hand."""

import math

import pytest
import torch

from timbrelab.losses.contrastive import (
    affinity_loss,
    bin_info_nce,
    info_nce,
    note_ids,
    note_info_nce,
)


def unit(*rows):
    return torch.nn.functional.normalize(torch.tensor(rows, dtype=torch.float32), dim=1)


def test_info_nce_matches_a_hand_computed_case():
    # anchors 0 and 1 are each other's only positive; anchor 2 has none and does not count
    points = unit([1.0, 0.0], [1.0, 0.0], [0.0, 1.0])
    labels = torch.tensor([[1, 0], [1, 0], [0, 1]])
    expected = math.log(1 + math.exp(-1.0))  # -log(e^1 / (e^1 + e^0)) at tau = 1
    assert float(info_nce(points, labels, temperature=1.0)) == pytest.approx(expected, rel=1e-6)
    # tau = 0.5 doubles every similarity: -log(e^2 / (e^2 + e^0))
    half = math.log(1 + math.exp(-2.0))
    assert float(info_nce(points, labels, temperature=0.5)) == pytest.approx(half, rel=1e-6)


def test_info_nce_averages_over_every_positive_of_an_anchor():
    points = unit([1.0, 0.0], [0.6, 0.8], [0.0, 1.0])
    labels = torch.tensor([[1], [1], [1]])  # one instrument: everything is a positive
    assert float(info_nce(points, labels)) == pytest.approx(0.0, abs=1e-6)
    labels = torch.tensor([[1, 0], [1, 0], [0, 1]])
    s = points @ points.T
    l0 = -math.log(math.exp(s[0, 1]) / (math.exp(s[0, 1]) + math.exp(s[0, 2])))
    l1 = -math.log(math.exp(s[1, 0]) / (math.exp(s[1, 0]) + math.exp(s[1, 2])))
    assert float(info_nce(points, labels, 1.0)) == pytest.approx((l0 + l1) / 2, rel=1e-5)


def test_info_nce_without_positives_is_zero_and_keeps_the_graph():
    points = unit([1.0, 0.0], [0.0, 1.0]).requires_grad_(True)
    loss = info_nce(points, torch.tensor([[1, 0], [0, 1]]))
    assert float(loss.detach()) == 0.0
    loss.backward()  # no error: a batch without positives still steps
    assert points.grad is not None


def test_info_nce_rejects_bad_input():
    with pytest.raises(ValueError, match="points"):
        info_nce(torch.zeros(3, 2), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="temperature"):
        info_nce(unit([1.0, 0.0]), torch.ones(1, 1), temperature=0.0)


def volume(points_by_bin: dict, d: int = 2, f: int = 3, t: int = 4) -> torch.Tensor:
    """An embedding volume (1, D, F, T) with given unit vectors at given bins, zero elsewhere."""
    v = torch.zeros(1, d, f, t)
    for (row, frame), vector in points_by_bin.items():
        v[0, :, row, frame] = torch.nn.functional.normalize(torch.tensor(vector), dim=0)
    return v


def test_bin_info_nce_uses_only_active_bins():
    embedding = volume({(0, 0): [1.0, 0.0], (0, 1): [1.0, 0.0], (2, 3): [0.0, 1.0]})
    targets = torch.zeros(1, 2, 3, 4)
    targets[0, 0, 0, 0:2] = 1
    targets[0, 1, 2, 3] = 1
    expected = math.log(1 + math.exp(-1.0))
    assert float(bin_info_nce(embedding, targets, 1.0)) == pytest.approx(expected, rel=1e-6)


def test_bin_info_nce_subsamples_at_most_max_bins():
    torch.manual_seed(0)
    embedding = torch.nn.functional.normalize(torch.randn(1, 4, 8, 50), dim=1)
    targets = (torch.rand(1, 3, 8, 50) > 0.5).float()
    full = float(bin_info_nce(embedding, targets))
    sampled = [
        float(
            bin_info_nce(
                embedding, targets, max_bins=40, generator=torch.Generator().manual_seed(s)
            )
        )
        for s in range(3)
    ]
    assert len(set(sampled)) == 3 and all(abs(s - full) < 0.5 for s in sampled)


def test_note_ids_number_runs_per_instrument_and_pitch():
    rolls = torch.zeros(2, 2, 6)
    rolls[0, 1, 0:2] = 1
    rolls[0, 1, 3:5] = 1  # a repeated note: two runs
    rolls[1, 0, 2:6] = 1
    ids = note_ids(rolls)
    assert ids[0, 1].tolist() == [1, 1, 0, 2, 2, 0]
    assert ids[1, 0].tolist() == [0, 0, 3, 3, 3, 3]
    assert int((ids > 0).sum()) == int(rolls.sum())


def test_note_info_nce_contrasts_note_means():
    # instrument 0 plays two notes whose bins average to (1, 0); instrument 1 one note at (0, 1)
    embedding = volume(
        {(0, 0): [1.0, 0.2], (0, 1): [1.0, -0.2], (1, 3): [1.0, 0.0], (2, 0): [0.0, 1.0]}
    )
    targets = torch.zeros(1, 2, 3, 4)
    targets[0, 0, 0, 0:2] = 1
    targets[0, 0, 1, 3] = 1
    targets[0, 1, 2, 0] = 1
    expected = math.log(1 + math.exp(-1.0))  # the two notes of instrument 0 are both (1, 0)
    assert float(note_info_nce(embedding, targets, 1.0)) == pytest.approx(expected, rel=1e-5)


def test_affinity_loss_is_the_mean_squared_affinity_error_over_active_bins():
    embedding = volume({(0, 0): [1.0, 0.0], (0, 1): [0.6, 0.8], (2, 3): [0.0, 1.0]})
    targets = torch.zeros(1, 2, 3, 4)
    targets[0, 0, 0, 0:2] = 1
    targets[0, 1, 2, 3] = 1
    v = unit([1.0, 0.0], [0.6, 0.8], [0.0, 1.0])
    y = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    expected = float(((v @ v.T - y @ y.T) ** 2).sum() / 9)
    assert float(affinity_loss(embedding, targets)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("loss", [bin_info_nce, note_info_nce, affinity_loss])
def test_losses_reject_mismatched_shapes(loss):
    with pytest.raises(ValueError, match="embedding"):
        loss(torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 5))
