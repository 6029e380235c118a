"""timbrelab's AMT against Basic Pitch: accuracy and CPU cost on the same audio files.

Both systems transcribe the same WAV files, read from disk by each system itself:

- a fixed synthetic test set (``--n-items`` mixtures of ``--seconds`` s, 1-4 instruments,
  ``SyntheticMixtures(seed=--seed)``; the training data uses seeds 1000 and 1001), written
  as float WAV at 22 050 Hz to a temporary folder;
- the Bach10 development pieces, when present (``--no-bach10`` skips them).

Scores, as fractions (printed as %):

- synthetic: FF, frame F1 of the decoded notes on a 10 ms grid; FN, note F1 (onset within
  50 ms, pitch within 50 cents); FNO, note F1 with offsets (``offset_ratio=0.2``)
  (``timbrelab.evaluation.transcription_scores``); mean over items;
- Bach10: FF, FN and FNO as in the data's README (``timbrelab.data.bach10.bach10_scores``); mean
  over pieces.

Speed: each model is loaded once (load time reported apart) and warmed up on one file; then
every file is transcribed (file -> notes, decoding included) and the process CPU time
(``time.process_time``, all threads) and wall time are summed and divided by the seconds of
audio. The two systems alternate file by file, so changes of the machine's load hit both.
timbrelab runs the path of ``timbrelab transcribe`` (``load_audio`` -> ``inference.transcribe``
= ``predict_posteriorgrams`` + ``decode.posteriorgram_to_notes``, default thresholds); Basic
Pitch runs ``basic_pitch.inference.predict`` with its default thresholds, its ONNX model
loaded once, and its notes are its ``note_events``. Torch and onnxruntime get ``--threads``
threads (default: the CPUs this process may use).

The command-line measurement (``--cli``, on by default when ``timbrelab transcribe --help``
works): one batch call of ``timbrelab transcribe`` over all files, minus one call on a 2 s
clip (interpreter start, imports, model load), divided by the audio seconds beyond those 2 s.

    python benchmarks/amt_vs_basic_pitch.py [--weights PATH] [--n-items 20] [--seconds 10]
        [--seed 3000] [--bach10 | --no-bach10] [--cli | --no-cli] [--threads N] [--out PATH]

``--weights`` takes a weights file (``timbrelab train`` / ``timbrelab.training.save_weights``) or a
training checkpoint (``checkpoint.pt``); the default is the shipped ``amt`` weights. Results
go to ``benchmarks/results/amt_vs_basic_pitch.json``. Needs ``benchmarks/requirements.txt``
and ``basic-pitch`` (installed with ``--no-deps``).

Chapter: book/02_focal_loss_amt.md
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import logging
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from cli_timing import CLI_BASELINE_SECONDS, run_cli
from provenance import git, package_version

from timbrelab.audio import load_audio, write_wav
from timbrelab.constants import SAMPLE_RATE
from timbrelab.notes import Note

SYSTEMS = ("timbrelab", "basic_pitch")
SCORE_KEYS = ("FF", "FN", "FNO")
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "amt_vs_basic_pitch.json"


# --- the two systems --------------------------------------------------------------------------


def load_timbrelab(weights: Path | None, device: str = "cpu") -> torch.nn.Module:
    """timbrelab's model from a weights file, a training checkpoint, or the shipped ``amt``.

    Chapter: book/02_focal_loss_amt.md
    """
    from timbrelab import pretrained, systems
    from timbrelab.io import load_checked

    if weights is None:
        return pretrained.load("amt", device)
    state = load_checked(weights, "weights file or checkpoint")
    if isinstance(state, dict) and {"model_name", "model_config", "model"} <= set(state):
        # a Trainer checkpoint: the model's state_dict sits next to optimiser state
        system = systems.get(state["model_name"])
        model = system.build_model(**(state["model_config"] or {}))
        model.load_state_dict(state["model"])
        return model.to(device).eval()
    return pretrained.load_weights(weights, device)


def timbrelab_notes(model: torch.nn.Module, path: Path) -> list[Note]:
    """What ``timbrelab transcribe`` computes for one file (default thresholds).

    Chapter: book/02_focal_loss_amt.md
    """
    from timbrelab.inference import transcribe

    return transcribe(model, load_audio(path))


def load_basic_pitch(threads: int):
    """Basic Pitch's bundled ICASSP 2022 model, on onnxruntime with ``threads`` threads.

    Chapter: book/02_focal_loss_amt.md
    """
    import onnxruntime as ort

    with _quiet_basic_pitch():
        from basic_pitch import ICASSP_2022_MODEL_PATH
        from basic_pitch.inference import Model

        model = Model(ICASSP_2022_MODEL_PATH)
    if model.model_type != Model.MODEL_TYPES.ONNX:
        raise RuntimeError(
            f"Basic Pitch loaded its {model.model_type.name} model; this benchmark runs the ONNX "
            "one (install onnxruntime, not TensorFlow)"
        )
    # Model() opens its session with onnxruntime's default threads; reopen it with ours
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    model.model = ort.InferenceSession(
        str(ICASSP_2022_MODEL_PATH), sess_options=options, providers=["CPUExecutionProvider"]
    )
    return model


def note_events_to_notes(events: Iterable[Sequence]) -> list[Note]:
    """Basic Pitch's ``note_events`` ``(start_s, end_s, pitch, amplitude, bends)`` as Notes.

    Pitch bends are dropped (the scores use semitone pitches); amplitude becomes velocity.

    Chapter: book/02_focal_loss_amt.md
    """
    notes = []
    for start, end, pitch, amplitude, _bends in events:
        velocity = int(np.clip(round(127 * float(amplitude)), 1, 127))
        notes.append(Note(float(start), float(end), int(pitch), velocity))
    return sorted(notes)


def basic_pitch_notes(model, path: Path) -> list[Note]:
    """Basic Pitch's notes for one file (its default thresholds).

    Chapter: book/02_focal_loss_amt.md
    """
    from basic_pitch.inference import predict

    with _quiet_basic_pitch():
        _, _, events = predict(path, model)
    return note_events_to_notes(events)


@contextlib.contextmanager
def _quiet_basic_pitch():
    """Basic Pitch logs a warning per missing backend and prints a line per file."""
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.disable(logging.NOTSET)


# --- measuring --------------------------------------------------------------------------------


def timed(fn: Callable[[], object]) -> tuple[object, float, float]:
    """``(result, process CPU seconds, wall seconds)`` of one call.

    Chapter: book/02_focal_loss_amt.md
    """
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn()
    return result, time.process_time() - cpu, time.perf_counter() - wall


def summarise(rows: list[dict], systems: Sequence[str] = SYSTEMS) -> dict[str, dict]:
    """Per system: mean scores over ``rows`` and CPU / wall seconds per second of audio.

    Each row has ``seconds`` and, per system, ``{"FF", "FN", "FNO", "cpu_s", "wall_s", ...}``.

    Chapter: book/02_focal_loss_amt.md
    """
    audio = sum(row["seconds"] for row in rows)
    summary = {}
    for system in systems:
        cells = [row[system] for row in rows if system in row]
        if not cells:
            continue
        entry = {key: float(np.mean([c[key] for c in cells])) for key in SCORE_KEYS}
        if all("cpu_s" in c for c in cells):
            cpu, wall = sum(c["cpu_s"] for c in cells), sum(c["wall_s"] for c in cells)
            entry |= {"cpu_s_per_audio_s": cpu / audio, "wall_s_per_audio_s": wall / audio}
        summary[system] = entry
    return summary


def run_pieces(pieces: list[dict], runners: dict[str, Callable[[Path], list[Note]]]) -> list[dict]:
    """Transcribe and score every piece with every system, alternating which system goes first.

    ``pieces``: dicts with ``name``, ``path``, ``seconds``, ``instruments`` and ``score``
    (est notes -> FF/FN/FNO). Returns one row per piece with each system's scores and times.

    Chapter: book/02_focal_loss_amt.md
    """
    rows = []
    for index, piece in enumerate(pieces):
        row = {key: piece[key] for key in ("name", "instruments", "seconds")}
        order = list(runners) if index % 2 == 0 else list(reversed(runners))
        for system in order:
            notes, cpu, wall = timed(lambda run=runners[system], path=piece["path"]: run(path))
            scores = piece["score"](notes)
            row[system] = {**scores, "n_notes": len(notes), "cpu_s": cpu, "wall_s": wall}
        rows.append(row)
    return rows


# --- data -------------------------------------------------------------------------------------


def synthetic_pieces(folder: Path, n_items: int, seconds: float, seed: int) -> list[dict]:
    """Render the synthetic test set to ``folder`` as float WAV; one dict per item.

    Chapter: book/02_focal_loss_amt.md
    """
    from timbrelab.data import SyntheticMixtures
    from timbrelab.evaluation import transcription_scores

    data = SyntheticMixtures(n_items, seconds=seconds, instruments=(1, 4), seed=seed)
    pieces = []
    for i in range(n_items):
        mixture = data.mixture(i)
        path = folder / f"synthetic_{seed}_{i:03d}.wav"
        write_wav(path, mixture.audio, mixture.sample_rate, subtype="FLOAT")
        pieces.append(
            {
                "name": path.stem,
                "path": path,
                "seconds": len(mixture.audio) / mixture.sample_rate,
                "instruments": mixture.n_sources,
                "score": lambda est, ref=mixture.notes: transcription_scores(ref, est),
            }
        )
    return pieces


def bach10_pieces() -> list[dict]:
    """The Bach10 pieces found by ``bach10_root()`` (empty when there are none).

    Chapter: book/02_focal_loss_amt.md
    """
    from timbrelab.audio import audio_duration
    from timbrelab.data.bach10 import bach10_root, list_pieces, load_piece

    root = bach10_root()
    if root is None:
        return []
    pieces = []
    for name in list_pieces(root):
        piece = load_piece(name, root)
        path = root / name / f"{name}.wav"
        pieces.append(
            {
                "name": name,
                "path": path,
                "seconds": audio_duration(path),
                "instruments": len(piece.parts),
                "score": piece.score,
            }
        )
    return pieces


def kaiser_best_check(model, pieces: list[dict], folder: Path) -> dict:
    """Basic Pitch on Bach10 with its input resampled by resampy's ``kaiser_best`` (untimed).

    librosa < 0.10 resampled with ``kaiser_best`` by default, librosa 0.11 uses soxr; the
    scores move by up to a point with the resampler, and the README's figures for Basic Pitch
    are reproduced with ``kaiser_best``.

    Chapter: book/02_focal_loss_amt.md
    """
    import librosa

    rows = []
    for piece in pieces:
        audio, _ = librosa.load(piece["path"], sr=SAMPLE_RATE, res_type="kaiser_best")
        path = folder / f"{piece['name']}_kaiser_best.wav"
        write_wav(path, audio, SAMPLE_RATE, subtype="FLOAT")
        rows.append(
            {
                "name": piece["name"],
                "seconds": piece["seconds"],
                "basic_pitch": piece["score"](basic_pitch_notes(model, path)),
            }
        )
    return {
        "what": "Basic Pitch, its input resampled to 22.05 kHz with resampy kaiser_best "
        "(librosa < 0.10's default), untimed",
        "pieces": rows,
        "mean": summarise(rows, ["basic_pitch"])["basic_pitch"],
    }


# --- the command line, as a user runs it ------------------------------------------------------


def cli_available() -> bool:
    """Whether ``timbrelab transcribe --help`` runs.

    Chapter: book/02_focal_loss_amt.md
    """
    exe = shutil.which("timbrelab") or str(Path(sys.executable).with_name("timbrelab"))
    try:
        done = subprocess.run([exe, "transcribe", "--help"], capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def cli_speed(
    model: torch.nn.Module, weights: Path | None, pieces: list[dict], folder: Path, threads: int
) -> dict:
    """The issue's measurement: a batch ``timbrelab transcribe`` call minus a 2 s call.

    Chapter: book/02_focal_loss_amt.md
    """
    from timbrelab.training import save_weights

    model_args = ["--device", "cpu"]
    if weights is not None:
        # the CLI reads weights files only: save the model we benchmark as one
        cli_weights = folder / "cli_weights.pt"
        save_weights(model, cli_weights)
        model_args += ["--weights", str(cli_weights)]
    first = load_audio(pieces[0]["path"])
    n = round(CLI_BASELINE_SECONDS * SAMPLE_RATE)
    middle = max(0, (len(first) - n) // 2)
    clip = folder / "cli_clip_2s.wav"
    write_wav(clip, first[middle : middle + n], SAMPLE_RATE, subtype="FLOAT")
    out = folder / "cli_out"
    files = [str(p["path"]) for p in pieces]
    baseline_wall, baseline_cpu = run_cli(
        ["transcribe", str(clip), "-o", str(folder / "clip.csv"), *model_args], threads
    )
    batch_wall, batch_cpu = run_cli(
        ["transcribe", *files, "-o", str(out), "--format", "csv", *model_args], threads
    )
    audio = sum(p["seconds"] for p in pieces)
    return {
        "what": "timbrelab transcribe over all files in one call, minus one call on a 2 s clip "
        "(start-up and model load), per second of audio beyond those 2 s",
        "files": len(files),
        "audio_s": audio,
        "batch_wall_s": batch_wall,
        "batch_cpu_s": batch_cpu,
        "baseline_2s_wall_s": baseline_wall,
        "baseline_2s_cpu_s": baseline_cpu,
        "wall_s_per_audio_s": (batch_wall - baseline_wall) / (audio - CLI_BASELINE_SECONDS),
        "cpu_s_per_audio_s": (batch_cpu - baseline_cpu) / (audio - CLI_BASELINE_SECONDS),
        "same_notes_as_in_process": _cli_matches(model, pieces, out),
    }


def _cli_matches(model: torch.nn.Module, pieces: list[dict], out: Path) -> bool:
    """Whether the CLI's CSV notes for the first file are the in-process notes."""
    from timbrelab.notes import read_notes

    def key(note: Note) -> tuple:
        return round(note.onset, 6), round(note.offset, 6), note.pitch

    ours = timbrelab_notes(model, pieces[0]["path"])
    theirs = read_notes(out / f"{Path(pieces[0]['path']).stem}.csv")
    return sorted(map(key, ours)) == sorted(map(key, theirs))


# --- report -----------------------------------------------------------------------------------


def _machine_info(threads: int) -> dict:
    """Machine, load, versions and repository state, for the record."""
    cpu_model = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "platform": platform.platform(),
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "threads": {"torch": torch.get_num_threads(), "onnxruntime_intra_op": threads},
        "load_average_at_start": list(os.getloadavg()),
        "versions": {
            "python": platform.pythonpackage_version(),
            **{
                p: package_version(p)
                for p in (
                    "timbrelab",
                    "torch",
                    "numpy",
                    "librosa",
                    "mir_eval",
                    "basic-pitch",
                    "onnxruntime",
                    "resampy",
                    "soxr",
                )
            },
        },
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain")),
    }


def _weights_info(source: Path | None, snapshot: Path | None) -> dict:
    from timbrelab.io import sha256_file

    if snapshot is None:
        return {"source": "timbrelab.pretrained.load('amt')"}
    info = {"source": str(source), "sha256": sha256_file(snapshot)}
    state = torch.load(snapshot, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "step" in state:
        info["checkpoint_step"] = state["step"]
    return info


def _print_table(report: dict) -> None:
    """The headline numbers, scores in %."""
    print(
        f"{'set':<10} {'system':<12} {'n':>3} {'FF':>6} {'FN':>6} {'FNO':>6} "
        f"{'CPU s/s':>8} {'wall s/s':>8}"
    )
    for name in ("synthetic", "bach10"):
        part = report.get(name)
        if not part:
            continue
        for system, entry in part["mean"].items():
            scores = "".join(f"{100 * entry[k]:7.1f}" for k in SCORE_KEYS)
            speed = f"{entry['cpu_s_per_audio_s']:9.3f}{entry['wall_s_per_audio_s']:9.3f}"
            print(f"{name:<10} {system:<12} {len(part['pieces']):>3}{scores} {speed}")
    check = report.get("bach10_kaiser_best_check")
    if check:
        scores = "".join(f"{100 * check['mean'][k]:7.1f}" for k in SCORE_KEYS)
        print(
            f"{'bach10':<10} {'basic_pitch*':<12} {len(check['pieces']):>3}{scores}"
            "   (* input resampled with kaiser_best; untimed)"
        )
    cli = report.get("cli")
    if cli and "cpu_s_per_audio_s" in cli:
        print(
            f"CLI (batch of {cli['files']} files minus a 2 s call): "
            f"{cli['wall_s_per_audio_s']:.3f} wall s/s, {cli['cpu_s_per_audio_s']:.3f} CPU s/s "
            f"(batch {cli['batch_wall_s']:.1f} s, 2 s call {cli['baseline_2s_wall_s']:.1f} s)"
        )
    elif cli:
        print(f"CLI: {cli['skipped']}")
    load = report["machine"]
    print(
        f"load average at start {load['load_average_at_start'][0]:.1f}, "
        f"at end {report['load_average_at_end'][0]:.1f} on {load['cpus_usable']} CPUs"
    )


def run_benchmark(args: argparse.Namespace, folder: Path) -> dict:
    """Run the whole benchmark for parsed ``args``; temporary files go to ``folder``.

    Returns the report (everything in the JSON file but the load average at the end).

    Chapter: book/02_focal_loss_amt.md
    """
    weights = None
    if args.weights is not None:
        # a training run may replace its checkpoint meanwhile: benchmark one snapshot of it
        weights = folder / "weights_snapshot.pt"
        shutil.copyfile(args.weights, weights)
    report: dict = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": _machine_info(args.threads),
        "weights": _weights_info(args.weights, weights),
        "load_s": {
            "note": "Basic Pitch's includes opening its ONNX session twice (see load_basic_pitch)"
        },
    }
    amt, cpu, wall = timed(lambda: load_timbrelab(weights))
    report["load_s"]["timbrelab"] = {"cpu_s": cpu, "wall_s": wall}
    bp, cpu, wall = timed(lambda: load_basic_pitch(args.threads))
    report["load_s"]["basic_pitch"] = {"cpu_s": cpu, "wall_s": wall}
    runners = {
        "timbrelab": lambda path: timbrelab_notes(amt, path),
        "basic_pitch": lambda path: basic_pitch_notes(bp, path),
    }
    synthetic = synthetic_pieces(folder, args.n_items, args.seconds, args.seed)
    for run in runners.values():  # warm-up (lazy initialisation), not timed
        run(synthetic[0]["path"])
    rows = run_pieces(synthetic, runners)
    report["synthetic"] = {"pieces": rows, "mean": summarise(rows)}
    everything = list(synthetic)
    bach10 = bach10_pieces() if args.bach10 else []
    if bach10:
        rows = run_pieces(bach10, runners)
        report["bach10"] = {"pieces": rows, "mean": summarise(rows)}
        report["bach10_kaiser_best_check"] = kaiser_best_check(bp, bach10, folder)
        everything += bach10
    # speed over every file (scores are not pooled: the two sets are scored differently)
    pooled = summarise(
        [*report["synthetic"]["pieces"], *report.get("bach10", {}).get("pieces", [])]
    )
    report["speed_all_files"] = {
        system: {k: v for k, v in entry.items() if k not in SCORE_KEYS}
        for system, entry in pooled.items()
    }
    if not args.cli:
        report["cli"] = {"skipped": "--no-cli"}
    elif not cli_available():
        report["cli"] = {"skipped": "`timbrelab transcribe --help` does not run"}
    else:
        report["cli"] = cli_speed(amt, weights, everything, folder, args.threads)
    return report


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="timbrelab weights file or training checkpoint (default: shipped amt)",
    )
    parser.add_argument("--n-items", type=int, default=20, help="synthetic items (default 20)")
    parser.add_argument("--seconds", type=float, default=10.0, help="item length (default 10)")
    parser.add_argument(
        "--seed",
        type=int,
        default=3000,
        help="SyntheticMixtures seed of the test set (training uses 1000, 1001)",
    )
    parser.add_argument(
        "--bach10",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also the Bach10 pieces, when present (default on)",
    )
    parser.add_argument(
        "--cli",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time the `timbrelab transcribe` command (default on)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="torch and onnxruntime threads (default: usable CPUs)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    args = parser.parse_args(argv)
    if args.n_items < 1 or args.seconds <= CLI_BASELINE_SECONDS or args.threads < 1:
        parser.error("--n-items and --threads must be >= 1 and --seconds > 2")
    if args.weights is not None and not args.weights.is_file():
        parser.error(f"--weights {args.weights}: no such file")

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="timbrelab-bench-") as tmp:
        report = run_benchmark(args, Path(tmp))
    report["load_average_at_end"] = list(os.getloadavg())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    _print_table(report)
    print(f"results: {args.out}")
    return report


if __name__ == "__main__":
    main()
