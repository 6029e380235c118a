from __future__ import annotations

import os

import numpy as np
import pytest

from timbrelab.io import atomic_output
from timbrelab.notes import (
    Note,
    notes_to_mir_eval,
    notes_to_rolls,
    read_notes,
    roll_to_notes,
    write_notes,
)

NOTES = [
    Note(0.0, 0.5, 60, 90, 0),
    Note(0.25, 1.0, 64, 100, 1),
    Note(0.5, 0.75, 67, 80, 0),
    Note(1.2, 1.5, 48, 1, 2),
]


def test_note_normalises_numpy_fields() -> None:
    note = Note(np.float32(0.5), np.float64(1.0), np.int64(60), np.int32(90), np.int64(2))
    assert type(note.onset) is float and type(note.pitch) is int and type(note.source) is int
    assert note == Note(0.5, 1.0, 60, 90, 2)
    assert note.duration == 0.5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"onset": 1.0, "offset": 1.0, "pitch": 60}, "offset"),
        ({"onset": 1.0, "offset": 0.5, "pitch": 60}, "offset"),
        ({"onset": -0.1, "offset": 0.5, "pitch": 60}, "onset"),
        ({"onset": 0.0, "offset": float("nan"), "pitch": 60}, "finite"),
        ({"onset": 0.0, "offset": 1.0, "pitch": 128}, "pitch"),
        ({"onset": 0.0, "offset": 1.0, "pitch": -1}, "pitch"),
        ({"onset": 0.0, "offset": 1.0, "pitch": 60.5}, "pitch"),
        ({"onset": 0.0, "offset": 1.0, "pitch": 60, "velocity": 200}, "velocity"),
        ({"onset": 0.0, "offset": 1.0, "pitch": 60, "source": -1}, "source"),
    ],
)
def test_note_rejects_bad_fields(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Note(**kwargs)


def test_notes_to_rolls_by_hand() -> None:
    # frame rate 10: frames at 0.0, 0.1, ...
    notes = [Note(0.1, 0.35, 21), Note(0.42, 0.44, 22), Note(0.8, 5.0, 23), Note(0.0, 1.0, 10)]
    rolls = notes_to_rolls(notes, n_frames=10, frame_rate=10.0, midi_min=21, n_pitches=3)
    assert set(rolls) == {"frame", "onset", "offset"}
    assert all(r.shape == (3, 10) and r.dtype == np.float32 for r in rolls.values())
    # 0.1 <= t < 0.35 -> frames 1, 2, 3
    np.testing.assert_array_equal(np.flatnonzero(rolls["frame"][0]), [1, 2, 3])
    # shorter than a frame: still one frame (the first at or after the onset, frame 5)
    np.testing.assert_array_equal(np.flatnonzero(rolls["frame"][1]), [5])
    # runs past the end: clipped; offset roll clipped to the last frame
    np.testing.assert_array_equal(np.flatnonzero(rolls["frame"][2]), [8, 9])
    np.testing.assert_array_equal(np.flatnonzero(rolls["onset"][0]), [1])
    np.testing.assert_array_equal(np.flatnonzero(rolls["offset"][0]), [4])  # round(3.5) = 4
    np.testing.assert_array_equal(np.flatnonzero(rolls["onset"][1]), [4])
    np.testing.assert_array_equal(np.flatnonzero(rolls["offset"][2]), [9])
    # pitch 10 is outside the roll: ignored
    assert rolls["frame"].sum() == 3 + 1 + 2


def test_notes_to_rolls_exact_frame_boundaries() -> None:
    # 0.3 * 10 is 2.9999999999999996 in floating point: still frame 3
    rolls = notes_to_rolls([Note(0.3, 0.6, 60)], 10, frame_rate=10.0)
    np.testing.assert_array_equal(np.flatnonzero(rolls["frame"][60 - 21]), [3, 4, 5])


def test_roll_round_trip() -> None:
    rng = np.random.default_rng(0)
    roll = (rng.random((88, 200)) < 0.1).astype(np.float32)
    notes = roll_to_notes(roll, source=3)
    assert all(n.source == 3 for n in notes)
    assert notes == sorted(notes, key=lambda n: (n.onset, n.pitch))
    np.testing.assert_array_equal(notes_to_rolls(notes, 200)["frame"], roll)


def test_roll_to_notes_by_hand() -> None:
    roll = np.array([[0, 1, 1, 0, 1], [0.9, 0.2, 0.0, 0.0, 0.0]])
    notes = roll_to_notes(roll, frame_rate=10.0, midi_min=60)
    assert notes == [Note(0.0, 0.1, 61), Note(0.1, 0.3, 60), Note(0.4, 0.5, 60)]
    with pytest.raises(ValueError, match="2-D"):
        roll_to_notes(np.zeros(5))


def test_notes_to_mir_eval() -> None:
    intervals, pitches = notes_to_mir_eval([Note(0.0, 0.5, 69), Note(1.0, 2.0, 57)])
    np.testing.assert_allclose(intervals, [[0.0, 0.5], [1.0, 2.0]])
    np.testing.assert_allclose(pitches, [440.0, 220.0])
    intervals, pitches = notes_to_mir_eval([])
    assert intervals.shape == (0, 2) and pitches.shape == (0,)


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_text_formats_round_trip_exactly(tmp_path, suffix: str) -> None:
    notes = NOTES + [Note(0.1 + 0.2, 2.0 / 3.0, 100, 127, None)]
    path = tmp_path / f"notes{suffix}"
    write_notes(reversed(notes), path)
    assert read_notes(path) == sorted(notes, key=lambda n: (n.onset, n.offset))


def test_midi_round_trip_and_tracks(tmp_path) -> None:
    import pretty_midi

    notes = NOTES + [Note(0.3, 0.3004, 50, 100, None)]  # shorter than a MIDI tick
    path = tmp_path / "notes.mid"
    write_notes(notes, path, programs={0: 40, 1: 71, 2: 70})
    back = read_notes(path)
    expected = sorted(notes, key=lambda n: (n.onset, n.offset))
    assert len(back) == len(expected)
    for got, want in zip(back, expected, strict=True):
        assert (got.pitch, got.velocity, got.source) == (want.pitch, want.velocity, want.source)
        assert abs(got.onset - want.onset) <= 5e-4
        assert abs(got.offset - want.offset) <= 1e-3
    midi = pretty_midi.PrettyMIDI(str(path))
    assert [(i.name, i.program) for i in midi.instruments] == [
        ("unassigned", 0),
        ("source 0", 40),
        ("source 1", 71),
        ("source 2", 70),
    ]


@pytest.mark.parametrize("name", ["a.mid", "a.midi", "a.csv", "a.json"])
def test_write_is_deterministic(tmp_path, name: str) -> None:
    write_notes(NOTES, tmp_path / f"1{name}")
    write_notes(list(reversed(NOTES)), tmp_path / f"2{name}")
    assert (tmp_path / f"1{name}").read_bytes() == (tmp_path / f"2{name}").read_bytes()


def test_foreign_midi_tracks_get_their_index(tmp_path) -> None:
    import pretty_midi

    midi = pretty_midi.PrettyMIDI()
    for program in (0, 40):
        track = pretty_midi.Instrument(program, name="Piano")
        track.notes.append(pretty_midi.Note(80, 60 + program, 0.5, 1.0))
        midi.instruments.append(track)
    midi.write(str(tmp_path / "foreign.mid"))
    assert [n.source for n in read_notes(tmp_path / "foreign.mid")] == [0, 1]


def test_write_errors_name_the_path(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"notes\.txt"):
        write_notes(NOTES, tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="unknown note format"):
        write_notes(NOTES, tmp_path / "notes.csv", format="xml")
    with pytest.raises(FileNotFoundError, match="missing"):
        write_notes(NOTES, tmp_path / "missing" / "notes.csv")
    with pytest.raises(ValueError, match="no entry for source 2"):
        write_notes(NOTES, tmp_path / "notes.mid", programs=[0, 0])
    with pytest.raises(ValueError, match="Note objects"):
        write_notes([(0.0, 1.0, 60)], tmp_path / "notes.json")
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_folder_raises_oserror(tmp_path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match=r"ro/notes\.csv"):
            write_notes(NOTES, folder / "notes.csv")
    finally:
        folder.chmod(0o700)


def test_permission_error_is_reworded_with_the_path(tmp_path, monkeypatch) -> None:
    # works as root too, where chmod cannot make a folder unwritable
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(PermissionError, match=r"notes\.json: cannot write \(Permission denied"):
        write_notes(NOTES, tmp_path / "notes.json")


def test_atomic_output_keeps_old_file_on_failure(tmp_path) -> None:
    path = tmp_path / "out.csv"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_output(path) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".csv"
        tmp.write_text("new")
        raise RuntimeError("writer failed")
    assert path.read_text() == "old"
    assert list(tmp_path.iterdir()) == [path]  # the temporary file is gone
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(IsADirectoryError, match="folder.csv"):
        write_notes(NOTES, tmp_path / "folder.csv")


def test_read_errors_name_the_path(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nothing\.csv"):
        read_notes(tmp_path / "nothing.csv")
    bad_midi = tmp_path / "bad.mid"
    bad_midi.write_bytes(b"not a midi file at all")
    with pytest.raises(ValueError, match=r"bad\.mid"):
        read_notes(bad_midi)
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"bad\.csv.*header"):
        read_notes(bad_csv)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('[{"onset": 1.0, "offset": 0.5, "pitch": 60}]')
    with pytest.raises(ValueError, match=r"bad\.json.*offset"):
        read_notes(bad_json)


def test_notes_sort_with_unknown_and_known_sources() -> None:
    unknown = Note(0.0, 1.0, 60)
    first, second = Note(0.0, 1.0, 60, source=0), Note(0.0, 1.0, 60, source=1)
    assert sorted([second, first, unknown]) == [unknown, first, second]
    assert sorted([Note(0.5, 1.0, 60), Note(0.0, 2.0, 72, source=3)])[0].onset == 0.0


def test_named_sources_get_named_tracks_and_read_back_in_order(tmp_path) -> None:
    import pretty_midi

    notes = [Note(0.0, 0.5, 60, source=None), Note(0.1, 0.4, 40, source=2)]
    path = tmp_path / "named.mid"
    write_notes(notes, path, source_names=["Violin", "Clarinet", "Bassoon"])
    names = [track.name for track in pretty_midi.PrettyMIDI(str(path)).instruments]
    assert names == ["unassigned", "Bassoon (source 2)"]
    assert [n.source for n in read_notes(path)] == [None, 2]
    with pytest.raises(ValueError, match="source_names"):
        write_notes(notes, path, source_names=["Violin"])
