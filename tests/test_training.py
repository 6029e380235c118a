from __future__ import annotations

import csv
import json

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from timbrelab.io import load_checked
from timbrelab.runtime import resolve_device
from timbrelab.training import BEST, LRSchedule, TrainConfig, Trainer, frozen_modules


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
    assert {"model", "optimizer", "schedule", "scaler", "rng", "config", "step"} <= set(state)
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


def test_frozen_modules_stay_in_eval_mode_and_out_of_the_optimiser(tmp_path):
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
    frozen = nn.Sequential(model[0], model[1])
    for p in frozen.parameters():
        p.requires_grad_(False)
    before = {k: v.clone() for k, v in frozen.state_dict().items()}
    seen_modes = []

    def loss_fn(model, batch):
        seen_modes.append((model[1].training, model[3].training))
        return mse(model, batch)

    trainer = Trainer(model, loss_fn, Noisy(), None, config(), tmp_path)
    trainer.fit()
    assert frozen_modules(model) == [model[0], model[1]]
    assert set(seen_modes) == {(False, True)}  # BatchNorm of the frozen part in eval mode
    for key, value in frozen.state_dict().items():
        assert torch.equal(value, before[key]), key  # weights and running statistics kept
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert optimised == {id(p) for p in model[3].parameters()}


def test_plateau_schedule_halves_after_patience_and_resumes():
    cfg = config(lr_schedule="plateau", monitor="mae", monitor_mode="min", warmup_steps=2,
                 plateau_patience=1, plateau_factor=0.5)  # fmt: skip
    schedule = LRSchedule(cfg, total_steps=100)
    assert [schedule.factor(s) for s in (0, 1, 2)] == [0.5, 1.0, 1.0]
    for value in (1.0, 0.9, 0.95, 0.92):  # better, worse twice: one halving
        schedule.observe(value)
    assert schedule.factor(50) == 0.5
    again = LRSchedule(cfg, total_steps=100)
    again.load_state_dict(schedule.state_dict())
    assert again.factor(50) == 0.5
    with pytest.raises(ValueError, match="needs a monitor"):
        config(lr_schedule="plateau")


def test_several_training_sets_per_step_and_the_best_weights_kept(tmp_path):
    seen = []

    def two_sets(model, batches):
        if model.training:
            seen.append(sorted(batches))
        loss, parts = mse(model, batches["labelled"])
        if "unlabelled" in batches:  # training steps; validation has labelled data only
            loss = loss + 0.0 * model(batches["unlabelled"]["x"]).mean()
        return loss, parts

    scores = iter([0.5, 0.9, 0.7])  # the second evaluation is the best

    def metric(model, batch):
        return {"score": next(scores)}

    sets = {"labelled": Noisy(), "unlabelled": Noisy()}
    cfg = config(monitor="score", eval_every=3, steps=9)
    val = torch.utils.data.Subset(Noisy(), range(2))
    trainer = Trainer(tiny_model(), two_sets, sets, val, cfg, tmp_path, metric)
    trainer.fit()
    assert len(seen) == 9 and all(keys == ["labelled", "unlabelled"] for keys in seen)
    best = load_checked(tmp_path / BEST)
    assert best["step"] == 6 and best["score"] == 0.9
    for key, value in best["model"].items():
        assert torch.equal(trainer.model.state_dict()[key], value), key  # restored at the end
