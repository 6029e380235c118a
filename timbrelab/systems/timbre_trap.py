"""Chapter 3's system: Timbre-Trap, one U-Net that transcribes or reconstructs the complex CQT.

Training data are labelled synthetic mixtures, with each item's frame roll moved onto the CQT
grid as binary salience targets (:func:`salience_targets`); optionally a second stream of
unlabelled synthetic audio, rendered with other soundfonts and expressive playing, trains the
reconstruction term alone (the paper's section 4.3). Inference gives notes (salience peaks
through Chapter 2's decoder), the reconstruction, and the transcription coefficients rendered
back to audio: the "timbre-less" version of the input.

Chapter: book/03_timbre_trap.md
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from timbrelab.constants import MIDI_MIN, SAMPLE_RATE
from timbrelab.models.timbre_trap import TimbreTrap, TimbreTrapConfig
from timbrelab.systems.base import System, SystemOutput, Tier, tier_settings
from timbrelab.training import Recipe

#: Seconds of audio the model sees at once at inference, and the context on each side of a
#: chunk that is computed and thrown away (the U-Net's receptive field is far shorter).
CHUNK_SECONDS = 8.0
CHUNK_MARGIN_SECONDS = 0.5


#: ``quick``: minutes on a laptop CPU. The U-Net's cost grows with CQT bins x frames, which at
#: a fixed hop-to-bandwidth ratio is proportional to the sample rate times the octaves, so the
#: quick tier reads 4 kHz audio over 6 octaves (31 Hz to 2 kHz: every fundamental of the
#: instruments it is tested on, few of their overtones) with 2 base channels.
#: ``full``: the paper's settings (section 4.2): 22 050 Hz, 9 octaves x 60 bins, 9 s excerpts,
#: AdamW 1e-3, batch 8, warm-up, LR halved on a plateau of validation F1, clipping at norm 10,
#: best checkpoint by validation F1.
TIERS: dict[str, Tier] = {
    "quick": Tier(
        model=dict(
            sample_rate=4000,
            n_octaves=6,
            bins_per_octave=36,
            hop_length=48,
            base_channels=2,
            latent_size=32,
        ),
        train_items=512,
        val_items=8,
        seconds=3.0,
        instruments=(1, 3),
        config=dict(
            steps=600,
            batch_size=2,
            lr=1e-3,
            warmup_steps=30,
            lr_schedule="plateau",
            plateau_patience=10,  # evaluations: 500 steps, as the paper's 500 epochs wait long
            grad_clip=10.0,
            monitor="frame_f1",
            eval_every=50,
            checkpoint_every=50,
        ),
    ),
    "full": Tier(
        model={},
        train_items=8640,
        val_items=64,
        seconds=9.0,
        instruments=(1, 4),
        config=dict(
            steps=30_000,
            batch_size=8,
            lr=1e-3,
            warmup_steps=1000,
            lr_schedule="plateau",
            plateau_patience=5,
            grad_clip=10.0,
            monitor="frame_f1",
            num_workers=8,
            eval_every=500,
            checkpoint_every=500,
        ),
    ),
}


def salience_targets(frame_roll: torch.Tensor, frequencies: np.ndarray) -> torch.Tensor:
    """Binary salience targets on a CQT grid: each active key lights its nearest bin.

    Parameters
    ----------
    frame_roll : (B, 88, T) tensor
        Label roll on the CQT's frame grid (row ``p`` is MIDI ``21 + p``).
    frequencies : (F,) array
        CQT bin centres in Hz (0 Hz and Nyquist included).

    Returns
    -------
    (B, F, T) float tensor

    Chapter: book/03_timbre_trap.md
    """
    midi = MIDI_MIN + np.arange(frame_roll.shape[1])
    with np.errstate(divide="ignore"):
        bin_midi = 69 + 12 * np.log2(np.asarray(frequencies[1:-1]) / 440.0)
    nearest = 1 + np.abs(bin_midi[None, :] - midi[:, None]).argmin(axis=1)
    # a key below the lowest band or above the highest has no bin of its own
    inside = (midi >= bin_midi[0] - 0.5) & (midi <= bin_midi[-1] + 0.5)
    target = frame_roll.new_zeros(frame_roll.shape[0], len(frequencies), frame_roll.shape[2])
    index = torch.as_tensor(nearest[inside], device=frame_roll.device)
    target.index_copy_(1, index, frame_roll[:, torch.as_tensor(inside, device=frame_roll.device)])
    return (target > 0.5).float()


def _labelled(batch: dict, model: TimbreTrap) -> tuple[dict, torch.Tensor]:
    outputs = model(batch["audio"])
    frames = outputs["salience"].shape[-1]
    return outputs, salience_targets(batch["frame"][..., :frames], model.cqt.frequencies)


def timbre_trap_loss_fn(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
    """``loss_fn(model, batch)`` for the Trainer: eq. 4 with the model's configured weights.

    ``batch`` is one labelled batch, or ``{"labelled": ..., "audio_only": ...}`` when
    unlabelled audio trains the reconstruction term alongside (its parts get ``audio_only_``).

    Chapter: book/03_timbre_trap.md
    """
    from timbrelab.losses.timbre_trap import timbre_trap_loss

    c = model.config
    labelled = batch.get("labelled", batch)
    loss, parts = timbre_trap_loss(
        model, *_labelled(labelled, model), c.reconstruction_weight, c.consistency_weight
    )
    if "audio_only" in batch:
        extra, extra_parts = timbre_trap_loss(
            model, model(batch["audio_only"]["audio"]), None, reconstruction_weight=1.0
        )
        loss = loss + extra
        parts = {**parts, **{f"audio_only_{k}": v for k, v in extra_parts.items()}}
    return loss, parts


def timbre_trap_metrics(model: nn.Module, batch: dict) -> dict[str, float]:
    """``metric_fn`` for the Trainer: frame precision, recall, F1 of the salience peaks
    (rounded to keys) against the label roll, and the reconstruction's SDR in dB.

    Chapter: book/03_timbre_trap.md
    """
    from timbrelab.decode.salience import salience_to_pitch_roll
    from timbrelab.metrics import sdr

    outputs = model(batch["audio"])
    salience = outputs["salience"].float().cpu().numpy()
    labels = batch["frame"][..., : salience.shape[-1]].cpu().numpy() > 0.5
    estimated = np.stack([salience_to_pitch_roll(s, model.cqt.frequencies) > 0 for s in salience])
    hits = float((estimated & labels).sum())
    precision = hits / max(float(estimated.sum()), 1.0)
    recall = hits / max(float(labels.sum()), 1.0)
    scores = {
        "frame_precision": precision,
        "frame_recall": recall,
        "frame_f1": 2 * hits / max(float(estimated.sum() + labels.sum()), 1.0),
    }
    if not model.config.magnitude:
        audio = batch["audio"].float()
        rebuilt = model.synthesise(outputs["reconstruction"].float(), audio.shape[-1])
        scores["sdr"] = float(np.mean(sdr(audio.cpu().numpy(), rebuilt.cpu().numpy())))
    return scores


def recipe(
    tier: str = "quick",
    seed: int = 0,
    model_config: Mapping[str, object] | None = None,
    audio_only_items: int = 0,
    **config_overrides: object,
) -> Recipe:
    """Model, data, loss and config to train Timbre-Trap at a tier.

    Parameters
    ----------
    tier : {"quick", "full"}
    seed : int
        Seeds the model's initialisation, the data and the training order.
    model_config : mapping, optional
        :class:`~timbrelab.models.timbre_trap.TimbreTrapConfig` fields over the tier's, e.g.
        ``{"consistency_weight": 0}`` (Table 1's "No Consistency").
    audio_only_items : int
        If > 0, a second training set of that many unlabelled items, rendered with every
        installed soundfont and expressive playing (the labelled set uses TimGM6mb, plainly),
        trains the reconstruction term alone: one batch of each per step.
    **config_overrides
        :class:`~timbrelab.training.TrainConfig` fields, e.g. ``steps=20``.

    Chapter: book/03_timbre_trap.md
    """
    from timbrelab.data import SyntheticMixtures

    spec, config = tier_settings(TIERS, tier, seed, config_overrides)
    model = TimbreTrap(TimbreTrapConfig(**{**spec.model, **(model_config or {})}))
    rate, hop = model.config.sample_rate, model.config.hop_length

    def data(n_items: int, data_seed: int, **options: object) -> Dataset:
        return SyntheticMixtures(
            n_items, spec.seconds, spec.instruments, data_seed, rate, hop, **options
        )

    train: Dataset | dict[str, Dataset] = data(spec.train_items, 2 * seed)
    if audio_only_items > 0:
        other = dict(soundfonts="all", expression=True)
        train = {"labelled": train, "audio_only": data(audio_only_items, 2 * seed + 10**6, **other)}
    return Recipe(
        model=model,
        loss_fn=timbre_trap_loss_fn,
        train_data=train,
        val_data=data(spec.val_items, 2 * seed + 1),
        config=config,
        metric_fn=timbre_trap_metrics,
    )


@dataclass
class Rendering:
    """Timbre-Trap's outputs for one recording, at the model's sample rate.

    Attributes
    ----------
    salience : (F, T) float32 array
        Pitch salience on the CQT grid, in [0, 1].
    frequencies : (F,) array
        Bin centres in Hz.
    frame_rate : float
        Frames per second of ``salience``.
    reconstruction, timbreless : (N,) float32 arrays or None
        The audio rebuilt from reconstruction-mode and from transcription-mode coefficients
        (None for the magnitude variant, whose outputs have no phase).
    latents : (D, T) float32 array
    sample_rate : int

    Chapter: book/03_timbre_trap.md
    """

    salience: np.ndarray
    frequencies: np.ndarray
    frame_rate: float
    reconstruction: np.ndarray | None
    timbreless: np.ndarray | None
    latents: np.ndarray
    sample_rate: int


def render(
    model: TimbreTrap,
    audio: np.ndarray,
    chunk_seconds: float = CHUNK_SECONDS,
    margin_seconds: float = CHUNK_MARGIN_SECONDS,
) -> Rendering:
    """Run the model over audio of any length, a chunk at a time.

    Each chunk is extended by ``margin_seconds`` of context on both sides, transformed,
    passed through the U-Net and synthesised on its own (the inverse CQT of a chunk is exact);
    only its centre is kept, so memory depends on ``chunk_seconds``, not on the recording.

    Parameters
    ----------
    model : TimbreTrap
    audio : (N,) float array
        Mono, at ``model.config.sample_rate``.

    Chapter: book/03_timbre_trap.md
    """
    rate, hop = model.config.sample_rate, model.config.hop_length
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or audio.size == 0:
        raise ValueError(f"render: audio must be a non-empty 1-D array, got shape {audio.shape}")
    chunk = max(1, round(chunk_seconds * rate / hop)) * hop  # whole frames per chunk
    margin = round(margin_seconds * rate / hop) * hop
    device = next(model.parameters()).device
    pieces: dict[str, list[np.ndarray]] = {"salience": [], "latents": [], "rec": [], "tl": []}
    complex_out = not model.config.magnitude
    with torch.inference_mode():
        for start in range(0, audio.size, chunk):
            length = min(chunk, audio.size - start)
            lo, hi = max(0, start - margin), min(audio.size, start + length + margin)
            out = model(torch.from_numpy(audio[lo:hi]).to(device)[None])
            first = (start - lo) // hop  # start and lo are whole frames apart
            frames = slice(first, first + -(-length // hop))
            pieces["salience"].append(out["salience"][0, :, frames].cpu().numpy())
            pieces["latents"].append(out["latents"][0, :, frames].cpu().numpy())
            if complex_out:
                samples = slice(start - lo, start - lo + length)
                for key, name in (("rec", "reconstruction"), ("tl", "transcription")):
                    wave = model.synthesise(out[name], hi - lo)[0, samples]
                    pieces[key].append(wave.cpu().numpy())
    return Rendering(
        salience=np.concatenate(pieces["salience"], axis=1),
        frequencies=model.cqt.frequencies,
        frame_rate=rate / hop,
        reconstruction=np.concatenate(pieces["rec"]).astype(np.float32) if complex_out else None,
        timbreless=np.concatenate(pieces["tl"]).astype(np.float32) if complex_out else None,
        latents=np.concatenate(pieces["latents"], axis=1),
        sample_rate=rate,
    )


class TimbreTrapSystem(System):
    """Timbre-Trap as a system: notes, reconstruction and timbre-less audio.

    Audio comes in at 22 050 Hz (the paper's rate); a model trained at another rate (the
    quick tier's 8 kHz) gets it resampled, and its audio outputs are at its own rate
    (``SystemOutput.sample_rate``).

    Chapter: book/03_timbre_trap.md
    """

    name = "timbre_trap"
    description = "Timbre-Trap (Cwitkowitz et al., 2024): transcribe or reconstruct the CQT"
    chapter = "book/03_timbre_trap.md"
    sample_rate = SAMPLE_RATE
    tasks = ("transcribe", "reconstruct")
    pretrained = "timbre_trap"

    def build_model(self, **config: object) -> nn.Module:
        return TimbreTrap(TimbreTrapConfig(**config))

    def recipe(
        self,
        tier: str = "quick",
        seed: int = 0,
        model_config: Mapping[str, object] | None = None,
        **overrides: object,
    ) -> Recipe:
        return recipe(tier, seed, model_config, **overrides)

    def render(self, model: nn.Module, audio: np.ndarray) -> Rendering:
        """:func:`render` of audio at :attr:`sample_rate` (resampled to the model's rate)."""
        from timbrelab.audio import resample

        return render(model, resample(audio, self.sample_rate, model.config.sample_rate))

    def infer(self, model: nn.Module, audio: np.ndarray, **options: object) -> SystemOutput:
        """Notes, the reconstruction and the ``"timbre-less"`` rendering of ``audio``.

        ``options``: ``frame_threshold`` sets the salience peak threshold (default 0.5); the
        others go to the note decoder (:func:`~timbrelab.decode.salience.salience_to_notes`).
        """
        return self._output(model, self.render(model, audio), options)

    def infer_file(
        self, model: nn.Module, path: str | os.PathLike, **options: object
    ) -> SystemOutput:
        """:meth:`infer` of a file, read straight at the model's rate (one resampling)."""
        from timbrelab.audio import load_audio

        audio = load_audio(Path(path), model.config.sample_rate)
        return self._output(model, render(model, audio), options)

    @staticmethod
    def _output(model: nn.Module, rendering: Rendering, options: dict) -> SystemOutput:
        from timbrelab.decode.salience import PEAK_THRESHOLD, salience_to_notes

        threshold = float(options.pop("frame_threshold", PEAK_THRESHOLD))
        notes = salience_to_notes(
            rendering.salience, rendering.frequencies, rendering.frame_rate, threshold, **options
        )
        timbreless = rendering.timbreless
        return SystemOutput(
            notes,
            reconstruction=rendering.reconstruction,
            renderings={} if timbreless is None else {"timbre-less": timbreless},
            sample_rate=rendering.sample_rate,
        )


SYSTEMS = (TimbreTrapSystem(),)
