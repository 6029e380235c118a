"""Li & Zhu's AMT ablations (their Table 2 and Figure 2) at the quick tier, on one CPU thread.

Every variant trains with the same seed, the same synthetic training data and the same number
of steps, then transcribes the same synthetic test set, which is scored with Li & Zhu's three
timbre-agnostic metrics (:func:`timbrelab.evaluation.transcription_scores`): frame F1 on a
10 ms grid (FF), note F1 (FN, onsets within 50 ms) and note-with-offset F1 (FNO). Variants:

- ``ours``: ``build_model("amt")`` with focal loss (the paper's model), also with a second
  seed (``--seeds``) to show how much a score moves with the seed alone;
- ``BN``, ``Conv39``, ``noLog``: the architecture ablations ``amt_bn``, ``amt_conv39``,
  ``amt_nolog``, with focal loss;
- ``BPloss``, ``BCE``: ``amt`` trained with Basic Pitch's loss or plain BCE;
- ``alpha=...``: ``amt`` with focal loss whose positive-class weight ``alpha`` is the same
  on frames and onsets (``--alphas``), the sweep of Li & Zhu's Figure 2.

The harmonic CQT has no parameters and is the same for every variant, so it is computed once
for all training and test clips (``model.forward_features`` takes it), and training runs on
non-overlapping crops of it: the budget goes to the networks. Training uses
:class:`timbrelab.training.Trainer`, decoding :func:`timbrelab.decode.posteriorgram_to_notes`
at its default thresholds.

    nice -n 10 .venv/bin/python benchmarks/amt_ablations.py --steps 40

writes ``benchmarks/results/amt_ablations.json`` (command, settings, date, machine, per-variant
scores, loss curves and times) and ``amt_ablations.png`` (frame and onset posteriorgrams of one
test clip for each alpha, in the manner of Figure 2). At a budget of minutes the differences
between variants are mostly within the seed-to-seed spread; the JSON records that spread.

Chapter: book/02_focal_loss_amt.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from provenance import command_line
from torch.utils.data import Dataset

from timbrelab.constants import FRAME_RATE
from timbrelab.data import SyntheticMixtures
from timbrelab.decode import posteriorgram_to_notes
from timbrelab.evaluation import transcription_scores
from timbrelab.losses import FOCAL_DEFAULTS, transcription_loss
from timbrelab.models import build_model, count_parameters
from timbrelab.runtime import seed_everything
from timbrelab.training import TrainConfig, Trainer

RESULTS = Path(__file__).resolve().parent / "results"
#: name -> (registry model, loss kind, loss parameters); the alpha sweep is added from --alphas.
VARIANTS: dict[str, tuple[str, str, dict[str, float]]] = {
    "ours": ("amt", "focal", {}),
    "BN": ("amt_bn", "focal", {}),
    "Conv39": ("amt_conv39", "focal", {}),
    "noLog": ("amt_nolog", "focal", {}),
    "BPloss": ("amt", "basic_pitch", {}),
    "BCE": ("amt", "bce", {}),
}
CAVEAT = (
    "Quick-tier study: every variant trained for only a few minutes of one CPU thread on a "
    "few hundred seconds of synthetic audio, far from convergence (Li & Zhu train on 24 h). "
    "Compare differences with the seed-to-seed spread of 'ours' (spread_ours): smaller "
    "differences are noise. The ranking need not match the paper's Table 2."
)


class CachedCrops(Dataset):
    """Non-overlapping crops of precomputed harmonic CQTs with their frame/onset labels.

    Parameters
    ----------
    hcqt : (I, H, F, T) Tensor
        ``model.frontend.hcqt`` of every clip (any float dtype; returned as float32).
    frame, onset : (I, 88, T) Tensor
        Labels of every clip.
    crop_frames : int
        Frames per crop; clip ``i`` gives ``T // crop_frames`` crops.

    Items are dicts with ``"hcqt"`` ``(H, F, crop_frames)``, ``"frame"`` and ``"onset"``
    ``(88, crop_frames)``; item ``j`` depends only on ``j``.
    """

    def __init__(
        self, hcqt: torch.Tensor, frame: torch.Tensor, onset: torch.Tensor, crop_frames: int
    ) -> None:
        if crop_frames < 1 or crop_frames > hcqt.shape[-1]:
            raise ValueError(f"crop_frames must be in 1..{hcqt.shape[-1]}, got {crop_frames}")
        self.hcqt, self.frame, self.onset = hcqt, frame, onset
        self.crop_frames = crop_frames
        self.per_clip = hcqt.shape[-1] // crop_frames

    def __len__(self) -> int:
        return self.hcqt.shape[0] * self.per_clip

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        clip, part = divmod(index, self.per_clip)
        window = slice(part * self.crop_frames, (part + 1) * self.crop_frames)
        return {
            "hcqt": self.hcqt[clip, ..., window].float(),
            "frame": self.frame[clip, :, window],
            "onset": self.onset[clip, :, window],
        }


def features_loss_fn(kind: str, **params: float):
    """``loss_fn(model, batch)`` for :class:`Trainer` on precomputed harmonic CQTs."""

    def loss_fn(model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, Mapping[str, float]]:
        return transcription_loss(model.forward_features(batch["hcqt"]), batch, kind, **params)

    return loss_fn


def precompute(data: SyntheticMixtures, hcqt: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Render every clip once: bfloat16 harmonic CQTs (half the memory, range of float32),
    frame/onset labels, audio and reference notes."""
    feats, frames, onsets, audio, notes = [], [], [], [], []
    with torch.inference_mode():
        for i in range(len(data)):
            item = data[i]
            feats.append(hcqt(item["audio"][None])[0].to(torch.bfloat16))
            frames.append(item["frame"])
            onsets.append(item["onset"])
            audio.append(item["audio"])
    notes = [data.mixture(i).notes for i in range(len(data))]
    return {
        "hcqt": torch.stack(feats),
        "frame": torch.stack(frames),
        "onset": torch.stack(onsets),
        "audio": torch.stack(audio),
        "notes": notes,
    }


def frame_average_precision(probs: np.ndarray, labels: np.ndarray) -> float:
    """Threshold-free frame score: average precision of all (pitch, frame) cells."""
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(labels.ravel() > 0.5, probs.ravel()))


def evaluate(model: torch.nn.Module, test: dict) -> tuple[dict[str, float], list[dict]]:
    """Mean FF/FN/FNO (and frame AP) over the test clips, plus each clip's posteriorgrams."""
    model.eval()
    rows, posteriorgrams = [], []
    with torch.inference_mode():
        for i in range(test["hcqt"].shape[0]):
            out = model.forward_features(test["hcqt"][i : i + 1].float())
            probs = {key: torch.sigmoid(out[key][0]).numpy() for key in ("frame", "onset")}
            est = posteriorgram_to_notes(probs["frame"], probs["onset"])
            rows.append(
                {
                    **transcription_scores(test["notes"][i], est),
                    "frame_AP": frame_average_precision(probs["frame"], test["frame"][i].numpy()),
                }
            )
            posteriorgrams.append(probs)
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}, posteriorgrams


def run_variant(
    name: str,
    model_name: str,
    kind: str,
    params: dict[str, float],
    seed: int,
    train: Dataset,
    test: dict,
    config: TrainConfig,
) -> tuple[dict, list[dict]]:
    """Train one variant from ``seed`` and score it; returns its JSON row and posteriorgrams."""
    seed_everything(seed)  # same initial weights for every variant of the same architecture
    model = build_model(model_name)
    trainer_config = TrainConfig(**{**config.__dict__, "seed": seed})
    with tempfile.TemporaryDirectory() as out_dir:
        trainer = Trainer(
            model, features_loss_fn(kind, **params), train, None, trainer_config, out_dir
        )
        history = trainer.fit()
    start = time.perf_counter()
    scores, posteriorgrams = evaluate(model, test)
    row = {
        "model": model_name,
        "loss": kind,
        "loss_params": params,
        "seed": seed,
        "parameters": count_parameters(model),
        **{key: round(value, 4) for key, value in scores.items()},
        "train_seconds": round(history[-1]["seconds"], 1),
        "eval_seconds": round(time.perf_counter() - start, 1),
        "loss_curve": [[h["step"], round(h["train_loss"], 5)] for h in history],
    }
    print(
        f"{name:12s} FF {row['FF']:.3f}  FN {row['FN']:.3f}  FNO {row['FNO']:.3f}  "
        f"AP {row['frame_AP']:.3f}  ({row['train_seconds']:.0f} s training)",
        flush=True,
    )
    return row, posteriorgrams


def plot_alpha_sweep(
    posteriorgrams: dict[str, list[dict]], test: dict, clip: int, path: Path, frame_rate: float
) -> None:
    """Figure 2 in miniature: frame (top) and onset (bottom) posteriorgrams per alpha."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from timbrelab.viz import plot_posteriorgram

    names = list(posteriorgrams)
    fig = Figure(figsize=(3.2 * len(names), 5.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, len(names), sharex=True, sharey=True, squeeze=False)
    ref = test["frame"][clip].numpy()
    active = np.flatnonzero(ref.any(axis=1))
    lo, hi = 21 + active.min() - 3, 21 + active.max() + 3
    for col, name in enumerate(names):
        for row, key in enumerate(("frame", "onset")):
            ax = axes[row, col]
            plot_posteriorgram(
                posteriorgrams[name][clip][key], ref=test[key][clip].numpy(), frame_rate=frame_rate,
                ax=ax, title=f"{name}: {key}",
            )  # fmt: skip
            ax.set_ylim(lo, hi)
            ax.label_outer()
    # every panel added its own colour bar; one is enough
    for extra in fig.axes[2 * len(names) :][:-1]:
        extra.remove()
    fig.suptitle(f"test clip {clip}: posteriorgrams (cyan: reference) for each alpha")
    fig.savefig(path, dpi=80)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="training steps per variant")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--crop-seconds", type=float, default=1.0, help="training crop length")
    parser.add_argument("--train-items", type=int, default=96, help="4 s training clips")
    parser.add_argument("--train-seed", type=int, default=2026)
    parser.add_argument("--test-items", type=int, default=24)
    parser.add_argument("--test-seed", type=int, default=999)
    parser.add_argument("--clip-seconds", type=float, default=4.0)
    parser.add_argument("--seeds", default="0,1", help="seeds of 'ours'; others use the first")
    parser.add_argument("--alphas", default="0.25,0.5,0.75,0.9,0.95")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help="subset of " + str(list(VARIANTS))
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS / "amt_ablations.json")
    parser.add_argument("--plot", type=Path, default=RESULTS / "amt_ablations.png")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    alphas = [float(a) for a in args.alphas.split(",") if a]
    unknown = set(args.variants.split(",")) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"amt_ablations: unknown variant(s) {sorted(unknown)}")
    runs = []  # (row name, model, loss kind, loss params, seed)
    for name in args.variants.split(","):
        model_name, kind, params = VARIANTS[name]
        for seed in seeds if name == "ours" else seeds[:1]:
            label = name if seed == seeds[0] else f"{name} (seed {seed})"
            runs.append((label, model_name, kind, params, seed))
    for alpha in alphas:
        params = {"frame_alpha": alpha, "onset_alpha": alpha}
        runs.append((f"alpha={alpha:g}", "amt", "focal", params, seeds[0]))

    started = time.perf_counter()
    hcqt = build_model("amt").frontend.hcqt  # the same for every variant (checked below)
    for model_name in {run[1] for run in runs}:
        other = build_model(model_name).frontend.hcqt
        if (other.harmonics, other.n_bins) != (hcqt.harmonics, hcqt.n_bins):
            raise SystemExit(f"amt_ablations: {model_name} has another harmonic CQT")
    shared = dict(seconds=args.clip_seconds, instruments=(1, 4))
    train = precompute(SyntheticMixtures(args.train_items, seed=args.train_seed, **shared), hcqt)
    test = precompute(SyntheticMixtures(args.test_items, seed=args.test_seed, **shared), hcqt)
    frame_rate = FRAME_RATE
    crops = CachedCrops(train["hcqt"], train["frame"], train["onset"],
                        round(args.crop_seconds * frame_rate))  # fmt: skip
    data_seconds = time.perf_counter() - started
    print(f"data: {len(crops)} training crops, {args.test_items} test clips "
          f"({data_seconds:.0f} s)", flush=True)  # fmt: skip
    config = TrainConfig(
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, device="cpu",
        eval_every=max(1, args.steps // 12), checkpoint_every=None, progress=False,
    )  # fmt: skip

    results, sweep = {}, {}
    for label, model_name, kind, params, seed in runs:
        results[label], posteriorgrams = run_variant(
            label, model_name, kind, params, seed, crops, test, config
        )
        if label.startswith("alpha="):
            sweep[label] = posteriorgrams

    ours = [row for label, row in results.items() if label.split(" ")[0] == "ours"]
    spread = {
        key: round(max(r[key] for r in ours) - min(r[key] for r in ours), 4)
        for key in ("FF", "FN", "FNO", "frame_AP")
    } if len(ours) > 1 else None  # fmt: skip
    clip = int(np.argmax([len(n) for n in test["notes"]]))  # the busiest test clip
    if sweep:
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        plot_alpha_sweep(sweep, test, clip, args.plot, frame_rate)
    report = {
        "command": command_line(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "load_average_1min_at_end": round(os.getloadavg()[0], 2),
            "note": "a shared machine: training times are upper bounds when the load "
            "average exceeds the CPU count",
        },
        "settings": {
            "steps_per_variant": args.steps,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "lr_schedule": config.lr_schedule,
            "crop_seconds": args.crop_seconds,
            "train_data": f"SyntheticMixtures({args.train_items}, seconds={args.clip_seconds}, "
            f"instruments=(1, 4), seed={args.train_seed})",
            "training_crops": len(crops),
            "test_data": f"SyntheticMixtures({args.test_items}, seconds={args.clip_seconds}, "
            f"instruments=(1, 4), seed={args.test_seed})",
            "decoder": "timbrelab.decode.posteriorgram_to_notes (defaults: onset 0.5, frame 0.3)",
            "metrics": "timbrelab.evaluation.transcription_scores, mean over test clips: FF "
            "(frame F1, 10 ms grid), FN (note F1, 50 ms onsets), FNO (note F1 with offsets); "
            "frame_AP: average precision of the frame posteriorgram (threshold-free)",
            "focal_defaults": FOCAL_DEFAULTS,
            "seeds": seeds,
            "alphas": alphas,
            "figure_clip": clip,
        },
        "caveat": CAVEAT,
        "spread_ours": spread,
        "variants": results,
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({report['total_seconds']:.0f} s in all)")


if __name__ == "__main__":
    main()
