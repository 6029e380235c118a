"""Smoke tests of the two-branch benchmarks (the full runs take tens of minutes) and of their
committed results, which the chapter reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def test_the_test_set_has_exactly_k_instruments_per_mix(load_benchmark):
    variants = load_benchmark("two_branch_variants")
    pieces = variants.test_pieces(2, 1.0, seed=5)
    assert sorted(pieces) == [2, 3, 4]
    for k, mixtures in pieces.items():
        assert [m.n_sources for m in mixtures] == [k, k]
        assert {n.source for n in mixtures[0].notes} <= set(range(k))


def test_mean_scores_average_each_key(load_benchmark):
    bench = load_benchmark("two_branch")
    rows = [{"separated_note_f1": 0.5, "ratio": 1.0}, {"separated_note_f1": 0.25, "ratio": 0.5}]
    assert bench.mean_scores(rows) == {"separated_note_f1": 0.375, "ratio": 0.75}


@pytest.mark.parametrize("name", ["two_branch_variants", "two_branch"])
def test_committed_results_hold_what_the_chapter_reads(name):
    report = json.loads((RESULTS / f"{name}.json").read_text())
    assert report["command"] and report["machine"]
    if name == "two_branch_variants":
        assert set(report["variants"]) == {"Ours", "D16", "MSE", "Share", "Rescale", "Tanaka"}
        rows = [row[mix] for row in report["variants"].values() for mix in ("2mix", "3mix", "4mix")]
    else:
        rows = [r["note_level"] for r in report["synthetic"]["results"].values()]
        assert report["cli_speed"]["cpu_s_per_audio_s"] > 0
    for row in rows:
        for key in ("separated_note_f1", "separated_frame_f1", "note_f1"):
            assert 0 <= row[key] <= 1
