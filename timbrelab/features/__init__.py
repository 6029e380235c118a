"""Time-frequency front ends: CQT, harmonic CQT, EnergyNorm, invertible CQT, STFT and mel.

Chapter: book/01_cqt_features.md
"""

from timbrelab.features.cqt import (
    BASIC_PITCH_HARMONICS,
    CQT,
    FFTCQT,
    EnergyNorm,
    HarmonicCQT,
    cqt_frequencies,
    log_magnitude,
    pitch_to_bin,
)
from timbrelab.features.slicq import InvertibleCQT
from timbrelab.features.stft import STFT, MelSpectrogram

__all__ = [
    "BASIC_PITCH_HARMONICS",
    "CQT",
    "FFTCQT",
    "EnergyNorm",
    "HarmonicCQT",
    "InvertibleCQT",
    "MelSpectrogram",
    "STFT",
    "cqt_frequencies",
    "log_magnitude",
    "pitch_to_bin",
]
