"""General MIDI programs and the 39 instrument classes of Jointist.

A mixture for timbre separation needs instruments that sound different. GM's 128 programs are
too fine for that (four pianos) and its 16 families too coarse (harpsichord is a "piano").
Jointist (Cheuk et al., 2022, Table 7) maps the programs onto 39 classes in between; drums are
class 38 and get the extra program number 128 here, as in Jointist.

Chapter: book/01_cqt_features.md
"""

from __future__ import annotations

import numpy as np
from pretty_midi.constants import INSTRUMENT_MAP

#: Names of the 128 General MIDI programs, index = program number.
GM_PROGRAM_NAMES: list[str] = list(INSTRUMENT_MAP)

#: Program number standing for a drum kit (GM channel 10), as in Jointist's mapping.
DRUM_PROGRAM = 128

#: Jointist's 39 instrument classes (Cheuk et al., 2022, Table 7), index = class number.
INSTRUMENT_CLASSES: list[str] = [
    "Piano", "Electric Piano", "Harpsichord", "Clavinet", "Chromatic Percussion", "Organ",
    "Accordion", "Harmonica", "Acoustic Guitar", "Electric Guitar", "Bass", "Violin", "Viola",
    "Cello", "Contrabass", "Strings", "Harp", "Timpani", "Voice", "Trumpet", "Trombone", "Tuba",
    "Horn", "Brass", "Saxophone", "Oboe", "Bassoon", "Clarinet", "Piccolo", "Flute", "Recorder",
    "Pipe", "Synth Lead", "Synth Pad", "Synth Effects", "Ethnic", "Percussive", "Sound Effects",
    "Drums",
]  # fmt: skip

# (first program, last program, class) rows of Table 7; programs 0..127, drums separately.
_CLASS_RANGES = [
    (0, 3, 0), (4, 5, 1), (6, 6, 2), (7, 7, 3), (8, 15, 4), (16, 20, 5), (21, 21, 6), (22, 22, 7),
    (23, 23, 6), (24, 25, 8), (26, 31, 9), (32, 39, 10), (40, 40, 11), (41, 41, 12), (42, 42, 13),
    (43, 43, 14), (44, 45, 15), (46, 46, 16), (47, 47, 17), (48, 51, 15), (52, 54, 18),
    (55, 55, 15), (56, 56, 19), (57, 57, 20), (58, 58, 21), (59, 59, 19), (60, 60, 22),
    (61, 63, 23), (64, 67, 24), (68, 68, 25), (69, 69, 22), (70, 70, 26), (71, 71, 27),
    (72, 72, 28), (73, 73, 29), (74, 74, 30), (75, 79, 31), (80, 87, 32), (88, 95, 33),
    (96, 103, 34), (104, 111, 35), (112, 119, 36), (120, 127, 37),
]  # fmt: skip
_PROGRAM_CLASS = np.zeros(129, np.int64)
for _first, _last, _cls in _CLASS_RANGES:
    _PROGRAM_CLASS[_first : _last + 1] = _cls
_PROGRAM_CLASS[DRUM_PROGRAM] = INSTRUMENT_CLASSES.index("Drums")

#: Programs that play clear pitches, the default pool for pitched transcription: everything but
#: the orchestra hit, timpani, synth effects, percussive and sound-effect programs.
MELODIC_PROGRAMS: tuple[int, ...] = tuple(
    p for p in range(128) if p not in (47, 55) and not 96 <= p <= 103 and p < 112
)

#: Classes whose instruments play one note at a time (random scores for them are monophonic).
MONOPHONIC_CLASSES: frozenset[int] = frozenset(
    INSTRUMENT_CLASSES.index(name)
    for name in (
        "Harmonica", "Violin", "Viola", "Cello", "Contrabass", "Voice", "Trumpet", "Trombone",
        "Tuba", "Horn", "Saxophone", "Oboe", "Bassoon", "Clarinet", "Piccolo", "Flute",
        "Recorder", "Pipe", "Synth Lead", "Bass",
    )
)  # fmt: skip


#: Classes whose notes the player sustains (bow, breath, bellows, organ wind, synth): their
#: loudness can swell during a note and they take vibrato. Struck and plucked classes decay.
SUSTAINED_CLASSES: frozenset[int] = frozenset(
    INSTRUMENT_CLASSES.index(name)
    for name in (
        "Organ", "Accordion", "Harmonica", "Violin", "Viola", "Cello", "Contrabass", "Strings",
        "Voice", "Trumpet", "Trombone", "Tuba", "Horn", "Brass", "Saxophone", "Oboe", "Bassoon",
        "Clarinet", "Piccolo", "Flute", "Recorder", "Pipe", "Synth Lead", "Synth Pad",
    )
)  # fmt: skip
# Programs of a sustained class that are not sustained: pizzicato strings, orchestra hit.
_UNSUSTAINED_PROGRAMS = frozenset({45, 55})


def _check_program(program: int, is_drum: bool) -> int:
    if isinstance(program, bool) or not isinstance(program, int | np.integer):
        raise ValueError(f"program must be an integer 0..128, got {program!r}")
    if not 0 <= program <= DRUM_PROGRAM:
        raise ValueError(f"program must be 0..127 (or {DRUM_PROGRAM} for drums), got {program}")
    return DRUM_PROGRAM if is_drum else int(program)


def is_drum_program(program: int) -> bool:
    """True for the drum pseudo-program :data:`DRUM_PROGRAM` (128).

    Chapter: book/01_cqt_features.md
    """
    return _check_program(program, False) == DRUM_PROGRAM


def program_to_class(program: int, is_drum: bool = False) -> int:
    """Jointist class index (0..38) of a GM program.

    Parameters
    ----------
    program : int
        GM program 0..127, or 128 (:data:`DRUM_PROGRAM`) for drums.
    is_drum : bool
        A drum track (GM channel 10): class 38 whatever the program.

    Chapter: book/01_cqt_features.md
    """
    return int(_PROGRAM_CLASS[_check_program(program, is_drum)])


def is_sustained(program: int) -> bool:
    """True when the player sustains the program's notes (see :data:`SUSTAINED_CLASSES`).

    ``is_sustained(40)`` (violin) is True; piano (0), pizzicato strings (45) and drums (128)
    are False.

    Chapter: book/01_cqt_features.md
    """
    program = _check_program(program, False)
    return program_to_class(program) in SUSTAINED_CLASSES and program not in _UNSUSTAINED_PROGRAMS


def class_name(program: int, is_drum: bool = False) -> str:
    """Name of the Jointist class of a GM program, e.g. ``class_name(40) == "Violin"``.

    Chapter: book/01_cqt_features.md
    """
    return INSTRUMENT_CLASSES[program_to_class(program, is_drum)]


def program_name(program: int) -> str:
    """GM name of a program, ``"Drums"`` for :data:`DRUM_PROGRAM`.

    Chapter: book/01_cqt_features.md
    """
    program = _check_program(program, False)
    return "Drums" if program == DRUM_PROGRAM else GM_PROGRAM_NAMES[program]


def draw_programs(
    k: int,
    rng: np.random.Generator,
    programs: tuple[int, ...] | list[int] = MELODIC_PROGRAMS,
    drums: bool = False,
) -> list[int]:
    """Draw ``k`` GM programs from ``k`` different Jointist classes.

    Classes are drawn uniformly (so the many synth programs do not crowd out the few reed
    ones), then one program within each class. With ``drums=True`` the last program is
    :data:`DRUM_PROGRAM` and ``k - 1`` are pitched.

    Parameters
    ----------
    k : int
        Number of programs, at least 1 and at most the number of classes in ``programs``
        (plus one with drums).
    rng : numpy.random.Generator
    programs : sequence of int
        Pool of pitched programs to draw from (default :data:`MELODIC_PROGRAMS`).
    drums : bool
        Make the last instrument a drum kit.

    Returns
    -------
    list of int
        ``k`` programs, classes all different.

    Chapter: book/01_cqt_features.md
    """
    pool = sorted({_check_program(p, False) for p in programs} - {DRUM_PROGRAM})
    by_class: dict[int, list[int]] = {}
    for p in pool:
        by_class.setdefault(program_to_class(p), []).append(p)
    n_pitched = k - int(drums)
    if k < 1 or n_pitched > len(by_class) or n_pitched < 0:
        raise ValueError(
            f"cannot draw {k} programs from different classes: the pool has {len(by_class)} "
            f"pitched classes{' plus drums' if drums else ''}"
        )
    classes = sorted(by_class)
    chosen = rng.choice(len(classes), size=n_pitched, replace=False)
    drawn = [int(rng.choice(by_class[classes[c]])) for c in chosen]
    return drawn + [DRUM_PROGRAM] * int(drums)
