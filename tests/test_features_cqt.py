"""Tests for timbrelab.features.cqt: librosa agreement, harmonic stacking, EnergyNorm."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from timbrelab.features.cqt import (
    CQT,
    FFTCQT,
    EnergyNorm,
    HarmonicCQT,
    log_magnitude,
    pitch_to_bin,
)

SR = 22050


def _midi_hz(p: float) -> float:
    return 440.0 * 2.0 ** ((p - 69) / 12)


def _test_signal(seconds: float, seed: int = 0) -> np.ndarray:
    """A tone, a chirp and a little noise: energy across many bins."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    y = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * (100 + 400 * t) * t)
    return (y + 0.03 * rng.standard_normal(t.size)).astype(np.float32)


def _tone(hz: float, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(seconds * SR), dtype=torch.float64) / SR
    return (0.5 * torch.sin(2 * torch.pi * hz * t)).float().unsqueeze(0)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_nnaudio_cqt_matches_librosa():
    y = _test_signal(1.5)
    ours = CQT(fmin=32.70, n_bins=84, bins_per_octave=12)(torch.from_numpy(y))[0].numpy()
    ref = np.abs(librosa.cqt(y, sr=SR, hop_length=256, fmin=32.70, n_bins=84,
                             pad_mode="constant"))
    assert ours.shape == ref.shape
    assert _corr(ours, ref) >= 0.999


def test_fft_cqt_matches_librosa_in_value():
    y = _test_signal(2.0)
    ours = FFTCQT(fmin=27.5, n_bins=264)(torch.from_numpy(y))[0].numpy()
    ref = np.abs(librosa.cqt(y, sr=SR, hop_length=256, fmin=27.5, n_bins=264,
                             bins_per_octave=36, pad_mode="constant"))
    assert ours.shape == ref.shape == (264, 1 + y.size // 256)
    assert _corr(ours, ref) >= 0.9999
    # same scale, not just proportional: at most 2 % of the peak apart anywhere
    assert np.abs(ours - ref).max() <= 0.02 * ref.max()


def test_fft_cqt_slices_long_signals_consistently():
    x = torch.from_numpy(_test_signal(3.0))
    cqt = FFTCQT(fmin=55.0, output="complex")
    whole = cqt(x)[0]
    cqt.chunk_frames = 40
    sliced = cqt(x)[0]
    assert whole.shape == sliced.shape
    # slices see a little less of the (truncated-spectrum) filter tails: a few 0.1 % of a bin's
    # peak at the lowest bins, far less higher up; bins whose response reaches Nyquist are
    # cut there and differ more, so they are left out
    err = (whole - sliced).abs().amax(dim=1) / whole.abs().amax(dim=1)
    inside = torch.from_numpy(cqt.frequencies + 3 * SR / cqt.lengths < SR / 2)
    assert inside.sum() > 200
    assert err[inside].max() <= 0.005
    assert err[inside][100:].max() <= 1e-3


@pytest.mark.parametrize("n", [100, 256, 5000, 22050])
def test_harmonic_cqt_shape(n):
    hcqt = HarmonicCQT()
    out = hcqt(torch.zeros(2, n))
    assert out.shape == (2, 8, 264, 1 + n // 256)
    assert hcqt.frequencies[0] == pytest.approx(27.5)


def test_pitch_to_bin_is_basic_pitch_convention():
    assert pitch_to_bin(21) == 0
    assert pitch_to_bin(69) == 144
    assert pitch_to_bin(108) == 261
    assert list(pitch_to_bin(np.array([21, 21 + 1 / 3, 22]))) == [0, 1, 3]
    freqs = HarmonicCQT().frequencies
    assert freqs[pitch_to_bin(69)] == pytest.approx(440.0)


@pytest.mark.parametrize("pitch", [45, 60])
def test_harmonic_channels_line_up_partials(pitch):
    hcqt = HarmonicCQT()
    f0, key = _midi_hz(pitch), pitch_to_bin(pitch)
    channel = {h: i for i, h in enumerate(hcqt.harmonics)}
    for mult in (1, 2, 3, 4):
        spec = hcqt(_tone(mult * f0))[0, :, :, 40]  # a frame well inside the tone
        # the tone at mult * f0 is the mult-th partial of pitch: channel `mult` peaks at its key
        assert int(spec[channel[mult]].argmax()) == key, mult
    # the sub-harmonic channel shows a tone at f0 one octave up (bin b holds f_b / 2)
    spec = hcqt(_tone(f0))[0, channel[0.5], :, 40]
    assert int(spec.argmax()) == pitch_to_bin(pitch + 12)


def test_harmonic_bins_above_nyquist_are_zero():
    out = HarmonicCQT()(torch.from_numpy(_test_signal(0.5)).unsqueeze(0))
    top = HarmonicCQT().frequencies[-1] * 7
    assert top > SR / 2
    assert out[0, -1, -1].abs().max() == 0  # 7 x 4.3 kHz is far above Nyquist
    assert out[0, 1].abs().max() > 0


def test_harmonic_cqt_rejects_bad_input():
    with pytest.raises(ValueError, match="HarmonicCQT"):
        HarmonicCQT()(torch.zeros(1, 2, 100))
    with pytest.raises(ValueError, match="harmonics"):
        HarmonicCQT(harmonics=(0, 1))


@pytest.mark.parametrize("log", [True, False])
def test_energy_norm_is_gain_invariant(log):
    hcqt, norm = HarmonicCQT(), EnergyNorm(8, log=log)
    x = torch.from_numpy(_test_signal(1.0)).unsqueeze(0)
    quiet, loud = norm(hcqt(0.01 * x)), norm(hcqt(10.0 * x))
    assert quiet.shape == (1, 8, 264, 1 + x.shape[-1] // 256)
    assert torch.allclose(quiet, loud, atol=1e-3 * float(loud.detach().abs().max()))
    # not batch-dependent: an item normalises the same alone or next to another
    pair = norm(hcqt(torch.cat([x, 0.2 * torch.flip(x, [1])])))
    assert torch.allclose(pair[:1], loud, atol=1e-3 * float(loud.detach().abs().max()))


def test_energy_norm_uses_clip_statistics_and_survives_steady_clips():
    half = torch.rand(1, 20, 25) + 0.1
    out = EnergyNorm(1, log=False)(torch.cat([half, 3 * half], dim=-1))
    # one divisor per clip (a per-frame norm would make both halves equal): 3x louder = 9x power
    assert torch.allclose(out[..., 25:], 9 * out[..., :25], rtol=1e-5)
    steady = EnergyNorm(1)(torch.ones(1, 20, 50))  # no energy spread at all: floored
    assert torch.isfinite(steady).all() and steady.abs().max() < 10


def test_energy_norm_affine_is_learnable_and_handles_silence():
    norm = EnergyNorm(1)
    x = torch.rand(2, 30, 12)
    x[1] = 0  # a silent item must not produce NaN
    out = norm(x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    out.sum().backward()
    assert norm.weight.grad is not None and norm.bias.grad is not None
    with pytest.raises(ValueError, match="EnergyNorm"):
        EnergyNorm(8)(torch.rand(1, 3, 10, 5))


def test_log_magnitude_is_decibels_with_floor():
    x = torch.tensor([1.0, 0.1, 0.0])
    assert torch.allclose(log_magnitude(x, eps=1e-5), torch.tensor([0.0, -20.0, -100.0]),
                          atol=1e-3)
