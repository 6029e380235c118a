"""The Cerberus systems: data in line-up order, inference by masks or k-means, the CLI."""

from __future__ import annotations

import numpy as np
import pretty_midi
import pytest
import torch

from timbrelab import systems
from timbrelab.audio import write_wav
from timbrelab.cli import main
from timbrelab.notes import read_notes
from timbrelab.systems.cerberus import (
    kmeans_masks,
    onset_roll,
    order_clusters,
    separate,
    separation_scores,
    source_names,
    transcription_targets,
)

TINY = dict(hidden_size=8, num_layers=1, embedding_dim=4, head_rank=4)


def test_both_systems_are_registered_at_16_khz_and_separate():
    lineups = {
        "cerberus": ["Piano", "Acoustic Guitar", "Bass", "Drums"],
        "cerberus_quartet": ["Violin", "Clarinet", "Saxophone", "Bassoon"],
    }
    for name, parts in lineups.items():
        system = systems.get(name)
        assert system.separates and "transcribe" in system.tasks
        assert (system.sample_rate, system.hop_length) == (16000, 256)
        assert source_names(system.programs) == parts
        model = system.build_model(**TINY)
        assert model.name == name and model.config.programs == system.programs


def test_source_names_number_repeated_classes():
    assert source_names([40, 40, 42]) == ["Violin 1", "Violin 2", "Cello"]


def test_lineup_items_come_in_lineup_order_with_every_source_playing():
    system = systems.get("cerberus")
    data = system.data(2, seconds=2.0, seed=3)
    for index in range(2):
        item = data[index]
        assert item["programs"].tolist() == list(system.programs)
        assert item["stems"].shape == (4, 32000) and item["stem_frame"].shape == (4, 88, 126)
        assert torch.allclose(item["stems"].sum(0), item["audio"], atol=1e-6)
        onsets = onset_roll(item["stem_frame"]).sum(dim=(1, 2))
        assert (onsets >= 4).all(), onsets  # drums included: their keys are in stem_frame


def test_drums_learn_onsets_and_pitched_sources_learn_frames():
    roll = torch.zeros(1, 2, 88, 6)
    roll[0, :, 10, 1:4] = 1
    target = transcription_targets(roll, (0, 128))
    assert target[0, 0, 10].tolist() == [0, 1, 1, 1, 0, 0]
    assert target[0, 1, 10].tolist() == [0, 1, 0, 0, 0, 0]


def test_kmeans_recovers_well_separated_clusters_and_order_clusters_aligns_them():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, size=(5, 40))
    centres = np.eye(3, 4)
    embedding = (centres[truth] + 0.05 * rng.standard_normal((5, 40, 4))).transpose(2, 0, 1)
    masks = kmeans_masks(embedding, np.ones((5, 40)), 3)
    assert masks.shape == (3, 5, 40) and np.allclose(masks.sum(0), 1)
    # each cluster is exactly one true source
    for mask in masks:
        assert len(np.unique(truth[mask > 0])) == 1
    activity = rng.random((3, 50))
    assert order_clusters(activity[[2, 0, 1]], activity).tolist() == [1, 2, 0]


def test_separation_scores_sdr_si_sdr_and_best_assignment():
    rng = np.random.default_rng(1)
    references = rng.standard_normal((2, 1000))
    noise = 0.1 * rng.standard_normal((2, 1000))
    estimates = references + noise
    scores = separation_scores(references, estimates)
    expected = 10 * np.log10((references**2).sum(1) / (noise**2).sum(1))
    assert np.allclose(scores["sdr"], expected)
    halved = separation_scores(references, 0.5 * estimates)  # SI-SDR ignores the scale
    assert np.allclose(halved["si_sdr"], scores["si_sdr"]) and np.all(halved["sdr"] < 7)
    swapped = separation_scores(references, estimates[::-1], best_assignment=True)
    assert np.allclose(swapped["sdr"], expected) and swapped["assignment"].tolist() == [1, 0]
    silent = separation_scores(np.stack([references[0], np.zeros(1000)]), estimates)
    assert np.isnan(silent["sdr"][1]) and np.isfinite(silent["sdr"][0])


@pytest.mark.parametrize(("heads", "method"), [("dc,mi,tr", None), ("dc,mi,tr", "kmeans"),
                                               ("dc", None), ("mi", "mask")])  # fmt: skip
def test_separate_gives_stems_that_add_up_to_the_mixture(heads, method):
    torch.manual_seed(0)
    system = systems.get("cerberus_quartet")
    model = system.build_model(heads=heads, **TINY)
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, 8000).astype(np.float32)
    result = separate(model, audio, method=method)
    assert result.method == (method or ("mask" if "mi" in heads else "kmeans"))
    assert result.stems.shape == (4, 8000) and result.masks.shape == (4, 513, 32)
    # masks sum to one in every bin, so the stems add up to the (resynthesised) mixture
    assert np.allclose(result.stems.sum(0), audio, atol=1e-4)
    assert (result.probabilities is None) == ("tr" not in heads)
    output = system.infer(model, audio)
    expected = ["cluster 1", "cluster 2", "cluster 3", "cluster 4"] if heads == "dc" else \
        ["Violin", "Clarinet", "Saxophone", "Bassoon"]  # fmt: skip
    assert output.sources == expected and output.sample_rate == 16000


def test_separate_refuses_a_method_without_its_head():
    model = systems.get("cerberus").build_model(heads="mi,tr", **TINY)
    with pytest.raises(ValueError, match="needs the 'dc' head"):
        separate(model, np.zeros(4000, np.float32), method="kmeans")
    with pytest.raises(ValueError, match="method"):
        separate(model, np.zeros(4000, np.float32), method="nmf")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny cerberus_quartet trained for two steps through the CLI, and a duet to run on."""
    folder = tmp_path_factory.mktemp("cerberus")
    argv = ["train", "cerberus_quartet", "--out", str(folder / "run"), "--steps", "2"]
    for key, value in {**TINY, "heads": "dc,mi,tr"}.items():
        argv += ["--config", f"{key}={value}"]
    assert main(argv) == 0
    t = np.arange(22050) / 22050
    duet = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 147 * t)
    write_wav(folder / "duet.wav", duet, 22050)  # any rate goes in
    return folder


def test_the_cli_separates_into_one_named_wav_and_midi_per_instrument(trained, capsys):
    weights = trained / "run" / "weights.pt"
    code = main(["separate", "--weights", str(weights), str(trained / "duet.wav"),
                 "-o", str(trained / "parts"), "--frame-threshold", "0.01"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    names = sorted(p.name for p in (trained / "parts" / "duet").iterdir())
    stems = ["0_violin", "1_clarinet", "2_saxophone", "3_bassoon"]
    assert names == sorted(f"{s}.{ext}" for s in stems for ext in ("mid", "wav"))


def test_the_cli_transcribes_into_one_midi_with_a_named_track_per_instrument(trained, capsys):
    weights = trained / "run" / "weights.pt"
    target = trained / "duet.mid"
    code = main(["transcribe", "--model", "cerberus_quartet", "--weights", str(weights),
                 str(trained / "duet.wav"), "-o", str(target),
                 "--frame-threshold", "0.01"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    tracks = [track.name for track in pretty_midi.PrettyMIDI(str(target)).instruments]
    parts = ["Violin", "Clarinet", "Saxophone", "Bassoon"]
    assert tracks == [f"{part} (source {k})" for k, part in enumerate(parts)]
    notes = read_notes(target)
    assert notes and {n.source for n in notes} <= {0, 1, 2, 3}


def test_the_cli_refuses_bad_input_with_one_line_and_no_output(trained, capsys):
    (trained / "text.wav").write_text("not audio")
    weights = trained / "run" / "weights.pt"
    code = main(["separate", "--weights", str(weights), str(trained / "text.wav"),
                 "-o", str(trained / "bad")])  # fmt: skip
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and len(err) == 1 and "text.wav: not a readable audio file" in err[0]
    assert not (trained / "bad" / "text").exists()
    code = main(["train", "cerberus", "--out", str(trained / "t"), "--config", "heads=dc,xx"])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and len(err) == 1 and "heads" in err[0]
    assert not (trained / "t").exists()


def test_a_transcription_only_network_transcribes_but_does_not_separate(tmp_path, capsys):
    from timbrelab.training import save_weights

    torch.manual_seed(0)
    model = systems.get("cerberus").build_model(heads="tr", **TINY)
    audio = 0.3 * np.sin(np.arange(8000) / 5.0).astype(np.float32)
    result = separate(model, audio, frame_threshold=0.01)
    assert result.stems is None and result.masks is None and result.method is None
    assert result.probabilities.shape == (4, 88, 32) and result.notes
    save_weights(model, tmp_path / "tr.pt")
    write_wav(tmp_path / "tone.wav", audio, 16000)
    argv = ["separate", "--weights", str(tmp_path / "tr.pt"), str(tmp_path / "tone.wav"),
            "-o", str(tmp_path / "parts")]  # fmt: skip
    code = main(argv)
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and len(err) == 1 and "makes no stems" in err[0]
    assert not (tmp_path / "parts" / "tone").exists()
