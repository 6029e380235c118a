"""The ``timbrelab`` command: ``synth``, ``transcribe``, ``separate``, ``train``, ``evaluate``,
``systems``, ``assignments``; every model-facing command reaches its system through
:mod:`timbrelab.systems`.

Each subcommand is a small function here that calls the package; errors a user can cause
(bad files, bad arguments, unwritable output) become one line on stderr and exit code 2.

Chapter: book/02_focal_loss_amt.md
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NoReturn

#: The system ``transcribe --separate`` runs unless --model or --weights names another.
_SEPARATING = "two_branch"


class CLIError(Exception):
    """A problem the user can fix; printed as one line, never as a traceback."""


# --- argument types: each rejects a bad value with one line naming the option --------------


def _bounded_float(lo: float, hi: float) -> Callable[[str], float]:
    """An argparse type: a finite number in ``[lo, hi]``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not (math.isfinite(value) and lo <= value <= hi):
            raise argparse.ArgumentTypeError(f"must be {lo:g}..{hi:g}, got {text}")
        return value

    return parse


def _bounded_int(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in ``[lo, hi]`` (no upper bound when ``hi`` is None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            bounds = f">= {lo}" if hi is None else f"{lo}..{hi}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {text}")
        return value

    return parse


#: Shortest and longest synthetic piece (``synth``, ``evaluate``): shorter than the shortest
#: file ``load_audio`` accepts is meaningless, longer is a typo (1e7 s ran without end).
_MIN_SECONDS, _MAX_SECONDS = 0.1, 600.0
_seconds = _bounded_float(_MIN_SECONDS, _MAX_SECONDS)
_seed = _bounded_int(0)


# --- the output-path policy every command follows ------------------------------------------


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def _check_output_file(target: Path, inputs: Sequence[Path] = (), missing_ok: bool = False) -> None:
    """Refuse, before any work, an output file that would destroy something or cannot be written.

    Never an input of the same command, never a folder, and its folder must exist and be
    writable now (so an unwritable output is reported at once, not after the work); with
    ``missing_ok`` the folder may still have to be created.
    """
    from timbrelab.io import check_writable

    for path in inputs:
        if _same_file(target, path):
            raise CLIError(f"{target}: is also an input; refusing to write over it")
    if target.is_dir():
        raise CLIError(f"{target}: is a folder, not a file to write")
    try:
        check_writable(target.parent, missing_ok=missing_ok)
    except OSError as err:
        raise CLIError(f"{target}: cannot write ({err})") from err


def _folder_error(err: OSError, out: Path) -> CLIError:
    """One line for an output folder that :func:`timbrelab.io.atomic_directory` refused."""
    if err.strerror:  # the system refused (no such folder, no permission, ...)
        return CLIError(f"{out}: cannot write there ({err.strerror})")
    hint = " (use --force to replace it)" if isinstance(err, FileExistsError) else ""
    return CLIError(f"{err}{hint if out.is_dir() else ''}")


def _check_suffix(target: Path, formats: Mapping[str, str], chosen: str | None) -> str:
    """The output format: ``chosen`` (``--format``) or the suffix's; they must agree."""
    by_suffix = formats.get(target.suffix.lower())
    if chosen is None:
        if by_suffix is None:
            known = ", ".join(sorted(formats))
            raise CLIError(
                f"{target}: cannot tell the output format from the suffix "
                f"{target.suffix!r}; use {known}, or --format"
            )
        return by_suffix
    if by_suffix is not None and by_suffix != chosen:
        raise CLIError(
            f"{target}: suffix {target.suffix!r} disagrees with --format {chosen}; "
            f"name the file .{chosen} or drop --format"
        )
    return chosen


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``timbrelab <command>: error: ...``), usage on --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="timbrelab",
        description="Multi-instrument music transcription, taught.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    # Each subcommand registers its parser here; see the _add_* functions below.
    for add in (
        _add_synth,
        _add_transcribe,
        _add_separate,
        _add_reconstruct,
        _add_train,
        _add_evaluate,
        _add_systems,
        _add_assignments,
    ):
        add(subparsers)
    return parser


# --- synth --------------------------------------------------------------------------------


_SYNTH_MAX_INSTRUMENTS = 8


def _add_synth(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synth",
        help="render a random K-instrument mixture with labels",
        description="Render a random mixture of K instruments from K different timbre classes "
        "into DIR: mix.wav, stem_<k>_<class>.wav per instrument, score.mid (one track per "
        "stem) and labels.npz (frame/onset/offset rolls, stem_frame, dominant_source, "
        "programs, sample_rate, hop_length). The same seed gives byte-identical files.",
    )
    p.add_argument(
        "--instruments",
        "-k",
        type=_bounded_int(1, _SYNTH_MAX_INSTRUMENTS),
        default=3,
        metavar="K",
        help=f"number of instruments, 1..{_SYNTH_MAX_INSTRUMENTS} (default 3)",
    )
    p.add_argument(
        "--seconds",
        "-s",
        type=_seconds,
        default=4.0,
        metavar="S",
        help=f"length in seconds, {_MIN_SECONDS:g}..{_MAX_SECONDS:g} (default 4)",
    )
    p.add_argument(
        "--seed", type=_seed, default=0, metavar="N", help="random seed, >= 0 (default 0)"
    )
    p.add_argument(
        "--sample-rate",
        type=_bounded_int(16000, 96000),
        default=None,
        metavar="SR",
        help="sample rate in Hz, 16000..96000 (default 22050)",
    )
    p.add_argument(
        "--hop-length",
        type=_bounded_int(1, 96000),
        default=None,
        metavar="H",
        help="label hop in samples (default 256)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace DIR if it is not empty (never a folder holding the working directory)",
    )
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    p.set_defaults(run=_run_synth)


def _run_synth(args: argparse.Namespace) -> None:
    from timbrelab.constants import HOP_LENGTH, SAMPLE_RATE
    from timbrelab.data.gm import class_name
    from timbrelab.data.mixtures import make_mixture, save_mixture
    from timbrelab.io import atomic_directory

    sample_rate = SAMPLE_RATE if args.sample_rate is None else args.sample_rate
    hop_length = HOP_LENGTH if args.hop_length is None else args.hop_length
    if hop_length > sample_rate:
        raise CLIError(f"--hop-length must be 1..{sample_rate} samples, got {hop_length}")
    out = Path(args.output)
    try:
        with atomic_directory(out, replace=args.force) as tmp:
            mix = make_mixture(args.instruments, args.seconds, seed=args.seed,
                               sample_rate=sample_rate)  # fmt: skip
            save_mixture(mix, tmp, hop_length)
    except OSError as err:
        raise _folder_error(err, out) from None
    names = ", ".join(class_name(p) for p in mix.programs)
    print(f"{out}: {args.seconds:g} s, {len(mix.notes)} notes, instruments: {names}")


# --- shared by transcribe / evaluate ------------------------------------------------------


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=None,
        help="the system to run (default: amt, or the one --weights holds); see "
        "`timbrelab systems`",
    )
    p.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="a weights file from `timbrelab train` (OUT/weights.pt) instead of shipped weights",
    )
    p.add_argument(
        "--onset-threshold",
        type=_probability,
        default=None,
        metavar="X",
        help="onset probability that starts a note, 0 < X < 1 (default: the decoder's, 0.5)",
    )
    p.add_argument(
        "--frame-threshold",
        type=_probability,
        default=None,
        metavar="Y",
        help="frame probability that sustains a note, 0 < Y < 1 (default: the decoder's, 0.3)",
    )
    p.add_argument(
        "--device", default="auto", help="where to run: auto (default: CUDA, MPS or CPU), cpu, cuda"
    )


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 < value < 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _decode_options(args: argparse.Namespace) -> dict[str, float]:
    names = {"onset_threshold": args.onset_threshold, "frame_threshold": args.frame_threshold}
    return {name: value for name, value in names.items() if value is not None}


def _device(name: str):
    """--device as a torch.device that exists here ("auto" picks CUDA, MPS or CPU)."""
    import torch

    from timbrelab.runtime import resolve_device

    try:
        device = resolve_device(name)
    except RuntimeError as err:
        raise CLIError(f"--device {name}: not a device ({err})") from err
    available = {"cuda": torch.cuda.is_available, "mps": torch.backends.mps.is_available}
    if device.type in available and not available[device.type]():
        raise CLIError(f"--device {name}: not available on this machine")
    return device


def _load_system(args: argparse.Namespace):
    """``(system, model)`` named by --model and/or --weights, on --device (or CLIError)."""
    from timbrelab import pretrained, systems

    device = _device(args.device)
    try:
        if args.weights is not None and args.model is None:
            model = pretrained.load_weights(args.weights, device)
            return systems.get(model.name), model
        system = systems.get(args.model or "amt")
        return system, system.load(device, args.weights)
    except (ValueError, pretrained.WeightsError) as err:
        raise CLIError(str(err)) from err


def _os_message(err: OSError) -> str:
    """One line for an OSError: ``<file>: <problem>``."""
    if err.filename:
        return f"{err.filename}: {err.strerror}"
    return err.strerror or str(err)


# --- transcribe ---------------------------------------------------------------------------


def _add_transcribe(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "transcribe",
        help="transcribe audio files to MIDI, CSV or JSON notes",
        description="Transcribe audio files (any format, rate or channels) into notes. With one "
        "input, OUT is the output file; with several, OUT is a folder and each input a.wav "
        "gives OUT/a.mid (or .csv/.json).",
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="IN", help="audio file(s)")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        metavar="OUT",
        help="the notes file (one input), or a folder (several inputs)",
    )
    p.add_argument(
        "--format",
        choices=("mid", "csv", "json"),
        default=None,
        help="notes format (default: OUT's suffix; mid for a folder)",
    )
    p.add_argument(
        "--separate",
        action="store_true",
        help="transcribe each instrument apart: every note gets a source, and MIDI files get "
        f"one track per source, each with its own program (default system: {_SEPARATING})",
    )
    p.add_argument(
        "--sources",
        type=_bounded_int(1, 16),
        default=None,
        metavar="K",
        help="with --separate: how many instruments play (default: estimated from the audio)",
    )
    _add_model_options(p)
    p.set_defaults(run=_run_transcribe)


def _transcribe_targets(args: argparse.Namespace) -> list[tuple[Path, Path]]:
    """(input, output file) pairs, checked by the output-path policy before any work.

    One input and OUT not a folder: OUT is the file. Otherwise OUT is a folder (created) and
    input ``a.wav`` gives ``OUT/a.<format>``.
    """
    from timbrelab.notes import NOTE_FORMATS

    out: Path = args.output
    inputs: list[Path] = args.inputs
    if len(inputs) == 1 and not out.is_dir():
        args.format = _check_suffix(out, NOTE_FORMATS, args.format)
        _check_output_file(out, inputs)
        return [(inputs[0], out)]
    suffix = f".{args.format or 'mid'}"
    targets = _batch_targets(out, inputs, lambda path: f"{path.stem}{suffix}")
    for _, target in targets:
        _check_output_file(target, inputs, missing_ok=True)
    return targets


def _batch_targets(
    out: Path, inputs: list[Path], name: Callable[[Path], str]
) -> list[tuple[Path, Path]]:
    """``(input, out / name(input))`` pairs for a batch, refused when OUT is a file or two
    inputs would write the same target. OUT itself is created only when the first output
    is written, so a command that fails early leaves nothing behind."""
    if out.exists() and not out.is_dir():
        raise CLIError(f"{out}: exists and is not a folder (several inputs need a folder)")
    targets = [(path, out / name(path)) for path in inputs]
    seen: dict[Path, Path] = {}
    for path, target in targets:
        if target in seen:
            raise CLIError(f"{path}: would overwrite {target}, also written for {seen[target]}")
        seen[target] = path
    return targets


def _for_each_input(
    command: str,
    targets: list[tuple[Path, Path]],
    args: argparse.Namespace,
    work: Callable[..., str],
    system_check: Callable[..., None] | None = None,
) -> None:
    """Run ``work(system, model, input, target) -> summary`` on every input.

    Every input's header is checked before the (slow) model load, so mistakes show at once.
    With one input a failure is the command's error; with several, each failure is reported
    on its own line, the other inputs go on, and the command fails at the end.
    """
    from timbrelab.audio import AudioError, audio_info

    failures = []

    def fail(message: str) -> None:
        if len(targets) == 1:
            raise CLIError(message)
        print(f"timbrelab {command}: error: {message}", file=sys.stderr)
        failures.append(message)

    good = []
    for path, target in targets:
        try:
            audio_info(path)
            good.append((path, target))
        except AudioError as err:
            fail(str(err))
    system, model = _load_system(args) if good else (None, None)
    if system_check is not None and system is not None:
        system_check(system)
    for path, target in good:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)  # a batch's OUT, on first use
            summary = work(system, model, path, target)
        except AudioError as err:
            fail(str(err))
        except OSError as err:
            fail(_os_message(err))
        else:
            print(f"{path} -> {target}: {summary}")
    if failures:
        raise CLIError(f"{len(failures)} of {len(targets)} inputs failed")


def _check_separating(args: argparse.Namespace) -> Callable[..., None] | None:
    """The system check of ``transcribe --separate [--sources K]`` (None without it)."""
    if args.sources is not None and not args.separate:
        raise CLIError("--sources needs --separate")
    if not args.separate:
        return None
    if args.model is None and args.weights is None:
        args.model = _SEPARATING
    separating = _requires("separate_notes", "transcribe instruments apart")

    def check(system) -> None:
        separating(system)
        if args.sources is not None and not system.counts_sources:
            raise CLIError(
                f"--sources: {system.name} always finds the instruments of its fixed line-up"
            )

    return check


def _run_transcribe(args: argparse.Namespace) -> None:
    from timbrelab.notes import write_notes

    system_check = _check_separating(args)
    options = _decode_options(args)
    if args.sources is not None:
        options["sources"] = args.sources

    def transcribe(system, model, path: Path, target: Path) -> str:
        output = system.infer_file(model, path, **options)
        # a separating system names its sources: MIDI tracks carry the names and programs
        write_notes(output.notes, target, format=args.format,
                    source_names=output.sources or None,
                    programs=output.programs or None)  # fmt: skip
        if output.sources:
            return f"{len(output.notes)} notes, {len(output.sources)} sources"
        return f"{len(output.notes)} notes"

    _for_each_input("transcribe", _transcribe_targets(args), args, transcribe, system_check)


# --- separate -----------------------------------------------------------------------------


def _add_folder_command(
    subparsers: argparse._SubParsersAction,
    name: str,
    run: Callable[[argparse.Namespace], None],
    help: str,
    description: str,
) -> None:
    """A command that writes one folder per input, DIR/<input name>/ (separate, reconstruct)."""
    p = subparsers.add_parser(name, help=help, description=description)
    p.add_argument("inputs", nargs="+", type=Path, metavar="IN", help="audio file(s)")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="DIR",
                   help="output folder (created)")  # fmt: skip
    p.add_argument("--force", action="store_true",
                   help="replace DIR/<input name>/ folders that are not empty")  # fmt: skip
    _add_model_options(p)
    p.set_defaults(run=run)


def _add_separate(subparsers: argparse._SubParsersAction) -> None:
    _add_folder_command(
        subparsers,
        "separate",
        _run_separate,
        help="separate audio files into one wav and one MIDI file per instrument",
        description="Separate each input with a system that separates sources: input a.wav "
        "gives the folder DIR/a/ holding <k>_<source>.wav and <k>_<source>.mid for every "
        "source k the system finds.",
    )


def _slug(name: str) -> str:
    """A file-name-safe lower-case form of a source name ("Violin 1" -> "violin_1")."""
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_") or "source"


def _folder_targets(args: argparse.Namespace) -> list[tuple[Path, Path]]:
    """``(input, DIR/<input name>)`` pairs, checked by the output-path policy for folders:
    never inside or onto an input, never over a file, never over a non-empty folder without
    --force, and writable, all before any work."""
    from timbrelab.io import check_writable

    inputs: list[Path] = args.inputs
    targets = _batch_targets(args.output, inputs, lambda path: path.stem)
    for _, folder in targets:
        if any(_same_file(folder, p) or folder.resolve() in p.resolve().parents for p in inputs):
            raise CLIError(f"{folder}: holds an input; refusing to write there")
        if folder.exists() and not folder.is_dir():
            raise CLIError(f"{folder}: exists and is not a folder")
        if folder.is_dir() and any(folder.iterdir()) and not args.force:
            raise CLIError(f"{folder}: folder exists and is not empty (use --force to replace it)")
        try:
            check_writable(folder.parent, missing_ok=True)
        except OSError as err:
            raise CLIError(_os_message(err)) from err
    return targets


def _requires(task: str, doing: str) -> Callable[..., None]:
    """A ``system_check`` refusing a system whose tasks lack ``task``, naming those that can."""
    from timbrelab import systems

    def check(system) -> None:
        if task not in system.tasks:
            able = [n for n in systems.names() if task in systems.get(n).tasks] or ["none yet"]
            raise CLIError(
                f"--model {system.name}: does not {doing} (systems that do: {', '.join(able)})"
            )

    return check


def _run_separate(args: argparse.Namespace) -> None:
    from timbrelab.audio import write_wav
    from timbrelab.io import atomic_directory
    from timbrelab.notes import write_notes

    def separate(system, model, path: Path, folder: Path) -> str:
        output = system.infer_file(model, path, **_decode_options(args))
        if output.stems is None:  # e.g. a variant trained without its separation heads
            raise CLIError(f"{path}: this {system.name} model makes no stems (it cannot separate)")
        with atomic_directory(folder, replace=args.force) as tmp:
            for k, name in enumerate(output.sources):
                stem = f"{k}_{_slug(name)}"
                write_wav(tmp / f"{stem}.wav", output.stems[k], output.sample_rate)
                write_notes([n for n in output.notes if n.source == k], tmp / f"{stem}.mid")
        return f"{len(output.sources)} sources, {len(output.notes)} notes"

    targets = _folder_targets(args)
    _for_each_input("separate", targets, args, separate, _requires("separate", "separate sources"))


# --- reconstruct --------------------------------------------------------------------------


def _add_reconstruct(subparsers: argparse._SubParsersAction) -> None:
    _add_folder_command(
        subparsers,
        "reconstruct",
        _run_reconstruct,
        help="resynthesise audio files with an autoencoder (and its other renderings)",
        description="Run a system that reconstructs audio (e.g. timbre_trap) on each input: "
        "input a.wav gives the folder DIR/a/ holding reconstruction.wav and one wav per other "
        "rendering the system makes (Timbre-Trap: timbre_less.wav, its transcription played "
        "back), at the model's sample rate.",
    )


def _run_reconstruct(args: argparse.Namespace) -> None:
    from timbrelab.audio import write_wav
    from timbrelab.io import atomic_directory

    def reconstruct(system, model, path: Path, folder: Path) -> str:
        output = system.infer_file(model, path, **_decode_options(args))
        audio = {"reconstruction": output.reconstruction, **output.renderings}
        with atomic_directory(folder, replace=args.force) as tmp:
            for name, wave in audio.items():
                write_wav(tmp / f"{_slug(name)}.wav", wave, output.sample_rate)
        return f"{', '.join(audio)} at {output.sample_rate} Hz"

    targets = _folder_targets(args)
    _for_each_input(
        "reconstruct", targets, args, reconstruct, _requires("reconstruct", "reconstruct audio")
    )


# --- systems ------------------------------------------------------------------------------


def _add_systems(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "systems",
        help="list the systems: what each does, its sample rate, whether weights ship",
        description="List the registered systems (the names --model and `train` take).",
    )
    p.set_defaults(run=_run_systems)


def _run_systems(args: argparse.Namespace) -> None:
    from timbrelab import pretrained, systems

    shipped = set(pretrained.available())
    rows = [
        (s.name, "/".join(s.tasks), f"{s.sample_rate} Hz",
         "shipped" if s.pretrained in shipped else "-", s.description)
        for s in map(systems.get, systems.names())
    ]  # fmt: skip
    header = ("system", "does", "rate", "weights", "")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        print(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[4]
        )


# --- train --------------------------------------------------------------------------------


def _add_train(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a system's model on synthetic mixtures",
        description="Train SYSTEM (see `timbrelab systems`) at a tier; writes checkpoint.pt, "
        "metrics.csv/json, loss.png and, at the end, weights.pt (for `timbrelab transcribe "
        "--weights`) to OUT.",
    )
    p.add_argument("model", metavar="SYSTEM", help="what to train (see `timbrelab systems`)")
    p.add_argument(
        "--tier",
        choices=("quick", "full"),
        default="quick",
        help="quick: CPU, minutes; full: the paper's scale, one GPU (default quick)",
    )
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        help="run folder: checkpoint, logs and weights go here",
    )
    p.add_argument(
        "--steps", type=_bounded_int(1, 10**9), default=None, help="override the tier's step count"
    )
    p.add_argument(
        "--config",
        type=_config_item,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a field of the model's config, e.g. a variant (repeatable; VALUE is read "
        "as JSON when it parses, else as text)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from DIR/checkpoint.pt (a run folder with a checkpoint is "
        "refused without it)",
    )
    p.add_argument(
        "--seed", type=_seed, default=0, help="seeds weights, data and order (default 0)"
    )
    p.add_argument(
        "--device", default="auto", help="where to run: auto (default: CUDA, MPS or CPU), cpu, cuda"
    )
    p.set_defaults(run=_run_train)


def _config_item(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` of ``train --config``: VALUE as JSON (numbers, true, lists) or text."""
    import json

    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _run_train(args: argparse.Namespace) -> None:
    from timbrelab import systems
    from timbrelab.io import check_writable
    from timbrelab.training import ResumeError, distributed, save_weights

    overrides = {"device": str(_device(args.device))}
    if args.steps is not None:
        overrides["steps"] = args.steps
    try:
        r = systems.get(args.model).recipe(
            args.tier, seed=args.seed, model_config=dict(args.config), **overrides
        )
    except ValueError as err:
        raise CLIError(str(err)) from err
    except TypeError as err:  # a --config value of the wrong type reached the model
        given = " ".join(f"{k}={v!r}" for k, v in args.config)
        raise CLIError(f"--config {given}: not a valid {args.model} config ({err})") from err
    out: Path = args.out
    if (out / "checkpoint.pt").exists() and not args.resume:
        raise CLIError(
            f"{out}: holds a training run already; pass --resume to continue it, or choose "
            "another folder"
        )
    if out.exists() and not out.is_dir():
        raise CLIError(f"{out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        check_writable(out)
    except OSError as err:
        raise CLIError(_os_message(err)) from err
    distributed.init_from_environment(overrides["device"])  # under torchrun: one of several
    try:
        history = r.trainer(args.out).fit(resume=args.resume)
    except ResumeError as err:
        raise CLIError(str(err)) from err
    except OSError as err:
        raise CLIError(_os_message(err)) from err
    finally:
        rank = distributed.rank_and_world()[0]
        distributed.shutdown()
    if rank > 0:
        return
    weights = args.out / "weights.pt"
    save_weights(r.model, weights)
    last = history[-1] if history else {}
    keys = ("train_loss", "val_loss", "frame_f1", "note_f1")
    summary = ", ".join(f"{k} {last[k]:.4f}" for k in keys if k in last)
    print(f"trained {args.model} to step {last.get('step', 0)} ({summary}); weights: {weights}")


# --- evaluate -----------------------------------------------------------------------------


def _add_evaluate(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="score a model: frame F1 (FF), note F1 (FN), note-with-offset F1 (FNO)",
        description="Transcribe fresh synthetic mixtures (--synthetic N) and/or the Bach10 "
        "pieces (--bach10, found via $TIMBRELAB_BACH10) and print FF/FN/FNO per piece.",
    )
    p.add_argument(
        "--synthetic",
        type=_bounded_int(0, 10_000),
        default=0,
        metavar="N",
        help="N synthetic pieces (default 0)",
    )
    p.add_argument(
        "--seconds",
        type=_seconds,
        default=10.0,
        help=f"length of synthetic pieces, {_MIN_SECONDS:g}..{_MAX_SECONDS:g} s (default 10)",
    )
    p.add_argument("--seed", type=_seed, default=0, help="seed of the synthetic pieces (default 0)")
    p.add_argument("--bach10", action="store_true", help="score the Bach10 pieces")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="FILE.json",
        help="also write the scores as JSON here",
    )
    _add_model_options(p)
    p.set_defaults(run=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> None:
    from timbrelab.evaluation import evaluate_bach10, evaluate_synthetic
    from timbrelab.io import atomic_output

    if not args.synthetic and not args.bach10:
        raise CLIError("nothing to evaluate: give --synthetic N and/or --bach10")
    if args.output is not None:
        _check_suffix(args.output, {".json": "json"}, None)
        _check_output_file(args.output)
    system, model = _load_system(args)
    decode = _decode_options(args)
    rows = []
    if args.synthetic:
        rows += evaluate_synthetic(system, model, args.synthetic, args.seconds, args.seed, **decode)
    if args.bach10:
        try:
            pieces = evaluate_bach10(system, model, **decode)
        except FileNotFoundError as err:
            raise CLIError(str(err)) from err
        if not pieces:
            raise CLIError("no Bach10 pieces found (set $TIMBRELAB_BACH10 to their folder)")
        rows += pieces
    # the scores each row holds: FF, FN, FNO, and per-source ones for separating systems
    keys = [key for key in rows[0] if key not in ("piece", "instruments")]
    mean = {key: sum(row[key] for row in rows) / len(rows) for key in keys}
    width = max(len("piece"), *(len(row["piece"]) for row in rows))
    columns = {key: max(7, len(key) + 2) for key in keys}
    print(f"{'piece':<{width}}  K" + "".join(f"{k:>{w}}" for k, w in columns.items()) + "  (%)")
    for row in [*rows, {"piece": "mean", "instruments": "", **mean}]:
        scores = "".join(f"{100 * row[k]:{w}.1f}" for k, w in columns.items())
        print(f"{row['piece']:<{width}} {row['instruments']!s:>2}{scores}")
    if args.output is not None:
        report = {
            "model": system.name,
            "weights": None if args.weights is None else str(args.weights),
            "decode": decode,
            "pieces": rows,
            "mean": mean,
        }
        try:
            with atomic_output(args.output) as tmp:
                tmp.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        except OSError as err:
            raise CLIError(_os_message(err)) from err


# --- assignments --------------------------------------------------------------------------


def _add_assignments(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "assignments",
        help="build course assignments from the chapters' exercises, and grade them",
        description="Build student and instructor notebooks from chapters' exercises, and grade "
        "the notebooks students hand in (see the book's page for instructors).",
    )
    actions = p.add_subparsers(
        dest="action",
        required=True,
        metavar="ACTION",
        help="build: the notebooks to hand out; grade: a class's notebooks",
    )
    build = actions.add_parser(
        "build",
        help="student and instructor notebooks for chapters",
        description="Write DIR/student/<chapter>.ipynb (to hand out: exercises, starter code "
        "and checks, no solutions), DIR/instructor/<chapter>.ipynb (solutions and hidden "
        "grading cases) and DIR/instructor/grading.json (points per exercise and the hidden "
        "cases' seed; keep it from students).",
    )
    build.add_argument("chapters", nargs="+", type=_bounded_int(1), metavar="CHAPTER",
                       help="chapter numbers, e.g. 1 2")  # fmt: skip
    build.add_argument("-o", "--output", required=True, type=Path, metavar="DIR",
                       help="output folder (created)")  # fmt: skip
    build.add_argument("--book", type=Path, default=None, metavar="DIR",
                       help="the book's pages (default: the book beside the package)")  # fmt: skip
    build.add_argument("--seed", type=_seed, default=None, metavar="N",
                       help="seed of the hidden grading cases (default: a random one)")  # fmt: skip
    build.add_argument("--force", action="store_true", help="replace DIR if it is not empty")
    build.set_defaults(run=_run_assignments_build)
    grade = actions.add_parser(
        "grade",
        help="grade the notebooks students handed in",
        description="Run every student's notebook (SUBMISSIONS/<student id>/<notebook>) in a "
        "kernel of its own, grade each exercise's function on the hidden cases, and write one "
        "CSV row per student and exercise: student, exercise, points, max_points, feedback.",
    )
    grade.add_argument("submissions", type=Path, metavar="SUBMISSIONS",
                       help="one folder per student, named by the student's id")  # fmt: skip
    grade.add_argument("--chapter", required=True, type=_bounded_int(1), metavar="N",
                       help="the chapter whose notebook the students hand in")  # fmt: skip
    grade.add_argument("--assignment", required=True, type=Path, metavar="DIR",
                       help="the folder `assignments build` wrote (its grading.json)")  # fmt: skip
    grade.add_argument("-o", "--output", required=True, type=Path, metavar="FILE.csv",
                       help="the grades")  # fmt: skip
    grade.add_argument("--cell-timeout", type=_bounded_int(1, 86_400), default=120, metavar="S",
                       help="time limit of one cell in seconds (default 120)")  # fmt: skip
    grade.add_argument("--timeout", type=_bounded_int(1, 86_400), default=600, metavar="S",
                       help="time limit of one notebook in seconds (default 600)")  # fmt: skip
    grade.set_defaults(run=_run_assignments_grade)


def _run_assignments_build(args: argparse.Namespace) -> None:
    import secrets

    from timbrelab.assignments import (
        DEFAULT_BOOK,
        KEY_PATH,
        AssignmentError,
        build_assignment,
        read_chapter,
    )
    from timbrelab.io import atomic_directory

    book: Path = args.book or DEFAULT_BOOK
    out: Path = args.output
    if not book.is_dir():
        raise CLIError(f"{book}: no such folder (--book: the folder of the book's pages)")
    if book.resolve().is_relative_to(out.resolve()) or out.resolve().is_relative_to(book.resolve()):
        raise CLIError(f"{out}: is or holds the book's folder {book}; write elsewhere")
    try:
        chapters = [read_chapter(number, book) for number in dict.fromkeys(args.chapters)]
    except AssignmentError as err:
        raise CLIError(str(err)) from err
    seed = secrets.randbits(32) if args.seed is None else args.seed
    try:
        with atomic_directory(out, replace=args.force) as tmp:
            build_assignment(chapters, seed, tmp)
    except OSError as err:
        raise _folder_error(err, out) from None
    for chapter in chapters:
        print(f"{out / 'student' / chapter.notebook_name}: {len(chapter.exercises)} exercises")
    print(f"{out / KEY_PATH}: points and hidden cases (keep it from students)")


def _run_assignments_grade(args: argparse.Namespace) -> None:
    from timbrelab.assignments import (
        KEY_PATH,
        AssignmentError,
        Limits,
        grade_submissions,
        read_key,
        write_grades,
    )

    out: Path = args.output
    submissions: Path = args.submissions
    key_path = args.assignment / KEY_PATH
    if out.suffix.lower() != ".csv":
        raise CLIError(f"{out}: the grades are a CSV file; name it .csv")
    _check_output_file(out, [key_path])
    if not submissions.is_dir():
        raise CLIError(f"{submissions}: not a folder (SUBMISSIONS: one folder per student)")
    if out.resolve().is_relative_to(submissions.resolve()):
        raise CLIError(f"{out}: is inside SUBMISSIONS; write the grades elsewhere")

    def progress(student: str, rows: list) -> None:
        got, most = sum(r.points for r in rows), sum(r.max_points for r in rows)
        print(f"{student}: {got:g}/{most:g} points")

    try:
        key = read_key(key_path)
        limits = Limits(cell=args.cell_timeout, notebook=args.timeout)
        grades = grade_submissions(submissions, args.chapter, key, limits, progress)
    except AssignmentError as err:
        raise CLIError(str(err)) from err
    if not grades:
        raise CLIError(f"{submissions}: holds no student folders")
    try:
        write_grades(grades, out)
    except OSError as err:
        raise CLIError(_os_message(err)) from err
    print(f"{out}: {len({g.student for g in grades})} students, {len(grades)} rows")


# --- entry point --------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, or a bad argument (already reported in one line)
        return int(done.code or 0)
    try:
        args.run(args)
    except CLIError as error:
        print(f"timbrelab {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("timbrelab: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
