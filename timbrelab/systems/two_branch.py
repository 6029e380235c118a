"""Chapter 5's systems: transcribe every instrument of a mixture apart, without knowing which play.

``two_branch`` is Li & Zhu's model (:mod:`timbrelab.models.two_branch`): Chapter 2's AMT
branch, pretrained and frozen, finds the notes; a timbre branch trained with InfoNCE
(:mod:`timbrelab.losses.contrastive`) embeds every pitch-time bin; each note's embedding (the
activation-weighted mean of its bins') is clustered into K sources
(:mod:`timbrelab.decode.clustering`), K given or estimated. The paper's Table 3 variants are
model configs (``timbrelab train two_branch --config KEY=VALUE``): ``embedding_dim=16``
("D16"), ``objective=affinity`` ("MSE"), ``share=true``, ``rescale=true`` and
``encoder=blstm`` (Tanaka et al.'s baseline, same data, same clustering).

Training data are cross-class mixtures of 2 to 4 instruments from the synthetic engine, half
random scores and half chorale-like ensemble scores; their instrument rolls (``stem_frame``)
say which instrument plays every pitch-time bin.

Chapter: book/05_contrastive_clustering.md
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import ConcatDataset, Dataset

from timbrelab.constants import FRAME_RATE, HOP_LENGTH, MIDI_MIN, SAMPLE_RATE
from timbrelab.models.two_branch import TwoBranch, TwoBranchConfig
from timbrelab.notes import Note
from timbrelab.systems.base import System, SystemOutput, Tier, tier_settings
from timbrelab.training import Recipe
from timbrelab.training.trainer import LossFn

#: Score styles of the training data, in equal shares.
STYLES = ("random", "ensemble")
#: Synthetic-engine settings of the training data: a soundfont drawn per stem among all
#: installed ones and expressive rendering, the levers that helped the AMT branch transfer to
#: real recordings (benchmarks/synthetic_levers.py).
DATA_OPTIONS: dict[str, object] = {"soundfonts": "all", "expression": True}
#: General MIDI programs the parts are written with, highest part first: four families that
#: are easy to tell apart when the MIDI file plays back (flute, piano, trumpet, bass, ...).
PLAYBACK_PROGRAMS = (73, 0, 56, 32, 12, 40, 21, 104)

#: ``quick``: CPU, about eight minutes on one core (3 s a step; the data render in seconds):
#: what the benchmark of the Table 3 variants runs. ``full``: one GPU, at the scale of the
#: paper's MusicNet training (34 h): 10 000 ten-second mixtures, 28 h.
TIERS: dict[str, Tier] = {
    "quick": Tier(
        train_items=512,
        val_items=16,
        seconds=4.0,
        instruments=(2, 4),
        config=dict(
            steps=150,
            batch_size=4,
            lr=2e-3,
            warmup_steps=20,
            eval_every=50,
            checkpoint_every=50,
            monitor="separated_note_f1",
        ),
    ),
    "full": Tier(
        train_items=10_000,
        val_items=256,
        seconds=10.0,
        instruments=(2, 4),
        config=dict(
            steps=40_000,
            batch_size=16,
            lr=1e-3,
            warmup_steps=500,
            num_workers=8,
            eval_every=2000,
            checkpoint_every=2000,
            monitor="separated_note_f1",
        ),
    ),
}


def mixtures(
    n_items: int,
    seconds: float,
    seed: int,
    instruments: int | tuple[int, int] = (2, 4),
    **options: object,
) -> Dataset:
    """``n_items`` cross-class mixtures, the first half with random scores, the rest with
    ensemble scores (:class:`~timbrelab.data.SyntheticMixtures`, :data:`DATA_OPTIONS`
    overridden by ``options``, e.g. ``cache_dir``). Items carry ``stem_frame``
    ``(K_max, 88, T)``, the instrument of every pitch-time bin.

    Chapter: book/05_contrastive_clustering.md
    """
    from timbrelab.data import SyntheticMixtures

    shares = (n_items - n_items // 2, n_items // 2)
    settings = {**DATA_OPTIONS, **options}
    return ConcatDataset(
        [
            SyntheticMixtures(n, seconds, instruments, seed, style=style, **settings)
            for style, n in zip(STYLES, shares, strict=True)
        ]
    )


def contrastive_loss(
    embedding: torch.Tensor, targets: torch.Tensor, config: TwoBranchConfig
) -> dict[str, torch.Tensor]:
    """The model's contrastive term, named by its objective: ``{"infonce": ...}`` (over bins
    or notes, ``config.loss_level``) or ``{"affinity": ...}``.

    Shapes: ``embedding (B, D, 88, T)``, ``targets (B, K, 88, T)``.

    Chapter: book/05_contrastive_clustering.md
    """
    from timbrelab.losses.contrastive import affinity_loss, bin_info_nce, note_info_nce

    if config.objective == "affinity":
        return {"affinity": affinity_loss(embedding, targets)}
    if config.loss_level == "note":
        return {"infonce": note_info_nce(embedding, targets, config.temperature)}
    return {"infonce": bin_info_nce(embedding, targets, config.temperature, config.max_bins)}


def two_branch_loss_fn(weights: Mapping[str, float] | None = None) -> LossFn:
    """``loss_fn(model, batch)``: the weighted sum of the model's terms
    (:func:`contrastive_loss`; weight 1 unless ``weights`` says otherwise). The AMT branch is
    frozen, so transcription adds no term. The batch needs ``"audio"`` ``(B, N)`` and
    ``"stem_frame"`` ``(B, K, 88, T)``.

    Chapter: book/05_contrastive_clustering.md
    """
    weights = dict(weights or {})

    def loss_fn(model: nn.Module, batch: dict) -> tuple[torch.Tensor, Mapping[str, float]]:
        out = model(batch["audio"])
        parts = contrastive_loss(out["embedding"].float(), batch["stem_frame"], model.config)
        total = sum(weights.get(name, 1.0) * value for name, value in parts.items())
        return total, {name: float(value.detach()) for name, value in parts.items()}

    return loss_fn


# --- inference --------------------------------------------------------------------------------


@dataclass
class Analysis:
    """The two branches' outputs for one recording (what :func:`analyse` returns).

    Attributes
    ----------
    frame_probs, onset_probs : (88, T) float32
    embedding : (D, 88, T) float32
        Unit vectors along ``D``.

    Chapter: book/05_contrastive_clustering.md
    """

    frame_probs: np.ndarray
    onset_probs: np.ndarray
    embedding: np.ndarray


def analyse(model: TwoBranch, audio: np.ndarray) -> Analysis:
    """Run both branches on mono 22 050 Hz ``audio (N,)`` in one pass (on a CPU through the
    model's faster twin, :meth:`~timbrelab.models.two_branch.TwoBranch.for_inference`).

    Chapter: book/05_contrastive_clustering.md
    """
    device = next(model.parameters()).device
    model.eval()
    fast = model.for_inference() if device.type == "cpu" else model
    with torch.inference_mode():
        x = torch.as_tensor(np.asarray(audio, np.float32), device=device)[None]
        out = fast(x)
    frame, onset = (torch.sigmoid(out[k][0].float()).cpu().numpy() for k in ("frame", "onset"))
    return Analysis(frame, onset, out["embedding"][0].float().cpu().numpy())


def order_by_pitch(notes: list[Note]) -> list[Note]:
    """Renumber the sources of ``notes`` by mean pitch, highest first (source 0 is the top
    part, as in a score), keeping which notes go together.

    Chapter: book/05_contrastive_clustering.md
    """
    sources = sorted({n.source for n in notes})
    mean_pitch = {s: np.mean([n.pitch for n in notes if n.source == s]) for s in sources}
    rank = {s: k for k, s in enumerate(sorted(sources, key=lambda s: -mean_pitch[s]))}
    return sorted(dataclasses.replace(n, source=rank[n.source]) for n in notes)


def separate_notes(
    analysis: Analysis,
    sources: int | None = None,
    level: str = "note",
    method: str = "spectral",
    estimator: str = "eigengap",
    max_sources: int = 6,
    onset_threshold: float = 0.5,
    frame_threshold: float = 0.3,
    seed: int = 0,
) -> tuple[list[Note], int]:
    """Notes with sources from the two branches' outputs.

    Parameters
    ----------
    analysis : Analysis
    sources : int or None
        K; estimated from the note embeddings (``estimator``, at most ``max_sources``) when
        None.
    level : {"note", "frame"}
        Cluster decoded notes (the paper's method) or single active bins, whose clusters are
        decoded into notes separately (the comparison of the paper's Figure 3).
    method : {"spectral", "kmeans"}
    estimator : {"eigengap", "silhouette"}
    onset_threshold, frame_threshold : float
        Decoder thresholds (:func:`~timbrelab.decode.posteriorgram_to_notes`).
    seed : int

    Returns
    -------
    (list of Note, int)
        Sorted notes, source 0 the highest part (:func:`order_by_pitch`), and K.

    Chapter: book/05_contrastive_clustering.md
    """
    from timbrelab.decode import posteriorgram_to_notes
    from timbrelab.decode.clustering import (
        cluster_frames,
        cluster_notes,
        estimate_n_clusters,
        note_embeddings,
    )

    if level not in ("note", "frame"):
        raise ValueError(f"separate_notes: level must be 'note' or 'frame', got {level!r}")
    notes = posteriorgram_to_notes(
        analysis.frame_probs,
        analysis.onset_probs,
        onset_threshold=onset_threshold,
        frame_threshold=frame_threshold,
    )
    if level == "note":
        notes, k = cluster_notes(
            notes,
            analysis.embedding,
            analysis.frame_probs,
            n_sources=sources,
            method=method,
            estimator=estimator,
            max_sources=max_sources,
            seed=seed,
        )
        return order_by_pitch(notes), k
    # frame level: K from the notes (when not given), then every active bin is clustered
    k = sources
    if k is None:
        points = note_embeddings(analysis.embedding, analysis.frame_probs, sorted(notes))
        k = estimate_n_clusters(points, max_sources, estimator)
    notes = cluster_frames(
        analysis.embedding,
        analysis.frame_probs,
        analysis.onset_probs,
        k,
        frame_threshold=frame_threshold,
        onset_threshold=onset_threshold,
        method=method,
        seed=seed,
    )
    return order_by_pitch(notes), k


# --- metrics and recipes ----------------------------------------------------------------------


def separated_scores(reference: list[Note], estimate: list[Note]) -> dict[str, float]:
    """Li & Zhu's Table 3 scores of one recording, as fractions: ``separated_note_f1``
    (onsets within 50 ms) and ``separated_frame_f1`` (10 ms grid), each reference source
    against its best-assigned estimated source; ``note_f1`` ignoring sources; ``ratio``,
    separated over timbre-agnostic note F1 (how much of the transcription survives the
    separation; 0 when nothing is transcribed).

    Chapter: book/05_contrastive_clustering.md
    """
    from timbrelab.metrics import note_scores, separated_frame_scores, separated_note_scores

    separated = separated_note_scores(reference, estimate)["f1"]
    agnostic = note_scores(reference, estimate)["f1"]
    return {
        "separated_note_f1": separated,
        "separated_frame_f1": separated_frame_scores(reference, estimate)["f1"],
        "note_f1": agnostic,
        "ratio": separated / agnostic if agnostic > 0 else 0.0,
    }


def reference_notes(stem_frame: np.ndarray, n_sources: int) -> list[Note]:
    """Notes of the first ``n_sources`` instrument rolls ``(K, 88, T)``, ``source`` = row.

    Chapter: book/05_contrastive_clustering.md
    """
    from timbrelab.notes import roll_to_notes

    return sorted(
        note
        for k in range(n_sources)
        for note in roll_to_notes(stem_frame[k], FRAME_RATE, MIDI_MIN, k)
    )


def two_branch_metrics(model: nn.Module, batch: dict) -> dict[str, float]:
    """``metric_fn`` for the Trainer: :func:`separated_scores` averaged over the batch, each
    item separated into its true number of instruments (as the paper scores; estimating K
    is measured apart).

    Chapter: book/05_contrastive_clustering.md
    """
    rows = []
    for audio, stem_frame, k in zip(
        batch["audio"].cpu().numpy(),
        batch["stem_frame"].cpu().numpy(),
        batch["n_sources"].tolist(),
        strict=True,
    ):
        estimate, _ = separate_notes(analyse(model, audio), sources=int(k))
        rows.append(separated_scores(reference_notes(stem_frame, int(k)), estimate))
    model.train()
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}


class TwoBranchSystem(System):
    """Li & Zhu's two-branch model (or a Table 3 variant of it) as a system.

    Chapter: book/05_contrastive_clustering.md
    """

    chapter = "book/05_contrastive_clustering.md"
    sample_rate = SAMPLE_RATE
    hop_length = HOP_LENGTH
    tasks = ("transcribe", "separate_notes")
    counts_sources = True

    def __init__(self, name: str, description: str, pretrained: str | None = None) -> None:
        self.name, self.description, self.pretrained = name, description, pretrained

    def build_model(self, **config: object) -> nn.Module:
        model = TwoBranch(TwoBranchConfig(**config))
        model.name = self.name
        return model

    def recipe(
        self,
        tier: str = "quick",
        seed: int = 0,
        model_config: Mapping[str, object] | None = None,
        data_options: Mapping[str, object] | None = None,
        train_items: int | None = None,
        **overrides: object,
    ) -> Recipe:
        """Model (its AMT branch: the shipped ``amt`` weights, frozen), loss, data, metrics
        and config at a tier. Beyond the base interface: ``data_options`` (e.g.
        ``{"cache_dir": "runs/cache"}``) and ``train_items``. Validation items use another
        seed, so they never repeat a training item."""
        from timbrelab import pretrained

        spec, config = tier_settings(TIERS, tier, seed, overrides)
        model = self.build_model(**{**spec.model, **(model_config or {})})
        model.load_amt(pretrained.load("amt"))
        options = dict(data_options or {})
        n_train = train_items or spec.train_items
        return Recipe(
            model=model,
            loss_fn=two_branch_loss_fn(),
            train_data=mixtures(n_train, spec.seconds, 2 * seed, spec.instruments, **options),
            val_data=mixtures(
                spec.val_items, spec.seconds, 2 * seed + 1, spec.instruments, **options
            ),
            config=config,
            metric_fn=two_branch_metrics,
        )

    def infer(self, model: nn.Module, audio: np.ndarray, **options: object) -> SystemOutput:
        """Notes of ``audio`` with their sources, named "Part 1" (the highest) to "Part K",
        each with a playback program from :data:`PLAYBACK_PROGRAMS` (``options``: see
        :func:`separate_notes`; ``sources=K`` fixes K)."""
        notes, k = separate_notes(analyse(model, audio), **options)
        return SystemOutput(
            notes,
            sources=[f"Part {i + 1}" for i in range(k)],
            programs=[PLAYBACK_PROGRAMS[i % len(PLAYBACK_PROGRAMS)] for i in range(k)],
            sample_rate=self.sample_rate,
        )


#: Chapter 5's systems.
SYSTEMS = (
    TwoBranchSystem(
        "two_branch",
        "Li & Zhu's two-branch model: notes clustered into instruments by timbre embeddings",
        pretrained="two_branch",
    ),
)

__all__ = [
    "DATA_OPTIONS",
    "PLAYBACK_PROGRAMS",
    "STYLES",
    "TIERS",
    "Analysis",
    "TwoBranchSystem",
    "analyse",
    "contrastive_loss",
    "mixtures",
    "order_by_pitch",
    "reference_notes",
    "separate_notes",
    "separated_scores",
    "two_branch_loss_fn",
    "two_branch_metrics",
]
