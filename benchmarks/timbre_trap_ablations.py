"""Timbre-Trap's ablations (the paper's Table 1) at the quick tier, on one fixed synthetic test set.

Every variant is the ``timbre_trap`` system's quick recipe with the same seed, data and number
of steps, changed by one ``model_config`` entry (or, for ``+ audio-only data``, by a second
stream of unlabelled audio trained with the reconstruction loss alone, section 4.3):

- ``Timbre-Trap``: the three objectives of eq. 4 on complex coefficients;
- ``No consistency``, ``Transcription only``: eq. 4 without ``L_cc``, or with ``L_tr`` alone;
- ``Magnitude Rc. + Tr.``: normalised dB magnitude in and out, no consistency term;
- ``w/ skip connections``: encoder levels added to the decoder's with learnable weights;
- ``w/ FiLM``: the switch as a per-task scale and shift of the latents;
- ``+ audio-only data``: the full model plus unlabelled audio from other soundfonts.

Each trained model transcribes and reconstructs the same synthetic test pieces (rendered at
22 050 Hz with the evaluation seeds of :mod:`timbrelab.evaluation`, never seen in training).
Frame precision, recall and F1 are the paper's: salience peaks of at least 0.5, rounded to the
nearest key, against the reference notes on the model's frame grid
(:func:`timbrelab.metrics.multipitch_scores`, half a semitone tolerance); AP, the average
precision of the largest peak salience of each key and frame against the reference roll,
says how well the salience ranks sounding keys above silent ones whatever the threshold
(early in training the salience of every key sits above 0.5 and the peak metrics cannot
tell variants apart). SDR is that of the
reconstruction against the input at the model's rate (:func:`timbrelab.metrics.sdr`); the
magnitude variant has no phase and no SDR.

    nice -n 5 .venv/bin/python benchmarks/timbre_trap_ablations.py --steps 300 \\
        --variants "Timbre-Trap,No consistency,Transcription only"

Runs go to ``runs/timbre_trap_ablations/<variant>`` (a finished one is reused: pass
``--retrain`` to start over); each call merges its variants into
``benchmarks/results/timbre_trap_ablations.json``, so variants can train in parallel processes.

Chapter: book/03_timbre_trap.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from provenance import command_line, git, package_version, write_merged_variants
from sklearn.metrics import average_precision_score

from timbrelab import systems
from timbrelab.audio import resample
from timbrelab.constants import SAMPLE_RATE
from timbrelab.decode.salience import PEAK_THRESHOLD, salience_to_pitch_roll
from timbrelab.evaluation import synthetic_test_mixture
from timbrelab.metrics import multipitch_scores, notes_to_multipitch, sdr
from timbrelab.models import count_parameters
from timbrelab.notes import midi_to_hz, notes_to_rolls
from timbrelab.pretrained import load_weights
from timbrelab.training import save_weights

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "timbre_trap_ablations.json"
#: Table 1's rows at the quick tier: model_config overrides, and unlabelled items per set.
VARIANTS: dict[str, tuple[dict, int]] = {
    "Timbre-Trap": ({}, 0),
    "No consistency": ({"consistency_weight": 0.0}, 0),
    "Transcription only": ({"consistency_weight": 0.0, "reconstruction_weight": 0.0}, 0),
    "Magnitude Rc. + Tr.": ({"magnitude": True, "consistency_weight": 0.0}, 0),
    "w/ skip connections": ({"skip_connections": True}, 0),
    "w/ FiLM": ({"film": True}, 0),
    "+ audio-only data": ({}, 512),
}
CAVEAT = (
    "One seed, minutes of CPU training per variant: differences of a few points are within "
    "what another seed would change; the paper's trends need its full training."
)


def test_pieces(n_pieces: int, seconds: float, seed: int) -> list:
    """The fixed test set: mixtures of 1 to 3 instruments at 22 050 Hz."""
    return [synthetic_test_mixture(i, seed, seconds, (1, 3)) for i in range(n_pieces)]


def frame_and_sdr_scores(system, model: torch.nn.Module, pieces: list) -> dict[str, float]:
    """Mean frame precision / recall / F1 of the salience peaks, average precision of the
    peak salience per key (threshold-free), and mean reconstruction SDR."""
    rows = []
    for piece in pieces:
        rendering = system.render(model, piece.audio)
        salience = salience_to_pitch_roll(rendering.salience, rendering.frequencies, 0.0)
        roll = salience >= PEAK_THRESHOLD
        times = np.arange(roll.shape[1]) / rendering.frame_rate
        estimated = [midi_to_hz(21 + np.flatnonzero(frame)) for frame in roll.T]
        reference = notes_to_rolls(piece.notes, roll.shape[1], rendering.frame_rate)["frame"]
        row = multipitch_scores(times, notes_to_multipitch(piece.notes, times), times, estimated)
        row["ap"] = float(average_precision_score(reference.ravel() > 0, salience.ravel()))
        if rendering.reconstruction is not None:
            reference = resample(piece.audio, SAMPLE_RATE, rendering.sample_rate)
            row["sdr"] = float(sdr(reference, rendering.reconstruction[: reference.size]))
        rows.append(row)
    keys = ("precision", "recall", "f1", "ap", "sdr")
    return {k: float(np.mean([r[k] for r in rows])) for k in keys if k in rows[0]}


def train_variant(name: str, steps: int, seed: int, out: Path, retrain: bool):
    """The variant's trained model (the best validation checkpoint) and its training time."""
    system = systems.get("timbre_trap")
    weights = out / "weights.pt"
    if weights.exists() and not retrain:
        info = json.loads((out / "run.json").read_text())
        return load_weights(weights), info
    model_config, audio_only = VARIANTS[name]
    recipe = system.recipe(
        "quick", seed, model_config, audio_only_items=audio_only,
        steps=steps, device="cpu", progress=False,
    )  # fmt: skip
    started = time.perf_counter()
    history = recipe.trainer(out).fit()
    info = {
        "train_seconds": round(time.perf_counter() - started, 1),
        "steps": steps,
        "best_val_frame_f1": max(h.get("frame_f1", 0.0) for h in history),
    }
    save_weights(recipe.model, weights)
    (out / "run.json").write_text(json.dumps(info))
    return recipe.model.eval(), info


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated rows")
    p.add_argument("--steps", type=int, default=300, help="training steps per variant")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-pieces", type=int, default=12)
    p.add_argument("--test-seconds", type=float, default=6.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "timbre_trap_ablations")
    p.add_argument("--retrain", action="store_true", help="train again even if a run exists")
    p.add_argument("--results", type=Path, default=RESULTS, help="JSON to merge results into")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    names = [n for n in args.variants.split(",") if n]
    unknown = set(names) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"timbre_trap_ablations: unknown variant(s) {sorted(unknown)}")
    system = systems.get("timbre_trap")
    pieces = test_pieces(args.test_pieces, args.test_seconds, seed=3)
    results = {}
    for name in names:
        folder = args.runs / "".join(c if c.isalnum() else "_" for c in name).strip("_")
        model, info = train_variant(name, args.steps, args.seed, folder, args.retrain)
        scores = frame_and_sdr_scores(system, model, pieces)
        results[name] = {
            **{k: round(v, 4) for k, v in scores.items()},
            "parameters": count_parameters(model),
            "config": VARIANTS[name][0],
            "audio_only_items": VARIANTS[name][1],
            **info,
        }
        print(name, results[name], flush=True)
    report = {
        "command": command_line(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "timbrelab_commit": git("rev-parse", "--short", "HEAD"),
            "fluidsynth": package_version("pyfluidsynth"),
            "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        },
        "settings": {
            "tier": "quick",
            "steps_per_variant": args.steps,
            "seed": args.seed,
            "test_set": f"{args.test_pieces} mixtures of 1-3 instruments, "
            f"{args.test_seconds:g} s, seeds (EVAL_SEED_SALT, 3, i)",
            "frame_metrics": "salience peaks >= 0.5 rounded to keys, mir_eval multipitch",
            "ap": "average precision of the peak salience per key and frame vs the score",
            "sdr": "plain SDR of the reconstruction vs the input at the model's rate",
        },
        "caveat": CAVEAT,
    }
    write_merged_variants(args.results, report, results, VARIANTS)
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
