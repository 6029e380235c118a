"""Smoke tests of the Timbre-Trap benchmarks on tiny weights and a tiny test set."""

from __future__ import annotations

import json

import pytest
import torch

from timbrelab.models.timbre_trap import TimbreTrap, TimbreTrapConfig
from timbrelab.training import save_weights

TINY = dict(sample_rate=4000, n_octaves=6, bins_per_octave=12, hop_length=16,
            base_channels=2, latent_size=8)  # fmt: skip


def test_comparison_scores_both_systems_on_the_same_files(load_benchmark, tmp_path):
    torch.manual_seed(0)
    save_weights(TimbreTrap(TimbreTrapConfig(**TINY)), tmp_path / "tt.pt")
    out = tmp_path / "result.json"
    load_benchmark("timbre_trap").main(
        ["--weights", str(tmp_path / "tt.pt"), "--n-items", "2", "--seconds", "2",
         "--no-bach10", "--out", str(out)]
    )  # fmt: skip
    report = json.loads(out.read_text())
    summary = report["summary"]["synthetic"]
    assert set(summary) == {"amt", "timbre_trap"}
    assert summary["amt"]["pieces"] == summary["timbre_trap"]["pieces"] == 2
    assert "sdr" in summary["timbre_trap"] and "sdr" not in summary["amt"]
    for row in summary.values():
        assert 0 <= row["FF"] <= 1 and row["cpu_per_audio_second"] > 0


def test_ablations_train_each_variant_and_merge_results(load_benchmark, tmp_path, monkeypatch):
    bench = load_benchmark("timbre_trap_ablations")
    monkeypatch.setitem(bench.VARIANTS, "Tiny", (TINY, 0))
    monkeypatch.setitem(bench.VARIANTS, "Tiny FiLM", ({**TINY, "film": True}, 0))
    common = ["--steps", "1", "--test-pieces", "1", "--test-seconds", "2",
              "--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "r.json")]  # fmt: skip
    bench.main(["--variants", "Tiny", *common])
    bench.main(["--variants", "Tiny FiLM", *common])  # a second process's variants merge in
    variants = json.loads((tmp_path / "r.json").read_text())["variants"]
    assert list(variants) == ["Tiny", "Tiny FiLM"]
    for row in variants.values():
        assert {"precision", "recall", "f1", "ap", "sdr", "steps"} <= set(row)
    with pytest.raises(SystemExit, match="unknown variant"):
        bench.main(["--variants", "Nope", *common])
