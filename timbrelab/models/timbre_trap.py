"""Timbre-Trap (Cwitkowitz, Cheuk, Choi, Kim, Mitsufuji; ICASSP 2024): one U-Net autoencoder
that, on a switch, either reconstructs complex CQT coefficients or transcribes them into pitch
salience, i.e. the same coefficients with the timbre filtered out.

The network reads the invertible CQT of the audio (:class:`~timbrelab.features.InvertibleCQT`)
as two channels, real and imaginary, on a (frequency x time) grid, and is fully convolutional:

- encoder: a 3x3 convolution to ``base_channels``; four blocks, each three residual blocks
  (a 3x3 convolution dilated 1, 2, 3 then a 1x1 convolution, added to the input) and a
  convolution along frequency (kernel 4, stride 2, no padding) that doubles the channels and
  roughly halves the bins (``F -> F // 2 - 1``); a convolution spanning all remaining bins
  gives one ``latent_size`` vector per frame;
- the switch: one constant channel appended to every latent vector, 1 to reconstruct and 0 to
  transcribe (or, with ``film``, a per-task scale and shift of the latents);
- decoder: the mirror image with transposed convolutions; ELU after every convolution but the
  encoder's and decoder's last.

In transcription mode the magnitude of the output coefficients, squashed by ``tanh``, is the
pitch salience (section 3.2). The ``magnitude`` variant reads normalised dB magnitudes instead
(one channel) and its two outputs go through a sigmoid.

Chapter: book/03_timbre_trap.md
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from timbrelab.constants import SAMPLE_RATE
from timbrelab.features.slicq import InvertibleCQT

#: Number of encoder (and decoder) blocks, each halving the frequency axis.
N_BLOCKS = 4
#: Dynamic range of the ``magnitude`` variant's normalised dB input, below each clip's peak.
MAGNITUDE_RANGE_DB = 80.0


@dataclass
class TimbreTrapConfig:
    """Architecture, CQT and objective weights of a Timbre-Trap model.

    Attributes
    ----------
    sample_rate, n_octaves, bins_per_octave, hop_length
        The :class:`~timbrelab.features.InvertibleCQT` (paper: 22 050 Hz, 9 octaves below
        Nyquist at 60 bins per octave, a 64-sample hop).
    base_channels
        Channels after the first convolution; every encoder block doubles them (paper: 8, so
        128 before the latent layer).
    latent_size
        Dimension of the latent vector of each frame (paper: 128).
    skip_connections
        Add each encoder level to the decoder's, scaled by a learnable weight (Table 1,
        "w/ Skip-Connections").
    film
        Switch by FiLM (a learned scale and shift per task) instead of the latent channel.
    magnitude
        Normalised dB magnitude in and out instead of complex coefficients ("Magnitude").
    coefficient_gain
        Factor on the CQT coefficients the network reads and writes. The invertible CQT gives
        a sinusoid of amplitude ``A`` coefficients of magnitude ``A``, so a mixture's loudest
        coefficients are about 0.1-0.3; the gain brings them near 1, where ``tanh(|c|)`` is
        mid-range, so reconstructing and transcribing ask for outputs of the same scale.
        (The authors' slice CQT is not normalised this way.)
    reconstruction_weight, consistency_weight
        Weights of the reconstruction and consistency terms of the loss (eq. 4: 1 and 1;
        "No Consistency": consistency 0; "Transcription Only": both 0). Part of the config
        because they define the trained model as much as its layers do.
    """

    sample_rate: int = SAMPLE_RATE
    n_octaves: float = 9
    bins_per_octave: int = 60
    hop_length: int = 64
    base_channels: int = 8
    latent_size: int = 128
    skip_connections: bool = False
    film: bool = False
    magnitude: bool = False
    coefficient_gain: float = 10.0
    reconstruction_weight: float = 1.0
    consistency_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.base_channels < 1 or self.latent_size < 1:
            raise ValueError("TimbreTrapConfig: base_channels and latent_size must be >= 1")
        if not self.coefficient_gain > 0:
            raise ValueError("TimbreTrapConfig: coefficient_gain must be > 0")
        if min(self.reconstruction_weight, self.consistency_weight) < 0:
            raise ValueError("TimbreTrapConfig: loss weights must be >= 0")
        if self.magnitude and self.consistency_weight > 0:
            raise ValueError(
                "TimbreTrapConfig: the magnitude variant has no consistency term (its "
                "transcription is not audio); set consistency_weight=0"
            )


class ResidualBlock(nn.Module):
    """``x + ELU(conv1x1(ELU(conv3x3_dilated(x))))``; shapes ``(B, C, F, T)`` -> same."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.dilated = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.pointwise = nn.Conv2d(channels, channels, 1)
        self.act = nn.ELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.act(self.pointwise(self.act(self.dilated(x))))


def _residual_stack(channels: int) -> nn.Sequential:
    return nn.Sequential(*(ResidualBlock(channels, d) for d in (1, 2, 3)))


class EncoderBlock(nn.Module):
    """Three residual blocks, then a stride-2 convolution along frequency doubling channels.

    Shapes: ``(B, C, F, T) -> (B, 2C, F // 2 - 1, T)``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.residual = _residual_stack(channels)
        self.down = nn.Conv2d(channels, 2 * channels, (4, 1), stride=(2, 1))
        self.act = nn.ELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.down(self.residual(x)))


class DecoderBlock(nn.Module):
    """A stride-2 transposed convolution halving channels, then three residual blocks.

    ``extra_bin`` (0 or 1) restores the bin an odd size lost on the way down.
    Shapes: ``(B, C, F, T) -> (B, C // 2, 2F + 2 + extra_bin, T)``.
    """

    def __init__(self, channels: int, extra_bin: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(
            channels, channels // 2, (4, 1), stride=(2, 1), output_padding=(extra_bin, 0)
        )
        self.act = nn.ELU()
        self.residual = _residual_stack(channels // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(self.act(self.up(x)))


class FiLM(nn.Module):
    """Feature-wise linear modulation by task: ``gamma[task] * z + beta[task]``.

    Starts as the identity (gamma 1, beta 0). Shapes: ``z (B, D, T)`` -> same.
    """

    def __init__(self, size: int, n_tasks: int = 2) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(n_tasks, size))
        self.beta = nn.Parameter(torch.zeros(n_tasks, size))

    def forward(self, z: torch.Tensor, task: int) -> torch.Tensor:
        return z * self.gamma[task][:, None] + self.beta[task][:, None]


class TimbreTrap(nn.Module):
    """The Timbre-Trap U-Net autoencoder.

    Shapes (``F`` = ``cqt.n_bins``, ``T = ceil(N / hop_length)``, ``C`` = 2 or 1 channels):

    - :meth:`features` ``audio (B, N) -> (B, C, F, T)``;
    - :meth:`encode` ``features -> latents (B, latent_size, T)`` and the encoder levels;
    - :meth:`decode` ``latents, levels, transcribe -> (B, C, F, T)``;
    - ``forward(audio)`` -> dict of ``"features"``, ``"reconstruction"``, ``"transcription"``
      (coefficients or magnitudes, ``(B, C, F, T)``), ``"salience"`` ``(B, F, T)`` in [0, 1]
      and ``"latents"``.

    Chapter: book/03_timbre_trap.md
    """

    name = "timbre_trap"

    def __init__(self, config: TimbreTrapConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or TimbreTrapConfig()
        self.cqt = InvertibleCQT(c.sample_rate, c.n_octaves, c.bins_per_octave, c.hop_length)
        in_channels = 1 if c.magnitude else 2
        # Frequency sizes at every level: each encoder block maps F to F // 2 - 1.
        sizes = [self.cqt.n_bins]
        for _ in range(N_BLOCKS):
            sizes.append(sizes[-1] // 2 - 1)
        if sizes[-1] < 1:
            raise ValueError(
                f"TimbreTrap: {self.cqt.n_bins} CQT bins are too few for {N_BLOCKS} halvings; "
                "use more octaves or bins per octave"
            )
        widths = [c.base_channels * 2**level for level in range(N_BLOCKS + 1)]
        self.input_layer = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, padding=1), nn.ELU())
        self.encoder = nn.ModuleList(EncoderBlock(w) for w in widths[:-1])
        self.to_latent = nn.Conv2d(widths[-1], c.latent_size, (sizes[-1], 1))
        switch_channels = 0 if c.film else 1
        self.film = FiLM(c.latent_size) if c.film else None
        self.from_latent = nn.Sequential(
            nn.ConvTranspose2d(c.latent_size + switch_channels, widths[-1], (sizes[-1], 1)),
            nn.ELU(),
        )
        self.decoder = nn.ModuleList(
            DecoderBlock(widths[level + 1], sizes[level] % 2) for level in reversed(range(N_BLOCKS))
        )
        self.output_layer = nn.Conv2d(widths[0], in_channels, 3, padding=1)
        # Table 1's learnable skip weights, one per level, starting as plain additions.
        self.skip_weights = nn.Parameter(torch.ones(N_BLOCKS + 1)) if c.skip_connections else None

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """``audio (B, N) -> (B, C, F, T)``: CQT coefficients times ``coefficient_gain``, or
        normalised dB magnitude."""
        coefficients = self.cqt(audio)
        if not self.config.magnitude:
            return self.config.coefficient_gain * coefficients
        return normalised_db(coefficients.norm(dim=1, keepdim=True))

    def synthesise(self, coefficients: torch.Tensor, length: int) -> torch.Tensor:
        """Audio ``(B, length)`` of coefficients ``(B, 2, F, T)`` on the network's scale
        (features, reconstructions, transcriptions): the inverse of :meth:`features`."""
        if self.config.magnitude:
            raise ValueError("TimbreTrap.synthesise: magnitude outputs have no phase to play")
        return self.cqt.inverse(coefficients / self.config.coefficient_gain, length)

    def encode(self, features: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``features (B, C, F, T) -> latents (B, D, T)`` and the ``N_BLOCKS + 1`` levels."""
        levels = [self.input_layer(features)]
        for block in self.encoder:
            levels.append(block(levels[-1]))
        return self.to_latent(levels[-1]).squeeze(-2), levels

    def decode(
        self, latents: torch.Tensor, levels: list[torch.Tensor], transcribe: bool
    ) -> torch.Tensor:
        """``latents (B, D, T) -> (B, C, F, T)``, reconstructing or transcribing."""
        if self.film is not None:
            latents = self.film(latents, int(transcribe))
        else:
            switch = torch.full_like(latents[:, :1], 0.0 if transcribe else 1.0)
            latents = torch.cat([latents, switch], dim=1)
        x = self.from_latent(latents.unsqueeze(-2))
        for depth, block in enumerate(self.decoder):
            x = block(x + self._skip(levels, N_BLOCKS - depth))
        return self.output_layer(x + self._skip(levels, 0))

    def _skip(self, levels: list[torch.Tensor], level: int) -> torch.Tensor | float:
        return 0.0 if self.skip_weights is None else self.skip_weights[level] * levels[level]

    def salience(self, transcription: torch.Tensor) -> torch.Tensor:
        """Pitch salience ``(B, F, T)`` in [0, 1] of transcription-mode outputs (eq. 1's Y')."""
        if self.config.magnitude:
            return torch.sigmoid(transcription[:, 0])
        return torch.tanh(transcription.norm(dim=1))

    def forward(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        if not isinstance(audio, torch.Tensor) or audio.dim() != 2:
            shape = tuple(audio.shape) if isinstance(audio, torch.Tensor) else type(audio).__name__
            raise ValueError(f"TimbreTrap: audio must be a (B, N) tensor, got {shape}")
        features = self.features(audio)
        latents, levels = self.encode(features)
        reconstruction = self.decode(latents, levels, transcribe=False)
        transcription = self.decode(latents, levels, transcribe=True)
        if self.config.magnitude:  # outputs are normalised dB, like the input
            reconstruction = torch.sigmoid(reconstruction)
        return {
            "features": features,
            "reconstruction": reconstruction,
            "transcription": transcription,
            "salience": self.salience(transcription),
            "latents": latents,
        }

    def round_trip(self, coefficients: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Feed coefficients back in (eq. 3): ``(T(Z, reconstruct), T(Z, transcribe))``."""
        latents, levels = self.encode(coefficients)
        return (
            self.decode(latents, levels, transcribe=False),
            self.decode(latents, levels, transcribe=True),
        )


def normalised_db(magnitude: torch.Tensor, range_db: float = MAGNITUDE_RANGE_DB) -> torch.Tensor:
    """Magnitude ``(B, ...)`` -> dB below each item's peak, mapped from ``[-range_db, 0]`` to
    ``[0, 1]`` (clipped), the magnitude variant's input and reconstruction target."""
    db = 20 * torch.log10(magnitude.clamp(min=1e-8))
    peak = db.flatten(1).amax(dim=1).view(-1, *[1] * (db.dim() - 1))
    return ((db - peak) / range_db + 1).clamp(min=0.0)
