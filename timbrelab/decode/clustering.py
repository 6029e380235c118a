"""Timbre embeddings to sources: clustering notes (or bins) into instruments.

Li & Zhu's two-branch model gives a unit-norm timbre embedding for every pitch-time bin. The
notes are decoded first, without sources, from the frame and onset posteriorgrams; then

* **note level** (:func:`cluster_notes`): each note's embedding is the activation-weighted mean
  of its bins' embeddings. A note's bins share one instrument, so averaging them removes the
  bin-to-bin noise, and a note cannot be split between sources.
* **frame level** (:func:`cluster_frames`), the alternative the paper compares against (its
  Figure 3): every active bin is clustered on its own embedding, and notes are decoded from
  each source's masked posteriorgrams. A few noisy bins inside a note send part of it to
  another source, so notes fragment.

Two clustering methods (:func:`cluster_points`): **k-means** looks for compact, round groups
around centres; **spectral** clustering works on an affinity graph (:func:`affinity_matrix`)
and only needs each group to be connected, so it also copes with elongated groups (one
instrument's timbre drifting with pitch or loudness).

When the number of sources is unknown, :func:`estimate_n_clusters` picks it: the **eigengap**
heuristic reads it off the spectrum of the affinity graph's Laplacian (K nearly disconnected
groups give K eigenvalues near 0, then a jump) and can answer 1; the **silhouette** picks the K
whose clustering has the best separation-to-spread ratio, and answers 1 only through a
threshold.

Chapter: book/05_contrastive_clustering.md
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np

from timbrelab.constants import FRAME_RATE, MIDI_MIN
from timbrelab.decode.transcription import posteriorgram_to_notes
from timbrelab.notes import Note

#: Methods understood by :func:`cluster_points`.
CLUSTER_METHODS = ("spectral", "kmeans")
#: Methods understood by :func:`estimate_n_clusters`.
ESTIMATORS = ("eigengap", "silhouette")
#: Default width of :func:`affinity_matrix` (in units of ``1 - cosine``).
AFFINITY_WIDTH = 0.1
#: Best silhouette below which :func:`estimate_n_clusters` says "one cluster": the lower end
#: of Kaufman & Rousseeuw's (1990) "a reasonable structure has been found" (0.51 - 0.70).
SILHOUETTE_THRESHOLD = 0.5
#: Most bins :func:`cluster_frames` fits spectral clustering on (an M x M affinity and its
#: eigenvectors: 2000 bins take about a second, 20000 would take minutes and 3 GB).
SPECTRAL_MAX_POINTS = 2000


def _as_array(x, dtype=np.float32) -> np.ndarray:
    """numpy array of ``x`` (a numpy array, list or torch Tensor)."""
    return np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=dtype)


def _as_points(points, name: str) -> np.ndarray:
    """``points`` as a float64 ``(M, D)`` array, or a ValueError naming ``name``."""
    points = _as_array(points, np.float64)
    if points.ndim != 2:
        raise ValueError(f"{name}: points must be 2-D (M, D), got shape {points.shape}")
    return points


def _note_frames(note: Note, frame_rate: float, n_frames: int) -> tuple[int, int]:
    """Frames ``start .. stop-1`` of ``note``: at least one, clipped to ``[0, n_frames)``."""
    start = min(max(round(note.onset * frame_rate), 0), n_frames - 1)
    stop = min(max(round(note.offset * frame_rate), start + 1), n_frames)
    return start, stop


def note_embeddings(
    embedding,
    weights,
    notes: list[Note],
    frame_rate: float = FRAME_RATE,
    midi_min: int = MIDI_MIN,
) -> np.ndarray:
    """One unit-norm timbre embedding per note: the weighted mean of its bins' embeddings.

    A note covers the bins of row ``pitch - midi_min`` at frames ``round(onset * frame_rate)``
    up to (excluding) ``round(offset * frame_rate)``: at least one frame, clipped to the
    recording. Its embedding is ``sum_t w[t] e[:, t] / sum_t w[t]``, L2-normalised; weighting
    by the frame probability lets the bins where the note clearly sounds speak loudest. A note
    whose weights are all 0 gets the plain mean of its bins.

    Parameters
    ----------
    embedding : (D, P, T) array or Tensor
        Timbre embedding of every pitch-time bin (unit-norm along ``D``).
    weights : (P, T) array or Tensor
        Non-negative weight of every bin, typically the frame probabilities.
    notes : list of Note
        Notes to embed, in the order the rows come back.
    frame_rate : float
        Frames per second.
    midi_min : int
        MIDI pitch of row 0.

    Returns
    -------
    (M, D) float32 array
        Row ``i`` is the embedding of ``notes[i]``; ``(0, D)`` without notes.

    Chapter: book/05_contrastive_clustering.md
    """
    embedding, weights = _as_array(embedding), _as_array(weights)
    if embedding.ndim != 3 or weights.shape != embedding.shape[1:]:
        raise ValueError(
            f"note_embeddings: embedding must be (D, P, T) and weights (P, T) with the same "
            f"P and T, got embedding {embedding.shape} and weights {weights.shape}"
        )
    if frame_rate <= 0:
        raise ValueError(f"note_embeddings: frame_rate must be > 0, got {frame_rate}")
    dim, n_pitches, n_frames = embedding.shape
    out = np.zeros((len(notes), dim), np.float32)
    if notes and n_frames == 0:
        raise ValueError("note_embeddings: the embedding has no frames but there are notes")
    for i, note in enumerate(notes):
        row = note.pitch - midi_min
        if not 0 <= row < n_pitches:
            raise ValueError(
                f"note_embeddings: pitch {note.pitch} is outside the embedding's rows "
                f"{midi_min}..{midi_min + n_pitches - 1}"
            )
        start, stop = _note_frames(note, frame_rate, n_frames)
        bins = embedding[:, row, start:stop].astype(np.float64)
        w = weights[row, start:stop].astype(np.float64)
        total = w.sum()
        mean = bins @ w / total if total > 0 else bins.mean(axis=1)
        norm = np.linalg.norm(mean)
        out[i] = mean / norm if norm > 0 else mean  # bins that cancel out: leave the zero vector
    return out


def affinity_matrix(points, width: float = AFFINITY_WIDTH) -> np.ndarray:
    """Similarity ``exp((cos - 1) / width)`` of every pair of (unit) vectors.

    For unit vectors ``1 - cos = |a - b|^2 / 2``, so this is a Gaussian (heat) kernel on the
    sphere: 1 for identical directions, falling with the angle between them. The default width
    0.1 keeps a pair at cosine 0.9 (26 degrees apart: the spread of one instrument's notes)
    at ``e^-1 = 0.37``, and drops an orthogonal pair (two instruments a contrastive loss has
    pushed apart) to ``e^-10 = 5e-5``, so well-separated groups give a clearly block-diagonal
    matrix; a width near 1 would leave orthogonal pairs at ``e^-1`` and blur the blocks.
    Vectors are normalised first (a zero vector has cosine 0 with everything).

    Parameters
    ----------
    points : (M, D) array
    width : float
        Kernel width, > 0, in units of ``1 - cos``.

    Returns
    -------
    (M, M) float64 array
        Symmetric, in ``(0, 1]``, with ones on the diagonal.

    Chapter: book/05_contrastive_clustering.md
    """
    points = _as_points(points, "affinity_matrix")
    if width <= 0:
        raise ValueError(f"affinity_matrix: width must be > 0, got {width}")
    norms = np.linalg.norm(points, axis=1, keepdims=True)
    unit = points / np.where(norms > 0, norms, 1.0)
    cos = np.clip(unit @ unit.T, -1.0, 1.0)
    np.fill_diagonal(cos, 1.0)
    return np.exp((cos - 1.0) / width)


def _by_first_appearance(labels: np.ndarray) -> np.ndarray:
    """``labels`` renumbered 0, 1, ... in the order the clusters first appear."""
    clusters, first = np.unique(labels, return_index=True)
    new = np.empty(clusters.size, np.int64)
    new[np.argsort(first)] = np.arange(clusters.size)
    return new[np.searchsorted(clusters, labels)]


def cluster_points(points, n_clusters: int, method: str = "spectral", seed: int = 0) -> np.ndarray:
    """Cluster ``M`` embeddings into ``n_clusters`` groups.

    ``"spectral"``: scikit-learn's ``SpectralClustering`` on :func:`affinity_matrix`;
    ``"kmeans"``: ``KMeans`` (10 initialisations) on the points themselves. Labels are
    renumbered by first appearance -- label 0 is the cluster of ``points[0]``, label 1 that of
    the first point outside cluster 0, and so on -- so they do not depend on the clustering's
    arbitrary order, and the same seed gives the same labels.

    Edge cases: no points give no labels, ``n_clusters == 1`` gives all zeros and
    ``M <= n_clusters`` gives every point its own label ``0 .. M-1``.

    Parameters
    ----------
    points : (M, D) array
    n_clusters : int
        Number of clusters, >= 1.
    method : {"spectral", "kmeans"}
    seed : int
        Random state of the clustering.

    Returns
    -------
    (M,) int64 array
        Labels in ``0 .. n_clusters - 1``.

    Chapter: book/05_contrastive_clustering.md
    """
    points = _as_points(points, "cluster_points")
    if method not in CLUSTER_METHODS:
        raise ValueError(f"cluster_points: method must be one of {CLUSTER_METHODS}, got {method!r}")
    if n_clusters < 1:
        raise ValueError(f"cluster_points: n_clusters must be >= 1, got {n_clusters}")
    n_points = len(points)
    if n_points <= n_clusters:
        return np.arange(n_points, dtype=np.int64)
    if n_clusters == 1:
        return np.zeros(n_points, np.int64)
    from sklearn.cluster import KMeans, SpectralClustering

    with warnings.catch_warnings():
        # near-duplicate points make both warn about degenerate eigenvectors / fewer distinct
        # clusters; the labels are still usable, and renumbering copes with missing clusters
        warnings.simplefilter("ignore", UserWarning)
        if method == "spectral":
            model = SpectralClustering(
                n_clusters, affinity="precomputed", random_state=seed, n_init=10
            )
            labels = model.fit_predict(affinity_matrix(points))
        else:
            labels = KMeans(n_clusters, n_init=10, random_state=seed).fit_predict(points)
    return _by_first_appearance(labels)


def _eigengap(points: np.ndarray, max_clusters: int) -> int:
    """K in ``1 .. max_clusters`` after which the normalised Laplacian's spectrum jumps most."""
    from scipy.linalg import eigh

    affinity = affinity_matrix(points)
    scale = 1.0 / np.sqrt(affinity.sum(axis=1))  # degrees >= 1: the diagonal is 1
    laplacian = np.eye(len(points)) - scale[:, None] * affinity * scale[None, :]
    # only the smallest max_clusters + 1 eigenvalues matter
    values = eigh(laplacian, eigvals_only=True, subset_by_index=[0, max_clusters])
    return int(np.argmax(np.diff(np.sort(values)))) + 1


def _silhouette(points: np.ndarray, max_clusters: int) -> int:
    """K in ``2 .. max_clusters`` with the best cosine silhouette, or 1 below the threshold."""
    from sklearn.metrics import silhouette_score

    best_k, best_score = 1, -np.inf
    for k in range(2, max_clusters + 1):
        labels = cluster_points(points, k, "spectral")
        if not 2 <= len(np.unique(labels)) <= len(points) - 1:
            continue  # silhouette undefined
        score = silhouette_score(points, labels, metric="cosine")
        if score > best_score:
            best_k, best_score = k, score
    return best_k if best_score >= SILHOUETTE_THRESHOLD else 1


def estimate_n_clusters(points, max_clusters: int = 6, method: str = "eigengap") -> int:
    """Estimate how many clusters (sources) the embeddings form.

    * ``"eigengap"``: the eigenvalues ``l_1 <= l_2 <= ...`` of the symmetric normalised
      Laplacian ``I - D^-1/2 A D^-1/2`` of :func:`affinity_matrix` ``A``. ``K`` disconnected
      groups give exactly ``K`` zero eigenvalues, and nearly disconnected ones ``K`` small
      ones, so ``K = argmax_k (l_{k+1} - l_k)`` over ``k = 1 .. max_clusters``; 1 is possible.
    * ``"silhouette"``: the ``K`` in ``2 .. max_clusters`` whose spectral clustering
      (:func:`cluster_points`) has the largest mean silhouette (cosine distance). The
      silhouette is undefined for one cluster, so the answer is 1 when the best silhouette
      is below ``SILHOUETTE_THRESHOLD`` = 0.5, where Kaufman & Rousseeuw's (1990) "reasonable
      structure" starts. Not their 0.25 ("no substantial structure" below it): one isotropic
      noisy blob of 10 - 30 points in 12 dimensions, split into 2 to 6 clusters, scores up to
      0.3, while well-separated groups score above 0.75.

    ``max_clusters`` is capped at ``M - 1``: the gap after ``l_M`` and the silhouette of one
    point per cluster are undefined. Fewer than 2 points, or all points equal, give 1.

    Parameters
    ----------
    points : (M, D) array
    max_clusters : int
        Largest answer, >= 1.
    method : {"eigengap", "silhouette"}

    Returns
    -------
    int
        The estimated number of clusters, in ``1 .. max_clusters``.

    Chapter: book/05_contrastive_clustering.md
    """
    points = _as_points(points, "estimate_n_clusters")
    if method not in ESTIMATORS:
        raise ValueError(f"estimate_n_clusters: method must be one of {ESTIMATORS}, got {method!r}")
    if max_clusters < 1:
        raise ValueError(f"estimate_n_clusters: max_clusters must be >= 1, got {max_clusters}")
    max_clusters = min(max_clusters, len(points) - 1)
    if max_clusters < 2 or np.ptp(points, axis=0).max() <= 1e-9:
        return 1
    if method == "eigengap":
        return _eigengap(points, max_clusters)
    return _silhouette(points, max_clusters)


def cluster_notes(
    notes: list[Note],
    embedding,
    frame_probs,
    n_sources: int | None = None,
    method: str = "spectral",
    estimator: str = "eigengap",
    max_sources: int = 6,
    frame_rate: float = FRAME_RATE,
    midi_min: int = MIDI_MIN,
    seed: int = 0,
) -> tuple[list[Note], int]:
    """Give every note a source by clustering the notes' timbre embeddings (note level).

    Each note's embedding is its bins' embeddings weighted by the frame probability
    (:func:`note_embeddings`); the notes are clustered into ``n_sources`` groups, or into the
    number :func:`estimate_n_clusters` estimates (at most ``max_sources``) when it is None.

    Parameters
    ----------
    notes : list of Note
        Notes decoded without sources, e.g. by
        :func:`~timbrelab.decode.posteriorgram_to_notes`.
    embedding : (D, P, T) array or Tensor
        Timbre embedding of every pitch-time bin.
    frame_probs : (P, T) array or Tensor
        Frame probabilities, the weights of the mean.
    n_sources : int or None
        Number of sources (>= 1), or None to estimate it.
    method : {"spectral", "kmeans"}
        Clustering method (:func:`cluster_points`).
    estimator : {"eigengap", "silhouette"}
        How to estimate the number of sources when ``n_sources`` is None.
    max_sources : int
        Largest estimate.
    frame_rate, midi_min
        As in :func:`note_embeddings`.
    seed : int
        Random state of the clustering.

    Returns
    -------
    notes : list of Note
        The notes sorted, each with ``source`` = its cluster; source 0 is the first note's.
    n_sources : int
        The number of sources used (given or estimated). With fewer notes than sources,
        not every source has a note.

    Chapter: book/05_contrastive_clustering.md
    """
    if n_sources is not None and n_sources < 1:
        raise ValueError(f"cluster_notes: n_sources must be >= 1 or None, got {n_sources}")
    notes = sorted(notes)
    points = note_embeddings(embedding, frame_probs, notes, frame_rate, midi_min)
    k = n_sources if n_sources is not None else estimate_n_clusters(points, max_sources, estimator)
    labels = cluster_points(points, k, method, seed)
    labelled = [replace(note, source=int(label)) for note, label in zip(notes, labels, strict=True)]
    return labelled, k


def _assign(points: np.ndarray, fitted: np.ndarray, labels: np.ndarray, method: str) -> np.ndarray:
    """Label of every point from a clustering of ``fitted``: the nearest cluster mean (k-means'
    rule) or, for spectral clustering, the closest mean direction (largest cosine)."""
    n_clusters = int(labels.max()) + 1
    means = np.stack([fitted[labels == k].mean(axis=0) for k in range(n_clusters)])
    if method == "kmeans":
        distances = (points**2).sum(1)[:, None] - 2 * points @ means.T + (means**2).sum(1)
        return np.argmin(distances, axis=1)
    means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    return np.argmax(points @ means.T, axis=1)


def cluster_frames(
    embedding,
    frame_probs,
    onset_probs,
    n_sources: int,
    frame_threshold: float = 0.3,
    onset_threshold: float = 0.5,
    method: str = "kmeans",
    seed: int = 0,
    frame_rate: float = FRAME_RATE,
    midi_min: int = MIDI_MIN,
    max_points: int = 20_000,
) -> list[Note]:
    """Notes with sources from clustering every active bin on its own (frame level).

    The alternative the paper compares note-level clustering with (its Figure 3). The active
    bins -- ``frame_probs >= frame_threshold``, and also ``onset_probs >= onset_threshold``
    so that a note's onset frame, where the frame probability may still be rising, stays in
    its source -- are clustered on their embeddings: the clustering is fitted on at most
    ``max_points`` of them drawn with ``seed`` (at most ``SPECTRAL_MAX_POINTS`` = 2000 for
    spectral clustering, whose cost grows with the square of the number of points), and every
    active bin then goes to the nearest cluster (:func:`cluster_points` explains the methods).
    Source ``k``'s notes are :func:`~timbrelab.decode.posteriorgram_to_notes` of the
    posteriorgrams masked to its bins. Sources are numbered by first appearance in time
    (frame by frame, low pitch first).

    Parameters
    ----------
    embedding : (D, P, T) array or Tensor
    frame_probs, onset_probs : (P, T) array or Tensor
    n_sources : int
        Number of sources, >= 1.
    frame_threshold, onset_threshold : float
        Activity thresholds, also handed to ``posteriorgram_to_notes``.
    method : {"kmeans", "spectral"}
    seed : int
        Random state of the sampling and the clustering.
    frame_rate : float
        Frames per second.
    midi_min : int
        MIDI pitch of row 0.
    max_points : int
        Most bins the clustering is fitted on.

    Returns
    -------
    list of Note
        Sorted, each with its ``source``.

    Chapter: book/05_contrastive_clustering.md
    """
    embedding = _as_array(embedding)
    frames, onsets = _as_array(frame_probs), _as_array(onset_probs)
    if embedding.ndim != 3 or frames.shape != embedding.shape[1:] or onsets.shape != frames.shape:
        raise ValueError(
            f"cluster_frames: embedding must be (D, P, T) and frame_probs, onset_probs (P, T) "
            f"with the same P and T, got embedding {embedding.shape}, frame_probs "
            f"{frames.shape} and onset_probs {onsets.shape}"
        )
    if n_sources < 1:
        raise ValueError(f"cluster_frames: n_sources must be >= 1, got {n_sources}")
    if method not in CLUSTER_METHODS:
        raise ValueError(f"cluster_frames: method must be one of {CLUSTER_METHODS}, got {method!r}")
    if max_points < 1:
        raise ValueError(f"cluster_frames: max_points must be >= 1, got {max_points}")
    active = (frames >= frame_threshold) | (onsets >= onset_threshold)
    # time-major order, so that "first appearance" means earliest in the recording
    times, rows = np.nonzero(active.T)
    if times.size == 0:
        return []
    points = embedding[:, rows, times].T.astype(np.float64)
    cap = min(max_points, SPECTRAL_MAX_POINTS) if method == "spectral" else max_points
    rng = np.random.default_rng(seed)
    fit_on = np.sort(rng.choice(len(points), min(cap, len(points)), replace=False))
    fitted = points[fit_on]
    labels = _by_first_appearance(
        _assign(points, fitted, cluster_points(fitted, n_sources, method, seed), method)
    )
    notes = []
    for k in range(int(labels.max()) + 1):
        mask = np.zeros_like(frames)
        mask[rows[labels == k], times[labels == k]] = 1.0
        notes += [
            replace(note, source=k)
            for note in posteriorgram_to_notes(
                frames * mask,
                onsets * mask,
                frame_rate,
                onset_threshold,
                frame_threshold,
                midi_min=midi_min,
            )
        ]
    return sorted(notes)
