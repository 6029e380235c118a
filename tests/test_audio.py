from __future__ import annotations

import sys

import numpy as np
import pytest
import soundfile

import timbrelab.audio as audio_module
from timbrelab.audio import AudioError, audio_duration, audio_info, load_audio, write_wav


def sine(seconds: float, rate: int, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_freq(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


# --- bad inputs: each one refused with a message naming the file and the problem -----------


def test_missing_file(tmp_path) -> None:
    with pytest.raises(AudioError, match=r"nope\.wav: no such file"):
        load_audio(tmp_path / "nope.wav")


def test_directory(tmp_path) -> None:
    (tmp_path / "dir.wav").mkdir()
    with pytest.raises(AudioError, match=r"dir\.wav: is a directory"):
        load_audio(tmp_path / "dir.wav")


def test_empty_file(tmp_path) -> None:
    (tmp_path / "empty.wav").touch()
    with pytest.raises(AudioError, match=r"empty\.wav: empty file \(0 bytes\)"):
        load_audio(tmp_path / "empty.wav")


def test_text_file_named_wav(tmp_path) -> None:
    (tmp_path / "text.wav").write_text("this is a shopping list, not a recording\n" * 20)
    with pytest.raises(AudioError, match=r"text\.wav: not a readable audio file"):
        load_audio(tmp_path / "text.wav")


def test_random_bytes(tmp_path) -> None:
    (tmp_path / "noise.wav").write_bytes(np.random.default_rng(0).bytes(3000))
    with pytest.raises(AudioError, match=r"noise\.wav: not a readable audio file"):
        load_audio(tmp_path / "noise.wav")


def test_silent_file(tmp_path) -> None:
    path = tmp_path / "silent.wav"
    soundfile.write(path, np.zeros(22050, np.float32), 22050)
    with pytest.raises(AudioError, match=r"silent\.wav: silent .*allow_silent"):
        load_audio(path)
    audio = load_audio(path, allow_silent=True)
    assert audio.shape == (22050,) and not audio.any()


def test_nearly_silent_file(tmp_path) -> None:
    path = tmp_path / "quiet.wav"
    soundfile.write(path, sine(0.5, 22050, amp=1e-6), 22050, subtype="FLOAT")
    with pytest.raises(AudioError, match="silent"):
        load_audio(path)


def test_too_short(tmp_path) -> None:
    path = tmp_path / "short.wav"
    soundfile.write(path, sine(0.01, 22050), 22050)
    with pytest.raises(AudioError, match=r"short\.wav: too short \(0\.010 s; at least 0\.1 s"):
        load_audio(path)
    assert load_audio(path, min_seconds=0.005).shape == (220,)


def test_zero_samples(tmp_path) -> None:
    path = tmp_path / "nothing.wav"
    soundfile.write(path, np.zeros(0, np.float32), 22050)
    with pytest.raises(AudioError, match="too short"):
        load_audio(path)


def test_too_long_is_refused_from_the_header(tmp_path, monkeypatch) -> None:
    path = tmp_path / "long.wav"
    soundfile.write(path, sine(2.0, 8000), 8000)

    def never_decode(path):
        raise AssertionError("decoded a file the header says is too long")

    monkeypatch.setattr(audio_module, "_decode", never_decode)
    with pytest.raises(AudioError, match=r"long\.wav: too long \(2\.0 s; at most 1 s"):
        load_audio(path, max_seconds=1.0)


def test_nan_samples(tmp_path) -> None:
    path = tmp_path / "nan.wav"
    data = sine(0.5, 8000)
    data[100] = np.nan
    soundfile.write(path, data, 8000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: contains NaN"):
        load_audio(path)


def test_audio_error_is_a_value_error() -> None:
    assert issubclass(AudioError, ValueError)


# --- good inputs -----------------------------------------------------------------------------


def test_stereo_44k_to_mono_22k(tmp_path) -> None:
    path = tmp_path / "stereo.wav"
    left, right = sine(1.0, 44100, 440.0, 0.6), sine(1.0, 44100, 1000.0, 0.2)
    soundfile.write(path, np.stack([left, right], axis=1), 44100)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.shape == (22050,)
    # mono = mean of channels: the 440 Hz sine at amplitude 0.3 dominates
    assert abs(dominant_freq(audio, 22050) - 440.0) < 2.0
    expected = (sine(1.0, 22050, 440.0, 0.6) + sine(1.0, 22050, 1000.0, 0.2)) / 2
    # a good resampler: interior samples match the analytic signal to about -60 dB
    err = audio[500:-500] - expected[500:-500]
    assert np.sqrt(np.mean(err**2)) < 1e-3


def test_scipy_fallback_without_soxr(tmp_path, monkeypatch) -> None:
    x = sine(1.0, 44100)
    with_soxr = audio_module.resample(x, 44100, 22050)
    monkeypatch.setitem(sys.modules, "soxr", None)  # makes `import soxr` raise ImportError
    without = audio_module.resample(x, 44100, 22050)
    assert without.dtype == np.float32 and without.shape == with_soxr.shape
    np.testing.assert_allclose(without[500:-500], with_soxr[500:-500], atol=1e-3)


def test_int16_and_other_rates(tmp_path) -> None:
    path = tmp_path / "int16.wav"
    pcm = (sine(0.5, 16000) * 32767).astype(np.int16)
    soundfile.write(path, pcm, 16000, subtype="PCM_16")
    audio = load_audio(path, sample_rate=16000)
    np.testing.assert_allclose(audio, pcm / 32768.0, atol=1e-6)
    assert load_audio(path, sample_rate=8000).shape == (4000,)


@pytest.mark.parametrize("suffix", [".flac", ".ogg", ".aiff"])
def test_other_formats(tmp_path, suffix: str) -> None:
    path = tmp_path / f"tone{suffix}"
    soundfile.write(path, sine(0.5, 22050), 22050)
    audio = load_audio(path)
    assert audio.shape == (11025,)
    assert abs(dominant_freq(audio, 22050) - 440.0) < 3.0


def test_float_file_louder_than_full_scale_is_scaled_not_clipped(tmp_path) -> None:
    path = tmp_path / "loud.wav"
    soundfile.write(path, sine(0.5, 22050, amp=4.0), 22050, subtype="FLOAT")
    audio = load_audio(path)
    assert np.abs(audio).max() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(audio, sine(0.5, 22050, amp=1.0), atol=1e-5)


def test_resampled_full_scale_stays_in_range(tmp_path) -> None:
    path = tmp_path / "square.wav"
    square = np.sign(sine(0.5, 44100, 1000.0)).astype(np.float32)
    soundfile.write(path, square, 44100, subtype="FLOAT")
    audio = load_audio(path)
    assert np.abs(audio).max() <= 1.0


def test_audio_info_and_duration(tmp_path) -> None:
    path = tmp_path / "info.wav"
    soundfile.write(path, np.zeros((12000, 3), np.float32), 24000)
    assert audio_info(path) == audio_module.AudioInfo(24000, 12000, 3)
    assert audio_duration(path) == 0.5
    with pytest.raises(AudioError, match="no such file"):
        audio_duration(tmp_path / "missing.flac")


# --- writing ---------------------------------------------------------------------------------


def test_write_wav_round_trip(tmp_path) -> None:
    x = sine(0.25, 22050)
    write_wav(tmp_path / "a.wav", x, 22050)
    assert soundfile.info(tmp_path / "a.wav").subtype == "PCM_16"
    np.testing.assert_allclose(load_audio(tmp_path / "a.wav"), x, atol=1 / 32768)
    write_wav(tmp_path / "b.wav", x, 22050, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(tmp_path / "b.wav"), x)
    write_wav(tmp_path / "c.wav", np.stack([x, -x]), 22050)
    assert soundfile.info(tmp_path / "c.wav").channels == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "b.wav", "c.wav"]


def test_write_wav_errors(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"x\.wav: audio must be"):
        write_wav(tmp_path / "x.wav", np.zeros((1, 2, 3)), 22050)
    with pytest.raises(ValueError, match="NaN"):
        write_wav(tmp_path / "x.wav", np.array([0.0, np.inf]), 22050)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_wav(tmp_path / "no" / "x.wav", np.zeros(10), 22050)
    with pytest.raises(ValueError, match="subtype"):
        write_wav(tmp_path / "x.wav", np.zeros(10), 22050, subtype="NOT_A_SUBTYPE")
    assert list(tmp_path.iterdir()) == []
