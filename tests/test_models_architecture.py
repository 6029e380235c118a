from __future__ import annotations

import math

import pytest
import torch

from timbrelab.losses import transcription_loss
from timbrelab.models import LogBatchNorm, build_model, count_parameters
from timbrelab.models.layers import conv2d, init_prior

torch.set_num_threads(1)


def _reach(conv: torch.nn.Conv2d, n_bins: int = 264) -> list[int]:
    """Frequency offsets (from an impulse at the centre bin) that a conv's output depends on."""
    x = torch.zeros(1, conv.in_channels, n_bins, 5)
    x[0, :, n_bins // 2, 2] = 1.0
    with torch.no_grad():
        delta = conv(x) - conv(torch.zeros_like(x))
    rows = torch.nonzero(delta[0].abs().sum(dim=(0, 2)) > 0).flatten()
    return (rows - n_bins // 2).tolist()


def test_amt_context_conv_spans_two_octaves_with_25_taps() -> None:
    dilated = build_model("amt").context[0]
    assert dilated.kernel_size == (25, 3) and dilated.dilation == (3, 1)
    reach = _reach(dilated)
    # 25 taps, 3 bins apart: one octave (36 bins at 36 per octave) either side, 72 bins in all.
    assert reach == list(range(-36, 37, 3))
    dense = build_model("amt_conv39").context[0]
    assert _reach(dense) == list(range(-19, 20))


def test_stride_three_heads_centre_each_key_on_its_bin() -> None:
    # Key k's output must depend on CQT bins centred on bin 3k (pitch_to_bin's convention).
    head = build_model("amt").frame_head  # 5 x 5, stride (3, 1)
    x = torch.zeros(1, head.in_channels, 264, 5)
    x[0, :, 30, 2] = 1.0  # bin 30 = key 10's centre
    with torch.no_grad():
        delta = (head(x) - head(torch.zeros_like(x)))[0, 0].abs().sum(-1)
    assert torch.argmax(delta).item() == 10
    assert head(torch.zeros(1, head.in_channels, 264, 5)).shape[2] == 88


def test_amt_residual_needs_the_harmonic_width() -> None:
    model = build_model("amt")
    assert model.context[0].out_channels == len(model.config.harmonics) == 8
    assert model.frontend.hcqt.harmonics == (0.5, 1, 2, 3, 4, 5, 6, 7)


def test_amt_front_ends() -> None:
    from timbrelab.features.cqt import EnergyNorm

    assert isinstance(build_model("amt").frontend.norm, EnergyNorm)
    assert build_model("amt").frontend.norm.log is True
    assert build_model("amt_nolog").frontend.norm.log is False
    assert isinstance(build_model("amt_bn").frontend.norm, LogBatchNorm)
    assert isinstance(build_model("basic_pitch").frontend.norm, LogBatchNorm)


def test_log_batch_norm_scales_each_clip_to_unit_range_before_bn() -> None:
    norm = LogBatchNorm().eval()  # fresh running stats: BN is the identity up to eps
    quiet = torch.rand(1, 8, 264, 10) + 0.01
    x = torch.cat([quiet, 1000.0 * quiet])  # the same clip, 60 dB louder
    y = norm(x)
    for clip in y:
        assert clip.min().item() == pytest.approx(0.0, abs=1e-4)
        assert clip.max().item() == pytest.approx(1.0, abs=1e-4)
    torch.testing.assert_close(y[0], y[1], atol=1e-3, rtol=0)  # the gain does not matter


def test_basic_pitch_released_layout_and_the_figure_variant() -> None:
    model = build_model("basic_pitch")
    contour_conv = model.contour_stack[0][0]
    # The released model's 39 x 3 conv reads the 8-channel harmonic CQT directly.
    assert contour_conv.kernel_size == (39, 3) and contour_conv.in_channels == 8
    variant = build_model("basic_pitch", contour_hidden=32)
    assert variant.contour_stack[1][0].in_channels == 32
    # + Conv 5x5 8->32 with BN (6432 + 64), and the 39x3 conv widens from 8 to 32 inputs.
    assert count_parameters(variant) - count_parameters(model) == 6432 + 64 + 24 * 8 * 117


def test_basic_pitch_notes_are_read_off_the_contour() -> None:
    model = build_model("basic_pitch")
    out = model(0.1 * torch.randn(1, 4096))
    out["frame"].sum().backward()
    # The note head does not see the onset branch; the contour stack does feed the notes.
    assert model.onset_branch[0].weight.grad is None
    assert model.contour_stack[0][0].weight.grad.abs().sum() > 0


def test_onsets_and_frames_stops_the_frame_gradient_at_the_onsets() -> None:
    model = build_model("onsets_frames")
    out = model(0.1 * torch.randn(1, 4096))
    out["frame"].sum().backward()
    assert all(p.grad is None for p in model.onset_stack.parameters())
    assert model.frame_stack.fc[0].weight.grad.abs().sum() > 0
    assert isinstance(model.frame_rnn.rnn, torch.nn.GRU) and model.frame_rnn.rnn.bidirectional


@pytest.mark.parametrize("name", ["amt", "basic_pitch", "onsets_frames"])
def test_outputs_start_at_the_prior(name: str) -> None:
    # Focal-loss initialisation (Lin et al. 2017): all heads start near p = 0.01.
    torch.manual_seed(0)
    model = build_model(name).eval()
    with torch.no_grad():
        out = model(0.1 * torch.randn(1, 8192))
    for key, logits in out.items():
        median = torch.sigmoid(logits).median().item()
        assert 0.001 < median < 0.1, f"{key}: median initial probability {median}"
    # ...which keeps the first focal loss small instead of dominated by easy negatives.
    batch = {k: torch.zeros_like(out[k]) for k in ("frame", "onset")}
    assert transcription_loss(out, batch)[0].item() < 0.01


def test_init_prior_sets_the_bias_and_checks_its_range() -> None:
    conv = conv2d(4, 1, (3, 3))
    init_prior(conv, 0.2)
    assert conv.bias.item() == pytest.approx(math.log(0.2 / 0.8))
    with pytest.raises(ValueError, match="prior"):
        init_prior(conv, 0.0)
    with pytest.raises(ValueError, match="odd"):
        conv2d(4, 1, (4, 3))
