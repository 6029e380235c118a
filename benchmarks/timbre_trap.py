"""Timbre-Trap beside Chapter 2's ``amt``: transcription, reconstruction and CPU cost.

Both systems run through the registry as the CLI runs them (``system.infer_file`` on a WAV
file: reading, resampling, the network and note decoding all count) on the same files:

- a fixed synthetic test set: ``--n-items`` mixtures of 1-3 instruments, ``--seconds`` long,
  rendered with the evaluation seeds ``(EVAL_SEED_SALT, --seed, i)`` and written as float WAV
  at 22 050 Hz;
- the Bach10 development pieces, when present.

Scores: FF (frame F1 of the decoded notes, 10 ms grid), FN (note F1, onsets within 50 ms),
FNO (note F1 with offsets) by :func:`timbrelab.evaluation.transcription_scores` on synthetic
pieces and by the Bach10 ground truth (``Piece.score``) on real ones, as means over pieces;
for Timbre-Trap also the SDR of its reconstruction against the input resampled to the model's
rate. Speed: process CPU seconds (all threads) per second of audio, models loaded once and
warmed up; the two systems alternate file by file.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/timbre_trap.py [--weights PATH] [--no-bach10]

Results go to ``benchmarks/results/timbre_trap.json``.

Chapter: book/03_timbre_trap.md
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from provenance import command_line, git

from timbrelab import systems
from timbrelab.audio import load_audio, write_wav
from timbrelab.constants import SAMPLE_RATE
from timbrelab.data import bach10_root, list_pieces, load_piece
from timbrelab.evaluation import synthetic_test_mixture, transcription_scores
from timbrelab.io import atomic_output
from timbrelab.metrics import sdr

RESULTS = Path(__file__).resolve().parent / "results" / "timbre_trap.json"
SYSTEMS = ("amt", "timbre_trap")


def synthetic_files(folder: Path, n_items: int, seconds: float, seed: int) -> list[dict]:
    """Write the synthetic test set; each piece: name, path, seconds, a scoring function."""
    pieces = []
    for i in range(n_items):
        mix = synthetic_test_mixture(i, seed, seconds, (1, 3))
        path = folder / f"synthetic-{i}.wav"
        write_wav(path, mix.audio, SAMPLE_RATE, subtype="FLOAT")
        score = functools.partial(transcription_scores, mix.notes)
        pieces.append(dict(name=path.stem, set="synthetic", path=path, seconds=seconds,
                           score=score))  # fmt: skip
    return pieces


def bach10_files(folder: Path) -> list[dict]:
    """The Bach10 pieces found locally, mixes written as WAV at 22 050 Hz (not kept)."""
    root = bach10_root()
    pieces = []
    for name in list_pieces(root) if root is not None else []:
        piece = load_piece(name, root)
        path = folder / f"{name}.wav"
        write_wav(path, piece.mix, SAMPLE_RATE, subtype="FLOAT")
        pieces.append(dict(name=name, set="bach10", path=path,
                           seconds=len(piece.mix) / SAMPLE_RATE, score=piece.score))  # fmt: skip
    return pieces


def run(pieces: list[dict], loaded: dict) -> list[dict]:
    rows = []
    for piece in pieces:
        for name, (system, model) in loaded.items():
            cpu = time.process_time()
            out = system.infer_file(model, piece["path"])
            cpu = time.process_time() - cpu
            row = {"piece": piece["name"], "set": piece["set"], "system": name,
                   "cpu_per_audio_second": cpu / piece["seconds"],
                   **piece["score"](out.notes)}  # fmt: skip
            if out.reconstruction is not None:
                heard = load_audio(piece["path"], out.sample_rate)
                row["sdr"] = float(sdr(heard, out.reconstruction[: len(heard)]))
            rows.append(row)
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()},
                  flush=True)  # fmt: skip
    return rows


def summarise(rows: list[dict]) -> dict:
    summary = {}
    for subset in sorted({r["set"] for r in rows}):
        for name in SYSTEMS:
            mine = [r for r in rows if r["set"] == subset and r["system"] == name]
            keys = [k for k in ("FF", "FN", "FNO", "sdr", "cpu_per_audio_second") if k in mine[0]]
            summary.setdefault(subset, {})[name] = {
                k: round(float(np.mean([r[k] for r in mine])), 4) for k in keys
            } | {"pieces": len(mine)}
    return summary


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, default=None,
                   help="timbre_trap weights (default: the shipped ones)")  # fmt: skip
    p.add_argument("--n-items", type=int, default=12)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--no-bach10", dest="bach10", action="store_false",
                   help="skip the Bach10 pieces even when they are found")  # fmt: skip
    p.add_argument("--out", type=Path, default=RESULTS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    loaded = {}
    for name in SYSTEMS:
        system = systems.get(name)
        weights = args.weights if name == "timbre_trap" else None
        loaded[name] = (system, system.load("cpu", weights))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pieces = synthetic_files(folder, args.n_items, args.seconds, args.seed)
        if args.bach10:
            pieces += bach10_files(folder)
        warm = pieces[0]["path"]
        for system, model in loaded.values():  # first-call costs (plans, caches) excluded
            system.infer_file(model, warm)
        rows = run(pieces, loaded)
    tt = loaded["timbre_trap"][1]
    report = {
        "command": command_line(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average_1min_at_end": round(os.getloadavg()[0], 2),
            "timbrelab_commit": git("rev-parse", "--short", "HEAD"),
        },
        "timbre_trap_weights": str(args.weights or "shipped timbre_trap"),
        "timbre_trap_config": {k: getattr(tt.config, k) for k in vars(tt.config)},
        "summary": summarise(rows),
        "pieces": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(args.out) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["summary"], indent=2))


if __name__ == "__main__":
    main()
