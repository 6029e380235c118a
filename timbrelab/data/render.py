"""Render notes to audio: FluidSynth with pretty_midi's GM soundfont, or a numpy fallback.

FluidSynth plays the General MIDI soundfont that ships inside pretty_midi (``TimGM6mb.sf2``),
so every GM program and the drum kit are available without downloads. Where the FluidSynth C
library is missing, :func:`render_additive` (harmonic partials with per-family envelopes) takes
over and says so once per process.

Why not ``pretty_midi.PrettyMIDI.fluidsynth``? It returns 16-bit dithered output whose dither
state lives in the synthesizer, so a reused synthesizer renders the same notes differently,
and a fresh one costs a soundfont load (about 0.1 s). It also normalises each render to [-1, 1]
(losing velocity) and adds a second of tail. Here a light synthesizer is created per render
and shares one loaded soundfont per process; output is float, unnormalised and exactly as
long as asked, with reverb and chorus off. The same notes therefore give the same samples,
whatever was rendered before.

Chapter: book/01_cqt_features.md
"""

from __future__ import annotations

import functools
import os
import threading
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from timbrelab.constants import SAMPLE_RATE
from timbrelab.data.gm import DRUM_PROGRAM, program_to_class
from timbrelab.notes import Note, midi_to_hz

#: Seconds of release tail rendered after the last note when no length is given.
RELEASE_TAIL = 1.0
# FluidSynth renders in blocks of 64 samples; rendering whole blocks keeps every render
# starting from the same internal state.
_BLOCK = 64
# Output gain of FluidSynth (its default, 0.2, leaves single notes near -30 dBFS).
_FLUIDSYNTH_GAIN = 1.0
_BACKENDS = ("auto", "fluidsynth", "additive")
# Keys that TimGM6mb.sf2 leaves silent at any velocity, found by rendering every program on
# every key 0..127 (see tests/test_data_render.py): holes in its sample maps. A label on such a
# key would mark a note nobody can hear, so make_mixture drops these notes.
_TIMGM6MB_SILENT = {
    65: range(64, 65),  # alto sax: a hole at E4
    67: range(80, 128),
    68: (*range(0, 36), *range(109, 128)),
    78: (*range(79, 102), *range(109, 128)),
    101: range(107, 128),
    113: range(90, 128),
    122: (*range(0, 36), *range(87, 128)),
    DRUM_PROGRAM: (*range(0, 27), *range(88, 128)),
}


def soundfont_path() -> Path:
    """Path of the General MIDI soundfont shipped with pretty_midi (``TimGM6mb.sf2``).

    Chapter: book/01_cqt_features.md
    """
    import pretty_midi

    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


@functools.cache
def _fluidsynth_api():
    """The pyfluidsynth module and the C functions it does not wrap, or None if unusable."""
    try:
        import fluidsynth
        from fluidsynth import c_int, c_void_p, cfunc
    except (ImportError, OSError):  # pyfluidsynth raises ImportError when libfluidsynth is absent
        return None
    api = {
        "module": fluidsynth,
        "write_float": cfunc(
            "fluid_synth_write_float",
            c_int,
            ("synth", c_void_p, 1),
            ("len", c_int, 1),
            ("lout", c_void_p, 1),
            ("loff", c_int, 1),
            ("lincr", c_int, 1),
            ("rout", c_void_p, 1),
            ("roff", c_int, 1),
            ("rincr", c_int, 1),
        ),  # fmt: skip
        "add_sfont": cfunc(
            "fluid_synth_add_sfont", c_int, ("synth", c_void_p, 1), ("sfont", c_void_p, 1)
        ),
        "remove_sfont": cfunc(
            "fluid_synth_remove_sfont", c_int, ("synth", c_void_p, 1), ("sfont", c_void_p, 1)
        ),
        "get_sfont_by_id": cfunc(
            "fluid_synth_get_sfont_by_id", c_void_p, ("synth", c_void_p, 1), ("id", c_int, 1)
        ),
        "set_log_function": cfunc(
            "fluid_set_log_function",
            c_void_p,
            ("level", c_int, 1),
            ("fun", c_void_p, 1),
            ("data", c_void_p, 1),
        ),  # fmt: skip
    }
    if any(f is None for f in api.values()) or not soundfont_path().is_file():
        return None
    return api


def fluidsynth_available() -> bool:
    """True when FluidSynth (C library + pyfluidsynth) and pretty_midi's soundfont are usable.

    Chapter: book/01_cqt_features.md
    """
    return _fluidsynth_api() is not None


def _resolve_backend(backend: str) -> str:
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "fluidsynth" if fluidsynth_available() else "additive"
    return backend


def is_audible(program: int, pitch: int, backend: str = "auto") -> bool:
    """Whether the renderer makes a sound for ``pitch`` on ``program`` (128 = drums).

    The GM soundfont has a few holes (e.g. alto sax E4, baritone sax above G#5, oboe below
    C2); the additive synthesizer plays every key.

    Chapter: book/01_cqt_features.md
    """
    program_to_class(program)  # validates
    if _resolve_backend(backend) == "additive":
        return True
    return pitch not in _TIMGM6MB_SILENT.get(int(program), ())


class _SoundfontCache:
    """One loaded soundfont per (process, sample rate), shared by short-lived synthesizers.

    Keyed by process id: a DataLoader worker forked from a parent that already loaded the
    soundfont loads its own instead of sharing the parent's C objects.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders: dict[tuple[int, int], tuple[object, int]] = {}

    def render(
        self,
        events: list[tuple[int, int, int, int]],
        n: int,
        sample_rate: int,
        program: int,
        drum: bool,
    ) -> np.ndarray:
        api = _fluidsynth_api()
        fs = api["module"]
        settings = {"synth.reverb.active": 0, "synth.chorus.active": 0}
        with self._lock:  # one render at a time per process: the log switch below is global
            key = (os.getpid(), sample_rate)
            if key not in self._holders:
                holder = fs.Synth(
                    gain=_FLUIDSYNTH_GAIN, samplerate=sample_rate, channels=16, **settings
                )
                sfid = holder.sfload(str(soundfont_path()))
                if sfid < 0:
                    raise RuntimeError(f"{soundfont_path()}: FluidSynth could not load it")
                self._holders[key] = (holder, api["get_sfont_by_id"](holder.synth, sfid))
            sfont = self._holders[key][1]
            synth = fs.Synth(gain=_FLUIDSYNTH_GAIN, samplerate=sample_rate, channels=16, **settings)
            try:
                sfid = api["add_sfont"](synth.synth, sfont)
                channel = 9 if drum else 0
                synth.program_select(channel, sfid, 128 if drum else 0, 0 if drum else program)
                n_blocks = -(-n // _BLOCK) * _BLOCK
                out = np.zeros((n_blocks, 2), np.float32)
                now = 0
                for sample, is_on, pitch, velocity in [*events, (n_blocks, 0, -1, 0)]:
                    sample = min(sample, n_blocks)
                    if sample > now:
                        view = out[now:]
                        ptr = view.ctypes.data
                        api["write_float"](synth.synth, sample - now, ptr, 0, 2, ptr, 1, 2)
                        now = sample
                    if pitch < 0:
                        break
                    if is_on:
                        synth.noteon(channel, pitch, velocity)
                    else:
                        synth.noteoff(channel, pitch)
            finally:
                # Removing the shared soundfont resets every channel, which logs one
                # "no preset" warning per channel: silence warnings just for that call.
                previous = api["set_log_function"](2, None, None)
                api["remove_sfont"](synth.synth, sfont)
                api["set_log_function"](2, previous, None)
                synth.delete()
        return (out[:n, 0] + out[:n, 1]) * np.float32(0.5)  # stereo presets -> mono


_SOUNDFONTS = _SoundfontCache()
_warned_fallback = False


def _events(notes: list[Note], sample_rate: int, n: int) -> list[tuple[int, int, int, int]]:
    """(sample, is_on, pitch, velocity) sorted by time, note-offs first at equal times."""
    events = []
    for note in notes:
        start = round(note.onset * sample_rate)
        if start >= n:
            continue
        stop = max(round(note.offset * sample_rate), start + 1)
        events.append((start, 1, note.pitch, max(note.velocity, 1)))
        events.append((stop, 0, note.pitch, 0))
    return sorted(events)


def _check_notes(notes: Iterable[Note]) -> list[Note]:
    notes = list(notes)
    for note in notes:
        if not isinstance(note, Note):
            raise ValueError(f"expected timbrelab.notes.Note objects, got {note!r}")
    return notes


def _n_samples(notes: list[Note], seconds: float | None, sample_rate: int) -> int:
    if seconds is None:
        seconds = max((n.offset for n in notes), default=-RELEASE_TAIL) + RELEASE_TAIL
    if seconds < 0 or not np.isfinite(seconds):
        raise ValueError(f"seconds must be >= 0, got {seconds}")
    return round(seconds * sample_rate)


def render_notes(
    notes: Iterable[Note],
    program: int,
    sample_rate: int = SAMPLE_RATE,
    is_drum: bool = False,
    seconds: float | None = None,
    seed: int = 0,
    backend: str = "auto",
) -> np.ndarray:
    """Render notes played by one GM instrument.

    Parameters
    ----------
    notes : iterable of Note
        The notes (their ``source`` is ignored). A note's onset is placed to within one
        FluidSynth block (64 samples, 2.9 ms at 22.05 kHz).
    program : int
        GM program 0..127, or 128 (:data:`~timbrelab.data.gm.DRUM_PROGRAM`) for drums.
    sample_rate : int
        Output rate in Hz.
    is_drum : bool
        Play the GM drum kit (same as ``program=128``); pitches are then GM percussion keys.
    seconds : float or None
        Output length; None: until :data:`RELEASE_TAIL` after the last offset. Notes are cut
        at the end, as in a recording excerpt.
    seed : int
        Seed of the additive synthesizer's random phases and detuning (FluidSynth is
        deterministic and ignores it).
    backend : {"auto", "fluidsynth", "additive"}
        "auto" uses FluidSynth when :func:`fluidsynth_available`, else the additive synth
        (with a one-time warning).

    Returns
    -------
    np.ndarray ``(N,)`` float32
        ``N = round(seconds * sample_rate)``. Not normalised: louder velocities give louder
        audio; a single note peaks around 0.1-0.4, chords can exceed 1.

    Chapter: book/01_cqt_features.md
    """
    global _warned_fallback
    notes = _check_notes(notes)
    program_to_class(program)  # validates
    drum = is_drum or program == DRUM_PROGRAM
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
    n = _n_samples(notes, seconds, sample_rate)
    if _resolve_backend(backend) == "fluidsynth":
        if not fluidsynth_available():
            raise RuntimeError(
                "backend='fluidsynth' but FluidSynth is not usable: install the C library "
                "(Debian: apt-get install libfluidsynth3) and pyfluidsynth"
            )
        return _SOUNDFONTS.render(
            _events(notes, sample_rate, n), n, int(sample_rate), int(program), drum
        )
    if backend == "auto" and not _warned_fallback:
        _warned_fallback = True
        warnings.warn(
            "FluidSynth is not available (Debian: apt-get install libfluidsynth3); rendering "
            "with timbrelab's additive synthesizer instead, which sounds far less like real "
            "instruments",
            RuntimeWarning,
            stacklevel=2,
        )
    return render_additive(
        notes, DRUM_PROGRAM if drum else program, sample_rate, n / sample_rate, seed
    )


def _remove_dc(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """One-pole DC blocker (-3 dB at 5 Hz): some soundfont samples carry a DC offset."""
    from scipy.signal import lfilter

    pole = 1 - 2 * np.pi * 5.0 / sample_rate
    return lfilter([1.0, -1.0], [1.0, -pole], audio).astype(np.float32)


# --- additive fallback ------------------------------------------------------------------------

# Per GM family (program // 8): (partials' spectral slope, even-partial cut, attack s,
# decay time s (percussive) or None (sustained), release s, vibrato cents).
_FAMILY_TIMBRE = {
    0: (1.4, 0.0, 0.004, 1.2, 0.25, 0.0),   # piano
    1: (2.6, 0.0, 0.002, 0.8, 0.3, 0.0),    # chromatic percussion
    2: (1.0, 0.3, 0.015, None, 0.08, 0.0),  # organ
    3: (1.7, 0.0, 0.003, 0.9, 0.15, 0.0),   # guitar
    4: (1.5, 0.0, 0.005, 0.8, 0.1, 0.0),    # bass
    5: (0.9, 0.0, 0.07, None, 0.2, 18.0),   # strings
    6: (1.1, 0.0, 0.15, None, 0.4, 12.0),   # ensemble
    7: (0.8, 0.0, 0.04, None, 0.12, 6.0),   # brass
    8: (1.2, 0.8, 0.03, None, 0.08, 8.0),   # reed: weak even partials (clarinet-like)
    9: (2.5, 0.0, 0.05, None, 0.1, 10.0),   # pipe: nearly pure
    10: (1.0, 0.0, 0.005, None, 0.08, 5.0), # synth lead: sawtooth-like
    11: (2.0, 0.0, 0.3, None, 0.6, 0.0),    # synth pad
    12: (1.6, 0.0, 0.1, None, 0.5, 0.0),    # synth effects
    13: (1.5, 0.0, 0.003, 1.0, 0.2, 0.0),   # ethnic (mostly plucked)
    14: (2.0, 0.0, 0.001, 0.4, 0.1, 0.0),   # percussive
    15: (1.2, 0.0, 0.05, None, 0.2, 0.0),   # sound effects
}  # fmt: skip
_MAX_PARTIALS = 24
_TABLE_SIZE = 2048
_ADDITIVE_LEVEL = 0.3  # peak of a velocity-127 note, roughly FluidSynth's level at gain 1


def render_additive(
    notes: Iterable[Note],
    program: int,
    sample_rate: int = SAMPLE_RATE,
    seconds: float | None = None,
    seed: int = 0,
) -> np.ndarray:
    """A small additive synthesizer: the fallback when FluidSynth is absent.

    Each note is a sum of harmonic partials (amplitude ``k**-slope``, even partials weak for
    reeds, louder notes brighter; one period is tabulated and read at the note's phase) under
    an envelope typical of the program's GM family: struck/plucked families decay and lose
    their upper partials first, the others sustain, some with vibrato. Drums (program 128) are
    decaying noise bursts, low keys darker.

    Parameters
    ----------
    notes : iterable of Note
    program : int
        GM program 0..127 or 128 for drums.
    sample_rate : int
    seconds : float or None
        Output length (None: :data:`RELEASE_TAIL` after the last offset).
    seed : int
        Seeds random phases, detuning (a few cents) and noise.

    Returns
    -------
    np.ndarray ``(N,)`` float32

    Chapter: book/01_cqt_features.md
    """
    notes = _check_notes(notes)
    program_to_class(program)  # validates
    n = _n_samples(notes, seconds, sample_rate)
    rng = np.random.default_rng(seed)
    out = np.zeros(n, np.float64)
    for note in notes:
        start = round(note.onset * sample_rate)
        if start >= n:
            continue
        if program == DRUM_PROGRAM:
            tone = _drum_hit(note, sample_rate, rng)
        else:
            tone = _pitched_note(note, program, sample_rate, rng)
        stop = min(n, start + len(tone))
        out[start:stop] += tone[: stop - start]
    return out.astype(np.float32)


def _pitched_note(note: Note, program: int, sample_rate: int, rng: np.random.Generator):
    slope, even_cut, attack, decay, release, vibrato = _FAMILY_TIMBRE[program // 8]
    held = note.offset - note.onset
    t = np.arange(round((held + release * 3) * sample_rate)) / sample_rate
    loud = note.velocity / 127
    f0 = float(midi_to_hz(note.pitch)) * 2 ** (rng.normal(0, 3) / 1200)
    k = np.arange(1, _MAX_PARTIALS + 1)
    k = k[f0 * k < 0.45 * sample_rate]
    # louder notes are brighter: the slope flattens with velocity
    amps = k ** -(slope + 0.8 * (1 - loud)) * np.where(k % 2 == 0, 1 - even_cut, 1.0)
    phases = rng.uniform(0, 2 * np.pi, len(k))
    # One period of the waveform as a table, read at the note's (vibrato-modulated) phase:
    # cost per sample is independent of the number of partials.
    cycle = 2 * np.pi * np.arange(_TABLE_SIZE) / _TABLE_SIZE
    wobble = vibrato / 1200 * np.log(2) * np.sin(2 * np.pi * rng.uniform(4.5, 6.5) * t)
    position = (np.cumsum(f0 * (1 + wobble)) / sample_rate) % 1.0 * _TABLE_SIZE

    def play(weights: np.ndarray) -> np.ndarray:
        table = (weights[:, None] * np.sin(np.outer(k, cycle) + phases[:, None])).sum(axis=0)
        table = np.append(table, table[0]) / amps.sum()
        return np.interp(position, np.arange(_TABLE_SIZE + 1), table)

    if decay is None:
        tone = play(amps)
        body = 0.8 + 0.2 * np.exp(-t / 0.3)  # a little accent, then sustain
    else:
        # struck and plucked strings lose their upper partials first: fade from the bright
        # spectrum to a dull one
        bright = np.exp(-t / decay)
        tone = bright * play(amps) + (1 - bright) * play(amps * np.exp(-(k - 1.0)))
        body = np.exp(-t / decay)
    env = np.minimum(t / attack, 1.0) * body
    at_release = env[min(len(t) - 1, round(held * sample_rate))]
    env = np.where(t < held, env, at_release * np.exp(-(t - held) / release))
    return _ADDITIVE_LEVEL * loud**1.5 * env * tone


def _drum_hit(note: Note, sample_rate: int, rng: np.random.Generator):
    from scipy.signal import lfilter

    loud = note.velocity / 127
    # cymbals (49, 51, 52, 55, 57, 59) ring; hi-hats and the rest are short
    ring = 1.2 if note.pitch in (49, 51, 52, 55, 57, 59) else 0.15
    t = np.arange(round(ring * 4 * sample_rate)) / sample_rate
    noise = rng.standard_normal(len(t))
    if note.pitch <= 41:  # kicks and low toms: a falling sine thump
        f = 50 + 40 * (note.pitch - 35) / 6 + 60 * np.exp(-t / 0.03)
        body = np.sin(2 * np.pi * np.cumsum(f) / sample_rate) + 0.1 * noise
    else:  # one-pole low-pass: higher keys keep more high frequencies
        pole = float(np.clip(0.9 - (note.pitch - 42) / 50, 0.0, 0.9))
        body = lfilter([1 - pole], [1, -pole], noise)
    return _ADDITIVE_LEVEL * loud**1.5 * np.exp(-t / ring) * body
