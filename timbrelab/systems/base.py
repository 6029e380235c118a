"""What every system declares, and what its inference returns.

A *system* is everything the rest of the package needs to know about one way of transcribing
(or separating) music: its model(s), its training recipe at each tier, the audio it expects and
what it produces. The command line, evaluation, the benchmarks and the chapters only talk to
systems through this interface and the registry (:mod:`timbrelab.systems`).

Chapter: book/02_focal_loss_amt.md
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from timbrelab.notes import Note
from timbrelab.runtime import seed_everything
from timbrelab.training import Recipe, TrainConfig

#: What a system can do; ``timbrelab systems`` prints it. ``separate``: audio stems per
#: source; ``separate_notes``: every note carries the source (instrument) that plays it.
TASKS = ("transcribe", "separate", "separate_notes", "reconstruct")


@dataclass(frozen=True)
class Tier:
    """Data scale, model settings and training settings of one tier of a system's recipe.

    Attributes
    ----------
    train_items, val_items : int
        Synthetic training and validation items.
    seconds : float
        Length of an item.
    instruments : (int, int) or None
        Range of the number of instruments per item; None where the system has a fixed
        line-up.
    model : dict
        Fields of the model's config (over its defaults).
    config : dict
        :class:`~timbrelab.training.TrainConfig` fields.

    Chapter: book/02_focal_loss_amt.md
    """

    train_items: int
    val_items: int
    seconds: float
    instruments: tuple[int, int] | None = None
    model: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)


def tier_settings(
    tiers: Mapping[str, Tier], tier: str, seed: int, overrides: Mapping[str, object]
) -> tuple[Tier, TrainConfig]:
    """The tier named ``tier`` and its training config with ``seed`` and ``overrides``; seeds
    torch, numpy and Python so that the model built next starts from the same weights.

    Raises
    ------
    ValueError
        An unknown tier; the message lists the known ones.

    Chapter: book/02_focal_loss_amt.md
    """
    if tier not in tiers:
        raise ValueError(f"recipe: unknown tier {tier!r}; choose from {list(tiers)}")
    spec = tiers[tier]
    config = TrainConfig(**{**spec.config, "seed": seed, **overrides})
    seed_everything(seed)  # the model's initial weights
    return spec, config


@dataclass
class SystemOutput:
    """What a system made of one recording.

    Attributes
    ----------
    notes : list of Note
        Sorted; ``source`` set when the system separates instruments.
    sources : list of str
        Name of each source index (``notes[i].source``, ``stems`` rows); empty when the
        system does not separate.
    stems : (S, N) float32 array or None
        Separated audio per source, at ``sample_rate``.
    reconstruction : (N,) float32 array or None
        The input as the system resynthesises it (autoencoders).
    sample_rate : int
        Rate of ``stems``, ``reconstruction`` and ``renderings``.
    renderings : dict of str to (N,) float32 array
        Other audio the system makes of the input, by name (Timbre-Trap's ``"timbre-less"``:
        its transcription played back).
    programs : list of int
        A General MIDI program per source, for playing the notes back (empty: piano).
    """

    notes: list[Note]
    sources: list[str] = field(default_factory=list)
    stems: np.ndarray | None = None
    reconstruction: np.ndarray | None = None
    sample_rate: int = 0
    renderings: dict[str, np.ndarray] = field(default_factory=dict)
    programs: list[int] = field(default_factory=list)


class System:
    """Base class of a system; one subclass instance per registered name.

    Subclasses set the class attributes and implement :meth:`build_model`, :meth:`recipe` and
    :meth:`infer`; the rest (loading weights, reading files at the right rate) is shared.

    Attributes
    ----------
    name : str
        Registry name (``timbrelab transcribe --model NAME``).
    description : str
        One line for ``timbrelab systems``.
    chapter : str
        The chapter that teaches it.
    sample_rate, hop_length : int
        The audio rate the model reads and its frame hop.
    tasks : tuple of str
        A subset of :data:`TASKS`.
    pretrained : str or None
        Name of shipped weights in :mod:`timbrelab.pretrained`, if any.
    counts_sources : bool
        Whether :meth:`infer` takes ``sources=K`` (how many instruments to find) and
        estimates K without it; False for a fixed line-up.

    Chapter: book/02_focal_loss_amt.md
    """

    name: str = ""
    description: str = ""
    chapter: str = ""
    sample_rate: int = 22050
    hop_length: int = 256
    tasks: tuple[str, ...] = ("transcribe",)
    pretrained: str | None = None
    counts_sources: bool = False

    def build_model(self, **config: object) -> nn.Module:
        """A fresh model; ``config`` overrides its defaults. It has ``.name`` (this system's
        name) and a dataclass ``.config`` that rebuilds it."""
        raise NotImplementedError

    def recipe(
        self,
        tier: str = "quick",
        seed: int = 0,
        model_config: Mapping[str, object] | None = None,
        **overrides: object,
    ) -> Recipe:
        """Model, loss, data, metrics and training config at a tier (``"quick"``/``"full"``).

        ``model_config`` overrides fields of the model's config (what :meth:`build_model`
        takes: a variant, e.g. an ablation; ``timbrelab train --config KEY=VALUE``);
        ``overrides`` are :class:`~timbrelab.training.TrainConfig` fields."""
        raise NotImplementedError

    def infer(self, model: nn.Module, audio: np.ndarray, **options: object) -> SystemOutput:
        """Run on mono float32 ``audio`` ``(N,)`` at :attr:`sample_rate`."""
        raise NotImplementedError

    def infer_file(
        self, model: nn.Module, path: str | os.PathLike, **options: object
    ) -> SystemOutput:
        """Run on an audio file of any format, rate and channel count.

        Raises
        ------
        timbrelab.audio.AudioError
            A file that cannot be used; the message names it.
        """
        from timbrelab.audio import load_audio

        return self.infer(model, load_audio(Path(path), self.sample_rate), **options)

    def load(self, device: str = "cpu", weights: str | os.PathLike | None = None) -> nn.Module:
        """The model with shipped weights, or those of a ``weights.pt`` file, in eval mode.

        Raises
        ------
        timbrelab.pretrained.WeightsError
            No shipped weights, or a file that is missing, damaged or of another system.
        """
        from timbrelab import pretrained

        if weights is None:
            if self.pretrained is None:
                raise pretrained.WeightsError(
                    f"system {self.name!r} ships no weights; train it with `timbrelab train "
                    f"{self.name}` and pass --weights RUN/weights.pt"
                )
            return pretrained.load(self.pretrained, device)
        model = pretrained.load_weights(weights, device)
        if model.name != self.name:
            raise pretrained.WeightsError(
                f"{weights}: holds a {model.name!r} model, not {self.name!r}"
            )
        return model

    @property
    def separates(self) -> bool:
        """Whether :meth:`infer` fills ``sources`` and ``stems``."""
        return "separate" in self.tasks

    @property
    def separates_notes(self) -> bool:
        """Whether :meth:`infer` gives every note the source that plays it."""
        return "separate_notes" in self.tasks

    @property
    def reconstructs(self) -> bool:
        """Whether :meth:`infer` fills ``reconstruction`` (and possibly ``renderings``)."""
        return "reconstruct" in self.tasks
