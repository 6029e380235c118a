"""Building blocks shared by the transcription models: front ends, conv blocks, the base class.

Chapter: book/02_focal_loss_amt.md
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from timbrelab.features.cqt import BINS_PER_SEMITONE, EnergyNorm, HarmonicCQT, log_magnitude

#: Front-end normalisations: Li & Zhu's EnergyNorm, or Basic Pitch's log + BatchNorm.
NORMS = ("energy", "batch")
#: Stride of the convolutions that reduce 3 bins per semitone to one row per key.
SEMITONE_STRIDE = (BINS_PER_SEMITONE, 1)


class LogBatchNorm(nn.Module):
    """Basic Pitch's input normalisation: dB, min-max scaled to [0, 1] per clip, then BatchNorm.

    Basic Pitch computes the power in dB, subtracts each clip's minimum, divides by the
    clip's range, and applies a one-channel BatchNorm (its ``NormalizedLog`` layer). Here
    the input is already the stacked harmonic CQT, so min, max and the BatchNorm statistics
    are shared by all harmonic channels (Basic Pitch normalises the CQT before stacking and
    pads the shifted channels with zeros, the minimum; here the zero bins above Nyquist sit
    at the log floor, -100 dB, which becomes the minimum, so they also map to 0).

    Shapes: ``x (B, H, F, T)`` magnitude -> same shape.

    Chapter: book/02_focal_loss_amt.md
    """

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, H, F, T)`` -> ``(B, H, F, T)``."""
        db = log_magnitude(x)
        low = db.amin(dim=(1, 2, 3), keepdim=True)
        span = db.amax(dim=(1, 2, 3), keepdim=True) - low
        scaled = (db - low) / span.clamp(min=1e-6)
        batch, channels, bins, frames = x.shape
        return self.bn(scaled.reshape(batch, 1, channels * bins, frames)).view_as(x)


class Frontend(nn.Module):
    """Audio -> harmonic CQT -> normalisation: the first stage of every transcription model.

    Kept as two submodules so training can precompute ``hcqt(audio)`` once and feed it to
    ``model.forward_features``; the normalisation (it has learnable parameters) always runs
    inside the model.

    Parameters
    ----------
    harmonics
        Harmonic CQT channels (``(1,)`` is a plain CQT).
    norm
        ``"energy"`` (:class:`~timbrelab.features.cqt.EnergyNorm`) or ``"batch"``
        (:class:`LogBatchNorm`).
    log
        Log compression inside EnergyNorm (``False`` is Li & Zhu's "noLog" ablation);
        ``"batch"`` always takes the log.

    Shapes: ``audio (B, N) -> (B, H, 264, 1 + N // 256)``.

    Chapter: book/02_focal_loss_amt.md
    """

    def __init__(self, harmonics: Sequence[float], norm: str = "energy", log: bool = True) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"Frontend: norm must be one of {NORMS}, got {norm!r}")
        if norm == "batch" and not log:
            raise ValueError("Frontend: log=False only exists for norm='energy' (Li & Zhu's noLog)")
        self.hcqt = HarmonicCQT(harmonics=tuple(harmonics))
        self.norm = EnergyNorm(len(harmonics), log=log) if norm == "energy" else LogBatchNorm()

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """``audio (B, N) -> (B, H, F, T)`` normalised features."""
        if isinstance(self.norm, EnergyNorm):
            # same result as below, with the log on the 401 unstacked rows instead of 8 x 264
            return self.norm.forward_harmonic(self.hcqt.spectrum(audio), self.hcqt)
        return self.norm(self.hcqt(audio))


def require_at_least(config: object, minimum: float, *names: str) -> None:
    """Raise ``ValueError`` naming the config and field if a field is below ``minimum``.

    Chapter: book/02_focal_loss_amt.md
    """
    for name in names:
        value = getattr(config, name)
        if value < minimum:
            raise ValueError(f"{type(config).__name__}: {name} must be >= {minimum}, got {value}")


def init_prior(layer: nn.Conv2d | nn.Linear, prior: float | None) -> None:
    """Set an output layer's bias to ``logit(prior)``: outputs start near probability ``prior``.

    Lin et al. (2017, focal loss, Section 4.1): with rare positives, starting from p = 0.5
    lets the flood of easy negatives dominate the first updates; their fix starts every
    output at the positive rate (they use 0.01). Without it the tiny transcription models
    here sometimes settle with dead ReLUs under the notes and frame logits stuck near 0.
    ``None`` keeps PyTorch's default initialisation.

    Chapter: book/02_focal_loss_amt.md
    """
    if prior is None:
        return
    if not 0.0 < prior < 1.0:
        raise ValueError(f"init_prior: prior must be in (0, 1), got {prior}")
    nn.init.constant_(layer.bias, math.log(prior / (1.0 - prior)))


def conv_bn_act(
    in_channels: int,
    out_channels: int,
    kernel_size: tuple[int, int],
    stride: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
    bias: bool = False,
    act: type[nn.Module] = nn.ReLU,
) -> nn.Sequential:
    """Conv2d ('same' padding for odd kernels, over (freq, time)) + BatchNorm2d + activation.

    With ``stride=(3, 1)`` this is the semitone reduction: output row ``k`` is centred on
    input bin ``3k``, the bin centred on key ``k``
    (see :func:`timbrelab.features.cqt.pitch_to_bin`), so 264 bins give 88 keys.

    Chapter: book/02_focal_loss_amt.md
    """
    return nn.Sequential(
        conv2d(in_channels, out_channels, kernel_size, stride, dilation, bias=bias),
        nn.BatchNorm2d(out_channels),
        act(),
    )


def conv2d(
    in_channels: int,
    out_channels: int,
    kernel_size: tuple[int, int],
    stride: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
    bias: bool = True,
) -> nn.Conv2d:
    """Conv2d with centred ('same') padding for odd kernels; see :func:`conv_bn_act`.

    Chapter: book/02_focal_loss_amt.md
    """
    if any(k % 2 == 0 for k in kernel_size):
        raise ValueError(f"conv2d: kernel sizes must be odd to centre them, got {kernel_size}")
    padding = tuple(d * (k // 2) for k, d in zip(kernel_size, dilation, strict=True))
    return nn.Conv2d(
        in_channels, out_channels, kernel_size, stride, padding, dilation=dilation, bias=bias
    )


class TranscriptionModel(nn.Module):
    """Base class: ``forward(audio)`` = ``transcribe(frontend(audio))``.

    Subclasses set ``self.config`` and ``self.frontend`` and implement :meth:`transcribe`
    on normalised features. Outputs are logits: apply ``torch.sigmoid`` for posteriorgrams.
    :meth:`for_inference` may return a faster eval-only twin (see
    :func:`timbrelab.inference.predict_posteriorgrams`).

    Chapter: book/02_focal_loss_amt.md
    """

    config: object
    frontend: Frontend

    def forward(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        """Transcribe audio.

        Parameters
        ----------
        audio : Tensor
            ``(B, N)`` mono at 22 050 Hz.

        Returns
        -------
        dict[str, Tensor]
            ``"frame"``, ``"onset"``: logits ``(B, 88, T)`` with ``T = 1 + N // 256``;
            Basic Pitch adds ``"contour"`` ``(B, 264, T)``.
        """
        if not isinstance(audio, torch.Tensor) or audio.dim() != 2:
            shape = tuple(audio.shape) if isinstance(audio, torch.Tensor) else type(audio).__name__
            raise ValueError(f"{type(self).__name__}: audio must be a (B, N) tensor, got {shape}")
        return self.transcribe(self.frontend(audio))

    def forward_features(self, hcqt: torch.Tensor) -> dict[str, torch.Tensor]:
        """Transcribe a precomputed harmonic CQT ``(B, H, 264, T)`` (``frontend.hcqt(audio)``)."""
        expected = (len(self.frontend.hcqt.harmonics), self.frontend.hcqt.n_bins)
        if hcqt.dim() != 4 or tuple(hcqt.shape[1:3]) != expected:
            raise ValueError(
                f"{type(self).__name__}.forward_features: expected (B, {expected[0]}, "
                f"{expected[1]}, T) from frontend.hcqt, got {tuple(hcqt.shape)}"
            )
        return self.transcribe(self.frontend.norm(hcqt))

    def transcribe(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Network body on normalised features ``(B, H, F, T)``; see :meth:`forward`."""
        raise NotImplementedError

    def for_inference(self) -> nn.Module:
        """A module computing what this model computes in eval mode, maybe faster; it takes
        and returns what :meth:`forward` does and shares this model's front end, so build it
        again after the weights change. The base class returns the model itself."""
        return self


def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d | None = None) -> nn.Conv2d:
    """One convolution computing ``bn(conv(x))`` with ``bn`` in eval mode (a new module).

    Eval-mode BatchNorm is a per-channel affine map, ``gamma (y - mean) / sqrt(var + eps)
    + beta``, so it folds into the convolution's weights and bias (in float64, then back to
    the convolution's dtype): one pass over the activations instead of three.

    Chapter: book/02_focal_loss_amt.md
    """
    with torch.no_grad():
        weight = conv.weight.double()
        bias = torch.zeros_like(weight[:, 0, 0, 0]) if conv.bias is None else conv.bias.double()
        if bn is not None:
            if bn.running_var is None:
                raise ValueError("fold_batchnorm: the BatchNorm has no running statistics")
            scale = torch.rsqrt(bn.running_var.double() + bn.eps)
            shift = -bn.running_mean.double() * scale
            if bn.affine:
                gamma = bn.weight.double()
                scale, shift = scale * gamma, shift * gamma + bn.bias.double()
            weight, bias = weight * scale.view(-1, 1, 1, 1), bias * scale + shift
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    with torch.no_grad():
        fused.weight.copy_(weight)
        fused.bias.copy_(bias)
    return fused.requires_grad_(False)


class FFTConv2d(nn.Module):
    """Eval-only twin of a 'same'-padded :func:`conv2d` whose kernel is long along frequency,
    computed with FFTs along frequency (the convolution theorem).

    The AMT's harmonic-context convolution (16 -> 8 channels, 25 taps 3 bins apart, 3 frames)
    costs 9 600 multiply-adds per bin and frame computed directly, more than the rest of the
    network together. Two observations make it cheaper:

    - with dilation ``d`` along frequency, bins ``f = q d + r`` form ``d`` interleaved grids
      (one per ``r``) that the kernel never mixes; on each it is a dense convolution of
      ``Q = F / d`` rows (88 for 264 bins, 25 taps);
    - along those rows, a real FFT of length ``n = Q + taps - 1`` (enough zero padding for the
      circular convolution to be the linear one) turns the convolution into one complex
      ``out x in`` matrix per FFT bin: 57 bins for ``n = 112``, each a matrix product with
      the (shifted, for the 3 taps along time) frames of all ``d`` grids at once.

    The matrix products take a tenth of the direct convolution's multiply-adds; with the FFTs
    and the transpositions they need, it runs about twice as fast on a CPU. The outputs match
    the direct convolution up to float32 rounding (about 1e-6 relative).

    Parameters
    ----------
    weight, bias
        ``(out, in, taps, frames)`` and ``(out,)``, odd ``taps`` and ``frames``.
    dilation
        Dilation along frequency; ``n_bins`` must be a multiple of it.
    n_bins
        Frequency bins ``F`` of the input.

    Shapes: ``x (B, in, F, T) -> (B, out, F, T)``, the output in channels-last memory format.

    Chapter: book/02_focal_loss_amt.md
    """

    def __init__(
        self, weight: torch.Tensor, bias: torch.Tensor, dilation: int, n_bins: int
    ) -> None:
        super().__init__()
        out_channels, in_channels, taps, frames = weight.shape
        if taps % 2 == 0 or frames % 2 == 0 or n_bins % dilation:
            raise ValueError(
                f"FFTConv2d: needs odd kernel sizes and n_bins ({n_bins}) a multiple of the "
                f"dilation ({dilation}), got kernel {(taps, frames)}"
            )
        self.dilation = dilation
        self.rows = n_bins // dilation
        self.n_fft = self.rows + taps - 1
        # output row q = sum_i w[i] x[q + i - taps // 2] (a correlation): the circular
        # convolution kernel holds w[i] at position (taps // 2 - i) mod n_fft
        kernel = torch.zeros(out_channels, in_channels, self.n_fft, frames, dtype=torch.float64)
        kernel[:, :, (taps // 2 - torch.arange(taps)) % self.n_fft] = weight.detach().double().cpu()
        # (n_fft // 2 + 1, frames, in, out): one (in, out) matrix per FFT bin and time tap
        spectrum = torch.fft.rfft(kernel, dim=2).permute(2, 3, 1, 0)
        complex_dtype = torch.complex128 if weight.dtype == torch.float64 else torch.complex64
        self.register_buffer("spectrum", spectrum.to(weight.device, complex_dtype).contiguous())
        # a constant added to every output row is n_fft times it in the FFT's bin 0
        self.register_buffer("bias_bin0", bias.detach() * self.n_fft)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, in, F, T) -> (B, out, F, T)`` (channels last)."""
        batch, channels, n_bins, n_frames = x.shape
        n_bins0, n_taps, _, out_channels = self.spectrum.shape
        pad = n_taps // 2
        # (B, C, Q, d, T) -> FFT along Q of every (B, d, T, C): (B, d, T, C, n_bins0)
        grids = x.unflatten(2, (self.rows, self.dilation)).permute(0, 3, 4, 1, 2)
        spec = torch.fft.rfft(grids, n=self.n_fft)
        # FFT bin first, `pad` zero frames around each grid's frames: the time taps become
        # shifts of the rows (r, t) of one (rows, C) matrix per bin
        span = n_frames + 2 * pad
        padded = spec.new_empty(n_bins0, batch * self.dilation, span, channels)
        padded[:, :, :pad] = 0
        padded[:, :, pad + n_frames :] = 0
        padded[:, :, pad : pad + n_frames] = spec.flatten(0, 1).permute(3, 0, 1, 2)
        padded = padded.flatten(1, 2)
        n_rows = padded.shape[1] - 2 * pad
        out = torch.bmm(padded[:, :n_rows], self.spectrum[:, 0])
        for tap in range(1, n_taps):
            out.baddbmm_(padded[:, tap : tap + n_rows], self.spectrum[:, tap])
        out[0] += self.bias_bin0
        # row r * span + t of `out` is frame t of grid r (rows past a grid's frames are unused)
        out = out.as_strided(
            (n_bins0, batch * self.dilation, n_frames, out_channels),
            (out.stride(0), span * out_channels, out_channels, 1),
        )
        y = torch.fft.irfft(out.permute(1, 2, 3, 0), n=self.n_fft)[..., : self.rows]
        # (B d, T, out, Q) -> bins f = q d + r, channels last: memory (B, Q, d, T, out)
        y = y.unflatten(0, (batch, self.dilation)).permute(0, 4, 1, 2, 3).contiguous()
        return y.view(batch, n_bins, n_frames, out_channels).permute(0, 3, 1, 2)
