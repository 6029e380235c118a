"""Timbre-Trap's U-Net: shapes and parameter counts of every variant, the switch, learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from timbrelab.decode.salience import salience_to_pitch_roll
from timbrelab.losses.timbre_trap import timbre_trap_loss
from timbrelab.models import count_parameters
from timbrelab.models.timbre_trap import TimbreTrap, TimbreTrapConfig, normalised_db

#: 4 kHz, 6 octaves at 12 bins per octave: 74 bins (72 bands, low- and high-pass), 250 frames/s.
TINY = dict(sample_rate=4000, n_octaves=6, bins_per_octave=12, hop_length=16,
            base_channels=2, latent_size=8)  # fmt: skip
#: Parameter counts pinned: a change to the architecture must change this table on purpose.
VARIANTS = [
    ({}, 2, 27494),
    ({"skip_connections": True}, 2, 27499),  # + one learnable weight per level (5)
    ({"film": True}, 2, 27462),  # latent channel gone (-64), gamma and beta (+32)
    ({"magnitude": True, "consistency_weight": 0.0}, 1, 27457),
]


@pytest.mark.parametrize(("variant", "channels", "n_parameters"), VARIANTS)
def test_output_shapes_and_parameter_count(variant, channels, n_parameters):
    model = TimbreTrap(TimbreTrapConfig(**TINY, **variant))
    assert count_parameters(model) == n_parameters
    out = model(torch.randn(2, 2000) * 0.1)  # 0.5 s: 125 frames
    assert out["features"].shape == out["reconstruction"].shape == (2, channels, 74, 125)
    assert out["transcription"].shape == (2, channels, 74, 125)
    assert out["salience"].shape == (2, 74, 125)
    assert out["latents"].shape == (2, 8, 125)
    salience = out["salience"].detach()
    assert 0.0 <= float(salience.min()) and float(salience.max()) <= 1.0


def test_the_paper_model():
    """Section 3.2 at its defaults: 542 CQT bins, 8 -> 128 channels, a 128-d latent."""
    model = TimbreTrap()
    assert model.cqt.n_bins == 542 and model.config.latent_size == 128
    assert model.encoder[-1].down.out_channels == 128
    assert count_parameters(model) == 1_468_466


def test_the_switch_gives_two_outputs_from_the_same_weights():
    torch.manual_seed(0)
    for variant in ({}, {"film": True}):
        model = TimbreTrap(TimbreTrapConfig(**TINY, **variant))
        with torch.no_grad():  # FiLM starts as the identity: make the two tasks differ
            if model.film is not None:
                model.film.gamma[1] += 0.5
            latents, levels = model.encode(model.features(torch.randn(1, 2000) * 0.1))
            rebuilt = model.decode(latents, levels, transcribe=False)
            transcribed = model.decode(latents, levels, transcribe=True)
        assert not torch.allclose(rebuilt, transcribed)
        out = model(torch.zeros(1, 2000))
        assert set(out) >= {"reconstruction", "transcription"}


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="consistency"):
        TimbreTrapConfig(magnitude=True)
    with pytest.raises(ValueError, match="too few"):
        TimbreTrap(TimbreTrapConfig(**{**TINY, "n_octaves": 1}))
    with pytest.raises(ValueError, match=r"\(B, N\)"):
        TimbreTrap(TimbreTrapConfig(**TINY))(torch.zeros(2000))


def test_normalised_db_maps_the_peak_to_one_and_the_floor_to_zero():
    x = torch.tensor([[[1.0, 0.1, 1e-6]]])
    assert torch.allclose(normalised_db(x), torch.tensor([[[1.0, 0.75, 0.0]]]))


def test_tiny_overfit_learns_to_transcribe_and_reconstruct():
    """Two steady tones: the model learns to put salience peaks on their bins only."""
    torch.manual_seed(0)
    model = TimbreTrap(TimbreTrapConfig(**TINY))
    bins = [30, 40]  # 10 semitones apart
    t = torch.arange(2000) / 4000
    audio = sum(0.3 * torch.sin(2 * np.pi * float(model.cqt.frequencies[b]) * t) for b in bins)
    target = torch.zeros(1, 74, 125)
    target[:, bins] = 1.0
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(80):
        loss, parts = timbre_trap_loss(model, model(audio[None]), target)
        first = first or parts
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        salience = model(audio[None])["salience"][0].numpy()
    keys = salience_to_pitch_roll(salience, model.cqt.frequencies) > 0
    wanted = salience_to_pitch_roll(target[0].numpy(), model.cqt.frequencies) > 0
    core = slice(10, -10)  # the ends of a clip see the CQT's circular edges
    recall = (keys & wanted)[:, core].sum() / wanted[:, core].sum()
    false_per_frame = (keys & ~wanted)[:, core].sum() / keys[:, core].shape[1]
    assert recall > 0.95 and false_per_frame < 0.2
    assert parts["transcription"] < 0.1 * first["transcription"]
    assert parts["reconstruction"] < 0.9 * first["reconstruction"]
