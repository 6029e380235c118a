"""Mixtures of K instruments from different timbre classes, with stems and labels.

:func:`make_mixture` draws K GM programs from K different Jointist classes, a random score for
each in the program's range, renders every stem on its own and sums them; :func:`mixture_labels`
turns the notes into frame/onset/offset rolls at any hop, per-stem rolls, and the
``dominant_source`` map that clustering losses need. Everything is a pure function of the seed.

Chapter: book/01_cqt_features.md
"""

from __future__ import annotations

import functools
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from timbrelab.constants import FMIN_HZ, HOP_LENGTH, MIDI_MIN, N_PITCHES, SAMPLE_RATE
from timbrelab.data.augment import room_and_eq
from timbrelab.data.expression import Expression, draw_effects, draw_performance
from timbrelab.data.gm import (
    DRUM_PROGRAM,
    MELODIC_PROGRAMS,
    MONOPHONIC_CLASSES,
    class_name,
    draw_programs,
    program_to_class,
)
from timbrelab.data.pianorolls import (
    dense_score,
    ensemble_score,
    program_pitch_range,
    random_score,
)
from timbrelab.data.render import _resolve_backend, is_audible, render_notes
from timbrelab.data.soundfonts import resolve_soundfonts
from timbrelab.notes import Note, notes_to_rolls

#: Most instruments in one mixture.
MAX_INSTRUMENTS = 8
#: A time-frequency bin counts as silent below this level relative to the loudest stem bin.
SILENCE_DB = -60.0
#: Kinds of score :func:`make_mixture` writes (see its ``style``).
STYLES = ("random", "dense", "ensemble")
# Short clips can draw an empty score; redraw (from the same stream) up to this many times.
_SCORE_TRIES = 20
# random_score's arguments, which make_mixture passes through in the "random" style.
_SCORE_ARGUMENTS = frozenset({
    "pitch_range", "max_polyphony", "note_density", "min_duration", "max_duration",
    "velocity_range", "grid", "timing_jitter",
})  # fmt: skip

Seed = int | Sequence[int] | np.random.SeedSequence


@dataclass
class Mixture:
    """A rendered mixture, its stems and its score.

    Attributes
    ----------
    audio : np.ndarray ``(N,)`` float32
        The mix; exactly ``stems.sum(axis=0)``, peak at most 1.
    stems : np.ndarray ``(K, N)`` float32
        Each instrument on its own, gains already applied.
    notes : list of Note
        All notes, ``note.source`` = stem index.
    programs : list of int
        GM program of each stem (128 = drums).
    sample_rate : int
    soundfonts : list of str or None
        What rendered each stem: a soundfont's short name, or ``"additive"`` for the additive
        synthesizer; None when unknown (a mixture assembled by hand).

    Chapter: book/01_cqt_features.md
    """

    audio: np.ndarray
    stems: np.ndarray
    notes: list[Note]
    programs: list[int]
    sample_rate: int
    soundfonts: list[str] | None = None

    @property
    def n_sources(self) -> int:
        """Number of stems K."""
        return len(self.programs)

    @property
    def seconds(self) -> float:
        """Length in seconds."""
        return len(self.audio) / self.sample_rate

    @property
    def is_drum(self) -> np.ndarray:
        """``(K,)`` bool: which stems are drum kits (their notes are not pitches)."""
        return np.array([p == DRUM_PROGRAM for p in self.programs], bool)

    def stem_notes(self, k: int) -> list[Note]:
        """The notes of stem ``k``."""
        return [n for n in self.notes if n.source == k]


def _score_settings(program: int, rng: np.random.Generator) -> dict:
    """Per-stem score parameters typical of the instrument's class."""
    cls = program_to_class(program)
    if program == DRUM_PROGRAM:
        return dict(
            max_polyphony=3, note_density=rng.uniform(3.0, 8.0), min_duration=0.05, max_duration=0.2
        )
    if cls in MONOPHONIC_CLASSES:
        return dict(
            max_polyphony=1, note_density=rng.uniform(1.5, 4.0), min_duration=0.1, max_duration=1.2
        )
    polyphony = int(rng.integers(2, 5))
    return dict(
        max_polyphony=polyphony,
        note_density=rng.uniform(1.0, 2.0) * polyphony,
        min_duration=0.1,
        max_duration=1.5,
    )


def make_mixture(
    n_instruments: int,
    seconds: float,
    seed: Seed,
    sample_rate: int = SAMPLE_RATE,
    programs: Sequence[int] | None = None,
    drums: bool = False,
    program_pool: Sequence[int] = MELODIC_PROGRAMS,
    expressive: bool = True,
    backend: str = "auto",
    room: bool = False,
    style: str = "random",
    soundfonts: str | Sequence[str] | None = None,
    expression: bool | Expression = False,
    **score_kw,
) -> Mixture:
    """Render a random mixture of ``n_instruments`` instruments from different classes.

    Each stem gets a program (drawn with :func:`~timbrelab.data.gm.draw_programs` unless
    ``programs`` is given), a score in the program's range, and is rendered on its own; notes
    the stem's soundfont cannot play are dropped (:func:`~timbrelab.data.render.is_audible`).
    With ``expressive=True`` (the default) stems get random gains (-6..0 dB) and the mix a
    random peak (0.3..0.9), and random scores share a tempo grid (eighth notes at 60-160 bpm)
    with 10 ms timing jitter; otherwise onsets are free, gains 0 dB, peak 0.9. The whole
    mixture is scaled by one factor, so stems keep their velocities and balance and
    ``audio == stems.sum(0)`` holds exactly.

    The options added after the first release (``style``, ``soundfonts``, ``expression``) draw
    from streams of their own: at their defaults a seed gives the same bytes as before.

    Parameters
    ----------
    n_instruments : int
        K, 1..8.
    seconds : float
        Length of the mixture.
    seed : int, sequence of int or numpy.random.SeedSequence
        Everything random derives from ``numpy.random.default_rng(seed)``; datasets pass
        ``(seed, index)``.
    sample_rate : int
    programs : sequence of int, optional
        GM programs of the K stems (128 = drums); drawn from different classes if omitted.
    drums : bool
        When drawing programs, make the last stem a drum kit (off: pitched transcription).
    program_pool : sequence of int
        Pitched programs to draw from (default: all clearly pitched GM programs).
    expressive : bool
        Tempo grid and timing jitter of random scores, random stem gains and mix level.
    backend : {"auto", "fluidsynth", "additive"}
        Renderer, see :func:`~timbrelab.data.render.render_notes`.
    room : bool
        Put the stems in a random room and through random EQs before mixing
        (:func:`~timbrelab.data.augment.room_and_eq`); the score and labels are unchanged.
    style : {"random", "dense", "ensemble"}
        The scores. "random": :func:`~timbrelab.data.pianorolls.random_score` per stem
        (monophonic for monophonic classes, up to 4 voices otherwise). "dense": Li & Zhu's
        dense single-timbre writing per stem (:func:`~timbrelab.data.pianorolls.dense_score`,
        MIDI 24..107 whatever the instrument; they train with one instrument per clip,
        ``n_instruments=1``). "ensemble": one chorale-like voice per stem, written together
        (:func:`~timbrelab.data.pianorolls.ensemble_score`), as Bach10's quartets. Drum stems
        always get random scores.
    soundfonts : None, "all", str or sequence of str
        Soundfont of each stem, drawn uniformly per stem from this set
        (:func:`~timbrelab.data.soundfonts.resolve_soundfonts`): None is TimGM6mb only;
        "all" every installed one (so the draw depends on what is installed: name the set for
        results that must not). Recorded in :attr:`Mixture.soundfonts`.
    expression : bool or Expression
        Expressive performance (:func:`~timbrelab.data.expression.draw_performance`): True
        for the default :class:`~timbrelab.data.expression.Expression`, or one with some
        levers changed. Labels follow the performance (jittered onsets, pedalled offsets) and
        stay at the written pitches. Off by default.
    **score_kw
        Overrides for :func:`~timbrelab.data.pianorolls.random_score` applied to every stem
        (``pitch_range``, ``max_polyphony``, ``note_density``, ``velocity_range``, ...);
        only with ``style="random"``.

    Returns
    -------
    Mixture

    Raises
    ------
    ValueError
        Bad arguments, or a soundfont that is not installed.

    Chapter: book/01_cqt_features.md
    """
    if isinstance(n_instruments, bool) or not 1 <= int(n_instruments) <= MAX_INSTRUMENTS:
        raise ValueError(f"n_instruments must be 1..{MAX_INSTRUMENTS}, got {n_instruments}")
    if not seconds > 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    unknown = set(score_kw) - _SCORE_ARGUMENTS
    if unknown:
        raise TypeError(f"make_mixture got unknown score arguments {sorted(unknown)}")
    if score_kw and style != "random":
        raise TypeError(f"score arguments {sorted(score_kw)} only apply to style='random'")
    fonts = resolve_soundfonts(soundfonts)
    if expression is True:
        expression = Expression()
    k = int(n_instruments)
    rng = np.random.default_rng(seed)
    if programs is None:
        programs = draw_programs(k, rng, program_pool, drums=drums)
    else:
        programs = [int(p) for p in programs]
        if len(programs) != k:
            raise ValueError(f"programs has {len(programs)} entries for {k} instruments")
        for p in programs:
            program_to_class(p)  # validates
    if expressive:
        grid, jitter = 30.0 / rng.uniform(60.0, 160.0), 0.01
        gains = 10 ** (rng.uniform(-6.0, 0.0, k) / 20)
        peak = rng.uniform(0.3, 0.9)
    else:
        grid, jitter, gains, peak = None, 0.0, np.ones(k), 0.9
    # Child streams, in the order they were introduced: stems, room, then one for the newer
    # options (split per option), so that each option leaves the others' draws alone.
    stem_rngs = rng.spawn(k)
    room_rng, newer_rng = rng.spawn(2)
    font_rng, score_rng, expression_rng = newer_rng.spawn(3)
    stem_fonts = [fonts[i] for i in font_rng.integers(len(fonts), size=k)]
    if style == "ensemble":
        pitched = [i for i, p in enumerate(programs) if p != DRUM_PROGRAM]
        ranges = [program_pitch_range(programs[i]) for i in pitched]
        voices = dict(zip(pitched, ensemble_score(seconds, ranges, rng=score_rng, sources=pitched),
                          strict=True))  # fmt: skip
    if expression:
        effects = draw_effects(expression_rng)
        performance_rngs = expression_rng.spawn(k)

    notes, stems = [], []
    for index, (program, stem_rng) in enumerate(zip(programs, stem_rngs, strict=True)):
        font = stem_fonts[index]
        if style == "random" or program == DRUM_PROGRAM:
            settings = _score_settings(program, stem_rng)
            settings.update(pitch_range=program_pitch_range(program), grid=grid,
                            timing_jitter=jitter)  # fmt: skip
            settings.update(score_kw)
            write = functools.partial(random_score, seconds, rng=stem_rng, source=index,
                                      **settings)  # fmt: skip
            tries = _SCORE_TRIES
        elif style == "dense":
            write = functools.partial(dense_score, seconds, rng=stem_rng, source=index)
            tries = _SCORE_TRIES
        else:  # the ensemble's voices were written together, once
            write, tries = voices[index].copy, 1
        for _ in range(tries):  # a K-instrument mix should have K playing stems
            stem_notes = [n for n in write() if is_audible(program, n.pitch, backend, font)]
            if stem_notes:
                break
        performance = None
        if expression:
            stem_notes, performance = draw_performance(
                stem_notes, program, seconds, performance_rngs[index], expression, effects
            )
        render_seed = int(stem_rng.integers(2**31))
        stem = render_notes(
            stem_notes, program, sample_rate, seconds=seconds, seed=render_seed, backend=backend,
            soundfont=font, performance=performance,
        )  # fmt: skip
        notes.extend(stem_notes)
        stems.append(stem * np.float32(gains[index]))

    stems = np.stack(stems)
    if room:
        stems = room_and_eq(stems, sample_rate, room_rng)
    loudest = np.abs(stems.sum(axis=0)).max()
    stems *= np.float32(peak / loudest if loudest > 0 else 1.0)
    audio = stems.sum(axis=0)  # float32 sum of the float32 stems: exact by construction
    notes.sort(key=lambda n: (n.onset, n.pitch, n.source))
    if _resolve_backend(backend) == "additive":
        stem_fonts = ["additive"] * k
    return Mixture(audio, stems, notes, list(programs), int(sample_rate), stem_fonts)


def semitone_spectrogram(
    audio: np.ndarray, sample_rate: int = SAMPLE_RATE, hop_length: int = HOP_LENGTH
) -> np.ndarray:
    """CQT magnitude with one bin per piano key, on the same grid as the label rolls.

    Parameters
    ----------
    audio : np.ndarray ``(..., N)``
    sample_rate, hop_length : int

    Returns
    -------
    np.ndarray ``(..., 88, T)`` float32
        Bin ``p`` is centred on MIDI ``21 + p``; ``T = 1 + N // hop_length`` (centred frames).

    Chapter: book/01_cqt_features.md
    """
    import librosa

    if sample_rate / 2 <= FMIN_HZ * 2 ** ((N_PITCHES - 1) / 12):
        raise ValueError(f"sample_rate {sample_rate} Hz cannot hold the top key (C8, 4186 Hz)")
    with warnings.catch_warnings():
        # short clips: librosa warns that the lowest octaves' filters outlast the signal
        warnings.filterwarnings("ignore", message="n_fft=.* is too large", category=UserWarning)
        spec = librosa.cqt(
            np.asarray(audio, np.float32), sr=sample_rate, hop_length=hop_length, fmin=FMIN_HZ,
            n_bins=N_PITCHES, bins_per_octave=12,
        )  # fmt: skip
    return np.abs(spec).astype(np.float32)


def dominant_source(stem_magnitudes: np.ndarray, silence_db: float = SILENCE_DB) -> np.ndarray:
    """Index of the loudest stem in each time-frequency bin; -1 where all stems are silent.

    This is the target of deep-clustering-style losses: each TF bin of the mix belongs to the
    source that dominates it.

    Parameters
    ----------
    stem_magnitudes : np.ndarray ``(K, F, T)``
        Magnitude (or power) spectrogram of every stem, any representation.
    silence_db : float
        Bins whose loudest stem is more than ``-silence_db`` dB below the loudest bin of all
        stems count as silent (magnitudes are taken as amplitudes: 20 log10).

    Returns
    -------
    np.ndarray ``(F, T)`` int64

    Chapter: book/01_cqt_features.md
    """
    mags = np.abs(np.asarray(stem_magnitudes))
    if mags.ndim != 3:
        raise ValueError(f"stem_magnitudes must be (K, F, T), got shape {mags.shape}")
    loudest = mags.max(axis=0)
    floor = mags.max(initial=0.0) * 10 ** (silence_db / 20)
    winner = mags.argmax(axis=0).astype(np.int64)
    winner[(loudest <= floor) | (loudest == 0)] = -1
    return winner


def mixture_labels(
    mixture: Mixture,
    hop_length: int = HOP_LENGTH,
    n_frames: int | None = None,
    dominant: bool = True,
    drum_rolls: bool = False,
) -> dict[str, np.ndarray]:
    """Training targets of a mixture at any hop.

    Drum stems add nothing to the pitched rolls (their notes are percussion keys, not pitches)
    and have all-zero ``stem_frame`` rows unless ``drum_rolls`` (then their rows are rolls of
    the percussion keys, for systems that transcribe drums per source); they still compete in
    ``dominant_source``.

    Parameters
    ----------
    mixture : Mixture
    hop_length : int
        Samples per frame; frame rate ``sample_rate / hop_length``.
    n_frames : int or None
        Number of frames T (default ``1 + N // hop_length``, the centred CQT/STFT count).
    dominant : bool
        Also compute ``dominant_source`` (costs a 88-bin CQT per stem).
    drum_rolls : bool
        Fill drum stems' ``stem_frame`` rows with their percussion keys.

    Returns
    -------
    dict of np.ndarray
        ``"frame"``, ``"onset"``, ``"offset"``: ``(88, T)`` float32 (all stems);
        ``"stem_frame"``: ``(K, 88, T)`` float32; ``"dominant_source"``: ``(88, T)`` int64,
        the loudest stem per (key, frame) of :func:`semitone_spectrogram`, -1 where silent;
        ``"programs"``: ``(K,)`` int64.

    Chapter: book/01_cqt_features.md
    """
    if hop_length < 1:
        raise ValueError(f"hop_length must be >= 1, got {hop_length}")
    if n_frames is None:
        n_frames = 1 + len(mixture.audio) // hop_length
    frame_rate = mixture.sample_rate / hop_length
    drum = mixture.is_drum
    pitched = [n for n in mixture.notes if not drum[n.source]]
    labels = notes_to_rolls(pitched, n_frames, frame_rate, MIDI_MIN, N_PITCHES)
    stem_frame = np.zeros((mixture.n_sources, N_PITCHES, n_frames), np.float32)
    for k in np.flatnonzero(~drum | drum_rolls):
        stem_frame[k] = notes_to_rolls(mixture.stem_notes(int(k)), n_frames, frame_rate)["frame"]
    labels["stem_frame"] = stem_frame
    if dominant:
        spec = semitone_spectrogram(mixture.stems, mixture.sample_rate, hop_length)
        spec = spec[..., :n_frames]
        if spec.shape[-1] < n_frames:
            spec = np.pad(spec, ((0, 0), (0, 0), (0, n_frames - spec.shape[-1])))
        labels["dominant_source"] = dominant_source(spec)
    labels["programs"] = np.asarray(mixture.programs, np.int64)
    return labels


def save_mixture(
    mixture: Mixture, folder: str | os.PathLike, hop_length: int = HOP_LENGTH
) -> list[Path]:
    """Write a mixture to an existing folder: audio, stems, score and labels.

    Files: ``mix.wav``; ``stem_<k>_<class>.wav`` per stem (e.g. ``stem_0_violin.wav``);
    ``score.mid`` with one track per stem (drum stems get program 0: the MIDI writer has no
    drum channel); ``labels.npz`` with :func:`mixture_labels` plus ``sample_rate``,
    ``hop_length`` and, when known, ``soundfonts`` (``(K,)`` str: what rendered each stem).
    WAVs are 24-bit PCM: libsndfile stamps the time into float WAVs, and the same mixture must
    give the same bytes. Existing files of those names are replaced.

    Returns
    -------
    list of Path
        The files written.

    Chapter: book/01_cqt_features.md
    """
    from timbrelab.audio import write_wav
    from timbrelab.io import save_npz
    from timbrelab.notes import write_notes

    folder = Path(folder)
    written = [folder / "mix.wav"]
    write_wav(written[0], mixture.audio, mixture.sample_rate, subtype="PCM_24")
    for index, (program, stem) in enumerate(zip(mixture.programs, mixture.stems, strict=True)):
        slug = re.sub(r"[^a-z0-9]+", "_", class_name(program).lower()).strip("_")
        written.append(folder / f"stem_{index}_{slug}.wav")
        write_wav(written[-1], stem, mixture.sample_rate, subtype="PCM_24")
    written.append(folder / "score.mid")
    midi_programs = [0 if p == DRUM_PROGRAM else p for p in mixture.programs]
    write_notes(mixture.notes, written[-1], programs=midi_programs)
    labels = mixture_labels(mixture, hop_length)
    labels.update(sample_rate=np.int64(mixture.sample_rate), hop_length=np.int64(hop_length))
    if mixture.soundfonts is not None:
        labels["soundfonts"] = np.array(mixture.soundfonts, dtype=str)
    written.append(folder / "labels.npz")
    save_npz(written[-1], labels)
    return written
