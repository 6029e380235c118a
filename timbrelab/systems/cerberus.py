"""Chapter 4's systems: Cerberus separates and transcribes a fixed line-up of instruments.

``cerberus`` is trained on coherent band mixtures (piano, guitar, bass, drums), the paper's
Slakh setting rebuilt with the synthetic engine; ``cerberus_quartet`` on chorale-like
quartets of violin, clarinet, tenor saxophone and bassoon, Bach10's line-up, so that it can
separate real quartet recordings. Both are :class:`CerberusSystem`: the model of
:mod:`timbrelab.models.cerberus`, the losses of :mod:`timbrelab.losses.separation`, data in
which source ``k`` is always instrument ``k`` (:class:`LineupMixtures`), and inference by
the mask head or by k-means on the deep-clustering embeddings (:func:`separate`).

Drums have no pitch: their transcription target is the onset roll of the drum notes, and
they are scored on onsets only (as every note here: onset within 50 ms, offsets ignored).

Chapter: book/04_cerberus.md
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from timbrelab.constants import MIDI_MIN, SAMPLE_RATE_16K
from timbrelab.data.gm import DRUM_PROGRAM, class_name
from timbrelab.models.cerberus import Cerberus, CerberusConfig
from timbrelab.notes import Note, roll_to_notes
from timbrelab.systems.base import System, SystemOutput, Tier, tier_settings
from timbrelab.training import Recipe, TrainConfig
from timbrelab.training.trainer import LossFn

HOP = 256
#: Default loss weights ``alpha`` (DC), ``beta`` (MI), ``gamma`` (TR). Measured on this CPU:
#: with ``alpha = 1`` the deep-clustering loss pulls the shared BLSTM into its collapsed
#: state (every bin the same embedding) within tens of steps at lr 2e-3, and the masks stop
#: depending on the input; at ``alpha = 0.1`` the body keeps learning. The paper also weighted
#: its losses per network (its Table 1 subscripts).
LOSS_WEIGHTS = {"dc": 0.1, "mi": 1.0, "tr": 1.0}
#: Every source of a training item plays at least this many notes (the paper asks 10 in 5 s).
MIN_ONSETS = 4


def onset_roll(frame_roll: torch.Tensor) -> torch.Tensor:
    """Rising edges of a binary roll ``(..., 88, T)``: 1 where a note starts.

    Chapter: book/04_cerberus.md
    """
    previous = torch.nn.functional.pad(frame_roll[..., :-1], (1, 0))
    return ((frame_roll > 0.5) & (previous <= 0.5)).to(frame_roll.dtype)


class LineupMixtures(Dataset):
    """Synthetic mixtures of one fixed line-up, stem ``k`` always ``programs[k]``.

    Built on :class:`timbrelab.data.SyntheticMixtures` (so items are seeded, cacheable and
    byte-identical across runs) with the line-up as its program pool, then re-ordered into
    line-up order. As in the paper's Slakh segments, every source of an item must play at
    least ``min_onsets`` notes: item ``i`` is the first of the underlying items
    ``i, i + n, i + 2n, ...`` that does.

    Items: ``"audio"`` ``(N,)``, ``"stems"`` ``(S, N)``, ``"stem_frame"`` ``(S, 88, T)``
    float32, ``"programs"`` ``(S,)`` int64, and the other keys of ``SyntheticMixtures``.

    Chapter: book/04_cerberus.md
    """

    def __init__(
        self,
        n_items: int,
        programs: Sequence[int],
        seconds: float = 5.0,
        seed: int = 0,
        min_onsets: int = MIN_ONSETS,
        tries: int = 8,
        **options: object,
    ) -> None:
        from timbrelab.data import SyntheticMixtures

        self.programs = [int(p) for p in programs]
        pitched = [p for p in self.programs if p != DRUM_PROGRAM]
        self.n_items, self.min_onsets, self.tries = n_items, min_onsets, tries
        self.mixtures = SyntheticMixtures(
            n_items * tries,
            seconds=seconds,
            instruments=len(self.programs),
            seed=seed,
            sample_rate=SAMPLE_RATE_16K,
            hop_length=HOP,
            programs=pitched,
            drums=DRUM_PROGRAM in self.programs,
            drum_rolls=True,
            stems=True,
            **options,
        )

    def __len__(self) -> int:
        return self.n_items

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.n_items:
            raise IndexError(f"index {index} out of range for {self.n_items} items")
        for attempt in range(self.tries):
            item = self.mixtures[index + attempt * self.n_items]
            order = [item["programs"].tolist().index(p) for p in self.programs]
            item.update(
                stems=item["stems"][order],
                stem_frame=item["stem_frame"][order],
                programs=item["programs"][order],
            )
            onsets = onset_roll(item["stem_frame"]).sum(dim=(1, 2))
            if bool((onsets >= self.min_onsets).all()):
                break
        return item  # the last try when none has enough onsets everywhere


def transcription_targets(stem_frame: torch.Tensor, programs: Sequence[int]) -> torch.Tensor:
    """What the transcription head learns ``(B, S, 88, T)``: the frame roll of a pitched
    source, the onset roll of a drum kit.

    Chapter: book/04_cerberus.md
    """
    drums = torch.tensor([p == DRUM_PROGRAM for p in programs], device=stem_frame.device)
    return torch.where(drums[None, :, None, None], onset_roll(stem_frame), stem_frame)


def cerberus_loss_fn(
    weights: Mapping[str, float] | None = None,
    transcription_kind: str = "bce",
    silence_db: float = -40.0,
) -> LossFn:
    """``loss_fn(model, batch)``: ``alpha DC + beta MI + gamma TR`` over the model's heads.

    ``weights``: ``{"dc": alpha, "mi": beta, "tr": gamma}`` (default :data:`LOSS_WEIGHTS`);
    a head the model lacks contributes nothing. The batch needs ``"audio"`` ``(B, N)``,
    ``"stems"`` ``(B, S, N)`` and ``"stem_frame"`` ``(B, S, 88, T)``.

    Chapter: book/04_cerberus.md
    """
    from timbrelab.losses.separation import (
        deep_clustering_loss,
        ideal_assignment,
        mask_inference_loss,
        salient_bins,
        source_transcription_loss,
    )

    weights = {**LOSS_WEIGHTS, **(weights or {})}

    def loss_fn(model: nn.Module, batch: dict) -> tuple[torch.Tensor, Mapping[str, float]]:
        out = model(batch["audio"])
        mixture = out["mixture"]
        b, s, n = batch["stems"].shape
        stems = model.stft(batch["stems"].reshape(b * s, n)).view(b, s, *mixture.shape[1:])
        parts: dict[str, torch.Tensor] = {}
        if "embedding" in out:
            assignment = ideal_assignment(stems.abs())
            bins = salient_bins(mixture.abs(), silence_db)
            parts["dc"] = deep_clustering_loss(out["embedding"].float(), assignment, bins)
        if "masks" in out:
            parts["mi"] = mask_inference_loss(out["masks"].float(), mixture, stems)
        if "transcription" in out:
            target = transcription_targets(batch["stem_frame"], model.config.programs)
            parts["tr"] = source_transcription_loss(
                out["transcription"].float(), target, transcription_kind
            )
        total = sum(weights[name] * value for name, value in parts.items())
        return total, {name: float(value.detach()) for name, value in parts.items()}

    return loss_fn


# --- inference ------------------------------------------------------------------------------


def source_names(programs: Sequence[int]) -> list[str]:
    """Instrument names of a line-up, numbered when a class repeats ("Violin 1", "Violin 2").

    Chapter: book/04_cerberus.md
    """
    names = [class_name(p) for p in programs]
    return [
        f"{name} {names[: k + 1].count(name)}" if names.count(name) > 1 else name
        for k, name in enumerate(names)
    ]


def kmeans_masks(
    embedding: np.ndarray, weights: np.ndarray, n_sources: int, seed: int = 0,
    max_points: int = 20_000,
) -> np.ndarray:  # fmt: skip
    """Binary masks ``(S, F, T)`` from k-means on deep-clustering embeddings ``(D, F, T)``.

    The clusters are fitted on (at most ``max_points`` of) the bins with ``weights > 0`` (the
    salient ones), then every bin goes to its nearest centre. Cluster order is arbitrary.

    Chapter: book/04_cerberus.md
    """
    from sklearn.cluster import KMeans

    d, f, t = embedding.shape
    points = embedding.reshape(d, -1).T
    salient = np.flatnonzero(weights.reshape(-1) > 0)
    if len(salient) < n_sources:
        salient = np.arange(len(points))
    rng = np.random.default_rng(seed)
    fit_on = rng.choice(salient, min(max_points, len(salient)), replace=False)
    kmeans = KMeans(n_sources, n_init=3, random_state=seed).fit(points[fit_on])
    labels = kmeans.predict(points)
    return (
        np.stack([labels == k for k in range(n_sources)])
        .reshape(n_sources, f, t)
        .astype(np.float32)
    )


def order_clusters(cluster_activity: np.ndarray, source_activity: np.ndarray) -> np.ndarray:
    """Order of the clusters ``(S,)`` that best matches each source: cluster ``order[k]``
    goes with source ``k``, chosen to maximise the summed correlation over time of their
    activities ``(S, T)`` (energy of a cluster's bins; a source's mask energy or piano-roll
    activity).

    Chapter: book/04_cerberus.md
    """
    from scipy.optimize import linear_sum_assignment

    def standardise(x: np.ndarray) -> np.ndarray:
        x = x - x.mean(axis=1, keepdims=True)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    correlation = standardise(source_activity) @ standardise(cluster_activity).T
    sources, clusters = linear_sum_assignment(correlation, maximize=True)
    return clusters[np.argsort(sources)]


@dataclass
class Separation:
    """What :func:`separate` returns for one recording.

    Attributes
    ----------
    stems : (S, N) float32 or None
        None for a network with neither separation head (transcription only).
    masks : (S, F, T) float32 or None
    probabilities : (S, 88, T) float32 or None
        Transcription-head probabilities (frames; onsets for drums), None without that head.
    notes : list of Note
        ``source`` = line-up index.
    method : str
        ``"mask"`` or ``"kmeans"``.

    Chapter: book/04_cerberus.md
    """

    stems: np.ndarray | None
    masks: np.ndarray | None
    probabilities: np.ndarray | None
    notes: list[Note] = field(default_factory=list)
    method: str | None = "mask"


def separate(
    model: Cerberus,
    audio: np.ndarray,
    method: str | None = None,
    frame_threshold: float = 0.5,
    onset_threshold: float = 0.3,
    seed: int = 0,
) -> Separation:
    """Separate and transcribe mono 16 kHz ``audio (N,)`` with a Cerberus network.

    Parameters
    ----------
    model : Cerberus
    audio : (N,) float array
    method : {"mask", "kmeans"} or None
        Masks from the mask-inference head, or k-means on the embeddings; default the mask
        head when the model has one, else k-means, else (transcription only) no separation.
        k-means clusters are put in line-up order by matching their activity over time with
        the mask head's sources or the transcription head's, when the model has either.
    frame_threshold, onset_threshold : float
        Probability above which a pitched source's frame is on / a drum onset is detected.
    seed : int
        Seeds k-means.

    Chapter: book/04_cerberus.md
    """
    heads = model.config.heads
    if method is None and {"mi", "dc"} & set(heads):
        method = "mask" if "mi" in heads else "kmeans"
    needed = {"mask": "mi", "kmeans": "dc", None: None}
    if method not in needed:
        raise ValueError(f"separate: method must be 'mask' or 'kmeans', got {method!r}")
    if method is not None and needed[method] not in heads:
        raise ValueError(f"separate: method {method!r} needs the {needed[method]!r} head")
    device = next(model.parameters()).device
    model.eval()
    with torch.inference_mode():
        x = torch.as_tensor(np.asarray(audio, np.float32), device=device)[None]
        out = model(x)
        mixture = out["mixture"][0]
        magnitude = mixture.abs().cpu().numpy()
        probabilities = None
        if "transcription" in out:
            probabilities = torch.sigmoid(out["transcription"][0].float()).cpu().numpy()
        masks = stems = None  # a transcription-only network does not separate
        if method == "mask":
            masks = out["masks"][0].float().cpu().numpy()
        elif method == "kmeans":
            from timbrelab.losses.separation import salient_bins

            weights = salient_bins(mixture.abs()[None])[0].cpu().numpy()
            masks = kmeans_masks(out["embedding"][0].float().cpu().numpy(), weights,
                                 model.config.n_sources, seed)  # fmt: skip
            reference = None
            if "masks" in out:
                reference = (out["masks"][0].float().cpu().numpy() * magnitude).sum(axis=1)
            elif probabilities is not None:
                reference = probabilities.sum(axis=1)
            if reference is not None:
                masks = masks[order_clusters((masks * magnitude).sum(axis=1), reference)]
        if masks is not None:
            spec = torch.as_tensor(masks, device=device) * mixture[None]
            stems = model.stft.inverse(spec, x.shape[-1]).cpu().numpy().astype(np.float32)
    notes = []
    if probabilities is not None:
        frame_rate = SAMPLE_RATE_16K / model.config.hop_length
        for k, program in enumerate(model.config.programs):
            threshold = onset_threshold if program == DRUM_PROGRAM else frame_threshold
            notes += roll_to_notes(probabilities[k], frame_rate, MIDI_MIN, k, threshold)
    return Separation(stems, masks, probabilities, sorted(notes), method)


# --- metrics and recipes ----------------------------------------------------------------------


def separation_scores(
    references: np.ndarray, estimates: np.ndarray, best_assignment: bool = False
) -> dict[str, np.ndarray]:
    """SDR and SI-SDR (dB) of each reference source ``(S, N)`` against its estimate.

    Plain SDR is the paper's scale-dependent measure (:func:`timbrelab.metrics.sdr`); SI-SDR
    stands beside it. Silent references score NaN (SDR is undefined for them). With
    ``best_assignment`` estimate ``j`` is matched to reference ``i`` by maximising the
    summed SDR (clusters come in any order); otherwise estimate ``k`` is source ``k``.

    Returns
    -------
    dict
        ``"sdr"``, ``"si_sdr"``: ``(S,)`` arrays; ``"assignment"``: ``(S,)`` estimate index
        of each reference.

    Chapter: book/04_cerberus.md
    """
    from scipy.optimize import linear_sum_assignment

    from timbrelab.metrics import sdr

    s = len(references)
    audible = np.abs(references).sum(axis=1) > 0
    table = np.full((s, len(estimates)), np.nan)
    table_si = np.full_like(table, np.nan)
    for i in np.flatnonzero(audible):
        repeated = np.broadcast_to(references[i], estimates.shape)
        table[i] = sdr(repeated, estimates)
        table_si[i] = sdr(repeated, estimates, scale_invariant=True)
    assignment = np.arange(s)
    if best_assignment:
        rows, cols = linear_sum_assignment(np.nan_to_num(table, nan=-100.0), maximize=True)
        assignment[rows] = cols
    rows = np.arange(s)
    return {"sdr": table[rows, assignment], "si_sdr": table_si[rows, assignment],
            "assignment": assignment}  # fmt: skip


def cerberus_metrics(model: nn.Module, batch: dict) -> dict[str, float]:
    """``metric_fn`` for the Trainer: mean SDR and SI-SDR over sources (from the mask head,
    else k-means with best assignment) and mean per-source note F1 (onsets within 50 ms)
    when the model transcribes.

    Chapter: book/04_cerberus.md
    """
    from timbrelab.metrics import note_scores

    scores: dict[str, list[float]] = {"sdr": [], "si_sdr": [], "note_f1": []}
    programs = model.config.programs
    frame_rate = SAMPLE_RATE_16K / model.config.hop_length
    targets = transcription_targets(batch["stem_frame"], programs).cpu().numpy()
    audios, all_stems = batch["audio"].cpu().numpy(), batch["stems"].cpu().numpy()
    for audio, stems, stem_frame in zip(audios, all_stems, targets, strict=True):
        result = separate(model, audio)
        if result.stems is not None:
            separation = separation_scores(stems, result.stems, result.method == "kmeans")
            scores["sdr"] += [float(np.nanmean(separation["sdr"]))]
            scores["si_sdr"] += [float(np.nanmean(separation["si_sdr"]))]
        if result.probabilities is None:
            continue
        for k in range(len(programs)):
            reference = roll_to_notes(stem_frame[k], frame_rate, MIDI_MIN, k)
            estimate = [n for n in result.notes if n.source == k]
            scores["note_f1"].append(note_scores(reference, estimate)["f1"])
    model.train()
    return {name: float(np.mean(values)) for name, values in scores.items() if values}


#: ``quick``: a small network (about 0.9 M parameters) trained for minutes on a CPU.
#: ``full``: the paper's network (4 BLSTM layers of 300 units, full dense heads) and settings
#: (Adam 2e-4, batch 40, 400-frame sequences = 6.4 s at hop 256) on one GPU.
TIERS: dict[str, Tier] = {
    "quick": Tier(
        train_items=512,
        val_items=8,
        seconds=5.0,
        model=dict(hidden_size=80, num_layers=2, head_rank=24),
        config=dict(
            steps=300,
            batch_size=4,
            lr=2e-3,
            eval_every=100,
            checkpoint_every=100,
            monitor="val_loss",
            monitor_mode="min",
        ),
    ),
    "full": Tier(
        train_items=20_000,
        val_items=64,
        seconds=400 * HOP / SAMPLE_RATE_16K,
        config=dict(
            steps=100_000,
            batch_size=40,
            lr=2e-4,
            num_workers=8,
            eval_every=2000,
            checkpoint_every=2000,
            lr_schedule="plateau",
            monitor="val_loss",
            monitor_mode="min",
            plateau_patience=3,
        ),
    ),
}


def adam(parameters: list[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """The paper's optimiser: Adam at the config's learning rate.

    Chapter: book/04_cerberus.md
    """
    return torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay)


class CerberusSystem(System):
    """A Cerberus network for one instrument line-up, as a system.

    Parameters
    ----------
    name, description : str
    programs : tuple of int
        The line-up (GM programs, 128 = drums): source ``k`` is always ``programs[k]``.
    data_options : mapping
        :class:`~timbrelab.data.SyntheticMixtures` settings of its training data (``style``,
        ``soundfonts``, ``expression``, ...).
    pretrained : str or None
    thresholds : mapping
        Default ``frame_threshold`` / ``onset_threshold`` of :meth:`infer` for the shipped
        weights (chosen on validation data, as the paper chose its 0.8 and 0.1); options
        given to :meth:`infer` (the CLI's ``--frame-threshold``) override them.

    Chapter: book/04_cerberus.md
    """

    chapter = "book/04_cerberus.md"
    sample_rate = SAMPLE_RATE_16K
    hop_length = HOP
    tasks = ("transcribe", "separate", "separate_notes")

    def __init__(
        self,
        name: str,
        description: str,
        programs: tuple[int, ...],
        data_options: Mapping[str, object] | None = None,
        pretrained: str | None = None,
        thresholds: Mapping[str, float] | None = None,
    ) -> None:
        self.name, self.description, self.pretrained = name, description, pretrained
        self.programs = programs
        self.data_options = dict(data_options or {})
        self.thresholds = dict(thresholds or {})

    def build_model(self, **config: object) -> nn.Module:
        model = Cerberus(CerberusConfig(**{"programs": self.programs, **config}))
        model.name = self.name
        return model

    def data(
        self,
        n_items: int,
        seconds: float,
        seed: int,
        programs: Sequence[int] | None = None,
        **options: object,
    ) -> LineupMixtures:
        """``n_items`` mixtures of this system's line-up, or of ``programs`` (``options``
        override its data settings, e.g. ``cache_dir``)."""
        options = {**self.data_options, **options}
        return LineupMixtures(n_items, programs or self.programs, seconds, seed, **options)

    def recipe(
        self,
        tier: str = "quick",
        seed: int = 0,
        model_config: Mapping[str, object] | None = None,
        loss_weights: Mapping[str, float] | None = None,
        transcription_kind: str = "bce",
        data_options: Mapping[str, object] | None = None,
        train_items: int | None = None,
        **overrides: object,
    ) -> Recipe:
        """Model, loss, data, metrics and config at a tier.

        Beyond the base interface: ``loss_weights`` (``alpha``, ``beta``, ``gamma`` as
        ``{"dc", "mi", "tr"}``), ``transcription_kind`` (``"bce"`` or the paper's ``"l2"``),
        ``data_options`` (e.g. ``{"cache_dir": "runs/cache"}``) and ``train_items``.
        Validation items use another seed, so they never repeat a training item.
        """
        spec, config = tier_settings(TIERS, tier, seed, overrides)
        model = self.build_model(**{**spec.model, **(model_config or {})})
        # the data follow the model's line-up (``--config programs=[0,25]`` changes both)
        programs, options = model.config.programs, dict(data_options or {})
        n_train = train_items or spec.train_items
        return Recipe(
            model=model,
            loss_fn=cerberus_loss_fn(loss_weights, transcription_kind),
            train_data=self.data(n_train, spec.seconds, 2 * seed, programs, **options),
            val_data=self.data(spec.val_items, spec.seconds, 2 * seed + 1, programs, **options),
            config=config,
            metric_fn=cerberus_metrics,
            optimizer_fn=adam,
        )

    def infer(self, model: nn.Module, audio: np.ndarray, **options: object) -> SystemOutput:
        """Stems and notes of ``audio`` (``options``: see :func:`separate`)."""
        result = separate(model, audio, **{**self.thresholds, **options})
        names = source_names(model.config.programs)
        if result.method == "kmeans" and model.config.heads == ("dc",):
            names = [f"cluster {k + 1}" for k in range(len(names))]  # nothing names them
        return SystemOutput(result.notes, names, result.stems, sample_rate=self.sample_rate)


#: Chapter 4's systems.
SYSTEMS = (
    CerberusSystem(
        "cerberus",
        "Cerberus: separates and transcribes piano, guitar, bass and drums (16 kHz)",
        programs=(0, 25, 33, DRUM_PROGRAM),
        pretrained="cerberus",
        # benchmarks/results/cerberus_thresholds.json (validation items, not the test set)
        thresholds={"frame_threshold": 0.02, "onset_threshold": 0.02},
    ),
    CerberusSystem(
        "cerberus_quartet",
        "Cerberus for violin, clarinet, saxophone and bassoon (Bach10's line-up)",
        programs=(40, 71, 66, 70),
        data_options=dict(style="ensemble", expression=True, room=True),
        pretrained="cerberus_quartet",
        thresholds={"frame_threshold": 0.1},
    ),
)

__all__ = [
    "HOP",
    "LOSS_WEIGHTS",
    "TIERS",
    "CerberusSystem",
    "LineupMixtures",
    "Separation",
    "cerberus_loss_fn",
    "cerberus_metrics",
    "kmeans_masks",
    "onset_roll",
    "order_clusters",
    "separate",
    "separation_scores",
    "source_names",
    "transcription_targets",
]
