"""Which synthetic-data choices transfer to real instruments: one lever at a time.

Every model in the book trains on synthetic audio and is judged on real recordings. Each lever
below is one setting of the training data (:class:`timbrelab.data.SyntheticMixtures`): more
soundfonts, expressive MIDI rendering, the authors' dense single-timbre scores, room and EQ.
For each, the shipped ``amt`` weights are fine-tuned for the same number of steps, with the
same seed, batch, learning rate and item seeds, on data with that lever alone (and with all of
them together); the ``baseline`` row fine-tunes on today's data, so that the differences
measure the data, not the extra steps. Each model is then scored on the Bach10 dev pieces
(real recordings) and on a fixed synthetic test set rendered plainly (TimGM6mb, random scores):
frame F1 (FF), note-onset F1 (FN) and note F1 with offsets (FNO).

Run from the repository root (about ``levers x steps x 3 s`` on a 2-core CPU):

    .venv/bin/python benchmarks/synthetic_levers.py --steps 80

Results: ``benchmarks/results/synthetic_levers.json``. Short fine-tunes are noisy: the
``baseline (second seed)`` row repeats the baseline with another data seed to show the spread.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from timbrelab import pretrained, systems
from timbrelab.data import SyntheticMixtures
from timbrelab.data.bach10 import bach10_root
from timbrelab.evaluation import evaluate_bach10, evaluate_synthetic
from timbrelab.io import atomic_output
from timbrelab.runtime import seed_everything
from timbrelab.systems.amt import transcription_loss_fn
from timbrelab.training import TrainConfig, Trainer

RESULTS = Path(__file__).with_name("results") / "synthetic_levers.json"
ALL = {"soundfonts": "all", "expression": True, "style": "dense", "room": True}
#: lever name -> (SyntheticMixtures options, data seed)
LEVERS: dict[str, tuple[dict, int]] = {
    "baseline (today's data)": ({}, 1000),
    "baseline (second seed)": ({}, 2000),
    "+ soundfonts (all installed, one per stem)": ({"soundfonts": "all"}, 1000),
    "+ expression (bends, vibrato, velocity walk, CC11, pedal, effects)": (
        {"expression": True},
        1000,
    ),
    "+ dense single-timbre scores": ({"style": "dense", "instruments": (1, 1)}, 1000),
    "+ room and EQ": ({"room": True}, 1000),
    "all levers": ({**ALL, "instruments": (1, 2)}, 1000),
}


def fine_tune(options: dict, data_seed: int, args: argparse.Namespace) -> torch.nn.Module:
    """The shipped weights after ``args.steps`` steps on data with ``options``."""
    seed_everything(0)
    model = pretrained.load("amt")
    settings = {"seconds": 4.0, "instruments": (1, 4), **options}
    data = SyntheticMixtures(args.steps * args.batch, seed=data_seed, **settings)
    config = TrainConfig(
        steps=args.steps,
        batch_size=args.batch,
        lr=args.lr,
        lr_schedule="constant",
        seed=0,
        device="cpu",
        checkpoint_every=None,
        progress=False,
    )
    tag = hashlib.sha256(json.dumps(options, default=str, sort_keys=True).encode()).hexdigest()
    out = Path(args.work) / f"seed{data_seed}-{tag[:12]}"
    Trainer(model, transcription_loss_fn("focal"), data, None, config, out).fit()
    return model.eval()


def scores(model: torch.nn.Module, args: argparse.Namespace) -> dict:
    """Mean FF/FN/FNO on the Bach10 dev pieces and the synthetic test set."""
    system = systems.get("amt")

    def mean(rows: list[dict]) -> dict:
        return {
            k: round(100 * float(np.mean([r[k] for r in rows])), 1) for k in ("FF", "FN", "FNO")
        }

    result = {"synthetic": mean(evaluate_synthetic(system, model, args.test_items, 8.0, seed=7))}
    if bach10_root() is not None:
        result["bach10_dev"] = mean(evaluate_bach10(system, model))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=80, help="fine-tuning steps per lever")
    parser.add_argument("--batch", type=int, default=6, help="clips of 4 s per step")
    parser.add_argument("--lr", type=float, default=1e-3, help="constant learning rate")
    parser.add_argument("--test-items", type=int, default=8, help="synthetic test pieces (8 s)")
    parser.add_argument("--levers", nargs="*", default=list(LEVERS), help="names to run")
    parser.add_argument("--work", default="runs/levers", help="training runs (not committed)")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    rows = {"shipped amt, no fine-tuning": {"seconds": 0.0, **scores(pretrained.load("amt"), args)}}
    print("shipped", rows["shipped amt, no fine-tuning"], flush=True)
    for name in args.levers:
        options, data_seed = LEVERS[name]
        started = time.perf_counter()
        model = fine_tune(options, data_seed, args)
        rows[name] = {
            "options": {k: str(v) for k, v in options.items()},
            "data_seed": data_seed,
            "seconds": round(time.perf_counter() - started, 1),
            **scores(model, args),
        }
        print(name, rows[name], flush=True)
    report = {
        "command": "python benchmarks/synthetic_levers.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "levers"
        ),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "torch": torch.__version__, "load": os.getloadavg()},
        "settings": {"steps": args.steps, "batch": args.batch, "clip_seconds": 4.0,
                     "lr": args.lr, "start": "shipped amt weights",
                     "synthetic_test": f"{args.test_items} x 8 s, evaluate_synthetic seed 7"},
        "rows": rows,
    }  # fmt: skip
    RESULTS.parent.mkdir(exist_ok=True)
    with atomic_output(RESULTS) as tmp:
        tmp.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
