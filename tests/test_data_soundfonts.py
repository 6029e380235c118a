from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from timbrelab.data import render, soundfonts
from timbrelab.data.mixtures import make_mixture, save_mixture
from timbrelab.data.render import is_audible, render_notes, silent_keys
from timbrelab.data.soundfonts import (
    SOUNDFONTS_ENV,
    available_soundfonts,
    resolve_soundfonts,
    soundfont_name,
    soundfont_path,
)
from timbrelab.notes import Note

needs_fluidsynth = pytest.mark.skipif(
    not render.fluidsynth_available(), reason="FluidSynth C library not installed"
)
# The smallest Debian .sf3 (loads in about 3 s): proves FluidSynth reads .sf3.
MONO = "fluidr3mono"
needs_mono = pytest.mark.skipif(
    MONO not in available_soundfonts(),
    reason="Debian soundfont fluidr3mono-gm-soundfont (FluidR3Mono_GM.sf3) not installed",
)


@pytest.fixture
def extra_soundfont(tmp_path, monkeypatch):
    """A copy of TimGM6mb under another name, announced in TIMBRELAB_SOUNDFONTS."""
    path = tmp_path / "My Font.sf2"
    shutil.copy(soundfont_path(), path)
    monkeypatch.setenv(SOUNDFONTS_ENV, os.pathsep.join(["", str(path)]))
    return path


def test_timgm6mb_is_always_found_and_the_list_is_sorted_by_name():
    found = available_soundfonts()
    assert found["timgm6mb"] == soundfont_path() and soundfont_path().is_file()
    assert list(found) == sorted(found)
    assert all(path.is_file() for path in found.values())
    assert resolve_soundfonts(None) == ["timgm6mb"]
    assert resolve_soundfonts("all") == list(found)


def test_environment_variable_adds_soundfonts(extra_soundfont):
    assert soundfont_name(extra_soundfont) == "my-font"
    assert available_soundfonts()["my-font"] == extra_soundfont
    assert resolve_soundfonts(["my-font", "timgm6mb"]) == ["my-font", "timgm6mb"]
    assert resolve_soundfonts("my-font") == ["my-font"]


def test_bad_environment_entries_are_named(tmp_path, monkeypatch):
    monkeypatch.setenv(SOUNDFONTS_ENV, str(tmp_path / "gone.sf2"))
    with pytest.raises(ValueError, match="gone.sf2.*not a file"):
        available_soundfonts()
    clash = tmp_path / "TimGM6mb.sf2"
    clash.write_bytes(b"")
    monkeypatch.setenv(SOUNDFONTS_ENV, str(clash))
    with pytest.raises(ValueError, match="'timgm6mb', a name already taken"):
        available_soundfonts()


def test_a_missing_soundfont_says_what_is_installed(monkeypatch):
    with pytest.raises(ValueError, match=r"'nosuch' is not installed.*installed: .*timgm6mb"):
        resolve_soundfonts(["timgm6mb", "nosuch"])
    monkeypatch.setitem(soundfonts._DEBIAN_SOUNDFONTS, "fluidr3", ("/nonexistent/FluidR3_GM.sf2",
                                                                   "fluid-soundfont-gm"))
    with pytest.raises(ValueError, match="'fluidr3' is not installed.*apt-get install fluid-sou"):
        render_notes([Note(0.0, 0.1, 60)], 0, seconds=0.2, soundfont="fluidr3")
    with pytest.raises(ValueError, match="'fluidr3' is not installed"):
        make_mixture(1, 0.5, seed=0, soundfonts=["fluidr3"])
    with pytest.raises(ValueError, match="empty"):
        resolve_soundfonts([])


@needs_fluidsynth
def test_rendering_uses_the_named_file(extra_soundfont):
    notes = [Note(0.0, 0.3, 69, 100)]
    copy = render_notes(notes, 40, seconds=0.5, soundfont="my-font")
    assert copy.tobytes() == render_notes(notes, 40, seconds=0.5).tobytes()


@needs_fluidsynth
def test_soundfont_per_stem_is_drawn_by_the_seed_and_saved(extra_soundfont, tmp_path):
    fonts = ["my-font", "timgm6mb"]
    mixes = [make_mixture(4, 0.5, seed=seed, soundfonts=fonts) for seed in range(4)]
    drawn = [name for mix in mixes for name in mix.soundfonts]
    assert set(drawn) == set(fonts)  # 16 draws from 2: both appear
    again = make_mixture(4, 0.5, seed=0, soundfonts=fonts)
    assert again.soundfonts == mixes[0].soundfonts
    assert again.audio.tobytes() == mixes[0].audio.tobytes()
    # the default renders with TimGM6mb, the same bytes as naming it
    plain = make_mixture(2, 0.5, seed=3)
    assert plain.soundfonts == ["timgm6mb"] * 2
    named = make_mixture(2, 0.5, seed=3, soundfonts="timgm6mb")
    assert plain.audio.tobytes() == named.audio.tobytes()
    save_mixture(mixes[0], tmp_path)
    with np.load(tmp_path / "labels.npz") as labels:
        assert list(labels["soundfonts"]) == mixes[0].soundfonts


@needs_fluidsynth
def test_holes_are_probed_per_soundfont():
    # TimGM6mb: no alto sax E4, no oboe below C2, nothing above C8 on the piano
    assert 64 in silent_keys(65) and not is_audible(65, 64)
    assert {0, 35} <= silent_keys(68) and 36 not in silent_keys(68)
    assert silent_keys(0) == frozenset(range(109, 128))
    assert is_audible(65, 64, backend="additive")
    with pytest.raises(ValueError, match="not installed"):
        silent_keys(0, "nosuch")


@needs_fluidsynth
@needs_mono
def test_an_sf3_soundfont_renders_with_its_own_holes():
    # FluidR3Mono has the alto sax E4 that TimGM6mb lacks, and its contrabass stops at A#5
    assert is_audible(65, 64, soundfont=MONO) and not is_audible(65, 64)
    assert not is_audible(43, 90, soundfont=MONO) and is_audible(43, 90)
    notes = [Note(0.0, 0.3, 64, 100)]
    sax = render_notes(notes, 65, seconds=0.4, soundfont=MONO)
    assert np.abs(sax).max() > 1e-3
    assert sax.tobytes() == render_notes(notes, 65, seconds=0.4, soundfont=MONO).tobytes()
    violin = [Note(0.0, 0.3, 69, 100)]
    assert not np.array_equal(render_notes(violin, 40, seconds=0.4, soundfont=MONO),
                              render_notes(violin, 40, seconds=0.4))  # fmt: skip
