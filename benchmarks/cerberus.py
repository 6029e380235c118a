"""Cerberus on synthetic test sets, on mixes of Bach10 stems, and its heads compared.

Three parts, each written to its own JSON file under ``benchmarks/results/``:

- ``synthetic`` (``cerberus.json``): the shipped ``cerberus`` and ``cerberus_quartet`` on a
  fixed synthetic test set of their line-up (seeds never used in training). Per source:
  SDR (the paper's scale-dependent measure, :func:`timbrelab.metrics.sdr`), SI-SDR, and note
  F1 (onsets within 50 ms, offsets ignored; drums as onsets), source ``k`` of the output
  against instrument ``k``. CPU seconds per audio second of inference on one thread.
- ``bach10`` (``cerberus_bach10.json``): ``cerberus_quartet`` through the command line
  (``timbrelab separate``) on every 2-, 3- and 4-part mix of the stems of each Bach10 dev
  piece. Mean SDR of the parts in the mix (output ``k`` against part ``k``) and the mean
  per-instrument note F1 with the best assignment of outputs to parts
  (:func:`timbrelab.metrics.separated_note_scores`), the measure Li & Zhu report.
- ``thresholds`` (``cerberus_thresholds.json``): the decoding thresholds of the shipped
  weights (frame threshold of the pitched sources, onset threshold of the drums) that give
  the best mean note F1 on the validation items (seed 1, as in training), not on the test
  set; the systems use them as defaults (``CerberusSystem.thresholds``).
- ``heads`` (``cerberus_heads.json``): the paper's Table 1 at the quick tier: seven networks
  on piano + guitar, one per head subset, same seed, data and steps; SDR (mask head, else
  k-means with the best assignment) and note F1 on a synthetic test set, each network's
  decoding thresholds chosen on validation items first.

::

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/cerberus.py synthetic bach10
    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/cerberus.py heads --steps 300

Chapter: book/04_cerberus.md
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import itertools
import json
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from provenance import git, package_version

from timbrelab import systems
from timbrelab.audio import load_audio, write_wav
from timbrelab.constants import MIDI_MIN, SAMPLE_RATE_16K
from timbrelab.data.gm import DRUM_PROGRAM
from timbrelab.metrics import note_scores, separated_note_scores
from timbrelab.models import count_parameters
from timbrelab.notes import read_notes, roll_to_notes
from timbrelab.systems.cerberus import (
    CerberusSystem,
    separate,
    separation_scores,
    source_names,
    transcription_targets,
)

RESULTS = Path(__file__).resolve().parent / "results"
#: Seed of the synthetic test sets: training uses seeds 0 and 1 (2 * seed, 2 * seed + 1).
TEST_SEED = 1000
#: Table 1's line-up: piano and (steel-string) guitar.
DUO = (0, 25)
HEAD_SUBSETS = ("dc", "mi", "tr", "dc,mi", "dc,tr", "mi,tr", "dc,mi,tr")


def run_info(threads: int) -> dict:
    """Command, date, machine and repository state of a run."""
    return {
        "command": " ".join(["python", *sys.argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "torch_threads": threads,
            "torch": package_version("torch"),
        },
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain")),
    }


def score_item(model: torch.nn.Module, item: dict, **options: object) -> dict:
    """Separate and transcribe one :class:`LineupMixtures` item and score it per source
    (``options``: of :func:`timbrelab.systems.cerberus.separate`).

    Returns ``sdr``, ``si_sdr``, ``note_f1`` (``(S,)`` lists; NaN for a silent source),
    ``cpu_s`` and ``seconds`` of audio.
    """
    programs = model.config.programs
    started = time.process_time()
    result = separate(model, item["audio"].numpy(), **options)
    cpu = time.process_time() - started
    n = len(programs)
    scores = {"sdr": np.full(n, np.nan), "si_sdr": np.full(n, np.nan)}
    if result.stems is not None:  # k-means clusters come in any order
        kmeans = result.method == "kmeans"
        scores = separation_scores(item["stems"].numpy(), result.stems, best_assignment=kmeans)
    f1 = [float("nan")] * len(programs)
    if result.probabilities is not None:
        targets = transcription_targets(item["stem_frame"][None], programs)[0].numpy()
        rate = SAMPLE_RATE_16K / model.config.hop_length
        for k in range(len(programs)):
            reference = roll_to_notes(targets[k], rate, MIDI_MIN, k)
            estimate = [n for n in result.notes if n.source == k]
            f1[k] = note_scores(reference, estimate)["f1"]
    return {
        "sdr": scores["sdr"].tolist(),
        "si_sdr": scores["si_sdr"].tolist(),
        "note_f1": f1,
        "cpu_s": cpu,
        "seconds": len(item["audio"]) / SAMPLE_RATE_16K,
    }


def summarise(rows: list[dict], names: Sequence[str]) -> dict:
    """Means over items, per source and overall; CPU seconds per audio second."""
    summary: dict = {}
    for key in ("sdr", "si_sdr", "note_f1"):
        table = np.array([row[key] for row in rows], float)
        if np.isnan(table).all():
            continue
        per_source = np.nanmean(table, axis=0)
        summary[key] = {
            "mean": float(np.nanmean(per_source)),
            "per_source": dict(zip(names, per_source.round(4).tolist(), strict=True)),
        }
    summary["cpu_s_per_audio_s"] = sum(r["cpu_s"] for r in rows) / sum(r["seconds"] for r in rows)
    return summary


def run_synthetic(n_items: int, seconds: float) -> dict:
    report = {}
    for name in ("cerberus", "cerberus_quartet"):
        system = systems.get(name)
        model = system.load()
        test = system.data(n_items, seconds, TEST_SEED)
        rows = [score_item(model, test[i], **system.thresholds) for i in range(n_items)]
        report[name] = {
            "items": n_items,
            "seconds": seconds,
            "seed": TEST_SEED,
            "programs": list(system.programs),
            **summarise(rows, source_names(system.programs)),
        }
    return report


def run_bach10(folder: Path, sizes: Sequence[int] = (2, 3, 4)) -> dict:
    """``cerberus_quartet`` through ``timbrelab separate`` on every K-part mix of each piece."""
    from timbrelab.cli import main
    from timbrelab.data.bach10 import PARTS, bach10_root, list_pieces, load_piece

    if bach10_root() is None:
        return {"skipped": "no Bach10 folder"}
    rows = []
    for piece_name in list_pieces():
        piece = load_piece(piece_name, sample_rate=16000)
        for k in sizes:
            for parts in itertools.combinations(range(len(PARTS)), k):
                tag = f"{piece.name}-{''.join(str(p) for p in parts)}"
                write_wav(folder / f"{tag}.wav", piece.stems[list(parts)].sum(0), 16000)
                started = time.perf_counter()
                code = main(
                    [
                        "separate",
                        "--model",
                        "cerberus_quartet",
                        "--device",
                        "cpu",
                        str(folder / f"{tag}.wav"),
                        "-o",
                        str(folder / "out"),
                    ]
                )
                wall = time.perf_counter() - started
                if code != 0:
                    raise RuntimeError(f"timbrelab separate failed on {tag}")
                # DIR/<input>/<k>_<instrument>.wav and .mid, k in line-up order
                files = sorted(
                    (folder / "out" / tag).glob("*.wav"),
                    key=lambda path: int(path.name.split("_")[0]),
                )
                estimates = np.stack([load_audio(path, 16000) for path in files])
                notes = [n for path in files for n in read_notes(path.with_suffix(".mid"))]
                reference = [n for n in piece.notes if n.source in parts]
                sdr = separation_scores(piece.stems[list(parts)], estimates[list(parts)])["sdr"]
                best = separated_note_scores(reference, notes)
                fixed = [
                    note_scores(
                        [n for n in reference if n.source == p], [n for n in notes if n.source == p]
                    )["f1"]
                    for p in parts
                ]
                rows.append(
                    {
                        "mix": tag,
                        "parts": [PARTS[p] for p in parts],
                        "k": k,
                        "sdr": float(np.nanmean(sdr)),
                        "note_f1": best["f1"],
                        "note_f1_fixed": float(np.mean(fixed)),
                        "wall_s_per_audio_s": wall / (piece.stems.shape[1] / 16000),
                    }
                )
    by_k = {}
    for k in sizes:
        picked = [r for r in rows if r["k"] == k]
        by_k[str(k)] = {
            key: float(np.mean([r[key] for r in picked]))
            for key in ("sdr", "note_f1", "note_f1_fixed", "wall_s_per_audio_s")
        }
        by_k[str(k)]["mixes"] = len(picked)
    return {"by_k": by_k, "mixes": rows, "li_zhu_note_f1": {"2": 0.833, "3": 0.788, "4": 0.694}}


#: Threshold grid of the ``thresholds`` part.
THRESHOLDS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6)


def threshold_sweep(model: torch.nn.Module, items: list[dict]) -> dict:
    """Mean note F1 of the transcription head on ``items`` at each of :data:`THRESHOLDS`
    (frame threshold for pitched sources, onset threshold for drums), and the best of each."""
    programs = model.config.programs
    rate = SAMPLE_RATE_16K / model.config.hop_length
    table: dict[str, list] = {"frame": [], "onset": []}
    for item in items:
        # thresholds act on the transcription head only: no need to separate
        with torch.inference_mode():
            logits = model(item["audio"][None], heads=("tr",))["transcription"][0]
        probabilities = torch.sigmoid(logits).numpy()
        targets = transcription_targets(item["stem_frame"][None], programs)[0].numpy()
        for k, program in enumerate(programs):
            reference = roll_to_notes(targets[k], rate, MIDI_MIN, k)
            table["onset" if program == DRUM_PROGRAM else "frame"].append(
                [
                    note_scores(reference, roll_to_notes(probabilities[k], rate, MIDI_MIN, k, t))[
                        "f1"
                    ]
                    for t in THRESHOLDS
                ]
            )
    f1 = {kind: np.mean(rows, axis=0) for kind, rows in table.items() if rows}
    return {
        "f1": {
            kind: dict(zip(map(str, THRESHOLDS), v.round(4).tolist(), strict=True))
            for kind, v in f1.items()
        },
        "best": {f"{kind}_threshold": THRESHOLDS[int(np.argmax(v))] for kind, v in f1.items()},
    }


def run_thresholds(n_items: int) -> dict:
    """Per shipped system, the threshold sweep on its validation items (seed 1)."""
    report = {}
    for name in ("cerberus", "cerberus_quartet"):
        system = systems.get(name)
        validation = system.data(n_items, 5.0, seed=1)
        sweep = threshold_sweep(system.load(), [validation[i] for i in range(n_items)])
        report[name] = {"items": n_items, **sweep}
    return report


def run_heads(
    steps: int, batch_size: int, seconds: float, n_test: int, seed: int, folder: Path
) -> dict:
    """Table 1 at the quick tier: one network per head subset on piano + guitar, trained on
    the same ``seconds``-long items (shorter than the 5 s test items, to fit a CPU budget),
    without validation, keeping the last weights."""
    system: CerberusSystem = systems.get("cerberus")
    test = system.data(n_test, 5.0, TEST_SEED, DUO)
    validation = system.data(n_test, 5.0, 2 * seed + 1, DUO)
    validation = [validation[i] for i in range(n_test)]
    train = system.data(512, seconds, 2 * seed, DUO, cache_dir=str(folder / "cache"))
    report = {
        "programs": list(DUO),
        "steps": steps,
        "batch_size": batch_size,
        "train_seconds": seconds,
        "seed": seed,
        "test_items": n_test,
        "rows": {},
    }
    for heads in HEAD_SUBSETS:
        recipe = system.recipe(
            "quick",
            seed=seed,
            model_config={"programs": DUO, "heads": heads},
            steps=steps,
            batch_size=batch_size,
            progress=False,
            eval_every=steps,
            checkpoint_every=steps,
            monitor=None,
        )
        recipe = dataclasses.replace(recipe, train_data=train, val_data=None)
        started = time.perf_counter()
        recipe.trainer(folder / heads.replace(",", "+")).fit()
        wall = time.perf_counter() - started
        model = recipe.model.eval()
        # decoding thresholds chosen on validation items, as for the shipped weights
        thresholds = threshold_sweep(model, validation)["best"] if "tr" in heads else {}
        rows = [score_item(model, test[i], **thresholds) for i in range(n_test)]
        summary = summarise(rows, source_names(DUO))
        report["rows"][heads] = {
            "train_wall_s": round(wall, 1),
            "parameters": count_parameters(model),
            "thresholds": thresholds,
            **summary,
        }
        print(
            heads,
            json.dumps({k: v.get("mean") for k, v in summary.items() if isinstance(v, dict)}),
            flush=True,
        )
    return report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="+", choices=["thresholds", "synthetic", "bach10", "heads"])
    parser.add_argument("--items", type=int, default=16, help="synthetic test items")
    parser.add_argument("--steps", type=int, default=300, help="training steps per head subset")
    parser.add_argument("--batch-size", type=int, default=4, help="head table batch size")
    parser.add_argument("--seconds", type=float, default=2.5, help="head table item length")
    parser.add_argument("--test-items", type=int, default=8, help="head table test items")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    RESULTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        outputs = {
            "synthetic": ("cerberus.json", lambda: run_synthetic(args.items, 5.0)),
            "thresholds": ("cerberus_thresholds.json", lambda: run_thresholds(args.items)),
            "bach10": ("cerberus_bach10.json", lambda: run_bach10(folder)),
            "heads": (
                "cerberus_heads.json",
                lambda: run_heads(
                    args.steps, args.batch_size, args.seconds, args.test_items, args.seed, folder
                ),
            ),
        }
        for part in args.parts:
            name, run = outputs[part]
            report = {**run_info(torch.get_num_threads()), part: run()}
            (RESULTS / name).write_text(json.dumps(report, indent=1) + "\n")
            print(f"wrote {RESULTS / name}")


if __name__ == "__main__":
    main()
