"""An exactly invertible constant-Q transform (a painless non-stationary Gabor frame).

Timbre-Trap reconstructs audio from complex CQT coefficients, so it needs a CQT with an exact
inverse. librosa's ``icqt`` is approximate (16-22 dB SNR on music) and nnAudio has none; the
non-stationary Gabor transform (NSGT) of Velasco, Holighaus, Dörfler and Grill (DAFx 2011) is
exact. This is a compact NSGT in torch, in "matrix form": every frequency bin has the same hop,
so the coefficients form a rectangular (F, T) grid a network can read like an image.

The math, for a real signal ``x`` of length ``P`` (zero-padded to a multiple of the hop ``a``)
with one-sided spectrum ``X[j] = rfft(x)[j]``, ``j = 0 .. P/2``, at frequency ``nu_j = j sr / P``:

1. **Windows.** Band ``k`` has a real window ``g_k[j] >= 0`` around its centre ``f_k``. Centres
   are geometric, ``f_k = f_1 2 ** ((k - 1) / b)`` for ``k = 1 .. K`` (``b`` bins per octave), plus
   a low-pass band ``k = 0`` at 0 Hz and a high-pass band ``k = K + 1`` at Nyquist, so that every
   frequency is covered. On the log-frequency axis ``v = 1 + b log2(nu / f_1)`` (band ``k`` sits
   at ``v = k``) the windows are ``g_k = cos^2(pi (v - k) / 2)`` for ``|v - k| < 1``: raised
   cosines (Hann) spanning the two neighbouring centres, which sum to exactly 1
   (the low-pass is 1 below ``v = 0``, the high-pass 1 up to Nyquist).
2. **Analysis.** ``c_k[m] = (2 / a) IFFT_M(Y_k)[m]`` where ``M = P / a`` and ``Y_k`` is the length-M
   vector with ``X[j] g_k[j]`` at index ``(j - j_k) mod M`` (``j_k``: the FFT bin of ``f_k``).
   Because ``exp(2 pi i j m a / P) = exp(2 pi i j m / M)``, ``c_k[m]`` is the band-passed analytic
   signal at sample ``m a``, demodulated by ``f_k`` (a steady tone near ``f_k`` has slowly turning
   phase), scaled so a sinusoid of amplitude ``A`` at a band centre gives ``|c_k| = A``.
3. **Painless condition.** If every window's support is at most ``M`` FFT bins (bandwidth at most
   ``sr / a`` Hz), the placement modulo ``M`` never overlaps itself, ``FFT_M`` undoes ``IFFT_M``
   exactly and ``X[j] g_k[j]`` is recovered from ``c_k``. The frame operator is then diagonal,
   ``S[j] = sum_k g_k[j] ** 2`` (between 1/2 and 1 here: never 0).
4. **Synthesis.** With the canonical dual windows ``h_k = g_k / S``, summing
   ``sum_k h_k[j] (a / 2) FFT_M(c_k)[(j - j_k) mod M] = sum_k h_k g_k X[j] = X[j]`` and
   ``x = irfft(X)``: perfect reconstruction, up to float rounding (more than 100 dB SNR).

Lengths for which ``ceil(N / hop)`` has only small prime factors transform fastest (FFT sizes).
The coefficients are redundant (``2 F / a`` real numbers per sample, about 17 at the defaults);
for coefficients that are not the transform of any signal (a network's output), the synthesis is
the least-squares projection back to a signal, which is what Timbre-Trap's decoder relies on.

Chapter: book/01_cqt_features.md
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from timbrelab.constants import SAMPLE_RATE


class InvertibleCQT(nn.Module):
    """Exactly invertible CQT: audio (B, N) <-> real/imaginary coefficients (B, 2, F, T).

    Defaults follow Timbre-Trap: 22 050 Hz, 9 octaves below Nyquist at 60 bins per octave
    (540 band-pass bins from 21.5 Hz) plus the low-pass (0 Hz) and high-pass (Nyquist) bins,
    ``F = 542``, and a hop of 64 samples (2.9 ms). See the module docstring for the math.
    Differentiable (torch ops only); runs on any device; float32 or float64.

    Parameters
    ----------
    sample_rate
        Sample rate in Hz.
    n_octaves, bins_per_octave
        Band-pass bins span ``n_octaves`` below Nyquist with ``bins_per_octave`` per octave; the
        top one sits one bin below Nyquist.
    hop_length
        Hop ``a`` in samples between coefficient frames, the same for every bin. It must not
        exceed ``sample_rate`` / (widest window bandwidth) (about 87 at the defaults).

    Attributes
    ----------
    frequencies
        (F,) bin centres in Hz: 0, the band-pass centres, Nyquist.
    n_bins
        ``F``.

    Shapes: ``forward(audio (B, N)) -> (B, 2, F, T)`` with ``T = ceil(N / hop_length)``
    (channel 0 real, 1 imaginary; frame ``m`` at time ``m * hop_length / sample_rate``);
    ``inverse(coeffs (B, 2, F, T), length) -> (B, length)``.

    Chapter: book/01_cqt_features.md
    """

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE,
        n_octaves: float = 9,
        bins_per_octave: int = 60,
        hop_length: int = 64,
    ) -> None:
        super().__init__()
        if sample_rate <= 0 or hop_length <= 0 or bins_per_octave <= 0 or n_octaves <= 0:
            raise ValueError(
                "InvertibleCQT: sample_rate, n_octaves, bins_per_octave, hop_length must be > 0"
            )
        nyquist = sample_rate / 2
        n_bands = int(round(n_octaves * bins_per_octave))
        self.sample_rate = sample_rate
        self.bins_per_octave = bins_per_octave
        self.hop_length = hop_length
        self.fmin = nyquist * 2.0 ** (-n_bands / bins_per_octave)
        band_centres = self.fmin * 2.0 ** (np.arange(n_bands) / bins_per_octave)
        self.frequencies = np.concatenate([[0.0], band_centres, [nyquist]])
        self.n_bins = n_bands + 2
        # Widest support: the top band spans its two neighbours (the high-pass only half that).
        widest = band_centres[-1] * (2 ** (1 / bins_per_octave) - 2 ** (-1 / bins_per_octave))
        if widest > sample_rate / hop_length:
            raise ValueError(
                f"InvertibleCQT: hop_length={hop_length} is too large: the widest window spans "
                f"{widest:.0f} Hz, more than sample_rate / hop_length = "
                f"{sample_rate / hop_length:.0f} Hz; use hop_length <= "
                f"{int(sample_rate // widest)}"
            )
        self._plans: dict[tuple, tuple[torch.Tensor, ...]] = {}

    def frame_times(self, n_frames: int) -> np.ndarray:
        """Times in seconds of ``n_frames`` coefficient frames, shape (n_frames,)."""
        return np.arange(n_frames) * self.hop_length / self.sample_rate

    def windows(self, n_fft: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sparse windows on the rfft grid of length ``n_fft``.

        Returns ``(band, j, g)``, each of shape (E,): window ``band[e]`` has value ``g[e] > 0`` at
        rfft bin ``j[e]``. Every bin ``j = 0 .. n_fft // 2`` belongs to one or two windows, and the
        windows sum to 1 at every bin. A band narrower than the bin spacing ``sr / n_fft`` may
        get no bin at all (its coefficients are then 0): short signals cannot resolve it.
        """
        j = np.arange(n_fft // 2 + 1)
        with np.errstate(divide="ignore"):
            v = 1.0 + self.bins_per_octave * np.log2(j * self.sample_rate / n_fft / self.fmin)
        v = np.clip(v, 0.0, self.n_bins - 1.0)  # the low-pass below 0, the high-pass at Nyquist
        lower = np.minimum(np.floor(v), self.n_bins - 2).astype(np.int64)
        frac = v - lower
        band = np.concatenate([lower, lower + 1])
        idx = np.concatenate([j, j])
        g = np.concatenate([np.cos(0.5 * np.pi * frac) ** 2, np.sin(0.5 * np.pi * frac) ** 2])
        keep = g > 1e-12  # exact zeros at the window edges would widen the supports
        return band[keep], idx[keep], g[keep]

    def _plan(self, n_fft: int, device: torch.device, dtype: torch.dtype):
        """Indices and weights for a signal of padded length ``n_fft`` (cached)."""
        key = (n_fft, str(device), dtype)
        if key not in self._plans:
            n_frames = n_fft // self.hop_length
            band, j, g = self.windows(n_fft)
            support = np.bincount(band, minlength=self.n_bins)
            if support.max() > n_frames:
                raise ValueError(
                    f"InvertibleCQT: the signal is too short ({n_frames} frames of "
                    f"{self.hop_length} samples): a window spans {support.max()} FFT bins, more "
                    f"than the {n_frames} frames; pad the audio"
                )
            frame_diag = np.bincount(j, weights=g**2, minlength=n_fft // 2 + 1)
            centre = np.rint(self.frequencies * n_fft / self.sample_rate).astype(np.int64)
            dst = band * n_frames + (j - centre[band]) % n_frames
            if len(self._plans) >= 4:
                self._plans.pop(next(iter(self._plans)))
            # The coefficient scale 2 / hop (and its inverse) rides on the windows: they are
            # P / 2 numbers, the coefficients 17 times more.
            scale = 2.0 / self.hop_length
            self._plans[key] = (
                torch.from_numpy(j).to(device),
                torch.from_numpy(dst).to(device),
                torch.from_numpy(g * scale).to(device=device, dtype=dtype),
                torch.from_numpy(g / frame_diag[j] / scale).to(device=device, dtype=dtype),  # dual
            )
        return self._plans[key]

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """``audio (B, N) -> coefficients (B, 2, F, ceil(N / hop_length))`` (real, imaginary)."""
        if not isinstance(audio, torch.Tensor) or audio.dim() != 2:
            shape = tuple(audio.shape) if isinstance(audio, torch.Tensor) else type(audio)
            raise ValueError(f"InvertibleCQT: audio must be a (B, N) tensor, got {shape}")
        if not audio.is_floating_point():
            raise TypeError(f"InvertibleCQT: audio must be floating point, got {audio.dtype}")
        batch, length = audio.shape
        n_frames = max(1, math.ceil(length / self.hop_length))
        n_fft = n_frames * self.hop_length
        j, dst, g, _ = self._plan(n_fft, audio.device, audio.dtype)
        spec = torch.fft.rfft(audio, n=n_fft)
        # Gather and weight on the real view (faster than complex indexing), place complex.
        picked = torch.view_as_real(spec).index_select(1, j) * g[:, None]
        placed = spec.new_zeros(batch, self.n_bins * n_frames)
        placed.index_add_(1, dst, torch.view_as_complex(picked))
        coeffs = torch.fft.ifft(placed.view(batch, self.n_bins, n_frames), dim=-1)
        return torch.view_as_real(coeffs).permute(0, 3, 1, 2)

    def inverse(self, coeffs: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """``coeffs (B, 2, F, T) -> audio (B, length)``; ``length`` defaults to ``T * hop``.

        ``length`` must give the same number of frames, ``ceil(length / hop_length) == T``.
        """
        if coeffs.dim() != 4 or coeffs.shape[1] != 2 or coeffs.shape[2] != self.n_bins:
            raise ValueError(
                f"InvertibleCQT.inverse: coeffs must have shape (B, 2, {self.n_bins}, T), "
                f"got {tuple(coeffs.shape)}"
            )
        batch, _, _, n_frames = coeffs.shape
        n_fft = n_frames * self.hop_length
        if length is None:
            length = n_fft
        if max(1, math.ceil(length / self.hop_length)) != n_frames:
            raise ValueError(
                f"InvertibleCQT.inverse: length={length} does not match {n_frames} frames of "
                f"{self.hop_length} samples"
            )
        j, dst, _, dual = self._plan(n_fft, coeffs.device, coeffs.dtype)
        c = torch.view_as_complex(coeffs.permute(0, 2, 3, 1).contiguous())
        placed = torch.fft.fft(c, dim=-1).reshape(batch, self.n_bins * n_frames)
        picked = torch.view_as_real(placed).index_select(1, dst) * dual[:, None]
        spec = placed.new_zeros(batch, n_fft // 2 + 1)
        spec.index_add_(1, j, torch.view_as_complex(picked))
        return torch.fft.irfft(spec, n=n_fft)[:, :length]
