from __future__ import annotations

import json

import pytest
import torch

from timbrelab import pretrained
from timbrelab.io import load_checked, save_checked
from timbrelab.models import build_model
from timbrelab.pretrained import WeightsError, available, load, load_weights, register
from timbrelab.training import save_weights, write_model_card

TINY = dict(early_channels=2, neck_channels=2, onset_channels=1)


@pytest.fixture
def shipped(tmp_path):
    """A registry with one tiny, randomly initialised model: (registry path, model)."""
    torch.manual_seed(0)
    model = build_model("amt", **TINY)
    with torch.no_grad():
        model.frontend.norm.bias.add_(0.5)  # differs from a fresh model's init
    sha = save_weights(model, tmp_path / "tiny.pt")
    entry = register("tiny", tmp_path / "tiny.pt", registry=tmp_path / "registry.json")
    assert entry["sha256"] == sha and entry["model"] == "amt"
    return tmp_path / "registry.json", model


def outputs(model):
    audio = torch.linspace(-0.5, 0.5, 4000)[None]
    with torch.no_grad():
        return model.eval()(audio)


def test_load_by_name_gives_the_saved_model(shipped):
    registry, model = shipped
    assert available(registry) == ["tiny"]
    loaded = load("tiny", registry=registry)
    assert not loaded.training
    assert loaded.config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])
    torch.testing.assert_close(outputs(loaded)["frame"], outputs(model)["frame"])
    # the registry is plain JSON with the config overrides
    entry = json.loads(registry.read_text())["tiny"]
    assert entry["config"]["neck_channels"] == 2


def test_load_weights_file_directly(shipped):
    registry, model = shipped
    loaded = load_weights(registry.parent / "tiny.pt")
    assert loaded.name == "amt" and loaded.config == model.config


def test_unknown_name_lists_what_exists(shipped, tmp_path):
    registry, _ = shipped
    with pytest.raises(WeightsError, match=r"'nope' \(available: tiny\)"):
        load("nope", registry=registry)
    with pytest.raises(WeightsError, match="none are shipped yet"):
        load("amt", registry=tmp_path / "no-registry.json")
    assert available(tmp_path / "no-registry.json") == []


def test_missing_and_tampered_files_are_refused(shipped):
    registry, _ = shipped
    weights = registry.parent / "tiny.pt"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="checksum mismatch"):
        load("tiny", registry=registry)
    weights.unlink()
    with pytest.raises(WeightsError, match="tiny.pt: weights file for 'tiny' is missing"):
        load("tiny", registry=registry)


def test_bad_weights_files(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_weights(tmp_path / "none.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(WeightsError, match="text.pt: not a readable weights file"):
        load_weights(tmp_path / "text.pt")
    torch.save({"weight": torch.zeros(1)}, tmp_path / "bare.pt")
    with pytest.raises(WeightsError, match="bare.pt: not a weights file written by timbrelab"):
        load_weights(tmp_path / "bare.pt")
    save_checked({"weight": torch.zeros(1)}, tmp_path / "checked.pt")
    with pytest.raises(WeightsError, match="checked.pt: not a timbrelab weights file"):
        load_weights(tmp_path / "checked.pt")
    save_weights(build_model("amt", **TINY), tmp_path / "w.pt")
    payload = load_checked(tmp_path / "w.pt")
    payload["config"]["neck_channels"] = 3
    save_checked(payload, tmp_path / "mismatch.pt")
    with pytest.raises(WeightsError, match="do not fit model 'amt'"):
        load_weights(tmp_path / "mismatch.pt")


def test_registry_default_location_is_the_package():
    assert pretrained.REGISTRY.parent.name == "pretrained"
    assert isinstance(available(), list)


def test_model_card(shipped):
    registry, _ = shipped
    card = registry.parent / "tiny.md"
    write_model_card(
        card,
        registry.parent / "tiny.pt",
        title="tiny",
        data="nothing",
        training={"tier": "quick", "steps": 0},
        scores={"note F1": 0.0},
    )
    text = card.read_text()
    sha = json.loads(registry.read_text())["tiny"]["sha256"]
    assert sha in text and "- tier: quick" in text and "`amt`" in text and "note F1" in text


def test_ship_run_takes_weights_or_the_best_checkpoint(tmp_path):
    from timbrelab import systems
    from timbrelab.pretrained import ship_run

    registry = tmp_path / "shipped" / "registry.json"
    registry.parent.mkdir()
    tiny = dict(sample_rate=4000, n_octaves=6, bins_per_octave=12, hop_length=16,
                base_channels=2, latent_size=8)  # fmt: skip
    # a run stopped early: best.pt only (the quick tier keeps the best validation F1)
    stopped = systems.get("timbre_trap").recipe(
        "quick", model_config=tiny, steps=1, batch_size=1, eval_every=1, progress=False
    )
    stopped.val_data = torch.utils.data.Subset(stopped.val_data, [0])
    stopped.trainer(tmp_path / "stopped").fit()
    assert not (tmp_path / "stopped" / "weights.pt").exists()
    target = ship_run("timbre_trap", tmp_path / "stopped", tiny, registry)
    assert target == registry.with_name("timbre_trap.pt")
    shipped = load("timbre_trap", registry=registry)
    pairs = zip(shipped.state_dict().values(), stopped.model.state_dict().values(), strict=True)
    for a, b in pairs:
        assert torch.equal(a, b)
    # a finished run: its weights.pt, whatever model_config says
    finished = tmp_path / "finished"
    finished.mkdir()
    model = build_model("amt", early_channels=2, neck_channels=2, onset_channels=1)
    save_weights(model, finished / "weights.pt")
    ship_run("amt", finished, registry=registry)
    assert load("amt", registry=registry).config.neck_channels == 2
    assert available(registry) == ["amt", "timbre_trap"]
