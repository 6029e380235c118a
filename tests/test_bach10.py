from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import soundfile

from timbrelab.data.bach10 import (
    BACH10_ENV,
    PARTS,
    bach10_root,
    frame_centres,
    gtnotes_to_notes,
    list_pieces,
    load_piece,
)
from timbrelab.metrics import frame_scores, sdr
from timbrelab.notes import Note

# sounding ranges (MIDI) of the four instruments: violin G3.., clarinet in B-flat D3..,
# tenor saxophone A-flat2..E5, bassoon B-flat1..E5
RANGES = {0: (55, 103), 1: (50, 94), 2: (44, 77), 3: (34, 76)}
# F1 of the ground-truth notes against GTF0s under the README's scoring (see test below)
FF_CEILING = {"01-AchGottundHerr": 0.98555, "02-AchLiebenChristen": 0.98039}


def _cells(notes_per_part: list[list[np.ndarray]]) -> np.ndarray:
    """A GTNotes-like (4, 1) object array of (L, 1) object arrays of (2, L) arrays."""
    gt = np.empty((len(notes_per_part), 1), dtype=object)
    for part, notes in enumerate(notes_per_part):
        cell = np.empty((len(notes), 1), dtype=object)
        for i, note in enumerate(notes):
            cell[i, 0] = note
        gt[part, 0] = cell
    return gt


def test_frame_centres() -> None:
    np.testing.assert_allclose(frame_centres(3), [0.023, 0.033, 0.043])


def test_gtnotes_to_notes_by_hand() -> None:
    gt = _cells(
        [
            [np.array([[1, 2, 3], [60.2, 60.6, 59.9]]), np.array([[10, 11], [62.0, 62.0]])],
            [np.array([[5, 6, 7, 8], [48.4, 48.6, 48.7, 48.7]])],
            [],
            [np.array([[2], [40.0]])],
        ]
    )
    notes = gtnotes_to_notes(gt)
    # frame k is centred at 23 + 10 (k - 1) ms; notes span centre - 5 ms .. centre + 5 ms
    expected = [
        Note(0.018, 0.048, 60, source=0),  # median 60.2
        Note(0.028, 0.038, 40, source=3),
        Note(0.058, 0.098, 49, source=1),  # median 48.65 rounds up
        Note(0.108, 0.128, 62, source=0),
    ]
    assert len(notes) == len(expected)
    for got, want in zip(notes, expected, strict=True):
        assert (got.pitch, got.source) == (want.pitch, want.source)
        assert got.onset == pytest.approx(want.onset) and got.offset == pytest.approx(want.offset)


def test_root_from_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(BACH10_ENV, str(tmp_path))
    assert bach10_root() == tmp_path
    assert list_pieces() == []
    monkeypatch.setenv(BACH10_ENV, str(tmp_path / "typo"))
    with pytest.raises(FileNotFoundError, match="typo"):
        bach10_root()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_pieces(tmp_path / "typo")


def _fake_piece(root, name: str = "07-Fake", rate: int = 8000, seconds: float = 0.5) -> None:
    """A tiny piece in the Bach10 layout: a tone per part, GTF0s and GTNotes."""
    folder = root / name
    folder.mkdir()
    t = np.arange(int(rate * seconds)) / rate
    pitches = [72, 64, 55, 43]
    stems = [0.2 * np.sin(2 * np.pi * 440 * 2 ** ((p - 69) / 12) * t) for p in pitches]
    for part, stem in zip(("violin", "clarinet", "saxphone", "bassoon"), stems, strict=True):
        soundfile.write(folder / f"{name}-{part}.wav", stem, rate)
    soundfile.write(folder / f"{name}.wav", np.sum(stems, axis=0), rate)
    n_frames = 45
    f0 = np.zeros((4, n_frames))
    notes = []
    for part, p in enumerate(pitches):
        frames = np.arange(5 + part, 40)
        f0[part, frames - 1] = p
        notes.append([np.stack([frames, np.full(len(frames), p + 0.1)])])
    scipy.io.savemat(folder / f"{name}-GTF0s.mat", {"GTF0s": f0})
    scipy.io.savemat(folder / f"{name}-GTNotes.mat", {"GTNotes": _cells(notes)})


def test_load_fake_piece(tmp_path) -> None:
    _fake_piece(tmp_path)
    (tmp_path / "README.md").write_text("not a piece")
    (tmp_path / "notes").mkdir()
    assert list_pieces(tmp_path) == ["07-Fake"]
    piece = load_piece("07", root=tmp_path, sample_rate=16000)
    assert piece.name == "07-Fake" and piece.parts == PARTS and piece.sample_rate == 16000
    assert piece.mix.shape == (8000,) and piece.stems.shape == (4, 8000)
    assert piece.f0_midi.shape == (4, 45) and piece.f0_times.shape == (45,)
    assert sorted((n.source, n.pitch) for n in piece.notes) == [(0, 72), (1, 64), (2, 55), (3, 43)]
    assert piece.score(piece.notes) == {"FF": 1.0, "FN": 1.0, "FNO": 1.0}
    with pytest.raises(ValueError, match="no single Bach10 piece matches '99'"):
        load_piece("99", root=tmp_path)


# --- the real development pieces (skipped where the data is absent) --------------------------


@pytest.fixture(scope="module")
def piece():
    root = bach10_root()
    if root is None or not list_pieces(root):
        pytest.skip(f"Bach10 data not found (set ${BACH10_ENV})")
    return load_piece(list_pieces(root)[0], root)


def test_real_piece_shapes(piece) -> None:
    assert piece.parts == PARTS and piece.stems.shape == (4, len(piece.mix))
    assert piece.mix.dtype == np.float32 and piece.stems.dtype == np.float32
    assert piece.f0_midi.shape == (4, len(piece.f0_times))
    # the ground truth covers the audio (last frame centre within the recording)
    assert piece.f0_times[-1] <= len(piece.mix) / piece.sample_rate


def test_real_stems_sum_to_mix(piece) -> None:
    # the mix is the sum of the stems, but for a few samples clipped in the original file
    assert sdr(piece.mix, piece.stems.sum(0)) > 60.0


def test_real_notes(piece) -> None:
    for part, (lo, hi) in RANGES.items():
        notes = [n for n in piece.notes if n.source == part]
        assert len(notes) > 10, PARTS[part]
        assert all(lo <= n.pitch <= hi for n in notes), PARTS[part]
        # a part plays one note at a time
        assert all(a.offset <= b.onset + 1e-9 for a, b in zip(notes, notes[1:], strict=False))
    # each note starts where its part's GTF0s is active, near the note's pitch
    first_frames = np.searchsorted(piece.f0_times, [n.onset for n in piece.notes])
    f0_at_onset = piece.f0_midi[[n.source for n in piece.notes], first_frames]
    pitches = np.array([n.pitch for n in piece.notes])
    assert np.all(f0_at_onset > 0)
    assert np.mean(np.abs(f0_at_onset - pitches) < 1.0) > 0.95


def test_real_ground_truth_scores_itself(piece) -> None:
    scores = piece.score(piece.notes)
    assert scores["FN"] == 1.0 and scores["FNO"] == 1.0
    # FF cannot reach 1: about 2 % of the active GTF0s frames lie outside every GTNotes note
    # and in about 0.6 % the frame's f0 is more than 50 cents from its note's rounded median.
    # The notes do reproduce themselves exactly on that grid:
    assert frame_scores(piece.notes, piece.notes, times=piece.f0_times)["f1"] == 1.0
    if piece.name in FF_CEILING:
        assert scores["FF"] == pytest.approx(FF_CEILING[piece.name], abs=1e-4)
    else:
        assert scores["FF"] > 0.95
