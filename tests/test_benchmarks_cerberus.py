"""Smoke tests of benchmarks/cerberus.py's helpers (the full runs take minutes)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from timbrelab import systems

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "cerberus.py"


@pytest.fixture(scope="module")
def bench():
    # the scripts import their sibling `provenance`, as `python benchmarks/<script>.py` allows
    if str(SCRIPT.parent) not in sys.path:
        sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("cerberus_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_summarise_means_per_source_and_ignores_silent_sources(bench):
    rows = [
        {"sdr": [1.0, np.nan], "si_sdr": [0.0, 2.0], "note_f1": [0.5, 0.25], "cpu_s": 1.0,
         "seconds": 5.0},
        {"sdr": [3.0, 4.0], "si_sdr": [2.0, 2.0], "note_f1": [0.5, 0.75], "cpu_s": 1.0,
         "seconds": 5.0},
    ]  # fmt: skip
    summary = bench.summarise(rows, ["Piano", "Guitar"])
    assert summary["sdr"]["per_source"] == {"Piano": 2.0, "Guitar": 4.0}
    assert summary["sdr"]["mean"] == pytest.approx(3.0)
    assert summary["note_f1"]["mean"] == pytest.approx(0.5)
    assert summary["cpu_s_per_audio_s"] == pytest.approx(0.2)
    untranscribed = [dict(r, note_f1=[np.nan, np.nan]) for r in rows]
    assert "note_f1" not in bench.summarise(untranscribed, ["Piano", "Guitar"])


def test_items_are_scored_and_thresholds_swept_with_a_tiny_network(bench):
    torch.manual_seed(0)
    system = systems.get("cerberus")
    model = system.build_model(programs=(0, 25), hidden_size=8, num_layers=1, head_rank=4)
    item = system.data(1, seconds=1.0, seed=5, programs=(0, 25), min_onsets=1)[0]
    row = bench.score_item(model, item, frame_threshold=0.3)
    assert len(row["sdr"]) == len(row["note_f1"]) == 2 and row["seconds"] == 1.0
    sweep = bench.threshold_sweep(model, [item])
    assert set(sweep["best"]) == {"frame_threshold"}  # no drums in this line-up
    assert sweep["best"]["frame_threshold"] in bench.THRESHOLDS
    assert len(sweep["f1"]["frame"]) == len(bench.THRESHOLDS)
