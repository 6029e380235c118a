"""torch Datasets of synthetic mixtures, generated on the fly or cached on disk.

Item ``i`` is a pure function of ``(seed, i)`` and the dataset's settings: no global random
state, so it is byte-identical across runs, dataset instances and DataLoader workers.

Chapter: book/01_cqt_features.md
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from timbrelab.constants import HOP_LENGTH, N_PITCHES, SAMPLE_RATE
from timbrelab.data.expression import Expression
from timbrelab.data.gm import MELODIC_PROGRAMS, draw_programs
from timbrelab.data.mixtures import MAX_INSTRUMENTS, Mixture, make_mixture, mixture_labels
from timbrelab.data.render import fluidsynth_available
from timbrelab.data.soundfonts import resolve_soundfonts
from timbrelab.io import save_npz

# Bump when the generator changes what an item holds, so stale caches are not reused.
_CACHE_VERSION = 2
# Keys a cached item carries beside its arrays: which item it is, and the digest of its arrays.
_IDENTITY, _DIGEST = "cache_identity", "cache_sha256"


def _arrays_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 of named arrays: names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


class SyntheticMixtures(torch.utils.data.Dataset):
    """Random K-instrument mixtures with transcription (and optionally separation) targets.

    Each item draws K in ``instruments``, then K programs from K different Jointist classes
    and renders a :func:`~timbrelab.data.mixtures.make_mixture`. K-dependent tensors are
    padded to ``K_max = instruments[1]`` so the default collate function batches items with
    different K.

    Parameters
    ----------
    n_items : int
        Length of the dataset.
    seconds : float
        Length of every item.
    instruments : int or (int, int)
        K, or the inclusive range K is drawn from (uniformly).
    seed : int
        Base seed (>= 0); item ``i`` uses ``(seed, i)``.
    sample_rate, hop_length : int
        Audio rate and label hop.
    cache_dir : str, PathLike or None
        If set, each item is written there as ``.npz`` on first access (atomically) and read
        back afterwards. Items live in a sub-folder named by a hash of the settings, so one
        cache folder can serve several configurations. Each file carries its item's identity
        and a SHA-256 of its arrays: a corrupt, truncated or swapped file is regenerated (with
        a warning), never returned.
    programs : sequence of int or None
        Pool of GM programs to draw from (default: all clearly pitched programs).
    drums : bool
        Make the last instrument of every item a drum kit.
    stems : bool
        Also return the stems (``(K_max, N)``), for separation models.
    dominant : bool
        Also return ``dominant_source`` (costs an 88-bin CQT per stem).
    drum_rolls : bool
        Drum stems' ``stem_frame`` rows hold their percussion keys instead of zeros (see
        :func:`~timbrelab.data.mixtures.mixture_labels`).
    expressive : bool
        Tempo grid, timing jitter, random gains (see :func:`make_mixture`).
    backend : {"auto", "fluidsynth", "additive"}
        Renderer.
    room : bool
        Random room reverb and per-stem EQ before mixing (see :func:`make_mixture`).
    style, soundfonts, expression
        Score style (``"random"``, ``"dense"``, ``"ensemble"``), soundfonts drawn per stem
        (None: TimGM6mb only; ``"all"``; or names) and expressive MIDI rendering: see
        :func:`make_mixture`. At their defaults items are those of earlier releases.

    Items
    -----
    dict of torch.Tensor
        ``"audio"`` ``(N,)`` float32; ``"frame"``, ``"onset"``, ``"offset"`` ``(88, T)``
        float32; ``"stem_frame"`` ``(K_max, 88, T)`` float32 (zero rows past K);
        ``"programs"`` ``(K_max,)`` int64 (-1 past K); ``"n_sources"`` () int64;
        ``"index"`` () int64; optional ``"stems"`` ``(K_max, N)`` float32 and
        ``"dominant_source"`` ``(88, T)`` int64. ``N = round(seconds * sample_rate)``,
        ``T = 1 + N // hop_length``.

    Chapter: book/01_cqt_features.md
    """

    def __init__(
        self,
        n_items: int,
        seconds: float = 4.0,
        instruments: int | tuple[int, int] = (1, 4),
        seed: int = 0,
        sample_rate: int = SAMPLE_RATE,
        hop_length: int = HOP_LENGTH,
        cache_dir: str | os.PathLike | None = None,
        programs: Sequence[int] | None = None,
        drums: bool = False,
        stems: bool = False,
        dominant: bool = False,
        expressive: bool = True,
        backend: str = "auto",
        room: bool = False,
        style: str = "random",
        soundfonts: str | Sequence[str] | None = None,
        expression: bool | Expression = False,
        drum_rolls: bool = False,
    ) -> None:
        if n_items < 0:
            raise ValueError(f"n_items must be >= 0, got {n_items}")
        if not seconds > 0:
            raise ValueError(f"seconds must be > 0, got {seconds}")
        lo, hi = (instruments, instruments) if isinstance(instruments, int) else instruments
        if not 1 <= lo <= hi <= MAX_INSTRUMENTS:
            raise ValueError(
                f"instruments must be K or (K_min, K_max) within 1..{MAX_INSTRUMENTS}, "
                f"got {instruments}"
            )
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        self.n_items = int(n_items)
        self.seconds = float(seconds)
        self.instruments = (int(lo), int(hi))
        self.seed = seed
        self.sample_rate = int(sample_rate)
        self.hop_length = int(hop_length)
        self.programs = tuple(MELODIC_PROGRAMS if programs is None else programs)
        self.drums = bool(drums)
        self.stems = bool(stems)
        self.dominant = bool(dominant)
        self.expressive = bool(expressive)
        self.backend = backend
        self.room = bool(room)
        self.style = style
        # resolved now: a missing soundfont fails here, not in a DataLoader worker, and the
        # fingerprint names the soundfonts actually used ("all" differs between machines)
        self.soundfonts = None if soundfonts is None else tuple(resolve_soundfonts(soundfonts))
        self.expression = expression
        self.drum_rolls = bool(drum_rolls)
        self.cache_dir = None if cache_dir is None else Path(cache_dir) / self._fingerprint()
        # validate the pool now rather than in a worker
        draw_programs(hi, np.random.default_rng(0), self.programs, drums=self.drums)

    def _fingerprint(self) -> str:
        """Hash of everything an item depends on (resolved backend included)."""
        backend = self.backend
        if backend == "auto":
            backend = "fluidsynth" if fluidsynth_available() else "additive"
        settings = dict(
            version=_CACHE_VERSION, seconds=self.seconds, instruments=self.instruments,
            seed=self.seed, sample_rate=self.sample_rate, hop_length=self.hop_length,
            programs=self.programs, drums=self.drums, stems=self.stems, dominant=self.dominant,
            expressive=self.expressive, backend=backend,
        )  # fmt: skip
        # options added later enter only when set, so earlier caches stay valid
        later = {
            "room": self.room,
            "style": self.style != "random",
            "soundfonts": self.soundfonts is not None,
            "expression": bool(self.expression),
            "drum_rolls": self.drum_rolls,
        }
        for name, is_set in later.items():
            if is_set:
                settings[name] = getattr(self, name)
        if isinstance(self.expression, Expression):
            settings["expression"] = dataclasses.asdict(self.expression)
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]

    def __len__(self) -> int:
        return self.n_items

    def mixture(self, index: int) -> Mixture:
        """The :class:`Mixture` behind item ``index`` (always re-rendered, never cached)."""
        index = self._check_index(index)
        lo, hi = self.instruments
        rng = np.random.default_rng([self.seed, index, 0])
        k = int(rng.integers(lo, hi + 1))
        programs = draw_programs(k, rng, self.programs, drums=self.drums)
        return make_mixture(
            k, self.seconds, seed=[self.seed, index], sample_rate=self.sample_rate,
            programs=programs, expressive=self.expressive, backend=self.backend, room=self.room,
            style=self.style, soundfonts=self.soundfonts, expression=self.expression,
        )  # fmt: skip

    def _check_index(self, index: int) -> int:
        if not -self.n_items <= index < self.n_items:
            raise IndexError(f"index {index} out of range for {self.n_items} items")
        return index % self.n_items if self.n_items else index

    def arrays(self, index: int) -> dict[str, np.ndarray]:
        """Item ``index`` as numpy arrays (what the cache stores)."""
        index = self._check_index(index)
        if self.cache_dir is not None:
            cached = self._read_cached(index)
            if cached is not None:
                return cached
        mix = self.mixture(index)
        labels = mixture_labels(mix, self.hop_length, dominant=self.dominant,
                                drum_rolls=self.drum_rolls)  # fmt: skip
        k, k_max = mix.n_sources, self.instruments[1]
        n_frames = labels["frame"].shape[-1]
        stem_frame = np.zeros((k_max, N_PITCHES, n_frames), np.float32)
        stem_frame[:k] = labels["stem_frame"]
        programs = np.full(k_max, -1, np.int64)
        programs[:k] = mix.programs
        item = {
            "audio": mix.audio,
            "frame": labels["frame"],
            "onset": labels["onset"],
            "offset": labels["offset"],
            "stem_frame": stem_frame,
            "programs": programs,
            "n_sources": np.int64(k),
            "index": np.int64(index),
        }
        if self.stems:
            stems = np.zeros((k_max, mix.stems.shape[1]), np.float32)
            stems[:k] = mix.stems
            item["stems"] = stems
        if self.dominant:
            item["dominant_source"] = labels["dominant_source"]
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            identity = np.array(self._identity(index))
            save_npz(
                self._cache_path(index),
                {**item, _IDENTITY: identity, _DIGEST: np.array(_arrays_digest(item))},
            )
        return item

    def _cache_path(self, index: int) -> Path:
        return self.cache_dir / f"{index:07d}.npz"

    def _identity(self, index: int) -> str:
        return f"{self.cache_dir.name}/{index}"

    def _read_cached(self, index: int) -> dict[str, np.ndarray] | None:
        """Item ``index`` from the cache, or None when absent or not to be trusted."""
        path = self._cache_path(index)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
            identity, digest = str(arrays.pop(_IDENTITY)), str(arrays.pop(_DIGEST))
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
            problem = f"unreadable ({type(err).__name__})"
        else:
            if identity != self._identity(index):
                problem = f"holds item {identity!r}, not {self._identity(index)!r}"
            elif digest != _arrays_digest(arrays):
                problem = "checksum mismatch"
            else:
                return arrays
        warnings.warn(f"{path}: bad cache file ({problem}); regenerating it", stacklevel=3)
        return None

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {name: torch.from_numpy(np.asarray(a)) for name, a in self.arrays(index).items()}
