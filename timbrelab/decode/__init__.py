"""Decoders: what turns a network's outputs into notes, one module per kind of output.

- :mod:`~timbrelab.decode.transcription`: frame/onset posteriorgrams -> notes without a source
  (Chapter 2). Later chapters add per-source posteriorgrams and note embeddings -> notes with
  ``source``.

Chapter: book/02_focal_loss_amt.md
"""

from timbrelab.decode.clustering import (
    CLUSTER_METHODS,
    ESTIMATORS,
    affinity_matrix,
    cluster_frames,
    cluster_notes,
    cluster_points,
    estimate_n_clusters,
    note_embeddings,
)
from timbrelab.decode.transcription import (
    add_inferred_onsets,
    onsets_frames_decode,
    posteriorgram_pieces_to_notes,
    posteriorgram_to_notes,
)

__all__ = [
    "add_inferred_onsets",
    "onsets_frames_decode",
    "posteriorgram_pieces_to_notes",
    "posteriorgram_to_notes",
    "CLUSTER_METHODS",
    "ESTIMATORS",
    "affinity_matrix",
    "cluster_frames",
    "cluster_notes",
    "cluster_points",
    "estimate_n_clusters",
    "note_embeddings",
]
