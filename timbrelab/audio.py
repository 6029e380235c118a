"""Loading and writing audio: any file, any sample rate, any channel count -> mono float32.

Every model in the book reads ``(N,)`` float32 audio in ``[-1, 1]`` at a fixed rate (22 050 Hz
for the CQT models, 16 kHz for the STFT models). :func:`load_audio` gets any readable file
there and refuses, with a message naming the file, what would only produce garbage later:
missing, empty, corrupt, non-audio, too short, too long or silent files. :func:`stream_audio`
gives the same samples block by block, for recordings too long to hold in memory.

Chapter: book/01_cqt_features.md
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from timbrelab.constants import SAMPLE_RATE
from timbrelab.io import atomic_output

#: Peak amplitude below which a file counts as silent (about -100 dBFS; 16-bit audio's
#: smallest step is 3e-5).
SILENCE_PEAK = 1e-5


@contextlib.contextmanager
def _audioread_open(path: Path):
    """Open a file with audioread, the fallback decoder (ffmpeg, GStreamer, ... when installed)."""
    import audioread

    with warnings.catch_warnings():
        # its stdlib backend imports aifc/audioop/sunau, deprecated since Python 3.11
        warnings.simplefilter("ignore", DeprecationWarning)
        with audioread.audio_open(str(path)) as f:
            yield f


def resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Band-limited resampling of ``audio (..., N)`` from ``rate`` to ``target`` Hz: soxr's HQ
    filter (what ``librosa.resample`` uses by default). The same rate returns ``audio``.

    Chapter: book/01_cqt_features.md
    """
    if rate == target:
        return np.asarray(audio, dtype=np.float32)
    try:
        import soxr
    except ImportError:  # soxr comes with librosa >= 0.10; scipy's polyphase filter otherwise
        from scipy.signal import resample_poly

        g = math.gcd(rate, target)
        return resample_poly(audio, target // g, rate // g).astype(np.float32)
    return soxr.resample(audio, rate, target, quality="HQ")


class AudioError(ValueError):
    """An audio file that cannot be used; the message names the file and the problem.

    Chapter: book/01_cqt_features.md
    """


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says, before decoding it.

    Chapter: book/01_cqt_features.md
    """

    sample_rate: int
    n_samples: int
    channels: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.n_samples / self.sample_rate


def _check_file(path: Path) -> None:
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Read sample rate, length and channel count from a file's header without decoding it.

    Tries ``soundfile`` (WAV, FLAC, OGG, MP3, AIFF, ...) and then ``audioread`` (whatever its
    backends, e.g. ffmpeg, can open).

    Raises
    ------
    AudioError
        The file is missing, a directory, empty, or not audio any reader understands.

    Chapter: book/01_cqt_features.md
    """
    import soundfile

    path = Path(path)
    _check_file(path)
    try:
        info = soundfile.info(str(path))
        return AudioInfo(int(info.samplerate), int(info.frames), int(info.channels))
    except Exception as sf_error:  # libsndfile raises several types; any means "try audioread"
        try:
            with _audioread_open(path) as f:
                n_samples = round(f.duration * f.samplerate)
                return AudioInfo(int(f.samplerate), n_samples, int(f.channels))
        except Exception:
            raise AudioError(
                f"{path}: not a readable audio file (corrupt or unsupported format: {sf_error})"
            ) from sf_error


def audio_duration(path: str | os.PathLike) -> float:
    """Length of an audio file in seconds, from its header.

    Chapter: book/01_cqt_features.md
    """
    return audio_info(path).duration


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """Decode the whole file to ``(channels, N)`` float32 at its own rate."""
    import soundfile

    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        return data.T, int(rate)
    except Exception as sf_error:
        try:
            with _audioread_open(path) as f:
                rate, channels = int(f.samplerate), int(f.channels)
                pcm = b"".join(f)  # audioread yields 16-bit little-endian interleaved PCM
            samples = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768.0
            return samples.reshape(-1, channels).T, rate
        except Exception:
            raise AudioError(f"{path}: cannot decode the audio ({sf_error})") from sf_error


# --- checks and steps shared by load_audio and stream_audio --------------------------------


def _check_header(path: Path, sample_rate: int, max_seconds: float | None) -> AudioInfo:
    """The checks made before decoding: a valid output rate, a readable file, not too long."""
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
    info = audio_info(path)
    if max_seconds is not None and info.duration > max_seconds:
        raise AudioError(
            f"{path}: too long ({info.duration:.1f} s; at most {max_seconds:g} s allowed)"
        )
    return info


def _check_samples(
    path: Path,
    duration: float,
    finite: bool,
    peak: float,
    min_seconds: float,
    allow_silent: bool,
) -> None:
    """The checks that need every sample: long enough, no NaN/inf, not silent."""
    if duration < min_seconds:
        raise AudioError(f"{path}: too short ({duration:.3f} s; at least {min_seconds:g} s needed)")
    if not finite:
        raise AudioError(f"{path}: contains NaN or infinite samples")
    if peak < SILENCE_PEAK and not allow_silent:
        raise AudioError(
            f"{path}: silent (peak amplitude {peak:.1e}); pass allow_silent=True to accept it"
        )


def _to_mono(data: np.ndarray) -> np.ndarray:
    """``(C, n)`` -> ``(n,)`` float32: the mean of the channels."""
    return data.mean(axis=0, dtype=np.float32)


def _peak(audio: np.ndarray) -> float:
    """Largest absolute sample (0 for no samples)."""
    return float(np.max(np.abs(audio))) if audio.size else 0.0


def _below_full_scale(audio: np.ndarray, peak: float) -> np.ndarray:
    """Scale audio whose peak (of the whole file) exceeds 1 to peak 1: clipping would distort it."""
    return audio / peak if peak > 1.0 else audio


def _clip(audio: np.ndarray) -> np.ndarray:
    """Clip the small overshoot resampling can add; float32."""
    return np.clip(audio, -1.0, 1.0).astype(np.float32, copy=False)


def load_audio(
    path: str | os.PathLike,
    sample_rate: int = SAMPLE_RATE,
    min_seconds: float = 0.1,
    allow_silent: bool = False,
    max_seconds: float | None = None,
) -> np.ndarray:
    """Load an audio file as mono float32 in ``[-1, 1]`` at ``sample_rate``.

    Channels are averaged; other rates are resampled with soxr's high-quality filter (the same
    as ``librosa.resample(res_type="soxr_hq")``, without importing librosa). A float file whose
    peak exceeds 1 is scaled to peak 1 (clipping would distort it); the small overshoot
    resampling can add is clipped.

    Parameters
    ----------
    path : str or PathLike
        Any file ``soundfile`` (WAV, FLAC, OGG, MP3, AIFF, ...) or ``audioread`` can read.
    sample_rate : int
        Output rate in Hz.
    min_seconds : float
        Shorter files are refused.
    allow_silent : bool
        Accept files whose peak is below ``SILENCE_PEAK`` (refused by default: a silent input
        is almost always a mistake, and transcribing it yields nothing).
    max_seconds : float or None
        Longer files are refused, checked from the header before decoding.

    Returns
    -------
    audio : (N,) float32
        ``N = round(duration * sample_rate)``.

    Raises
    ------
    AudioError
        The file is missing, a directory, empty, corrupt or not audio, holds NaN/inf samples,
        or is too short, too long or silent. The message names the file.

    Chapter: book/01_cqt_features.md
    """
    path = Path(path)
    _check_header(path, sample_rate, max_seconds)
    data, rate = _decode(path)
    audio = _to_mono(data)
    peak = _peak(audio)
    _check_samples(
        path, data.shape[1] / rate, bool(np.isfinite(data).all()), peak, min_seconds, allow_silent
    )
    audio = _below_full_scale(audio, peak)
    if rate != sample_rate:
        audio = resample(audio, rate, sample_rate)
    return _clip(audio)


def _soundfile_blocks(path: Path, block_frames: int) -> Iterator[np.ndarray]:
    """The file's samples as ``(C, n)`` float32 blocks of ``block_frames`` frames, by libsndfile."""
    import soundfile

    try:
        with soundfile.SoundFile(str(path)) as f:
            for block in f.blocks(block_frames, dtype="float32", always_2d=True):
                yield block.T
    except soundfile.SoundFileError as err:
        raise AudioError(f"{path}: cannot decode the audio ({err})") from err


def _resample_blocks(blocks: Iterable[np.ndarray], rate: int, target: int) -> Iterator[np.ndarray]:
    """Resample a stream of mono blocks with soxr's streaming resampler.

    Concatenated, the output equals :func:`resample` of the concatenated input, sample for
    sample: the stream keeps the filter's state (its latency) between blocks, and flushes it
    at the end.
    """
    if rate == target:
        yield from blocks
        return
    import soxr

    stream = soxr.ResampleStream(rate, target, 1, dtype="float32", quality="HQ")
    for block in blocks:
        yield stream.resample_chunk(block)
    yield stream.resample_chunk(np.zeros(0, np.float32), last=True)


def _streamable(path: Path, resampling: bool) -> bool:
    """Whether :func:`stream_audio` can read ``path`` block by block: libsndfile reads it, and
    soxr (for its streaming resampler) is installed if the rate changes."""
    import soundfile

    try:
        soundfile.info(str(path))
        if resampling:
            import soxr  # noqa: F401
    except Exception:  # libsndfile raises several types; soxr an ImportError
        return False
    return True


def _scan(path: Path, block_frames: int) -> tuple[int, bool, float] | None:
    """First pass of :func:`stream_audio`: the number of samples, whether all are finite, and
    the peak of the channels' mean; None when libsndfile fails to decode the whole file."""
    n_samples, finite, peak = 0, True, 0.0
    try:
        for data in _soundfile_blocks(path, block_frames):
            n_samples += data.shape[1]
            finite = finite and bool(np.isfinite(data).all())
            peak = max(peak, _peak(_to_mono(data)))
    except AudioError:
        return None
    return n_samples, finite, peak


def stream_audio(
    path: str | os.PathLike,
    sample_rate: int = SAMPLE_RATE,
    min_seconds: float = 0.1,
    allow_silent: bool = False,
    max_seconds: float | None = None,
    block_seconds: float = 10.0,
) -> Iterator[np.ndarray]:
    """:func:`load_audio` block by block: memory stays bounded however long the file is.

    The file is read twice. A first pass decodes it block by block and keeps three facts:
    its length, whether all samples are finite, and its peak. That is enough for every check
    ``load_audio`` makes, so a bad file is refused by this call, before any block is returned;
    and the peak is what scaling a loud float file needs before its first block. The second
    pass decodes again, averages the channels, scales, resamples (soxr's streaming resampler,
    exact) and clips, a block at a time.

    Concatenated, the blocks equal ``load_audio(path, sample_rate, min_seconds, allow_silent,
    max_seconds)`` sample for sample. A file only ``audioread`` can decode (a format libsndfile
    does not read, or fails to decode to its end), or a rate change without soxr installed, is
    loaded whole by ``load_audio`` and returned as a single block.

    Parameters
    ----------
    path, sample_rate, min_seconds, allow_silent, max_seconds
        As in :func:`load_audio`.
    block_seconds : float
        Length of the blocks read from the file, in seconds of the file's own rate.

    Returns
    -------
    iterator of (n,) float32
        Mono blocks in ``[-1, 1]`` at ``sample_rate``, in order; their lengths vary (the
        resampler's latency makes the first one shorter).

    Raises
    ------
    AudioError
        As :func:`load_audio`, raised by this call rather than while iterating.

    Chapter: book/01_cqt_features.md
    """
    path = Path(path)
    if block_seconds <= 0:
        raise ValueError(f"block_seconds must be > 0, got {block_seconds}")
    rate = _check_header(path, sample_rate, max_seconds).sample_rate
    block_frames = max(1, round(block_seconds * rate))
    facts = _scan(path, block_frames) if _streamable(path, rate != sample_rate) else None
    if facts is None:  # what only load_audio reads (audioread, scipy's resampler): whole
        return iter([load_audio(path, sample_rate, min_seconds, allow_silent, max_seconds)])
    n_samples, finite, peak = facts
    _check_samples(path, n_samples / rate, finite, peak, min_seconds, allow_silent)
    mono = (
        _below_full_scale(_to_mono(data), peak) for data in _soundfile_blocks(path, block_frames)
    )
    return (_clip(block) for block in _resample_blocks(mono, rate, sample_rate) if block.size)


def write_wav(
    path: str | os.PathLike, audio: np.ndarray, sample_rate: int, subtype: str = "PCM_16"
) -> None:
    """Write audio to a WAV file atomically (temporary file in the same folder, then rename).

    Parameters
    ----------
    path : str or PathLike
        Output file; its folder must exist.
    audio : (N,) or (C, N) array
        Samples in ``[-1, 1]``; integer subtypes saturate values outside (libsndfile).
    sample_rate : int
        Rate in Hz.
    subtype : str
        ``soundfile`` subtype: ``"PCM_16"``, ``"PCM_24"``, ``"FLOAT"``, ...

    Raises
    ------
    ValueError
        Audio that is not 1-D/2-D, non-finite, or a bad sample rate.
    OSError
        The folder is missing or not writable; the message names ``path``.

    Chapter: book/01_cqt_features.md
    """
    import soundfile

    path = Path(path)
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim not in (1, 2):
        raise ValueError(f"{path}: audio must be (N,) or (C, N), got shape {audio.shape}")
    if not np.isfinite(audio).all():
        raise ValueError(f"{path}: audio contains NaN or infinite samples")
    if sample_rate <= 0:
        raise ValueError(f"{path}: sample_rate must be > 0, got {sample_rate}")
    with atomic_output(path) as tmp:
        soundfile.write(str(tmp), audio.T, sample_rate, subtype=subtype, format="WAV")
