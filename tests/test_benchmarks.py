"""Smoke tests of benchmarks/amt_vs_basic_pitch.py's helpers (the full run takes minutes).

The Basic Pitch test skips when basic-pitch is not installed (it is a benchmark-only peer).
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
import torch

from timbrelab.audio import write_wav
from timbrelab.constants import SAMPLE_RATE
from timbrelab.io import save_checked
from timbrelab.models import build_model
from timbrelab.notes import Note
from timbrelab.training import save_weights


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("amt_vs_basic_pitch")


def test_note_events_become_sorted_notes(bench):
    events = [(1.0, 1.5, 64, 0.5, [0, 1]), (0.25, 0.75, 60, 1.2, None)]
    notes = bench.note_events_to_notes(events)
    assert notes == [Note(0.25, 0.75, 60, 127), Note(1.0, 1.5, 64, 64)]


def test_summarise_means_scores_and_divides_time_by_audio(bench):
    def cell(ff, cpu):
        return {"FF": ff, "FN": ff / 2, "FNO": 0.0, "cpu_s": cpu, "wall_s": 2 * cpu}

    rows = [
        {"name": "a", "seconds": 10.0, "timbrelab": cell(0.8, 1.0), "basic_pitch": cell(0.4, 3.0)},
        {"name": "b", "seconds": 30.0, "timbrelab": cell(0.6, 3.0), "basic_pitch": cell(0.2, 1.0)},
    ]
    summary = bench.summarise(rows)
    assert summary["timbrelab"]["FF"] == pytest.approx(0.7)
    assert summary["basic_pitch"]["FN"] == pytest.approx(0.15)
    assert summary["timbrelab"]["cpu_s_per_audio_s"] == pytest.approx(0.1)
    assert summary["basic_pitch"]["wall_s_per_audio_s"] == pytest.approx(0.2)
    # a system absent from the rows is left out; untimed rows give scores only
    untimed = [{"seconds": 1.0, "basic_pitch": {"FF": 1.0, "FN": 1.0, "FNO": 1.0}}]
    assert bench.summarise(untimed) == {"basic_pitch": {"FF": 1.0, "FN": 1.0, "FNO": 1.0}}


def test_run_pieces_scores_each_system_and_alternates_order(bench, tmp_path):
    calls = []

    def runner(system, pitch):
        def run(path):
            calls.append((system, path.name))
            return [Note(0.0, 1.0, pitch)]

        return run

    def score(est):  # FF = 1 when the single reference note (pitch 60) is found
        return {"FF": float(est[0].pitch == 60), "FN": 0.5, "FNO": 0.25}

    pieces = [
        {"name": f"p{i}", "path": tmp_path / f"p{i}.wav", "seconds": 2.0, "instruments": 1,
         "score": score}
        for i in range(2)
    ]  # fmt: skip
    runners = {"timbrelab": runner("timbrelab", 60), "basic_pitch": runner("basic_pitch", 61)}
    rows = bench.run_pieces(pieces, runners)
    assert [c[0] for c in calls] == ["timbrelab", "basic_pitch", "basic_pitch", "timbrelab"]
    assert [r["name"] for r in rows] == ["p0", "p1"]
    assert rows[0]["timbrelab"]["FF"] == 1.0 and rows[0]["basic_pitch"]["FF"] == 0.0
    assert rows[1]["timbrelab"]["n_notes"] == 1
    assert rows[1]["basic_pitch"]["cpu_s"] >= 0 and rows[1]["basic_pitch"]["wall_s"] >= 0


def test_load_timbrelab_reads_weights_files_and_checkpoints(bench, tmp_path):
    torch.manual_seed(0)
    model = build_model("amt")
    save_weights(model, tmp_path / "weights.pt")
    checkpoint = {
        "model": model.state_dict(),
        "model_name": model.name,
        "model_config": asdict(model.config),
        "step": 7,
    }
    save_checked(checkpoint, tmp_path / "checkpoint.pt")  # as the Trainer writes it
    for name in ("weights.pt", "checkpoint.pt"):
        loaded = bench.load_timbrelab(tmp_path / name)
        assert not loaded.training
        for key, value in model.state_dict().items():
            torch.testing.assert_close(loaded.state_dict()[key], value)


def test_basic_pitch_transcribes_a_tone(bench, tmp_path):
    pytest.importorskip("basic_pitch")
    pytest.importorskip("onnxruntime")
    t = np.arange(int(1.5 * SAMPLE_RATE)) / SAMPLE_RATE
    tone = sum(np.sin(2 * np.pi * 440.0 * h * t) / h for h in (1, 2, 3))  # A4 = MIDI 69
    envelope = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.02)
    path = tmp_path / "a4.wav"
    write_wav(path, 0.3 * envelope * tone, SAMPLE_RATE)
    notes = bench.basic_pitch_notes(bench.load_basic_pitch(threads=1), path)
    assert notes and all(isinstance(n, Note) for n in notes)
    assert 69 in {n.pitch for n in notes}
