"""CQT speed and accuracy: nnAudio, librosa, timbrelab's FFT CQT, harmonic CQT, invertible CQT.

Times each front end (nnAudio's CQT1992v2 and CQT2010v2, librosa, timbrelab's FFT CQT) on
the same 264-bin Basic Pitch grid and the same audio (a synthetic mixture, 30 s by default) on
one CPU thread (and on CUDA when present), checks the magnitude CQTs against ``librosa.cqt``
(correlation, largest difference relative to the peak) and the invertible CQT's reconstruction
(SNR), and writes the numbers to ``benchmarks/results/cqt_speed.json``.

    python benchmarks/cqt_speed.py [--seconds 30] [--repeats 5] [--out PATH]

Timings are the best of ``--repeats`` runs after one warm-up run (the warm-up builds kernels
and FFT plans); "per second" figures divide by the audio duration.

Chapter: book/01_cqt_features.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import librosa
import nnAudio
import numpy as np
import torch
from nnAudio.features import CQT2010v2

from timbrelab.constants import FMIN_HZ, HOP_LENGTH, SAMPLE_RATE
from timbrelab.features import CQT, FFTCQT, HarmonicCQT, InvertibleCQT

# Basic Pitch's grid: 88 keys x 3 bins from A0, hop 256 at 22 050 Hz.
N_BINS, BINS_PER_OCTAVE = 264, 36


def test_audio(seconds: float, seed: int = 0) -> tuple[np.ndarray, str]:
    """A synthetic mixture: timbrelab's renderer when available, else additive notes + noise."""
    try:
        from timbrelab.data.mixtures import make_mixture

        mix = make_mixture(3, seconds=seconds, seed=seed)
        audio = np.asarray(mix.audio, dtype=np.float32)[: int(seconds * SAMPLE_RATE)]
        return audio, f"timbrelab.data.make_mixture(3, seconds={seconds}, seed={seed})"
    except ImportError:
        pass
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    audio = 0.01 * rng.standard_normal(n)
    for onset in np.arange(0.0, seconds, 0.25):  # a note every 250 ms, 6 partials each
        f0 = 440.0 * 2 ** ((rng.integers(36, 96) - 69) / 12)
        env = np.where(t >= onset, np.exp(-(t - onset) * 3.0), 0.0)
        for h in range(1, 7):
            if h * f0 < SAMPLE_RATE / 2:
                audio += env * np.sin(2 * np.pi * h * f0 * t) / h
    audio = 0.5 * audio / np.abs(audio).max()
    return audio.astype(np.float32), f"additive notes + noise, {seconds} s, seed {seed}"


def best_time(fn: Callable[[], object], repeats: int, sync: bool = False) -> float:
    """Best wall time of ``repeats`` calls after one warm-up call, in seconds."""
    fn()
    times = []
    for _ in range(repeats):
        if sync:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def agreement(ours: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Correlation with the reference magnitude and the largest difference over its peak."""
    return {
        "correlation": float(np.corrcoef(ours.ravel(), ref.ravel())[0, 1]),
        "max_abs_diff_over_peak": float(np.abs(ours - ref).max() / ref.max()),
    }


def snr_db(ref: np.ndarray, est: np.ndarray) -> float:
    ref, est = ref.astype(np.float64), est.astype(np.float64)
    return float(10 * np.log10(np.sum(ref**2) / np.sum((ref - est) ** 2)))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "cqt_speed.json"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    audio, source = test_audio(args.seconds)
    seconds = audio.size / SAMPLE_RATE
    x = torch.from_numpy(audio).unsqueeze(0)
    grid = dict(fmin=FMIN_HZ, n_bins=N_BINS, bins_per_octave=BINS_PER_OCTAVE)

    def librosa_cqt() -> np.ndarray:
        return np.abs(librosa.cqt(audio, sr=SAMPLE_RATE, hop_length=HOP_LENGTH,
                                  pad_mode="constant", **grid))

    nnaudio = CQT(**grid)
    # nnAudio's multirate CQT (it fails outright for the harmonic CQT's 13.75 Hz-to-Nyquist
    # range at hop 256: its octave-by-octave downsampling drives the stride to 0).
    nnaudio2010 = CQT2010v2(sr=SAMPLE_RATE, hop_length=HOP_LENGTH, pad_mode="constant",
                            verbose=False, **grid)
    fftcqt = FFTCQT(**grid)
    hcqt = HarmonicCQT()
    icqt = InvertibleCQT()

    ref = librosa_cqt()
    with torch.no_grad():
        t_librosa = best_time(librosa_cqt, args.repeats)
        t_nnaudio = best_time(lambda: nnaudio(x), args.repeats)
        t_nnaudio2010 = best_time(lambda: nnaudio2010(x), args.repeats)
        t_fft = best_time(lambda: fftcqt(x), args.repeats)
        t_hcqt = best_time(lambda: hcqt(x), args.repeats)
        t_fwd = best_time(lambda: icqt(x), args.repeats)
        coeffs = icqt(x)
        t_inv = best_time(lambda: icqt.inverse(coeffs, audio.size), args.repeats)
        recon = icqt.inverse(coeffs, audio.size)[0].numpy()
        nn_mag, fft_mag = nnaudio(x)[0].numpy(), fftcqt(x)[0].numpy()
        nn2010_mag = nnaudio2010(x)[0].numpy()

    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "librosa": librosa.__version__,
            "nnAudio": getattr(nnAudio, "__version__", "unknown"),
            "load_average_1min_at_end": os.getloadavg()[0],
            "note": "times are upper bounds when the load average exceeds the CPU count",
        },
        "audio": {"source": source, "seconds": seconds, "sample_rate": SAMPLE_RATE},
        "cqt_grid": {**grid, "hop_length": HOP_LENGTH, "pad_mode": "constant"},
        "cpu_seconds": {
            "librosa_cqt": t_librosa,
            "nnaudio_cqt1992v2": t_nnaudio,
            "nnaudio_cqt2010v2": t_nnaudio2010,
            "timbrelab_fftcqt": t_fft,
            "harmonic_cqt_8ch": t_hcqt,
            "invertible_cqt_forward": t_fwd,
            "invertible_cqt_inverse": t_inv,
        },
        "cpu_seconds_per_audio_second": {
            "librosa_cqt": t_librosa / seconds,
            "nnaudio_cqt1992v2": t_nnaudio / seconds,
            "nnaudio_cqt2010v2": t_nnaudio2010 / seconds,
            "timbrelab_fftcqt": t_fft / seconds,
            "harmonic_cqt_8ch": t_hcqt / seconds,
            "invertible_cqt_forward_plus_inverse": (t_fwd + t_inv) / seconds,
        },
        "ratios": {
            "nnaudio_over_librosa": t_nnaudio / t_librosa,
            "nnaudio2010_over_librosa": t_nnaudio2010 / t_librosa,
            "fftcqt_over_librosa": t_fft / t_librosa,
            "invertible_cqt_realtime_factor": seconds / (t_fwd + t_inv),
        },
        "agreement_with_librosa": {
            "nnaudio_cqt1992v2": agreement(nn_mag, ref),
            "nnaudio_cqt2010v2": agreement(nn2010_mag, ref),
            "timbrelab_fftcqt": agreement(fft_mag, ref),
        },
        "invertible_cqt": {
            "n_bins": icqt.n_bins,
            "hop_length": icqt.hop_length,
            "coefficient_shape": list(coeffs.shape),
            "reconstruction_snr_db": snr_db(audio, recon),
        },
    }
    if torch.cuda.is_available():
        xg = x.cuda()
        nnaudio_g, hcqt_g, icqt_g = nnaudio.cuda(), HarmonicCQT().cuda(), InvertibleCQT()
        with torch.no_grad():
            cg = icqt_g(xg)
            results["cuda_seconds"] = {
                "device": torch.cuda.get_device_name(),
                "nnaudio_cqt1992v2": best_time(lambda: nnaudio_g(xg), args.repeats, sync=True),
                "harmonic_cqt_8ch": best_time(lambda: hcqt_g(xg), args.repeats, sync=True),
                "invertible_cqt_forward": best_time(lambda: icqt_g(xg), args.repeats, sync=True),
                "invertible_cqt_inverse": best_time(
                    lambda: icqt_g.inverse(cg, audio.size), args.repeats, sync=True
                ),
            }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, args.out)
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
