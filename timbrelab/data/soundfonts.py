"""General MIDI soundfonts installed on this machine, by short name.

A soundfont is one recording of the 128 GM programs: a "violin" in TimGM6mb and in FluidR3 are
two different violins. Rendering each stem with a soundfont drawn from several widens the
timbres a model trains on (Li & Zhu render with MuseScore's General soundfont). These are found:

===================  ==============================  ======================================
name                 file                            where it comes from
===================  ==============================  ======================================
``fluidr3``          ``FluidR3_GM.sf2``              Debian ``fluid-soundfont-gm``
``fluidr3mono``      ``FluidR3Mono_GM.sf3``          Debian ``fluidr3mono-gm-soundfont``
``musescore-full``   ``MuseScore_General_Full.sf3``  Debian ``musescore-general-soundfont``
``musescore-lite``   ``MuseScore_General_Lite.sf3``  Debian ``musescore-general-soundfont-small``
``timgm6mb``         ``TimGM6mb.sf2``                inside pretty_midi, always there
===================  ==============================  ======================================

plus every file named in the environment variable ``TIMBRELAB_SOUNDFONTS`` (paths separated by
``os.pathsep``), named after its file (``MS Basic.sf3`` -> ``ms-basic``). A name always means
the same file: Debian's ``default-GM`` and ``MuseScore_General.sf3`` links, which point at
whichever package was installed last, are not used. FluidSynth 2 reads ``.sf3`` (Ogg-compressed
samples) as well as ``.sf2``; it decompresses an ``.sf3`` when loading it (a few seconds, once
per process). Every process (each DataLoader worker) holds its own copy of each soundfont it has
used: about 150 MB for FluidR3, 130 MB for FluidR3Mono, 220 MB for MuseScore Lite and 700 MB for
MuseScore Full, against 17 MB for TimGM6mb.

Chapter: book/01_cqt_features.md
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Sequence
from pathlib import Path

#: Environment variable listing extra soundfont files (separated by ``os.pathsep``).
SOUNDFONTS_ENV = "TIMBRELAB_SOUNDFONTS"
#: The soundfont every stem uses unless told otherwise (pretty_midi's, always installed).
DEFAULT_SOUNDFONT = "timgm6mb"

# name -> (file, Debian package that installs it)
_DEBIAN_SOUNDFONTS = {
    "fluidr3": ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "fluid-soundfont-gm"),
    "fluidr3mono": ("/usr/share/sounds/sf3/FluidR3Mono_GM.sf3", "fluidr3mono-gm-soundfont"),
    "musescore-full": (
        "/usr/share/sounds/sf3/MuseScore_General_Full.sf3", "musescore-general-soundfont"
    ),
    "musescore-lite": (
        "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3", "musescore-general-soundfont-small"
    ),
}  # fmt: skip
# "all" selects every installed soundfont, so no soundfont may be called that.
_RESERVED = "all"


@functools.cache  # asked for every note a mixture checks (is_audible): look it up once
def _pretty_midi_soundfont() -> Path:
    import pretty_midi

    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


def soundfont_name(path: str | os.PathLike) -> str:
    """Short name of a soundfont file: its stem, lower case, other characters as ``-``.

    ``soundfont_name("/opt/sf/MS Basic.sf3") == "ms-basic"``.

    Chapter: book/01_cqt_features.md
    """
    return re.sub(r"[^a-z0-9]+", "-", Path(path).stem.lower()).strip("-")


def _environment_soundfonts() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for entry in os.environ.get(SOUNDFONTS_ENV, "").split(os.pathsep):
        if not entry:
            continue  # an empty entry (a trailing separator) names nothing
        path = Path(entry).expanduser()
        if not path.is_file():
            raise ValueError(f"{SOUNDFONTS_ENV} names {entry!r}, which is not a file")
        name = soundfont_name(path)
        if name in found or name in _DEBIAN_SOUNDFONTS or name in (DEFAULT_SOUNDFONT, _RESERVED):
            raise ValueError(
                f"{SOUNDFONTS_ENV}: {entry!r} would be called {name!r}, a name already taken; "
                "rename the file"
            )
        found[name] = path
    return found


def available_soundfonts() -> dict[str, Path]:
    """Installed GM soundfonts, short name -> file, in order of name.

    TimGM6mb (inside pretty_midi) is always there; the Debian soundfonts of the module's table
    when their files exist; then every file of ``TIMBRELAB_SOUNDFONTS``. The order is that of
    the names (``sorted``), whatever the order of discovery, so a soundfont drawn by index from
    this list depends only on the seed and on which soundfonts are installed.

    Returns
    -------
    dict of str to Path

    Raises
    ------
    ValueError
        ``TIMBRELAB_SOUNDFONTS`` names a missing file, or two files that get the same name.

    Chapter: book/01_cqt_features.md
    """
    found = {DEFAULT_SOUNDFONT: _pretty_midi_soundfont()}
    found.update(
        (name, Path(path)) for name, (path, _) in _DEBIAN_SOUNDFONTS.items() if Path(path).is_file()
    )
    found.update(_environment_soundfonts())
    return dict(sorted(found.items()))


def _not_installed(name: str, installed: Sequence[str]) -> ValueError:
    if name in _DEBIAN_SOUNDFONTS:
        hint = f" (Debian: apt-get install {_DEBIAN_SOUNDFONTS[name][1]})"
    else:
        hint = f" (add its file to {SOUNDFONTS_ENV})"
    return ValueError(
        f"soundfont {name!r} is not installed{hint}; installed: {', '.join(installed)}"
    )


def soundfont_path(name: str = DEFAULT_SOUNDFONT) -> Path:
    """File of an installed soundfont, by short name (default: pretty_midi's ``TimGM6mb.sf2``).

    Raises
    ------
    ValueError
        When ``name`` is not installed: the message says which package provides it and lists
        the installed soundfonts.

    Chapter: book/01_cqt_features.md
    """
    if name == DEFAULT_SOUNDFONT:  # no directory scan for the common case
        return _pretty_midi_soundfont()
    installed = available_soundfonts()
    if name not in installed:
        raise _not_installed(name, list(installed))
    return installed[name]


def resolve_soundfonts(soundfonts: str | Sequence[str] | None) -> list[str]:
    """The soundfont names a ``soundfonts=`` option selects, checked to be installed.

    Parameters
    ----------
    soundfonts : None, "all", str or sequence of str
        None: TimGM6mb only (the default renderer); ``"all"``: every installed soundfont; a
        name or a sequence of names: those, in the order given (repeat a name to draw it more
        often).

    Returns
    -------
    list of str
        At least one name.

    Raises
    ------
    ValueError
        An empty selection, or a name that is not installed (the message lists what is).

    Chapter: book/01_cqt_features.md
    """
    if soundfonts is None:
        return [DEFAULT_SOUNDFONT]
    installed = available_soundfonts()
    if soundfonts == _RESERVED:
        return list(installed)
    names = [soundfonts] if isinstance(soundfonts, str) else list(soundfonts)
    if not names:
        raise ValueError("soundfonts is empty: give None, 'all' or at least one name")
    for name in names:
        if name not in installed:
            raise _not_installed(name, list(installed))
    return names
