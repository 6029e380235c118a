"""Cerberus (Manilow, Seetharaman & Pardo, 2020): one BLSTM body, three heads.

The body reads the log magnitude of a 16 kHz STFT (1024-point window, hop 256) and runs a
stack of bidirectional LSTMs over its frames. Three heads read the body's output at every
frame:

- ``"dc"`` deep clustering: a ``D``-dimensional unit-norm embedding of every time-frequency
  bin (sigmoid, then L2 normalisation, as in the paper), ``(B, D, F, T)``;
- ``"mi"`` mask inference: one mask per source, softmax across the sources, ``(B, S, F, T)``;
- ``"tr"`` transcription: 88 pitch logits per source and frame, ``(B, S, 88, T)``.

Chimera (Luo et al., 2017) is the first two heads; any non-empty subset of the three is a
config (``heads=("dc", "tr")``), which is how the paper's Table 1 compares them.

A head maps ``2 * hidden_size`` features to ``F * D`` (or ``F * S``) numbers per frame. With
``F = 513`` that dense layer dominates the parameter count (over 2 M weights for the
embedding head alone at 128 hidden units), so ``head_rank`` can factor it through a
bottleneck of that width: the same linear map, restricted to rank ``head_rank``. ``None``
keeps the paper's full dense layers.

Chapter: book/04_cerberus.md
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from timbrelab.constants import N_PITCHES
from timbrelab.features.cqt import log_magnitude
from timbrelab.features.stft import STFT

#: The three heads, in the order the paper introduces them.
HEADS = ("dc", "mi", "tr")


def parse_heads(heads: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """A head subset as a tuple in :data:`HEADS` order; accepts ``"dc,mi"`` (the CLI's form).

    Raises
    ------
    ValueError
        An empty subset or an unknown head.

    Chapter: book/04_cerberus.md
    """
    names = heads.split(",") if isinstance(heads, str) else list(heads)
    names = [name.strip().lower() for name in names if name.strip()]
    unknown = set(names) - set(HEADS)
    if not names or unknown:
        raise ValueError(f"heads must be a non-empty subset of {HEADS}, got {heads!r}")
    return tuple(head for head in HEADS if head in names)


@dataclass
class CerberusConfig:
    """Architecture of a Cerberus network; the defaults are the paper's.

    Attributes
    ----------
    programs : tuple of int
        GM program of each source (128 = drums); ``S = len(programs)`` masks and piano rolls.
    heads : tuple of str
        Subset of :data:`HEADS` (a string ``"dc,mi"`` is accepted).
    hidden_size, num_layers : int
        Units per direction and number of BLSTM layers (paper: 300, 4).
    embedding_dim : int
        ``D`` of the deep-clustering embedding (paper: 20).
    head_rank : int or None
        Bottleneck width of every head's dense layer; None: full dense layers.
    dropout : float
        Between BLSTM layers.
    n_fft, hop_length : int
        STFT window and hop (paper: 1024, 256 at 16 kHz).

    Chapter: book/04_cerberus.md
    """

    programs: tuple[int, ...] = (0, 25)
    heads: tuple[str, ...] = HEADS
    hidden_size: int = 300
    num_layers: int = 4
    embedding_dim: int = 20
    head_rank: int | None = None
    dropout: float = 0.0
    n_fft: int = 1024
    hop_length: int = 256

    def __post_init__(self) -> None:
        self.programs = tuple(int(p) for p in self.programs)
        self.heads = parse_heads(self.heads)
        if not self.programs or not all(0 <= p <= 128 for p in self.programs):
            raise ValueError(f"programs must be GM programs 0..128, got {self.programs}")
        for name in ("hidden_size", "num_layers", "embedding_dim", "n_fft", "hop_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"CerberusConfig: {name} must be an integer, got {value!r}")
            if value < 1:
                raise ValueError(f"CerberusConfig: {name} must be >= 1, got {value}")
        if self.head_rank is not None and (
            isinstance(self.head_rank, bool) or not isinstance(self.head_rank, int)
        ):
            raise TypeError(f"CerberusConfig: head_rank must be an integer or None, got "
                            f"{self.head_rank!r}")  # fmt: skip
        if self.head_rank is not None and self.head_rank < 1:
            raise ValueError(f"CerberusConfig: head_rank must be >= 1, got {self.head_rank}")

    @property
    def n_sources(self) -> int:
        """``S``, the number of sources (one per program)."""
        return len(self.programs)


def _dense(in_features: int, out_features: int, rank: int | None) -> nn.Module:
    """A dense layer, factored through ``rank`` units when that is narrower."""
    if rank is None or rank >= min(in_features, out_features):
        return nn.Linear(in_features, out_features)
    return nn.Sequential(nn.Linear(in_features, rank, bias=False), nn.Linear(rank, out_features))


class Cerberus(nn.Module):
    """BLSTM body with deep-clustering, mask-inference and transcription heads.

    Shapes: ``forward(audio (B, N))`` returns a dict with ``"mixture"``, the complex STFT
    ``(B, F, T)`` the masks apply to (``F = n_fft // 2 + 1``, ``T = 1 + N // hop_length``),
    and one entry per head in the config: ``"embedding"`` ``(B, D, F, T)`` unit vectors,
    ``"masks"`` ``(B, S, F, T)`` summing to 1 over ``S``, ``"transcription"``
    ``(B, S, 88, T)`` logits.

    Chapter: book/04_cerberus.md
    """

    def __init__(self, config: CerberusConfig) -> None:
        super().__init__()
        self.config = config
        self.stft = STFT(config.n_fft, config.hop_length)
        bins = config.n_fft // 2 + 1
        self.bins = bins
        self.body = nn.LSTM(
            bins,
            config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        width, s, rank = 2 * config.hidden_size, config.n_sources, config.head_rank
        self.heads = nn.ModuleDict()
        if "dc" in config.heads:
            self.heads["dc"] = _dense(width, bins * config.embedding_dim, rank)
        if "mi" in config.heads:
            self.heads["mi"] = _dense(width, bins * s, rank)
        if "tr" in config.heads:
            self.heads["tr"] = _dense(width, N_PITCHES * s, rank)

    def features(self, mixture: torch.Tensor) -> torch.Tensor:
        """The network's input: log magnitude (dB) of ``mixture (B, F, T)``, standardised per
        item (so the level of the recording does not matter), as ``(B, T, F)``."""
        db = log_magnitude(mixture.abs())
        mean = db.mean(dim=(1, 2), keepdim=True)
        std = db.std(dim=(1, 2), keepdim=True).clamp_min(1e-3)
        return ((db - mean) / std).transpose(1, 2)

    def forward(
        self, audio: torch.Tensor, heads: tuple[str, ...] | None = None
    ) -> dict[str, torch.Tensor]:
        """Run the body and ``heads`` (default: all the config has) on ``audio (B, N)``."""
        mixture = self.stft(audio)
        hidden, _ = self.body(self.features(mixture))  # (B, T, 2H)
        b, t, _ = hidden.shape
        s, f = self.config.n_sources, self.bins
        out = {"mixture": mixture}
        wanted = self.config.heads if heads is None else parse_heads(heads)
        for head in wanted:
            if head not in self.heads:
                raise ValueError(
                    f"Cerberus: this network has no {head!r} head ({self.config.heads})"
                )
        if "dc" in wanted:
            embedding = torch.sigmoid(self.heads["dc"](hidden).view(b, t, f, -1))
            embedding = nn.functional.normalize(embedding, dim=-1)
            out["embedding"] = embedding.permute(0, 3, 2, 1)  # (B, D, F, T)
        if "mi" in wanted:
            masks = self.heads["mi"](hidden).view(b, t, s, f).softmax(dim=2)
            out["masks"] = masks.permute(0, 2, 3, 1)  # (B, S, F, T)
        if "tr" in wanted:
            rolls = self.heads["tr"](hidden).view(b, t, s, N_PITCHES)
            out["transcription"] = rolls.permute(0, 2, 3, 1)  # (B, S, 88, T)
        return out
