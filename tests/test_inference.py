from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from timbrelab.constants import FRAME_RATE, HOP_LENGTH, MIDI_MIN, SAMPLE_RATE
from timbrelab.inference import _chunk_plan, predict_posteriorgrams, transcribe
from timbrelab.models import build_model

PITCH = 60


class FrameProbe(nn.Module):
    """A 'model' whose logits depend only on the sample at each frame centre.

    Frame logit of MIDI 60 is +10 where that sample exceeds 0.5, onset logit +10 where it
    exceeds 0.9; everything else -10. Any misalignment of chunks shows up as moved notes.
    """

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        n_frames = 1 + audio.shape[1] // HOP_LENGTH
        centres = F.pad(audio, (0, HOP_LENGTH))[:, ::HOP_LENGTH][:, :n_frames]
        out = {}
        for key, level in (("frame", 0.5), ("onset", 0.9)):
            logits = torch.full((audio.shape[0], 88, n_frames), -10.0)
            logits[:, PITCH - MIDI_MIN] = torch.where(centres > level, 10.0, -10.0)
            out[key] = logits + self.dummy
        return out


def burst(seconds=3.0, start_s=0.7, stop_s=2.1):
    audio = np.zeros(round(seconds * SAMPLE_RATE), np.float32)
    start, stop = round(start_s * SAMPLE_RATE), round(stop_s * SAMPLE_RATE)
    audio[start:stop] = 0.7
    audio[start : start + HOP_LENGTH] = 1.0  # exactly one frame centre above the onset level
    return audio


def test_chunk_plan_tiles_the_frames_with_context():
    plan = _chunk_plan(1000, chunk_frames=300, margin=50)
    kept = np.concatenate([np.arange(a, b) for _, _, a, b in plan])
    assert np.array_equal(kept, np.arange(1000))
    for first, stop, keep_from, keep_to in plan:
        assert keep_from - first == min(50, keep_from)
        assert stop - keep_to == min(50, 1000 - keep_to)
        assert stop - first <= 300


@pytest.mark.parametrize("n_samples", [3 * SAMPLE_RATE, 20 * HOP_LENGTH, 20 * HOP_LENGTH + 7])
def test_stitching_is_exact_for_a_local_model(n_samples):
    audio = burst()[:n_samples]
    model = FrameProbe()
    whole = {
        k: torch.sigmoid(v[0]).detach().numpy()
        for k, v in model(torch.from_numpy(audio)[None]).items()
    }
    chunked = predict_posteriorgrams(model, audio, chunk_seconds=0.3, overlap_seconds=0.05)
    assert chunked.keys() == whole.keys()
    for key in whole:
        assert chunked[key].shape == (88, 1 + n_samples // HOP_LENGTH)
        np.testing.assert_array_equal(chunked[key], whole[key])


def test_chunked_matches_unchunked_for_a_real_network():
    # The models' input normalisations use clip-level statistics (EnergyNorm: the spread of
    # the frame energy over the clip; LogBatchNorm: the clip's min and max), so a chunk is
    # normalised on its own by design. Without that layer the network is local, and chunks
    # with an overlap wider than its receptive field (here the CQT kernels of the lowest
    # bin, 55 Hz: about 0.5 s either side) must stitch to the one-pass result.
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    t = np.arange(4 * SAMPLE_RATE) / SAMPLE_RATE
    audio = (0.05 * rng.standard_normal(t.size) + 0.3 * np.sin(2 * np.pi * 220 * t)).astype(
        np.float32
    )
    model = build_model("amt", harmonics=(2.0, 3.0)).train()
    model.frontend.norm = nn.Identity()
    whole = predict_posteriorgrams(model, torch.from_numpy(audio), chunk_seconds=60.0)
    chunked = predict_posteriorgrams(model, audio, chunk_seconds=2.4, overlap_seconds=0.8)
    assert model.training  # mode restored
    for key in ("frame", "onset"):
        assert chunked[key].shape == whole[key].shape == (88, 1 + audio.size // HOP_LENGTH)
        assert 0.0 <= chunked[key].min() and chunked[key].max() <= 1.0
        np.testing.assert_allclose(chunked[key], whole[key], rtol=1e-3, atol=1e-6)


def test_transcribe_finds_the_note_across_chunk_boundaries():
    (note,) = transcribe(FrameProbe(), burst(), chunk_seconds=0.5, overlap_seconds=0.1)
    assert note.pitch == PITCH
    assert note.onset == pytest.approx(0.7, abs=1 / FRAME_RATE)
    assert note.offset == pytest.approx(2.1, abs=1 / FRAME_RATE)
    # decoding options reach the decoder
    assert transcribe(FrameProbe(), burst(), min_note_seconds=2.0) == []


def test_bad_arguments():
    with pytest.raises(ValueError, match="1-D"):
        predict_posteriorgrams(FrameProbe(), np.zeros((2, 1000), np.float32))
    with pytest.raises(ValueError, match="overlap_seconds"):
        predict_posteriorgrams(FrameProbe(), burst(), chunk_seconds=1.0, overlap_seconds=0.5)
