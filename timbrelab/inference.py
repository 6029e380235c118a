"""Running a transcription model on recordings of any length.

A model sees a whole recording at once in training (a few seconds), but a user's file may be
an hour long. :func:`predict_posteriorgrams` cuts the audio into overlapping chunks, runs the
model on each and keeps only the centre of each chunk's output: frames near a chunk's edge see
a truncated context (zero padding instead of the neighbouring audio), frames in the centre see
the same context as in one long pass.

:func:`transcribe` takes a recording in memory; :func:`transcribe_file` reads a file block by
block, runs the same chunks, keeps the posteriorgrams in a temporary file and decodes them
piece by piece, so its memory stays bounded by the chunk length whatever the file's length.

One caveat: the models' input normalisations (EnergyNorm, Basic Pitch's LogBatchNorm) use
statistics of the whole clip they are given, so each chunk is normalised on its own, just as
each training clip was. The rest of the network is local, and stitches seamlessly.

Chapter: book/02_focal_loss_amt.md
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Iterable, Iterator

import numpy as np
import torch
from torch import nn

from timbrelab.constants import HOP_LENGTH, SAMPLE_RATE
from timbrelab.decode import posteriorgram_pieces_to_notes, posteriorgram_to_notes
from timbrelab.notes import Note

#: A chunk's frame ranges ``(first, stop, keep_from, keep_to)``: see :func:`_chunk_plan`.
_Chunk = tuple[int, int, int, int]


def _chunk_at(keep_from: int, n_frames: int, core: int, margin: int) -> _Chunk:
    """The chunk keeping ``core`` frames from ``keep_from`` (fewer at the end)."""
    keep_to = min(keep_from + core, n_frames)
    return max(keep_from - margin, 0), min(keep_to + margin, n_frames), keep_from, keep_to


def _chunk_plan(n_frames: int, chunk_frames: int, margin: int) -> list[_Chunk]:
    """``(first, stop, keep_from, keep_to)`` frame ranges: run frames ``first..stop-1``, keep
    ``keep_from..keep_to-1``. Kept ranges tile ``0..n_frames-1``; each has ``margin`` frames of
    context on both sides except at the ends of the recording."""
    core = chunk_frames - 2 * margin
    return [_chunk_at(keep_from, n_frames, core, margin) for keep_from in range(0, n_frames, core)]


def _chunk_sizes(
    chunk_seconds: float, overlap_seconds: float, sample_rate: int, hop_length: int
) -> tuple[int, int]:
    """``(chunk_frames, margin)`` for chunk and overlap lengths in seconds, checked."""
    chunk_frames = round(chunk_seconds * sample_rate / hop_length)
    margin = round(overlap_seconds * sample_rate / hop_length)
    if margin < 0 or chunk_frames - 2 * margin < 1:
        raise ValueError(
            f"chunk_seconds ({chunk_seconds}) must be longer than twice overlap_seconds "
            f"({overlap_seconds}), and overlap_seconds must be >= 0"
        )
    return chunk_frames, margin


def _stream_chunks(
    blocks: Iterable[np.ndarray], chunk_frames: int, margin: int, hop_length: int
) -> Iterator[tuple[np.ndarray, _Chunk]]:
    """``(samples, chunk)`` for the chunks :func:`_chunk_plan` makes of audio arriving in blocks.

    The recording's length is known only at its end, but a chunk whose last frame the audio
    has reached does not depend on it: it is the chunk the plan of the whole recording has.
    About one chunk of audio is held at a time.
    """
    core = chunk_frames - 2 * margin
    blocks = iter(blocks)
    held, held_from = np.zeros(0, np.float32), 0  # samples held_from .. held_from + len(held) - 1
    keep_from, ended = 0, False
    while True:
        needed = (keep_from + core + margin) * hop_length  # the samples of a full chunk
        while not ended and held_from + held.size < needed:
            block = next(blocks, None)
            if block is None:
                ended = True
            else:
                held = np.concatenate([held, np.asarray(block, np.float32)])
        # the number of frames once ended; before, a lower bound past this chunk's last frame
        n_frames = 1 + (held_from + held.size) // hop_length
        if keep_from >= n_frames:
            return
        chunk = _chunk_at(keep_from, n_frames, core, margin)
        first, stop, _, keep_to = chunk
        yield held[first * hop_length - held_from : stop * hop_length - held_from], chunk
        keep_from = keep_to
        drop = max(keep_from - margin, 0) * hop_length - held_from  # before the next chunk
        held, held_from = held[drop:], held_from + drop


@contextlib.contextmanager
def _evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode and torch in inference mode for the block; yields the module to
    run (an eval-only twin when the model has one: BasicAMT's is about 3x faster on a CPU).
    The model's train/eval mode is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield model.for_inference() if hasattr(model, "for_inference") else model
    finally:
        model.train(was_training)


def _run_chunk(
    runner: nn.Module,
    samples: torch.Tensor,
    chunk: _Chunk,
    device: str | torch.device,
    hop_length: int,
) -> dict[str, np.ndarray]:
    """Probabilities ``(C, keep_to - keep_from)`` of the frames a chunk keeps.

    Frame ``t`` is centred on sample ``t * hop``, so frames ``first..stop-1`` come from the
    samples from ``first * hop`` on (the last chunk takes the audio to its end).
    """
    first, stop, keep_from, keep_to = chunk
    outputs = runner(samples.to(device).unsqueeze(0))
    kept = {}
    for key, logits in outputs.items():
        if logits.shape[-1] < stop - first:
            raise ValueError(
                f"model output {key!r} has {logits.shape[-1]} frames for "
                f"{samples.shape[0]} samples; expected 1 + N // {hop_length}"
            )
        probs = torch.sigmoid(logits[0, ..., keep_from - first : keep_to - first].float())
        kept[key] = probs.cpu().numpy()
    return kept


def _model_device(model: nn.Module, device: str | torch.device | None) -> str | torch.device:
    """``device``, or where the model's parameters are when it is None."""
    return next(model.parameters(), torch.empty(0)).device if device is None else device


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
    docstring). The model's working memory grows with the chunk length; the audio and the
    posteriorgrams, held whole, with the recording (:func:`transcribe_file` holds neither).

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
    chunk_frames, margin = _chunk_sizes(chunk_seconds, overlap_seconds, sample_rate, hop_length)
    device = _model_device(model, device)
    n_frames = 1 + audio.shape[0] // hop_length
    result: dict[str, np.ndarray] = {}
    with _evaluating(model) as runner:
        for chunk in _chunk_plan(n_frames, chunk_frames, margin):
            first, stop, keep_from, keep_to = chunk
            samples = audio[first * hop_length : stop * hop_length]
            for key, probs in _run_chunk(runner, samples, chunk, device, hop_length).items():
                if key not in result:
                    result[key] = np.empty((*probs.shape[:-1], n_frames), np.float32)
                result[key][..., keep_from:keep_to] = probs
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


class _PosteriorgramSpool:
    """``(frame, onset)`` posteriorgram pieces kept in a temporary file, read back in order.

    An hour of 88-pitch frame and onset posteriorgrams takes 0.2 GB: on disk rather than in
    memory. Iterating reads the pieces back one at a time, from the start each time.
    """

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()
        self._pieces: list[tuple[int, tuple[int, ...]]] = []  # (byte offset, shape) of each

    def append(self, frame: np.ndarray, onset: np.ndarray) -> None:
        offset = self._file.seek(0, os.SEEK_END)
        for probs in (frame, onset):
            np.ascontiguousarray(probs, np.float32).tofile(self._file)
        self._pieces.append((offset, frame.shape))

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for offset, shape in self._pieces:
            self._file.seek(offset)
            frame, onset = np.fromfile(self._file, np.float32, 2 * math.prod(shape)).reshape(
                2, *shape
            )
            yield frame, onset

    def __enter__(self) -> _PosteriorgramSpool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._file.close()


def transcribe_file(
    model: nn.Module,
    path: str | os.PathLike,
    chunk_seconds: float = 30.0,
    overlap_seconds: float = 2.0,
    device: str | torch.device | None = None,
    sample_rate: int = SAMPLE_RATE,
    hop_length: int = HOP_LENGTH,
    **decode_kw: object,
) -> list[Note]:
    """Transcribe an audio file of any length in bounded memory.

    The notes of ``transcribe(model, load_audio(path, sample_rate), ...)``, computed without
    holding the recording or its posteriorgrams in memory:

    1. :func:`timbrelab.audio.stream_audio` checks the file (as ``load_audio`` does, before
       the model runs) and reads it in blocks;
    2. the model runs on the chunks of :func:`predict_posteriorgrams`, cut from the blocks as
       they come, so the posteriorgrams are the same, frame for frame; they go to a
       temporary file (0.2 GB per hour of audio, deleted on return);
    3. :func:`timbrelab.decode.posteriorgram_pieces_to_notes` decodes them piece by piece,
       cutting at pauses where the notes cannot differ from decoding everything at once
       (after ``max_segment_seconds`` without one, 300 s by default, it cuts anyway).

    Peak memory is that of one chunk in the model plus at most ``max_segment_seconds`` of
    posteriorgrams in the decoder, whatever the file's length (with the shipped model on a
    CPU, about 0.47 GB for a minute and for an hour of 44.1 kHz stereo alike).

    Parameters
    ----------
    model, chunk_seconds, overlap_seconds, device, sample_rate, hop_length
        As in :func:`predict_posteriorgrams`.
    path : str or PathLike
        Any audio file :func:`timbrelab.audio.load_audio` reads.
    **decode_kw
        Passed to :func:`timbrelab.decode.posteriorgram_pieces_to_notes`: the options of
        :func:`timbrelab.decode.posteriorgram_to_notes` (``onset_threshold``,
        ``frame_threshold``, ...) and ``max_segment_seconds``.

    Returns
    -------
    list of Note
        Sorted, with ``source=None`` (the model is timbre-agnostic).

    Raises
    ------
    timbrelab.audio.AudioError
        A file ``load_audio`` refuses; the message names it.

    Chapter: book/02_focal_loss_amt.md
    """
    from timbrelab.audio import stream_audio

    chunk_frames, margin = _chunk_sizes(chunk_seconds, overlap_seconds, sample_rate, hop_length)
    blocks = stream_audio(path, sample_rate)  # refuses a bad file before the model runs
    device = _model_device(model, device)
    with _PosteriorgramSpool() as spool:
        with _evaluating(model) as runner:
            for samples, chunk in _stream_chunks(blocks, chunk_frames, margin, hop_length):
                probs = _run_chunk(runner, torch.from_numpy(samples), chunk, device, hop_length)
                spool.append(probs["frame"], probs["onset"])
        return posteriorgram_pieces_to_notes(
            spool, frame_rate=sample_rate / hop_length, **decode_kw
        )
