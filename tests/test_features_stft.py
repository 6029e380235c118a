"""Tests for timbrelab.features.stft: librosa agreement and exact STFT inversion."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from timbrelab.features.stft import STFT, MelSpectrogram


def _audio(n: int = 16000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    return (0.5 * np.sin(2 * np.pi * 440 * t) + 0.1 * rng.standard_normal(n)).astype(np.float32)


def test_stft_matches_librosa_and_inverts_exactly():
    y = _audio(16000 + 77)
    stft = STFT()
    spec = stft(torch.from_numpy(y).unsqueeze(0))
    ref = librosa.stft(y, n_fft=1024, hop_length=256, pad_mode="constant")
    assert spec.shape == (1, 513, 1 + y.size // 256) == (1, *ref.shape)
    assert np.allclose(spec[0].numpy(), ref, atol=1e-3 * np.abs(ref).max())
    back = stft.inverse(spec, y.size)[0].numpy()
    assert 10 * np.log10(np.sum(y**2) / np.sum((y - back) ** 2)) > 100


def test_mel_matches_librosa():
    y = _audio()
    mel = MelSpectrogram()(torch.from_numpy(y).unsqueeze(0))[0].numpy()
    ref = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=2048, hop_length=160, n_mels=229,
                                         fmin=30.0, pad_mode="constant")
    assert mel.shape == ref.shape == (229, 1 + y.size // 160)
    assert np.allclose(mel, ref, rtol=1e-3, atol=1e-4 * ref.max())
    assert len(MelSpectrogram().frequencies) == 229


def test_stft_errors():
    with pytest.raises(ValueError, match="STFT"):
        STFT()(torch.zeros(100))
    with pytest.raises(ValueError, match="complex"):
        STFT().inverse(torch.zeros(1, 513, 4), 768)
    with pytest.raises(ValueError, match="hop_length"):
        STFT(n_fft=256, hop_length=512)
