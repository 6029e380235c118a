"""Tiny-overfit tests: each model must learn one short synthetic example almost perfectly.

A model that cannot fit half a second of three sine-tone notes has a bug (a dead head, a
misaligned key axis, a gradient that does not flow). Features are precomputed once with
``model.frontend.hcqt`` and fed to ``forward_features``, as training can do.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from timbrelab.constants import SAMPLE_RATE
from timbrelab.losses import transcription_loss
from timbrelab.models import build_model
from timbrelab.notes import Note, notes_to_rolls

torch.set_num_threads(1)

NOTES = [Note(0.05, 0.30, 60), Note(0.12, 0.42, 67), Note(0.25, 0.48, 64)]
SECONDS = 0.5
#: Basic Pitch's label smoothing (0.2) puts its loss floor at H(0.1) nats per head, 3 heads.
BASIC_PITCH_FLOOR = 3 * -(0.1 * math.log(0.1) + 0.9 * math.log(0.9))

# name -> (loss kind, Adam steps, config overrides)
CASES = {
    "amt": ("focal", 100, {}),
    "amt_bn": ("focal", 100, {}),
    "amt_conv39": ("focal", 100, {}),
    "amt_nolog": ("focal", 100, {}),
    "basic_pitch": ("basic_pitch", 100, {}),
    # Dropout (0.25 / 0.5 by default) only slows memorising a single example.
    "onsets_frames": ("bce", 150, {"conv_dropout": 0.0, "fc_dropout": 0.0}),
}


def _example() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Three decaying harmonic tones (5 partials) and their frame/onset rolls, T = 44."""
    t = np.arange(int(SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
    audio = np.zeros_like(t)
    for note in NOTES:
        f0 = 440.0 * 2 ** ((note.pitch - 69) / 12)
        envelope = np.exp(-3 * (t - note.onset)) * ((t >= note.onset) & (t < note.offset))
        for k in range(1, 6):
            audio += envelope * np.sin(2 * np.pi * k * f0 * t) / k
    audio = 0.5 * audio / np.abs(audio).max()
    n_frames = 1 + len(audio) // 256
    rolls = notes_to_rolls(NOTES, n_frames)
    batch = {key: torch.from_numpy(rolls[key])[None] for key in ("frame", "onset")}
    return torch.tensor(audio, dtype=torch.float32)[None], batch


def _frame_f1(logits: torch.Tensor, target: torch.Tensor) -> float:
    predicted, active = logits > 0, target > 0.5  # threshold: probability 0.5
    hits = (predicted & active).sum().item()
    return 2 * hits / (predicted.sum().item() + active.sum().item())


def _overfit(name: str) -> tuple[float, float, float]:
    kind, steps, overrides = CASES[name]
    torch.manual_seed(0)
    audio, batch = _example()
    model = build_model(name, **overrides)
    with torch.no_grad():
        features = model.frontend.hcqt(audio)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        loss, _ = transcription_loss(model.forward_features(features), batch, kind=kind)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()  # BatchNorm running statistics must have followed the training too
    with torch.no_grad():
        f1 = _frame_f1(model.forward_features(features)["frame"], batch["frame"])
    return losses[0], losses[-1], f1


def _check(name: str) -> None:
    first, last, f1 = _overfit(name)
    floor = BASIC_PITCH_FLOOR if CASES[name][0] == "basic_pitch" else 0.0
    assert (first - floor) / (last - floor) > 10, f"{name}: loss {first:.4f} -> {last:.4f}"
    assert f1 >= 0.9, f"{name}: frame F1 {f1:.3f} after overfitting one example"


def test_example_is_what_the_models_see() -> None:
    audio, batch = _example()
    assert audio.shape == (1, 11_025) and batch["frame"].shape == (1, 88, 44)
    assert batch["frame"].sum(dim=(0, 2)).nonzero().flatten().tolist() == [39, 43, 46]
    assert batch["onset"].sum().item() == 3


def test_amt_overfits_one_example() -> None:
    _check("amt")


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in CASES if n != "amt"])
def test_other_models_overfit_one_example(name: str) -> None:
    _check(name)
