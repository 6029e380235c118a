"""Render notes to audio: FluidSynth with a General MIDI soundfont, or a numpy fallback.

FluidSynth plays a GM soundfont: the one that ships inside pretty_midi (``TimGM6mb.sf2``) unless
another installed one is named (:mod:`~timbrelab.data.soundfonts`), so every GM program and the
drum kit are available without downloads. Where the FluidSynth C library is missing,
:func:`render_additive` (harmonic partials with per-family envelopes) takes over and says so
once per process.

Why not ``pretty_midi.PrettyMIDI.fluidsynth``? It returns 16-bit dithered output whose dither
state lives in the synthesizer, so a reused synthesizer renders the same notes differently,
and a fresh one costs a soundfont load (0.1 s for TimGM6mb, seconds for an ``.sf3``). It also
normalises each render to [-1, 1] (losing velocity) and adds a second of tail. Here a light
synthesizer is created per render and shares one loaded soundfont per process and file; output
is float, unnormalised and exactly as long as asked, dry unless a
:class:`~timbrelab.data.expression.Performance` asks for reverb and chorus. The same notes
therefore give the same samples, whatever was rendered before.

A performance also bends single notes out of tune. The pitch wheel acts on a whole MIDI
channel, so each note is put on a channel where every note sounding with it has the same bend:
the 15 pitched channels are reused once a note's release has had time to ring
(:data:`RELEASE_GUARD`). Undetuned notes all share one channel, as without a performance.

Chapter: book/01_cqt_features.md
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import threading
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from timbrelab.audio import resample
from timbrelab.constants import SAMPLE_RATE
from timbrelab.data.expression import Performance
from timbrelab.data.gm import DRUM_PROGRAM, program_to_class
from timbrelab.data.soundfonts import DEFAULT_SOUNDFONT, soundfont_path
from timbrelab.notes import Note, midi_to_hz

#: Seconds of release tail rendered after the last note when no length is given.
RELEASE_TAIL = 1.0
#: Seconds a channel keeps its pitch bend after its last note-off, while the release rings.
RELEASE_GUARD = 0.25
# FluidSynth renders in blocks of 64 samples; rendering whole blocks keeps every render
# starting from the same internal state.
_BLOCK = 64
# Output gain of FluidSynth (its default, 0.2, leaves single notes near -30 dBFS).
_FLUIDSYNTH_GAIN = 1.0
#: FluidSynth's lowest output rate in Hz.
FLUIDSYNTH_MIN_RATE = 8000
_BACKENDS = ("auto", "fluidsynth", "additive")
_DRY = {"synth.reverb.active": 0, "synth.chorus.active": 0}
# GM channel 10 (index 9) is the drum kit; pitched notes use the other 15.
_DRUM_CHANNEL = 9
_PITCHED_CHANNELS = tuple(c for c in range(16) if c != _DRUM_CHANNEL)
# The pitch wheel's +-8192 steps span GM's default bend sensitivity of +-2 semitones.
_BEND_STEPS_PER_CENT = 8192 / 200
# SoundFont generator 24 sets the vibrato LFO's rate, in cents relative to 8.176 Hz.
_GEN_VIB_LFO_FREQ, _VIB_LFO_HZ = 24, 8.176
# A key counts as silent when a note this long at this velocity renders nothing but zeros.
_PROBE_SECONDS, _PROBE_VELOCITY = 0.1, 100
# Event kinds in the order they act at one sample: note-offs, then the controls that set up
# the next notes (bends, controllers), then note-ons. An event is (sample, kind, a, b, channel):
# a note's (pitch, velocity), or a control's (controller number or _BEND, value).
_OFF, _CONTROL, _ON = 0, 1, 2
_BEND = 128  # the pitch wheel, beside controller numbers 0..127

Event = tuple[int, int, int, int, int]


@functools.cache
def _fluidsynth_api():
    """The pyfluidsynth module and the C functions it does not wrap, or None if unusable."""
    try:
        import fluidsynth
        from fluidsynth import c_float, c_int, c_void_p, cfunc
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
        "set_gen": cfunc(
            "fluid_synth_set_gen",
            c_int,
            ("synth", c_void_p, 1),
            ("chan", c_int, 1),
            ("param", c_int, 1),
            ("value", c_float, 1),
        ),  # fmt: skip
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


def _require_fluidsynth() -> None:
    if not fluidsynth_available():
        raise RuntimeError(
            "backend='fluidsynth' but FluidSynth is not usable: install the C library "
            "(Debian: apt-get install libfluidsynth3) and pyfluidsynth"
        )


class _SoundfontCache:
    """One loaded soundfont per (process, file), shared by short-lived synthesizers.

    Keyed by process id: a DataLoader worker forked from a parent that already loaded a
    soundfont loads its own instead of sharing the parent's C objects. The synthesizer that
    loads a soundfont (its holder) keeps it; the loaded samples do not depend on the output
    rate, so one load serves every sample rate. The holder itself plays only the probes of
    :func:`silent_keys`, which then need no synthesizer of their own.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders: dict[tuple[int, str], tuple[object, int, int]] = {}
        self._scratch = np.zeros((0, 2), np.float32)

    def scratch(self, frames: int) -> np.ndarray:
        """A ``(frames, 2)`` float32 buffer reused by every render; call with the lock.

        FluidSynth overwrites all of it. A fresh buffer of megabytes per render may come from
        the system each time (the allocator's choice, which depends on what the process did
        before), and faulting its pages in then costs a tenth of the render.
        """
        if len(self._scratch) < frames:
            self._scratch = np.zeros((frames, 2), np.float32)
        return self._scratch[:frames]

    def _load(self, path: Path) -> tuple[object, int, int]:
        """``(holder synthesizer, its soundfont id, soundfont pointer)``; call with the lock."""
        key = (os.getpid(), str(path))
        if key not in self._holders:
            api = _fluidsynth_api()
            holder = api["module"].Synth(
                gain=_FLUIDSYNTH_GAIN, samplerate=SAMPLE_RATE, channels=16, **_DRY
            )
            sfid = holder.sfload(str(path))
            if sfid < 0:
                holder.delete()
                raise RuntimeError(f"{path}: FluidSynth could not load it")
            self._holders[key] = (holder, sfid, api["get_sfont_by_id"](holder.synth, sfid))
        return self._holders[key]

    @contextlib.contextmanager
    def holder(self, path: Path) -> Iterator[tuple[object, int]]:
        """The synthesizer that loaded the soundfont at ``path``, and the soundfont's id."""
        with self._lock:
            holder, sfid, _ = self._load(path)
            yield holder, sfid

    @contextlib.contextmanager
    def synth(self, path: Path, sample_rate: int, settings: dict) -> Iterator[tuple[object, int]]:
        """A fresh synthesizer with the soundfont at ``path`` added: ``(synth, soundfont id)``."""
        api = _fluidsynth_api()
        with self._lock:  # one synthesizer at a time per process: the log switch below is global
            sfont = self._load(path)[2]
            synth = api["module"].Synth(
                gain=_FLUIDSYNTH_GAIN, samplerate=sample_rate, channels=16, **settings
            )
            try:
                yield synth, api["add_sfont"](synth.synth, sfont)
            finally:
                # Removing the shared soundfont resets every channel, which logs one
                # "no preset" warning per channel: silence warnings just for that call.
                previous = api["set_log_function"](2, None, None)
                api["remove_sfont"](synth.synth, sfont)
                api["set_log_function"](2, previous, None)
                synth.delete()


_SOUNDFONTS = _SoundfontCache()
_warned_fallback = False


def _write(synth, out: np.ndarray) -> None:
    """Render ``len(out)`` stereo frames into the contiguous ``(N, 2)`` float32 ``out``."""
    ptr = out.ctypes.data
    _fluidsynth_api()["write_float"](synth.synth, len(out), ptr, 0, 2, ptr, 1, 2)


def _select(synth, sfid: int, channel: int, program: int) -> None:
    drum = program == DRUM_PROGRAM
    synth.program_select(channel, sfid, 128 if drum else 0, 0 if drum else program)


@functools.cache
def _probe_silent_keys(path: str, program: int) -> frozenset[int]:
    """Keys 0..127 that render only zeros, by playing each once (cached per process)."""
    channel = _DRUM_CHANNEL if program == DRUM_PROGRAM else 0
    out = np.zeros((-(-round(_PROBE_SECONDS * SAMPLE_RATE) // _BLOCK) * _BLOCK, 2), np.float32)
    silent = set()
    with _SOUNDFONTS.holder(Path(path)) as (synth, sfid):
        _select(synth, sfid, channel, program)
        for key in range(128):
            synth.noteon(channel, key, _PROBE_VELOCITY)
            _write(synth, out)
            if not np.abs(out).max() > 0:
                silent.add(key)
            synth.all_sounds_off(channel)
            _write(synth, out[:_BLOCK])  # the stopped voice ends within this block
    return frozenset(silent)


def silent_keys(program: int, soundfont: str | None = None) -> frozenset[int]:
    """Keys a soundfont leaves silent on a program (128 = drums): holes in its sample maps.

    Found by playing every key 0..127 once (velocity 100, 0.1 s) and cached per process, about
    5 ms per program. TimGM6mb, for instance, has no alto sax E4, no oboe below C2 and
    nothing above C8; FluidR3's contrabass stops at A#3.

    Parameters
    ----------
    program : int
        GM program 0..127, or 128 for drums.
    soundfont : str or None
        Short name (:func:`~timbrelab.data.soundfonts.available_soundfonts`); None: TimGM6mb.

    Returns
    -------
    frozenset of int

    Chapter: book/01_cqt_features.md
    """
    program_to_class(program)  # validates
    _require_fluidsynth()
    return _probe_silent_keys(str(soundfont_path(soundfont or DEFAULT_SOUNDFONT)), int(program))


def is_audible(
    program: int, pitch: int, backend: str = "auto", soundfont: str | None = None
) -> bool:
    """Whether the renderer makes a sound for ``pitch`` on ``program`` (128 = drums).

    FluidSynth: False on the soundfont's holes (:func:`silent_keys`). The additive synthesizer
    plays every key.

    Chapter: book/01_cqt_features.md
    """
    program_to_class(program)  # validates
    if _resolve_backend(backend) == "additive":
        return True
    return int(pitch) not in silent_keys(program, soundfont)


def _pick_channel(bend: int, start: int, free_at: dict[int, int], bend_of: dict[int, int]) -> int:
    """A channel already at ``bend``, else the first free one, else the one freed first."""
    for channel in _PITCHED_CHANNELS:
        if bend_of[channel] == bend:
            return channel
    for channel in _PITCHED_CHANNELS:
        if free_at[channel] <= start:
            return channel
    return min(_PITCHED_CHANNELS, key=free_at.__getitem__)


def _note_events(
    notes: list[Note], bends: list[int], drum: bool, sample_rate: int, n: int
) -> list[Event]:
    """Note-ons and offs on their channels, with the pitch bends the channels need first."""
    free_at = dict.fromkeys(_PITCHED_CHANNELS, 0)  # sample from which a channel may be retuned
    bend_of = dict.fromkeys(_PITCHED_CHANNELS, 0)
    guard = round(RELEASE_GUARD * sample_rate)
    events = []
    for i in sorted(range(len(notes)), key=lambda i: (notes[i].onset, notes[i].pitch)):
        note = notes[i]
        start = round(note.onset * sample_rate)
        if start >= n:
            continue
        stop = max(round(note.offset * sample_rate), start + 1)
        if drum:
            channel = _DRUM_CHANNEL
        else:
            channel = _pick_channel(bends[i], start, free_at, bend_of)
            if bend_of[channel] != bends[i]:
                events.append((start, _CONTROL, _BEND, bends[i], channel))
                bend_of[channel] = bends[i]
            free_at[channel] = max(free_at[channel], stop + guard)
        events.append((start, _ON, note.pitch, max(note.velocity, 1), channel))
        events.append((stop, _OFF, note.pitch, 0, channel))
    return events


def _synth_settings(performance: Performance) -> dict:
    """FluidSynth settings for the performance's reverb and chorus (both off when None)."""
    settings = dict(_DRY)
    if performance.reverb is not None:
        room_size, damping, width, level = (float(v) for v in performance.reverb)
        settings.update({
            "synth.reverb.active": 1, "synth.reverb.room-size": room_size,
            "synth.reverb.damp": damping, "synth.reverb.width": width, "synth.reverb.level": level,
        })  # fmt: skip
    if performance.chorus is not None:
        voices, level, speed_hz, depth_ms = performance.chorus
        settings.update({
            "synth.chorus.active": 1, "synth.chorus.nr": int(voices),
            "synth.chorus.level": float(level), "synth.chorus.speed": float(speed_hz),
            "synth.chorus.depth": float(depth_ms),
        })  # fmt: skip
    return settings


def _render_fluidsynth(
    notes: list[Note],
    program: int,
    drum: bool,
    sample_rate: int,
    n: int,
    path: Path,
    performance: Performance,
) -> np.ndarray:
    detune = performance.detune_cents
    if detune and (drum or len(detune) != len(notes)):
        raise ValueError(
            "performance.detune_cents needs one value per note, and drums take none: got "
            f"{len(detune)} for {len(notes)} {'drum ' if drum else ''}notes"
        )
    bends = [min(max(round(c * _BEND_STEPS_PER_CENT), -8192), 8191) for c in detune]
    events = _note_events(notes, bends or [0] * len(notes), drum, sample_rate, n)
    channels = sorted({e[4] for e in events} | {_DRUM_CHANNEL if drum else _PITCHED_CHANNELS[0]})
    for seconds, controller, value in performance.controls:
        if not (0 <= controller <= 127 and 0 <= value <= 127):
            raise ValueError(f"bad MIDI control change {controller}={value} at {seconds} s")
        sample = round(seconds * sample_rate)
        if sample < n:
            events += [(sample, _CONTROL, int(controller), int(value), c) for c in channels]
    events.sort()
    n_blocks = -(-n // _BLOCK) * _BLOCK
    with _SOUNDFONTS.synth(path, sample_rate, _synth_settings(performance)) as (synth, sfid):
        out = _SOUNDFONTS.scratch(n_blocks)
        for channel in channels:
            _select(synth, sfid, channel, program)
            if performance.vibrato_hz is not None:
                cents = 1200 * math.log2(performance.vibrato_hz / _VIB_LFO_HZ)
                _fluidsynth_api()["set_gen"](synth.synth, channel, _GEN_VIB_LFO_FREQ, cents)
        now = 0
        for sample, kind, a, b, channel in events:
            if sample >= n_blocks:
                break  # nothing later reaches the output
            if sample > now:
                _write(synth, out[now:sample])
                now = sample
            if kind == _ON:
                synth.noteon(channel, a, b)
            elif kind == _OFF:
                synth.noteoff(channel, a)
            elif a == _BEND:
                synth.pitch_bend(channel, b)
            else:
                synth.cc(channel, a, b)
        _write(synth, out[now:])
        # stereo presets -> mono, before the lock lets another render reuse the buffer
        return (out[:n, 0] + out[:n, 1]) * np.float32(0.5)


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
    soundfont: str | None = None,
    performance: Performance | None = None,
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
    soundfont : str or None
        Short name of an installed soundfont
        (:func:`~timbrelab.data.soundfonts.available_soundfonts`); None: TimGM6mb.
    performance : Performance or None
        Per-note detune (in the order of ``notes``), MIDI controllers, reverb and chorus
        (:func:`~timbrelab.data.expression.draw_performance`); None: dry, as written. The
        additive synthesizer plays the notes only.

    Returns
    -------
    np.ndarray ``(N,)`` float32
        ``N = round(seconds * sample_rate)``. Not normalised: louder velocities give louder
        audio; a single note peaks around 0.1-0.4, chords can exceed 1.

    Raises
    ------
    ValueError
        Bad arguments, or a ``soundfont`` that is not installed (the message lists those that
        are).

    Chapter: book/01_cqt_features.md
    """
    global _warned_fallback
    notes = _check_notes(notes)
    program_to_class(program)  # validates
    drum = is_drum or program == DRUM_PROGRAM
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
    n = _n_samples(notes, seconds, sample_rate)
    path = soundfont_path(soundfont or DEFAULT_SOUNDFONT)  # a missing soundfont fails here
    if _resolve_backend(backend) == "fluidsynth":
        _require_fluidsynth()
        # FluidSynth refuses rates below its minimum (and would play at its default rate):
        # render at a whole multiple of the rate, then resample down.
        factor = -(-FLUIDSYNTH_MIN_RATE // int(sample_rate))
        audio = _render_fluidsynth(
            notes, DRUM_PROGRAM if drum else int(program), drum, int(sample_rate) * factor,
            n * factor, path, performance or Performance(),
        )  # fmt: skip
        return audio if factor == 1 else resample(audio, sample_rate * factor, sample_rate)[:n]
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
