"""Transcription models and their registry: ``build_model(name, **overrides)``.

Names: ``"amt"`` (Li & Zhu), its Table 2 ablations ``"amt_bn"`` (BatchNorm front end instead
of EnergyNorm), ``"amt_conv39"`` (Basic Pitch's dense 39-tap conv instead of the dilated
one), ``"amt_nolog"`` (EnergyNorm without log), ``"basic_pitch"`` and ``"onsets_frames"``.

Chapter: book/02_focal_loss_amt.md
"""

from __future__ import annotations

import dataclasses

from torch import nn

from timbrelab.models.amt import AMTConfig, BasicAMT
from timbrelab.models.basic_pitch import BasicPitch, BasicPitchConfig
from timbrelab.models.cerberus import Cerberus, CerberusConfig
from timbrelab.models.layers import Frontend, LogBatchNorm, TranscriptionModel
from timbrelab.models.onsets_frames import OnsetsAndFrames, OnsetsFramesConfig

# name -> (model class, config class, preset overrides)
_REGISTRY: dict[str, tuple[type[TranscriptionModel], type, dict]] = {
    "amt": (BasicAMT, AMTConfig, {}),
    "amt_bn": (BasicAMT, AMTConfig, {"norm": "batch"}),
    "amt_conv39": (BasicAMT, AMTConfig, {"context": "conv39"}),
    "amt_nolog": (BasicAMT, AMTConfig, {"log": False}),
    "basic_pitch": (BasicPitch, BasicPitchConfig, {}),
    "onsets_frames": (OnsetsAndFrames, OnsetsFramesConfig, {}),
}
#: Every name :func:`build_model` accepts.
MODEL_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def build_model(name: str, **overrides: object) -> TranscriptionModel:
    """Build a registered model; keyword arguments override fields of its config dataclass.

    Parameters
    ----------
    name
        One of :data:`MODEL_NAMES`.
    **overrides
        Config fields, e.g. ``build_model("amt", neck_channels=32)``. A saved
        ``dataclasses.asdict(model.config)`` rebuilds the same architecture.

    Returns
    -------
    TranscriptionModel
        With ``model.config`` and ``model.name`` set.

    Chapter: book/02_focal_loss_amt.md
    """
    if name not in _REGISTRY:
        raise ValueError(f"build_model: unknown model {name!r}; choose from {list(MODEL_NAMES)}")
    model_cls, config_cls, preset = _REGISTRY[name]
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = set(overrides) - fields
    if unknown:
        raise ValueError(
            f"build_model({name!r}): unknown config field(s) {sorted(unknown)}; "
            f"{config_cls.__name__} has {sorted(fields)}"
        )
    model = model_cls(config_cls(**{**preset, **overrides}))
    model.name = name
    return model


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters; BatchNorm running statistics are buffers, not counted.

    Chapter: book/02_focal_loss_amt.md
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


__all__ = [
    "MODEL_NAMES",
    "AMTConfig",
    "BasicAMT",
    "BasicPitch",
    "BasicPitchConfig",
    "Cerberus",
    "CerberusConfig",
    "Frontend",
    "LogBatchNorm",
    "OnsetsAndFrames",
    "OnsetsFramesConfig",
    "TranscriptionModel",
    "build_model",
    "count_parameters",
]
