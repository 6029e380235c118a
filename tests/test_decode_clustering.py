from __future__ import annotations

import numpy as np
import pytest

from timbrelab.constants import FRAME_RATE, MIDI_MIN
from timbrelab.decode import (
    CLUSTER_METHODS,
    ESTIMATORS,
    affinity_matrix,
    cluster_frames,
    cluster_notes,
    cluster_points,
    estimate_n_clusters,
    note_embeddings,
)
from timbrelab.notes import Note

D = 12


def directions(k: int, seed: int = 0, d: int = D) -> np.ndarray:
    """``k`` orthonormal random directions ``(k, d)``: well-separated sources."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q[:, :k].T


def clusters(k: int, n: int = 30, noise: float = 0.05, seed: int = 0):
    """``k * n`` shuffled unit points around ``k`` directions, and their true groups."""
    rng = np.random.default_rng(seed + 100)
    truth = np.repeat(np.arange(k), n)
    points = directions(k, seed)[truth] + noise * rng.standard_normal((k * n, D))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    order = rng.permutation(k * n)
    return points[order], truth[order]


def contingency(truth: np.ndarray, labels: np.ndarray) -> np.ndarray:
    table = np.zeros((truth.max() + 1, labels.max() + 1), int)
    np.add.at(table, (truth, labels), 1)
    return table


def assert_same_partition(truth: np.ndarray, labels: np.ndarray) -> None:
    """Equal up to a permutation: a square contingency table with one non-zero per row/column."""
    table = contingency(truth, labels)
    assert table.shape[0] == table.shape[1], table
    assert np.all((table > 0).sum(axis=0) == 1), table
    assert np.all((table > 0).sum(axis=1) == 1), table


def frame(seconds_frame: int) -> float:
    return seconds_frame / FRAME_RATE


# --- note_embeddings --------------------------------------------------------------------------


def test_note_embedding_is_the_normalised_weighted_mean_of_its_bins():
    embedding = np.zeros((2, 3, 6), np.float32)
    embedding[:, 1, 1] = [1.0, 0.0]
    embedding[:, 1, 2] = [0.0, 1.0]
    embedding[:, 1, 3] = [0.6, 0.8]
    embedding[:, 1, 4] = [-1.0, 0.0]  # outside the note: must not count
    weights = np.zeros((3, 6), np.float32)
    weights[1, 1:5] = [0.5, 0.25, 0.25, 1.0]
    note = Note(frame(1), frame(4), MIDI_MIN + 1)
    (got,) = note_embeddings(embedding, weights, [note])
    # 0.5 * (1, 0) + 0.25 * (0, 1) + 0.25 * (0.6, 0.8) = (0.65, 0.45), over 1.0; then normalised
    expected = np.array([0.65, 0.45]) / np.hypot(0.65, 0.45)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_note_embeddings_respects_midi_min_and_row_order():
    embedding = np.zeros((2, 3, 6), np.float32)
    embedding[0, 0] = 1.0
    embedding[1, 2] = 1.0
    weights = np.ones((3, 6), np.float32)
    notes = [Note(frame(0), frame(3), 62), Note(frame(2), frame(6), 60)]
    got = note_embeddings(embedding, weights, notes, midi_min=60)
    np.testing.assert_allclose(got, [[0.0, 1.0], [1.0, 0.0]])


def test_zero_weights_fall_back_to_the_plain_mean():
    embedding = np.zeros((2, 3, 6), np.float32)
    embedding[:, 0, 0] = [1.0, 0.0]
    embedding[:, 0, 1] = [0.0, 1.0]
    embedding[:, 0, 2] = [0.0, 1.0]
    (got,) = note_embeddings(embedding, np.zeros((3, 6)), [Note(0.0, frame(3), MIDI_MIN)])
    np.testing.assert_allclose(got, np.array([1.0, 2.0]) / np.sqrt(5), rtol=1e-6)


def test_a_note_shorter_than_a_frame_and_one_past_the_end_still_get_a_bin():
    embedding = np.zeros((2, 3, 6), np.float32)
    embedding[:, 2, 5] = [0.0, 1.0]
    embedding[:, 2, 3] = [1.0, 0.0]
    weights = np.ones((3, 6))
    notes = [Note(frame(5), frame(9), MIDI_MIN + 2), Note(frame(3), frame(3.2), MIDI_MIN + 2)]
    got = note_embeddings(embedding, weights, notes)
    np.testing.assert_allclose(got, [[0.0, 1.0], [1.0, 0.0]])


def test_no_notes_give_an_empty_d_column_array():
    got = note_embeddings(np.zeros((5, 88, 10)), np.zeros((88, 10)), [])
    assert got.shape == (0, 5)


@pytest.mark.parametrize(
    ("embedding_shape", "weights_shape"),
    [((2, 3, 6), (3, 5)), ((2, 3, 6), (4, 6)), ((3, 6), (3, 6)), ((2, 3, 6), (2, 3, 6))],
)
def test_note_embeddings_rejects_mismatched_shapes(embedding_shape, weights_shape):
    with pytest.raises(ValueError, match="note_embeddings.*shape|note_embeddings.*weights"):
        note_embeddings(np.zeros(embedding_shape), np.zeros(weights_shape), [])


def test_note_embeddings_rejects_a_pitch_outside_the_rows():
    with pytest.raises(ValueError, match="pitch 30"):
        note_embeddings(np.ones((2, 3, 6)), np.ones((3, 6)), [Note(0.0, 0.05, 30)])


# --- affinity ---------------------------------------------------------------------------------


def test_affinity_is_block_diagonal_for_separated_groups():
    points, truth = clusters(3)
    affinity = affinity_matrix(points)
    assert affinity.shape == (90, 90)
    np.testing.assert_allclose(affinity, affinity.T)
    np.testing.assert_allclose(np.diag(affinity), 1.0)
    same = truth[:, None] == truth[None, :]
    assert affinity[same].min() > 0.1
    assert affinity[~same].max() < 1e-3


def test_affinity_of_known_angles():
    points = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    affinity = affinity_matrix(points, width=0.5)
    np.testing.assert_allclose(affinity[0], [1.0, np.exp(-2.0), np.exp(-4.0)])


# --- cluster_points ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", CLUSTER_METHODS)
@pytest.mark.parametrize("k", [2, 3, 4])
def test_separated_clusters_are_recovered_exactly(method, k):
    points, truth = clusters(k, seed=k)
    labels = cluster_points(points, k, method)
    assert labels.dtype == np.int64 and labels.shape == truth.shape
    assert_same_partition(truth, labels)


@pytest.mark.parametrize("method", CLUSTER_METHODS)
def test_labels_are_numbered_by_first_appearance(method):
    points, _ = clusters(3, seed=5)
    labels = cluster_points(points, 3, method)
    assert labels[0] == 0
    first = [int(np.flatnonzero(labels == k)[0]) for k in range(3)]
    assert first == sorted(first)
    # the same points in another order: the numbering follows the new order
    reverse = cluster_points(points[::-1], 3, method)
    assert reverse[0] == 0
    assert_same_partition(labels, reverse[::-1])


@pytest.mark.parametrize("method", CLUSTER_METHODS)
def test_same_seed_gives_the_same_labels(method):
    # overlapping groups, where the seed matters
    points, _ = clusters(3, noise=0.6, seed=7)
    first = cluster_points(points, 3, method, seed=3)
    np.testing.assert_array_equal(first, cluster_points(points, 3, method, seed=3))


@pytest.mark.parametrize("method", CLUSTER_METHODS)
def test_cluster_points_edge_cases(method):
    assert cluster_points(np.zeros((0, D)), 3, method).shape == (0,)
    points, _ = clusters(2, n=5)
    np.testing.assert_array_equal(cluster_points(points, 1, method), np.zeros(10, np.int64))
    np.testing.assert_array_equal(cluster_points(points[:3], 3, method), [0, 1, 2])
    np.testing.assert_array_equal(cluster_points(points[:2], 4, method), [0, 1])


def test_cluster_points_rejects_bad_arguments():
    points, _ = clusters(2, n=5)
    with pytest.raises(ValueError, match="method"):
        cluster_points(points, 2, "dbscan")
    with pytest.raises(ValueError, match="n_clusters"):
        cluster_points(points, 0)
    with pytest.raises(ValueError, match="2-D"):
        cluster_points(points[0], 2)


# --- estimate_n_clusters ----------------------------------------------------------------------


@pytest.mark.parametrize("method", ESTIMATORS)
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_estimate_finds_the_true_number_of_clusters(method, k):
    for seed in range(2):
        points, _ = clusters(k, seed=seed)
        assert estimate_n_clusters(points, max_clusters=6, method=method) == k


@pytest.mark.parametrize("method", ESTIMATORS)
def test_estimate_edge_cases(method):
    points, _ = clusters(4, n=10)
    assert estimate_n_clusters(points[:1], method=method) == 1
    assert estimate_n_clusters(points[:0], method=method) == 1
    assert estimate_n_clusters(np.tile(points[:1], (20, 1)), method=method) == 1
    # four groups, but at most two allowed
    assert estimate_n_clusters(points, max_clusters=2, method=method) <= 2
    # few points: max_clusters is capped, still an answer in range
    assert 1 <= estimate_n_clusters(points[:3], max_clusters=6, method=method) <= 2
    with pytest.raises(ValueError, match="method"):
        estimate_n_clusters(points, method="gap")
    with pytest.raises(ValueError, match="max_clusters"):
        estimate_n_clusters(points, max_clusters=0)


# --- cluster_notes ----------------------------------------------------------------------------


def two_instrument_scene(seed: int = 0):
    """Embedding volume, frame probabilities and notes of two instruments on disjoint pitches
    and times, the notes of instrument ``i`` carrying direction ``i`` (plus noise)."""
    rng = np.random.default_rng(seed)
    n_frames = 400
    dirs = directions(2, seed)
    # every bin: a random unit vector (the background noise of the embedding)
    embedding = rng.standard_normal((D, 88, n_frames)).astype(np.float32)
    frames = np.zeros((88, n_frames), np.float32)
    notes, truth = [], []
    for i in range(12):
        instrument = i % 2
        pitch = (48 + 2 * i) if instrument == 0 else (72 + 2 * i)
        start = 30 * i + 5
        stop = start + 25
        row = pitch - MIDI_MIN
        bins = dirs[instrument][:, None] + 0.3 * rng.standard_normal((D, stop - start))
        embedding[:, row, start:stop] = bins
        frames[row, start:stop] = 0.9
        notes.append(Note(start / FRAME_RATE, stop / FRAME_RATE, pitch))
        truth.append(instrument)
    embedding /= np.linalg.norm(embedding, axis=0, keepdims=True)
    return embedding, frames, notes, np.array(truth)


@pytest.mark.parametrize("method", CLUSTER_METHODS)
def test_cluster_notes_recovers_the_instruments_and_their_number(method):
    embedding, frames, notes, truth = two_instrument_scene()
    shuffled = [notes[i] for i in np.random.default_rng(1).permutation(len(notes))]
    out, k = cluster_notes(shuffled, embedding, frames, method=method)
    assert k == 2
    # notes come back sorted, unchanged except for the source
    assert [n.pitch for n in out] == [n.pitch for n in notes]
    assert [(n.onset, n.offset) for n in out] == [(n.onset, n.offset) for n in notes]
    sources = np.array([n.source for n in out])
    assert sources[0] == 0
    assert_same_partition(truth, sources)


def test_cluster_notes_with_a_given_number_of_sources():
    embedding, frames, notes, truth = two_instrument_scene(seed=3)
    out, k = cluster_notes(notes, embedding, frames, n_sources=2, estimator="silhouette")
    assert k == 2
    assert_same_partition(truth, np.array([n.source for n in out]))
    out, k = cluster_notes(notes, embedding, frames, n_sources=1)
    assert k == 1 and {n.source for n in out} == {0}


def test_cluster_notes_estimates_with_the_silhouette_too():
    embedding, frames, notes, truth = two_instrument_scene(seed=4)
    out, k = cluster_notes(notes, embedding, frames, estimator="silhouette")
    assert k == 2
    assert_same_partition(truth, np.array([n.source for n in out]))


def test_cluster_notes_without_notes():
    out, _ = cluster_notes([], np.zeros((D, 88, 10)), np.zeros((88, 10)), n_sources=2)
    assert out == []


@pytest.mark.parametrize("n_sources", [0, -1])
def test_n_sources_below_one_is_rejected(n_sources):
    embedding, frames, notes, _ = two_instrument_scene()
    with pytest.raises(ValueError, match="n_sources"):
        cluster_notes(notes, embedding, frames, n_sources=n_sources)
    with pytest.raises(ValueError, match="n_sources"):
        cluster_frames(embedding, frames, frames, n_sources=n_sources)


# --- cluster_frames ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", CLUSTER_METHODS)
def test_cluster_frames_separates_two_sustained_notes(method):
    rng = np.random.default_rng(0)
    n_frames = 120
    dirs = directions(2, seed=2)
    embedding = rng.standard_normal((D, 88, n_frames)).astype(np.float32)
    frames = np.zeros((88, n_frames), np.float32)
    onsets = np.zeros_like(frames)
    # two overlapping notes: C4 from frame 10 to 90 (instrument 0), G4 from 30 to 110 (1)
    for (pitch, start, stop), direction in zip([(60, 10, 90), (67, 30, 110)], dirs, strict=True):
        row = pitch - MIDI_MIN
        frames[row, start:stop] = 0.9
        onsets[row, start] = 0.95
        noise = 0.1 * rng.standard_normal((D, stop - start))
        embedding[:, row, start:stop] = direction[:, None] + noise
    embedding /= np.linalg.norm(embedding, axis=0, keepdims=True)
    notes = cluster_frames(embedding, frames, onsets, n_sources=2, method=method)
    spans = [(n.pitch, round(n.onset * FRAME_RATE), round(n.offset * FRAME_RATE)) for n in notes]
    assert spans == [(60, 10, 90), (67, 30, 110)]
    assert [n.source for n in notes] == [0, 1]  # numbered by first appearance in time


def test_cluster_frames_without_active_bins_and_bad_shapes():
    embedding = np.ones((D, 88, 20), np.float32) / np.sqrt(D)
    silent = np.zeros((88, 20), np.float32)
    assert cluster_frames(embedding, silent, silent, n_sources=2) == []
    with pytest.raises(ValueError, match="cluster_frames"):
        cluster_frames(embedding, silent[:, :10], silent, n_sources=2)
    with pytest.raises(ValueError, match="method"):
        cluster_frames(embedding, silent, silent, n_sources=2, method="dbscan")
