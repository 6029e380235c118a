from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from timbrelab.losses import (
    BASIC_PITCH_DEFAULTS,
    FOCAL_DEFAULTS,
    bce,
    contour_target,
    focal_loss,
    transcription_loss,
    weighted_bce,
)

LN2, LN3, LN4 = math.log(2), math.log(3), math.log(4)


def test_focal_loss_by_hand() -> None:
    # p = sigmoid([0, ln 3]) = [0.5, 0.75]; targets [1, 0]; alpha 0.25, gamma 2.
    # positive: -0.25 * (1 - 0.5)^2 * ln 0.5      = 0.25 * 0.25 * ln 2    = 0.0433217
    # negative: -0.75 * 0.75^2 * ln(1 - 0.75)     = 0.75 * 0.5625 * ln 4  = 0.5848429
    logits = torch.tensor([0.0, LN3])
    targets = torch.tensor([1.0, 0.0])
    each = focal_loss(logits, targets, alpha=0.25, gamma=2.0, reduction="none")
    torch.testing.assert_close(each, torch.tensor([0.0433217, 0.5848429]))
    mean = focal_loss(logits, targets).item()
    assert mean == pytest.approx((0.0433217 + 0.5848429) / 2, abs=1e-6)
    assert focal_loss(logits, targets, reduction="sum").item() == pytest.approx(0.6281646, abs=1e-6)


def test_focal_loss_gamma0_alpha_half_is_half_bce() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 88, 10, generator=gen) * 3
    targets = (torch.rand(2, 88, 10, generator=gen) > 0.8).float()
    expected = 0.5 * F.binary_cross_entropy_with_logits(logits, targets)
    torch.testing.assert_close(focal_loss(logits, targets, alpha=0.5, gamma=0.0), expected)


def test_focal_loss_downweights_easy_examples() -> None:
    # Same alpha: gamma > 0 shrinks the loss of confident, correct predictions the most.
    logits = torch.tensor([4.0, -4.0, 0.2])
    targets = torch.tensor([1.0, 0.0, 1.0])
    plain = focal_loss(logits, targets, alpha=0.25, gamma=0.0, reduction="none")
    focal = focal_loss(logits, targets, alpha=0.25, gamma=2.0, reduction="none")
    ratio = focal / plain
    assert torch.all(focal < plain)
    assert ratio[0] < 1e-3 and ratio[1] < 1e-3 and ratio[2] > 0.1


def test_focal_loss_is_finite_for_extreme_logits() -> None:
    logits = torch.tensor([100.0, -100.0, 100.0, -100.0], requires_grad=True)
    targets = torch.tensor([1.0, 0.0, 0.0, 1.0])
    loss = focal_loss(logits, targets, reduction="none")
    assert torch.isfinite(loss).all()
    assert loss[:2].max() < 1e-30 and loss[2:].min() > 1.0
    loss.sum().backward()
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha": 1.5}, "alpha"),
        ({"gamma": -1.0}, "gamma"),
        ({"reduction": "max"}, "reduction"),
    ],
)
def test_focal_loss_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        focal_loss(torch.zeros(3), torch.zeros(3), **kwargs)


@pytest.mark.parametrize("fn", [focal_loss, bce, weighted_bce])
def test_losses_reject_shape_mismatch(fn) -> None:
    with pytest.raises(ValueError, match="shape"):
        fn(torch.zeros(2, 88, 5), torch.zeros(2, 88, 6))


def test_bce_matches_torch_and_smooths_labels() -> None:
    logits = torch.tensor([0.0, LN3])
    targets = torch.tensor([1.0, 0.0])
    expected = F.binary_cross_entropy_with_logits(logits, targets)
    torch.testing.assert_close(bce(logits, targets), expected)
    # smoothing 0.2: targets -> [0.9, 0.1]; p = [0.5, 0.75]
    # -(0.9 ln .5 + 0.1 ln .5) = ln 2;  -(0.1 ln .75 + 0.9 ln .25) = 1.2764331
    smoothed = bce(logits, targets, label_smoothing=0.2, reduction="none")
    torch.testing.assert_close(smoothed, torch.tensor([LN2, 1.2764331]))
    with pytest.raises(ValueError, match="label_smoothing"):
        bce(logits, targets, label_smoothing=1.0)


def test_weighted_bce_by_hand() -> None:
    # p = [0.5, 0.75, 0.25], targets [1, 0, 0] smoothed to [0.9, 0.1, 0.1]
    # positive mean: ln 2 = 0.6931472
    # negative mean: (1.2764331 + (0.1 ln 4 + 0.9 ln(4/3)) = 0.3975433) / 2 = 0.8369882
    # 0.05 * 0.8369882 + 0.95 * 0.6931472 = 0.7003392
    logits = torch.tensor([0.0, LN3, -LN3])
    targets = torch.tensor([1.0, 0.0, 0.0])
    assert BASIC_PITCH_DEFAULTS == {"label_smoothing": 0.2, "onset_positive_weight": 0.95}
    assert weighted_bce(logits, targets).item() == pytest.approx(0.7003392, abs=1e-6)
    # The weight balances the classes: duplicating the negatives changes nothing.
    more = weighted_bce(torch.cat([logits, logits[1:]]), torch.cat([targets, targets[1:]]))
    assert more.item() == pytest.approx(0.7003392, abs=1e-6)


def test_weighted_bce_without_positives_is_the_negative_term() -> None:
    logits = torch.tensor([LN3, -LN3])
    targets = torch.zeros(2)
    expected = 0.05 * bce(logits, targets, label_smoothing=0.2)
    torch.testing.assert_close(weighted_bce(logits, targets), expected)
    with pytest.raises(ValueError, match="positive_weight"):
        weighted_bce(logits, targets, positive_weight=2.0)


def test_contour_target_centres_each_key_on_its_bin() -> None:
    frame = torch.zeros(1, 88, 2)
    frame[0, 10, 0] = 1.0  # key 10 is centred on CQT bin 30
    frame[0, 0, 1] = 1.0  # the lowest key: its half-bin below bin 0 is dropped
    contour = contour_target(frame)
    assert contour.shape == (1, 264, 2)
    assert torch.nonzero(contour[0, :, 0]).flatten().tolist() == [29, 30, 31]
    assert torch.nonzero(contour[0, :, 1]).flatten().tolist() == [0, 1]
    with pytest.raises(ValueError, match="odd"):
        contour_target(frame, bins_per_semitone=2)


def _batch(seed: int = 0, contour: bool = False):
    gen = torch.Generator().manual_seed(seed)
    shape = (2, 88, 12)
    outputs = {key: torch.randn(shape, generator=gen) for key in ("frame", "onset")}
    batch = {
        "frame": (torch.rand(shape, generator=gen) > 0.7).float(),
        "onset": (torch.rand(shape, generator=gen) > 0.95).float(),
    }
    if contour:
        outputs["contour"] = torch.randn(2, 264, 12, generator=gen)
    return outputs, batch


def test_transcription_loss_focal_sums_the_heads() -> None:
    outputs, batch = _batch()
    total, parts = transcription_loss(outputs, batch, kind="focal")
    assert FOCAL_DEFAULTS == {"frame_alpha": 0.2, "onset_alpha": 0.06, "gamma": 1.0}
    frame = focal_loss(outputs["frame"], batch["frame"], alpha=0.2, gamma=1.0)
    onset = focal_loss(outputs["onset"], batch["onset"], alpha=0.06, gamma=1.0)
    assert parts == pytest.approx({"frame": frame.item(), "onset": onset.item()})
    assert total.item() == pytest.approx(frame.item() + onset.item())
    _, changed = transcription_loss(outputs, batch, kind="focal", onset_alpha=0.5, gamma=0.0)
    onset_changed = focal_loss(outputs["onset"], batch["onset"], alpha=0.5, gamma=0.0)
    assert changed["onset"] == pytest.approx(onset_changed.item())


def test_transcription_loss_basic_pitch_with_derived_contour() -> None:
    outputs, batch = _batch(contour=True)
    total, parts = transcription_loss(outputs, batch, kind="basic_pitch")
    assert set(parts) == {"frame", "onset", "contour"}
    contour = bce(outputs["contour"], contour_target(batch["frame"]), label_smoothing=0.2)
    assert parts["contour"] == pytest.approx(contour.item())
    assert parts["onset"] == pytest.approx(weighted_bce(outputs["onset"], batch["onset"]).item())
    assert total.item() == pytest.approx(sum(parts.values()))
    # A given contour target wins over the derived one.
    with_contour = {**batch, "contour": torch.zeros(2, 264, 12)}
    _, given = transcription_loss(outputs, with_contour, kind="basic_pitch")
    assert given["contour"] != pytest.approx(parts["contour"])


def test_basic_pitch_loss_floor_is_the_smoothed_label_entropy() -> None:
    # Label smoothing 0.2 makes the best reachable loss H(0.1) per head, not 0: a model
    # predicting the smoothed labels exactly sits on that floor (3 heads: 0.9752489 nats).
    _, batch = _batch()
    perfect = {k: torch.logit(batch[k] * 0.8 + 0.1) for k in ("frame", "onset")}
    perfect["contour"] = torch.logit(contour_target(batch["frame"]) * 0.8 + 0.1)
    total, _ = transcription_loss(perfect, batch, kind="basic_pitch")
    assert total.item() == pytest.approx(0.9752489, abs=1e-5)


def test_transcription_loss_bce_backpropagates() -> None:
    outputs, batch = _batch()
    logits = outputs["frame"].requires_grad_()
    total, parts = transcription_loss(outputs, batch, kind="bce")
    expected = F.binary_cross_entropy_with_logits(logits, batch["frame"])
    assert parts["frame"] == pytest.approx(expected.item())
    assert all(isinstance(v, float) for v in parts.values())
    total.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda o, b: transcription_loss(o, b, kind="mse"), "kind"),
        (lambda o, b: transcription_loss(o, b, kind="focal", label_smoothing=0.1), "unknown"),
        (lambda o, b: transcription_loss({"frame": o["frame"]}, b), "onset"),
        (lambda o, b: transcription_loss(o, {"frame": b["frame"]}), "onset"),
        (lambda o, b: transcription_loss(o, {**b, "frame": b["frame"][..., :-1]}), "shape"),
    ],
)
def test_transcription_loss_errors(call, match: str) -> None:
    outputs, batch = _batch()
    with pytest.raises(ValueError, match=match):
        call(outputs, batch)
