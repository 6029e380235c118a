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

from timbrelab.features.cqt import BASIC_PITCH_HARMONICS, EnergyNorm
from timbrelab.models.layers import (
    SEMITONE_STRIDE,
    FFTConv2d,
    Frontend,
    TranscriptionModel,
    conv2d,
    conv_bn_act,
    fold_batchnorm,
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

    def first_block(self, features: torch.Tensor) -> torch.Tensor:
        """The residual block ``ReLU(x + context(early(x)))``: ``(B, H, 264, T)`` -> same.

        Chapter 5's "Share" variant feeds it to the timbre branch as well."""
        return torch.relu(features + self.context(self.early(features)))

    def transcribe(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Normalised harmonic CQT ``(B, H, 264, T)`` -> frame/onset logits ``(B, 88, T)``."""
        hidden = self.neck(self.first_block(features))
        frame = self.frame_head(hidden)
        # The onset head sees the frame posteriorgram: onsets are where frames begin.
        onset = self.onset_head(torch.cat([torch.sigmoid(frame), self.onset_branch(hidden)], 1))
        return {"frame": frame.squeeze(1), "onset": onset.squeeze(1)}

    def for_inference(self, tile_frames: int = 256, threads: int | None = 1) -> nn.Module:
        """:class:`FastAMT`, an eval-only twin about 3x cheaper on a CPU (the model itself
        unless its front end is an EnergyNorm, e.g. with ``norm="batch"``)."""
        if not isinstance(self.frontend.norm, EnergyNorm):
            return self
        return FastAMT(self, tile_frames, threads)


class FastAMT(nn.Module):
    """Eval-only twin of a :class:`BasicAMT` (EnergyNorm front end): same outputs, less work.

    What changes, none of it the function computed (logits agree to float32 rounding):

    - the EnergyNorm log runs on the 401 rows of the unstacked CQT, not the 8 x 264 stacked
      bins (:meth:`~timbrelab.features.cqt.EnergyNorm.forward_harmonic`);
    - every BatchNorm (eval mode: a per-channel affine map) is folded into the convolution
      before it (:func:`~timbrelab.models.layers.fold_batchnorm`);
    - the dilated harmonic-context convolution runs as FFTs along frequency
      (:class:`~timbrelab.models.layers.FFTConv2d`), twice as fast;
    - the frame head and the onset branch, both stride-3 convolutions of the same input,
      run as one (their kernels zero-padded to a common size);
    - activations stay channels-last (the layout oneDNN's CPU convolutions prefer) and
      are modified in place;
    - after the clip-level normalisation, the network runs on tiles of ``tile_frames`` frames
      plus the frames its receptive field reaches on either side (9), which keeps the
      activations in the CPU caches; the extra frames are dropped, so tiles stitch exactly.

    It also runs on one CPU thread by default: its operations are small, so more threads
    gain little, while OpenMP threads that busy-wait between operations burn CPU time (on a
    busy 2-core machine, two threads took 5 times the CPU time and wall time of one).

    Build it again after the model's weights change (it copies them, folded).

    Parameters
    ----------
    model
        A :class:`BasicAMT` with ``norm="energy"``; its front end is shared, not copied.
    tile_frames
        Frames per tile (256 frames, 3 s, is about fastest on a CPU).
    threads
        Torch CPU threads while :meth:`forward` runs (restored afterwards); ``None`` keeps
        the current setting.

    Shapes: ``forward(audio (B, N))`` -> ``{"frame", "onset"}: (B, 88, 1 + N // 256)`` logits.

    Chapter: book/02_focal_loss_amt.md
    """

    def __init__(self, model: BasicAMT, tile_frames: int = 256, threads: int | None = 1) -> None:
        super().__init__()
        if not isinstance(model.frontend.norm, EnergyNorm):
            raise ValueError("FastAMT: needs the EnergyNorm front end (norm='energy')")
        if tile_frames < 1 or (threads is not None and threads < 1):
            raise ValueError(
                f"FastAMT: tile_frames and threads must be >= 1, got {tile_frames}, {threads}"
            )
        self.hcqt, self.norm = model.frontend.hcqt, model.frontend.norm
        self.tile_frames, self.threads = tile_frames, threads
        self.slope = model.early[2].negative_slope
        self.early = fold_batchnorm(model.early[0], model.early[1])
        context = fold_batchnorm(model.context[0], model.context[1])
        self.context = FFTConv2d(
            context.weight, context.bias, context.dilation[0], self.hcqt.n_bins
        )
        self.neck = fold_batchnorm(model.neck[0], model.neck[1])
        # channel 0: the frame head; channels 1 on: the onset branch (ReLU after)
        self.heads = _concat_convs(
            fold_batchnorm(model.frame_head),
            fold_batchnorm(model.onset_branch[0], model.onset_branch[1]),
        )
        self.onset_head = fold_batchnorm(model.onset_head)
        # frames of context that an output frame depends on, either side
        chain = (self.early, context, self.neck, self.heads, self.onset_head)
        self.halo = sum(conv.kernel_size[1] // 2 for conv in chain)

    def forward(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        """``audio (B, N)`` -> ``{"frame", "onset"}`` logits ``(B, 88, 1 + N // 256)``."""
        if not isinstance(audio, torch.Tensor) or audio.dim() != 2:
            shape = tuple(audio.shape) if isinstance(audio, torch.Tensor) else type(audio).__name__
            raise ValueError(f"FastAMT: audio must be a (B, N) tensor, got {shape}")
        threads = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            with torch.no_grad():
                return self.transcribe_rows(self.normalised_rows(audio))
        finally:
            torch.set_num_threads(threads)

    def normalised_rows(self, audio: torch.Tensor) -> torch.Tensor:
        """``audio (B, N)`` -> the EnergyNorm-ed CQT rows ``(B, n_rows, T)`` before harmonic
        stacking; ``hcqt.stack`` and ``norm.affine`` of them are the model's features (Chapter
        5's timbre branch reads them too)."""
        return self.norm.normalise_spectrum(self.hcqt.spectrum(audio), self.hcqt)

    def transcribe_rows(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """The network on normalised rows ``(B, n_rows, T)``, tile by tile: frame/onset logits
        ``(B, 88, T)``."""
        n_frames = rows.shape[-1]
        out: dict[str, torch.Tensor] = {}
        for start in range(0, n_frames, self.tile_frames):
            stop = min(start + self.tile_frames, n_frames)
            first, last = max(start - self.halo, 0), min(stop + self.halo, n_frames)
            for key, logits in self._transcribe(rows[..., first:last]).items():
                if key not in out:
                    out[key] = logits.new_empty((*logits.shape[:-1], n_frames))
                out[key][..., start:stop] = logits[..., start - first : stop - first]
        return out

    def _transcribe(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """:meth:`BasicAMT.transcribe` on normalised rows ``(B, n_rows, t)`` of one tile."""
        x = self.norm.affine(self.hcqt.stack(rows, channels_last=True))
        early = nn.functional.leaky_relu_(self.early(x), self.slope)
        hidden = self.neck(torch.relu_(x + self.context(early))).relu_()
        heads = self.heads(hidden)
        frame = heads[:, :1]
        onset = self.onset_head(torch.cat([torch.sigmoid(frame), heads[:, 1:].relu()], 1))
        return {"frame": frame.squeeze(1), "onset": onset.squeeze(1)}


def _concat_convs(*convs: nn.Conv2d) -> nn.Conv2d:
    """One convolution whose output channels are those of ``convs`` (same input, stride and
    'same' padding), the kernels zero-padded, centred, to the largest size."""
    size = tuple(max(c.kernel_size[i] for c in convs) for i in range(2))
    first = convs[0]
    if any(c.stride != first.stride or c.dilation != (1, 1) for c in convs):
        raise ValueError("_concat_convs: the convolutions need one stride and no dilation")
    out = nn.Conv2d(
        first.in_channels,
        sum(c.out_channels for c in convs),
        size,
        first.stride,
        (size[0] // 2, size[1] // 2),
        device=first.weight.device,
        dtype=first.weight.dtype,
    )
    with torch.no_grad():
        out.weight.zero_()
        row = 0
        for c in convs:
            top, left = (size[0] - c.kernel_size[0]) // 2, (size[1] - c.kernel_size[1]) // 2
            rows = slice(row, row + c.out_channels)
            out.weight[rows, :, top : top + c.kernel_size[0], left : left + c.kernel_size[1]] = (
                c.weight
            )
            out.bias[rows] = c.bias
            row += c.out_channels
    return out.requires_grad_(False)
