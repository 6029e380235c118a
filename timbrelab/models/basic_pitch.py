"""Basic Pitch (Bittner et al., ICASSP 2022), re-implemented in PyTorch.

Layer facts from the paper and the released model (github.com/spotify/basic-pitch,
``basic_pitch/models.py``; Keras kernels are (time, freq), written here as (freq, time)):

- input: harmonic CQT (harmonics 0.5, 1, ..., 7; 3 bins per semitone), log-power scaled to
  [0, 1] per clip, then BatchNorm (:class:`~timbrelab.models.layers.LogBatchNorm`);
- contour (multipitch, 264 bins): Conv 39x3 (8 ch) BN ReLU -> Conv 5x5 (1 ch) -> sigmoid;
- note ("frame", 88 keys): Conv 7x7 stride (3,1) (32 ch) ReLU on the contour *posteriorgram*
  -> Conv 3x7 (1 ch) -> sigmoid;
- onset: Conv 5x5 stride (3,1) (32 ch) BN ReLU on the harmonic CQT, concatenated with the
  note posteriorgram -> Conv 3x3 (1 ch) -> sigmoid.

The paper's figure also shows a Conv 5x5 (here ``contour_hidden`` channels) BN ReLU before the
39x3 conv, but in the released code that layer's output is overwritten (the 39x3 conv reads
the harmonic CQT), so the published model (16 782 trainable parameters) has no such stage:
``contour_hidden=0`` reproduces it exactly, ``contour_hidden=32`` builds the figure's variant
(Li & Zhu's "BP" re-implementation keeps that stage too, but drops the contour output).
Not reproduced: Keras' unit-norm kernel constraint and its initialiser (PyTorch defaults here).

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


@dataclass
class BasicPitchConfig:
    """Hyper-parameters of :class:`BasicPitch` (defaults: the released ICASSP 2022 model).

    Attributes
    ----------
    harmonics
        Harmonic CQT channels.
    contour_hidden
        Channels of the optional Conv 5x5 before the 39x3 conv; 0 (released model) skips it.
    contour_channels, note_channels, onset_channels
        Widths of the 39x3 contour conv, the note conv and the onset conv.
    prior
        Initial output probability of the three heads
        (:func:`~timbrelab.models.layers.init_prior`); ``None``: PyTorch's initialisation.

    Chapter: book/02_focal_loss_amt.md
    """

    harmonics: tuple[float, ...] = BASIC_PITCH_HARMONICS
    contour_hidden: int = 0
    contour_channels: int = 8
    note_channels: int = 32
    onset_channels: int = 32
    prior: float | None = 0.01

    def __post_init__(self) -> None:
        self.harmonics = tuple(float(h) for h in self.harmonics)
        require_at_least(self, 0, "contour_hidden")
        require_at_least(self, 1, "contour_channels", "note_channels", "onset_channels")


class BasicPitch(TranscriptionModel):
    """Basic Pitch: contour (264 bins), note ("frame") and onset logits.

    Parameters
    ----------
    config
        :class:`BasicPitchConfig` (default: the released model).

    Shapes: ``forward(audio (B, N))`` -> ``"frame"``, ``"onset"`` ``(B, 88, T)`` and
    ``"contour"`` ``(B, 264, T)`` logits, ``T = 1 + N // 256``.

    Chapter: book/02_focal_loss_amt.md
    """

    def __init__(self, config: BasicPitchConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or BasicPitchConfig()
        n_harm = len(config.harmonics)
        self.frontend = Frontend(config.harmonics, norm="batch")
        # Keras convolutions have biases even before BatchNorm; kept for the exact count.
        stages = []
        width = n_harm
        if config.contour_hidden:
            stages.append(conv_bn_act(n_harm, config.contour_hidden, (5, 5), bias=True))
            width = config.contour_hidden
        stages.append(conv_bn_act(width, config.contour_channels, (39, 3), bias=True))
        stages.append(conv2d(config.contour_channels, 1, (5, 5)))
        self.contour_stack = nn.Sequential(*stages)
        self.note_stack = nn.Sequential(
            conv2d(1, config.note_channels, (7, 7), stride=SEMITONE_STRIDE),
            nn.ReLU(),
            conv2d(config.note_channels, 1, (3, 7)),
        )
        self.onset_branch = conv_bn_act(
            n_harm, config.onset_channels, (5, 5), stride=SEMITONE_STRIDE, bias=True
        )
        self.onset_head = conv2d(config.onset_channels + 1, 1, (3, 3))
        for head in (self.contour_stack[-1], self.note_stack[-1], self.onset_head):
            init_prior(head, config.prior)

    def transcribe(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Normalised harmonic CQT ``(B, H, 264, T)`` -> contour, frame and onset logits."""
        contour = self.contour_stack(features)
        # Basic Pitch chains posteriorgrams: notes are read off the contour, onsets off notes.
        frame = self.note_stack(torch.sigmoid(contour))
        onset = self.onset_head(torch.cat([torch.sigmoid(frame), self.onset_branch(features)], 1))
        return {"frame": frame.squeeze(1), "onset": onset.squeeze(1), "contour": contour.squeeze(1)}
