"""The inference speed-ups compute what the plain model computes: EnergyNorm before stacking,
BatchNorm folding, the FFT convolution, FastAMT's tiles, and the Hann response's closed form."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from timbrelab.constants import HOP_LENGTH, SAMPLE_RATE
from timbrelab.features.cqt import EnergyNorm, HarmonicCQT, _hann_response
from timbrelab.inference import predict_posteriorgrams
from timbrelab.models import build_model
from timbrelab.models.amt import FastAMT
from timbrelab.models.layers import FFTConv2d, conv2d, fold_batchnorm

torch.set_num_threads(1)


def _audio(seconds: float, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """Noise plus two tones, so that every CQT row and most frames are non-zero."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    tones = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 1500 * t) * (t > 0.4)
    noise = 0.05 * rng.standard_normal((batch, t.size))
    return torch.from_numpy((tones + noise).astype(np.float32))


def _randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters, so that folding them matters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=gen))
                module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                module.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                module.bias.copy_(0.3 * torch.randn(n, generator=gen))
            if isinstance(module, EnergyNorm):
                module.weight.copy_(torch.rand(module.weight.shape, generator=gen) + 0.5)
                module.bias.copy_(0.3 * torch.randn(module.bias.shape, generator=gen))
    return model.eval()


@pytest.mark.parametrize("log", [True, False])
def test_energy_norm_before_stacking_equals_after(log):
    hcqt = HarmonicCQT()
    norm = _randomise(EnergyNorm(8, log=log))
    x = _audio(1.0, batch=2)
    stacked = norm(hcqt(x))
    assert (hcqt(x)[:, -1, -1] == 0).all()  # rows above Nyquist are in the comparison
    fast = norm.forward_harmonic(hcqt.spectrum(x), hcqt)
    assert fast.shape == stacked.shape == (2, 8, 264, 1 + x.shape[-1] // HOP_LENGTH)
    torch.testing.assert_close(fast, stacked, rtol=1e-5, atol=1e-5 * stacked.abs().max().item())
    # the stacked zero rows come out as log(eps), like stacking zeros first
    if log:
        floor = (fast[0, -1, -1] - norm.bias[-1]) / norm.weight[-1]
        torch.testing.assert_close(floor, torch.full_like(floor, np.log(norm.eps)))


def test_frontend_and_forward_features_agree():
    model = _randomise(build_model("amt"))
    x = _audio(0.8)
    with torch.no_grad():
        direct = model(x)
        via_hcqt = model.forward_features(model.frontend.hcqt(x))
    for key in ("frame", "onset"):
        torch.testing.assert_close(direct[key], via_hcqt[key], rtol=0, atol=1e-4)


@pytest.mark.parametrize("stride", [(1, 1), (3, 1)])
def test_fold_batchnorm_equals_conv_then_batchnorm(stride):
    torch.manual_seed(0)
    conv = conv2d(6, 5, (5, 3), stride=stride)
    bn = _randomise(nn.BatchNorm2d(5))
    x = torch.randn(2, 6, 30, 11)
    fused = fold_batchnorm(conv, bn)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), bn(conv(x)), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(fold_batchnorm(conv)(x), conv(x), rtol=1e-6, atol=1e-6)
    assert not fused.weight.requires_grad


@pytest.mark.parametrize(
    ("taps", "dilation", "n_bins", "batch", "frames"),
    [(25, 3, 264, 1, 40), (25, 3, 264, 2, 7), (39, 1, 60, 1, 1), (5, 2, 20, 2, 9)],
)
def test_fft_conv_equals_the_direct_convolution(taps, dilation, n_bins, batch, frames):
    torch.manual_seed(0)
    conv = conv2d(16, 8, (taps, 3), dilation=(dilation, 1))
    x = torch.randn(batch, 16, n_bins, frames)
    with torch.no_grad():
        direct = conv(x)
        fast = FFTConv2d(conv.weight, conv.bias, dilation, n_bins)(x)
    assert fast.shape == direct.shape
    assert fast.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(fast, direct, rtol=1e-4, atol=1e-5 * direct.abs().max().item())


def test_fft_conv_rejects_what_it_cannot_compute():
    with pytest.raises(ValueError, match="FFTConv2d"):
        FFTConv2d(torch.zeros(8, 16, 25, 3), torch.zeros(8), 3, 100)  # 100 bins, dilation 3


@pytest.mark.parametrize("name", ["amt", "amt_conv39", "amt_nolog"])
@pytest.mark.parametrize("tile_frames", [16, 1000])
def test_fast_amt_equals_the_model(name, tile_frames):
    model = _randomise(build_model(name), seed=1)
    fast = model.for_inference(tile_frames=tile_frames)
    assert isinstance(fast, FastAMT)
    x = _audio(1.5, batch=2)  # 130 frames: several tiles, and the recording's two edges
    with torch.no_grad():
        ref = model(x)
    out = fast(x)
    assert set(out) == set(ref)
    for key, logits in ref.items():
        assert out[key].shape == logits.shape == (2, 88, 1 + x.shape[-1] // HOP_LENGTH)
        # float32 rounding: 5e-5 for logits of about 10 (noLog's grow larger)
        scale = max(10.0, logits.abs().max().item())
        torch.testing.assert_close(out[key], logits, rtol=0, atol=5e-6 * scale)


def test_fast_amt_restores_the_thread_count_and_checks_input():
    model = build_model("amt").eval()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model.for_inference()(_audio(0.3))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="FastAMT"):
        model.for_inference()(torch.zeros(100))
    with pytest.raises(ValueError, match="tile_frames"):
        FastAMT(model, tile_frames=0)


def test_models_without_a_fast_twin_return_themselves():
    for name in ("amt_bn", "basic_pitch", "onsets_frames"):
        model = build_model(name)
        assert model.for_inference() is model


def test_predict_posteriorgrams_uses_the_fast_twin_transparently():
    model = _randomise(build_model("amt"), seed=2).train()

    class Plain(nn.Module):  # the same network, without for_inference
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
            return self.inner(audio)

    calls = []
    build_twin = model.for_inference
    model.for_inference = lambda: calls.append(1) or build_twin()
    audio = _audio(3.0)[0]
    fast = predict_posteriorgrams(model, audio, chunk_seconds=2.0, overlap_seconds=0.5)
    assert calls == [1]  # built once, used for every chunk
    assert model.training  # mode restored
    plain = predict_posteriorgrams(Plain(), audio, chunk_seconds=2.0, overlap_seconds=0.5)
    for key in ("frame", "onset"):
        np.testing.assert_allclose(fast[key], plain[key], rtol=0, atol=2e-5)


def test_hann_response_closed_form_equals_the_sinc_sum():
    u = np.concatenate([np.linspace(-3.5, 3.5, 20001), [0.0, 1.0, -1.0, 2.0, -3.0, 1 + 1e-9]])
    sincs = np.sinc(u) + 0.5 * np.sinc(u - 1.0) + 0.5 * np.sinc(u + 1.0)
    np.testing.assert_allclose(_hann_response(u), sincs, rtol=1e-9, atol=1e-15)
    assert _hann_response(np.array([0.0, 1.0, -1.0, 2.0])).tolist() == [1.0, 0.5, 0.5, 0.0]
