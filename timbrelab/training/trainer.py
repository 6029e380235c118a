"""The training engine: one loop for every system in the book, from one CPU to several GPUs.

:class:`Trainer` runs any model whose loss is ``loss_fn(model, batch) -> (loss, parts)``. It
knows nothing about music: the system's recipe supplies the data, the loss, the validation
metrics, the optimizer and the learning-rate schedule (:class:`LRSchedule`: warm-up, then
cosine decay, a constant rate, or halving when a validation metric stops improving). The
engine picks the device (CUDA, Apple MPS or CPU), uses mixed precision on CUDA, clips
gradients, keeps frozen sub-modules in eval mode and out of the optimizer, draws one batch per
training set per step (labelled and unlabelled audio side by side), keeps the best weights by a
validation metric, logs to ``metrics.csv`` / ``metrics.json`` with a ``loss.png`` plot, and
writes checksummed checkpoints that a later run resumes from *exactly*: same batches, same
random numbers, same weights as if it had never stopped.

Under ``torchrun`` the same code trains with DistributedDataParallel
(:mod:`timbrelab.training.distributed`): the batch of step ``s`` is a pure function of the seed
and ``s``, each rank takes its slice of it, and only rank 0 writes. So a run resumes on any
number of processes, and N processes take the same steps as one process with the same global
batch.

Chapter: book/02_focal_loss_amt.md
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from timbrelab.io import ChecksumError, load_checked, save_checked
from timbrelab.runtime import resolve_device, seed_everything
from timbrelab.training import distributed
from timbrelab.training.logs import plot_losses, write_history

#: ``loss_fn(model, batch) -> (scalar loss, {part name: float})``. With several training sets
#: the batch is ``{set name: batch}``.
LossFn = Callable[[nn.Module, dict], tuple[torch.Tensor, Mapping[str, float]]]
#: ``metric_fn(model, batch) -> {metric name: float}``, averaged over the validation batches.
MetricFn = Callable[[nn.Module, dict], Mapping[str, float]]
#: ``optimizer_fn(trainable parameters, config) -> optimizer``; default AdamW.
OptimizerFn = Callable[[list[nn.Parameter], "TrainConfig"], torch.optim.Optimizer]

CHECKPOINT = "checkpoint.pt"
#: The weights that scored best on ``config.monitor`` (with ``monitor`` set).
BEST = "best.pt"
#: Least seconds between redraws of ``loss.png`` during training (it is always drawn at the end).
PLOT_SECONDS = 60.0
#: Config fields that may change when resuming: they do not change what is computed.
_RESUMABLE_CHANGES = {"device", "num_workers", "eval_every", "checkpoint_every", "progress"}
_SCHEDULES = ("cosine", "constant", "plateau")


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
        If set, train ``epochs`` passes over the (first) training set.
    batch_size
        The global batch: under DDP each of W processes takes ``batch_size / W`` items.
    lr, weight_decay
        Optimiser settings (AdamW unless the recipe supplies another optimizer).
    lr_schedule
        After ``warmup_steps`` of linear warm-up: ``"cosine"`` (decay to 0 over the run),
        ``"constant"``, or ``"plateau"`` (multiply by ``plateau_factor`` when ``monitor`` has
        not improved for ``plateau_patience`` evaluations).
    warmup_steps
        Linear warm-up length.
    plateau_patience, plateau_factor
        See ``lr_schedule``.
    monitor
        A validation metric (e.g. ``"frame_f1"``) or ``"val_loss"``: the weights scoring best
        on it are kept in ``best.pt`` and restored at the end of the run. None: keep the last.
    monitor_mode
        ``"max"`` (higher is better) or ``"min"``.
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
    plateau_patience: int = 2
    plateau_factor: float = 0.5
    monitor: str | None = None
    monitor_mode: str = "max"
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
        if self.lr_schedule not in _SCHEDULES:
            raise ValueError(
                f"TrainConfig: lr_schedule must be one of {_SCHEDULES}, got {self.lr_schedule!r}"
            )
        if self.lr <= 0 or self.weight_decay < 0 or self.warmup_steps < 0 or self.num_workers < 0:
            raise ValueError(
                "TrainConfig: need lr > 0, weight_decay, warmup_steps, num_workers >= 0"
            )
        if self.monitor_mode not in ("max", "min"):
            raise ValueError(
                f"TrainConfig: monitor_mode must be 'max' or 'min', got {self.monitor_mode!r}"
            )
        if self.lr_schedule == "plateau" and self.monitor is None:
            raise ValueError("TrainConfig: lr_schedule 'plateau' needs a monitor metric")
        if not 0 < self.plateau_factor < 1 or self.plateau_patience < 0:
            raise ValueError("TrainConfig: need 0 < plateau_factor < 1 and plateau_patience >= 0")


class LRSchedule:
    """The learning-rate factor of each step: warm-up, then cosine, constant or plateau.

    ``factor(step)`` multiplies the optimiser's base rate at 0-based ``step``; ``observe``
    feeds it the monitored validation value after each evaluation (only ``"plateau"`` uses it).
    Its state goes into checkpoints, so a resumed run continues the same schedule.

    Chapter: book/02_focal_loss_amt.md
    """

    def __init__(self, config: TrainConfig, total_steps: int) -> None:
        self.config = config
        self.total_steps = total_steps
        self.scale = 1.0  # plateau halvings so far
        self.best: float | None = None
        self.stale = 0  # evaluations without improvement

    def factor(self, step: int) -> float:
        cfg = self.config
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.lr_schedule == "cosine":
            progress = (step - cfg.warmup_steps) / max(self.total_steps - cfg.warmup_steps, 1)
            return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
        return self.scale

    def observe(self, value: float) -> None:
        if self.config.lr_schedule != "plateau":
            return
        if _improves(value, self.best, self.config.monitor_mode):
            self.best, self.stale = value, 0
            return
        self.stale += 1
        if self.stale > self.config.plateau_patience:
            self.scale *= self.config.plateau_factor
            self.stale = 0

    def state_dict(self) -> dict:
        return {"scale": self.scale, "best": self.best, "stale": self.stale}

    def load_state_dict(self, state: Mapping) -> None:
        self.scale, self.best, self.stale = state["scale"], state["best"], state["stale"]


def _improves(value: float, best: float | None, mode: str) -> bool:
    return best is None or (value > best if mode == "max" else value < best)


def adamw(parameters: list[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """The default optimiser: AdamW with the config's ``lr`` and ``weight_decay``.

    Chapter: book/02_focal_loss_amt.md
    """
    return torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)


def frozen_modules(model: nn.Module) -> list[nn.Module]:
    """The outermost sub-modules that have parameters, none of them trainable.

    They stay in eval mode during training (a frozen branch's BatchNorm statistics must not
    drift) and their parameters stay out of the optimiser.

    Chapter: book/02_focal_loss_amt.md
    """
    found: list[nn.Module] = []

    def visit(module: nn.Module) -> None:
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            found.append(module)
            return
        for child in module.children():
            visit(child)

    visit(model)
    return found


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


class StepBatches(Sampler[list[int]]):
    """Index batches for steps ``start .. stop-1`` of one training set.

    Epoch ``e`` visits the items in the order ``randperm(n, seed, e)`` (training set ``i > 0``
    of a run: ``(seed, e, i)``) in consecutive batches, the incomplete last batch dropped. The
    batch of a step is thus a pure function of the seed and the step: a resumed run takes
    exactly the batches it would have taken, and rank ``r`` of ``W`` processes takes items
    ``r, r + W, ...`` of it, so together they see the same global batch as one process.

    Chapter: book/02_focal_loss_amt.md
    """

    def __init__(
        self,
        n_items: int,
        batch_size: int,
        seed: int,
        stream: int,
        start: int,
        stop: int,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        self.n_items, self.batch_size, self.seed, self.stream = n_items, batch_size, seed, stream
        self.start, self.stop, self.rank, self.world = start, stop, rank, world
        self.per_epoch = n_items // batch_size

    def __len__(self) -> int:
        return max(self.stop - self.start, 0)

    def __iter__(self) -> Iterator[list[int]]:
        order, order_epoch = None, None
        for step in range(self.start, self.stop):
            epoch, position = divmod(step, self.per_epoch)
            if epoch != order_epoch:
                seeds = (self.seed, epoch) if self.stream == 0 else (self.seed, epoch, self.stream)
                order = torch.randperm(self.n_items, generator=_generator(*seeds))
                order_epoch = epoch
            batch = order[position * self.batch_size : (position + 1) * self.batch_size]
            yield batch[self.rank :: self.world].tolist()


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
        Parameters with ``requires_grad=False`` are frozen: left out of the optimiser, their
        modules kept in eval mode (:func:`frozen_modules`).
    loss_fn : callable
        ``loss_fn(model, batch) -> (loss, parts)``: the scalar to minimise and a dict of
        floats logged beside it (e.g. ``{"frame": ..., "onset": ...}``).
    train_data : Dataset or mapping of name -> Dataset
        Map-style dataset(s); items collate with the default ``collate_fn`` (dicts of
        tensors). With several named sets each step takes one batch of each and ``loss_fn``
        gets ``{name: batch}`` (validation batches as ``{first name: batch}``); epochs count
        passes over the first. Exact resumption needs
        items that depend only on their index (as :class:`timbrelab.data.SyntheticMixtures`)
        or ``num_workers=0``.
    val_data : Dataset, optional
        Evaluated every ``config.eval_every`` steps: mean loss, parts and metrics.
    config : TrainConfig
    out_dir : str or PathLike
        Receives ``checkpoint.pt``, ``best.pt`` (with ``config.monitor``), ``metrics.csv``,
        ``metrics.json`` and ``loss.png``.
    metric_fn : callable, optional
        ``metric_fn(model, batch) -> {name: float}`` on validation batches (model in eval
        mode, no gradients), averaged over batches.
    optimizer_fn : callable, optional
        ``optimizer_fn(trainable parameters, config) -> optimizer``; default :func:`adamw`.

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
        train_data: Dataset | Mapping[str, Dataset],
        val_data: Dataset | None = None,
        config: TrainConfig | None = None,
        out_dir: str | os.PathLike = "runs/train",
        metric_fn: MetricFn | None = None,
        optimizer_fn: OptimizerFn | None = None,
    ) -> None:
        self.config = config or TrainConfig()
        self.model = model
        self.loss_fn = loss_fn
        self.several_sets = isinstance(train_data, Mapping)
        self.train_sets: dict[str, Dataset] = (
            dict(train_data) if self.several_sets else {"train": train_data}
        )
        self.primary = next(iter(self.train_sets))
        self.train_data = train_data
        self.val_data = val_data
        self.metric_fn = metric_fn
        self.optimizer_fn = optimizer_fn or adamw
        self.out_dir = Path(out_dir)
        self.rank, self.world = distributed.rank_and_world()
        self.device = distributed.device_for_rank(resolve_device(self.config.device))
        self.amp = self.config.amp and self.device.type == "cuda"
        cfg = self.config
        if cfg.batch_size % self.world:
            raise ValueError(
                f"Trainer: batch_size {cfg.batch_size} does not split over {self.world} processes"
            )
        for name, data in self.train_sets.items():
            if len(data) < cfg.batch_size:
                raise ValueError(
                    f"Trainer: training set {name!r} has {len(data)} items, fewer than one "
                    f"batch of {cfg.batch_size}"
                )
        self.steps_per_epoch = len(next(iter(self.train_sets.values()))) // cfg.batch_size
        self.total_steps = cfg.epochs * self.steps_per_epoch if cfg.epochs else cfg.steps
        self.eval_every = cfg.eval_every or self.steps_per_epoch
        self._reset()

    @property
    def is_main(self) -> bool:
        """Whether this process writes checkpoints and logs (rank 0)."""
        return self.rank == 0

    def _reset(self) -> None:
        self.history: list[dict] = []
        self.step = 0
        self.seconds = 0.0
        self.train_means = _Means()  # of the steps since the last log row
        self.best_value: float | None = None
        self._last_plot = time.perf_counter()

    # --- set-up ---------------------------------------------------------------------------

    def _build_optimisation(self) -> None:
        self.model.to(self.device)
        self.frozen = frozen_modules(self.model)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = self.optimizer_fn(self.trainable, self.config)
        self.base_lrs = [group["lr"] for group in self.optimizer.param_groups]
        self.schedule = LRSchedule(self.config, self.total_steps)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.train_model = distributed.wrap(self.model, self.device)

    def _set_lr(self, step: int) -> None:
        factor = self.schedule.factor(step)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * factor

    def _loader(self, data: Dataset, batch_sampler: Sampler) -> DataLoader:
        # an explicit generator everywhere: a DataLoader without one draws its worker seed
        # from the global RNG, which would make the run depend on how often it evaluated
        return DataLoader(
            data,
            batch_sampler=batch_sampler,
            num_workers=self.config.num_workers,
            generator=_generator(self.config.seed),
            pin_memory=self.device.type == "cuda",
        )

    def _train_batches(self) -> Iterator[dict]:
        """The batches of steps ``self.step ..`` to the end (a dict of sets' batches)."""
        cfg = self.config
        loaders = {
            name: iter(
                self._loader(
                    data,
                    StepBatches(len(data), cfg.batch_size, cfg.seed, stream, self.step,
                                self.total_steps, self.rank, self.world),
                )
            )  # fmt: skip
            for stream, (name, data) in enumerate(self.train_sets.items())
        }
        for _ in range(self.step, self.total_steps):
            yield {name: next(loader) for name, loader in loaders.items()}

    # --- checkpoints ----------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path:
        """``out_dir / "checkpoint.pt"``."""
        return self.out_dir / CHECKPOINT

    def save_checkpoint(self) -> None:
        """Write the full training state atomically, with a checksum (rank 0 only)."""
        if not self.is_main:
            return
        config = getattr(self.model, "config", None)
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "seconds": self.seconds,
            "best_value": self.best_value,
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
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = state["step"]
        self.seconds = state["seconds"]
        self.best_value = state["best_value"]
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

    def _train_mode(self) -> None:
        self.model.train()
        for module in self.frozen:
            module.eval()

    def _train_step(self, batches: dict) -> dict[str, float]:
        cfg = self.config
        self._train_mode()
        batch = batches if self.several_sets else batches["train"]
        with self._autocast():
            loss, parts = self.loss_fn(self.train_model, batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"Trainer: loss is {float(loss)} at step {self.step + 1}; try a lower lr "
                "or a smaller grad_clip"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if cfg.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.trainable, cfg.grad_clip)
        self._set_lr(self.step)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {"loss": float(loss.detach()), **parts}

    def evaluate(self) -> dict[str, float]:
        """Mean loss, loss parts and metrics over ``val_data`` (``{}`` without it).

        Chapter: book/02_focal_loss_amt.md
        """
        if self.val_data is None:
            return {}
        losses, metrics = _Means(), _Means()
        self.model.eval()
        everything = [list(range(len(self.val_data)))[i : i + self.config.batch_size]
                      for i in range(0, len(self.val_data), self.config.batch_size)]  # fmt: skip
        with torch.inference_mode():
            for batch in self._loader(self.val_data, everything):
                batch = _to_device(batch, self.device)
                # with several training sets the loss takes {set name: batch}: validation
                # data stands for the first set (the labelled one)
                as_trained = {self.primary: batch} if self.several_sets else batch
                with self._autocast():
                    loss, parts = self.loss_fn(self.model, as_trained)
                losses.add({"loss": float(loss), **parts})
                if self.metric_fn is not None:
                    metrics.add(self.metric_fn(self.model, batch))
        return {**losses.means("val_"), **metrics.means("")}

    def fit(self, resume: bool = False) -> list[dict]:
        """Train to ``total_steps``; with ``resume``, continue from ``out_dir/checkpoint.pt``.

        Resuming when no checkpoint exists starts from scratch, so the same command can be
        rerun after an interruption. Without ``resume`` an existing run in ``out_dir`` is
        overwritten. A resumed run ends with the same weights as an uninterrupted one
        (bit for bit on CPU), on any number of processes. With ``config.monitor`` the model
        ends with the weights that scored best.

        Returns
        -------
        list of dict
            :attr:`history`.

        Chapter: book/02_focal_loss_amt.md
        """
        from tqdm.auto import tqdm

        if self.is_main:
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
            disable=not (self.config.progress and self.is_main),
            desc=f"train {getattr(self.model, 'name', type(self.model).__name__)}",
            dynamic_ncols=True,
        )
        started = time.perf_counter()
        for batches in self._train_batches():
            values = self._train_step(_to_device(batches, self.device))
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
        bar.close()
        if self.is_main:
            plot_losses(self.history, self.out_dir / "loss.png")
        self._restore_best()
        return self.history

    def _log(self) -> None:
        """Evaluate (rank 0), append a history row, feed the schedule and keep the best."""
        # each rank saw its share of every global batch: log the mean over ranks
        train_means = distributed.mean_over_ranks(self.train_means.means("train_"))
        row = {}
        if self.is_main:
            row = {
                "step": self.step,
                "epoch": self.step / self.steps_per_epoch,
                "lr": self.base_lrs[0] * self.schedule.factor(self.step),
                "seconds": self.seconds,
                **train_means,
                **self.evaluate(),
            }
        row = distributed.from_main(row)  # every rank takes the same schedule decisions
        self.train_means = _Means()
        self.history.append(row)
        monitor = self.config.monitor
        if monitor is not None:
            if monitor not in row:
                raise KeyError(f"Trainer: monitor {monitor!r} is not among {sorted(row)}")
            self.schedule.observe(row[monitor])
            if _improves(row[monitor], self.best_value, self.config.monitor_mode):
                self.best_value = row[monitor]
                if self.is_main:
                    best = {"step": self.step, monitor: row[monitor]}
                    save_checked({**best, "model": self.model.state_dict()}, self.out_dir / BEST)
        if not self.is_main:
            return
        write_history(self.history, self.out_dir)
        # a figure costs ~0.3 s: redraw it during training at most every PLOT_SECONDS
        if time.perf_counter() - self._last_plot > PLOT_SECONDS:
            plot_losses(self.history, self.out_dir / "loss.png")
            self._last_plot = time.perf_counter()

    def _restore_best(self) -> None:
        if self.config.monitor is None or self.best_value is None:
            return
        distributed.barrier()  # rank 0 has written best.pt
        self.model.load_state_dict(load_checked(self.out_dir / BEST, "checkpoint")["model"])


@dataclass
class Recipe:
    """What a system's ``recipe(tier)`` returns; ``recipe.trainer(out_dir).fit()`` trains it.

    Chapter: book/02_focal_loss_amt.md
    """

    model: nn.Module
    loss_fn: LossFn
    train_data: Dataset | Mapping[str, Dataset]
    val_data: Dataset | None
    config: TrainConfig
    metric_fn: MetricFn | None = None
    optimizer_fn: OptimizerFn | None = None

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
            self.optimizer_fn,
        )
