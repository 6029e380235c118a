"""Timing ``timbrelab`` command lines as a user runs them: one subprocess per call.

The benchmarks that quote command-line speed subtract a call on a short clip (interpreter
start, imports, model load) from a batch call, leaving the cost per second of audio.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

#: Length of the call whose time stands for start-up and model loading.
CLI_BASELINE_SECONDS = 2.0


def run_cli(args: list[str], threads: int) -> tuple[float, float]:
    """Wall and CPU seconds (children's user + system) of one ``timbrelab`` call with
    ``threads`` OpenMP/MKL threads; ``RuntimeError`` with its stderr when it fails."""
    exe = shutil.which("timbrelab") or str(Path(sys.executable).with_name("timbrelab"))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    done = subprocess.run([exe, *args], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"timbrelab {' '.join(args[:1])} failed: {done.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu
