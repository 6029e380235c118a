"""STFT and mel front ends of the 16 kHz models (Cerberus, Jointist).

The STFT has a constant frequency resolution: ``n_fft // 2 + 1`` bins ``sr / n_fft`` Hz apart.
It is exactly invertible with a Hann window at 75 % overlap, so mask-based separation
(Cerberus multiplies it by per-source masks) can go back to audio with :meth:`STFT.inverse`.
The mel spectrogram pools the power STFT into ``n_mels`` triangular bands evenly spaced on the
mel scale (Slaney's, as librosa's default), a compromise between STFT and CQT.

Chapter: book/01_cqt_features.md
"""

from __future__ import annotations

import torch
from torch import nn

from timbrelab.constants import SAMPLE_RATE_16K


def _check_audio(audio: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(audio, torch.Tensor) or audio.dim() != 2 or not audio.is_floating_point():
        shape = tuple(audio.shape) if isinstance(audio, torch.Tensor) else type(audio).__name__
        raise ValueError(f"{name}: audio must be a float (B, N) tensor, got {shape}")
    return audio


class STFT(nn.Module):
    """Complex STFT with a Hann window and centred frames, and its exact inverse.

    Defaults are Cerberus's (16 kHz, 1024-sample window, hop 256).

    Shapes: ``forward(audio (B, N)) -> complex (B, n_fft // 2 + 1, 1 + N // hop_length)``;
    ``inverse(spec, length) -> (B, length)``. Take ``.abs()`` for the magnitude.

    Chapter: book/01_cqt_features.md
    """

    def __init__(self, n_fft: int = 1024, hop_length: int = 256) -> None:
        super().__init__()
        if n_fft <= 0 or hop_length <= 0 or hop_length > n_fft:
            raise ValueError(f"STFT: need 0 < hop_length <= n_fft, got {hop_length}, {n_fft}")
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """``audio (B, N) -> complex (B, F, T)``, zero-padded at the ends like librosa."""
        audio = _check_audio(audio, "STFT")
        return torch.stft(audio, self.n_fft, self.hop_length, window=self.window.to(audio),
                          center=True, pad_mode="constant", return_complex=True)

    def inverse(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """``complex (B, F, T) -> audio (B, length)`` by weighted overlap-add."""
        if not spec.is_complex() or spec.dim() != 3 or spec.shape[1] != self.n_fft // 2 + 1:
            raise ValueError(
                f"STFT.inverse: spec must be complex (B, {self.n_fft // 2 + 1}, T), got "
                f"{spec.dtype} {tuple(spec.shape)}"
            )
        window = self.window.to(spec.real.dtype)
        return torch.istft(spec, self.n_fft, self.hop_length, window=window, center=True,
                           length=length)


class MelSpectrogram(nn.Module):
    """Mel power spectrogram; defaults are Jointist's (16 kHz, 2048 window, hop 160, 229 mels).

    Shapes: ``audio (B, N) -> (B, n_mels, 1 + N // hop_length)`` power (compress it with
    :func:`timbrelab.features.log_magnitude` on its square root, or ``torch.log``).

    Chapter: book/01_cqt_features.md
    """

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE_16K,
        n_fft: int = 2048,
        hop_length: int = 160,
        n_mels: int = 229,
        fmin: float = 30.0,
        fmax: float | None = None,
    ) -> None:
        super().__init__()
        import librosa  # only here: importing it costs about a second

        self.stft = STFT(n_fft, hop_length)
        fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
                                 fmax=fmax)
        self.register_buffer("filters", torch.from_numpy(fb).float(), persistent=False)
        self.frequencies = librosa.mel_frequencies(n_mels=n_mels + 2, fmin=fmin,
                                                   fmax=fmax or sample_rate / 2)[1:-1]

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """``audio (B, N) -> mel power (B, n_mels, T)``."""
        power = self.stft(_check_audio(audio, "MelSpectrogram")).abs().square()
        return torch.matmul(self.filters.to(power), power)
