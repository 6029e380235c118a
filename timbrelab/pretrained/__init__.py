"""Shipped weights: load a trained transcription model by name, checked against its SHA-256.

``registry.json`` (next to this file) maps a name to its weights file, checksum, model name
and config overrides; each weights file has a model card (``<name>.md``) saying what it was
trained on, for how long, and how well it scores. Files are loaded with
``torch.load(weights_only=True)``: a weights file can hold tensors and plain values, never code.

Chapter: book/02_focal_loss_amt.md
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from timbrelab.io import ChecksumError, atomic_output, load_checked, sha256_file

#: The registry of shipped weights.
REGISTRY = Path(__file__).with_name("registry.json")


class WeightsError(ValueError):
    """Weights that cannot be loaded; the message names the file or name and the problem.

    Chapter: book/02_focal_loss_amt.md
    """


def _read_registry(registry: str | os.PathLike | None) -> tuple[Path, dict]:
    path = Path(registry) if registry is not None else REGISTRY
    if not path.exists():
        return path, {}  # nothing shipped yet
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise WeightsError(f"{path}: cannot read the weights registry ({err})") from err
    if not isinstance(entries, dict):
        raise WeightsError(f"{path}: the weights registry must be a JSON object")
    return path, entries


def available(registry: str | os.PathLike | None = None) -> list[str]:
    """Names of the registered weights (empty when none are shipped).

    Chapter: book/02_focal_loss_amt.md
    """
    return sorted(_read_registry(registry)[1])


def read_weights(path: str | os.PathLike, verified: bool = False) -> dict:
    """The payload of a :func:`timbrelab.training.save_weights` file: ``model``, ``config``,
    ``state_dict``, after checking the SHA-256 written inside it.

    Parameters
    ----------
    path : str or PathLike
    verified : bool
        The caller has already checked the whole file against a known SHA-256 (shipped
        weights), so a file without an inner checksum is accepted too.

    Raises
    ------
    WeightsError
        Missing, empty, unreadable, changed since written, or not such a file.

    Chapter: book/02_focal_loss_amt.md
    """
    path = Path(path)
    try:
        payload = load_checked(path, "weights file", legacy_ok=verified)
    except FileNotFoundError as err:
        raise WeightsError(f"{path}: weights file not found") from err
    except ChecksumError as err:
        raise WeightsError(str(err)) from err
    if not isinstance(payload, dict) or not {"model", "config", "state_dict"} <= set(payload):
        raise WeightsError(
            f"{path}: not a timbrelab weights file (expected the keys model, config and "
            "state_dict written by timbrelab.training.save_weights)"
        )
    return payload


def _build(model_name: str, config: dict, state_dict: dict, path: Path, device) -> nn.Module:
    from timbrelab import systems

    try:
        model = systems.get(model_name).build_model(**config)
        model.load_state_dict(state_dict)
    except (ValueError, RuntimeError) as err:
        raise WeightsError(f"{path}: weights do not fit model {model_name!r} ({err})") from err
    return model.to(device).eval()


def load_weights(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model from a weights file written by :func:`timbrelab.training.save_weights`.

    Parameters
    ----------
    path : str or PathLike
    device : str or torch.device

    Returns
    -------
    nn.Module
        In eval mode on ``device``.

    Raises
    ------
    WeightsError
        Missing or unreadable file, or weights that do not fit the named model.

    Chapter: book/02_focal_loss_amt.md
    """
    path = Path(path)
    payload = read_weights(path)
    return _build(payload["model"], payload["config"], payload["state_dict"], path, device)


def load(
    name: str = "amt",
    device: str | torch.device = "cpu",
    registry: str | os.PathLike | None = None,
) -> nn.Module:
    """Load shipped weights by name, after checking the file's SHA-256.

    Parameters
    ----------
    name : str
        A name from :func:`available`.
    device : str or torch.device
    registry : str or PathLike, optional
        Registry file (default: the package's ``registry.json``); entries' files are relative
        to its folder.

    Returns
    -------
    nn.Module
        The model (``systems.get(entry["model"]).build_model(**entry["config"])``) in eval mode.

    Raises
    ------
    WeightsError
        Unknown name (the message lists what is available), missing file, checksum mismatch,
        or weights that do not fit the model.

    Chapter: book/02_focal_loss_amt.md
    """
    registry_path, entries = _read_registry(registry)
    if name not in entries:
        shipped = ", ".join(sorted(entries)) or "none are shipped yet"
        raise WeightsError(
            f"no pretrained weights named {name!r} (available: {shipped}); "
            "train a model with `timbrelab train` and pass its weights file"
        )
    entry = entries[name]
    path = registry_path.parent / entry["file"]
    if not path.is_file():
        raise WeightsError(f"{path}: weights file for {name!r} is missing")
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise WeightsError(
            f"{path}: checksum mismatch (expected {entry['sha256']}, got {digest}); "
            "the file is corrupt or was replaced"
        )
    payload = read_weights(path, verified=True)
    return _build(entry["model"], entry.get("config", {}), payload["state_dict"], path, device)


def register(
    name: str, weights: str | os.PathLike, registry: str | os.PathLike | None = None
) -> dict:
    """Add (or replace) a registry entry for a weights file in the registry's folder.

    Model name and config are read from the file; the checksum is computed. The registry is
    rewritten atomically with sorted keys, so it diffs cleanly.

    Returns
    -------
    dict
        The new entry.

    Chapter: book/02_focal_loss_amt.md
    """
    registry_path, entries = _read_registry(registry)
    weights = Path(weights)
    if weights.resolve().parent != registry_path.resolve().parent:
        raise WeightsError(f"{weights}: must be in the registry's folder {registry_path.parent}")
    payload = read_weights(weights)
    entry = {
        "file": weights.name,
        "sha256": sha256_file(weights),
        "model": payload["model"],
        "config": payload["config"],
    }
    entries[name] = entry
    with atomic_output(registry_path) as tmp:
        tmp.write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return entry


def ship_run(
    system_name: str,
    run: str | os.PathLike,
    model_config: dict | None = None,
    registry: str | os.PathLike | None = None,
) -> Path:
    """Ship a training run's weights as ``<registry folder>/<system_name>.pt`` and register them.

    The run's ``weights.pt`` (written when ``timbrelab train`` finishes) is used when present;
    otherwise its ``best.pt``, the best validation checkpoint of a run stopped early, whose
    architecture is ``system.build_model(**model_config)``.

    Returns
    -------
    Path
        The shipped weights file.

    Chapter: book/02_focal_loss_amt.md
    """
    from timbrelab import systems
    from timbrelab.training import BEST, save_weights

    run = Path(run)
    system = systems.get(system_name)
    if (run / "weights.pt").is_file():
        model = load_weights(run / "weights.pt")
    else:
        model = system.build_model(**(model_config or {}))
        model.load_state_dict(load_checked(run / BEST, "checkpoint")["model"])
    target = _read_registry(registry)[0].with_name(f"{system_name}.pt")
    save_weights(model.eval(), target, name=system_name)
    register(system_name, target, registry)
    return target
