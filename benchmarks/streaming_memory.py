"""Peak memory and time of transcribing long recordings, 1 minute to 1 hour.

Issue: memory grew with the recording (a 1-hour 44.1 kHz stereo file peaked at 2.7 GB), because
the whole file, its posteriorgrams and the note search were held at once. ``timbrelab
transcribe`` now runs :func:`timbrelab.inference.transcribe_file`, which streams the file in
blocks and decodes notes piece by piece; its peak memory should not grow with the length.

Each case is a WAV file (16-bit PCM) written to a temporary folder and never kept: a synthetic
mixture (3 instruments, 60 s, rendered at the file's rate) repeated to the length, mono at
22 050 Hz (the model's rate) or stereo at 44 100 Hz (resampled while read; the right channel is
the left one 10 ms later and 2 dB quieter). Each run is a fresh process, and its peak resident
set size is that process's own ``ru_maxrss`` (from ``os.wait4``), model loading and Python
start-up included; CPU seconds are recorded beside wall seconds, which a busy machine inflates.
Paths (``--paths``), i.e. what the process runs:

* ``cli``: ``timbrelab transcribe FILE -o OUT.mid --device cpu``, as a user runs it;
* ``file``: ``transcribe_file(pretrained.load("amt"), FILE)`` in ``python -c``, the streaming
  path without the CLI around it;
* ``memory``: ``transcribe(model, load_audio(FILE))`` in ``python -c``, the in-memory path,
  for comparison.

Every run writes its notes as MIDI; the report has the file's SHA-256, so equal hashes across
paths mean equal notes. Results go to ``benchmarks/results/streaming_memory.json`` with the
command, date and machine.

Chapter: book/02_focal_loss_amt.md
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
from provenance import git, package_version

from timbrelab.data.mixtures import make_mixture
from timbrelab.notes import read_notes

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "streaming_memory.json"
#: File layouts: name -> (sample rate, channels).
LAYOUTS = {"mono22k": (22050, 1), "stereo44k": (44100, 2)}
EXCERPT_SECONDS = 60.0
PATHS = ("cli", "file", "memory")

#: What a ``file`` or ``memory`` run executes: ``python -c CHILD PATH MODE OUT``.
CHILD = """
import sys
from timbrelab import pretrained
from timbrelab.audio import load_audio
from timbrelab.inference import transcribe, transcribe_file
from timbrelab.notes import write_notes
path, mode, out = sys.argv[1:]
model = pretrained.load("amt", "cpu")
notes = transcribe_file(model, path) if mode == "file" else transcribe(model, load_audio(path))
write_notes(notes, out)
"""


def write_test_file(path: Path, seconds: float, layout: str, seed: int = 0) -> None:
    """A WAV file of ``seconds``: one rendered mixture repeated, written a repeat at a time."""
    rate, channels = LAYOUTS[layout]
    excerpt = make_mixture(3, EXCERPT_SECONDS, seed=(seed, rate), sample_rate=rate).audio
    if channels == 2:
        excerpt = np.stack([excerpt, 0.8 * np.roll(excerpt, round(0.01 * rate))], axis=1)
    remaining = round(seconds * rate)
    with soundfile.SoundFile(path, "w", rate, channels, subtype="PCM_16", format="WAV") as f:
        while remaining > 0:
            f.write(excerpt[:remaining])
            remaining -= len(excerpt)


def child_command(path_kind: str, audio: Path, midi: Path) -> list[str]:
    """The command a run of ``path_kind`` executes."""
    if path_kind == "cli":
        exe = shutil.which("timbrelab") or str(Path(sys.executable).with_name("timbrelab"))
        return [exe, "transcribe", str(audio), "-o", str(midi), "--device", "cpu"]
    return [sys.executable, "-c", CHILD, str(audio), path_kind, str(midi)]


def measure(command: list[str], log: Path) -> dict:
    """Run ``command`` in a fresh process: its own peak RSS (MB), wall and CPU seconds."""
    with log.open("w") as out:
        wall = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        # wait4 reports this child's own usage (RUSAGE_CHILDREN would keep the largest so far)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - wall
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{shlex.join(command)} failed:\n{log.read_text()[-3000:]}")
    return {
        "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux reports kilobytes
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
    }


def run_case(path_kind: str, audio: Path, folder: Path) -> dict:
    """One transcription run and what it wrote."""
    midi = folder / f"{audio.stem}-{path_kind}.mid"
    row = measure(child_command(path_kind, audio, midi), folder / f"{midi.stem}.log")
    row["n_notes"] = len(read_notes(midi))
    row["midi_sha256"] = hashlib.sha256(midi.read_bytes()).hexdigest()
    midi.unlink()
    return row


def machine_info() -> dict:
    """Machine, memory, load, versions and repository state, for the record."""
    cpu_model = memory_total = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_total = int(line.split()[1]) / 1024**2  # kB -> GB
    return {
        "platform": platform.platform(),
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "memory_gb": memory_total,
        "load_average_at_start": list(os.getloadavg()),
        "versions": {
            "python": platform.pythonpackage_version(),
            **{p: package_version(p) for p in ("timbrelab", "torch", "numpy", "soundfile", "soxr")},
        },
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain")),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seconds",
        type=float,
        nargs="+",
        default=[60.0, 600.0, 3600.0],
        help="file lengths (default: 1 min, 10 min, 1 h)",
    )
    parser.add_argument("--layouts", nargs="+", choices=list(LAYOUTS), default=list(LAYOUTS))
    parser.add_argument(
        "--paths", nargs="+", choices=PATHS, default=["cli"], help="what each run executes"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")
    args = parser.parse_args(argv)

    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": machine_info(),
        "cases": [],
    }
    print(f"{'layout':<10} {'seconds':>7} {'path':<7} {'peak MB':>8} {'wall s':>7} {'notes':>6}")
    with tempfile.TemporaryDirectory(prefix="streaming_memory_") as tmp:
        folder = Path(tmp)
        for seconds in args.seconds:
            for layout in args.layouts:
                audio = folder / f"{layout}-{seconds:g}s.wav"
                write_test_file(audio, seconds, layout)
                for path_kind in args.paths:
                    row = {
                        "layout": layout,
                        "seconds": seconds,
                        "path": path_kind,
                        "file_mb": audio.stat().st_size / 1024**2,
                        **run_case(path_kind, audio, folder),
                    }
                    report["cases"].append(row)
                    print(
                        f"{layout:<10} {seconds:>7g} {path_kind:<7} {row['peak_rss_mb']:>8.0f} "
                        f"{row['wall_s']:>7.1f} {row['n_notes']:>6}"
                    )
                audio.unlink()
    report["load_average_at_end"] = list(os.getloadavg())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
