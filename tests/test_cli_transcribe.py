from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import timbrelab.models
from timbrelab import pretrained, training
from timbrelab.audio import write_wav
from timbrelab.cli import main
from timbrelab.models import build_model
from timbrelab.notes import read_notes
from timbrelab.systems import amt as amt_systems

TINY = dict(early_channels=2, neck_channels=2, onset_channels=1)
SR = 22050


@pytest.fixture
def files(tmp_path):
    """Tiny random weights and a few audio files (good and bad) in tmp_path."""
    torch.manual_seed(0)
    training.save_weights(build_model("amt", **TINY), tmp_path / "w.pt")
    t = np.arange(SR // 2) / SR
    write_wav(tmp_path / "a.wav", 0.5 * np.sin(2 * np.pi * 440 * t), SR)
    write_wav(tmp_path / "b.flac", 0.5 * np.sin(2 * np.pi * 220 * t[: SR // 4]), 44100)
    write_wav(tmp_path / "silent.wav", np.zeros(SR), SR)
    write_wav(tmp_path / "short.wav", 0.5 * np.ones(100), SR)
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("not audio")
    (tmp_path / "noise.wav").write_bytes(np.random.default_rng(0).bytes(3000))
    return tmp_path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err.strip().splitlines()


def test_one_input_writes_the_named_file(files, capsys):
    code, out, err = run(capsys, "transcribe", files / "a.wav", "-o", files / "a.mid",
                         "--weights", files / "w.pt")  # fmt: skip
    assert (code, err) == (0, [])
    notes = read_notes(files / "a.mid")
    assert f"{len(notes)} notes" in out
    # format from the suffix, or forced
    assert main(["transcribe", str(files / "a.wav"), "-o", str(files / "a.json"),
                 "--weights", str(files / "w.pt")]) == 0  # fmt: skip
    assert [n.pitch for n in read_notes(files / "a.json")] == [n.pitch for n in notes]
    assert main(["transcribe", str(files / "a.wav"), "-o", str(files / "notes.txt"),
                 "--format", "csv", "--weights", str(files / "w.pt")]) == 0  # fmt: skip
    assert (files / "notes.txt").read_text().startswith("onset,offset,pitch")


def test_thresholds_reach_the_decoder(files, capsys):
    base = ["transcribe", files / "a.wav", "--weights", files / "w.pt"]
    run(capsys, *base, "-o", files / "low.csv", "--onset-threshold", "0.01",
        "--frame-threshold", "0.01")  # fmt: skip
    run(capsys, *base, "-o", files / "high.csv", "--onset-threshold", "0.99",
        "--frame-threshold", "0.99")  # fmt: skip
    assert len(read_notes(files / "low.csv")) > len(read_notes(files / "high.csv"))
    assert main(["transcribe", "x.wav", "-o", "x.mid", "--onset-threshold", "1.5"]) == 2
    assert "--onset-threshold: must be between 0 and 1" in capsys.readouterr().err


def test_several_inputs_go_to_a_folder_named_after_each_input(files, capsys):
    out_dir = files / "new" / "out"
    code, out, err = run(capsys, "transcribe", files / "a.wav", files / "b.flac", "-o", out_dir,
                         "--weights", files / "w.pt")  # fmt: skip
    assert (code, err) == (0, [])
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.mid", "b.mid"]
    code, _, _ = run(capsys, "transcribe", files / "a.wav", files / "b.flac", "-o", out_dir,
                     "--format", "json", "--weights", files / "w.pt")  # fmt: skip
    assert code == 0 and (out_dir / "b.json").is_file()


@pytest.mark.parametrize(
    "name, problem",
    [
        ("missing.wav", "no such file"),
        ("empty.wav", "empty"),
        ("text.wav", "not a readable audio file"),
        ("noise.wav", "not a readable audio file"),
        ("silent.wav", "silent"),
        ("short.wav", "too short"),
    ],
)
def test_bad_input_gives_one_line_and_no_output(files, capsys, name, problem):
    code, out, err = run(capsys, "transcribe", files / name, "-o", files / "out.mid",
                         "--weights", files / "w.pt")  # fmt: skip
    assert code == 2
    assert len(err) == 1 and str(files / name) in err[0] and problem in err[0], err
    assert not (files / "out.mid").exists()


def test_unwritable_or_unknown_output(files, capsys):
    a, w = files / "a.wav", files / "w.pt"
    code, _, err = run(capsys, "transcribe", a, "-o", files / "no" / "x.mid", "--weights", w)
    assert code == 2 and len(err) == 1 and "does not exist" in err[0]
    code, _, err = run(capsys, "transcribe", a, "-o", files / "x.wav", "--weights", w)
    assert code == 2 and len(err) == 1 and "format" in err[0]
    (files / "taken").write_text("a file")
    code, _, err = run(capsys, "transcribe", a, a, "-o", files / "taken", "--weights", w)
    assert code == 2 and "not a folder" in err[0]
    code, _, err = run(capsys, "transcribe", a, files / "sub" / "a.wav", "-o", files / "o",
                       "--weights", w)  # fmt: skip
    assert code == 2 and "would overwrite" in err[0]
    if sys.platform.startswith("linux"):
        code, _, err = run(capsys, "transcribe", a, "-o", "/proc/nope/x.mid", "--weights", w)
        assert code == 2 and len(err) == 1 and "/proc/nope/x.mid" in err[0]
    assert not list(files.glob("*.mid")) and not list(files.glob(".*tmp*"))


def test_batch_processes_good_inputs_and_reports_each_bad_one(files, capsys):
    code, out, err = run(capsys, "transcribe", files / "a.wav", files / "missing.wav",
                         files / "b.flac", files / "silent.wav", "-o", files / "out",
                         "--weights", files / "w.pt")  # fmt: skip
    assert code == 2
    assert sorted(p.name for p in (files / "out").iterdir()) == ["a.mid", "b.mid"]
    assert len(err) == 3
    assert "missing.wav" in err[0] and "silent.wav" in err[1] and "2 of 4 inputs failed" in err[2]


def test_model_errors_are_one_line(files, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(pretrained, "REGISTRY", tmp_path / "empty-registry.json")
    code, _, err = run(capsys, "transcribe", files / "a.wav", "-o", files / "x.mid")
    assert code == 2 and len(err) == 1 and "no pretrained weights named 'amt'" in err[0]
    for weights, problem in [(files / "nope.pt", "not found"), (files / "text.wav", "weights")]:
        code, _, err = run(capsys, "transcribe", files / "a.wav", "-o", files / "x.mid",
                           "--weights", weights)  # fmt: skip
        assert code == 2 and len(err) == 1 and problem in err[0]
    code, _, err = run(capsys, "transcribe", files / "a.wav", "-o", files / "x.mid",
                       "--weights", files / "w.pt", "--model", "basic_pitch")  # fmt: skip
    assert code == 2 and "holds a 'amt' model" in err[0]
    code, _, err = run(capsys, "transcribe", files / "a.wav", "-o", files / "x.mid",
                       "--weights", files / "w.pt", "--device", "nonsense")  # fmt: skip
    assert code == 2 and "--device nonsense" in err[0]
    assert not (files / "x.mid").exists()


def test_shipped_weights_are_the_default(files, capsys, monkeypatch):
    pretrained.register("amt", files / "w.pt", registry=files / "registry.json")
    monkeypatch.setattr(pretrained, "REGISTRY", files / "registry.json")
    code, _, err = run(capsys, "transcribe", files / "a.wav", "-o", files / "x.mid")
    assert (code, err) == (0, [])


def test_end_to_end_in_a_subprocess(files):
    result = subprocess.run(
        [sys.executable, "-m", "timbrelab.cli", "transcribe", "a.wav", "missing.wav",
         "-o", "out", "--weights", "w.pt"],
        cwd=files, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "timbrelab transcribe: error: missing.wav: no such file",
        "timbrelab transcribe: error: 1 of 2 inputs failed",
    ]
    assert (files / "out" / "a.mid").stat().st_size > 0


@pytest.fixture
def tiny_tier(monkeypatch):
    tier = amt_systems.Tier(train_items=2, val_items=1, seconds=1.0, instruments=(1, 2),
                      config=dict(steps=2, batch_size=1, progress=False))  # fmt: skip
    monkeypatch.setitem(amt_systems.TIERS, "quick", tier)
    # recipes build the default architecture; make it tiny
    monkeypatch.setattr(
        timbrelab.models, "build_model", lambda name, **kw: build_model(name, **{**TINY, **kw})
    )


def test_train_then_evaluate(tmp_path, capsys, tiny_tier):
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "train", "amt", "--out", out, "--device", "cpu")
    assert code == 0, err
    assert "step 2" in stdout and (out / "weights.pt").is_file()
    assert json.loads((out / "metrics.json").read_text())[-1]["step"] == 2
    # resuming a finished run changes nothing; a changed step count is refused clearly
    before = (out / "weights.pt").read_bytes()
    assert run(capsys, "train", "amt", "--out", out, "--resume")[0] == 0
    assert (out / "weights.pt").read_bytes() == before
    code, _, err = run(capsys, "train", "amt", "--out", out, "--resume", "--steps", "5")
    assert code == 2 and len(err) == 1 and "steps: 2 -> 5" in err[0]
    code, _, err = run(capsys, "train", "nope", "--out", out)
    assert code == 2 and "unknown system 'nope'" in err[0]

    code, stdout, err = run(capsys, "evaluate", "--weights", out / "weights.pt", "--synthetic",
                            "1", "--seconds", "1", "--seed", "4",
                            "-o", tmp_path / "eval.json")  # fmt: skip
    assert code == 0, err
    assert "synthetic-4-0" in stdout and "mean" in stdout
    report = json.loads((tmp_path / "eval.json").read_text())
    assert len(report["pieces"]) == 1 and set(report["mean"]) == {"FF", "FN", "FNO"}


def test_evaluate_errors(files, capsys, monkeypatch, tmp_path):
    code, _, err = run(capsys, "evaluate", "--weights", files / "w.pt")
    assert code == 2 and "nothing to evaluate" in err[0]
    monkeypatch.setenv("TIMBRELAB_BACH10", str(tmp_path / "nowhere"))
    code, _, err = run(capsys, "evaluate", "--weights", files / "w.pt", "--bach10")
    assert code == 2 and len(err) == 1 and "nowhere" in err[0]
    monkeypatch.setenv("TIMBRELAB_BACH10", str(tmp_path))
    code, _, err = run(capsys, "evaluate", "--weights", files / "w.pt", "--bach10")
    assert code == 2 and "no Bach10 pieces" in err[0]
