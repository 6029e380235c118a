from __future__ import annotations

import numpy as np
import pytest

from timbrelab.data.gm import (
    DRUM_PROGRAM,
    GM_PROGRAM_NAMES,
    INSTRUMENT_CLASSES,
    MELODIC_PROGRAMS,
    class_name,
    draw_programs,
    program_name,
    program_to_class,
)


def test_tables_have_the_right_sizes():
    assert len(GM_PROGRAM_NAMES) == 128
    assert len(INSTRUMENT_CLASSES) == 39
    # every class is reached by some program (drums via 128)
    assert {program_to_class(p) for p in range(129)} == set(range(39))


@pytest.mark.parametrize(
    ("program", "name"),
    [(0, "Piano"), (3, "Piano"), (6, "Harpsichord"), (21, "Accordion"), (23, "Accordion"),
     (33, "Bass"), (40, "Violin"), (44, "Strings"), (55, "Strings"), (59, "Trumpet"),
     (60, "Horn"), (69, "Horn"), (70, "Bassoon"), (71, "Clarinet"), (72, "Piccolo"),
     (79, "Pipe"), (127, "Sound Effects"), (DRUM_PROGRAM, "Drums")],
)  # fmt: skip
def test_jointist_mapping(program, name):
    assert class_name(program) == name


def test_is_drum_overrides_the_program():
    assert class_name(0, is_drum=True) == "Drums"
    assert program_name(DRUM_PROGRAM) == "Drums"
    assert program_name(40) == "Violin"


@pytest.mark.parametrize("bad", [-1, 129, 1.5, True])
def test_bad_programs_are_refused(bad):
    with pytest.raises(ValueError, match="program"):
        program_to_class(bad)


def test_draw_programs_gives_distinct_classes():
    for seed in range(20):
        rng = np.random.default_rng(seed)
        programs = draw_programs(8, rng)
        classes = [program_to_class(p) for p in programs]
        assert len(set(classes)) == 8
        assert all(p in MELODIC_PROGRAMS for p in programs)


def test_draw_programs_drums_and_limits():
    programs = draw_programs(3, np.random.default_rng(0), drums=True)
    assert programs[-1] == DRUM_PROGRAM and DRUM_PROGRAM not in programs[:-1]
    with pytest.raises(ValueError, match="different classes"):
        draw_programs(3, np.random.default_rng(0), programs=[0, 1, 40])  # 2 classes only
    assert draw_programs(2, np.random.default_rng(0), programs=[0, 40]) in ([0, 40], [40, 0])
