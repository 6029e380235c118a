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
    """Base class: ``forward(audio)`` = ``forward_features(frontend.hcqt(audio))``.

    Subclasses set ``self.config`` and ``self.frontend`` and implement :meth:`transcribe`
    on normalised features. Outputs are logits: apply ``torch.sigmoid`` for posteriorgrams.

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
        return self.forward_features(self.frontend.hcqt(audio))

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
