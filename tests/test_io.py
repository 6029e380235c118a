from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from timbrelab.data import SyntheticMixtures
from timbrelab.io import (
    ChecksumError,
    atomic_directory,
    atomic_output,
    load_checked,
    remove_stale_temporaries,
    save_checked,
)


def _dead_pid() -> int:
    """The id of a process that has already exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path):
    target = tmp_path / "notes.mid"
    dead = tmp_path / f".notes.mid.{_dead_pid()}-0123abcd.tmp.mid"
    live = tmp_path / f".notes.mid.{os.getppid()}-0123abcd.tmp.mid"  # a running process
    other = tmp_path / f".other.mid.{_dead_pid()}-0123abcd.tmp.mid"  # another target's
    folder = tmp_path / f".notes.mid.{_dead_pid()}-89abcdef.tmp"
    for path in (dead, live, other):
        path.write_bytes(b"partial")
    folder.mkdir()
    (folder / "stem.wav").write_bytes(b"partial")
    assert sorted(remove_stale_temporaries(target)) == sorted([dead, folder])
    assert live.exists() and other.exists()


def test_atomic_output_cleans_up_before_writing(tmp_path):
    stale = tmp_path / f".x.csv.{_dead_pid()}-0123abcd.tmp.csv"
    stale.write_text("")
    with atomic_output(tmp_path / "x.csv") as tmp:
        tmp.write_text("a")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.csv"]


@pytest.mark.parametrize("state", ["missing", "empty", "full"])
def test_atomic_directory(tmp_path, state):
    out = tmp_path / "out"
    if state != "missing":
        out.mkdir()
    if state == "full":
        (out / "old.txt").write_text("old")
    with atomic_directory(out, replace=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_directory_keeps_everything_on_failure(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(out, replace=True) as tmp:
        (tmp / "new.txt").write_text("new")
        raise RuntimeError("render failed")
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with pytest.raises(FileExistsError, match="not empty"), atomic_directory(out):
        pass


@pytest.mark.parametrize("relative", [".", "..", "../.."])
def test_atomic_directory_never_replaces_the_working_directory(tmp_path, monkeypatch, relative):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    (work / "mine.txt").write_text("mine")
    monkeypatch.chdir(work)
    with pytest.raises(PermissionError, match="contains the working directory"):
        with atomic_directory(relative, replace=True):
            pass
    assert (work / "mine.txt").read_text() == "mine"


def test_atomic_directory_fills_an_empty_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with atomic_directory(".") as tmp:
        (tmp / "mix.wav").write_bytes(b"RIFF")
    assert [p.name for p in tmp_path.iterdir()] == ["mix.wav"]


def test_checked_files_round_trip_and_refuse_damage(tmp_path):
    state = {"w": torch.arange(1000, dtype=torch.float32), "step": 3, "name": "amt"}
    path = tmp_path / "c.pt"
    save_checked(state, path)
    first = path.read_bytes()
    save_checked(state, path)
    assert path.read_bytes() == first  # same content, same bytes
    loaded = load_checked(path)
    assert torch.equal(loaded["w"], state["w"]) and loaded["step"] == 3
    data = bytearray(first)
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="c.pt: checksum mismatch"):
        load_checked(path, "checkpoint")
    path.write_bytes(b"")
    with pytest.raises(ChecksumError, match="empty file"):
        load_checked(path)
    torch.save(state, path)
    with pytest.raises(ChecksumError, match="no checksum inside"):
        load_checked(path)
    assert load_checked(path, legacy_ok=True)["step"] == 3
    with pytest.raises(FileNotFoundError):
        load_checked(tmp_path / "none.pt")


def _truncate(path):
    path.write_bytes(path.read_bytes()[:500])


def _empty(path):
    path.write_bytes(b"")


def _flip(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _text(path):
    path.write_text("not an npz")


def _other_item(path):
    path.write_bytes((path.parent / "0000001.npz").read_bytes())


@pytest.mark.parametrize("damage", [_truncate, _empty, _flip, _text, _other_item])
def test_bad_cache_files_are_regenerated(tmp_path, damage):
    data = SyntheticMixtures(2, seconds=0.5, instruments=1, seed=3, cache_dir=tmp_path)
    fresh = [data.arrays(i) for i in range(2)]  # written to the cache
    item0 = data.cache_dir / "0000000.npz"
    damage(item0)
    with pytest.warns(UserWarning, match="0000000.npz: bad cache file"):
        again = data.arrays(0)
    assert again.keys() == fresh[0].keys()
    for key in fresh[0]:
        np.testing.assert_array_equal(again[key], fresh[0][key])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # regenerated: read back silently now
        data.arrays(0)


def test_check_writable_of_a_folder_still_to_be_created(tmp_path):
    from timbrelab.io import check_writable

    check_writable(tmp_path / "a" / "b", missing_ok=True)
    assert list(tmp_path.iterdir()) == []  # probed at tmp_path, nothing created or left
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_writable(tmp_path / "a")
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileNotFoundError):
        check_writable(tmp_path / "file" / "sub", missing_ok=True)
