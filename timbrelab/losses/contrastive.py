"""Contrastive losses that teach a timbre embedding: bins (or notes) of one instrument together.

Every loss here reads unit embeddings ``V`` ``(B, D, F, T)`` and the instrument rolls of the
mixture ``Y`` ``(B, K, F, T)`` (1 where instrument ``k`` plays pitch ``f`` at frame ``t``;
Li & Zhu's per-bin instrument labels). Only bins where some instrument plays count: the
embedding of silence means nothing, and the clustering never sees it.

- :func:`info_nce`: each anchor should be more similar to the points of its own instrument
  than to all others, a softmax over similarities divided by a temperature (Li & Zhu, eq. 8).
  A recording with one instrument costs nothing: every other bin is a positive.
- :func:`bin_info_nce` / :func:`note_info_nce`: InfoNCE over active bins (the paper) or over
  the reference notes' mean embeddings.
- :func:`affinity_loss`: deep clustering's ``|V V^T - Y Y^T|^2`` over active bins (the paper's
  "MSE" row), which asks embeddings of different instruments to be orthogonal.

Chapter: book/05_contrastive_clustering.md
"""

from __future__ import annotations

import torch

from timbrelab.losses.separation import deep_clustering_loss


def info_nce(points: torch.Tensor, labels: torch.Tensor, temperature: float = 0.15) -> torch.Tensor:
    """InfoNCE of ``N`` unit vectors ``points`` ``(N, D)`` with multi-hot ``labels`` ``(N, K)``.

    Points ``i != j`` are positives when they share a label. For every anchor ``i`` with at
    least one positive::

        l_i = -log( sum_{j in P(i)} exp(s_ij / tau) / sum_{j != i} exp(s_ij / tau) ),
        s_ij = v_i . v_j

    and the loss is the mean of ``l_i`` (0 when no anchor has a positive).

    Chapter: book/05_contrastive_clustering.md
    """
    if points.dim() != 2 or labels.dim() != 2 or len(points) != len(labels):
        raise ValueError(
            f"info_nce: points (N, D) and labels (N, K) must agree, got "
            f"{tuple(points.shape)} and {tuple(labels.shape)}"
        )
    if not temperature > 0:
        raise ValueError(f"info_nce: temperature must be > 0, got {temperature}")
    n = len(points)
    similarity = points @ points.T / temperature
    not_self = ~torch.eye(n, dtype=torch.bool, device=points.device)
    labels = labels.to(points.dtype)
    positive = ((labels @ labels.T) > 0) & not_self
    anchors = positive.any(dim=1)
    if not bool(anchors.any()):
        return points.sum() * 0.0  # keeps the graph: a step with nothing to contrast
    negative_inf = torch.finfo(similarity.dtype).min
    all_others = similarity.masked_fill(~not_self, negative_inf).logsumexp(dim=1)
    positives = similarity.masked_fill(~positive, negative_inf).logsumexp(dim=1)
    return (all_others - positives)[anchors].mean()


def _check(embedding: torch.Tensor, targets: torch.Tensor, name: str) -> None:
    if (
        embedding.dim() != 4
        or targets.dim() != 4
        or embedding.shape[0] != targets.shape[0]
        or (embedding.shape[2:] != targets.shape[2:])
    ):
        raise ValueError(
            f"{name}: embedding (B, D, F, T) and targets (B, K, F, T) must agree, got "
            f"{tuple(embedding.shape)} and {tuple(targets.shape)}"
        )


def bin_info_nce(
    embedding: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 0.15,
    max_bins: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """:func:`info_nce` over the active bins of each item, averaged over the batch.

    Parameters
    ----------
    embedding : (B, D, F, T) tensor
        Unit vectors along ``D``.
    targets : (B, K, F, T) tensor
        Instrument rolls (> 0.5: playing); rows of absent instruments are all zero.
    temperature : float
    max_bins : int or None
        Use at most this many active bins per item, drawn at random (``generator``): the
        cost grows with the square of their number.

    Chapter: book/05_contrastive_clustering.md
    """
    _check(embedding, targets, "bin_info_nce")
    losses = []
    for v, y in zip(embedding, targets > 0.5, strict=True):
        active = y.any(dim=0).flatten().nonzero().squeeze(1)
        if max_bins is not None and len(active) > max_bins:
            pick = torch.randperm(len(active), generator=generator)[:max_bins]
            active = active[pick.to(active.device)]
        points = v.flatten(1)[:, active].T
        labels = y.flatten(1)[:, active].T
        losses.append(info_nce(points, labels, temperature))
    return torch.stack(losses).mean()


def note_ids(rolls: torch.Tensor) -> torch.Tensor:
    """Number the notes of instrument rolls ``(K, F, T)``: a note is a run of active frames
    of one instrument and pitch. Returns ids ``(K, F, T)`` int64, ``0`` where silent and
    ``1 .. M`` for the ``M`` notes, in (instrument, pitch, time) order.

    Chapter: book/05_contrastive_clustering.md
    """
    active = rolls > 0.5
    before = torch.nn.functional.pad(active[..., :-1], (1, 0))
    starts = active & ~before
    return starts.flatten().cumsum(0).view_as(active) * active


def note_info_nce(
    embedding: torch.Tensor, targets: torch.Tensor, temperature: float = 0.15
) -> torch.Tensor:
    """:func:`info_nce` over reference notes: each note's embedding is the normalised mean of
    its bins' (:func:`note_ids`); notes of one instrument are positives. Averaged over the
    batch. Shapes as in :func:`bin_info_nce`.

    Chapter: book/05_contrastive_clustering.md
    """
    _check(embedding, targets, "note_info_nce")
    losses = []
    for v, y in zip(embedding, targets, strict=True):
        ids = note_ids(y)  # (K, F, T)
        n_notes = int(ids.max())
        if n_notes < 2:
            losses.append(v.sum() * 0.0)
            continue
        d = v.shape[0]
        sums = v.new_zeros(n_notes + 1, d)
        for k in range(len(ids)):  # a bin two instruments share adds to both notes
            sums.index_add_(0, ids[k].flatten(), v.flatten(1).T)
        points = torch.nn.functional.normalize(sums[1:], dim=1)
        # ids are numbered instrument by instrument: instrument k owns the next n_k ids
        last_id = ids.flatten(1).amax(dim=1).cummax(dim=0).values
        per_instrument = torch.diff(last_id, prepend=last_id.new_zeros(1))
        source = torch.repeat_interleave(torch.arange(len(ids), device=v.device), per_instrument)
        labels = torch.nn.functional.one_hot(source, len(ids))
        losses.append(info_nce(points, labels, temperature))
    return torch.stack(losses).mean()


def affinity_loss(embedding: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Deep clustering's affinity MSE over active bins: the mean over bin pairs of
    ``(v_i . v_j - [i and j share an instrument])^2`` (computed in its ``D x D`` form by
    :func:`~timbrelab.losses.separation.deep_clustering_loss`). Shapes as in
    :func:`bin_info_nce`.

    Chapter: book/05_contrastive_clustering.md
    """
    _check(embedding, targets, "affinity_loss")
    playing = (targets > 0.5).to(embedding.dtype)
    return deep_clustering_loss(embedding, playing, playing.amax(dim=1))
