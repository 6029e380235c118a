from __future__ import annotations

import dataclasses

import pytest
import torch

from timbrelab.models import (
    MODEL_NAMES,
    AMTConfig,
    BasicAMT,
    BasicPitch,
    OnsetsAndFrames,
    build_model,
    count_parameters,
)

torch.set_num_threads(1)

# Regression: exact trainable-parameter counts. Changing an architecture must change these
# on purpose. amt_bn is Li & Zhu's published count (18 978): the "amt" front end differs only
# by timbrelab's EnergyNorm, whose affine map is per harmonic (16 parameters, not 2).
# basic_pitch is the published Basic Pitch count (16 782).
PARAMETER_COUNTS = {
    "amt": 18_992,
    "amt_bn": 18_978,
    "amt_conv39": 24_368,
    "amt_nolog": 18_992,
    "basic_pitch": 16_782,
    "onsets_frames": 215_322,
}


@pytest.fixture(scope="module")
def audio() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return 0.1 * torch.randn(2, 11_025, generator=gen)  # 0.5 s at 22 050 Hz


def test_model_names() -> None:
    assert MODEL_NAMES == tuple(PARAMETER_COUNTS)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_parameter_count_is_pinned(name: str) -> None:
    assert count_parameters(build_model(name)) == PARAMETER_COUNTS[name]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_output_shapes_and_gradients(name: str, audio: torch.Tensor) -> None:
    torch.manual_seed(0)
    model = build_model(name)
    out = model(audio)
    expected = {"frame", "onset", "contour"} if name == "basic_pitch" else {"frame", "onset"}
    assert set(out) == expected
    n_frames = 1 + audio.shape[1] // 256  # 44
    assert out["frame"].shape == out["onset"].shape == (2, 88, n_frames)
    if "contour" in out:
        assert out["contour"].shape == (2, 264, n_frames)
    assert all(torch.isfinite(v).all() for v in out.values())
    sum(v.mean() for v in out.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing, f"{name}: no gradient reaches {missing}"


@pytest.mark.parametrize("n_samples", [256 * 20, 256 * 20 + 255, 9_000])
def test_frame_count_follows_the_hop(n_samples: int) -> None:
    out = build_model("amt")(torch.zeros(1, n_samples))
    assert out["frame"].shape[-1] == 1 + n_samples // 256


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_features_matches_forward_and_batch_independence(
    name: str, audio: torch.Tensor
) -> None:
    model = build_model(name).eval()
    with torch.no_grad():
        direct = model(audio)
        hcqt = model.frontend.hcqt(audio)
        assert hcqt.shape[:3] == (2, len(model.config.harmonics), 264)
        via_features = model.forward_features(hcqt)
        alone = model(audio[1:])
    for key in direct:
        torch.testing.assert_close(via_features[key], direct[key])
        # In eval mode an item's output does not depend on the rest of the batch.
        torch.testing.assert_close(alone[key][0], direct[key][1], atol=1e-4, rtol=1e-4)


def test_build_model_presets_and_overrides() -> None:
    assert isinstance(build_model("amt"), BasicAMT)
    assert isinstance(build_model("basic_pitch"), BasicPitch)
    assert isinstance(build_model("onsets_frames"), OnsetsAndFrames)
    assert build_model("amt_bn").config.norm == "batch"
    assert build_model("amt_conv39").config.context == "conv39"
    assert build_model("amt_nolog").config.log is False
    wide = build_model("amt", neck_channels=32)
    assert wide.config == AMTConfig(neck_channels=32)
    assert wide.name == "amt"
    assert count_parameters(wide) > PARAMETER_COUNTS["amt"]


def test_config_round_trip_rebuilds_the_same_model() -> None:
    model = build_model("amt_bn")
    saved = dataclasses.asdict(model.config)
    saved["harmonics"] = list(saved["harmonics"])  # as after a JSON round trip
    rebuilt = build_model("amt", **saved)
    assert rebuilt.config == model.config
    rebuilt.load_state_dict(model.state_dict())


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: build_model("crepe"), "unknown model"),
        (lambda: build_model("amt", depth=3), "unknown config field"),
        (lambda: build_model("amt", context="conv7"), "context"),
        (lambda: build_model("amt_bn", log=False), "log=False"),
        (lambda: build_model("amt", neck_channels=0), "neck_channels"),
        (lambda: build_model("basic_pitch", prior=1.5), "prior"),
        (lambda: build_model("onsets_frames", fc_dropout=1.0), "fc_dropout"),
    ],
)
def test_build_model_errors(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_inputs_with_the_wrong_shape_are_rejected() -> None:
    model = build_model("amt")
    with pytest.raises(ValueError, match=r"\(B, N\)"):
        model(torch.zeros(2, 1, 4096))
    with pytest.raises(ValueError, match="forward_features"):
        model.forward_features(torch.zeros(1, 1, 264, 10))


def test_count_parameters_can_include_frozen() -> None:
    model = build_model("amt")
    model.frontend.requires_grad_(False)
    frozen = count_parameters(model)
    assert frozen == PARAMETER_COUNTS["amt"] - 16
    assert count_parameters(model, trainable_only=False) == PARAMETER_COUNTS["amt"]
