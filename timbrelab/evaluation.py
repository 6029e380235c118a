"""Scoring any registered system on fresh synthetic mixtures or on the Bach10 pieces.

Evaluation knows systems only through :class:`timbrelab.systems.System`: it renders or loads
audio at the system's own sample rate, runs :meth:`~timbrelab.systems.System.infer`, and scores
the notes timbre-agnostically (Li & Zhu's FF / FN / FNO); a system that separates instruments
is also scored per source (best assignment of its sources to the reference instruments).

Chapter: book/02_focal_loss_amt.md
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from torch import nn

from timbrelab.constants import SAMPLE_RATE
from timbrelab.notes import Note
from timbrelab.systems import System

if TYPE_CHECKING:
    from timbrelab.data.mixtures import Mixture

#: Mixed into the seeds of evaluation pieces, so that they never coincide with training items
#: (``SyntheticMixtures`` item ``i`` of seed ``s`` uses ``(s, i)``).
EVAL_SEED_SALT = 0x65_76_61_6C  # "eval"


def transcription_scores(ref_notes: list[Note], est_notes: list[Note]) -> dict[str, float]:
    """Li & Zhu's three timbre-agnostic scores of a transcription, as fractions.

    ``FF``: frame F1 on a 10 ms grid; ``FN``: note F1 (onsets within 50 ms);
    ``FNO``: note F1 with offsets (within 20 % of the duration or 50 ms). Sources are ignored.

    Chapter: book/02_focal_loss_amt.md
    """
    from timbrelab.metrics import frame_scores, note_scores, note_with_offset_scores

    return {
        "FF": frame_scores(ref_notes, est_notes)["f1"],
        "FN": note_scores(ref_notes, est_notes)["f1"],
        "FNO": note_with_offset_scores(ref_notes, est_notes)["f1"],
    }


def _source_scores(ref_notes: list[Note], est_notes: list[Note]) -> dict[str, float]:
    """Per-source note F1 (best assignment) for systems that separate."""
    from timbrelab.metrics import separated_note_scores

    return {"source_FN": separated_note_scores(ref_notes, est_notes)["f1"]}


def synthetic_test_mixture(
    index: int,
    seed: int,
    seconds: float,
    instruments: tuple[int, int] = (1, 4),
    sample_rate: int = SAMPLE_RATE,
    **options: object,
) -> Mixture:
    """Piece ``index`` of the synthetic test set ``seed``: K instruments drawn from
    ``instruments`` (inclusive), rendered by :func:`timbrelab.data.make_mixture` with the seed
    ``(EVAL_SEED_SALT, seed, index)``, which no training set uses; ``options`` are further
    ``make_mixture`` settings (``style``, ``soundfonts``, ``expression``, ...).

    Chapter: book/02_focal_loss_amt.md
    """
    from timbrelab.data.mixtures import make_mixture

    piece_seed = (EVAL_SEED_SALT, seed, index)
    k = int(np.random.default_rng(piece_seed).integers(instruments[0], instruments[1] + 1))
    return make_mixture(k, seconds, seed=piece_seed, sample_rate=sample_rate, **options)


def evaluate_synthetic(
    system: System,
    model: nn.Module,
    n_pieces: int = 10,
    seconds: float = 10.0,
    seed: int = 0,
    instruments: tuple[int, int] = (1, 4),
    **options: object,
) -> list[dict]:
    """Score a system on fresh synthetic mixtures (never seen in training).

    Piece ``i`` is :func:`synthetic_test_mixture` ``(i, seed, ...)`` at the system's sample
    rate.

    Returns
    -------
    list of dict
        Per piece: ``piece``, ``instruments``, :func:`transcription_scores` and, for a system
        that separates, ``source_FN``.

    Chapter: book/02_focal_loss_amt.md
    """
    rows = []
    for i in range(n_pieces):
        mixture = synthetic_test_mixture(i, seed, seconds, instruments, system.sample_rate)
        est = system.infer(model, mixture.audio, **options).notes
        row = {"piece": f"synthetic-{seed}-{i}", "instruments": mixture.n_sources}
        row |= transcription_scores(mixture.notes, est)
        if system.separates_notes:
            row |= _source_scores(mixture.notes, est)
        rows.append(row)
    return rows


def evaluate_bach10(
    system: System, model: nn.Module, root: str | None = None, **options: object
) -> list[dict]:
    """Score a system on the Bach10 pieces found under ``root`` (default: ``bach10_root()``).

    Returns
    -------
    list of dict
        Per piece: ``piece``, ``instruments`` (4) and ``FF``, ``FN``, ``FNO`` by
        :func:`timbrelab.data.bach10.bach10_scores` (and ``source_FN`` for a system that
        separates).

    Chapter: book/02_focal_loss_amt.md
    """
    from timbrelab.data.bach10 import list_pieces, load_piece

    rows = []
    for name in list_pieces(root):
        piece = load_piece(name, root, sample_rate=system.sample_rate)
        est = system.infer(model, piece.mix, **options).notes
        row = {"piece": name, "instruments": len(piece.parts), **piece.score(est)}
        if system.separates_notes:
            row |= _source_scores(piece.notes, est)
        rows.append(row)
    return rows
