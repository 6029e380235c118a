"""Figures, players and widgets of timbrelab.viz on tiny inputs (Agg, no display)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from timbrelab import viz  # noqa: E402
from timbrelab.notes import Note  # noqa: E402

NOTES = [Note(0.0, 0.5, 60, 100, 0), Note(0.25, 1.0, 64, 80, 1), Note(0.5, 0.9, 67, 60, 1)]


def _rendered(fig: Figure) -> Figure:
    fig.canvas.draw()  # layout and rendering errors surface only when drawn
    return fig


def test_midi_to_name():
    assert [viz.midi_to_name(p) for p in (21, 60, 61, 108)] == ["A0", "C4", "C#4", "C8"]


def test_piano_roll_from_notes_colours_sources_and_labels_legend():
    fig = _rendered(viz.plot_piano_roll(NOTES, source_names=["flute", "cello"], title="t"))
    ax = fig.axes[0]
    assert isinstance(fig, Figure)
    assert len(ax.patches) == 3
    assert {p.get_facecolor()[:3] for p in ax.patches[1:]} == {ax.patches[1].get_facecolor()[:3]}
    assert ax.patches[0].get_facecolor()[:3] != ax.patches[1].get_facecolor()[:3]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["flute", "cello"]
    assert ax.get_ylim() == (57.5, 69.5)  # 60..67 with a 2-semitone margin
    assert "C4" in [t.get_text() for t in ax.get_yticklabels()]


def test_piano_roll_from_roll_and_tensor_draws_on_given_axes():
    roll = torch.zeros(1, 88, 20)
    roll[0, 39, 2:10] = 1  # MIDI 60
    fig = Figure()
    ax = fig.add_subplot()
    assert viz.plot_piano_roll(roll, ax=ax) is fig
    _rendered(fig)
    assert ax.get_ylim() == (57.5, 62.5)


def test_piano_roll_rejects_bad_input():
    with pytest.raises(ValueError, match="empty"):
        viz.plot_piano_roll([])
    with pytest.raises(ValueError, match="2-D"):
        viz.plot_piano_roll(np.zeros((2, 88, 10)))


@pytest.mark.parametrize("kind", ["cqt", "stft", "mel"])
def test_spectrogram_kinds(kind):
    mag = np.abs(np.random.default_rng(0).standard_normal((1, 36, 12)))
    fig = _rendered(viz.plot_spectrogram(mag, kind=kind, bins_per_octave=12))
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2  # image + colorbar
    image = fig.axes[0].images[0].get_array()
    assert image.shape == (36, 12)
    assert np.isclose(image.max(), 0.0) and image.min() >= -80  # dB relative to the peak


def test_spectrogram_cqt_ticks_every_c():
    fig = viz.plot_spectrogram(
        np.ones((24, 5)), kind="cqt", fmin=32.70, bins_per_octave=12, db=False, colorbar=False
    )
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["C1", "C2"]  # fmin = C1 (32.70 Hz), 24 bins = 2 octaves
    assert np.allclose(ax.get_yticks(), [0, 12], atol=0.01)


def test_spectrogram_stft_shows_the_asked_frequency_range():
    mag = np.ones((513, 5))
    ax = viz.plot_spectrogram(mag, kind="stft", sample_rate=16000, fmax=4000).axes[0]
    assert ax.get_ylim() == (0.0, 4000.0)
    ax = viz.plot_spectrogram(mag, kind="stft", sample_rate=16000).axes[0]
    assert ax.get_ylim() == (0.0, 8000.0)


def test_spectrogram_rejects_unknown_kind():
    with pytest.raises(ValueError, match="kind must be one of"):
        viz.plot_spectrogram(np.ones((4, 4)), kind="wavelet")


def test_posteriorgram_with_reference_notes():
    probs = torch.rand(88, 100)
    fig = _rendered(viz.plot_posteriorgram(probs, ref=NOTES))
    ax = fig.axes[0]
    assert ax.images[0].get_array().shape == (88, 100)
    assert any(c.__class__.__name__.endswith("ContourSet") for c in ax.collections)


def test_compare_rolls_counts_hits_false_alarms_and_misses():
    ref = np.zeros((88, 10))
    est = np.zeros((88, 10))
    ref[39, 0:6] = 1
    est[39, 2:8] = 1  # 4 hits, 2 misses (0, 1), 2 false alarms (6, 7)
    fig = _rendered(viz.compare_rolls(ref, est))
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["hit (4)", "false alarm (2)", "miss (2)"]
    assert legend.get_title().get_text() == "frame F1 = 0.67"
    pixels = fig.axes[0].images[0].get_array()
    assert pixels.shape == (88, 10, 4)
    assert pixels[39, 3, 1] > pixels[39, 3, 0]  # a hit is green
    assert pixels[39, 7, 0] > pixels[39, 7, 2]  # a false alarm is red
    assert pixels[0, 0, 3] == 0  # silence is transparent


def test_compare_rolls_from_notes_and_shape_mismatch():
    fig = viz.compare_rolls(NOTES, NOTES[:2])
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert texts[1] == "false alarm (0)" and texts[2] != "miss (0)"
    with pytest.raises(ValueError, match="shape"):
        viz.compare_rolls(np.zeros((88, 10)), np.zeros((88, 11)))


def test_audio_player_embeds_a_wav():
    player = viz.audio_player(torch.sin(torch.arange(2205) / 5.0).unsqueeze(0), 22050)
    assert "<audio" in player._repr_html_()
    assert player.data[:4] == b"RIFF"
    with pytest.raises(ValueError, match="mono"):
        viz.audio_player(np.zeros((2, 100)))
    with pytest.raises(ValueError, match="NaN"):
        viz.audio_player(np.array([0.0, np.nan]))


def test_sonify_notes_one_program_per_source():
    audio = viz.sonify_notes(NOTES, 16000, programs=[0, 40], seconds=1.5)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 24000) <= 16000 * 0.05
    assert np.isclose(np.abs(audio).max(), 0.9, atol=1e-3)


def test_plot_cqt_keeps_bins_below_nyquist():
    audio = np.sin(2 * np.pi * 440 * np.arange(4000) / 8000).astype(np.float32)
    fig = viz.plot_cqt(audio, 8000, bins_per_octave=12, fmin=110.0, n_octaves=7)
    n_bins = fig.axes[0].images[0].get_array().shape[0]
    assert 110 * 2 ** ((n_bins - 1) / 12) < 4000 <= 110 * 2 ** ((n_bins + 12) / 12)
    assert "12 bins/octave" in fig.axes[0].get_title()


def test_figure_explorer_redraws_on_change():
    import ipywidgets as widgets

    calls = []

    def draw(scale):
        calls.append(scale)
        fig = Figure()
        fig.add_subplot().plot([0, scale])
        return fig

    slider = widgets.IntSlider(value=1, min=1, max=3)
    box = viz.figure_explorer(draw, {"scale": slider})
    assert isinstance(box, widgets.VBox) and slider in box.children[0].children
    slider.value = 3
    assert calls == [1, 3]


def test_cqt_explorer_builds_controls():
    audio = np.zeros(2048, np.float32)
    audio[1000] = 1.0
    box = viz.cqt_explorer(audio)
    controls = box.children[0].children
    assert [c.description for c in controls] == ["bins/octave", "hop", "fmin"]


def test_show_source_is_a_python_code_block():
    shown = viz.show_source(viz.midi_to_name)
    text = shown._repr_markdown_()
    assert text.startswith("```python\ndef midi_to_name(") and text.endswith("\n```")


def _toy_circle():
    angles = np.array([0.0, 0.3, -0.2, 2.0, 2.4, 4.0])
    return np.stack([np.cos(angles), np.sin(angles)], axis=1), np.array([0, 0, 0, 1, 1, 2])


def test_contrastive_toy_softmax_and_loss():
    points, labels = _toy_circle()
    fig = _rendered(viz.plot_contrastive_toy(points * 3, labels, anchor=0, temperature=0.5))
    circle, bars = fig.axes
    heights = np.array([b.get_height() for b in bars.patches])
    s = points[1:] @ points[0]
    expected = np.exp(s / 0.5) / np.exp(s / 0.5).sum()  # points are normalised first
    np.testing.assert_allclose(heights, expected, rtol=1e-6)
    loss = -np.log(expected[:2].sum())
    assert f"loss = {loss:.2f}" in bars.get_title()
    grey = bars.patches[-1].get_facecolor()[:3]
    assert bars.patches[0].get_facecolor()[:3] != grey  # a positive is coloured
    assert len(circle.lines) == 1 + 5  # the circle and one line per other point


def test_contrastive_toy_lower_temperature_sharpens():
    points, labels = _toy_circle()
    peaks = []
    for tau in (1.0, 0.1):
        bars = viz.plot_contrastive_toy(points, labels, temperature=tau).axes[1]
        peaks.append(max(b.get_height() for b in bars.patches))
    assert peaks[1] > peaks[0]


def test_contrastive_toy_rejects_bad_input():
    points, labels = _toy_circle()
    with pytest.raises(ValueError, match="anchor"):
        viz.plot_contrastive_toy(points, labels, anchor=6)
    with pytest.raises(ValueError, match="temperature"):
        viz.plot_contrastive_toy(points, labels, temperature=0)
    with pytest.raises(ValueError, match=r"\(M, 2\)"):
        viz.plot_contrastive_toy(np.zeros((6, 3)), labels)


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_embedding_map_subsamples_and_colours_by_label(method):
    rng = np.random.default_rng(0)
    centres = np.eye(4)[:2] * 5
    labels = np.repeat([0, 1], 40)
    points = centres[labels] + rng.standard_normal((80, 4)) * 0.1
    fig = _rendered(
        viz.plot_embedding_map(
            points, labels, label_names=["oboe", "cello"], method=method, max_points=50
        )
    )
    ax = fig.axes[0]
    sizes = [len(c.get_offsets()) for c in ax.collections]
    assert len(sizes) == 2 and sum(sizes) == 50
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["oboe", "cello"]
    # two well-separated groups stay apart in 2-D
    a, b = (c.get_offsets() for c in ax.collections)
    gap = np.linalg.norm(a.mean(0) - b.mean(0))
    assert gap > 2 * max(a.std(0).max(), b.std(0).max())


def test_embedding_map_rejects_bad_input():
    with pytest.raises(ValueError, match="one label each"):
        viz.plot_embedding_map(np.zeros((5, 3)), [0, 1])
    with pytest.raises(ValueError, match="method"):
        viz.plot_embedding_map(np.zeros((5, 3)), [0] * 5, method="umap")


def _toy_analysis():
    """Two notes of one timbre (+x) and one of another (+y), 12-D embeddings."""
    from types import SimpleNamespace

    emb = np.zeros((12, 88, 100), np.float32)
    emb[2] = 1.0  # silence points elsewhere
    probs = np.zeros((88, 100), np.float32)
    notes = [Note(0.0, 0.2, 60, 100), Note(0.4, 0.6, 64, 100), Note(0.1, 0.5, 67, 100)]
    for n, axis in zip(notes, (0, 0, 1), strict=True):
        row, cols = n.pitch - 21, slice(round(n.onset * 100), round(n.offset * 100))
        probs[row, cols] = 0.9
        emb[:, row, cols] = 0.0
        emb[axis, row, cols] = 1.0
    return SimpleNamespace(embedding=emb, frame_probs=probs), notes


def test_note_similarity_map_values():
    analysis, notes = _toy_analysis()
    fig = _rendered(viz.plot_note_similarity(analysis.embedding, analysis.frame_probs, notes, 0))
    ax = fig.axes[0]
    image = np.ma.filled(ax.images[0].get_array().astype(float), np.nan)
    assert image[64 - 21, 50] == pytest.approx(1.0)  # same timbre
    assert image[67 - 21, 30] == pytest.approx(0.0)  # orthogonal timbre
    assert np.isnan(image[0, 0])  # silent bins are blank
    assert len(ax.patches) == 3 and "C4" in ax.get_title()
    with pytest.raises(ValueError, match="index"):
        viz.plot_note_similarity(analysis.embedding, analysis.frame_probs, notes, 3)


def test_embedding_explorer_redraws_for_the_chosen_note(monkeypatch):
    import ipywidgets as widgets

    analysis, notes = _toy_analysis()
    drawn = []
    real = viz.plot_note_similarity

    def spy(*args, **kwargs):
        drawn.append(args[3])
        return real(*args, **kwargs)

    monkeypatch.setattr(viz, "plot_note_similarity", spy)
    box = viz.embedding_explorer(analysis, notes, start=1)
    (choice,) = box.children[0].children
    assert isinstance(choice, widgets.Dropdown) and choice.value == 1
    assert choice.options[2][0].startswith("2: G4 at 0.10 s")
    choice.value = 2
    assert drawn == [1, 2]
    with pytest.raises(ValueError, match="empty"):
        viz.embedding_explorer(analysis, [])
