"""What every benchmark records beside its numbers: package versions and the repository state.

Imported by the scripts in this folder (run as ``python benchmarks/<script>.py``, which puts
this folder on ``sys.path``).
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def package_version(package: str) -> str | None:
    """The installed version of ``package``, or None when it is not installed."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def git(*args: str) -> str | None:
    """``git <args>`` in the repository, stripped; None when git fails or is missing."""
    try:
        done = subprocess.run(
            ["git", *args], capture_output=True, text=True, cwd=ROOT, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def command_line() -> str:
    """The command that ran this script, as one can paste it: ``nice -n N`` first when the
    process runs niced (its timings were measured so), then ``.venv/bin/python`` and argv."""
    import os
    import shlex
    import sys

    niceness = os.nice(0)
    prefix = "" if niceness == 0 else f"nice -n {niceness} "
    return prefix + shlex.join([".venv/bin/python", *sys.argv])


def write_merged_variants(
    path: Path, report: dict, results: dict, order: Sequence[str]
) -> None:
    """Write ``report`` to ``path`` (atomically) with ``report["variants"]``: the variants
    already in that file, updated by ``results``, in ``order``. Variants trained by parallel
    processes each merge theirs instead of overwriting the others'."""
    from timbrelab.io import atomic_output

    earlier = json.loads(path.read_text())["variants"] if path.exists() else {}
    merged = {**earlier, **results}
    report["variants"] = {name: merged[name] for name in order if name in merged}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
