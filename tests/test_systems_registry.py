"""The systems layer carries a new system with no edit outside its own module.

A toy system, defined in this file alone, reads 16 kHz audio through an STFT, separates two
sources with masks and transcribes each; registered at run time, it goes through all four
model-facing verbs of the CLI (transcribe, separate, train, evaluate) and their bad inputs.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import timbrelab
from timbrelab import systems
from timbrelab.audio import write_wav
from timbrelab.cli import main
from timbrelab.data import SyntheticMixtures
from timbrelab.features import STFT
from timbrelab.notes import read_notes, roll_to_notes
from timbrelab.systems import System, SystemOutput
from timbrelab.training import Recipe, TrainConfig

RATE, HOP, N_FFT = 16000, 256, 512


@dataclasses.dataclass
class ToyConfig:
    sources: int = 2


class ToySeparator(nn.Module):
    """Log-STFT -> per-bin masks over 2 sources and 88-pitch frame logits per source."""

    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.config = config
        self.stft = STFT(N_FFT, HOP)
        bins = N_FFT // 2 + 1
        self.masks = nn.Linear(bins, bins * config.sources)
        self.pitches = nn.Linear(bins, 88 * config.sources)

    def forward(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        features = torch.log1p(self.stft(audio).abs()).transpose(1, 2)  # (B, T, F)
        b, t, f = features.shape
        s = self.config.sources
        masks = self.masks(features).view(b, t, s, f).softmax(dim=2).permute(0, 2, 3, 1)
        frames = self.pitches(features).view(b, t, s, 88).permute(0, 2, 3, 1)
        return {"masks": masks, "frames": frames}  # (B, S, F, T), (B, S, 88, T)


class ToySystem(System):
    name = "toy_separator"
    description = "test-only: two-source mask separation at 16 kHz"
    chapter = "tests/test_systems_registry.py"
    sample_rate = RATE
    hop_length = HOP
    tasks = ("transcribe", "separate", "separate_notes")

    def build_model(self, **config: object) -> nn.Module:
        model = ToySeparator(ToyConfig(**config))
        model.name = self.name
        return model

    def recipe(self, tier="quick", seed=0, model_config=None, **overrides) -> Recipe:
        torch.manual_seed(seed)

        def data(n: int, data_seed: int) -> SyntheticMixtures:
            return SyntheticMixtures(n, seconds=1.0, instruments=2, seed=data_seed,
                                     sample_rate=RATE, hop_length=HOP, stems=True)  # fmt: skip

        def loss_fn(model, batch):
            out = model(batch["audio"])
            frames = nn.functional.binary_cross_entropy_with_logits(
                out["frames"], batch["stem_frame"]
            )
            return frames, {"frames": float(frames.detach())}

        config = TrainConfig(**{"steps": 2, "batch_size": 2, "eval_every": 2, **overrides})
        model = self.build_model(**(model_config or {}))
        return Recipe(model, loss_fn, data(4, 2 * seed), data(2, 2 * seed + 1), config)

    def infer(self, model: nn.Module, audio: np.ndarray, **options: object) -> SystemOutput:
        with torch.inference_mode():
            x = torch.as_tensor(audio, dtype=torch.float32)[None]
            out = model(x)
            spec = torch.stft(x, N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True)
            stems = torch.istft((spec[:, None] * out["masks"])[0], N_FFT, HOP,
                                window=torch.hann_window(N_FFT), length=x.shape[-1])  # fmt: skip
        rolls = torch.sigmoid(out["frames"][0]).numpy()
        threshold = float(options.get("frame_threshold", 0.5))
        notes = sorted(
            note
            for k, roll in enumerate(rolls)
            for note in roll_to_notes(roll, RATE / HOP, source=k, threshold=threshold)
        )
        return SystemOutput(notes, ["low voice", "High Voice"], stems.numpy(), None, RATE)


@pytest.fixture
def toy(tmp_path):
    systems.register(ToySystem())
    yield tmp_path
    systems.unregister("toy_separator")


def run(capsys, *argv) -> tuple[int, list[str]]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err.splitlines()


def test_a_system_registered_in_a_test_file_runs_through_every_verb(toy, capsys):
    t = np.arange(RATE) / RATE
    write_wav(toy / "duet.wav", 0.3 * np.sin(2 * np.pi * 220 * t), 44100)  # any rate goes in
    code, err = run(capsys, "train", "toy_separator", "--out", toy / "run")
    assert code == 0, err
    weights = toy / "run" / "weights.pt"
    assert weights.is_file()
    # --weights alone finds its system
    assert run(capsys, "transcribe", toy / "duet.wav", "-o", toy / "duet.csv",
               "--weights", weights, "--frame-threshold", "0.01")[0] == 0  # fmt: skip
    assert {n.source for n in read_notes(toy / "duet.csv")} <= {0, 1}
    code, err = run(capsys, "separate", "--model", "toy_separator", "--weights", weights,
                    toy / "duet.wav", "-o", toy / "parts")  # fmt: skip
    assert code == 0, err
    names = sorted(p.name for p in (toy / "parts" / "duet").iterdir())
    assert names == ["0_low_voice.mid", "0_low_voice.wav", "1_high_voice.mid", "1_high_voice.wav"]
    code = main(["evaluate", "--weights", str(weights), "--synthetic", "1", "--seconds", "1"])
    out = capsys.readouterr().out
    assert code == 0 and "source_FN" in out.splitlines()[0]  # scored per source too
    assert main(["systems"]) == 0
    rows = [line.split()[:4] for line in capsys.readouterr().out.splitlines()]
    assert ["toy_separator", "transcribe/separate/separate_notes", "16000", "Hz"] in rows


def test_the_toy_system_meets_the_same_bad_input_rules(toy, capsys):
    (toy / "text.wav").write_text("not audio")
    write_wav(toy / "ok.wav", 0.3 * np.sin(np.arange(RATE) / 3.0), RATE)
    assert run(capsys, "train", "toy_separator", "--out", toy / "run")[0] == 0
    weights = toy / "run" / "weights.pt"
    cases = [
        (("separate", "--model", "toy_separator", "--weights", weights, toy / "text.wav",
          "-o", toy / "parts"), "text.wav: not a readable audio file"),
        (("separate", "--model", "amt", toy / "text.wav", "-o", toy / "parts"), "text.wav"),
        (("transcribe", "--model", "toy_separator", toy / "ok.wav", "-o", toy / "x.mid"),
         "ships no weights"),
        (("transcribe", "--model", "amt", "--weights", weights, toy / "run" / "metrics.csv",
          "-o", toy / "x.mid"), "metrics.csv"),
        (("train", "toy_separator", "--out", toy / "run"), "pass --resume"),
    ]  # fmt: skip
    for argv, expected in cases:
        code, err = run(capsys, *argv)
        assert code == 2 and len(err) == 1 and expected in err[0], (argv, err)
    code, err = run(capsys, "separate", "--model", "amt", toy / "ok.wav", "-o", toy / "parts")
    assert code == 2 and "does not separate sources" in err[0] and "toy_separator" in err[0]


def test_the_package_has_no_import_cycle():
    """Module-level imports between timbrelab modules form a DAG (imports inside functions,
    made lazily on purpose, are not edges)."""
    root = Path(timbrelab.__file__).parent
    graph: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        edges = set()
        for node in ast.parse(path.read_text()).body:
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("timbrelab")
            ):
                edges.add(node.module)
                edges.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name.startswith("timbrelab"))
        graph[name] = edges
    graph = {m: {e for e in edges if e in graph and e != m} for m, edges in graph.items()}

    def related(a: str, b: str) -> bool:  # a package and its own submodules load together
        return a.startswith(b + ".") or b.startswith(a + ".")

    state: dict[str, int] = {}

    def visit(module: str, trail: list[str]) -> None:
        if state.get(module) == 2:
            return
        if state.get(module) == 1:
            cycle = trail[trail.index(module) :] + [module]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        state[module] = 1
        for dep in sorted(graph[module]):
            if not related(module, dep):
                visit(dep, [*trail, module])
        state[module] = 2

    for module in sorted(graph):
        visit(module, [])
