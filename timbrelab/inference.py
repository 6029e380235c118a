"""Running a transcription model on recordings of any length.

A model sees a whole recording at once in training (a few seconds), but a user's file may be
an hour long. :func:`predict_posteriorgrams` cuts the audio into overlapping chunks, runs the
model on each and keeps only the centre of each chunk's output: frames near a chunk's edge see
a truncated context (zero padding instead of the neighbouring audio), frames in the centre see
the same context as in one long pass. Memory stays bounded by the chunk length (a 10-minute
recording peaks at about 0.6 GB on CPU with the default 30 s chunks).

One caveat: the models' input normalisations (EnergyNorm, Basic Pitch's LogBatchNorm) use
statistics of the whole clip they are given, so each chunk is normalised on its own, just as
each training clip was. The rest of the network is local, and stitches seamlessly.

Chapter: book/02_focal_loss_amt.md
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from timbrelab.constants import HOP_LENGTH, SAMPLE_RATE
from timbrelab.decode import posteriorgram_to_notes
from timbrelab.notes import Note


def _chunk_plan(n_frames: int, chunk_frames: int, margin: int) -> list[tuple[int, int, int, int]]:
    """``(first, stop, keep_from, keep_to)`` frame ranges: run frames ``first..stop-1``, keep
    ``keep_from..keep_to-1``. Kept ranges tile ``0..n_frames-1``; each has ``margin`` frames of
    context on both sides except at the ends of the recording."""
    core = chunk_frames - 2 * margin
    plan = []
    for keep_from in range(0, n_frames, core):
        keep_to = min(keep_from + core, n_frames)
        plan.append(
            (max(keep_from - margin, 0), min(keep_to + margin, n_frames), keep_from, keep_to)
        )
    return plan


def predict_posteriorgrams(
    model: nn.Module,
    audio: np.ndarray | torch.Tensor,
    chunk_seconds: float = 30.0,
    overlap_seconds: float = 2.0,
    device: str | torch.device | None = None,
    sample_rate: int = SAMPLE_RATE,
    hop_length: int = HOP_LENGTH,
) -> dict[str, np.ndarray]:
    """Posteriorgrams (probabilities) of a recording, computed chunk by chunk.

    Each chunk is ``chunk_seconds`` long and overlaps its neighbours by ``overlap_seconds`` on
    each side; only the frames at least ``overlap_seconds`` from a chunk edge are kept (the
    recording's own start and end excepted). With an overlap wider than the receptive field
    (2 s covers the longest CQT kernels) a local network gives the same result as one pass over
    the whole recording; clip-level input normalisation is applied per chunk (see the module
    docstring). Memory grows with the chunk length, not the recording length.

    Parameters
    ----------
    model : nn.Module
        ``forward(audio (B, N)) -> dict`` of logits ``(B, C, T)`` with ``T = 1 + N // hop_length``
        (every transcription model of :mod:`timbrelab.models`). Run in eval mode; its
        train/eval mode is restored afterwards.
    audio : (N,) array or Tensor
        Mono samples at ``sample_rate``.
    chunk_seconds, overlap_seconds : float
        Chunk length and the context kept on each side; ``chunk_seconds`` must exceed
        ``2 * overlap_seconds``.
    device : str, torch.device or None
        Where to run; default: where the model's parameters are.
    sample_rate, hop_length : int
        The model's input rate and frame hop.

    Returns
    -------
    dict[str, np.ndarray]
        ``torch.sigmoid`` of each output, float32 ``(C, T)`` (``"frame"``, ``"onset"``:
        ``(88, T)``), ``T = 1 + N // hop_length``.

    Chapter: book/02_focal_loss_amt.md
    """
    audio = torch.as_tensor(audio, dtype=torch.float32)
    if audio.dim() != 1:
        raise ValueError(f"audio must be 1-D (N,) mono samples, got shape {tuple(audio.shape)}")
    chunk_frames = round(chunk_seconds * sample_rate / hop_length)
    margin = round(overlap_seconds * sample_rate / hop_length)
    if margin < 0 or chunk_frames - 2 * margin < 1:
        raise ValueError(
            f"chunk_seconds ({chunk_seconds}) must be longer than twice overlap_seconds "
            f"({overlap_seconds}), and overlap_seconds must be >= 0"
        )
    if device is None:
        device = next(model.parameters(), torch.empty(0)).device
    n_frames = 1 + audio.shape[0] // hop_length
    result: dict[str, np.ndarray] = {}
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            # an eval-only twin when the model has one (BasicAMT: about 3x faster on a CPU)
            runner = model.for_inference() if hasattr(model, "for_inference") else model
            for first, stop, keep_from, keep_to in _chunk_plan(n_frames, chunk_frames, margin):
                # frame t is centred on sample t * hop, so frames first..stop-1 come from the
                # samples from first * hop on; the last chunk takes the audio to its end
                samples = audio[first * hop_length : stop * hop_length]
                outputs = runner(samples.to(device).unsqueeze(0))
                for key, logits in outputs.items():
                    if logits.shape[-1] < stop - first:
                        raise ValueError(
                            f"model output {key!r} has {logits.shape[-1]} frames for "
                            f"{samples.shape[0]} samples; expected 1 + N // {hop_length}"
                        )
                    if key not in result:
                        shape = (*logits.shape[1:-1], n_frames)
                        result[key] = np.empty(shape, np.float32)
                    kept = logits[0, ..., keep_from - first : keep_to - first]
                    result[key][..., keep_from:keep_to] = torch.sigmoid(kept.float()).cpu().numpy()
    finally:
        model.train(was_training)
    return result


def transcribe(
    model: nn.Module,
    audio: np.ndarray | torch.Tensor,
    chunk_seconds: float = 30.0,
    overlap_seconds: float = 2.0,
    device: str | torch.device | None = None,
    sample_rate: int = SAMPLE_RATE,
    hop_length: int = HOP_LENGTH,
    **decode_kw: object,
) -> list[Note]:
    """Transcribe a recording: :func:`predict_posteriorgrams` then
    :func:`timbrelab.decode.posteriorgram_to_notes`.

    Parameters
    ----------
    model, audio, chunk_seconds, overlap_seconds, device, sample_rate, hop_length
        As in :func:`predict_posteriorgrams`; ``audio`` is ``(N,)``.
    **decode_kw
        Passed to :func:`timbrelab.decode.posteriorgram_to_notes` (``onset_threshold``,
        ``frame_threshold``, ``min_note_seconds``, ...).

    Returns
    -------
    list of Note
        Sorted, with ``source=None`` (the model is timbre-agnostic).

    Chapter: book/02_focal_loss_amt.md
    """
    probs = predict_posteriorgrams(
        model, audio, chunk_seconds, overlap_seconds, device, sample_rate, hop_length
    )
    return posteriorgram_to_notes(
        probs["frame"], probs["onset"], frame_rate=sample_rate / hop_length, **decode_kw
    )


# --- evaluation ----------------------------------------------------------------------------

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


def evaluate_synthetic(
    model: nn.Module,
    n_pieces: int = 10,
    seconds: float = 10.0,
    seed: int = 0,
    instruments: tuple[int, int] = (1, 4),
    device: str | torch.device | None = None,
    **decode_kw: object,
) -> list[dict]:
    """Score a model on fresh synthetic mixtures (never seen in training).

    Piece ``i`` has K instruments drawn from ``instruments`` and is rendered by
    :func:`timbrelab.data.make_mixture` with the seed ``(EVAL_SEED_SALT, seed, i)``.

    Returns
    -------
    list of dict
        Per piece: ``piece``, ``instruments`` and :func:`transcription_scores`.

    Chapter: book/02_focal_loss_amt.md
    """
    from timbrelab.data.mixtures import make_mixture

    rows = []
    for i in range(n_pieces):
        piece_seed = (EVAL_SEED_SALT, seed, i)
        k = int(np.random.default_rng(piece_seed).integers(instruments[0], instruments[1] + 1))
        mixture = make_mixture(k, seconds, seed=piece_seed)
        est = transcribe(model, mixture.audio, device=device, **decode_kw)
        rows.append(
            {
                "piece": f"synthetic-{seed}-{i}",
                "instruments": k,
                **transcription_scores(mixture.notes, est),
            }
        )
    return rows


def evaluate_bach10(
    model: nn.Module,
    root: str | None = None,
    device: str | torch.device | None = None,
    **decode_kw: object,
) -> list[dict]:
    """Score a model on the Bach10 pieces found under ``root`` (default: ``bach10_root()``).

    Returns
    -------
    list of dict
        Per piece: ``piece``, ``instruments`` (4) and ``FF``, ``FN``, ``FNO`` by
        :func:`timbrelab.metrics.bach10_scores`.

    Chapter: book/02_focal_loss_amt.md
    """
    from timbrelab.data.bach10 import list_pieces, load_piece

    rows = []
    for name in list_pieces(root):
        piece = load_piece(name, root)
        est = transcribe(model, piece.mix, device=device, **decode_kw)
        rows.append({"piece": name, "instruments": len(piece.parts), **piece.score(est)})
    return rows
