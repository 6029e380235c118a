from __future__ import annotations

import numpy as np
import pytest
import soundfile

from timbrelab.cli import main
from timbrelab.notes import read_notes


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_synth_writes_a_reproducible_folder(tmp_path, capsys):
    args = ["synth", "--instruments", "2", "--seconds", "1", "--seed", "4"]
    assert main([*args, "-o", str(tmp_path / "a")]) == 0
    assert main([*args, "-o", str(tmp_path / "b")]) == 0
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a == b  # byte-identical, timestamps included
    stems = sorted(name for name in a if name.startswith("stem_"))
    assert len(stems) == 2 and stems[0].startswith("stem_0_") and stems[1].startswith("stem_1_")
    assert {"mix.wav", "score.mid", "labels.npz"} <= set(a)
    mix, sr = soundfile.read(tmp_path / "a" / "mix.wav", dtype="float32")
    assert sr == 22050 and mix.shape == (22050,)
    total = sum(soundfile.read(tmp_path / "a" / s, dtype="float32")[0] for s in stems)
    np.testing.assert_allclose(mix, total, atol=1e-6)  # 24-bit files: mix = sum of stems
    with np.load(tmp_path / "a" / "labels.npz") as labels:
        assert labels["frame"].shape == (88, 1 + 22050 // 256)
        assert labels["stem_frame"].shape == (2, 88, 1 + 22050 // 256)
        assert labels["dominant_source"].shape == (88, 1 + 22050 // 256)
        assert int(labels["sample_rate"]) == 22050 and int(labels["hop_length"]) == 256
        programs = list(labels["programs"])
    notes = read_notes(tmp_path / "a" / "score.mid")
    assert {n.source for n in notes} == {0, 1}
    assert len(programs) == 2
    assert main([*args[:-1], "5", "-o", str(tmp_path / "c")]) == 0
    assert _files(tmp_path / "c")["mix.wav"] != a["mix.wav"]
    assert "instruments:" in capsys.readouterr().out


def test_synth_sample_rate_and_existing_folder(tmp_path, capsys):
    out = tmp_path / "x"
    out.mkdir()  # an empty folder is fine
    assert main(["synth", "-k", "1", "-s", "0.5", "--sample-rate", "16000", "-o", str(out)]) == 0
    assert soundfile.info(out / "mix.wav").samplerate == 16000
    assert main(["synth", "-k", "1", "-s", "0.5", "-o", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["synth", "-k", "1", "-s", "0.5", "--force", "-o", str(out)]) == 0
    assert soundfile.info(out / "mix.wav").samplerate == 22050


@pytest.mark.parametrize(
    ("args", "message"),
    [(["-k", "0"], "--instruments"), (["-k", "9"], "--instruments"),
     (["-s", "0"], "--seconds"), (["-s", "601"], "--seconds"), (["-s", "nan"], "--seconds"),
     (["--seed", "-1"], "--seed"), (["--sample-rate", "8000"], "--sample-rate")],
)  # fmt: skip
def test_synth_bad_arguments(tmp_path, capsys, args, message):
    out = tmp_path / "o"
    assert main(["synth", *args, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_synth_unwritable_output(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for target in (blocker / "sub", blocker, "/proc/nope/out"):
        assert main(["synth", "-k", "1", "-s", "0.5", "-o", str(target)]) == 2
        err = capsys.readouterr().err
        assert str(target) in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # no temp folders left
