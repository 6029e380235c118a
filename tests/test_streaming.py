"""Streaming transcription: files read in blocks, posteriorgrams decoded in pieces.

Each stage must give what the in-memory path gives: ``stream_audio`` the samples of
``load_audio``, the streamed chunks those of ``predict_posteriorgrams``, the piecewise decoder
the notes of ``posteriorgram_to_notes`` (wherever it cuts at a pause), and so
``transcribe_file`` the notes of ``transcribe(model, load_audio(path))``.
"""

from __future__ import annotations

import inspect
import sys

import numpy as np
import pytest
import soundfile

import timbrelab.audio as audio_module
from timbrelab import pretrained
from timbrelab.audio import AudioError, load_audio, stream_audio, write_wav
from timbrelab.constants import SAMPLE_RATE
from timbrelab.data.bach10 import BACH10_ENV, bach10_root, list_pieces
from timbrelab.data.mixtures import make_mixture
from timbrelab.decode import posteriorgram_pieces_to_notes, posteriorgram_to_notes
from timbrelab.decode import transcription as decode
from timbrelab.inference import _chunk_plan, _stream_chunks, transcribe, transcribe_file


def noise(seconds: float, rate: int, channels: int, amp: float = 0.3, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (amp * rng.standard_normal((round(seconds * rate), channels))).astype(np.float32)


# --- stream_audio ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "channels", "subtype", "amp"),
    [
        (22050, 1, "PCM_16", 0.3),  # the model's rate: no resampling
        (44100, 2, "PCM_16", 0.3),  # stereo 44.1 kHz -> mono 22.05 kHz
        (48000, 3, "FLOAT", 2.0),  # louder than full scale: scaled by the whole file's peak
        (16000, 1, "PCM_24", 0.3),  # upsampled
    ],
)
def test_streamed_blocks_are_load_audio_samples(tmp_path, rate, channels, subtype, amp):
    path = tmp_path / "x.wav"
    soundfile.write(path, noise(2.3, rate, channels, amp), rate, subtype=subtype)
    whole = load_audio(path)
    blocks = list(stream_audio(path, block_seconds=0.37))  # not a divisor of the length
    assert len(blocks) > 5 and all(b.dtype == np.float32 and b.ndim == 1 for b in blocks)
    # soxr's streaming resampler computes exactly what its one-shot resampler does
    np.testing.assert_array_equal(np.concatenate(blocks), whole)


def test_resampler_stream_is_exact_with_any_blocks():
    # blocks of awkward sizes, an empty one and a single sample included
    x = noise(3.0, 44100, 1)[:, 0]
    blocks = np.split(x, np.cumsum([1, 7, 4410, 0, 3, 10000, 100000]))
    streamed = np.concatenate(list(audio_module._resample_blocks(blocks, 44100, 22050)))
    np.testing.assert_array_equal(streamed, audio_module.resample(x, 44100, 22050))


def test_streamed_rate_and_options_follow_load_audio(tmp_path):
    path = tmp_path / "quiet.wav"
    soundfile.write(path, np.zeros((8000, 2), np.float32), 8000)
    expected = load_audio(path, 16000, allow_silent=True)
    streamed = np.concatenate(list(stream_audio(path, 16000, allow_silent=True, block_seconds=0.1)))
    np.testing.assert_array_equal(streamed, expected)


def _bad_files(tmp_path):
    """(file, options) that load_audio refuses, one per check."""
    (tmp_path / "dir.wav").mkdir()
    (tmp_path / "empty.wav").touch()
    (tmp_path / "text.wav").write_text("a shopping list, not a recording\n" * 20)
    soundfile.write(tmp_path / "silent.wav", np.zeros(22050, np.float32), 22050)
    soundfile.write(tmp_path / "short.wav", noise(0.01, 22050, 1), 22050)
    nan = noise(0.5, 8000, 2)
    nan[3000, 1] = np.nan
    soundfile.write(tmp_path / "nan.wav", nan, 8000, subtype="FLOAT")
    soundfile.write(tmp_path / "long.wav", noise(2.0, 8000, 1), 8000)
    soundfile.write(tmp_path / "cut.flac", noise(2.0, 44100, 2), 44100)
    flac = (tmp_path / "cut.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(flac[: len(flac) // 2])  # the header, half the frames
    return [
        (tmp_path / "missing.wav", {}),
        (tmp_path / "dir.wav", {}),
        (tmp_path / "empty.wav", {}),
        (tmp_path / "text.wav", {}),
        (tmp_path / "silent.wav", {}),
        (tmp_path / "short.wav", {}),
        (tmp_path / "nan.wav", {}),
        (tmp_path / "long.wav", {"max_seconds": 1.0}),
        (tmp_path / "cut.flac", {}),
    ]


def test_bad_files_are_refused_like_load_audio_before_any_block(tmp_path):
    for path, options in _bad_files(tmp_path):
        with pytest.raises(AudioError) as expected:
            load_audio(path, **options)
        # raised by the call itself, not later by the iterator
        with pytest.raises(AudioError) as streamed:
            stream_audio(path, **options, block_seconds=0.1)
        assert str(streamed.value) == str(expected.value)
        assert path.name in str(streamed.value)


def test_without_soxr_a_resampled_file_is_loaded_whole(tmp_path, monkeypatch):
    path = tmp_path / "x.wav"
    soundfile.write(path, noise(1.0, 44100, 2), 44100)
    monkeypatch.setitem(sys.modules, "soxr", None)  # makes `import soxr` raise ImportError
    (block,) = stream_audio(path)
    np.testing.assert_array_equal(block, load_audio(path))  # load_audio's scipy fallback


def test_bad_block_length():
    with pytest.raises(ValueError, match="block_seconds"):
        stream_audio("any.wav", block_seconds=0)


# --- chunks of a stream ------------------------------------------------------------------------


@pytest.mark.parametrize("n_samples", [1, 255, 256, 5000, 12345, 40000])
@pytest.mark.parametrize("block", [1000, 4096, 50000])
def test_streamed_chunks_follow_the_chunk_plan(n_samples, block):
    hop, chunk_frames, margin = 256, 40, 6
    audio = np.arange(n_samples, dtype=np.float32)
    blocks = (audio[i : i + block] for i in range(0, n_samples, block))
    streamed = list(_stream_chunks(blocks, chunk_frames, margin, hop))
    plan = _chunk_plan(1 + n_samples // hop, chunk_frames, margin)
    assert [chunk for _, chunk in streamed] == plan
    for samples, (first, stop, _, _) in streamed:
        np.testing.assert_array_equal(samples, audio[first * hop : stop * hop])


# --- decoding in pieces ------------------------------------------------------------------------


def phrases(seed: int, n_pitches: int = 12, n_frames: int = 3000):
    """Posteriorgrams of phrases of overlapping notes (with dips, stray onsets and background
    energy below the threshold) separated by pauses of 10-40 frames; some pauses hold an
    onset peak."""
    rng = np.random.default_rng(seed)
    size = n_frames + 400  # room for the last phrase, cropped at the end
    frames = (0.25 * rng.random((n_pitches, size))).astype(np.float32)
    onsets = (0.4 * rng.random((n_pitches, size)) ** 4).astype(np.float32)
    t = 0
    while t < n_frames:
        phrase_end = t + int(rng.integers(50, 250))
        while t < phrase_end:
            row, length = int(rng.integers(n_pitches)), int(rng.integers(3, 80))
            frames[row, t : t + length] = rng.uniform(0.3, 1.0, length)
            dip = t + int(rng.integers(0, length))
            frames[row, dip : dip + int(rng.integers(1, 14))] = 0.1
            onsets[row, t] = rng.uniform(0.3, 1.0)
            t += int(rng.integers(1, 20))
        pause = int(rng.integers(10, 40))
        frames[:, t : t + pause] = 0.05
        if rng.random() < 0.5:  # a rising onset in the pause: its peak is on its second frame
            rise = t + int(rng.integers(0, pause - 1))
            onsets[int(rng.integers(n_pitches)), rise : rise + 2] = (0.7, 0.9)
        t += pause
    return frames[:, :n_frames], onsets[:, :n_frames]


@pytest.fixture
def segments(monkeypatch):
    """Lengths of the segments the piecewise decoder decodes, in order."""
    lengths = []
    notes_of = decode._notes_of

    def decode_segment(frames, *args):
        lengths.append(frames.shape[1])
        return notes_of(frames, *args)

    monkeypatch.setattr(decode, "_notes_of", decode_segment)
    return lengths


def pieces_of(frames, onsets, sizes):
    edges = np.cumsum([0, *sizes])
    edges = edges[edges < frames.shape[1]].tolist() + [frames.shape[1]]
    return [(frames[:, a:b], onsets[:, a:b]) for a, b in zip(edges[:-1], edges[1:], strict=True)]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize(
    "options",
    [{}, {"min_note_seconds": 0.0}, {"infer_onsets": False}, {"melodia_trick": False}],
)
def test_pieces_decode_to_the_whole_posteriorgrams_notes(seed, options, segments):
    frames, onsets = phrases(seed)
    sizes = np.random.default_rng(seed).integers(1, 400, size=100)
    # at most 8 s held: far shorter than the recording, longer than any phrase
    pieces = posteriorgram_pieces_to_notes(
        pieces_of(frames, onsets, sizes), max_segment_seconds=8.0, **options
    )
    assert len(segments) > 5  # it did cut, at pauses
    assert pieces == posteriorgram_to_notes(frames, onsets, **options)


def test_a_cut_needs_a_long_enough_pause_without_onsets():
    rules = decode._NoteRules(86.0, 0.5, 0.3, 0.058, 11, True, 21)
    frames = np.full((4, 200), 0.6, np.float32)
    onsets = np.zeros_like(frames)
    frames[:, 100:121] = 0.0  # 21 quiet frames: one short of 2 x 11
    assert decode._next_cut(frames, onsets, rules, max_frames=1000) is None
    frames[:, 121] = 0.0  # 22: the cut falls in the middle
    assert decode._next_cut(frames, onsets, rules, max_frames=1000) == 111
    onsets[2, 110] = 0.9  # an onset peak next to the cut
    assert decode._next_cut(frames, onsets, rules, max_frames=1000) is None
    # past max_frames it cuts anyway, at the quietest frame without an onset next to it
    assert decode._next_cut(frames, onsets, rules, max_frames=200) == 112


def test_without_pauses_a_long_note_is_cut_at_max_segment_seconds():
    # the documented difference: a note longer than max_segment_seconds, with no pause, is
    # split where the frames are cut (a part shorter than min_note_seconds is dropped)
    frames = np.zeros((3, 1000), np.float32)
    frames[1, 100:900] = 0.8
    onsets = np.zeros_like(frames)
    onsets[1, 100] = 0.9
    (whole,) = posteriorgram_to_notes(frames, onsets)
    parts = posteriorgram_pieces_to_notes(
        pieces_of(frames, onsets, [128] * 8), max_segment_seconds=3.0
    )
    assert len(parts) > 1 and {n.pitch for n in parts} == {whole.pitch}
    assert whole.onset <= parts[0].onset < whole.onset + 0.058
    assert parts[-1].offset == whole.offset
    assert all(a.offset == b.onset for a, b in zip(parts[:-1], parts[1:], strict=True))


def test_piece_decoder_defaults_are_posteriorgram_to_notes_defaults():
    whole = inspect.signature(posteriorgram_to_notes).parameters
    pieces = inspect.signature(posteriorgram_pieces_to_notes).parameters
    for name in list(whole)[2:]:
        assert pieces[name].default == whole[name].default, name


def test_piece_decoder_arguments():
    frames, onsets = phrases(0, n_frames=300)
    with pytest.raises(TypeError, match="read twice"):
        posteriorgram_pieces_to_notes(iter([(frames, onsets)]))
    with pytest.raises(ValueError, match="max_segment_seconds"):
        posteriorgram_pieces_to_notes([(frames, onsets)], max_segment_seconds=0.2)
    with pytest.raises(ValueError, match="must match"):
        posteriorgram_pieces_to_notes([(frames, onsets[:, :-1])])
    assert posteriorgram_pieces_to_notes([]) == []


# --- transcribe_file -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model():
    return pretrained.load("amt")


@pytest.fixture(scope="module")
def long_mixture():
    """70 s of music (three mixtures end to end): crosses the 30 s chunks' boundaries."""
    return np.concatenate([make_mixture(k, 70 / 3, seed=(21, k)).audio for k in (1, 2, 4)])


def test_transcribe_file_matches_transcribe_across_chunks(tmp_path, model, long_mixture):
    path = tmp_path / "long.wav"
    write_wav(path, long_mixture, SAMPLE_RATE)
    expected = transcribe(model, load_audio(path))
    assert len(expected) > 100
    assert transcribe_file(model, path) == expected


def test_transcribe_file_matches_transcribe_on_stereo_44k(tmp_path, model):
    mix = make_mixture(3, 8.0, seed=(22, 0), sample_rate=44100).audio
    path = tmp_path / "stereo.wav"
    write_wav(path, np.stack([mix, 0.5 * np.roll(mix, 441)]), 44100)
    options = {"frame_threshold": 0.4, "chunk_seconds": 5.0, "overlap_seconds": 1.0}
    expected = transcribe(model, load_audio(path), **options)
    assert len(expected) > 10
    assert transcribe_file(model, path, **options) == expected


def test_transcribe_file_refuses_a_bad_file_before_running_the_model(tmp_path):
    def never_run(*args):
        raise AssertionError("ran the model on a bad file")

    (tmp_path / "empty.wav").touch()
    with pytest.raises(AudioError, match=r"empty\.wav: empty file"):
        transcribe_file(never_run, tmp_path / "empty.wav")


def test_transcribe_file_matches_transcribe_on_bach10(model, segments):
    root = bach10_root()
    if root is None or not list_pieces(root):
        pytest.skip(f"Bach10 data not found (set ${BACH10_ENV})")
    for name in list_pieces(root):
        path = root / name / f"{name}.wav"
        expected = transcribe(model, load_audio(path))
        assert len(expected) > 50, name
        segments.clear()
        assert transcribe_file(model, path) == expected, name
        assert len(segments) > 1, name  # cut at the chorales' pauses
