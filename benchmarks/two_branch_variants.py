"""Li & Zhu's Table 3 variants of the two-branch model at the quick tier, on one synthetic test set.

Every variant is the ``two_branch`` system's quick recipe with the same seed, data and number of
steps (its AMT branch the same shipped, frozen ``amt`` weights), changed by one ``model_config``
entry:

- ``Ours``: the convolutional timbre branch, D = 12, InfoNCE over active bins;
- ``D16``: D = 16;
- ``MSE``: deep clustering's affinity loss instead of InfoNCE;
- ``Share``: the timbre branch starts from the AMT branch's first residual block (frozen here;
  the paper retrained both branches for this row);
- ``Rescale``: hidden features multiplied by the frame posteriorgram before normalisation;
- ``Tanaka``: Tanaka et al.'s (2020) BiLSTM over the log CQT and the pitchgram, with InfoNCE.

Each trained model separates the same synthetic test pieces: mixtures of exactly 2, 3 and 4
instruments from different classes (half random, half ensemble scores, a soundfont drawn per
stem, expressive rendering, as in training; seeds never used in training), told the true number
of instruments, notes clustered at note level with spectral clustering. Scores are those of the
paper's Table 3 (:func:`timbrelab.systems.two_branch.separated_scores`): separated note and
frame F1 with the best assignment of clusters to instruments, and their ratio to the
timbre-agnostic note F1.

    nice -n 10 .venv/bin/python benchmarks/two_branch_variants.py --variants Ours,D16

Runs go to ``runs/two_branch_variants/<variant>`` (a finished one is reused: pass
``--retrain`` to start over); each call merges its variants into
``benchmarks/results/two_branch_variants.json``, so variants can train in parallel processes.

Chapter: book/05_contrastive_clustering.md
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

from timbrelab import systems
from timbrelab.evaluation import synthetic_test_mixture
from timbrelab.models import count_parameters
from timbrelab.pretrained import load_weights
from timbrelab.systems.two_branch import DATA_OPTIONS, STYLES, separated_scores
from timbrelab.training import save_weights

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "two_branch_variants.json"
#: Table 3's rows that fit the quick tier: model_config overrides.
VARIANTS: dict[str, dict] = {
    "Ours": {},
    "D16": {"embedding_dim": 16},
    "MSE": {"objective": "affinity"},
    "Share": {"share": True},
    "Rescale": {"rescale": True},
    "Tanaka": {"encoder": "blstm"},
}
#: Instruments per test mixture, as the paper's 2-, 3- and 4-mixes.
MIXES = (2, 3, 4)
CAVEAT = (
    "One seed, eight CPU minutes of training per variant on synthetic data only: differences "
    "of a few points are within what another seed would change; the paper's variants trained "
    "to convergence on MusicNet."
)


def test_pieces(per_mix: int, seconds: float, seed: int) -> dict[int, list]:
    """The fixed test set: ``per_mix`` mixtures of exactly K instruments for each K in
    :data:`MIXES`, alternating random and ensemble scores.

    Chapter: book/05_contrastive_clustering.md
    """
    return {
        k: [
            synthetic_test_mixture(
                i, seed * 10 + k, seconds, (k, k), style=STYLES[i % 2], **DATA_OPTIONS
            )
            for i in range(per_mix)
        ]
        for k in MIXES
    }


def mix_scores(system, model: torch.nn.Module, pieces: dict[int, list]) -> dict[str, dict]:
    """Mean Table 3 scores per number of instruments, each piece separated into its true K.

    Chapter: book/05_contrastive_clustering.md
    """
    results = {}
    for k, mixtures in pieces.items():
        rows = [
            separated_scores(piece.notes, system.infer(model, piece.audio, sources=k).notes)
            for piece in mixtures
        ]
        results[f"{k}mix"] = {
            key: round(float(np.mean([r[key] for r in rows])), 4) for key in rows[0]
        }
    return results


def train_variant(name: str, steps: int, seed: int, out: Path, cache: Path, retrain: bool):
    """The variant's trained model (its best validation checkpoint) and its training record."""
    system = systems.get("two_branch")
    weights = out / "weights.pt"
    if weights.exists() and not retrain:
        return load_weights(weights), json.loads((out / "run.json").read_text())
    recipe = system.recipe(
        "quick", seed, VARIANTS[name], data_options={"cache_dir": str(cache)},
        steps=steps, device="cpu", progress=False,
    )  # fmt: skip
    started = time.perf_counter()
    history = recipe.trainer(out).fit()
    info = {
        "train_seconds": round(time.perf_counter() - started, 1),
        "steps": steps,
        "best_val_separated_note_f1": max(h.get("separated_note_f1", 0.0) for h in history),
    }
    save_weights(recipe.model, weights)
    (out / "run.json").write_text(json.dumps(info))
    return recipe.model.eval(), info


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated rows")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the tier's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pieces-per-mix", type=int, default=6)
    p.add_argument("--test-seconds", type=float, default=8.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "two_branch_variants")
    p.add_argument("--cache", type=Path, default=ROOT / "runs" / "cache")
    p.add_argument("--retrain", action="store_true", help="train again even if a run exists")
    p.add_argument("--results", type=Path, default=RESULTS, help="JSON to merge results into")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    from timbrelab.systems.two_branch import TIERS

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    names = [n for n in args.variants.split(",") if n]
    unknown = set(names) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"two_branch_variants: unknown variant(s) {sorted(unknown)}")
    steps = args.steps or TIERS["quick"].config["steps"]
    system = systems.get("two_branch")
    pieces = test_pieces(args.pieces_per_mix, args.test_seconds, seed=5)
    results = {}
    for name in names:
        model, info = train_variant(
            name, steps, args.seed, args.runs / name, args.cache, args.retrain
        )
        results[name] = {
            **mix_scores(system, model, pieces),
            "parameters": count_parameters(model),
            "config": VARIANTS[name],
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
            "steps_per_variant": steps,
            "seed": args.seed,
            "test_set": f"{args.pieces_per_mix} mixtures each of exactly 2, 3 and 4 instruments, "
            f"{args.test_seconds:g} s, seeds (EVAL_SEED_SALT, 50 + K, i), random and ensemble "
            "scores alternating, soundfonts drawn per stem, expressive rendering",
            "decoding": "true K given; note-level spectral clustering; default thresholds",
            "scores": "separated note F1 (onsets within 50 ms) and frame F1 (10 ms grid), "
            "best assignment of clusters to instruments; ratio = separated / agnostic note F1",
        },
        "caveat": CAVEAT,
    }
    write_merged_variants(args.results, report, results, VARIANTS)
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
