"""Constants shared by every chapter: sample rates, hop sizes and the pitch range.

Chapter: book/01_cqt_features.md
"""

#: Sample rate of the CQT models (Basic Pitch, Li & Zhu, Timbre-Trap), in Hz.
SAMPLE_RATE = 22050
#: Hop between CQT frames at ``SAMPLE_RATE``: 256 samples is about 11.6 ms (86.13 frames/s).
HOP_LENGTH = 256
#: Frames per second of every posteriorgram and label roll at the default rate.
FRAME_RATE = SAMPLE_RATE / HOP_LENGTH
#: Sample rate of the STFT/mel models (Cerberus, Jointist), in Hz.
SAMPLE_RATE_16K = 16000

#: Lowest and highest MIDI pitch of the 88-key range (A0 to C8).
MIDI_MIN = 21
MIDI_MAX = 108
N_PITCHES = MIDI_MAX - MIDI_MIN + 1
#: Frequency of MIDI_MIN (A0) in Hz: the lowest CQT bin centre.
FMIN_HZ = 27.5
