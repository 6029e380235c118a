"""Timbre-Trap's objectives (eqs. 1-4), each against a value worked out by hand."""

from __future__ import annotations

import pytest
import torch

from timbrelab.losses.timbre_trap import (
    coefficient_loss,
    consistency_loss,
    salience_loss,
    timbre_trap_loss,
)


def test_salience_loss_balances_positives_per_frame():
    # frame 0: one active bin of 4 -> its error weighs 3 (= 3 negatives / 1 positive);
    # frame 1: silent -> every bin weighs 1.
    target = torch.tensor([[[1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]])  # (1, F=4, T=2)
    estimate = torch.tensor([[[0.5, 0.2], [0.1, 0.0], [0.0, 0.0], [0.2, 0.4]]])
    frame0 = 3 * 0.5**2 + 0.1**2 + 0.0 + 0.2**2  # 0.8
    frame1 = 0.2**2 + 0.0 + 0.0 + 0.4**2  # 0.2
    assert salience_loss(estimate, target).item() == pytest.approx((frame0 + frame1) / 2)


def test_salience_loss_of_a_perfect_estimate_is_zero_and_shapes_are_checked():
    target = (torch.rand(2, 5, 3) > 0.5).float()
    assert salience_loss(target.clone(), target).item() == 0.0
    with pytest.raises(ValueError, match="same 3-D shape"):
        salience_loss(torch.zeros(2, 5, 3), torch.zeros(2, 5, 4))


def test_coefficient_loss_sums_channels_and_bins_and_averages_frames():
    target = torch.zeros(1, 2, 2, 2)  # (B, C=2 real/imag, F=2, T=2)
    estimate = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]], [[0.0, 2.0], [0.0, 1.0]]]])
    # frame 0: 1^2 (real, bin 0); frame 1: 2^2 + 1^2 (imaginary, bins 0 and 1)
    assert coefficient_loss(estimate, target).item() == pytest.approx((1 + 5) / 2)


def test_consistency_is_both_round_trips_against_the_transcription():
    z = torch.ones(1, 2, 1, 1)
    again_rec, again_tr = torch.zeros_like(z), 3 * torch.ones_like(z)
    # |0 - 1|^2 * 2 channels + |3 - 1|^2 * 2 channels
    assert consistency_loss(z, again_rec, again_tr).item() == pytest.approx(2 + 8)


class _Echo(torch.nn.Module):
    """A stand-in model whose round trip returns fixed coefficients."""

    def round_trip(self, z):
        return torch.zeros_like(z), 2 * z


def test_total_is_the_weighted_sum_and_zero_weights_skip_terms():
    outputs = {
        "salience": torch.tensor([[[0.5]]]),  # (1, 1, 1)
        "features": torch.zeros(1, 2, 1, 1),
        "reconstruction": torch.ones(1, 2, 1, 1),  # L_rc = 2
        "transcription": torch.ones(1, 2, 1, 1),  # L_cc = 2 + 2
    }
    target = torch.tensor([[[1.0]]])  # one positive, no negatives: weight 0 / 1 -> 0
    total, parts = timbre_trap_loss(_Echo(), outputs, target, 0.5, 2.0)
    assert parts == {"transcription": 0.0, "reconstruction": 2.0, "consistency": 4.0}
    assert total.item() == pytest.approx(0.0 + 0.5 * 2.0 + 2.0 * 4.0)
    total, parts = timbre_trap_loss(_Echo(), outputs, target, 0.0, 0.0)
    assert set(parts) == {"transcription"}
    # unlabelled audio: the reconstruction term alone
    total, parts = timbre_trap_loss(_Echo(), outputs, None)
    assert parts == {"reconstruction": 2.0} and total.item() == 2.0
    with pytest.raises(ValueError, match="no term"):
        timbre_trap_loss(_Echo(), outputs, None, reconstruction_weight=0.0)
