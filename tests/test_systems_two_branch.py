"""The two_branch system: data, recipe, inference to notes with sources, scores, and the CLI."""

import numpy as np
import pretty_midi
import pytest
import torch

from timbrelab import pretrained, systems
from timbrelab.audio import write_wav
from timbrelab.cli import main
from timbrelab.evaluation import synthetic_test_mixture
from timbrelab.notes import Note, read_notes
from timbrelab.systems.two_branch import (
    PLAYBACK_PROGRAMS,
    Analysis,
    mixtures,
    order_by_pitch,
    reference_notes,
    separate_notes,
    separated_scores,
)
from timbrelab.training import save_weights

SYSTEM = systems.get("two_branch")


def test_the_system_is_registered_with_what_it_does():
    assert SYSTEM.separates_notes and not SYSTEM.separates and SYSTEM.counts_sources
    assert SYSTEM.sample_rate == 22050 and SYSTEM.chapter.endswith("05_contrastive_clustering.md")


def test_mixtures_are_half_random_half_ensemble_with_instrument_rolls():
    data = mixtures(4, 1.0, seed=3, soundfonts=None, expression=False)
    assert [d.style for d in data.datasets] == ["random", "ensemble"]
    assert len(data) == 4
    item = data[3]
    k = int(item["n_sources"])
    assert 2 <= k <= 4 and item["stem_frame"].shape == (4, 88, 87)
    assert item["stem_frame"][:k].amax(dim=(1, 2)).tolist() == [1.0] * k  # every part plays


def test_the_recipe_freezes_the_shipped_amt_branch():
    recipe = SYSTEM.recipe("quick", train_items=2, steps=1)
    model, amt = recipe.model, pretrained.load("amt")
    for name, value in amt.state_dict().items():
        assert torch.equal(model.amt.state_dict()[name], value), name
    assert not any(p.requires_grad for p in model.amt.parameters())
    assert recipe.config.steps == 1 and recipe.config.monitor == "separated_note_f1"
    with pytest.raises(ValueError, match="tier"):
        SYSTEM.recipe("huge")


def test_a_short_training_run_logs_the_table_3_scores(tmp_path):
    recipe = SYSTEM.recipe(
        "quick", train_items=2, steps=2, batch_size=2, eval_every=2, progress=False,
        data_options={"soundfonts": None, "expression": False},
    )  # fmt: skip
    recipe.val_data = torch.utils.data.Subset(recipe.val_data, [0, 1])
    history = recipe.trainer(tmp_path).fit()
    last = history[-1]
    for key in ("train_infonce", "separated_note_f1", "separated_frame_f1", "note_f1", "ratio"):
        assert key in last and np.isfinite(last[key])


def test_order_by_pitch_numbers_parts_from_the_top():
    notes = [Note(0.0, 1.0, 40, 80, 0), Note(0.0, 1.0, 70, 80, 1), Note(1.0, 2.0, 60, 80, 2)]
    ordered = order_by_pitch(notes)
    assert {(n.pitch, n.source) for n in ordered} == {(70, 0), (60, 1), (40, 2)}


def test_separated_scores_ignore_how_sources_are_numbered():
    reference = [Note(0.0, 0.5, 60, 80, 0), Note(1.0, 1.5, 64, 80, 0), Note(0.0, 1.5, 48, 80, 1)]
    swapped = [Note(n.onset, n.offset, n.pitch, n.velocity, 1 - n.source) for n in reference]
    assert separated_scores(reference, swapped) == pytest.approx(
        {"separated_note_f1": 1.0, "separated_frame_f1": 1.0, "note_f1": 1.0, "ratio": 1.0}
    )
    # every note right, but all in one source: half the parts are lost
    merged = [Note(n.onset, n.offset, n.pitch, n.velocity, 0) for n in reference]
    scores = separated_scores(reference, merged)
    assert scores["note_f1"] == 1.0 and scores["separated_note_f1"] < 0.6
    assert scores["ratio"] == pytest.approx(scores["separated_note_f1"])


def test_reference_notes_come_from_the_instrument_rolls():
    rolls = np.zeros((3, 88, 100), np.float32)
    rolls[0, 39, 10:30] = 1  # MIDI 60
    rolls[1, 27, 50:90] = 1  # MIDI 48
    rolls[2, 0, 0:5] = 1  # a third row, past n_sources
    notes = reference_notes(rolls, 2)
    assert [(n.pitch, n.source) for n in notes] == [(60, 0), (48, 1)]


def constructed_analysis() -> Analysis:
    """Two parts whose bins point in two directions: the decoder must split them."""
    frame, onset = np.zeros((88, 200), np.float32), np.zeros((88, 200), np.float32)
    embedding = np.zeros((4, 88, 200), np.float32)
    embedding[0] = 1.0  # every bin of the low part (and silence) points along axis 0
    for start in (0, 50, 100, 150):
        for row, axis in ((20, 0), (50, 1)):  # low part at key 20, high part at key 50
            frame[row, start : start + 40] = 0.9
            onset[row, start] = 0.9
            embedding[:, row, start : start + 40] = np.eye(4)[axis][:, None]
    return Analysis(frame, onset, embedding)


@pytest.mark.parametrize("level", ["note", "frame"])
def test_separate_notes_splits_constructed_parts(level):
    notes, k = separate_notes(constructed_analysis(), level=level)
    assert k == 2  # estimated
    assert {(n.pitch, n.source) for n in notes} == {(21 + 50, 0), (21 + 20, 1)}
    assert len(notes) == 8
    given, k = separate_notes(constructed_analysis(), sources=1, level=level)
    assert k == 1 and {n.source for n in given} == {0}
    with pytest.raises(ValueError, match="level"):
        separate_notes(constructed_analysis(), level="bin")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """An untrained timbre branch on the shipped AMT branch: notes are real, sources arbitrary."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("two_branch") / "w.pt"
    save_weights(SYSTEM.build_model().load_amt(pretrained.load("amt")), path)
    return path


def test_infer_names_parts_and_gives_each_a_program(weights):
    model = SYSTEM.load(weights=weights)
    mixture = synthetic_test_mixture(0, 1, 3.0, (2, 2))
    output = SYSTEM.infer(model, mixture.audio, sources=2)
    assert output.sources == ["Part 1", "Part 2"]
    assert output.programs == list(PLAYBACK_PROGRAMS[:2])
    assert output.notes and {n.source for n in output.notes} <= {0, 1}


def test_cli_transcribe_separate_writes_one_track_per_part(weights, tmp_path, capsys):
    mixture = synthetic_test_mixture(1, 1, 3.0, (3, 3))
    write_wav(tmp_path / "a.wav", mixture.audio, 22050)
    write_wav(tmp_path / "b.wav", mixture.audio[: 22050 * 2], 22050)
    argv = ["transcribe", "--separate", "--sources", "3", "--weights", str(weights)]
    assert (
        main([*argv, str(tmp_path / "a.wav"), str(tmp_path / "b.wav"), "-o", str(tmp_path / "out")])
        == 0
    )
    assert "3 sources" in capsys.readouterr().out
    for name in ("a", "b"):
        midi = pretty_midi.PrettyMIDI(str(tmp_path / "out" / f"{name}.mid"))
        names = [track.name for track in midi.instruments]
        assert names == [f"Part {k + 1} (source {k})" for k in range(len(names))]
        programs = [track.program for track in midi.instruments]
        assert len(set(programs)) == len(programs)  # each part sounds different
        assert {n.source for n in read_notes(tmp_path / "out" / f"{name}.mid")} <= {0, 1, 2}
    # the same file as CSV carries the source column
    assert main([*argv, str(tmp_path / "a.wav"), "-o", str(tmp_path / "a.csv")]) == 0
    assert {n.source for n in read_notes(tmp_path / "a.csv")} <= {0, 1, 2}
