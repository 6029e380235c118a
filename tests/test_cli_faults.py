"""The fault suite: every CLI command against every bad input and fault a user can cause.

Each case must end with exit code 2, exactly one line on stderr naming the file or option at
fault, no traceback, and the workspace byte-identical to before (no file left at the target,
no file the user had changed or removed). The kill tests stop each command with SIGKILL in the
middle of writing its output, then rerun it: the rerun succeeds and leaves no temporary file.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from timbrelab import training
from timbrelab.audio import write_wav
from timbrelab.cli import main
from timbrelab.io import save_checked
from timbrelab.models import build_model

SR = 22050
TINY = dict(early_channels=2, neck_channels=2, onset_channels=1)


def _flip_byte(path: Path) -> None:
    """Flip one byte in the middle of a file (inside a checked file's payload)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """Good and bad inputs of every kind, and the files a user already has."""
    ws = tmp_path_factory.mktemp("faults")
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    write_wav(ws / "good.wav", tone, SR)
    write_wav(ws / "other.wav", tone[::-1].copy(), SR)
    (ws / "empty.wav").write_bytes(b"")
    (ws / "text.wav").write_text("not audio at all\n")
    (ws / "random.wav").write_bytes(rng.bytes(3000))
    (ws / "truncated.wav").write_bytes((ws / "good.wav").read_bytes()[:30])
    write_wav(ws / "tiny.wav", tone[:200], SR)
    write_wav(ws / "silence.wav", np.zeros(SR), SR)
    nan = tone.astype(np.float32)
    nan[100] = np.nan
    soundfile.write(ws / "nan.wav", nan, SR, subtype="FLOAT")  # write_wav refuses NaN
    (ws / "folder.wav").mkdir()
    (ws / "a_file").write_text("I am a file, not a folder\n")
    (ws / "keep").mkdir()
    (ws / "keep" / "mine.txt").write_text("a user's work\n")
    (ws / "existing.mid").write_bytes(b"the user's own MIDI file")
    (ws / "nested").mkdir()
    write_wav(ws / "nested" / "nested.wav", tone, SR)
    (ws / "sep" / "good").mkdir(parents=True)
    (ws / "sep" / "good" / "0_violin.wav").write_bytes(b"an earlier separation")

    torch.manual_seed(0)
    training.save_weights(build_model("amt", **TINY), ws / "w.pt")
    (ws / "empty.pt").write_bytes(b"")
    (ws / "text.pt").write_text("e" * 200)
    torch.save({"model": "amt", "config": {}, "state_dict": {}}, ws / "unchecked.pt")
    flipped = ws / "flipped.pt"
    flipped.write_bytes((ws / "w.pt").read_bytes())
    _flip_byte(flipped)

    # a training run with a checkpoint, and copies of it damaged in different ways
    for name in ("run", "run_flipped", "run_empty", "run_text"):
        (ws / name).mkdir()
    save_checked({"model": {}, "config": {}, "step": 1}, ws / "run" / "checkpoint.pt")
    real = _train_checkpoint(tmp_path_factory.mktemp("ckpt"))
    (ws / "run_flipped" / "checkpoint.pt").write_bytes(real.read_bytes())
    _flip_byte(ws / "run_flipped" / "checkpoint.pt")
    (ws / "run_empty" / "checkpoint.pt").write_bytes(b"")
    (ws / "run_text" / "checkpoint.pt").write_text("not a checkpoint")
    return ws


def _train_checkpoint(folder: Path) -> Path:
    """A real checkpoint of `timbrelab train` (one quick step)."""
    code = main(["train", "amt", "--steps", "1", "--out", str(folder / "r")])
    assert code == 0
    return folder / "r" / "checkpoint.pt"


def _snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root``: relative path -> SHA-256 (or "dir")."""
    state = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        state[key] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return state


#: (id, command line with {ws} for the workspace, text the one stderr line must contain)
CASES = [
    # transcribe: inputs
    ("missing input", "transcribe {ws}/nope.wav -o {ws}/o.mid", "nope.wav: no such file"),
    ("empty input", "transcribe {ws}/empty.wav -o {ws}/o.mid", "empty.wav: empty file"),
    ("text input", "transcribe {ws}/text.wav -o {ws}/o.mid", "text.wav: not a readable audio"),
    ("random bytes", "transcribe {ws}/random.wav -o {ws}/o.mid", "random.wav: not a readable"),
    ("truncated", "transcribe {ws}/truncated.wav -o {ws}/o.mid", "truncated.wav"),
    ("too short", "transcribe {ws}/tiny.wav -o {ws}/o.mid", "tiny.wav: too short"),
    ("NaN samples", "transcribe {ws}/nan.wav -o {ws}/o.mid", "nan.wav: contains NaN"),
    ("silence", "transcribe {ws}/silence.wav -o {ws}/o.mid", "silence.wav: silent"),
    ("folder input", "transcribe {ws}/folder.wav -o {ws}/o.mid", "folder.wav: is a directory"),
    # transcribe: outputs
    ("output is input", "transcribe {ws}/good.wav -o {ws}/good.wav --format csv", "also an input"),
    ("output is input (batch)", "transcribe {ws}/good.wav {ws}/other.wav -o {ws}/good.wav",
     "good.wav: exists and is not a folder"),
    ("suffix vs format", "transcribe {ws}/good.wav -o {ws}/o.mid --format json",
     "o.mid: suffix '.mid' disagrees with --format json"),
    ("unknown suffix", "transcribe {ws}/good.wav -o {ws}/o.wav", "cannot tell the output format"),
    ("unwritable output", "transcribe {ws}/good.wav -o {ws}/a_file/o.mid", "a_file/o.mid"),
    ("missing output folder", "transcribe {ws}/good.wav -o {ws}/no/such/o.mid", "o.mid"),
    ("output is a folder name", "transcribe {ws}/good.wav -o {ws}/keep/ --format xml",
     "--format: invalid choice"),
    ("same input twice", "transcribe {ws}/good.wav {ws}/good.wav -o {ws}/keep",
     "would overwrite"),
    # transcribe: options
    ("threshold nan", "transcribe {ws}/good.wav -o {ws}/o.mid --onset-threshold nan",
     "--onset-threshold"),
    ("threshold > 1", "transcribe {ws}/good.wav -o {ws}/o.mid --frame-threshold 1.5",
     "--frame-threshold"),
    ("threshold text", "transcribe {ws}/good.wav -o {ws}/o.mid --onset-threshold high",
     "--onset-threshold"),
    ("bad device", "transcribe {ws}/good.wav -o {ws}/o.mid --device nope", "--device nope"),
    ("unknown model", "transcribe {ws}/good.wav -o {ws}/o.mid --model nope", "'nope'"),
    ("sources without separate", "transcribe {ws}/good.wav -o {ws}/o.mid --sources 2",
     "--sources needs --separate"),
    ("sources 0", "transcribe {ws}/good.wav -o {ws}/o.mid --separate --sources 0", "--sources"),
    ("sources text", "transcribe {ws}/good.wav -o {ws}/o.mid --separate --sources two",
     "--sources"),
    ("separate with a timbre-agnostic model",
     "transcribe {ws}/good.wav -o {ws}/o.mid --separate --model amt",
     "--model amt: does not transcribe instruments apart (systems that do: cerberus"),
    ("sources for a fixed line-up",
     "transcribe {ws}/good.wav -o {ws}/o.mid --separate --model cerberus --sources 2",
     "--sources: cerberus always finds the instruments of its fixed line-up"),
    ("separate bad input", "transcribe {ws}/text.wav -o {ws}/o.mid --separate",
     "text.wav: not a readable audio"),
    ("missing weights", "transcribe {ws}/good.wav -o {ws}/o.mid --weights {ws}/no.pt", "no.pt"),
    ("empty weights", "transcribe {ws}/good.wav -o {ws}/o.mid --weights {ws}/empty.pt",
     "empty.pt: empty file"),
    ("text weights", "transcribe {ws}/good.wav -o {ws}/o.mid --weights {ws}/text.pt",
     "text.pt: not a readable weights file"),
    ("unchecked weights", "transcribe {ws}/good.wav -o {ws}/o.mid --weights {ws}/unchecked.pt",
     "unchecked.pt: not a weights file written by timbrelab"),
    ("flipped weights", "transcribe {ws}/good.wav -o {ws}/o.mid --weights {ws}/flipped.pt",
     "flipped.pt: checksum mismatch"),
    ("audio as weights", "transcribe {ws}/good.wav -o {ws}/o.mid --weights {ws}/good.wav",
     "good.wav: not a readable weights file"),
    ("overwrite existing, bad input", "transcribe {ws}/text.wav -o {ws}/existing.mid",
     "text.wav"),
    # synth
    ("synth -o . --force", "synth -o . --force", "contains the working directory"),
    ("synth -o .. --force", "synth -o .. --force", "contains the working directory"),
    ("synth non-empty", "synth -o {ws}/keep", "not empty (use --force"),
    ("synth onto a file", "synth -o {ws}/a_file", "a_file: exists and is not a folder"),
    ("synth under a file", "synth -o {ws}/a_file/sub", "a_file/sub: cannot write"),
    ("synth seconds nan", "synth -o {ws}/s --seconds nan", "--seconds"),
    ("synth seconds inf", "synth -o {ws}/s --seconds inf", "--seconds"),
    ("synth seconds huge", "synth -o {ws}/s --seconds 1e7", "--seconds"),
    ("synth seconds tiny", "synth -o {ws}/s --seconds 1e-6", "--seconds"),
    ("synth instruments 0", "synth -o {ws}/s --instruments 0", "--instruments"),
    ("synth instruments text", "synth -o {ws}/s --instruments many", "--instruments"),
    ("synth seed -1", "synth -o {ws}/s --seed -1", "--seed: must be >= 0"),
    ("synth rate", "synth -o {ws}/s --sample-rate 8000", "--sample-rate"),
    ("synth hop 0", "synth -o {ws}/s --hop-length 0", "--hop-length"),
    # separate
    ("separate, system does not separate", "separate {ws}/good.wav -o {ws}/parts",
     "does not separate sources"),
    ("separate bad input", "separate {ws}/text.wav -o {ws}/parts", "text.wav: not a readable"),
    ("separate onto a file", "separate {ws}/good.wav -o {ws}/a_file", "a_file: exists and is not"),
    ("separate over a non-empty folder", "separate {ws}/good.wav -o {ws}/sep",
     "good: folder exists and is not empty (use --force"),
    ("separate into a folder holding the input", "separate {ws}/nested/nested.wav -o {ws}",
     "holds an input"),
    ("separate same input twice", "separate {ws}/good.wav {ws}/good.wav -o {ws}/parts",
     "would overwrite"),
    ("separate unknown model", "separate {ws}/good.wav -o {ws}/parts --model nope", "'nope'"),
    # reconstruct
    ("reconstruct, system does not reconstruct", "reconstruct {ws}/good.wav -o {ws}/rec",
     "--model amt: does not reconstruct audio (systems that do: timbre_trap)"),
    ("reconstruct bad input", "reconstruct {ws}/text.wav -o {ws}/rec --model timbre_trap",
     "text.wav: not a readable"),
    ("reconstruct over a non-empty folder", "reconstruct {ws}/good.wav -o {ws}/sep",
     "good: folder exists and is not empty (use --force"),
    ("reconstruct onto a file", "reconstruct {ws}/good.wav -o {ws}/a_file",
     "a_file: exists and is not"),
    # train
    ("train unknown model", "train nope --out {ws}/t", "nope"),
    ("train seed -1", "train amt --out {ws}/t --seed -1", "--seed: must be >= 0, got -1"),
    ("train steps 0", "train amt --out {ws}/t --steps 0", "--steps"),
    ("train tier", "train amt --out {ws}/t --tier huge", "--tier"),
    ("train out is a file", "train amt --out {ws}/a_file --steps 1", "a_file"),
    ("train out under a file", "train amt --out {ws}/a_file/t --steps 1", "a_file"),
    ("train existing run", "train amt --out {ws}/run --steps 1", "pass --resume"),
    ("resume flipped", "train amt --out {ws}/run_flipped --steps 2 --resume",
     "checkpoint.pt: checksum mismatch"),
    ("resume empty", "train amt --out {ws}/run_empty --steps 2 --resume",
     "checkpoint.pt: empty file"),
    ("resume text", "train amt --out {ws}/run_text --steps 2 --resume",
     "checkpoint.pt: not a readable checkpoint (corrupt"),
    ("resume other config", "train amt --out {ws}/run --steps 2 --resume", "checkpoint"),
    ("train bad device", "train amt --out {ws}/t --device nope", "--device nope"),
    ("train config not key=value", "train amt --out {ws}/t --config 3", "expected KEY=VALUE"),
    ("train config unknown field", "train amt --out {ws}/t --config bogus=1", "bogus"),
    ("train config wrong type", "train amt --out {ws}/t --config neck_channels=x",
     "--config neck_channels='x': not a valid amt config"),
    # evaluate
    ("evaluate nothing", "evaluate", "nothing to evaluate"),
    ("evaluate seconds nan", "evaluate --synthetic 1 --seconds nan", "--seconds"),
    ("evaluate seconds inf", "evaluate --synthetic 1 --seconds inf", "--seconds"),
    ("evaluate seconds huge", "evaluate --synthetic 1 --seconds 1e7", "--seconds"),
    ("evaluate count", "evaluate --synthetic -1", "--synthetic"),
    ("evaluate seed", "evaluate --synthetic 1 --seed -2", "--seed: must be >= 0, got -2"),
    ("evaluate output suffix", "evaluate --synthetic 1 -o {ws}/scores.txt", "scores.txt"),
    ("evaluate output is input", "evaluate --synthetic 1 -o {ws}/w.pt", "w.pt"),
    ("evaluate output unwritable", "evaluate --synthetic 1 -o {ws}/a_file/s.json", "a_file"),
    ("evaluate flipped weights", "evaluate --synthetic 1 --weights {ws}/flipped.pt",
     "checksum mismatch"),
    ("unknown command", "separate-all", "invalid choice"),
    ("separate cerberus bad input", "separate --model cerberus {ws}/text.wav -o {ws}/parts",
     "text.wav: not a readable"),
    ("separate cerberus_quartet over a non-empty folder",
     "separate --model cerberus_quartet {ws}/good.wav -o {ws}/sep",
     "good: folder exists and is not empty (use --force"),
    ("train cerberus unknown head", "train cerberus --out {ws}/t --config heads=dc,xx",
     "heads must be a non-empty subset"),
    ("train cerberus config wrong type", "train cerberus --out {ws}/t --config hidden_size=x",
     "--config hidden_size='x': not a valid cerberus config"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_fails_cleanly(workspace, monkeypatch, capsys, argv, expected):
    monkeypatch.chdir(workspace / "keep")  # synth -o . / .. must not touch the user's files
    before = _snapshot(workspace)
    code = main(argv.format(ws=workspace).split())
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert code == 2, f"exit {code}; stderr: {err}"
    assert len(lines) == 1, f"want one line on stderr, got {len(lines)}: {err}"
    assert expected in lines[0]
    assert "Traceback" not in err
    assert _snapshot(workspace) == before, "a file was created, changed or removed"


# --- kill tests ----------------------------------------------------------------------------

#: Runs the CLI with os.replace made to stop (after a marker file appears): the process is then
#: killed with SIGKILL exactly while its output sits complete in a temporary file.
_FROZEN_CLI = """
import os, sys, time
from timbrelab.cli import main
real_replace = os.replace
def frozen_replace(src, dst):
    open(sys.argv[1], "w").close()
    time.sleep(600)
os.replace = frozen_replace
sys.exit(main(sys.argv[2:]))
"""


def _temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".tmp" in p.name]


KILL_CASES = {
    "synth": "synth --seconds 2 -o {d}/mix",
    "synth --force": "synth --seconds 2 -o {d}/full --force",
    "transcribe": "transcribe {d}/in.wav -o {d}/out.mid --weights {d}/w.pt",
    "transcribe batch": "transcribe {d}/in.wav {d}/in2.wav -o {d}/outs --weights {d}/w.pt",
    "evaluate": "evaluate --synthetic 1 --seconds 1 --weights {d}/w.pt -o {d}/scores.json",
    "train": "train amt --steps 1 --out {d}/run",
}


@pytest.mark.parametrize("argv", KILL_CASES.values(), ids=KILL_CASES.keys())
def test_killed_while_writing_then_rerun(tmp_path, argv):
    d = tmp_path
    write_wav(d / "in.wav", 0.3 * np.sin(np.arange(SR) / 5.0), SR)
    write_wav(d / "in2.wav", 0.3 * np.sin(np.arange(SR) / 7.0), SR)
    torch.manual_seed(0)
    training.save_weights(build_model("amt", **TINY), d / "w.pt")
    (d / "full").mkdir()
    (d / "full" / "old.txt").write_text("replaced by --force")
    args = argv.format(d=d).split()
    marker = d / "writing"
    child = subprocess.Popen(
        [sys.executable, "-c", _FROZEN_CLI, str(marker), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert child.poll() is None, child.stderr.read().decode()
        assert time.monotonic() < deadline, "the command never reached its write"
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stderr.close()
    assert _temporaries(d), "the kill should have left a temporary behind"
    if argv.startswith("train"):
        args.append("--resume")
    assert main(args) == 0
    assert _temporaries(d) == []


# --- files a user supplies to the API (no CLI command reads notes yet) -----------------------


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("none.mid", None, "no such note file"),
        ("empty.mid", b"", "empty file (0 bytes)"),
        ("text.mid", b"hello", "not a readable mid note file"),
        ("random.mid", bytes(np.random.default_rng(1).integers(0, 256, 500, np.uint8)),
         "not a readable mid note file (MThd"),
        ("truncated.mid", b"MThd\x00\x00\x00\x06\x00\x01\x00\x02", "not a readable mid note file"),
        ("header.csv", b"a,b\n1,2\n", "expected the header"),
        ("broken.json", b"{", "not a readable json note file"),
    ],
)  # fmt: skip
def test_bad_note_files_raise_one_clear_error(tmp_path, name, content, expected):
    from timbrelab.notes import read_notes

    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises((ValueError, FileNotFoundError)) as raised:
        read_notes(path)
    message = str(raised.value)
    assert name in message and expected in message and "\n" not in message
