"""Li & Zhu's lightweight timbre-agnostic transcription model (the AMT branch, "BasicAMT").

The layout follows the authors' released model (github.com/madderscientist/timbreAMT,
``basicamt/basicamt.py``; 18 978 trainable parameters), which is Basic Pitch's with three
changes studied in their Table 2:

- **EnergyNorm** instead of Basic Pitch's log + BatchNorm front end ("BN" ablation; "noLog"
  drops the log);
- a **dilated 25 x 3 convolution** (dilation 3 along frequency: 25 taps 3 bins apart, about
  one octave either side at 36 bins per octave) instead of Basic Pitch's dense 39 x 3 one
  ("Conv39" ablation), added back to the harmonic CQT as a **residual**;
- **focal loss** instead of (weighted) BCE (see :mod:`timbrelab.losses`).

Layers, over (freq, time), on the 8-channel harmonic CQT ``x``::

    e = Conv5x5(8->16) BN LeakyReLU -> Conv25x3 dil(3,1) (16->8) BN
    h = ReLU(x + e) -> Conv5x5(8->16) BN ReLU
    frame = Conv5x5 stride (3,1) (16->1)                      # 264 bins -> 88 keys
    onset = Conv3x5(cat[sigmoid(frame), Conv7x3 stride (3,1) (16->7) BN ReLU])

Differences from the authors' code: 88 keys (they use 84), the stride-3 windows are centred
on each key's bin, and the EnergyNorm is :mod:`timbrelab.features`' (per-harmonic affine:
16 parameters instead of their 2), so the default model has 18 992 parameters.

Chapter: book/02_focal_loss_amt.md
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from timbrelab.features.cqt import BASIC_PITCH_HARMONICS
from timbrelab.models.layers import (
    SEMITONE_STRIDE,
    Frontend,
    TranscriptionModel,
    conv2d,
    conv_bn_act,
    init_prior,
    require_at_least,
)

#: Harmonic-context convolutions: Li & Zhu's dilated one, or Basic Pitch's dense 39-tap one.
CONTEXTS = ("dilated", "conv39")


@dataclass
class AMTConfig:
    """Hyper-parameters of :class:`BasicAMT` (defaults: Li & Zhu's model).

    Attributes
    ----------
    harmonics
        Harmonic CQT channels; also the width of the residual path.
    norm
        ``"energy"`` (EnergyNorm) or ``"batch"`` (Basic Pitch's log + BatchNorm: "BN").
    log
        Log inside EnergyNorm (``False``: "noLog").
    context
        ``"dilated"`` (25 taps, dilation 3) or ``"conv39"`` (39 dense taps: "Conv39").
    early_channels, neck_channels, onset_channels
        Widths of the first conv, the neck and the onset branch.
    prior
        Initial output probability (bias init of the heads, Lin et al.'s focal-loss
        initialisation; :func:`~timbrelab.models.layers.init_prior`); ``None``: PyTorch's.

    Chapter: book/02_focal_loss_amt.md
    """

    harmonics: tuple[float, ...] = BASIC_PITCH_HARMONICS
    norm: str = "energy"
    log: bool = True
    context: str = "dilated"
    early_channels: int = 16
    neck_channels: int = 16
    onset_channels: int = 7
    prior: float | None = 0.01

    def __post_init__(self) -> None:
        self.harmonics = tuple(float(h) for h in self.harmonics)
        if self.context not in CONTEXTS:
            raise ValueError(f"AMTConfig: context must be one of {CONTEXTS}, got {self.context!r}")
        require_at_least(self, 1, "early_channels", "neck_channels", "onset_channels")


class BasicAMT(TranscriptionModel):
    """Li & Zhu's timbre-agnostic transcription model: frame and onset logits for 88 keys.

    Parameters
    ----------
    config
        :class:`AMTConfig` (default: the paper's model).

    Shapes: ``forward(audio (B, N))`` -> ``{"frame", "onset"}: (B, 88, 1 + N // 256)`` logits.

    Chapter: book/02_focal_loss_amt.md
    """

    def __init__(self, config: AMTConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or AMTConfig()
        n_harm = len(config.harmonics)
        self.frontend = Frontend(config.harmonics, norm=config.norm, log=config.log)
        if config.context == "dilated":
            kernel, dilation = (25, 3), (3, 1)
        else:
            kernel, dilation = (39, 3), (1, 1)
        self.early = conv_bn_act(n_harm, config.early_channels, (5, 5), act=nn.LeakyReLU)
        # No activation before the residual sum: the context conv may subtract from x.
        self.context = nn.Sequential(
            conv2d(config.early_channels, n_harm, kernel, dilation=dilation),
            nn.BatchNorm2d(n_harm),
        )
        self.neck = conv_bn_act(n_harm, config.neck_channels, (5, 5))
        self.frame_head = conv2d(config.neck_channels, 1, (5, 5), stride=SEMITONE_STRIDE)
        self.onset_branch = conv_bn_act(
            config.neck_channels, config.onset_channels, (7, 3), stride=SEMITONE_STRIDE
        )
        self.onset_head = conv2d(config.onset_channels + 1, 1, (3, 5))
        for head in (self.frame_head, self.onset_head):
            init_prior(head, config.prior)

    def transcribe(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Normalised harmonic CQT ``(B, H, 264, T)`` -> frame/onset logits ``(B, 88, T)``."""
        hidden = torch.relu(features + self.context(self.early(features)))
        hidden = self.neck(hidden)
        frame = self.frame_head(hidden)
        # The onset head sees the frame posteriorgram: onsets are where frames begin.
        onset = self.onset_head(torch.cat([torch.sigmoid(frame), self.onset_branch(hidden)], 1))
        return {"frame": frame.squeeze(1), "onset": onset.squeeze(1)}
