"""One training loop for every model in the book, and the recipes that feed it.

:class:`Trainer` runs any model whose loss is ``loss_fn(model, batch) -> (loss, parts)``: it
picks the device (CUDA, Apple MPS or CPU), uses mixed precision on CUDA, shows a progress bar,
logs losses and metrics to ``metrics.csv`` / ``metrics.json`` with a ``loss.png`` plot, and
writes atomic checkpoints that a later run resumes from *exactly*: same batches, same random
numbers, same weights as if it had never stopped.

:func:`recipe` packages what a chapter trains: the synthetic data, the model, its loss and a
:class:`TrainConfig`, at the ``quick`` tier (CPU, minutes) or the ``full`` tier (the paper's
scale, one GPU). The same code runs both.

Chapter: book/02_focal_loss_amt.md
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from timbrelab.io import ChecksumError, atomic_output, load_checked, save_checked, sha256_file
from timbrelab.pretrained import read_weights

#: ``loss_fn(model, batch) -> (scalar loss, {part name: float})``.
LossFn = Callable[[nn.Module, dict], tuple[torch.Tensor, Mapping[str, float]]]
#: ``metric_fn(model, batch) -> {metric name: float}``, averaged over the validation batches.
MetricFn = Callable[[nn.Module, dict], Mapping[str, float]]

CHECKPOINT = "checkpoint.pt"
#: Least seconds between redraws of ``loss.png`` during training (it is always drawn at the end).
PLOT_SECONDS = 60.0
#: Config fields that may change when resuming: they do not change what is computed.
_RESUMABLE_CHANGES = {"device", "num_workers", "eval_every", "checkpoint_every", "progress"}


class ResumeError(ValueError):
    """A checkpoint that cannot be resumed (unreadable, or saved with other settings).

    Chapter: book/02_focal_loss_amt.md
    """


@dataclass
class TrainConfig:
    """Everything that decides a training run.

    Attributes
    ----------
    steps
        Optimiser steps to take (ignored when ``epochs`` is set).
    epochs
        If set, train ``epochs`` passes over the data (``len(data) // batch_size`` steps each).
    batch_size, lr, weight_decay
        AdamW settings.
    lr_schedule
        ``"cosine"`` (decay to 0 over the run) or ``"constant"``; after ``warmup_steps`` of
        linear warm-up.
    warmup_steps
        Linear warm-up length.
    grad_clip
        Maximum gradient norm, or None for no clipping.
    seed
        Seeds Python, numpy and torch; with it the data order is fixed too.
    device
        ``"auto"`` (CUDA, else MPS, else CPU), or any torch device string.
    amp
        Mixed precision (float16 autocast + gradient scaling); used on CUDA only.
    num_workers
        DataLoader worker processes.
    eval_every
        Steps between evaluations/log rows; None: once per epoch. Always at the end.
    checkpoint_every
        Steps between checkpoints; None: only at the end.
    progress
        Show a tqdm progress bar.

    Chapter: book/02_focal_loss_amt.md
    """

    steps: int = 1000
    epochs: int | None = None
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_schedule: str = "cosine"
    warmup_steps: int = 0
    grad_clip: float | None = 1.0
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    num_workers: int = 0
    eval_every: int | None = None
    checkpoint_every: int | None = 500
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "epochs", "eval_every", "checkpoint_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"TrainConfig: {name} must be >= 1, got {value}")
        if self.lr_schedule not in ("cosine", "constant"):
            raise ValueError(
                f"TrainConfig: lr_schedule must be 'cosine' or 'constant', got {self.lr_schedule!r}"
            )
        if self.lr <= 0 or self.weight_decay < 0 or self.warmup_steps < 0 or self.num_workers < 0:
            raise ValueError(
                "TrainConfig: need lr > 0, weight_decay, warmup_steps, num_workers >= 0"
            )


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's global generator and torch (all devices).

    Chapter: book/02_focal_loss_amt.md
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA if available, else Apple MPS, else CPU; anything else as given.

    Chapter: book/02_focal_loss_amt.md
    """
    if str(device) != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _rng_state() -> dict:
    """All global random states, as plain types and tensors (loadable with weights_only)."""
    np_state = np.random.get_state(legacy=False)
    state = {
        "python": random.getstate(),
        "numpy": {
            **np_state,
            "state": {**np_state["state"], "key": np_state["state"]["key"].tolist()},
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np_state = state["numpy"]
    key = np.array(np_state["state"]["key"], dtype=np.uint32)
    np.random.set_state({**np_state, "state": {**np_state["state"], "key": key}})
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_device(batch, device: torch.device):
    """Move every tensor in a (nested) dict/list/tuple batch to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {key: _to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(_to_device(value, device) for value in batch)
    return batch


def _generator(*seeds: int) -> torch.Generator:
    """A torch generator seeded from several integers (e.g. run seed and epoch)."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence(seeds).generate_state(1)[0]))


class _Means:
    """Running means of named floats."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, values: Mapping[str, float]) -> None:
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)
        self.count += 1

    def means(self, prefix: str) -> dict[str, float]:
        return {f"{prefix}{key}": total / max(self.count, 1) for key, total in self.sums.items()}


class Trainer:
    """Train any model with ``loss_fn(model, batch) -> (loss, parts)``; resumable exactly.

    Parameters
    ----------
    model : nn.Module
    loss_fn : callable
        ``loss_fn(model, batch) -> (loss, parts)``: the scalar to minimise and a dict of
        floats logged beside it (e.g. ``{"frame": ..., "onset": ...}``).
    train_data : Dataset
        Map-style dataset; items collate with the default ``collate_fn`` (dicts of tensors).
        Exact resumption needs items that depend only on their index (as
        :class:`timbrelab.data.SyntheticMixtures`) or ``num_workers=0``.
    val_data : Dataset, optional
        Evaluated every ``config.eval_every`` steps: mean loss, parts and metrics.
    config : TrainConfig
    out_dir : str or PathLike
        Receives ``checkpoint.pt``, ``metrics.csv``, ``metrics.json`` and ``loss.png``.
    metric_fn : callable, optional
        ``metric_fn(model, batch) -> {name: float}`` on validation batches (model in eval
        mode, no gradients), averaged over batches.

    Attributes
    ----------
    history : list of dict
        One row per evaluation: ``step``, ``epoch``, ``lr``, ``seconds``, ``train_loss``,
        ``train_<part>``, and with ``val_data`` ``val_loss``, ``val_<part>``, metrics.

    Chapter: book/02_focal_loss_amt.md
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        train_data: Dataset,
        val_data: Dataset | None = None,
        config: TrainConfig | None = None,
        out_dir: str | os.PathLike = "runs/train",
        metric_fn: MetricFn | None = None,
    ) -> None:
        self.config = config or TrainConfig()
        self.model = model
        self.loss_fn = loss_fn
        self.train_data = train_data
        self.val_data = val_data
        self.metric_fn = metric_fn
        self.out_dir = Path(out_dir)
        self.device = resolve_device(self.config.device)
        self.amp = self.config.amp and self.device.type == "cuda"
        self.steps_per_epoch = len(train_data) // self.config.batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(
                f"Trainer: train_data has {len(train_data)} items, fewer than one batch of "
                f"{self.config.batch_size}"
            )
        cfg = self.config
        self.total_steps = cfg.epochs * self.steps_per_epoch if cfg.epochs else cfg.steps
        self.eval_every = cfg.eval_every or self.steps_per_epoch
        self._reset()

    def _reset(self) -> None:
        self.history: list[dict] = []
        self.step = 0
        self.seconds = 0.0
        self.train_means = _Means()  # of the steps since the last log row
        self._last_plot = time.perf_counter()

    # --- set-up ---------------------------------------------------------------------------

    def _lr_factor(self, step: int) -> float:
        cfg = self.config
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.lr_schedule == "constant":
            return 1.0
        progress = (step - cfg.warmup_steps) / max(self.total_steps - cfg.warmup_steps, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    def _build_optimisation(self) -> None:
        cfg = self.config
        self.model.to(self.device)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: self._lr_factor(step)
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)

    def _loader(
        self, data: Dataset, sampler: list[int], seed: tuple[int, ...], drop_last: bool
    ) -> DataLoader:
        # an explicit generator everywhere: a DataLoader without one draws its worker seed
        # from the global RNG, which would make the run depend on how often it evaluated
        return DataLoader(
            data,
            batch_size=self.config.batch_size,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=self.config.num_workers,
            generator=_generator(*seed),
            pin_memory=self.device.type == "cuda",
        )

    def _train_loader(self, epoch: int, skip_batches: int) -> DataLoader:
        # the order of epoch e is a pure function of (seed, e): a resumed run skips the
        # batches it already took without loading them
        order = torch.randperm(len(self.train_data), generator=_generator(self.config.seed, epoch))
        start = skip_batches * self.config.batch_size
        return self._loader(
            self.train_data, order[start:].tolist(), (self.config.seed, epoch), drop_last=True
        )

    # --- checkpoints ----------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path:
        """``out_dir / "checkpoint.pt"``."""
        return self.out_dir / CHECKPOINT

    def save_checkpoint(self) -> None:
        """Write the full training state atomically (a crash mid-write keeps the old one)."""
        config = getattr(self.model, "config", None)
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "seconds": self.seconds,
            "rng": _rng_state(),
            "config": asdict(self.config),
            "history": self.history,
            "train_means": {"sums": self.train_means.sums, "count": self.train_means.count},
            "model_name": getattr(self.model, "name", None),
            "model_config": asdict(config) if dataclasses.is_dataclass(config) else None,
        }
        save_checked(state, self.checkpoint_path)

    def _load_checkpoint(self) -> None:
        path = self.checkpoint_path
        try:
            state = load_checked(path, "checkpoint")
        except ChecksumError as err:
            raise ResumeError(f"{err}; delete it to start again") from err
        if not isinstance(state, dict) or not {"config", "model", "step"} <= set(state):
            raise ResumeError(f"{path}: not a training checkpoint (a weights file?)")
        saved = state["config"]
        changed = sorted(
            name
            for name, value in asdict(self.config).items()
            if name not in _RESUMABLE_CHANGES and saved.get(name) != value
        )
        if changed:
            diffs = ", ".join(
                f"{n}: {saved.get(n)!r} -> {getattr(self.config, n)!r}" for n in changed
            )
            raise ResumeError(
                f"{path}: cannot resume with a different training config ({diffs}); "
                "use the checkpoint's settings or a new out_dir"
            )
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as err:
            raise ResumeError(f"{path}: checkpoint does not fit this model ({err})") from err
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = state["step"]
        self.seconds = state["seconds"]
        self.history = list(state["history"])
        self.train_means.sums = dict(state["train_means"]["sums"])
        self.train_means.count = state["train_means"]["count"]
        _set_rng_state(state["rng"])

    # --- the loop -------------------------------------------------------------------------

    def _autocast(self) -> contextlib.AbstractContextManager:
        """float16 autocast on CUDA with ``amp``; nothing otherwise."""
        if self.amp:
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def _train_step(self, batch) -> dict[str, float]:
        cfg = self.config
        self.model.train()
        with self._autocast():
            loss, parts = self.loss_fn(self.model, batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"Trainer: loss is {float(loss)} at step {self.step + 1}; try a lower lr "
                "or a smaller grad_clip"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if cfg.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return {"loss": float(loss.detach()), **parts}

    def evaluate(self) -> dict[str, float]:
        """Mean loss, loss parts and metrics over ``val_data`` (``{}`` without it).

        Chapter: book/02_focal_loss_amt.md
        """
        if self.val_data is None:
            return {}
        losses, metrics = _Means(), _Means()
        self.model.eval()
        everything = list(range(len(self.val_data)))
        loader = self._loader(self.val_data, everything, (self.config.seed,), drop_last=False)
        with torch.inference_mode():
            for batch in loader:
                batch = _to_device(batch, self.device)
                with self._autocast():
                    loss, parts = self.loss_fn(self.model, batch)
                losses.add({"loss": float(loss), **parts})
                if self.metric_fn is not None:
                    metrics.add(self.metric_fn(self.model, batch))
        return {**losses.means("val_"), **metrics.means("")}

    def fit(self, resume: bool = False) -> list[dict]:
        """Train to ``total_steps``; with ``resume``, continue from ``out_dir/checkpoint.pt``.

        Resuming when no checkpoint exists starts from scratch, so the same command can be
        rerun after an interruption. Without ``resume`` an existing run in ``out_dir`` is
        overwritten. A resumed run ends with the same weights as an uninterrupted one
        (bit for bit on CPU).

        Returns
        -------
        list of dict
            :attr:`history`.

        Chapter: book/02_focal_loss_amt.md
        """
        from tqdm.auto import tqdm

        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._build_optimisation()
        self._reset()
        if resume and self.checkpoint_path.exists():
            self._load_checkpoint()
        else:
            seed_everything(self.config.seed)
        bar = tqdm(
            total=self.total_steps,
            initial=self.step,
            disable=not self.config.progress,
            desc=f"train {getattr(self.model, 'name', type(self.model).__name__)}",
            dynamic_ncols=True,
        )
        started = time.perf_counter()
        while self.step < self.total_steps:
            epoch, skip = divmod(self.step, self.steps_per_epoch)
            for batch in self._train_loader(epoch, skip):
                values = self._train_step(_to_device(batch, self.device))
                self.train_means.add(values)
                self.step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{values['loss']:.4f}")
                done = self.step == self.total_steps
                if done or self.step % self.eval_every == 0:
                    self.seconds += time.perf_counter() - started
                    self._log()
                    started = time.perf_counter()
                every = self.config.checkpoint_every
                if done or (every and self.step % every == 0):
                    self.save_checkpoint()
                if done:
                    break
        bar.close()
        plot_losses(self.history, self.out_dir / "loss.png")
        return self.history

    def _log(self) -> None:
        row = {
            "step": self.step,
            "epoch": self.step / self.steps_per_epoch,
            "lr": self.scheduler.get_last_lr()[0],
            "seconds": self.seconds,
            **self.train_means.means("train_"),
            **self.evaluate(),
        }
        self.train_means = _Means()
        self.history.append(row)
        write_history(self.history, self.out_dir)
        # a figure costs ~0.3 s: redraw it during training at most every PLOT_SECONDS
        if time.perf_counter() - self._last_plot > PLOT_SECONDS:
            plot_losses(self.history, self.out_dir / "loss.png")
            self._last_plot = time.perf_counter()


def write_history(history: list[dict], out_dir: str | os.PathLike) -> None:
    """Write training rows to ``metrics.csv`` and ``metrics.json``.

    Chapter: book/02_focal_loss_amt.md
    """
    out_dir = Path(out_dir)
    columns = list(dict.fromkeys(key for row in history for key in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    with atomic_output(out_dir / "metrics.csv") as tmp:
        tmp.write_text(text.getvalue(), encoding="utf-8")
    with atomic_output(out_dir / "metrics.json") as tmp:
        tmp.write_text(json.dumps(history, indent=1), encoding="utf-8")


def plot_losses(history: list[dict], path: str | os.PathLike) -> None:
    """Plot ``train_loss`` and ``val_loss`` against ``step`` into an image file.

    Uses matplotlib's Agg canvas directly, so it never touches the notebook's backend.

    Chapter: book/02_focal_loss_amt.md
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for key in ("train_loss", "val_loss"):
        points = [(row["step"], row[key]) for row in history if key in row]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", markersize=3, label=key)
    ax.set(xlabel="step", ylabel="loss", yscale="log")
    ax.grid(alpha=0.3)
    ax.legend()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100)


# --- weights and model cards ---------------------------------------------------------------


def save_weights(model: nn.Module, path: str | os.PathLike, name: str | None = None) -> str:
    """Save a model's weights with what rebuilds it; returns the file's SHA-256.

    The file holds ``{"model": name, "config": asdict(model.config), "state_dict": ...}``
    (CPU tensors, plain types), so :func:`timbrelab.pretrained.load_weights` rebuilds the
    architecture with ``build_model(name, **config)`` and loads it with
    ``torch.load(weights_only=True)``. Written atomically, with a SHA-256 inside that
    loading verifies (:func:`timbrelab.io.save_checked`).

    Parameters
    ----------
    model : nn.Module
        A model from :func:`timbrelab.models.build_model` (it has ``.name`` and ``.config``).
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


# --- recipes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tier:
    """Data scale and training settings of one tier.

    Chapter: book/02_focal_loss_amt.md
    """

    train_items: int
    val_items: int
    seconds: float
    instruments: tuple[int, int]
    config: dict = field(default_factory=dict)


#: ``quick``: CPU, minutes (what the book and CI run). ``full``: the paper's scale on one GPU,
#: about 24 h of synthetic audio like Li & Zhu's "Our:AMT" (8640 ten-second pieces).
TIERS: dict[str, Tier] = {
    "quick": Tier(
        train_items=128,
        val_items=8,
        seconds=4.0,
        instruments=(1, 4),
        config=dict(steps=120, batch_size=4, lr=3e-3, eval_every=40, checkpoint_every=40),
    ),
    "full": Tier(
        train_items=8640,
        val_items=256,
        seconds=10.0,
        instruments=(1, 4),
        config=dict(
            steps=20_000,
            batch_size=16,
            lr=1e-3,
            warmup_steps=500,
            num_workers=8,
            eval_every=1000,
            checkpoint_every=1000,
        ),
    ),
}

#: The loss each model was published with (Table 2 of Li & Zhu: Ours and its ablations use
#: focal loss, BP Basic Pitch's, OF plain BCE); ``recipe(..., loss=)`` swaps it ("BPfl", ...).
DEFAULT_LOSS = {"basic_pitch": "basic_pitch", "onsets_frames": "bce"}


def transcription_loss_fn(kind: str = "focal", **params: float) -> LossFn:
    """``loss_fn(model, batch)`` for :class:`Trainer`: the model on ``batch["audio"]`` scored
    by :func:`timbrelab.losses.transcription_loss`.

    Chapter: book/02_focal_loss_amt.md
    """
    from timbrelab.losses import transcription_loss

    def loss_fn(model: nn.Module, batch: dict) -> tuple[torch.Tensor, Mapping[str, float]]:
        return transcription_loss(model(batch["audio"]), batch, kind, **params)

    return loss_fn


def transcription_metrics(
    model: nn.Module, batch: dict, onset_threshold: float = 0.5, frame_threshold: float = 0.3
) -> dict[str, float]:
    """``metric_fn`` for :class:`Trainer`: frame F1 and note F1 of a validation batch.

    Frame F1 counts frames (over the whole batch) whose probability is at least
    ``frame_threshold`` against the label roll; note F1 decodes each item with
    :func:`timbrelab.decode.posteriorgram_to_notes` and scores it against the notes of its
    labels (onset within 50 ms), averaged over items.

    Parameters
    ----------
    model : nn.Module
    batch : dict
        ``"audio"`` ``(B, N)``, ``"frame"`` and ``"onset"`` label rolls ``(B, 88, T)``.

    Returns
    -------
    dict
        ``frame_f1``, ``note_f1``.

    Chapter: book/02_focal_loss_amt.md
    """
    from timbrelab.decode import onsets_frames_decode, posteriorgram_to_notes
    from timbrelab.metrics import note_scores

    outputs = model(batch["audio"])
    frame, onset = (torch.sigmoid(outputs[key].float()).cpu().numpy() for key in ("frame", "onset"))
    ref_frame, ref_onset = (batch[key].cpu().numpy() > 0.5 for key in ("frame", "onset"))
    active = frame >= frame_threshold
    hits = float((active & ref_frame).sum())
    frame_f1 = 2 * hits / max(float(active.sum() + ref_frame.sum()), 1.0)
    note_f1 = np.mean(
        [
            note_scores(
                # binary labels decode exactly with the onset-and-frame rule
                onsets_frames_decode(ref_frame[i], ref_onset[i]),
                posteriorgram_to_notes(
                    frame[i],
                    onset[i],
                    onset_threshold=onset_threshold,
                    frame_threshold=frame_threshold,
                ),
            )["f1"]
            for i in range(len(frame))
        ]
    )
    return {"frame_f1": frame_f1, "note_f1": float(note_f1)}


@dataclass
class Recipe:
    """What :func:`recipe` returns; ``recipe(...).trainer(out_dir).fit()`` trains it.

    Chapter: book/02_focal_loss_amt.md
    """

    model: nn.Module
    loss_fn: LossFn
    train_data: Dataset
    val_data: Dataset
    config: TrainConfig
    metric_fn: MetricFn | None = None

    def trainer(self, out_dir: str | os.PathLike) -> Trainer:
        """A :class:`Trainer` for this recipe writing to ``out_dir``."""
        return Trainer(
            self.model,
            self.loss_fn,
            self.train_data,
            self.val_data,
            self.config,
            out_dir,
            self.metric_fn,
        )


def recipe(
    model_name: str = "amt",
    tier: str = "quick",
    seed: int = 0,
    loss: str | None = None,
    **config_overrides: object,
) -> Recipe:
    """Data, model, loss and config to train a transcription model at a tier.

    Training data are :class:`timbrelab.data.SyntheticMixtures`: random scores on 1 to 4
    instruments drawn from many General MIDI programs. Validation items use another seed,
    so they never repeat a training item.

    Parameters
    ----------
    model_name : str
        Any name of :func:`timbrelab.models.build_model` (``"amt"``, ``"amt_bn"``,
        ``"amt_conv39"``, ``"amt_nolog"``, ``"basic_pitch"``, ``"onsets_frames"``).
    tier : {"quick", "full"}
    seed : int
        Seeds the model's initialisation, the data and the training order.
    loss : {"focal", "basic_pitch", "bce"}, optional
        Loss kind; default the model's own (:data:`DEFAULT_LOSS`, else focal).
    **config_overrides
        :class:`TrainConfig` fields, e.g. ``steps=20``.

    Chapter: book/02_focal_loss_amt.md
    """
    from timbrelab.data import SyntheticMixtures
    from timbrelab.models import build_model

    if tier not in TIERS:
        raise ValueError(f"recipe: unknown tier {tier!r}; choose from {list(TIERS)}")
    spec = TIERS[tier]
    config = TrainConfig(**{**spec.config, "seed": seed, **config_overrides})
    seed_everything(seed)  # the model's initial weights
    model = build_model(model_name)

    def data(n_items: int, data_seed: int) -> Dataset:
        return SyntheticMixtures(
            n_items, seconds=spec.seconds, instruments=spec.instruments, seed=data_seed
        )

    return Recipe(
        model=model,
        loss_fn=transcription_loss_fn(loss or DEFAULT_LOSS.get(model_name, "focal")),
        train_data=data(spec.train_items, 2 * seed),
        val_data=data(spec.val_items, 2 * seed + 1),
        config=config,
        metric_fn=transcription_metrics,
    )
