"""Constant-Q magnitude features: an nnAudio wrapper, a fast FFT-based CQT and the harmonic CQT.

The constant-Q transform (CQT) analyses a signal with band-pass filters whose centre
frequencies are geometrically spaced, ``f_k = fmin * 2 ** (k / bins_per_octave)``, and whose
lengths shrink with frequency, ``L_k = sr / (alpha * f_k)``, so that every filter spans the same
number of periods (the constant Q). Here ``alpha = (2**(2/b) - 1) / (2**(2/b) + 1)`` is the
relative bandwidth librosa uses for ``b`` bins per octave (``1 / alpha`` is about 52 at 36 bins
per octave).

Three front ends live here:

* :class:`CQT` wraps nnAudio's ``CQT1992v2`` (convolution with the time-domain filters). It is
  the reference implementation the book compares against librosa; it is fast on a GPU.
* :class:`FFTCQT` computes the same filter responses in the frequency domain: one FFT of the
  whole signal, a multiplication by each filter's (short) frequency response, and one short
  inverse FFT per bin that directly yields the frames at the hop size. Its cost does not grow
  with the filter lengths, which is what makes a CQT down to 13.75 Hz cheap on a CPU.
* :class:`HarmonicCQT` stacks shifted copies of one :class:`FFTCQT` into Basic Pitch's harmonic
  CQT, and :class:`EnergyNorm` normalises it before the network.

Chapter: book/01_cqt_features.md
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from timbrelab.constants import FMIN_HZ, HOP_LENGTH, N_PITCHES, SAMPLE_RATE

#: Basic Pitch's harmonics: one sub-harmonic, the fundamental and six overtones.
BASIC_PITCH_HARMONICS: tuple[float, ...] = (0.5, 1, 2, 3, 4, 5, 6, 7)
#: Three bins per semitone (Basic Pitch's contour resolution).
BINS_PER_SEMITONE = 3


def _check_audio(audio: torch.Tensor, name: str) -> torch.Tensor:
    """Return ``audio`` as (B, N); raise a clear error for other shapes."""
    if not isinstance(audio, torch.Tensor):
        raise TypeError(f"{name}: audio must be a torch.Tensor, got {type(audio).__name__}")
    if audio.dim() == 1:
        audio = audio.unsqueeze(0)
    if audio.dim() != 2:
        raise ValueError(f"{name}: audio must have shape (B, N) or (N,), got {tuple(audio.shape)}")
    if not audio.is_floating_point():
        raise TypeError(f"{name}: audio must be floating point, got {audio.dtype}")
    return audio


def relative_bandwidth(bins_per_octave: int) -> float:
    """Relative bandwidth ``alpha`` of a CQT filter (librosa's definition, centred bands).

    Chapter: book/01_cqt_features.md
    """
    r = 2.0 ** (2.0 / bins_per_octave)
    return (r - 1.0) / (r + 1.0)


def cqt_frequencies(fmin: float, n_bins: int, bins_per_octave: int) -> np.ndarray:
    """Bin centre frequencies ``fmin * 2 ** (k / bins_per_octave)`` in Hz, shape (n_bins,).

    Chapter: book/01_cqt_features.md
    """
    return fmin * 2.0 ** (np.arange(n_bins) / bins_per_octave)


def pitch_to_bin(
    pitch: float | np.ndarray,
    fmin: float = FMIN_HZ,
    bins_per_octave: int = 12 * BINS_PER_SEMITONE,
) -> int | np.ndarray:
    """Index of the CQT bin centred on MIDI ``pitch`` (nearest bin for fractional pitches).

    With the defaults (``fmin`` = A0 = 27.5 Hz, 36 bins per octave) bin ``3 * (pitch - 21)`` is
    centred exactly on the key, and bins ``+1`` and ``+2`` lie 1/3 and 2/3 of a semitone above it:
    Basic Pitch's convention. A key's three bins are therefore *not* symmetric around it; a
    stride-3 reduction to 88 keys should use a window centred on the key bin (kernel 3, padding 1,
    stride 3), not the three bins ``3k, 3k+1, 3k+2``.

    Chapter: book/01_cqt_features.md
    """
    fmin_midi = 69.0 + 12.0 * math.log2(fmin / 440.0)
    b = np.rint((np.asarray(pitch, dtype=float) - fmin_midi) * bins_per_octave / 12.0)
    return int(b) if b.ndim == 0 else b.astype(np.int64)


def _smooth_at_least(n: int) -> int:
    """Smallest 5-smooth integer >= n (FFT lengths with small prime factors are fast)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p = p35
            while p < n:
                p *= 2
            best = min(best, p)
            p35 *= 3
        p5 *= 5
    return best


class CQT(nn.Module):
    """CQT magnitude via nnAudio's ``CQT1992v2`` (time-domain filters as a 1-D convolution).

    Parameters
    ----------
    sample_rate, hop_length, fmin, n_bins, bins_per_octave
        As in ``librosa.cqt``.
    pad_mode
        ``"constant"`` pads with zeros like ``librosa.cqt``; nnAudio's default is ``"reflect"``.
    verbose
        Let nnAudio print its kernel messages.

    Shapes: ``audio (B, N) -> (B, n_bins, 1 + N // hop_length)`` (centred frames).

    Chapter: book/01_cqt_features.md
    """

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE,
        hop_length: int = HOP_LENGTH,
        fmin: float = 32.70,
        n_bins: int = 84,
        bins_per_octave: int = 12,
        pad_mode: str = "constant",
        verbose: bool = False,
    ) -> None:
        super().__init__()
        from nnAudio.features import CQT1992v2

        if pad_mode not in ("constant", "reflect"):
            raise ValueError(f"CQT: pad_mode must be 'constant' or 'reflect', got {pad_mode!r}")
        top = fmin * 2.0 ** ((n_bins - 1) / bins_per_octave)
        if top >= sample_rate / 2:
            raise ValueError(
                f"CQT: the top bin ({top:.0f} Hz) must lie below Nyquist ({sample_rate / 2:.0f} Hz)"
            )
        self.hop_length = hop_length
        self.n_bins = n_bins
        self.frequencies = cqt_frequencies(fmin, n_bins, bins_per_octave)
        self.layer = CQT1992v2(
            sr=sample_rate,
            hop_length=hop_length,
            fmin=fmin,
            n_bins=n_bins,
            bins_per_octave=bins_per_octave,
            pad_mode=pad_mode,
            output_format="Magnitude",
            verbose=verbose,
        )

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """``audio (B, N) -> magnitude (B, n_bins, 1 + N // hop_length)``."""
        return self.layer(_check_audio(audio, "CQT"))


def _hann_response(u: np.ndarray) -> np.ndarray:
    """Fourier transform of a Hann window, normalised to 1 at 0.

    ``u`` is the frequency offset in cycles per window length. The window
    ``0.5 + 0.5 cos(2 pi t / L)`` transforms to ``L (sinc(u)/2 + sinc(u-1)/4 + sinc(u+1)/4)``,
    which simplifies to ``sin(pi u) / (pi u (1 - u^2))`` (one sine instead of three sincs: the
    plans evaluate it millions of times). The sine is taken of ``u`` minus its nearest integer,
    which keeps it exact near the zeros, and the removable singularities at ``u = 0, +-1`` get
    their limits ``1, 1/2``.
    """
    u = np.asarray(u, dtype=np.float64)
    n = np.rint(u)
    sine = np.sin(np.pi * (u - n)) * (1.0 - 2.0 * (n.astype(np.int64) & 1))  # sin(pi u)
    den = np.pi * u * (1.0 - u) * (1.0 + u)
    singular = den == 0
    out = sine / np.where(singular, 1.0, den)
    out[singular] = np.where(u[singular] == 0, 1.0, 0.5)
    return out


class FFTCQT(nn.Module):
    """Fast CQT computed in the frequency domain (complex or magnitude), matching ``librosa.cqt``.

    Bin ``k`` is the correlation of the signal with librosa's filter, a Hann window of length
    ``L_k = filter_scale * sr / (alpha f_k)`` modulated to ``f_k``, read at the frame centres
    ``t * hop`` with zeros outside the signal (librosa's ``center=True, pad_mode="constant"``),
    and scaled like librosa's default (``norm=1, scale=True``): a sinusoid of amplitude ``A`` at
    a bin centre reads ``A sqrt(L_k) / 2``.

    How: with ``X = rfft(x)`` of a zero-padded length ``P = hop * M``, the filter output is
    ``y_k[n] = (1/P) sum_j X[j] H_k[j] exp(2 pi i j n / P)``, where ``H_k`` is the filter's
    frequency response: a Hann transform centred on ``f_k``, about ``4 sr / L_k`` wide. Only the
    ``j`` where ``H_k`` is non-negligible (``n_lobes`` window lobes either side) are kept.
    Reading ``y_k`` only at ``n = t * hop`` makes ``exp(2 pi i j t hop / P)`` equal to
    ``exp(2 pi i (j mod M) t / M)``, so the samples at the hop are exactly an inverse FFT of
    length ``M`` of ``X H_k`` *folded* modulo ``M`` (aliases summed). The cost is one FFT of the
    signal plus ``n_bins`` FFTs of length ``N / hop``, independent of the filter lengths. The
    zero padding (at least half the longest filter) goes after the signal only: circularly it
    pads both ends.

    Signals longer than ``chunk_frames`` frames are cut into slices with enough context on both
    sides for the longest filter, so memory stays bounded; the result is the same up to the far
    tails of the filters (truncating ``H_k`` makes them decay slowly): under 0.5 % of a bin's
    peak, a little more for the top bins whose response is cut at Nyquist.

    Parameters
    ----------
    sample_rate, hop_length, fmin, bins_per_octave, filter_scale
        As in ``librosa.cqt``.
    n_bins
        Number of bins; ``None`` takes every bin whose centre lies below Nyquist.
    n_lobes
        Half-width of each kept frequency response in Hann lobes (``u`` in cycles per window);
        3 keeps the main lobe and the first side lobe.
    output
        ``"magnitude"`` (B, F, T) float, or ``"complex"`` (B, F, T) complex.
    chunk_frames
        Frames per slice for long signals.

    Shapes: ``audio (B, N) -> (B, n_bins, 1 + N // hop_length)``.

    Chapter: book/01_cqt_features.md
    """

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE,
        hop_length: int = HOP_LENGTH,
        fmin: float = FMIN_HZ,
        n_bins: int | None = None,
        bins_per_octave: int = 36,
        filter_scale: float = 1.0,
        n_lobes: float = 3.0,
        output: str = "magnitude",
        chunk_frames: int = 4096,
    ) -> None:
        super().__init__()
        if output not in ("magnitude", "complex"):
            raise ValueError(f"FFTCQT: output must be 'magnitude' or 'complex', got {output!r}")
        if fmin <= 0 or hop_length <= 0 or bins_per_octave <= 0 or filter_scale <= 0:
            raise ValueError(
                "FFTCQT: fmin, hop_length, bins_per_octave and filter_scale must be > 0"
            )
        nyquist = sample_rate / 2
        below = int(math.ceil(bins_per_octave * math.log2(nyquist / fmin)))  # centres < Nyquist
        if n_bins is None:
            n_bins = below
        if n_bins <= 0 or n_bins > below:
            raise ValueError(
                f"FFTCQT: n_bins={n_bins} must be in 1..{below} (bins centred below Nyquist)"
            )
        self.sample_rate = sample_rate
        self.hop_length = hop_length
        self.n_bins = n_bins
        self.n_lobes = n_lobes
        self.output = output
        self.chunk_frames = chunk_frames
        self.frequencies = cqt_frequencies(fmin, n_bins, bins_per_octave)
        self.lengths = (
            filter_scale * sample_rate / (relative_bandwidth(bins_per_octave) * self.frequencies)
        )
        # Context (a multiple of the hop) that covers half the longest filter plus the
        # time spread from truncating its frequency response.
        self._context = hop_length * math.ceil(0.6 * self.lengths.max() / hop_length)
        self._plans: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def _plan(self, n_fft: int, device: torch.device):
        """Gather indices, weights and fold destinations for an FFT of length ``n_fft``."""
        key = (n_fft, str(device))
        if key not in self._plans:
            n_fold = n_fft // self.hop_length
            src, dst, wgt = [], [], []
            for k, (f, length) in enumerate(zip(self.frequencies, self.lengths, strict=True)):
                half = self.n_lobes * self.sample_rate / length  # Hz
                lo = max(0, math.ceil((f - half) * n_fft / self.sample_rate))
                hi = min(n_fft // 2, math.floor((f + half) * n_fft / self.sample_rate))
                j = np.arange(lo, hi + 1)
                u = (j * self.sample_rate / n_fft - f) * length / self.sample_rate
                src.append(j)
                dst.append(k * n_fold + j % n_fold)
                # librosa's scale (a sinusoid of amplitude A gives A sqrt(L) / 2), and the
                # 1/P of the inverse DFT that the length-M inverse FFT (1/M) leaves as 1/hop
                wgt.append(_hann_response(u) * math.sqrt(length) / self.hop_length)
            if len(self._plans) >= 4:  # a few lengths at most (training clip, inference chunk)
                self._plans.pop(next(iter(self._plans)))
            self._plans[key] = (
                torch.from_numpy(np.concatenate(src)).to(device),
                torch.from_numpy(np.concatenate(dst)).to(device),
                torch.from_numpy(np.concatenate(wgt).astype(np.float32)).to(device),
            )
        return self._plans[key]

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        """Complex CQT of (B, S) at frames ``0 .. S // hop``, zeros outside the slice."""
        batch, length = x.shape
        n_frames = 1 + length // self.hop_length
        n_fold = _smooth_at_least(math.ceil((length + self._context) / self.hop_length))
        n_fft = n_fold * self.hop_length
        src, dst, wgt = self._plan(n_fft, x.device)
        spec = torch.fft.rfft(x, n=n_fft)
        # Gather and weight on the real view (complex gathers and complex-by-real products are
        # several times slower), fold on the complex view (a real one with rows of 2 is slower).
        picked = torch.view_as_real(spec).index_select(1, src) * wgt[:, None]
        folded = spec.new_zeros(batch, self.n_bins * n_fold)
        folded.index_add_(1, dst, torch.view_as_complex(picked))
        frames = torch.fft.ifft(folded.view(batch, self.n_bins, n_fold), dim=-1)
        return frames[..., :n_frames]

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """``audio (B, N) -> (B, n_bins, 1 + N // hop_length)`` magnitude or complex."""
        x = _check_audio(audio, "FFTCQT").float()
        hop, n_frames = self.hop_length, 1 + x.shape[-1] // self.hop_length
        if n_frames <= self.chunk_frames:
            out = self._transform(x)
        else:
            ctx = self._context
            x = nn.functional.pad(x, (ctx, ctx + self.chunk_frames * hop))
            pieces = []
            for start in range(0, n_frames, self.chunk_frames):
                seg = x[:, start * hop : start * hop + 2 * ctx + self.chunk_frames * hop]
                first = ctx // hop
                pieces.append(self._transform(seg)[..., first : first + self.chunk_frames])
            out = torch.cat(pieces, dim=-1)[..., :n_frames]
        return out.abs() if self.output == "magnitude" else out


class HarmonicCQT(nn.Module):
    """Harmonic CQT (Basic Pitch): channel ``h`` holds the CQT shifted down by harmonic ``h``.

    Channel ``h``, bin ``b`` is the magnitude at ``h * f_b`` where ``f_b`` is the frequency of
    output bin ``b``: so a note whose fundamental sits in bin ``b`` shows its ``h``-th partial at
    the same bin ``b`` of channel ``h``, and a convolution across channels sees the partials
    stacked. One :class:`FFTCQT` spanning ``fmin * min(harmonics)`` up to Nyquist is computed, and
    each channel is a shift of it by ``round(bins_per_octave * log2(h))`` bins (exact for octaves,
    within half a bin otherwise); bins that land above Nyquist are zero, as in Basic Pitch.

    Parameters
    ----------
    sample_rate, hop_length, bins_per_octave, filter_scale
        As in :class:`FFTCQT`.
    fmin
        Centre of output bin 0 (A0 = 27.5 Hz; see :func:`pitch_to_bin`).
    n_bins
        Output bins: 264 = 88 keys x 3 bins per semitone.
    harmonics
        Multiples of the bin frequency, one channel each.

    Attributes
    ----------
    frequencies
        (n_bins,) centre of each output bin in Hz (of channel ``h = 1``).
    shifts
        Per channel, ``round(bins_per_octave * log2(h))``: bins from a fundamental to its
        harmonic ``h``.
    offsets
        Per channel, the first bin of :attr:`base` it copies (``shifts - min(shifts)``).
    base
        The :class:`FFTCQT` spanning ``fmin * min(harmonics)`` to Nyquist.
    copies
        ``(n_rows,)`` buffer: how many channels copy each row of :meth:`spectrum` (1 to
        ``len(harmonics)``), so that sums over the stacked channels can be taken on the rows.

    ``forward`` is :meth:`stack` of :meth:`spectrum`. Work that treats every bin alike (a log,
    a normalisation) can run on the spectrum before stacking, on ``n_rows`` (401) rows instead
    of ``len(harmonics) * n_bins`` (2112): see :meth:`EnergyNorm.forward_harmonic`.

    Shapes: ``audio (B, N) -> (B, len(harmonics), n_bins, 1 + N // hop_length)`` magnitude.

    Chapter: book/01_cqt_features.md
    """

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE,
        hop_length: int = HOP_LENGTH,
        fmin: float = FMIN_HZ,
        n_bins: int = N_PITCHES * BINS_PER_SEMITONE,
        bins_per_octave: int = 12 * BINS_PER_SEMITONE,
        harmonics: Sequence[float] = BASIC_PITCH_HARMONICS,
        filter_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if not harmonics or min(harmonics) <= 0:
            raise ValueError(f"HarmonicCQT: harmonics must be positive, got {harmonics!r}")
        shifts = [round(bins_per_octave * math.log2(h)) for h in harmonics]
        lowest = min(shifts)
        base_fmin = fmin * 2.0 ** (lowest / bins_per_octave)
        self.base = FFTCQT(
            sample_rate=sample_rate,
            hop_length=hop_length,
            fmin=base_fmin,
            bins_per_octave=bins_per_octave,
            filter_scale=filter_scale,
        )
        self.harmonics = tuple(harmonics)
        self.hop_length = hop_length
        self.n_bins = n_bins
        self.bins_per_octave = bins_per_octave
        self.frequencies = cqt_frequencies(fmin, n_bins, bins_per_octave)
        self.shifts = shifts
        # First base bin of each channel; rows past the base CQT are zeros (above Nyquist).
        self.offsets = [s - lowest for s in shifts]
        self._n_zero_rows = max(0, max(self.offsets) + n_bins - self.base.n_bins)
        copies = torch.zeros(self.base.n_bins + self._n_zero_rows)
        for o in self.offsets:
            copies[o : o + n_bins] += 1
        # not in the state_dict: it follows from the arguments
        self.register_buffer("copies", copies, persistent=False)

    def spectrum(self, audio: torch.Tensor) -> torch.Tensor:
        """``audio (B, N) -> (B, n_rows, T)``: the base CQT magnitude, with zero rows appended
        for the bins that the higher harmonics read above Nyquist."""
        base = self.base(_check_audio(audio, "HarmonicCQT"))
        return nn.functional.pad(base, (0, 0, 0, self._n_zero_rows))

    def stack(self, spectrum: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
        """``(B, n_rows, T) -> (B, H, n_bins, T)``: channel ``h`` is rows ``offsets[h]`` on;
        with ``channels_last``, in that memory format (what CPU convolutions prefer)."""
        rows = [spectrum[:, o : o + self.n_bins] for o in self.offsets]
        if channels_last:
            return torch.stack(rows, dim=-1).permute(0, 3, 1, 2)
        return torch.stack(rows, dim=1)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """``audio (B, N) -> (B, H, n_bins, 1 + N // hop_length)`` magnitude."""
        return self.stack(self.spectrum(audio))


def log_magnitude(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Decibels of a magnitude, ``20 log10(x + eps)``; ``eps`` sets the floor (-100 dB).

    Shapes: any -> same.

    Chapter: book/01_cqt_features.md
    """
    return 20.0 * torch.log10(x + eps)


class EnergyNorm(nn.Module):
    """Li & Zhu's EnergyNorm: power over a clip-level energy statistic, log, learnable affine.

    Li & Zhu replace Basic Pitch's BatchNorm by this normalisation (their Table 2 ablates it:
    "noLog" = EnergyNorm without log, "BN" = BatchNorm instead). Following the description of
    their released code (github.com/madderscientist/timbreAMT, ``model/layers.py``), it treats
    each frame's energy as a random variable and standardises the power by its spread:

    1. Power ``p = x ** 2`` and frame energy ``E_t = mean_{h,f} p[h, f, t]``.
    2. The clip statistic ``s = std_t(E_t)``, the spread of the frame energy over the clip
       (one number per item), floored at ``floor * mean_t(E_t)`` so that a clip of steady
       energy (a held tone, stationary noise), whose spread is near 0, is not blown up.
    3. ``y = log(p / s + eps)`` (natural log of power), or ``y = p / s`` with ``log=False``.
    4. ``out[h] = weight[h] * y[h] + bias[h]`` per harmonic channel, initialised to 1 and 0.

    Differences from the authors' code: they normalise the complex CQT before harmonic stacking
    and learn one scalar affine pair; here the input is the (stacked) magnitude, the affine
    pair is per channel, ``s`` is floored, and ``eps`` sits inside the ratio (theirs adds 1e-8
    to the raw power), which makes the output exactly independent of the input gain:
    multiplying the audio by ``g`` multiplies ``p`` and ``s`` by ``g ** 2``. Unlike BatchNorm
    it never depends on the rest of the batch, and it needs no running statistics.

    Parameters
    ----------
    n_channels
        Channels ``H`` of the input (8 for the harmonic CQT, 1 for a plain CQT).
    log
        Log-compress (``False`` is Li & Zhu's "noLog").
    floor
        Lower bound of ``s`` relative to the clip's mean frame energy.
    eps
        Floor inside the log, relative to ``s`` (-80 dB at 1e-8).

    Shapes: ``x (B, H, F, T)`` or ``(B, F, T)`` (``H = 1``) non-negative magnitudes -> same shape.

    Chapter: book/01_cqt_features.md
    """

    def __init__(
        self, n_channels: int, log: bool = True, floor: float = 1e-2, eps: float = 1e-8
    ) -> None:
        super().__init__()
        self.log = log
        self.floor = floor
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(n_channels))
        self.bias = nn.Parameter(torch.zeros(n_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, H, F, T)`` or ``(B, F, T)`` non-negative magnitudes -> normalised, same shape."""
        squeeze = x.dim() == 3
        if squeeze:
            x = x.unsqueeze(1)
        if x.dim() != 4 or x.shape[1] != self.weight.numel():
            raise ValueError(
                f"EnergyNorm: expected (B, {self.weight.numel()}, F, T), got {tuple(x.shape)}"
            )
        power = x.square()
        frame_energy = power.mean(dim=(1, 2))  # (B, T)
        y = self.affine(self._compress(power, frame_energy.view(-1, 1, 1, power.shape[-1])))
        return y.squeeze(1) if squeeze else y

    def forward_harmonic(self, spectrum: torch.Tensor, hcqt: HarmonicCQT) -> torch.Tensor:
        """``self(hcqt.stack(spectrum))``, with the log taken before the stacking (on 401 rows
        instead of 8 x 264 bins).

        Stacking only copies rows, and the zero rows above Nyquist come out as ``log(eps)``
        either way; the frame energy is the mean over the stacked channels, a sum over the
        rows weighted by how many channels copy each (``hcqt.copies``).

        Shapes: ``spectrum (B, n_rows, T)`` from ``hcqt.spectrum`` -> ``(B, H, n_bins, T)``.
        """
        return self.affine(hcqt.stack(self.normalise_spectrum(spectrum, hcqt)))

    def normalise_spectrum(self, spectrum: torch.Tensor, hcqt: HarmonicCQT) -> torch.Tensor:
        """Steps 1 to 3 on ``hcqt.spectrum`` rows ``(B, n_rows, T)``, before stacking; the
        affine (:meth:`affine`) goes after ``hcqt.stack``."""
        if len(hcqt.offsets) != self.weight.numel() or spectrum.shape[1] != hcqt.copies.numel():
            raise ValueError(
                f"EnergyNorm: expected ({hcqt.copies.numel()} rows, T) for a "
                f"{self.weight.numel()}-channel harmonic CQT, got {tuple(spectrum.shape)}"
            )
        power = spectrum.square()
        frame_energy = torch.matmul(hcqt.copies, power) / (len(hcqt.offsets) * hcqt.n_bins)
        return self._compress(power, frame_energy.unsqueeze(1))

    def affine(self, y: torch.Tensor) -> torch.Tensor:
        """Step 4: ``weight[h] * y[:, h] + bias[h]`` for ``y (B, H, F, T)``."""
        return torch.addcmul(self.bias.view(1, -1, 1, 1), y, self.weight.view(1, -1, 1, 1))

    def _compress(self, power: torch.Tensor, frame_energy: torch.Tensor) -> torch.Tensor:
        """Steps 2 and 3: ``log(power / s + eps)``; ``frame_energy`` broadcasts to ``power``
        with time on the last axis."""
        spread = frame_energy.std(dim=-1, correction=0, keepdim=True)
        floor = self.floor * frame_energy.mean(dim=-1, keepdim=True)
        # The tiny absolute term only guards all-zero input (0/0).
        y = power / (torch.maximum(spread, floor) + 1e-30)
        return torch.log(y + self.eps) if self.log else y
