"""A small Onsets and Frames (Hawthorne et al., ISMIR 2018) on a CQT, sized for a CPU.

The original design, kept here:

- two acoustic stacks (Kelz et al. 2016): Conv 3x3 (c) BN ReLU, Conv 3x3 (c) BN ReLU,
  max-pool 2 along frequency, dropout, Conv 3x3 (2c) BN ReLU, max-pool 2, dropout, then a
  fully connected layer per frame and dropout;
- onset head: acoustic stack -> bidirectional RNN -> 88 onset logits;
- frame head: acoustic stack -> 88 activations, concatenated with the onset posteriorgram
  (gradient stopped: the frame loss does not train the onset detector) -> bidirectional
  RNN -> 88 frame logits.

Changes for this book: input is the 264-bin CQT (one harmonic, log + BatchNorm as in
:class:`~timbrelab.models.layers.LogBatchNorm`) instead of a 229-band log-mel spectrogram;
GRUs instead of LSTMs; widths c = 8, 64 features, 32 hidden units per direction instead of
c = 32, 512 features, 128 units (the original's onset and frame stacks alone are millions of
parameters; Li & Zhu's re-implementation has 1.7 M). The default model has 215 322
parameters. No offset or velocity heads (the 2019 MAESTRO version's additions).

Chapter: book/02_focal_loss_amt.md
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from timbrelab.constants import N_PITCHES
from timbrelab.models.layers import (
    Frontend,
    TranscriptionModel,
    conv_bn_act,
    init_prior,
    require_at_least,
)


@dataclass
class OnsetsFramesConfig:
    """Hyper-parameters of :class:`OnsetsAndFrames`.

    Attributes
    ----------
    harmonics
        CQT channels of the input (default: the plain CQT, harmonic 1).
    conv_channels
        ``c``: the acoustic stacks use c, c and 2c channels.
    fc_features
        Per-frame features after each acoustic stack.
    rnn_hidden
        GRU units per direction.
    conv_dropout, fc_dropout
        Dropout after the poolings and after the fully connected layer (paper: 0.25, 0.5).
    prior
        Initial output probability of the onset and frame outputs
        (:func:`~timbrelab.models.layers.init_prior`); ``None``: PyTorch's initialisation.

    Chapter: book/02_focal_loss_amt.md
    """

    harmonics: tuple[float, ...] = (1.0,)
    conv_channels: int = 8
    fc_features: int = 64
    rnn_hidden: int = 32
    conv_dropout: float = 0.25
    fc_dropout: float = 0.5
    prior: float | None = 0.01

    def __post_init__(self) -> None:
        self.harmonics = tuple(float(h) for h in self.harmonics)
        require_at_least(self, 1, "conv_channels", "fc_features", "rnn_hidden")
        for name in ("conv_dropout", "fc_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"OnsetsFramesConfig: {name} must be in [0, 1)")


class AcousticStack(nn.Module):
    """Kelz et al.'s conv stack: ``(B, H, F, T) -> (B, T, fc_features)``.

    Chapter: book/02_focal_loss_amt.md
    """

    def __init__(self, in_channels: int, n_bins: int, config: OnsetsFramesConfig) -> None:
        super().__init__()
        c = config.conv_channels
        self.convs = nn.Sequential(
            conv_bn_act(in_channels, c, (3, 3)),
            conv_bn_act(c, c, (3, 3)),
            nn.MaxPool2d((2, 1)),  # frequency only: the time resolution is kept
            nn.Dropout(config.conv_dropout),
            conv_bn_act(c, 2 * c, (3, 3)),
            nn.MaxPool2d((2, 1)),
            nn.Dropout(config.conv_dropout),
        )
        self.fc = nn.Sequential(
            nn.Linear(2 * c * (n_bins // 4), config.fc_features), nn.Dropout(config.fc_dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, H, F, T) -> (B, T, fc_features)``."""
        x = self.convs(x)
        return self.fc(x.permute(0, 3, 1, 2).flatten(2))


class BiGRU(nn.Module):
    """Bidirectional GRU over time: ``(B, T, D) -> (B, T, 2 * hidden)``.

    Chapter: book/02_focal_loss_amt.md
    """

    def __init__(self, in_features: int, hidden: int) -> None:
        super().__init__()
        self.rnn = nn.GRU(in_features, hidden, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, D) -> (B, T, 2 * hidden)``."""
        return self.rnn(x)[0]


class OnsetsAndFrames(TranscriptionModel):
    """A small Onsets and Frames: onset detector whose output conditions the frame RNN.

    Parameters
    ----------
    config
        :class:`OnsetsFramesConfig`.

    Shapes: ``forward(audio (B, N))`` -> ``{"frame", "onset"}: (B, 88, 1 + N // 256)`` logits.

    Chapter: book/02_focal_loss_amt.md
    """

    def __init__(self, config: OnsetsFramesConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or OnsetsFramesConfig()
        self.frontend = Frontend(config.harmonics, norm="batch")
        n_harm, n_bins = len(config.harmonics), self.frontend.hcqt.n_bins
        width = 2 * config.rnn_hidden
        self.onset_stack = AcousticStack(n_harm, n_bins, config)
        self.onset_rnn = BiGRU(config.fc_features, config.rnn_hidden)
        self.onset_out = nn.Linear(width, N_PITCHES)
        self.frame_stack = AcousticStack(n_harm, n_bins, config)
        self.frame_act = nn.Linear(config.fc_features, N_PITCHES)
        self.frame_rnn = BiGRU(2 * N_PITCHES, config.rnn_hidden)
        self.frame_out = nn.Linear(width, N_PITCHES)
        for head in (self.onset_out, self.frame_out):
            init_prior(head, config.prior)

    def transcribe(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Normalised CQT ``(B, H, 264, T)`` -> frame/onset logits ``(B, 88, T)``."""
        onset = self.onset_out(self.onset_rnn(self.onset_stack(features)))  # (B, T, 88)
        activation = torch.sigmoid(self.frame_act(self.frame_stack(features)))
        combined = torch.cat([torch.sigmoid(onset).detach(), activation], dim=-1)
        frame = self.frame_out(self.frame_rnn(combined))
        return {"frame": frame.transpose(1, 2), "onset": onset.transpose(1, 2)}
