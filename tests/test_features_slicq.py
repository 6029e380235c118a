"""Tests for timbrelab.features.slicq.InvertibleCQT: exact reconstruction, layout, gradients."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from timbrelab.features.slicq import InvertibleCQT

SR = 22050


def _snr_db(ref: torch.Tensor, est: torch.Tensor) -> float:
    ref, est = ref.double(), est.double()
    return float(10 * torch.log10(ref.square().sum() / (ref - est).square().sum()))


def _synthetic(kind: str, n: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    if kind == "noise":
        y = rng.standard_normal(n)
    elif kind == "chirp":  # 30 Hz to 10 kHz, exponential sweep
        f0, f1, dur = 30.0, 10000.0, n / SR
        k = np.log(f1 / f0) / dur
        y = np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k)
    else:  # a chord of harmonic tones with decaying envelopes
        y = sum(
            np.sin(2 * np.pi * h * f * t) / h * np.exp(-2 * t)
            for f in (110.0, 138.6, 164.8)
            for h in range(1, 8)
        )
    return torch.from_numpy(0.5 * y / np.abs(y).max()).float().unsqueeze(0)


@pytest.fixture(scope="module")
def icqt() -> InvertibleCQT:
    return InvertibleCQT()


def test_layout_matches_timbre_trap_settings(icqt):
    assert icqt.n_bins == 9 * 60 + 2
    f = icqt.frequencies
    assert f[0] == 0 and f[-1] == SR / 2
    assert f[1] == pytest.approx(SR / 2 / 2**9)
    assert np.allclose(np.diff(np.log2(f[1:-1])), 1 / 60)
    out = icqt(torch.zeros(3, 1000))
    assert out.shape == (3, 2, 542, 16)  # ceil(1000 / 64) frames
    assert icqt.frame_times(3)[1] == pytest.approx(64 / SR)


def test_windows_partition_unity_and_frame_operator_is_positive(icqt):
    band, j, g = icqt.windows(4 * SR)
    assert np.allclose(np.bincount(j, weights=g), 1.0)
    diag = np.bincount(j, weights=g**2)
    assert diag.min() >= 0.5 - 1e-9 and diag.max() <= 1.0 + 1e-9
    # 4 s resolve 0.25 Hz: even the narrowest band (about 0.5 Hz at 21.5 Hz) gets FFT bins
    assert set(np.unique(band)) == set(range(icqt.n_bins))


@pytest.mark.parametrize("kind", ["noise", "chirp", "chord"])
@pytest.mark.parametrize("n", [3 * SR + 17, 4096, 100])
def test_reconstruction_is_exact_on_synthetic_audio(icqt, kind, n):
    x = _synthetic(kind, n)
    y = icqt.inverse(icqt(x), length=n)
    assert y.shape == x.shape
    assert _snr_db(x, y) >= 60


def test_reconstruction_of_a_synthetic_mixture(icqt):
    mixtures = pytest.importorskip("timbrelab.data.mixtures")
    mix = mixtures.make_mixture(3, seconds=3.0, seed=0)
    x = torch.from_numpy(np.asarray(mix.audio, dtype=np.float32)).unsqueeze(0)
    assert _snr_db(x, icqt.inverse(icqt(x), length=x.shape[-1])) >= 60


def _bach10_mixes() -> list[Path]:
    root = Path(
        os.environ.get(
            "TIMBRELAB_BACH10", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
            / "bach10-dev"
        )
    )
    return sorted(p / f"{p.name}.wav" for p in root.glob("[0-9][0-9]-*") if p.is_dir())


@pytest.mark.parametrize("path", _bach10_mixes() or [None], ids=lambda p: p.name if p else "none")
def test_reconstruction_of_real_music(icqt, path):
    if path is None or not path.is_file():
        pytest.skip("Bach10 development pieces not found (set TIMBRELAB_BACH10)")
    import soundfile as sf
    from scipy.signal import resample_poly

    y, sr = sf.read(path, dtype="float32", always_2d=True)
    g = math.gcd(SR, sr)
    y = resample_poly(y.mean(axis=1), SR // g, sr // g).astype(np.float32)
    x = torch.from_numpy(y).unsqueeze(0)
    assert _snr_db(x, icqt.inverse(icqt(x), length=x.shape[-1])) >= 60


def test_a_tone_lands_in_its_bin_with_its_amplitude(icqt):
    k = 300
    t = torch.arange(2 * SR, dtype=torch.float64) / SR
    x = (0.7 * torch.sin(2 * torch.pi * icqt.frequencies[k] * t)).float().unsqueeze(0)
    mag = icqt(x).square().sum(1).sqrt()[0, :, 100:-100].mean(-1)
    assert int(mag.argmax()) == k
    assert float(mag[k]) == pytest.approx(0.7, rel=0.01)


def test_inverse_is_differentiable_and_adjoint_consistent(icqt):
    x = _synthetic("noise", 2000).double().requires_grad_(True)
    w = torch.randn_like(x)
    (icqt.inverse(icqt(x), length=2000) * w).sum().backward()
    assert torch.allclose(x.grad, w, atol=1e-8)  # the round trip is the identity map
    c = icqt(_synthetic("chord", 2000)).requires_grad_(True)
    icqt.inverse(c, 2000).square().sum().backward()
    assert c.grad is not None and torch.isfinite(c.grad).all()


def test_clear_errors(icqt):
    with pytest.raises(ValueError, match="hop_length"):
        InvertibleCQT(hop_length=128)
    with pytest.raises(ValueError, match="shape"):
        icqt.inverse(torch.zeros(1, 2, 10, 5))
    with pytest.raises(ValueError, match="length"):
        icqt.inverse(torch.zeros(1, 2, 542, 5), length=10_000)
    with pytest.raises(ValueError, match=r"\(B, N\)"):
        icqt(torch.zeros(100))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(icqt):
    x = _synthetic("chord", 8000)
    cpu = icqt(x)
    gpu = icqt(x.cuda())
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-4)
    assert _snr_db(x, icqt.inverse(gpu, 8000).cpu()) >= 60
