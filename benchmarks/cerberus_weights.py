"""Train the shipped weights of ``cerberus`` or ``cerberus_quartet`` on one CPU thread.

The quick-tier recipe with more steps and more (cached) training items; writes the run
folder (``metrics.csv``, ``loss.png``, ``weights.pt``) and ``run.json`` with the settings
and the measured wall time::

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/cerberus_weights.py cerberus \
        --steps 1200 --train-items 1200 --out runs/cerberus_weights/run

``--ship`` then copies the run's weights (``weights.pt`` of a finished run, else the best
checkpoint ``best.pt`` of one stopped early) to ``timbrelab/pretrained/<system>.pt`` and
registers them; the model card is written from the run and the benchmark's scores.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from timbrelab import pretrained, systems
from timbrelab.io import load_checked
from timbrelab.systems.cerberus import TIERS
from timbrelab.training import BEST, save_weights

PRETRAINED = Path(pretrained.__file__).parent


def ship(system_name: str, run: Path) -> Path:
    """Copy a run's weights into the package and register them; returns the new file."""
    return pretrained.ship_run(system_name, run, TIERS["quick"].model)


#: What each system's training data are, for its model card.
DATA = {
    "cerberus": (
        "Synthetic only: `LineupMixtures(n, programs=(0, 25, 33, 128), seconds=5.0, seed=0)`, "
        "i.e. `SyntheticMixtures` at 16 kHz with the line-up acoustic grand piano, steel "
        "guitar, fingered bass and a drum kit (TimGM6mb, random scores per instrument on a "
        "shared tempo grid, random gains), every instrument playing at least 4 notes per 5 s "
        "item. Validation: 8 items, seed 1."
    ),
    "cerberus_quartet": (
        "Synthetic only: `LineupMixtures(n, programs=(40, 71, 66, 70), seconds=5.0, seed=0, "
        "style='ensemble', expression=True, room=True)`: violin, clarinet, tenor saxophone "
        "and bassoon (Bach10's line-up), one chorale-like voice each in its own register, "
        "expressive rendering (detune, vibrato, velocity and swell curves), a random room "
        "and EQ per stem (TimGM6mb). Validation: 8 items, seed 1."
    ),
}


def write_card(system_name: str, run: Path, planned_steps: int, train_items: int) -> Path:
    """The model card of shipped weights: data, training (from the run's log) and the
    scores of ``benchmarks/cerberus.py`` (its committed results)."""
    from timbrelab.training import write_model_card

    history = json.loads((run / "metrics.json").read_text())
    rows = history if isinstance(history, list) else history["history"]
    last = rows[-1]
    best_step = load_checked(run / BEST, "checkpoint")["step"]
    results = Path(__file__).resolve().parent / "results"
    synthetic = json.loads((results / "cerberus.json").read_text())["synthetic"][system_name]
    scores = {
        "measured by": "`python benchmarks/cerberus.py synthetic bach10` "
        "(benchmarks/results/cerberus.json, cerberus_bach10.json) with the system's decoding "
        "thresholds, chosen on validation items by `benchmarks/cerberus.py thresholds`",
        "synthetic test set": f"{synthetic['items']} x {synthetic['seconds']:g} s, seed "
        f"{synthetic['seed']} (never used in training)",
        "SDR (dB)": _per_source(synthetic["sdr"]),
        "SI-SDR (dB)": _per_source(synthetic["si_sdr"]),
        "note F1 (onsets within 50 ms)": _per_source(synthetic["note_f1"]),
        "speed": f"{synthetic['cpu_s_per_audio_s']:.3f} CPU s per audio second (1 thread)",
    }
    if system_name == "cerberus_quartet":
        bach = json.loads((results / "cerberus_bach10.json").read_text())["bach10"]
        for k, row in bach.get("by_k", {}).items():
            scores[f"Bach10 dev, {k}-part mixes ({row['mixes']})"] = (
                f"SDR {row['sdr']:.2f} dB, note F1 {row['note_f1']:.3f} (best assignment; "
                f"Li & Zhu's separating model: {bach['li_zhu_note_f1'][k]:.3f})"
            )
    target = PRETRAINED / f"{system_name}.pt"
    write_model_card(
        PRETRAINED / f"{system_name}.md",
        target,
        title=f"{system_name}: Cerberus (DC + MI + TR heads), CPU-trained at the quick tier",
        data=DATA[system_name],
        training={
            "tier": "quick model (2 BLSTM layers x 80 units, heads factored through 24 units)",
            "loss": "0.1 DC + 1.0 MI + 1.0 TR (BCE), cerberus_loss_fn defaults",
            "optimiser": "Adam, lr 2e-3, cosine decay over the planned steps, grad clip 1.0",
            "steps": f"{last['step']} of a planned {planned_steps} (stopped at the CPU budget), "
            f"batch 4 items of 5 s from {train_items} training items; the weights are those "
            f"of step {best_step}, the lowest validation loss",
            "wall time": f"{last['seconds'] / 60:.1f} min of training (metrics.csv)",
            "hardware": "2-core CPU shared with other jobs, 1 torch thread",
            "last validation": f"loss {last['val_loss']:.4f}, SDR {last.get('sdr', 0):.2f} dB, "
            f"note F1 {last.get('note_f1', 0):.3f} (step {last['step']})",
        },
        scores=scores,
        notes=(
            "A small network trained for half an hour on a shared CPU: far from the paper's "
            "scale (4 x 300 BLSTM, 100 epochs of Slakh), and it shows: the masks are barely "
            "better than the mixture and the transcription head stays below 0.2 almost "
            "everywhere. An earlier run with the DC loss at weight 1 (42 min, stopped) "
            "collapsed to input-independent masks and was discarded. Reproduce with "
            f"`OMP_NUM_THREADS=1 python benchmarks/cerberus_weights.py {system_name} "
            f"--steps {planned_steps} --train-items {train_items} --out RUN`, then "
            f"`--ship --out RUN`."
        ),
    )
    return PRETRAINED / f"{system_name}.md"


def _per_source(summary: dict) -> str:
    per_source = ", ".join(f"{name} {value:.3f}" for name, value in summary["per_source"].items())
    return f"mean {summary['mean']:.3f} ({per_source})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("system", choices=["cerberus", "cerberus_quartet"])
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--train-items", type=int, default=1200)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--ship", action="store_true", help="ship the run in --out")
    parser.add_argument("--card", action="store_true", help="write the shipped model card")
    args = parser.parse_args()
    if args.ship:
        print(f"shipped {ship(args.system, args.out)}")
        return
    if args.card:
        print(f"wrote {write_card(args.system, args.out, args.steps, args.train_items)}")
        return
    torch.set_num_threads(1)
    settings = dict(steps=args.steps, batch_size=args.batch_size, eval_every=150,
                    checkpoint_every=150, progress=False)  # fmt: skip
    recipe = systems.get(args.system).recipe(
        "quick",
        seed=args.seed,
        train_items=args.train_items,
        data_options={"cache_dir": str(args.out.parent / "cache")},
        **settings,
    )
    started = time.perf_counter()
    history = recipe.trainer(args.out).fit(resume=True)
    wall = time.perf_counter() - started
    save_weights(recipe.model, args.out / "weights.pt")
    run = {"system": args.system, "tier": "quick", "seed": args.seed,
           "train_items": args.train_items, **settings, "wall_seconds": round(wall, 1),
           "threads": torch.get_num_threads(), "last": history[-1]}  # fmt: skip
    (args.out / "run.json").write_text(json.dumps(run, indent=1) + "\n")
    print(json.dumps(run))


if __name__ == "__main__":
    main()
