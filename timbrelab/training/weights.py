"""Trained weights as files: what rebuilds the model, checksummed, and a model card beside them.

Chapter: book/02_focal_loss_amt.md
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

from torch import nn

from timbrelab.io import atomic_output, save_checked, sha256_file
from timbrelab.pretrained import read_weights


def save_weights(model: nn.Module, path: str | os.PathLike, name: str | None = None) -> str:
    """Save a model's weights with what rebuilds it; returns the file's SHA-256.

    The file holds ``{"model": name, "config": asdict(model.config), "state_dict": ...}``
    (CPU tensors, plain types), so :func:`timbrelab.pretrained.load_weights` rebuilds the
    architecture with ``timbrelab.systems.get(name).build_model(**config)`` and loads it with
    ``torch.load(weights_only=True)``. Written atomically, with a SHA-256 inside that
    loading verifies (:func:`timbrelab.io.save_checked`).

    Parameters
    ----------
    model : nn.Module
        A model built by a system (it has ``.name`` and a dataclass ``.config``).
    path : str or PathLike
    name : str, optional
        Registry name, default ``model.name``.

    Chapter: book/02_focal_loss_amt.md
    """
    name = name or getattr(model, "name", None)
    config = getattr(model, "config", None)
    if name is None or not dataclasses.is_dataclass(config):
        raise ValueError(
            "save_weights: the model needs .name and a dataclass .config "
            "(build it with timbrelab.models.build_model) or pass name="
        )
    payload = {
        "model": name,
        "config": asdict(config),
        "state_dict": {key: value.detach().cpu() for key, value in model.state_dict().items()},
    }
    save_checked(payload, path)
    return sha256_file(path)


def write_model_card(
    path: str | os.PathLike,
    weights: str | os.PathLike,
    *,
    title: str,
    data: str,
    training: Mapping[str, object],
    scores: Mapping[str, object] | None = None,
    notes: str = "",
) -> None:
    """Write a Markdown model card next to shipped weights.

    It records what a user needs to trust the weights: the model and its config (read from
    the weights file), the training data, the training settings, measured scores and the
    file's SHA-256.

    Parameters
    ----------
    path : str or PathLike
        The card, e.g. ``timbrelab/pretrained/amt.md``.
    weights : str or PathLike
        The weights file written by :func:`save_weights`.
    title, data : str
        Heading; description of the training data.
    training : mapping
        Tier, steps, batch size, time, hardware, ... as ``name: value`` lines.
    scores : mapping, optional
        Evaluation results, ``name: value``.
    notes : str
        Free text: limitations, how to reproduce.

    Chapter: book/02_focal_loss_amt.md
    """
    payload = read_weights(weights)
    # Buffers (BatchNorm statistics and counters) are not parameters.
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    n_params = sum(t.numel() for k, t in payload["state_dict"].items() if not k.endswith(buffers))
    lines = [
        f"# {title}",
        "",
        f"- weights: `{Path(weights).name}` (sha256 `{sha256_file(weights)}`)",
        f"- model: `{payload['model']}`, {n_params} parameters",
        f"- config: `{json.dumps(payload['config'])}`",
        "",
        "## Training data",
        "",
        data,
        "",
        "## Training",
        "",
        *(f"- {key}: {value}" for key, value in training.items()),
    ]
    if scores:
        lines += ["", "## Scores", "", *(f"- {key}: {value}" for key, value in scores.items())]
    if notes:
        lines += ["", "## Notes", "", notes]
    with atomic_output(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
