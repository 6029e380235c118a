"""GPU check: each system trains with AMP on CUDA, infers as on the CPU; a full-tier step's cost.

For each registered system (or those named with ``--systems``):

1. Train: a few quick-tier steps on the device with mixed precision,
   ``system.recipe("quick", steps=3).trainer(...).fit()``; the weights must stay finite.
2. Infer: the trained model (the shipped weights, where the system has them) on the same
   synthetic clip on the CPU and on the device. Raw outputs ``model(audio (1, N))`` must agree
   elementwise within ``--atol + --rtol * |cpu|``, computed in full float32 (TF32 off); the
   notes of ``system.infer`` (default settings, as users run it) must agree to a note F1 of at
   least 0.95.
3. Time: one global full-tier batch rendered by the tier's DataLoader workers, then the
   Trainer's step on it (after one untimed warm-up step), with the peak GPU memory and the
   full tier's duration that these imply.

Writes ``benchmarks/results/gpu_check.json`` with the machine (torch, CUDA, GPU) and exits 1
when a check fails.

    python benchmarks/gpu_check.py [--systems amt basic_pitch] [--out PATH]
    python benchmarks/gpu_check.py --device cpu --dry-run   # the same code paths, tiny, on CPU

Without CUDA (and without ``--device cpu``) it exits at once with a one-line message and
status 1. A dry run takes 1 quick step and full-tier batches of 2, and writes only with --out.

Chapter: book/02_focal_loss_amt.md
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import datetime
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from timbrelab import systems
from timbrelab.data.mixtures import make_mixture
from timbrelab.metrics import note_scores
from timbrelab.systems import System
from timbrelab.training import Trainer

RESULTS = Path(__file__).parent / "results" / "gpu_check.json"
QUICK_STEPS = 3
DRY_RUN_QUICK_STEPS = 1
DRY_RUN_FULL_BATCH = 2
CLIP_SECONDS = 8.0
CLIP_SEED = 2024
NOTES_F1_MIN = 0.95


def machine(device: torch.device) -> dict:
    """Where the check ran: platform, Python, torch, CUDA and cuDNN, and the GPU."""
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "device": str(device),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            gpu=props.name,
            gpu_memory_gib=props.total_memory / 2**30,
            gpu_capability=f"{props.major}.{props.minor}",
            gpu_count=torch.cuda.device_count(),
        )
    return info


@contextlib.contextmanager
def full_float32() -> Iterator[None]:
    """CUDA matmuls and convolutions in full float32 (TF32 off) for the block."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def train_quick(
    system: System, device: torch.device, steps: int, out_dir: Path
) -> tuple[nn.Module, dict]:
    """Train ``steps`` quick-tier steps on ``device`` (AMP on CUDA).

    Returns
    -------
    model : nn.Module
        The trained model, on ``device``.
    report : dict
        ``ok`` (AMP used on CUDA, weights finite), whether the weights changed (a GradScaler
        that skipped every step leaves them as they were), the final scale, losses, seconds.
    """
    recipe = system.recipe("quick", steps=steps, device=str(device), progress=False)
    initial = copy.deepcopy(recipe.model.state_dict())
    trainer = recipe.trainer(out_dir)
    last = trainer.fit()[-1]
    state = recipe.model.state_dict()
    finite = all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    params = recipe.model.named_parameters()
    changed = any(not torch.equal(p.detach().cpu(), initial[name]) for name, p in params)
    return recipe.model, {
        "ok": finite and trainer.amp == (device.type == "cuda"),
        "steps": steps,
        "amp": trainer.amp,
        "weights_finite": finite,
        "weights_changed": changed,
        "grad_scale": trainer.scaler.get_scale() if trainer.amp else None,
        "train_loss": last["train_loss"],
        "val_loss": last.get("val_loss"),
        "seconds": last["seconds"],
    }


def named_tensors(outputs: torch.Tensor | Mapping | tuple | list) -> dict[str, torch.Tensor]:
    """A model's outputs (a tensor, or a dict/tuple of them) as ``{name: tensor}``."""
    if isinstance(outputs, torch.Tensor):
        return {"output": outputs}
    if isinstance(outputs, Mapping):
        return dict(outputs)
    return {str(i): value for i, value in enumerate(outputs)}


def compare_inference(
    system: System, model: nn.Module, device: torch.device, atol: float, rtol: float
) -> dict:
    """Run ``model`` on one synthetic clip on the CPU and on ``device``; compare the results.

    Returns
    -------
    dict
        ``ok``; per raw output its ``max_abs_diff``, ``max_abs`` (of the CPU output) and whether
        it is ``within_tolerance``; the note counts of both devices and their ``notes_f1``.
    """
    n = round(CLIP_SECONDS * system.sample_rate)
    mix = make_mixture(3, seconds=CLIP_SECONDS, seed=CLIP_SEED, sample_rate=system.sample_rate)
    audio = np.asarray(mix.audio[:n], dtype=np.float32)
    models = {"cpu": copy.deepcopy(model).cpu().eval(), "device": model.to(device).eval()}

    with full_float32(), torch.inference_mode():
        cpu = named_tensors(models["cpu"](torch.from_numpy(audio)[None]))
        on_device = named_tensors(models["device"](torch.from_numpy(audio)[None].to(device)))
    raw = {}
    for key, expected in cpu.items():
        expected, got = expected.float(), on_device[key].float().cpu()
        raw[key] = {
            "max_abs_diff": float((got - expected).abs().max()),
            "max_abs": float(expected.abs().max()),
            "within_tolerance": torch.allclose(got, expected, atol=atol, rtol=rtol),
        }

    notes = {where: system.infer(m, audio).notes for where, m in models.items()}
    both_silent = not notes["cpu"] and not notes["device"]
    notes_f1 = 1.0 if both_silent else note_scores(notes["cpu"], notes["device"])["f1"]
    return {
        "ok": all(r["within_tolerance"] for r in raw.values()) and notes_f1 >= NOTES_F1_MIN,
        "clip": f"make_mixture(3, seconds={CLIP_SECONDS}, seed={CLIP_SEED})",
        "weights": "shipped" if system.pretrained else "quick-trained",
        "raw_outputs": raw,
        "notes_cpu": len(notes["cpu"]),
        "notes_device": len(notes["device"]),
        "notes_f1": notes_f1,
    }


def render_batch(data: Dataset, batch_size: int, num_workers: int) -> list[dict]:
    """Items ``0 .. batch_size-1`` of ``data``, rendered by ``num_workers`` DataLoader workers."""
    loader = DataLoader(data, batch_size=None, sampler=range(batch_size), num_workers=num_workers)
    return list(loader)


def time_full_step(
    system: System, device: torch.device, out_dir: Path, batch_size: int | None = None
) -> dict:
    """Render one global full-tier batch, then time the Trainer's step on it.

    The Trainer takes 2 steps over the rendered items (already in memory, so no data loading
    is timed): the first warms up (kernel selection, allocator), the second is the step time.

    Parameters
    ----------
    batch_size : int, optional
        Override the tier's batch (a dry run on CPU).

    Returns
    -------
    dict
        ``render_batch_seconds`` (wall time of one batch with the tier's ``num_workers``,
        worker start-up included: about the loader's time per batch once running),
        ``first_step_seconds``, ``step_seconds``, ``peak_memory_gib`` (CUDA) and
        ``tier_hours_estimate``: the tier's steps at the slower of data and step.
    """
    overrides = {} if batch_size is None else {"batch_size": batch_size}
    recipe = system.recipe("full", device=str(device), **overrides)
    cfg = recipe.config
    train_sets = recipe.train_data
    several = isinstance(train_sets, Mapping)

    started = time.perf_counter()
    rendered = {
        name: render_batch(data, cfg.batch_size, cfg.num_workers)
        for name, data in (train_sets.items() if several else [("train", train_sets)])
    }
    render_seconds = time.perf_counter() - started

    config = dataclasses.replace(
        cfg, steps=2, eval_every=1, checkpoint_every=None, num_workers=0, progress=False
    )
    trainer = Trainer(
        recipe.model,
        recipe.loss_fn,
        rendered if several else rendered["train"],
        None,
        config,
        out_dir,
        optimizer_fn=recipe.optimizer_fn,
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    first, both = (row["seconds"] for row in trainer.fit())
    step_seconds = both - first
    return {
        "ok": True,
        "batch_size": cfg.batch_size,
        "num_workers": cfg.num_workers,
        "amp": trainer.amp,
        "render_batch_seconds": render_seconds,
        "first_step_seconds": first,
        "step_seconds": step_seconds,
        "peak_memory_gib": (
            torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
        ),
        "tier_steps": cfg.steps,
        "tier_hours_estimate": cfg.steps * max(step_seconds, render_seconds) / 3600,
    }


def check_system(
    system: System, device: torch.device, args: argparse.Namespace, work_dir: Path
) -> dict:
    """All three checks of one system; an exception fails the system, not the whole run."""
    report: dict = {}
    try:
        steps = DRY_RUN_QUICK_STEPS if args.dry_run else QUICK_STEPS
        model, report["train"] = train_quick(system, device, steps, work_dir / "quick")
        if system.pretrained:
            model = system.load(str(device))
        report["inference"] = compare_inference(system, model, device, args.atol, args.rtol)
        batch = DRY_RUN_FULL_BATCH if args.dry_run else None
        report["full_step"] = time_full_step(system, device, work_dir / "full", batch)
    except Exception as err:  # report it and go on to the next system
        traceback.print_exc()
        report["error"] = f"{type(err).__name__}: {err}"
    report["ok"] = "error" not in report and all(part["ok"] for part in report.values())
    return report


def summary_line(name: str, report: dict) -> str:
    """One line per system for the terminal."""
    if "error" in report:
        return f"{name}: FAIL ({report['error']})"
    inference, step = report["inference"], report["full_step"]
    diff = max(r["max_abs_diff"] for r in inference["raw_outputs"].values())
    return (
        f"{name}: {'ok' if report['ok'] else 'FAIL'}  quick loss "
        f"{report['train']['train_loss']:.4f}  max |cpu - device| {diff:.1e}  notes F1 "
        f"{inference['notes_f1']:.3f}  full step {step['step_seconds']:.3f} s, batch rendered "
        f"in {step['render_batch_seconds']:.1f} s"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the checks; 0 when every system passes, 1 otherwise (or without the device)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:1, cpu, ...")
    parser.add_argument(
        "--systems",
        nargs="+",
        choices=systems.names(),
        metavar="NAME",
        help="systems to check (default: all registered)",
    )
    parser.add_argument("--atol", type=float, default=1e-3, help="raw outputs, absolute")
    parser.add_argument("--rtol", type=float, default=1e-3, help="raw outputs, relative")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="tiny sizes (1 quick step, full-tier batch of 2), e.g. on CPU",
    )
    parser.add_argument(
        "--out", type=Path, help=f"results file (default {RESULTS}; a dry run: none)"
    )
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(
            f"gpu_check: CUDA is not available (torch {torch.__version__}); run it on a CUDA "
            "machine, or try --device cpu --dry-run",
            file=sys.stderr,
        )
        return 1

    results = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": machine(device),
        "settings": {
            "dry_run": args.dry_run,
            "atol": args.atol,
            "rtol": args.rtol,
            "notes_f1_min": NOTES_F1_MIN,
        },
        "systems": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.systems or systems.names():
            report = check_system(systems.get(name), device, args, Path(tmp) / name)
            results["systems"][name] = report
            print(summary_line(name, report), flush=True)
    results["ok"] = all(report["ok"] for report in results["systems"].values())

    out = args.out or (None if args.dry_run else RESULTS)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp_out = out.with_suffix(".json.tmp")
        tmp_out.write_text(json.dumps(results, indent=2) + "\n")
        os.replace(tmp_out, out)
        print(f"results: {out}")
    print("all checks passed" if results["ok"] else "SOME CHECKS FAILED")
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
