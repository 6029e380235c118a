"""Data: synthetic multi-instrument mixtures (scores, rendering, labels, Datasets) and Bach10.

Chapter: book/01_cqt_features.md
"""

from timbrelab.data.augment import room_and_eq
from timbrelab.data.bach10 import Bach10Piece, bach10_root, list_pieces, load_piece
from timbrelab.data.datasets import SyntheticMixtures
from timbrelab.data.gm import (
    DRUM_PROGRAM,
    GM_PROGRAM_NAMES,
    INSTRUMENT_CLASSES,
    MELODIC_PROGRAMS,
    MONOPHONIC_CLASSES,
    class_name,
    draw_programs,
    is_drum_program,
    program_name,
    program_to_class,
)
from timbrelab.data.mixtures import (
    Mixture,
    dominant_source,
    make_mixture,
    mixture_labels,
    save_mixture,
    semitone_spectrogram,
)
from timbrelab.data.pianorolls import (
    instrument_ascension,
    pairwise_ascension,
    program_pitch_range,
    random_score,
)
from timbrelab.data.render import (
    fluidsynth_available,
    is_audible,
    render_additive,
    render_notes,
    soundfont_path,
)

__all__ = [
    "DRUM_PROGRAM",
    "GM_PROGRAM_NAMES",
    "INSTRUMENT_CLASSES",
    "MELODIC_PROGRAMS",
    "MONOPHONIC_CLASSES",
    "Bach10Piece",
    "Mixture",
    "SyntheticMixtures",
    "bach10_root",
    "class_name",
    "dominant_source",
    "draw_programs",
    "fluidsynth_available",
    "instrument_ascension",
    "is_audible",
    "is_drum_program",
    "list_pieces",
    "load_piece",
    "make_mixture",
    "mixture_labels",
    "pairwise_ascension",
    "program_name",
    "program_pitch_range",
    "program_to_class",
    "random_score",
    "render_additive",
    "render_notes",
    "room_and_eq",
    "save_mixture",
    "semitone_spectrogram",
    "soundfont_path",
]
