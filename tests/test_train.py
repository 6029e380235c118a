from __future__ import annotations

import csv
import json

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from timbrelab.io import load_checked
from timbrelab.models import build_model
from timbrelab.train import (
    TIERS,
    Recipe,
    TrainConfig,
    Trainer,
    recipe,
    resolve_device,
    transcription_loss_fn,
    transcription_metrics,
)


class Noisy(Dataset):
    """Items that are a pure function of their index, plus global-RNG noise (num_workers=0)."""

    def __len__(self) -> int:
        return 7  # 3 batches of 2 per epoch, one item dropped

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        x = torch.randn(4, generator=g)
        return {"x": x + 0.01 * torch.randn(4), "y": x.sum(0, keepdim=True)}


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.3), nn.ReLU(), nn.Linear(8, 1))


def mse(model, batch):
    err = model(batch["x"]) - batch["y"]
    return err.square().mean(), {"abs": float(err.detach().abs().mean())}


def config(**kw) -> TrainConfig:
    base = dict(steps=8, batch_size=2, lr=1e-2, eval_every=3, checkpoint_every=2)
    return TrainConfig(**{**base, "progress": False, **kw})


def train(out_dir, loss_fn=mse, resume=False, **kw):
    trainer = Trainer(tiny_model(), loss_fn, Noisy(), Noisy(), config(**kw), out_dir, metric_fn)
    return trainer, trainer.fit(resume=resume)


def metric_fn(model, batch):
    return {"mae": float((model(batch["x"]) - batch["y"]).abs().mean())}


def without_time(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def test_interrupted_and_resumed_run_equals_a_straight_run(tmp_path):
    straight, history = train(tmp_path / "a")

    calls = 0

    def crashes_in_step_5(model, batch):
        nonlocal calls
        calls += model.training  # count training steps, not validation batches
        if calls == 5:
            raise KeyboardInterrupt
        return mse(model, batch)

    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "b", loss_fn=crashes_in_step_5)
    assert load_checked(tmp_path / "b/checkpoint.pt")["step"] == 4
    resumed, resumed_history = train(tmp_path / "b", resume=True)

    assert resumed.step == straight.step == 8
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert without_time(resumed_history) == without_time(history)
    assert [row["step"] for row in history] == [3, 6, 8]


def test_different_seed_gives_different_weights(tmp_path):
    a, _ = train(tmp_path / "a")
    b, _ = train(tmp_path / "b", seed=1)
    assert not torch.equal(a.model[0].weight, b.model[0].weight)


def test_outputs_logs_plot_and_checkpoint(tmp_path):
    _, history = train(tmp_path)
    row = history[-1]
    assert {"step", "epoch", "lr", "train_loss", "train_abs", "val_loss", "val_abs", "mae"} <= set(
        row
    )
    assert row["epoch"] == pytest.approx(8 / 3)
    assert json.loads((tmp_path / "metrics.json").read_text()) == history
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [3, 6, 8]
    assert float(rows[-1]["val_loss"]) == pytest.approx(row["val_loss"])
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"
    state = load_checked(tmp_path / "checkpoint.pt")
    assert {"model", "optimizer", "scheduler", "scaler", "rng", "config", "step"} <= set(state)
    assert state["config"]["batch_size"] == 2
    # atomic writes leave no temporary files behind
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint.pt",
        "loss.png",
        "metrics.csv",
        "metrics.json",
    ]
    # cosine schedule: the learning rate has decayed
    assert history[-1]["lr"] < history[0]["lr"] < 1e-2


def test_training_reduces_the_loss(tmp_path):
    _, history = train(tmp_path, steps=60, eval_every=20, checkpoint_every=None, lr=3e-2)
    assert history[-1]["val_loss"] < 0.5 * history[0]["val_loss"]


def test_epochs_override_steps_and_resume_of_a_finished_run_does_nothing(tmp_path):
    trainer, _ = train(tmp_path, epochs=2, steps=999)
    assert trainer.step == 6
    again, history = train(tmp_path, epochs=2, steps=999, resume=True)
    assert again.step == 6 and len(history) == 2


def test_resume_refuses_a_changed_config(tmp_path):
    train(tmp_path)
    with pytest.raises(ValueError, match="lr"):
        train(tmp_path, lr=0.5, resume=True)
    train(tmp_path, checkpoint_every=4, resume=True)  # bookkeeping may change


def test_resume_without_checkpoint_starts_fresh(tmp_path):
    a, _ = train(tmp_path / "a")
    b, _ = train(tmp_path / "b", resume=True)
    assert torch.equal(a.model[0].weight, b.model[0].weight)


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="step")
    with pytest.raises(ValueError, match="fewer than one batch"):
        Trainer(tiny_model(), mse, Noisy(), config=config(batch_size=8), out_dir=tmp_path)

    def diverges(model, batch):
        return torch.tensor(float("nan")), {}

    with pytest.raises(FloatingPointError, match="step 1"):
        train(tmp_path, loss_fn=diverges)


def test_device_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else None
    assert resolve_device("auto").type in {expected, "mps", "cpu"}


def test_recipe_quick_tier_trains_a_transcription_model(tmp_path):
    r = recipe("amt", "quick", seed=3, steps=1, batch_size=1, eval_every=1)
    assert isinstance(r, Recipe)
    assert len(r.train_data) == TIERS["quick"].train_items
    item = r.train_data[0]
    assert item["audio"].shape == (round(TIERS["quick"].seconds * 22050),)
    # the tier's data and loss, on a tiny network and one validation item to keep this fast
    r.model = build_model("amt", early_channels=2, neck_channels=2, onset_channels=1)
    r.val_data = torch.utils.data.Subset(r.val_data, [0])
    history = r.trainer(tmp_path).fit()
    assert history[-1]["step"] == 1
    assert {"train_frame", "val_onset", "frame_f1", "note_f1"} <= set(history[-1])
    with pytest.raises(ValueError, match="tier"):
        recipe("amt", "huge")


def test_transcription_loss_fn_uses_the_given_kind():
    model = nn.Module()
    outputs = {"frame": torch.zeros(1, 88, 5), "onset": torch.zeros(1, 88, 5)}
    batch = {"audio": torch.zeros(1, 100), "frame": torch.ones(1, 88, 5), "onset": outputs["onset"]}
    model.forward = lambda audio: outputs
    focal, _ = transcription_loss_fn("focal")(model, batch)
    bce, parts = transcription_loss_fn("bce")(model, batch)
    assert set(parts) == {"frame", "onset"}
    assert float(bce) == pytest.approx(2 * torch.log(torch.tensor(2.0)).item())
    assert float(focal) != pytest.approx(float(bce))


def test_transcription_metrics_score_perfect_and_empty_outputs():
    frame = torch.zeros(2, 88, 100)
    frame[0, 40, 10:50] = frame[1, 30, 20:90] = frame[1, 35, 5:60] = 1.0
    onset = torch.zeros_like(frame)
    onset[0, 40, 10] = onset[1, 30, 20] = onset[1, 35, 5] = 1.0
    batch = {"audio": torch.zeros(2, 99 * 256), "frame": frame, "onset": onset}
    model = nn.Module()
    silent = torch.full_like(frame, -10.0)
    perfect = {"frame": 20 * frame - 10, "onset": 20 * onset - 10}
    for outputs, expected in [(perfect, 1.0), ({"frame": silent, "onset": silent}, 0.0)]:
        model.forward = lambda audio, outputs=outputs: outputs
        scores = transcription_metrics(model, batch)
        assert scores == pytest.approx({"frame_f1": expected, "note_f1": expected})
