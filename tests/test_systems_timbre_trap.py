"""The timbre_trap system: targets, recipe, chunked inference, synthesis and the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from timbrelab import systems
from timbrelab.audio import load_audio, write_wav
from timbrelab.cli import main
from timbrelab.models.timbre_trap import TimbreTrap, TimbreTrapConfig
from timbrelab.notes import read_notes
from timbrelab.systems.timbre_trap import TIERS, recipe, render, salience_targets
from timbrelab.training import save_weights

TINY = dict(sample_rate=4000, n_octaves=6, bins_per_octave=12, hop_length=16,
            base_channels=2, latent_size=8)  # fmt: skip


def test_registered_with_its_tasks():
    system = systems.get("timbre_trap")
    assert system.tasks == ("transcribe", "reconstruct") and system.reconstructs
    assert not system.separates and system.sample_rate == 22050
    assert system.build_model(**TINY).config.base_channels == 2


def test_each_active_key_lights_its_nearest_bin():
    cqt_bins = TimbreTrap(TimbreTrapConfig(**TINY)).cqt.frequencies  # 31 Hz .. 2 kHz
    roll = torch.zeros(1, 88, 3)
    roll[0, 60 - 21, 0] = 1  # C4
    roll[0, 108 - 21, 1] = 1  # C8, above the top band: no bin
    roll[0, [45 - 21, 52 - 21], 2] = 1  # two keys in one frame
    target = salience_targets(roll, cqt_bins)
    assert target.shape == (1, len(cqt_bins), 3)
    midi = 69 + 12 * np.log2(cqt_bins[np.flatnonzero(target[0, :, 0])] / 440.0)
    assert np.allclose(midi, [60], atol=0.5)
    assert target[0, :, 1].sum() == 0 and target[0, :, 2].sum() == 2


def test_quick_recipe_trains_with_and_without_unlabelled_audio(tmp_path):
    r = recipe("quick", seed=1, model_config=TINY, audio_only_items=4,
               steps=1, batch_size=1, eval_every=1, progress=False)  # fmt: skip
    assert set(r.train_data) == {"labelled", "audio_only"}
    item = r.train_data["labelled"][0]
    assert item["audio"].shape == (round(TIERS["quick"].seconds * 4000),)
    r.val_data = torch.utils.data.Subset(r.val_data, [0])
    last = r.trainer(tmp_path).fit()[-1]
    assert {"train_transcription", "train_consistency", "train_audio_only_reconstruction",
            "frame_f1", "frame_precision", "sdr"} <= set(last)  # fmt: skip
    with pytest.raises(ValueError, match="tier"):
        recipe("huge")


def test_the_full_tier_is_the_papers_setting():
    full = recipe("full", model_config={"base_channels": 1, "latent_size": 4})
    assert full.model.cqt.n_bins == 542 and full.model.config.sample_rate == 22050
    c = full.config
    assert (c.batch_size, c.lr, c.grad_clip, c.lr_schedule, c.monitor) == (
        8, 1e-3, 10.0, "plateau", "frame_f1"
    )
    assert full.train_data[0]["audio"].shape == (9 * 22050,)


class _Identity(TimbreTrap):
    """Both modes give back the input coefficients: synthesis must return the input audio."""

    def decode(self, latents, levels, transcribe):
        return self._input

    def encode(self, features):
        self._input = features
        return super().encode(features)


def test_chunked_synthesis_of_the_transcription_is_exact():
    model = _Identity(TimbreTrapConfig(**TINY)).eval()
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(4000 * 3 + 37)).astype(np.float32)  # not whole frames
    out = render(model, audio, chunk_seconds=0.7, margin_seconds=0.1)
    assert out.timbreless.shape == out.reconstruction.shape == audio.shape
    np.testing.assert_allclose(out.timbreless, audio, atol=1e-5)
    whole = render(model, audio, chunk_seconds=10)
    assert out.salience.shape == whole.salience.shape == (74, -(-audio.size // 16))
    assert out.latents.shape[1] == out.salience.shape[1]


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tt")
    save_weights(TimbreTrap(TimbreTrapConfig(**TINY)), folder / "tt.pt")
    t = np.arange(2 * 22050) / 22050
    write_wav(folder / "a.wav", 0.3 * np.sin(2 * np.pi * 220 * t), 22050)
    write_wav(folder / "b.wav", 0.3 * np.sin(2 * np.pi * 330 * t), 44100)
    return folder


def test_infer_gives_notes_reconstruction_and_timbreless_audio(tiny_weights):
    system = systems.get("timbre_trap")
    model = system.load(weights=tiny_weights / "tt.pt")
    out = system.infer(model, np.zeros(22050, np.float32) + 0.01, frame_threshold=0.9)
    assert out.sample_rate == 4000 and out.reconstruction.shape == (4000,)
    assert set(out.renderings) == {"timbre-less"} and out.renderings["timbre-less"].shape == (4000,)
    assert all(n.source is None for n in out.notes)


def test_cli_transcribes_and_reconstructs_a_batch(tiny_weights, capsys):
    w, ws = tiny_weights / "tt.pt", tiny_weights
    assert main(["transcribe", str(ws / "a.wav"), "-o", str(ws / "a.csv"), "--weights", str(w),
                 "--frame-threshold", "0.2"]) == 0  # fmt: skip
    read_notes(ws / "a.csv")  # a valid notes file, whatever an untrained model finds
    code = main(["reconstruct", str(ws / "a.wav"), str(ws / "b.wav"), "-o", str(ws / "rec"),
                 "--weights", str(w)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    for name, seconds in (("a", 2), ("b", 1)):  # b: 2 * 22050 samples at 44.1 kHz
        files = sorted(p.name for p in (ws / "rec" / name).iterdir())
        assert files == ["reconstruction.wav", "timbre_less.wav"]
        audio = load_audio(ws / "rec" / name / "reconstruction.wav", 4000)
        assert audio.shape == (seconds * 4000,)
    # the folders exist now: without --force nothing is touched
    before = (ws / "rec" / "a" / "reconstruction.wav").read_bytes()
    assert main(["reconstruct", str(ws / "a.wav"), "-o", str(ws / "rec"),
                 "--weights", str(w)]) == 2  # fmt: skip
    assert "not empty" in capsys.readouterr().err
    assert (ws / "rec" / "a" / "reconstruction.wav").read_bytes() == before
