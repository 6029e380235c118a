"""Figures, audio players and widgets shared by every chapter.

Every plotting function draws on a :class:`matplotlib.figure.Figure` made without ``pyplot``
(or on the ``ax`` it is given) and returns that figure: no global state, no ``plt.show()``, and a
figure returned as a cell's last value shows exactly once in a notebook (after
``%matplotlib inline``). Inputs may be numpy arrays or torch tensors.

Chapter: book/01_cqt_features.md
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from timbrelab.constants import FMIN_HZ, FRAME_RATE, HOP_LENGTH, MIDI_MIN, SAMPLE_RATE
from timbrelab.notes import Note, notes_to_rolls

_PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
#: Colours of :func:`compare_rolls`: true positives, false positives, false negatives.
TP_COLOR, FP_COLOR, FN_COLOR = "#2ca02c", "#d62728", "#1f77b4"
SPECTROGRAM_KINDS = ("cqt", "stft", "mel")


def midi_to_name(pitch: int) -> str:
    """Scientific pitch name of a MIDI number: 60 -> ``"C4"``, 21 -> ``"A0"``.

    Chapter: book/01_cqt_features.md
    """
    return f"{_PITCH_CLASSES[int(pitch) % 12]}{int(pitch) // 12 - 1}"


def _numpy(x, name: str) -> np.ndarray:
    """A float numpy copy of an array or (possibly GPU, grad-tracking) torch tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    array = np.asarray(x, dtype=np.float64)
    if array.size == 0:
        raise ValueError(f"{name} is empty (shape {array.shape})")
    return array


def _matrix(x, name: str) -> np.ndarray:
    """A 2-D ``(rows, T)`` array; leading singleton batch/channel axes are dropped."""
    array = _numpy(x, name)
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (rows, T) after dropping size-1 axes, got shape {array.shape}"
        )
    return array


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is None:
        fig = Figure(figsize=figsize, layout="constrained")
        return fig, fig.add_subplot()
    return ax.figure, ax


def _is_notes(x) -> bool:
    return (
        isinstance(x, Sequence) and not isinstance(x, str) and all(isinstance(n, Note) for n in x)
    )


def _pitch_ticks(ax: Axes, lo: float, hi: float, to_axis: Callable[[float], float]) -> None:
    """Tick every C (every octave) between MIDI ``lo`` and ``hi``, labelled C1, C2, ..."""
    c_pitches = [p for p in range(math.ceil(lo), math.floor(hi) + 1) if p % 12 == 0]
    ax.set_yticks([to_axis(p) for p in c_pitches], [midi_to_name(p) for p in c_pitches])


def plot_piano_roll(
    roll_or_notes,
    *,
    frame_rate: float = FRAME_RATE,
    midi_min: int = MIDI_MIN,
    source_names: Sequence[str] | None = None,
    pitch_margin: int = 2,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Draw a piano roll from a binary roll or from notes (one colour per source).

    Parameters
    ----------
    roll_or_notes : array ``(P, T)`` or list of Note
        A roll (row 0 is MIDI ``midi_min``, column ``t`` is time ``t / frame_rate``; values in
        [0, 1]) or note events; notes are coloured by ``note.source``.
    frame_rate : float
        Frames per second of a roll.
    midi_min : int
        MIDI pitch of a roll's row 0.
    source_names : sequence of str, optional
        Legend label per source index (e.g. instrument names).
    pitch_margin : int
        Semitones shown below the lowest and above the highest note.
    ax : Axes, optional
        Draw here instead of on a new figure.
    title : str, optional

    Returns
    -------
    Figure

    Chapter: book/01_cqt_features.md
    """
    fig, ax = _axes(ax, (9, 3.2))
    if _is_notes(roll_or_notes):
        notes = list(roll_or_notes)
        if not notes:
            raise ValueError("plot_piano_roll: the note list is empty")
        sources = sorted({n.source for n in notes}, key=lambda s: -1 if s is None else s)
        colors = {s: f"C{i % 10}" for i, s in enumerate(sources)}
        for n in notes:
            ax.add_patch(
                Rectangle(
                    (n.onset, n.pitch - 0.4),
                    n.offset - n.onset,
                    0.8,
                    facecolor=colors[n.source],
                    edgecolor="black",
                    linewidth=0.3,
                    alpha=0.4 + 0.6 * n.velocity / 127,
                )
            )
        lo = min(n.pitch for n in notes) - pitch_margin
        hi = max(n.pitch for n in notes) + pitch_margin
        ax.set_xlim(0, max(n.offset for n in notes))
        if len(sources) > 1 or source_names is not None:

            def label(s):
                if s is None:
                    return "no source"
                return source_names[s] if source_names is not None else f"source {s}"

            ax.legend(
                handles=[Patch(color=colors[s], label=label(s)) for s in sources],
                loc="upper right",
                fontsize="small",
                framealpha=0.8,
            )
    else:
        roll = _matrix(roll_or_notes, "roll")
        active = np.flatnonzero(roll.max(axis=1) > 0)
        span = (active[0], active[-1]) if active.size else (0, roll.shape[0] - 1)
        lo, hi = midi_min + span[0] - pitch_margin, midi_min + span[1] + pitch_margin
        ax.imshow(
            roll,
            origin="lower",
            aspect="auto",
            cmap="Greys",
            vmin=0,
            vmax=1,
            interpolation="nearest",
            extent=(0, roll.shape[1] / frame_rate, midi_min - 0.5, midi_min + roll.shape[0] - 0.5),
        )
    ax.set_ylim(lo - 0.5, hi + 0.5)
    _pitch_ticks(ax, lo, hi, lambda p: p)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("pitch")
    if title:
        ax.set_title(title)
    return fig


def _hz_to_midi(hz: float) -> float:
    return 69.0 + 12.0 * math.log2(hz / 440.0)


def plot_spectrogram(
    mag,
    *,
    kind: str = "cqt",
    sample_rate: int = SAMPLE_RATE,
    hop_length: int = HOP_LENGTH,
    fmin: float | None = None,
    fmax: float | None = None,
    bins_per_octave: int = 12,
    db: bool = True,
    top_db: float = 80.0,
    colorbar: bool = True,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Draw a magnitude spectrogram with a frequency axis that matches its kind.

    Parameters
    ----------
    mag : array ``(F, T)``
        Magnitudes (not yet in dB; leading size-1 axes are dropped, so ``(1, F, T)`` works).
    kind : {"cqt", "stft", "mel"}
        ``cqt``: log-spaced bins from ``fmin`` (default ``FMIN_HZ``), ticked at every C;
        ``stft``: linear bins from 0 Hz to ``sample_rate / 2``, shown from ``fmin`` to ``fmax``
        when given;
        ``mel``: mel bins between ``fmin`` (default 0) and ``fmax`` (default ``sample_rate/2``),
        ticked in Hz.
    sample_rate, hop_length : int
        Give the time axis in seconds (and the STFT/mel frequency range).
    bins_per_octave : int
        CQT resolution.
    db : bool
        Show ``20 log10(mag / max)`` clipped at ``-top_db`` instead of raw magnitudes.
    colorbar : bool
    ax : Axes, optional
    title : str, optional

    Returns
    -------
    Figure

    Chapter: book/01_cqt_features.md
    """
    if kind not in SPECTROGRAM_KINDS:
        raise ValueError(f"plot_spectrogram: kind must be one of {SPECTROGRAM_KINDS}, got {kind!r}")
    mag = _matrix(mag, "mag")
    n_bins, n_frames = mag.shape
    if db:
        mag = 20 * np.log10(np.maximum(mag, 1e-10) / max(mag.max(), 1e-10))
        mag = np.maximum(mag, -top_db)
    fig, ax = _axes(ax, (9, 3.2))
    seconds = n_frames * hop_length / sample_rate
    nyquist = sample_rate / 2
    if kind == "stft":
        extent = (0, seconds, 0, nyquist)
        ylabel = "frequency (Hz)"
    else:
        extent = (0, seconds, -0.5, n_bins - 0.5)
        ylabel = "pitch" if kind == "cqt" else "frequency (Hz, mel scale)"
    image = ax.imshow(
        mag, origin="lower", aspect="auto", cmap="magma", extent=extent, interpolation="nearest"
    )
    if kind == "cqt":
        f0 = FMIN_HZ if fmin is None else fmin
        base = _hz_to_midi(f0)
        semitone = bins_per_octave / 12
        _pitch_ticks(ax, base, base + (n_bins - 1) / semitone, lambda p: (p - base) * semitone)
    elif kind == "stft" and (fmin is not None or fmax is not None):
        ax.set_ylim(0.0 if fmin is None else fmin, nyquist if fmax is None else fmax)
    elif kind == "mel":
        import librosa  # only the mel axis needs it

        centres = librosa.mel_frequencies(
            n_bins, fmin=0.0 if fmin is None else fmin, fmax=nyquist if fmax is None else fmax
        )
        ticks = np.linspace(0, n_bins - 1, 6).round().astype(int)
        ax.set_yticks(ticks, [f"{centres[i]:.0f}" for i in ticks])
    ax.set_xlabel("time (s)")
    ax.set_ylabel(ylabel)
    if colorbar:
        fig.colorbar(image, ax=ax, label="dB" if db else "magnitude", pad=0.01)
    if title:
        ax.set_title(title)
    return fig


def _roll(x, name: str, n_frames: int | None, frame_rate: float, midi_min: int) -> np.ndarray:
    """A binary ``(P, T)`` roll from a roll (thresholded at 0.5) or from notes."""
    if _is_notes(x):
        if n_frames is None:
            n_frames = 1 + max((int(n.offset * frame_rate) for n in x), default=0)
        return notes_to_rolls(x, n_frames, frame_rate, midi_min)["frame"] > 0.5
    return _matrix(x, name) > 0.5


def plot_posteriorgram(
    probs,
    *,
    ref=None,
    frame_rate: float = FRAME_RATE,
    midi_min: int = MIDI_MIN,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Draw note probabilities over time, optionally with the reference notes outlined.

    Parameters
    ----------
    probs : array ``(P, T)``
        Probabilities in [0, 1] (apply a sigmoid to logits first); row 0 is MIDI ``midi_min``.
    ref : array ``(P, T)`` or list of Note, optional
        Reference roll or notes, drawn as cyan outlines.
    frame_rate : float
    midi_min : int
    ax : Axes, optional
    title : str, optional

    Returns
    -------
    Figure

    Chapter: book/01_cqt_features.md
    """
    probs = _matrix(probs, "probs")
    fig, ax = _axes(ax, (9, 3.2))
    n_pitches, n_frames = probs.shape
    extent = (0, n_frames / frame_rate, midi_min - 0.5, midi_min + n_pitches - 0.5)
    image = ax.imshow(
        probs,
        origin="lower",
        aspect="auto",
        cmap="viridis",
        vmin=0,
        vmax=1,
        extent=extent,
        interpolation="nearest",
    )
    fig.colorbar(image, ax=ax, label="probability", pad=0.01)
    if ref is not None:
        ref_roll = _roll(ref, "ref", n_frames, frame_rate, midi_min)
        if ref_roll.shape != probs.shape:
            raise ValueError(f"ref roll shape {ref_roll.shape} != probs shape {probs.shape}")
        times = (np.arange(n_frames) + 0.5) / frame_rate
        pitches = midi_min + np.arange(n_pitches)
        ax.contour(
            times, pitches, ref_roll.astype(float), levels=[0.5], colors="cyan", linewidths=0.8
        )
    ax.set_xlabel("time (s)")
    ax.set_ylabel("pitch")
    _pitch_ticks(ax, midi_min, midi_min + n_pitches - 1, lambda p: p)
    if title:
        ax.set_title(title)
    return fig


def compare_rolls(
    ref,
    est,
    *,
    n_frames: int | None = None,
    frame_rate: float = FRAME_RATE,
    midi_min: int = MIDI_MIN,
    pitch_margin: int = 2,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Overlay an estimated roll on the reference: hits, false alarms and misses in colour.

    Green cells are true positives, red false positives (estimated, not in the reference) and
    blue false negatives (missed); the legend gives the counts and the frame-level F1.

    Parameters
    ----------
    ref, est : array ``(P, T)`` or list of Note
        Rolls (thresholded at 0.5) or notes; both are brought to the same ``(P, T)`` grid.
    n_frames : int, optional
        Frames of the grid when both inputs are notes (default: up to the last offset).
    frame_rate : float
    midi_min : int
    pitch_margin : int
        Semitones shown beyond the lowest/highest active pitch.
    ax : Axes, optional
    title : str, optional

    Returns
    -------
    Figure

    Chapter: book/01_cqt_features.md
    """
    if n_frames is None:
        for x in (ref, est):
            if not _is_notes(x):
                n_frames = _matrix(x, "roll").shape[1]
        if n_frames is None:
            n_frames = 1 + max((int(n.offset * frame_rate) for n in [*ref, *est]), default=0)
    ref_roll = _roll(ref, "ref", n_frames, frame_rate, midi_min)
    est_roll = _roll(est, "est", n_frames, frame_rate, midi_min)
    if ref_roll.shape != est_roll.shape:
        raise ValueError(f"compare_rolls: ref shape {ref_roll.shape} != est shape {est_roll.shape}")
    tp, fp, fn = ref_roll & est_roll, ~ref_roll & est_roll, ref_roll & ~est_roll
    image = np.ones(ref_roll.shape + (4,))
    image[..., 3] = 0.0  # transparent where both are silent
    from matplotlib.colors import to_rgba

    for mask, color in ((tp, TP_COLOR), (fp, FP_COLOR), (fn, FN_COLOR)):
        image[mask] = to_rgba(color)
    fig, ax = _axes(ax, (9, 3.2))
    n_pitches = ref_roll.shape[0]
    ax.imshow(
        image,
        origin="lower",
        aspect="auto",
        interpolation="nearest",
        extent=(0, ref_roll.shape[1] / frame_rate, midi_min - 0.5, midi_min + n_pitches - 0.5),
    )
    active = np.flatnonzero((ref_roll | est_roll).any(axis=1))
    span = (active[0], active[-1]) if active.size else (0, n_pitches - 1)
    lo, hi = midi_min + span[0] - pitch_margin, midi_min + span[1] + pitch_margin
    ax.set_ylim(lo - 0.5, hi + 0.5)
    _pitch_ticks(ax, lo, hi, lambda p: p)
    n_tp, n_fp, n_fn = int(tp.sum()), int(fp.sum()), int(fn.sum())
    f1 = 2 * n_tp / max(2 * n_tp + n_fp + n_fn, 1)
    ax.legend(
        handles=[
            Patch(color=TP_COLOR, label=f"hit ({n_tp})"),
            Patch(color=FP_COLOR, label=f"false alarm ({n_fp})"),
            Patch(color=FN_COLOR, label=f"miss ({n_fn})"),
        ],
        title=f"frame F1 = {f1:.2f}",
        loc="upper right",
        fontsize="small",
        framealpha=0.8,
    )
    ax.set_xlabel("time (s)")
    ax.set_ylabel("pitch")
    if title:
        ax.set_title(title)
    return fig


def audio_player(audio, sample_rate: int = SAMPLE_RATE, normalize: bool = True):
    """A notebook audio player for a mono signal.

    Parameters
    ----------
    audio : array ``(N,)``
        Mono samples (``(1, N)`` is accepted). With ``normalize=False`` they must lie in
        [-1, 1]; with ``normalize=True`` the player scales the peak to full range.
    sample_rate : int
    normalize : bool

    Returns
    -------
    IPython.display.Audio
        Shows as an HTML ``<audio>`` element (the WAV is embedded in the page).

    Chapter: book/01_cqt_features.md
    """
    from IPython.display import Audio

    samples = _numpy(audio, "audio")
    while samples.ndim > 1 and samples.shape[0] == 1:
        samples = samples[0]
    if samples.ndim != 1:
        raise ValueError(f"audio_player: audio must be mono (N,), got shape {samples.shape}")
    if not np.isfinite(samples).all():
        raise ValueError("audio_player: audio contains NaN or infinite samples")
    return Audio(samples, rate=int(sample_rate), normalize=normalize)


def sonify_notes(
    notes: Sequence[Note],
    sample_rate: int = SAMPLE_RATE,
    programs: Mapping[int, int] | Sequence[int] | None = None,
    seconds: float | None = None,
) -> np.ndarray:
    """Render notes to audio, one General MIDI instrument per source, to listen to a transcription.

    Parameters
    ----------
    notes : list of Note
        Notes with ``source`` None are played with the instrument of source 0.
    sample_rate : int
    programs : sequence or mapping source -> GM program, optional
        Instrument per source (default: piano for every source).
    seconds : float, optional
        Length of the output (default: until the last release tail ends).

    Returns
    -------
    np.ndarray ``(N,)`` float32
        The sum of the rendered sources, peak-normalised to 0.9 (silence stays silence).

    Chapter: book/01_cqt_features.md
    """
    from timbrelab.data.render import render_notes

    notes = list(notes)
    if not notes:
        raise ValueError("sonify_notes: the note list is empty")
    by_source: dict[int, list[Note]] = {}
    for n in notes:
        by_source.setdefault(0 if n.source is None else n.source, []).append(n)
    if seconds is None:
        seconds = max(n.offset for n in notes) + 1.0  # room for the release tails
    stems = [
        render_notes(
            group,
            0 if programs is None else programs[source],
            sample_rate=sample_rate,
            seconds=seconds,
        )
        for source, group in sorted(by_source.items())
    ]
    length = min(len(s) for s in stems)
    mix = np.sum([s[:length] for s in stems], axis=0)
    peak = float(np.abs(mix).max())
    return (mix * (0.9 / peak) if peak > 0 else mix).astype(np.float32)


def show_source(obj) -> object:
    """Show the source code of a function, class or method, highlighted, in a notebook.

    The book uses it to read the package's code next to the text (like ``obj??`` in IPython,
    but the listing also appears in the built pages).

    Parameters
    ----------
    obj : function, class, method or module

    Returns
    -------
    IPython.display.Markdown
        A fenced ``python`` code block.

    Chapter: book/01_cqt_features.md
    """
    import inspect
    import textwrap

    from IPython.display import Markdown

    source = textwrap.dedent(inspect.getsource(obj)).rstrip()
    return Markdown(f"```python\n{source}\n```")


def figure_explorer(draw: Callable[..., Figure], controls: Mapping[str, object]):
    """Wire widgets to a figure-drawing function: changing a control redraws the figure.

    Parameters
    ----------
    draw : callable
        ``draw(**values) -> Figure``, called with the current value of every control.
    controls : mapping name -> ipywidgets control
        Sliders, dropdowns...; the name is ``draw``'s keyword argument.

    Returns
    -------
    ipywidgets.VBox
        The controls above the figure. In the built book it is a static snapshot of its
        first state; run the notebook to explore.

    Chapter: book/01_cqt_features.md
    """
    import ipywidgets as widgets
    from IPython.display import display

    def show(**values) -> None:
        display(draw(**values))

    output = widgets.interactive_output(show, dict(controls))
    return widgets.VBox([widgets.HBox(list(controls.values())), output])


@lru_cache(maxsize=16)
def _cached_cqt(sample_rate: int, hop_length: int, fmin: float, n_bins: int, bins_per_octave: int):
    """Cached FFTCQT modules: a slider moved back and forth reuses its filter plans."""
    from timbrelab.features import FFTCQT

    return FFTCQT(
        sample_rate=sample_rate,
        hop_length=hop_length,
        fmin=fmin,
        n_bins=n_bins,
        bins_per_octave=bins_per_octave,
    )


def plot_cqt(
    audio,
    sample_rate: int = SAMPLE_RATE,
    *,
    bins_per_octave: int = 12,
    hop_length: int = HOP_LENGTH,
    fmin: float = FMIN_HZ,
    n_octaves: float = 9.0,
    ax: Axes | None = None,
) -> Figure:
    """Compute a CQT magnitude and draw it (dB, ticked at every C).

    Uses :class:`timbrelab.features.FFTCQT` (librosa's CQT, fast on a CPU, so an explorer
    redraws quickly). The top bin is kept below the Nyquist frequency, so ``n_octaves`` may be
    cut short.

    Parameters
    ----------
    audio : array ``(N,)``
    sample_rate, bins_per_octave, hop_length : int
    fmin : float
        Centre of the lowest bin in Hz.
    n_octaves : float
        Octaves covered above ``fmin``.
    ax : Axes, optional

    Returns
    -------
    Figure

    Chapter: book/01_cqt_features.md
    """
    import torch

    # keep the top bin's band (a few % wide) below Nyquist
    room = math.floor(bins_per_octave * math.log2(0.95 * sample_rate / 2 / fmin))
    n_bins = min(int(round(n_octaves * bins_per_octave)), room)
    if n_bins < 1:
        raise ValueError(f"plot_cqt: fmin={fmin} Hz leaves no bins below Nyquist")
    samples = torch.as_tensor(_numpy(audio, "audio"), dtype=torch.float32).reshape(1, -1)
    cqt = _cached_cqt(int(sample_rate), int(hop_length), float(fmin), n_bins, int(bins_per_octave))
    with torch.no_grad():
        mag = cqt(samples)[0]
    fig = plot_spectrogram(
        mag,
        kind="cqt",
        sample_rate=sample_rate,
        hop_length=hop_length,
        fmin=fmin,
        bins_per_octave=bins_per_octave,
        ax=ax,
        title=f"CQT: {bins_per_octave} bins/octave, hop {hop_length}, "
        f"fmin {fmin:.1f} Hz ({n_bins} bins, {mag.shape[-1]} frames)",
    )
    return fig


def cqt_explorer(audio, sample_rate: int = SAMPLE_RATE):
    """Sliders for bins per octave, hop length and lowest frequency over a live CQT of ``audio``.

    Parameters
    ----------
    audio : array ``(N,)``
        Keep it short (a few seconds): every change recomputes the CQT.
    sample_rate : int

    Returns
    -------
    ipywidgets.VBox
        See :func:`figure_explorer`.

    Chapter: book/01_cqt_features.md
    """
    import ipywidgets as widgets

    samples = _numpy(audio, "audio")
    fmins = {
        f"{midi_to_name(p)} ({440 * 2 ** ((p - 69) / 12):.1f} Hz)": 440 * 2 ** ((p - 69) / 12)
        for p in (21, 24, 33, 36, 45, 48)
    }
    style = {"description_width": "initial"}
    controls = {
        "bins_per_octave": widgets.SelectionSlider(
            options=[12, 24, 36, 48, 60], value=36, description="bins/octave", style=style
        ),
        "hop_length": widgets.SelectionSlider(
            options=[64, 128, 256, 512, 1024], value=256, description="hop", style=style
        ),
        "fmin": widgets.Dropdown(options=fmins, value=FMIN_HZ, description="fmin", style=style),
    }

    def draw(bins_per_octave: int, hop_length: int, fmin: float) -> Figure:
        return plot_cqt(
            samples, sample_rate, bins_per_octave=bins_per_octave, hop_length=hop_length, fmin=fmin
        )

    return figure_explorer(draw, controls)


# --- Chapter 5: contrastive embeddings ---------------------------------------------------------


def plot_contrastive_toy(
    points,
    labels,
    anchor: int = 0,
    temperature: float = 0.15,
    *,
    label_names: Sequence[str] | None = None,
    fig: Figure | None = None,
) -> Figure:
    """InfoNCE in a picture: an anchor, its positives and negatives, and the softmax it sees.

    Left: 2-D unit vectors on the circle, one colour per label, the anchor ringed and joined
    to every other point by a line (solid to positives, those sharing its label; dotted to
    negatives). Right: the softmax ``p_j = exp(s_j / tau) / sum_{k != anchor} exp(s_k / tau)``
    of the anchor's cosine similarities ``s_j``, one bar per other point, positives in their
    colour and negatives in grey; the title gives the anchor's InfoNCE term
    ``-log sum_{j positive} p_j``.

    Parameters
    ----------
    points : (M, 2) array
        Points; normalised to unit length before use.
    labels : (M,) int array
        Class (instrument) of every point.
    anchor : int
        Index of the anchor point.
    temperature : float
        ``tau`` > 0.
    label_names : sequence of str, optional
        Legend label per class index.
    fig : Figure, optional
        Draw on this figure (its axes are added); default a new 10 x 3.8 inch figure.

    Returns
    -------
    Figure
        Two axes: the circle and the softmax bars.

    Chapter: book/05_contrastive_clustering.md
    """
    xy = _numpy(points, "points")
    classes = np.asarray(labels).astype(int).reshape(-1)
    if xy.ndim != 2 or xy.shape[1] != 2 or len(xy) != len(classes):
        raise ValueError(
            f"plot_contrastive_toy: points must be (M, 2) with one label each, got points "
            f"{xy.shape} and {len(classes)} labels"
        )
    if len(xy) < 2 or not 0 <= anchor < len(xy):
        raise ValueError(f"plot_contrastive_toy: anchor {anchor} is not one of {len(xy)} points")
    if not temperature > 0:
        raise ValueError(f"plot_contrastive_toy: temperature must be > 0, got {temperature}")
    norms = np.linalg.norm(xy, axis=1, keepdims=True)
    unit = xy / np.where(norms > 0, norms, 1.0)
    others = np.array([j for j in range(len(unit)) if j != anchor])
    similarity = unit[others] @ unit[anchor]
    logits = similarity / temperature
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    positive = classes[others] == classes[anchor]
    loss = -np.log(probs[positive].sum()) if positive.any() else float("nan")

    if fig is None:
        fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax_circle, ax_bars = fig.subplots(1, 2, width_ratios=(1, 1.5))
    theta = np.linspace(0, 2 * np.pi, 200)
    ax_circle.plot(np.cos(theta), np.sin(theta), color="0.85", linewidth=1)
    for j, is_positive in zip(others, positive, strict=True):
        ax_circle.plot(
            *np.stack([unit[anchor], unit[j]]).T,
            color=f"C{classes[anchor] % 10}" if is_positive else "0.6",
            linestyle="-" if is_positive else ":",
            linewidth=0.8,
        )
    for c in np.unique(classes):
        name = label_names[c] if label_names is not None else f"class {c}"
        ax_circle.scatter(*unit[classes == c].T, color=f"C{c % 10}", s=30, label=name, zorder=3)
    ax_circle.scatter(
        *unit[anchor], s=160, facecolor="none", edgecolor="black", linewidth=1.5, zorder=4
    )
    ax_circle.annotate("anchor", unit[anchor] * 1.3, ha="center", va="center")
    ax_circle.set(xlim=(-1.5, 1.5), ylim=(-1.5, 1.5), aspect="equal", xticks=[], yticks=[])
    ax_circle.set_title("solid: positives, dotted: negatives")
    ax_circle.legend(loc="center", fontsize="small", framealpha=0.8)
    colours = [f"C{classes[j] % 10}" if p else "0.6" for j, p in zip(others, positive, strict=True)]
    ax_bars.bar(np.arange(len(others)), probs, color=colours)
    ax_bars.set_xticks(np.arange(len(others)), [str(j) for j in others])
    ax_bars.set(
        xlabel="other point",
        ylabel="softmax of similarity / $\\tau$",
        title=f"$\\tau$ = {temperature:g}: positives hold {probs[positive].sum():.2f}, "
        f"loss = {loss:.2f}",
    )
    return fig


def plot_embedding_map(
    embeddings,
    labels,
    *,
    label_names: Sequence[str] | None = None,
    method: str = "tsne",
    max_points: int = 1500,
    perplexity: float = 30.0,
    seed: int = 0,
    point_size: float = 6.0,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Project embeddings to 2-D (t-SNE or PCA) and scatter them, one colour per label.

    Parameters
    ----------
    embeddings : (M, D) array
        One embedding per point (bins, notes...).
    labels : (M,) int array
        Class of every point (e.g. the true instrument); colour ``C{label}``.
    label_names : sequence of str, optional
        Legend label per class index.
    method : {"tsne", "pca"}
        scikit-learn's ``TSNE`` (cosine distances, PCA initialisation) or ``PCA``.
    max_points : int
        At most this many points, drawn at random with ``seed`` (t-SNE's cost grows quickly).
    perplexity : float
        t-SNE perplexity; lowered to ``(M - 1) / 3`` for few points.
    seed : int
        Random state of the subsampling and the projection.
    point_size : float
    ax : Axes, optional
    title : str, optional

    Returns
    -------
    Figure

    Chapter: book/05_contrastive_clustering.md
    """
    points = _numpy(embeddings, "embeddings")
    classes = np.asarray(labels).astype(int).reshape(-1)
    if points.ndim != 2 or len(points) != len(classes):
        raise ValueError(
            f"plot_embedding_map: embeddings must be (M, D) with one label each, got "
            f"{points.shape} and {len(classes)} labels"
        )
    if method not in ("tsne", "pca"):
        raise ValueError(f"plot_embedding_map: method must be 'tsne' or 'pca', got {method!r}")
    if len(points) < 3:
        raise ValueError(f"plot_embedding_map: needs at least 3 points, got {len(points)}")
    rng = np.random.default_rng(seed)
    if len(points) > max_points:
        keep = np.sort(rng.choice(len(points), max_points, replace=False))
        points, classes = points[keep], classes[keep]
    if method == "pca":
        from sklearn.decomposition import PCA

        xy = PCA(2, random_state=seed).fit_transform(points)
    else:
        from sklearn.manifold import TSNE

        tsne = TSNE(
            2,
            perplexity=min(perplexity, (len(points) - 1) / 3),
            metric="cosine",
            init="pca",
            random_state=seed,
        )
        xy = tsne.fit_transform(points)
    fig, ax = _axes(ax, (5, 4.5))
    for c in np.unique(classes):
        name = label_names[c] if label_names is not None else f"class {c}"
        ax.scatter(*xy[classes == c].T, s=point_size, color=f"C{c % 10}", alpha=0.7, label=name)
    ax.set(xticks=[], yticks=[], xlabel=f"{method.upper()} 1", ylabel=f"{method.upper()} 2")
    ax.legend(markerscale=8 / max(point_size, 1) ** 0.5, fontsize="small", framealpha=0.8)
    ax.set_title(title if title is not None else f"{len(points)} points ({method.upper()})")
    return fig


def plot_note_similarity(
    embedding,
    frame_probs,
    notes: Sequence[Note],
    index: int,
    *,
    frame_rate: float = FRAME_RATE,
    midi_min: int = MIDI_MIN,
    threshold: float = 0.1,
    pitch_margin: int = 2,
    ax: Axes | None = None,
) -> Figure:
    """Cosine similarity of every pitch-time bin's timbre embedding to one note's embedding.

    The note's embedding is :func:`timbrelab.decode.clustering.note_embeddings` (its bins'
    embeddings weighted by the frame probability). Bins whose frame probability is below
    ``threshold`` are left blank (their embedding is never clustered); every note is outlined,
    the chosen one in black.

    Parameters
    ----------
    embedding : (D, P, T) array
        Unit embeddings of every bin (row 0 is MIDI ``midi_min``).
    frame_probs : (P, T) array
        Frame probabilities.
    notes : list of Note
        Notes decoded from ``frame_probs`` (their ``source`` is not used).
    index : int
        The note to compare with.
    frame_rate : float
    midi_min : int
    threshold : float
        Frame probability below which a bin is not drawn.
    pitch_margin : int
        Semitones shown beyond the lowest and highest note.
    ax : Axes, optional

    Returns
    -------
    Figure

    Chapter: book/05_contrastive_clustering.md
    """
    from timbrelab.decode.clustering import note_embeddings

    emb = _numpy(embedding, "embedding")
    probs = _matrix(frame_probs, "frame_probs")
    notes = list(notes)
    if emb.ndim != 3 or emb.shape[1:] != probs.shape:
        raise ValueError(
            f"plot_note_similarity: embedding must be (D, P, T) and frame_probs (P, T), got "
            f"{emb.shape} and {probs.shape}"
        )
    if not 0 <= index < len(notes):
        raise ValueError(f"plot_note_similarity: index {index} is not one of {len(notes)} notes")
    target = note_embeddings(emb, probs, [notes[index]], frame_rate, midi_min)[0]
    norms = np.linalg.norm(emb, axis=0)
    similarity = np.einsum("d,dpt->pt", target, emb) / np.where(norms > 0, norms, 1.0)
    similarity = np.where(probs >= threshold, similarity, np.nan)
    fig, ax = _axes(ax, (9, 3.6))
    n_pitches, n_frames = probs.shape
    image = ax.imshow(
        similarity,
        origin="lower",
        aspect="auto",
        cmap="coolwarm",
        vmin=-1,
        vmax=1,
        interpolation="nearest",
        extent=(0, n_frames / frame_rate, midi_min - 0.5, midi_min + n_pitches - 0.5),
    )
    fig.colorbar(image, ax=ax, label="cosine similarity", pad=0.01)
    for i, n in enumerate(notes):
        chosen = i == index
        ax.add_patch(
            Rectangle(
                (n.onset, n.pitch - 0.5),
                n.offset - n.onset,
                1.0,
                facecolor="none",
                edgecolor="black" if chosen else "0.5",
                linewidth=2.0 if chosen else 0.4,
                zorder=3 if chosen else 2,
            )
        )
    if notes:
        lo = min(n.pitch for n in notes) - pitch_margin
        hi = max(n.pitch for n in notes) + pitch_margin
        ax.set_ylim(lo - 0.5, hi + 0.5)
        _pitch_ticks(ax, lo, hi, lambda p: p)
    chosen = notes[index]
    ax.set(
        xlabel="time (s)",
        ylabel="pitch",
        title=f"similarity to note {index}: {midi_to_name(chosen.pitch)} at "
        f"{chosen.onset:.2f} s (blank: frame probability < {threshold:g})",
    )
    return fig


def embedding_explorer(
    analysis,
    notes: Sequence[Note],
    *,
    frame_rate: float = FRAME_RATE,
    midi_min: int = MIDI_MIN,
    threshold: float = 0.1,
    start: int = 0,
):
    """Choose a note, see how similar every bin's timbre embedding is to it.

    A dropdown of the notes (pitch name, onset and, when set, source) above
    :func:`plot_note_similarity` of the chosen one.

    Parameters
    ----------
    analysis : object with ``embedding`` (D, P, T) and ``frame_probs`` (P, T)
        E.g. :class:`timbrelab.systems.two_branch.Analysis`.
    notes : list of Note
        Notes decoded from ``analysis.frame_probs``.
    frame_rate, midi_min, threshold
        As in :func:`plot_note_similarity`.
    start : int
        Index of the note shown first (and in the built book's static snapshot).

    Returns
    -------
    ipywidgets.VBox
        See :func:`figure_explorer`.

    Chapter: book/05_contrastive_clustering.md
    """
    import ipywidgets as widgets

    notes = list(notes)
    if not notes:
        raise ValueError("embedding_explorer: the note list is empty")
    if not 0 <= start < len(notes):
        raise ValueError(f"embedding_explorer: start {start} is not one of {len(notes)} notes")
    embedding = _numpy(analysis.embedding, "embedding")
    probs = _matrix(analysis.frame_probs, "frame_probs")

    def name(i: int, n: Note) -> str:
        part = "" if n.source is None else f", source {n.source}"
        return f"{i}: {midi_to_name(n.pitch)} at {n.onset:.2f} s{part}"

    choice = widgets.Dropdown(
        options=[(name(i, n), i) for i, n in enumerate(notes)],
        value=start,
        description="note",
    )

    def draw(index: int) -> Figure:
        return plot_note_similarity(
            embedding,
            probs,
            notes,
            index,
            frame_rate=frame_rate,
            midi_min=midi_min,
            threshold=threshold,
        )

    return figure_explorer(draw, {"index": choice})
