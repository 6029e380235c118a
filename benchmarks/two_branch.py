"""The shipped two-branch model: separated transcription of real and synthetic mixtures, K
estimation, note- vs frame-level clustering, and command-line speed.

1. **Bach10 dev mixes, through the CLI** (when the dev pieces are present): every combination
   of 2, 3 and 4 of a piece's parts (6 + 4 + 1 per piece) is summed from its stems and written
   as a 22 050 Hz WAV; one ``timbrelab transcribe --separate --sources K`` call per K
   transcribes all mixes of K parts; the CSV notes are read back and scored against the parts'
   ground-truth notes (the data's ``GTNotes``): separated note F1 (onset within 50 ms) and
   separated frame F1 (10 ms grid), each part against its best-assigned cluster, and their
   ratio to the timbre-agnostic note F1 (:func:`timbrelab.systems.two_branch.separated_scores`).
   Chapter 4's ``cerberus_quartet`` (the same instruments, a fixed line-up of four sources) is
   scored on the same mixes in process for comparison.
2. **Speed through the CLI**: the 2-part batch call minus a call on a 2 s clip (start-up and
   model load), CPU seconds per second of audio beyond the clip, as the issue measures it.
3. **Synthetic test set** (in process): mixtures of exactly 2, 3 and 4 instruments (the test
   set of ``two_branch_variants.py`` with another seed), told K: separated scores at note
   level and at frame level (the paper's Figure 3 comparison); and K estimated by the
   eigengap and by the silhouette: how often each finds the true K.

    nice -n 5 .venv/bin/python benchmarks/two_branch.py [--weights PATH] [--threads 1]

Results: ``benchmarks/results/two_branch.json``.

Chapter: book/05_contrastive_clustering.md
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from cli_timing import CLI_BASELINE_SECONDS, run_cli
from provenance import command_line, git
from two_branch_variants import MIXES, test_pieces

from timbrelab import systems
from timbrelab.audio import write_wav
from timbrelab.constants import SAMPLE_RATE
from timbrelab.data.bach10 import PARTS, bach10_root, list_pieces, load_piece
from timbrelab.decode.clustering import ESTIMATORS
from timbrelab.io import atomic_output
from timbrelab.notes import Note, read_notes
from timbrelab.systems.two_branch import analyse, separate_notes, separated_scores

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "two_branch.json"
#: Li & Zhu's published model on real 2/3/4-part mixes, as the issue measured it (%).
PUBLISHED = {
    "separated_note_f1": {"2mix": 83.3, "3mix": 78.8, "4mix": 69.4},
    "separated_frame_f1": {"2mix": 83.9, "3mix": 79.3, "4mix": 68.9},
    "cpu_s_per_audio_s": 0.012,
}
TARGET = {
    "separated_note_f1": {"2mix": 85.0, "3mix": 81.0, "4mix": 72.0},
    "cpu_s_per_audio_s": 0.010,
}


def mean_scores(rows: list[dict]) -> dict[str, float]:
    """Means of :func:`separated_scores` rows, rounded."""
    return {key: round(float(np.mean([r[key] for r in rows])), 4) for key in rows[0]}


def bach10_mixes(folder: Path) -> list[dict]:
    """Every 2-, 3- and 4-part mix of the dev pieces, written to ``folder``: dicts with the
    file, K, the parts and the reference notes (``source`` = index among the parts)."""
    mixes = []
    for name in list_pieces():
        piece = load_piece(name, sample_rate=SAMPLE_RATE)
        for k in MIXES:
            for parts in itertools.combinations(range(len(PARTS)), k):
                path = folder / f"{piece.name}_{'-'.join(PARTS[p] for p in parts)}.wav"
                audio = piece.stems[list(parts)].sum(axis=0)
                write_wav(path, audio, SAMPLE_RATE, subtype="FLOAT")
                notes = [
                    Note(n.onset, n.offset, n.pitch, n.velocity, parts.index(n.source))
                    for n in piece.notes
                    if n.source in parts
                ]
                mixes.append({"path": path, "k": k, "notes": sorted(notes), "audio": audio})
    return mixes


def bach10_through_cli(mixes: list[dict], weights: list[str], folder: Path, threads: int):
    """Scores per K of the CLI's notes, and the CLI's speed on the 2-part mixes."""
    scores, speed = {}, {}
    for k in MIXES:
        group = [m for m in mixes if m["k"] == k]
        out = folder / f"cli_{k}"
        wall, cpu = run_cli(
            ["transcribe", "--separate", "--sources", str(k), *[str(m["path"]) for m in group],
             "-o", str(out), "--format", "csv", "--device", "cpu", *weights],
            threads,
        )  # fmt: skip
        rows = [
            separated_scores(m["notes"], read_notes(out / f"{m['path'].stem}.csv")) for m in group
        ]
        scores[f"{k}mix"] = {**mean_scores(rows), "mixes": len(group)}
        if k == 2:
            clip = folder / "clip_2s.wav"
            n = round(CLI_BASELINE_SECONDS * SAMPLE_RATE)
            write_wav(clip, group[0]["audio"][:n], SAMPLE_RATE, subtype="FLOAT")
            base_wall, base_cpu = run_cli(
                ["transcribe", "--separate", "--sources", "2", str(clip), "-o",
                 str(folder / "clip.csv"), "--device", "cpu", *weights],
                threads,
            )  # fmt: skip
            audio_s = sum(len(m["audio"]) for m in group) / SAMPLE_RATE
            speed = {
                "what": "timbrelab transcribe --separate --sources 2 over all 2-part mixes in one "
                "call, minus one call on a 2 s clip (start-up and model load), per second of "
                "audio beyond those 2 s",
                "files": len(group),
                "audio_s": round(audio_s, 1),
                "batch_cpu_s": round(cpu, 2),
                "baseline_2s_cpu_s": round(base_cpu, 2),
                "cpu_s_per_audio_s": round((cpu - base_cpu) / (audio_s - CLI_BASELINE_SECONDS), 4),
                "wall_s_per_audio_s": round(
                    (wall - base_wall) / (audio_s - CLI_BASELINE_SECONDS), 4
                ),
            }
    return scores, speed


def cerberus_on(mixes: list[dict]) -> dict:
    """``cerberus_quartet``'s separated scores on the same mixes, per K (in process)."""
    from timbrelab.audio import resample

    system = systems.get("cerberus_quartet")
    model = system.load()
    results = {}
    for k in MIXES:
        rows = []
        for m in (m for m in mixes if m["k"] == k):
            audio = resample(m["audio"], SAMPLE_RATE, system.sample_rate)
            rows.append(separated_scores(m["notes"], system.infer(model, audio).notes))
        results[f"{k}mix"] = mean_scores(rows)
    return results


def synthetic(model: torch.nn.Module, per_mix: int, seconds: float) -> dict:
    """Note- vs frame-level scores with K given, and K-estimation accuracy, per K."""
    results = {}
    for k, pieces in test_pieces(per_mix, seconds, seed=7).items():
        analyses = [analyse(model, piece.audio) for piece in pieces]
        row = {}
        for level in ("note", "frame"):
            scores = [
                separated_scores(p.notes, separate_notes(a, sources=k, level=level)[0])
                for p, a in zip(pieces, analyses, strict=True)
            ]
            row[f"{level}_level"] = mean_scores(scores)
        for estimator in ESTIMATORS:
            found = [separate_notes(a, estimator=estimator)[1] for a in analyses]
            row[f"k_{estimator}"] = {
                "accuracy": round(float(np.mean([f == k for f in found])), 4),
                "estimates": found,
            }
        results[f"{k}mix"] = row
    return results


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, default=None, help="default: the shipped weights")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--pieces-per-mix", type=int, default=8)
    p.add_argument("--test-seconds", type=float, default=10.0)
    p.add_argument("--results", type=Path, default=RESULTS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    system = systems.get("two_branch")
    model = system.load(weights=args.weights)
    weights = ["--weights", str(args.weights)] if args.weights else []
    report: dict = {
        "command": command_line(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "threads": args.threads,
            "torch": torch.__version__,
            "timbrelab_commit": git("rev-parse", "--short", "HEAD"),
            "load_average_1min_at_start": round(os.getloadavg()[0], 2),
        },
        "weights": str(args.weights) if args.weights else "shipped two_branch",
        "published": PUBLISHED,
        "target": TARGET,
    }
    if bach10_root() is not None:
        with tempfile.TemporaryDirectory() as tmp:
            mixes = bach10_mixes(Path(tmp))
            scores, speed = bach10_through_cli(mixes, weights, Path(tmp), args.threads)
            report["bach10_dev_mixes"] = {
                "pieces": list_pieces(),
                "two_branch_cli": scores,
                "cerberus_quartet": cerberus_on(mixes),
            }
            report["cli_speed"] = speed
        print(json.dumps(report["bach10_dev_mixes"], indent=1), report["cli_speed"], flush=True)
    report["synthetic"] = {
        "test_set": f"{args.pieces_per_mix} mixtures each of exactly 2, 3 and 4 instruments, "
        f"{args.test_seconds:g} s, seeds (EVAL_SEED_SALT, 70 + K, i), random and ensemble "
        "scores alternating, soundfonts drawn per stem, expressive rendering",
        "results": synthetic(model, args.pieces_per_mix, args.test_seconds),
    }
    print(json.dumps(report["synthetic"]["results"], indent=1), flush=True)
    report["machine"]["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(args.results) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
