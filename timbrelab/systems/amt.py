"""Chapter 2's systems: timbre-agnostic transcription of frames and onsets at 22 050 Hz.

Li & Zhu's lightweight model (``amt``) and its Table 2 ablations (``amt_bn``, ``amt_conv39``,
``amt_nolog``), beside the two models it is compared with (``basic_pitch``,
``onsets_frames``). They share one recipe: synthetic mixtures of 1 to 4 instruments, the
model's published loss, frame and note F1 on validation; and one inference path: chunked
posteriorgrams decoded into notes without a source.

Chapter: book/02_focal_loss_amt.md
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from timbrelab.constants import HOP_LENGTH, SAMPLE_RATE
from timbrelab.systems.base import System, SystemOutput, Tier, tier_settings
from timbrelab.training import Recipe
from timbrelab.training.trainer import LossFn

#: ``quick``: CPU, minutes (what the book and CI run). ``full``: the paper's scale on one GPU,
#: about 24 h of synthetic audio like Li & Zhu's "Our:AMT" (8640 ten-second pieces). Batch
#: sizes are global: under ``torchrun`` on N GPUs each takes ``batch_size / N`` (full: 16 on
#: one GPU, 8 per GPU on two, 4 per GPU on four).
TIERS: dict[str, Tier] = {
    "quick": Tier(
        train_items=128,
        val_items=8,
        seconds=4.0,
        instruments=(1, 4),
        config=dict(steps=120, batch_size=4, lr=3e-3, eval_every=40, checkpoint_every=40),
    ),
    "full": Tier(
        train_items=8640,
        val_items=256,
        seconds=10.0,
        instruments=(1, 4),
        config=dict(
            steps=20_000,
            batch_size=16,
            lr=1e-3,
            warmup_steps=500,
            num_workers=8,
            eval_every=1000,
            checkpoint_every=1000,
        ),
    ),
}

#: The loss each model was published with (Table 2 of Li & Zhu: Ours and its ablations use
#: focal loss, BP Basic Pitch's, OF plain BCE); ``recipe(..., loss=)`` swaps it ("BPfl", ...).
DEFAULT_LOSS = {"basic_pitch": "basic_pitch", "onsets_frames": "bce"}


def transcription_loss_fn(kind: str = "focal", **params: float) -> LossFn:
    """``loss_fn(model, batch)`` for the Trainer: the model on ``batch["audio"]`` scored
    by :func:`timbrelab.losses.transcription_loss`.

    Chapter: book/02_focal_loss_amt.md
    """
    from timbrelab.losses import transcription_loss

    def loss_fn(model: nn.Module, batch: dict) -> tuple[torch.Tensor, Mapping[str, float]]:
        return transcription_loss(model(batch["audio"]), batch, kind, **params)

    return loss_fn


def transcription_metrics(
    model: nn.Module, batch: dict, onset_threshold: float = 0.5, frame_threshold: float = 0.3
) -> dict[str, float]:
    """``metric_fn`` for the Trainer: frame F1 and note F1 of a validation batch.

    Frame F1 counts frames (over the whole batch) whose probability is at least
    ``frame_threshold`` against the label roll; note F1 decodes each item with
    :func:`timbrelab.decode.posteriorgram_to_notes` and scores it against the notes of its
    labels (onset within 50 ms), averaged over items.

    Parameters
    ----------
    model : nn.Module
    batch : dict
        ``"audio"`` ``(B, N)``, ``"frame"`` and ``"onset"`` label rolls ``(B, 88, T)``.

    Returns
    -------
    dict
        ``frame_f1``, ``note_f1``.

    Chapter: book/02_focal_loss_amt.md
    """
    from timbrelab.decode import onsets_frames_decode, posteriorgram_to_notes
    from timbrelab.metrics import note_scores

    outputs = model(batch["audio"])
    frame, onset = (torch.sigmoid(outputs[key].float()).cpu().numpy() for key in ("frame", "onset"))
    ref_frame, ref_onset = (batch[key].cpu().numpy() > 0.5 for key in ("frame", "onset"))
    active = frame >= frame_threshold
    hits = float((active & ref_frame).sum())
    frame_f1 = 2 * hits / max(float(active.sum() + ref_frame.sum()), 1.0)
    note_f1 = np.mean(
        [
            note_scores(
                # binary labels decode exactly with the onset-and-frame rule
                onsets_frames_decode(ref_frame[i], ref_onset[i]),
                posteriorgram_to_notes(
                    frame[i],
                    onset[i],
                    onset_threshold=onset_threshold,
                    frame_threshold=frame_threshold,
                ),
            )["f1"]
            for i in range(len(frame))
        ]
    )
    return {"frame_f1": frame_f1, "note_f1": float(note_f1)}


def recipe(
    model_name: str = "amt",
    tier: str = "quick",
    seed: int = 0,
    loss: str | None = None,
    data_options: Mapping[str, object] | None = None,
    model_config: Mapping[str, object] | None = None,
    **config_overrides: object,
) -> Recipe:
    """Data, model, loss and config to train a Chapter 2 transcription model at a tier.

    Training data are :class:`timbrelab.data.SyntheticMixtures`: random scores on 1 to 4
    instruments drawn from many General MIDI programs. Validation items use another seed,
    so they never repeat a training item.

    Parameters
    ----------
    model_name : str
        Any name of :func:`timbrelab.models.build_model` (``"amt"``, ``"amt_bn"``,
        ``"amt_conv39"``, ``"amt_nolog"``, ``"basic_pitch"``, ``"onsets_frames"``).
    tier : {"quick", "full"}
    seed : int
        Seeds the model's initialisation, the data and the training order.
    loss : {"focal", "basic_pitch", "bce"}, optional
        Loss kind; default the model's own (:data:`DEFAULT_LOSS`, else focal).
    data_options : mapping, optional
        Extra :class:`~timbrelab.data.SyntheticMixtures` settings for the training and
        validation data (``soundfonts``, ``expression``, ``style``, ``room``, ...).
    model_config : mapping, optional
        Fields of the model's config, e.g. ``{"neck_channels": 32}``.
    **config_overrides
        :class:`~timbrelab.training.TrainConfig` fields, e.g. ``steps=20``.

    Chapter: book/02_focal_loss_amt.md
    """
    from timbrelab.data import SyntheticMixtures
    from timbrelab.models import build_model

    spec, config = tier_settings(TIERS, tier, seed, config_overrides)
    model = build_model(model_name, **(model_config or {}))

    def data(n_items: int, data_seed: int) -> Dataset:
        return SyntheticMixtures(
            n_items,
            seconds=spec.seconds,
            instruments=spec.instruments,
            seed=data_seed,
            **(data_options or {}),
        )

    return Recipe(
        model=model,
        loss_fn=transcription_loss_fn(loss or DEFAULT_LOSS.get(model_name, "focal")),
        train_data=data(spec.train_items, 2 * seed),
        val_data=data(spec.val_items, 2 * seed + 1),
        config=config,
        metric_fn=transcription_metrics,
    )


class TranscriptionSystem(System):
    """One Chapter 2 model as a system: frame/onset posteriorgrams, decoded into notes.

    Chapter: book/02_focal_loss_amt.md
    """

    chapter = "book/02_focal_loss_amt.md"
    sample_rate = SAMPLE_RATE
    hop_length = HOP_LENGTH
    tasks = ("transcribe",)

    def __init__(self, name: str, description: str, pretrained: str | None = None) -> None:
        self.name, self.description, self.pretrained = name, description, pretrained

    def build_model(self, **config: object) -> nn.Module:
        from timbrelab.models import build_model

        return build_model(self.name, **config)

    def recipe(
        self,
        tier: str = "quick",
        seed: int = 0,
        model_config: Mapping[str, object] | None = None,
        **overrides: object,
    ) -> Recipe:
        return recipe(self.name, tier, seed, model_config=model_config, **overrides)

    def infer(self, model: nn.Module, audio: np.ndarray, **options: object) -> SystemOutput:
        """Notes of ``audio`` (``options``: decoder thresholds, see
        :func:`timbrelab.decode.posteriorgram_to_notes`)."""
        from timbrelab.inference import transcribe

        return SystemOutput(transcribe(model, audio, **options), sample_rate=self.sample_rate)

    def infer_file(
        self, model: nn.Module, path: str | os.PathLike, **options: object
    ) -> SystemOutput:
        """Notes of an audio file, streamed from disk: memory stays bounded for any length."""
        from timbrelab.inference import transcribe_file

        return SystemOutput(transcribe_file(model, path, **options), sample_rate=self.sample_rate)


#: Chapter 2's systems, in the order the chapter introduces them.
SYSTEMS = (
    TranscriptionSystem("amt", "Li & Zhu's lightweight timbre-agnostic AMT (focal loss)", "amt"),
    TranscriptionSystem("amt_bn", "amt ablation: BatchNorm front end instead of EnergyNorm"),
    TranscriptionSystem("amt_conv39", "amt ablation: Basic Pitch's dense 39-tap conv"),
    TranscriptionSystem("amt_nolog", "amt ablation: EnergyNorm without the log"),
    TranscriptionSystem("basic_pitch", "Basic Pitch (Bittner et al., 2022), its own loss"),
    TranscriptionSystem("onsets_frames", "Onsets and Frames (Hawthorne et al., 2018), BCE"),
)
