"""Li & Zhu's two-branch model: a frozen transcription branch beside a timbre-encoding branch.

The AMT branch (Chapter 2's :class:`~timbrelab.models.amt.BasicAMT`, pretrained and frozen)
says *which* pitches sound when; the timbre branch maps the same normalised harmonic CQT to a
``D``-dimensional unit vector for every pitch-time bin, trained so that the bins of one
instrument point the same way (Li & Zhu, 2026, Figure 1). Notes decoded from the AMT branch
are then grouped into instruments by clustering their embeddings
(:mod:`timbrelab.decode.clustering`).

The timbre branch follows the layout of the authors' released encoder
(github.com/madderscientist/timbreAMT, ``septimbre/septimbre.py``), over (freq, time)::

    x = x * scale + shift                                     # per harmonic channel
    x = x + Conv25x3 dil(3,1) (16->H) (LeakyReLU(GroupNorm(Conv5x5 (H->16))))
    h = PReLU(Conv5x5 (H->16) (GroupNorm(x)))
    h = h + Conv3x3 (24->16) ReLU Conv3x3 (16->24) (LayerNorm(h))
    v = Conv3x5 stride (3,1) (16->D) (InstanceNorm(h))       # 264 bins -> 88 keys
    v = v / |v|

Its dilated convolution is the AMT branch's (one octave of harmonic context); the normalisations
are instance-style (over each item's bins, never over the batch), because an embedding must not
depend on which other recordings share its batch. Variants by config, as in the paper's Table 3:

- ``share``: the timbre branch starts from the AMT branch's first residual block (frozen here;
  the paper retrained both branches for this row) instead of its own;
- ``rescale``: the hidden features are multiplied by the frame posteriorgram before the
  instance normalisation, so the embedding is computed where notes sound;
- ``encoder="blstm"``: Tanaka et al.'s (2020) deep spherical clustering instead: a BiLSTM over
  each frame's log CQT and pitchgram (the AMT branch's frame posteriorgram) emits the
  embeddings of that frame's 88 pitch bins.

Chapter: book/05_contrastive_clustering.md
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from timbrelab.constants import N_PITCHES
from timbrelab.models.amt import BasicAMT, FastAMT
from timbrelab.models.layers import SEMITONE_STRIDE, FFTConv2d, conv2d, require_at_least

#: Timbre encoders: Li & Zhu's convolutional branch, or Tanaka et al.'s BiLSTM baseline.
ENCODERS = ("conv", "blstm")
#: Contrastive objectives (see :mod:`timbrelab.losses.contrastive`): InfoNCE, or the affinity
#: MSE of deep clustering (the paper's "MSE" row).
OBJECTIVES = ("infonce", "affinity")
#: What InfoNCE contrasts: single pitch-time bins, or reference notes (their bins averaged).
LOSS_LEVELS = ("bin", "note")


@dataclass
class TwoBranchConfig:
    """Hyper-parameters of :class:`TwoBranch` (defaults: Li & Zhu's model, "Ours").

    Attributes
    ----------
    embedding_dim
        ``D``, the size of a bin's timbre embedding (12; the paper's "D16" row uses 16).
    encoder
        ``"conv"`` (Li & Zhu) or ``"blstm"`` (Tanaka et al.'s baseline).
    share
        Start the timbre branch from the AMT branch's first residual block ("Share").
    rescale
        Multiply hidden features by the frame posteriorgram before normalising ("Rescale").
    early_channels, hidden_channels, residual_channels
        Widths of the first convolution, the neck and the residual block's middle.
    lstm_hidden, lstm_layers
        Size of the BiLSTM baseline (``encoder="blstm"``).
    objective
        ``"infonce"`` or ``"affinity"`` (the deep-clustering MSE, "MSE").
    temperature
        InfoNCE temperature (the authors' 0.15).
    loss_level
        InfoNCE over ``"bin"`` embeddings (the paper) or over reference ``"note"`` means.
    max_bins
        At most this many active bins per item enter the loss (drawn at random each step):
        InfoNCE compares every pair, so its cost grows with the square of the count.

    Chapter: book/05_contrastive_clustering.md
    """

    embedding_dim: int = 12
    encoder: str = "conv"
    share: bool = False
    rescale: bool = False
    early_channels: int = 16
    hidden_channels: int = 16
    residual_channels: int = 24
    lstm_hidden: int = 64
    lstm_layers: int = 2
    objective: str = "infonce"
    temperature: float = 0.15
    loss_level: str = "bin"
    max_bins: int = 2048

    def __post_init__(self) -> None:
        for name, allowed in (
            ("encoder", ENCODERS),
            ("objective", OBJECTIVES),
            ("loss_level", LOSS_LEVELS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"TwoBranchConfig: {name} must be one of {allowed}, got {getattr(self, name)!r}"
                )
        if self.encoder == "blstm" and (self.share or self.rescale):
            raise ValueError("TwoBranchConfig: share and rescale apply to the conv encoder only")
        require_at_least(
            self, 1, "embedding_dim", "early_channels", "hidden_channels", "residual_channels",
            "lstm_hidden", "lstm_layers", "max_bins",
        )  # fmt: skip
        if not self.temperature > 0:
            raise ValueError(f"TwoBranchConfig: temperature must be > 0, got {self.temperature}")


class InstanceNorm(nn.Module):
    """Each channel standardised over its item's bins, then scaled by a learnt gain (no shift:
    the mean is what the next layer should not see). Shapes: ``(B, C, F, T)`` -> same.

    Chapter: book/05_contrastive_clustering.md
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(2, 3), keepdim=True)
        std = x.std(dim=(2, 3), keepdim=True)
        return (x - mean) / (std + self.eps) * self.gain


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of every bin. Shapes: ``(B, C, F, T)`` -> same.

    Chapter: book/05_contrastive_clustering.md
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvTimbreEncoder(nn.Module):
    """Li & Zhu's timbre-encoding branch (see the module docstring for its layers).

    Shapes: ``forward(features (B, H, 264, T), frame_probs (B, 88, T) or None, shared
    (B, H, 264, T) or None)`` -> unnormalised embeddings ``(B, D, 88, T)``.

    Chapter: book/05_contrastive_clustering.md
    """

    def __init__(self, config: TwoBranchConfig, harmonics: int) -> None:
        super().__init__()
        self.config = config
        width, hidden = config.early_channels, config.hidden_channels
        if not config.share:
            self.scale = nn.Parameter(torch.ones(1, harmonics, 1, 1))
            self.shift = nn.Parameter(torch.zeros(1, harmonics, 1, 1))
            self.early = nn.Sequential(
                conv2d(harmonics, width, (5, 5)),
                nn.GroupNorm(_groups(width, 4), width),
                nn.LeakyReLU(),
                conv2d(width, harmonics, (25, 3), dilation=(3, 1)),
            )
        self.neck = nn.Sequential(
            nn.GroupNorm(_groups(harmonics, 2), harmonics),
            conv2d(harmonics, hidden, (5, 5)),
            nn.PReLU(),
        )
        self.residual = nn.Sequential(
            ChannelNorm(hidden),
            conv2d(hidden, config.residual_channels, (3, 3)),
            nn.ReLU(),
            conv2d(config.residual_channels, hidden, (3, 3)),
        )
        self.norm = InstanceNorm(hidden)
        self.head = conv2d(hidden, config.embedding_dim, (3, 5), stride=SEMITONE_STRIDE)

    def forward(
        self,
        features: torch.Tensor,
        frame_probs: torch.Tensor | None = None,
        shared: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if self.config.share:
            x = shared
        else:
            x = features * self.scale + self.shift
            x = x + self.early(x)
        hidden = self.neck(x)
        hidden = hidden + self.residual(hidden)
        if self.config.rescale:
            # each key's probability over its 3 bins: the embedding attends to sounding notes
            hidden = hidden * frame_probs.repeat_interleave(SEMITONE_STRIDE[0], dim=1)[:, None]
        return self.head(self.norm(hidden))


class BLSTMTimbreEncoder(nn.Module):
    """Tanaka et al.'s deep spherical clustering: a BiLSTM over each frame's log CQT (the
    fundamental channel, instance-normalised) and pitchgram emits 88 embeddings per frame.

    Shapes: ``forward(features (B, H, 264, T), frame_probs (B, 88, T))`` -> unnormalised
    embeddings ``(B, D, 88, T)``.

    Chapter: book/05_contrastive_clustering.md
    """

    def __init__(self, config: TwoBranchConfig, fundamental: int, bins: int) -> None:
        super().__init__()
        self.fundamental, self.dim = fundamental, config.embedding_dim
        self.norm = InstanceNorm(1)
        self.lstm = nn.LSTM(
            bins + N_PITCHES,
            config.lstm_hidden,
            num_layers=config.lstm_layers,
            batch_first=True,
            bidirectional=True,
        )
        self.head = nn.Linear(2 * config.lstm_hidden, N_PITCHES * config.embedding_dim)

    def forward(
        self,
        features: torch.Tensor,
        frame_probs: torch.Tensor | None = None,
        shared: torch.Tensor | None = None,
    ) -> torch.Tensor:
        spectrum = self.norm(features[:, self.fundamental : self.fundamental + 1])[:, 0]
        frames = torch.cat([spectrum, frame_probs], dim=1).transpose(1, 2)  # (B, T, 264 + 88)
        hidden, _ = self.lstm(frames)
        batch, n_frames = hidden.shape[:2]
        out = self.head(hidden).view(batch, n_frames, self.dim, N_PITCHES)
        return out.permute(0, 2, 3, 1)


def _groups(channels: int, wanted: int) -> int:
    """The largest group count up to ``wanted`` that divides ``channels``."""
    return max(g for g in range(1, wanted + 1) if channels % g == 0)


class TwoBranch(nn.Module):
    """Li & Zhu's timbre-separating transcription model: a frozen AMT branch and a timbre branch.

    The AMT branch's parameters never train (``requires_grad=False``) and it stays in eval
    mode whatever :meth:`train` is told, so its BatchNorm statistics are those it was
    pretrained with; load them with :meth:`load_amt`.

    Parameters
    ----------
    config
        :class:`TwoBranchConfig`.

    Shapes: ``forward(audio (B, N))`` -> ``{"frame", "onset"}`` logits ``(B, 88, T)`` and
    ``"embedding"`` ``(B, D, 88, T)``, unit vectors along ``D``; ``T = 1 + N // 256``.

    Chapter: book/05_contrastive_clustering.md
    """

    def __init__(self, config: TwoBranchConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or TwoBranchConfig()
        self.amt = BasicAMT()
        self.amt.requires_grad_(False)
        harmonics = len(self.amt.config.harmonics)
        if config.encoder == "conv":
            self.encoder: nn.Module = ConvTimbreEncoder(config, harmonics)
        else:
            fundamental = self.amt.config.harmonics.index(1.0)
            self.encoder = BLSTMTimbreEncoder(config, fundamental, self.amt.frontend.hcqt.n_bins)

    def load_amt(self, amt: BasicAMT) -> TwoBranch:
        """Copy a trained AMT branch's weights in (they stay frozen); returns ``self``."""
        self.amt.load_state_dict(amt.state_dict())
        return self

    def train(self, mode: bool = True) -> TwoBranch:
        super().train(mode)
        self.amt.eval()
        return self

    def forward(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        """``audio (B, N)`` at 22 050 Hz -> frame/onset logits and unit embeddings."""
        if not isinstance(audio, torch.Tensor) or audio.dim() != 2:
            shape = tuple(audio.shape) if isinstance(audio, torch.Tensor) else type(audio).__name__
            raise ValueError(f"TwoBranch: audio must be a (B, N) tensor, got {shape}")
        with torch.no_grad():  # the frozen branch: no activations kept for backward
            features = self.amt.frontend(audio)
            shared = self.amt.first_block(features) if self.config.share else None
            out = self.amt.transcribe(features)
        frame_probs = torch.sigmoid(out["frame"])
        embedding = self.encoder(features, frame_probs, shared)
        out["embedding"] = nn.functional.normalize(embedding, dim=1)
        return out

    def for_inference(self, threads: int | None = 1) -> nn.Module:
        """:class:`FastTwoBranch`, an eval-only twin that computes the same outputs for less
        (build it again after the weights change)."""
        return FastTwoBranch(self, threads)


class FastTwoBranch(nn.Module):
    """Eval-only twin of a :class:`TwoBranch`: the same outputs (to float32 rounding), less work.

    The AMT branch runs as its :class:`~timbrelab.models.amt.FastAMT` twin (folded BatchNorms,
    the dilated convolution as FFTs, tiles that fit the CPU caches), and the timbre branch reads
    the normalised CQT rows that twin computes, so the CQT is taken once. The convolutional
    timbre branch's own dilated convolution runs as FFTs too
    (:class:`~timbrelab.models.layers.FFTConv2d`); it runs whole, not in tiles, because its
    normalisations use statistics of the whole recording. One CPU thread by default, as
    :class:`~timbrelab.models.amt.FastAMT`.

    Shapes: as :meth:`TwoBranch.forward`.

    Chapter: book/05_contrastive_clustering.md
    """

    def __init__(self, model: TwoBranch, threads: int | None = 1) -> None:
        super().__init__()
        self.model, self.threads = model, threads
        self.amt = FastAMT(model.amt, threads=None)
        self.encoder = model.encoder
        if isinstance(model.encoder, ConvTimbreEncoder) and not model.config.share:
            self.encoder = copy.deepcopy(model.encoder).requires_grad_(False)
            context = self.encoder.early[3]
            self.encoder.early[3] = FFTConv2d(
                context.weight, context.bias, context.dilation[0], self.amt.hcqt.n_bins
            )

    def forward(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        if not isinstance(audio, torch.Tensor) or audio.dim() != 2:
            shape = tuple(audio.shape) if isinstance(audio, torch.Tensor) else type(audio).__name__
            raise ValueError(f"FastTwoBranch: audio must be a (B, N) tensor, got {shape}")
        threads = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            with torch.no_grad():
                rows = self.amt.normalised_rows(audio)
                out = self.amt.transcribe_rows(rows)
                features = self.amt.norm.affine(self.amt.hcqt.stack(rows))
                amt = self.model.amt
                shared = amt.first_block(features) if self.model.config.share else None
                embedding = self.encoder(features, torch.sigmoid(out["frame"]), shared)
                out["embedding"] = nn.functional.normalize(embedding, dim=1)
                return out
        finally:
            torch.set_num_threads(threads)
