"""Writing files so that nothing a user owns is ever lost or half-written.

Every file the package writes goes through :func:`atomic_output`: the bytes go to a temporary
file beside the target, which replaces the target only once complete. A crash, or ``kill -9``,
leaves the old file untouched and at most a temporary file, whose name carries the writing
process's id; the next write to the same target removes the temporaries of processes that no
longer run (:func:`remove_stale_temporaries`). :func:`atomic_directory` does the same for a
folder of files (``timbrelab synth``).

Torch files (checkpoints, trained weights) are written by :func:`save_checked`: the serialized
payload is wrapped with its SHA-256, and :func:`load_checked` refuses a file whose bytes no longer
match, in one line, before any of its values reach a model.

Chapter: book/02_focal_loss_amt.md
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import io
import os
import re
import secrets
import shutil
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

#: Marks a temporary file or folder: ``.<target name>.<pid>-<random>.tmp<suffix>``.
_TMP_PATTERN = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]{8}\.tmp")
#: Key of the format tag inside files written by :func:`save_checked`.
CHECKED_FORMAT = "timbrelab-checked-1"


class ChecksumError(ValueError):
    """A file whose content no longer matches the checksum written with it.

    Chapter: book/02_focal_loss_amt.md
    """


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes.

    Chapter: book/02_focal_loss_amt.md
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _temporary_name(target: Path, suffix: str = "") -> Path:
    return target.parent / f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp{suffix}"


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temporaries(target: str | os.PathLike) -> list[Path]:
    """Delete temporaries left beside ``target`` by writers that died (e.g. ``kill -9``).

    Only files and folders named like this module's temporaries *for this target* and
    belonging to a process that no longer runs are removed; a concurrent writer's temporary
    (a live process) is left alone.

    Returns
    -------
    list of Path
        What was removed.

    Chapter: book/02_focal_loss_amt.md
    """
    target = Path(target)
    folder = target.parent
    removed = []
    try:
        candidates = list(folder.glob(f".{glob.escape(target.name)}.*.tmp*"))
    except OSError:
        return removed
    for candidate in candidates:
        match = _TMP_PATTERN.match(candidate.name)
        if match is None or match["name"] != target.name or _process_alive(int(match["pid"])):
            continue
        with contextlib.suppress(OSError):
            if candidate.is_dir() and not candidate.is_symlink():
                shutil.rmtree(candidate)
            else:
                candidate.unlink()
            removed.append(candidate)
    return removed


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` only if the block succeeds.

    The temporary file keeps ``path``'s suffix (so writers can infer the format) and lives in
    the same folder, so :func:`os.replace` is atomic: readers never see a half-written file, and
    a failure leaves no partial output behind. Temporaries of earlier writers of ``path`` that
    were killed are removed first.

    Raises
    ------
    FileNotFoundError
        The folder does not exist.
    IsADirectoryError
        ``path`` is a folder.
    PermissionError, OSError
        The folder is not writable; the message names ``path``.

    Chapter: book/02_focal_loss_amt.md
    """
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory, not a file to write")
    if not folder.is_dir():
        raise FileNotFoundError(f"{path}: cannot write, folder {folder} does not exist")
    remove_stale_temporaries(path)
    tmp = _temporary_name(path, path.suffix)
    try:
        # os.open with 0o666 applies the umask, so the final file gets ordinary permissions
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as err:
        raise type(err)(err.errno, f"{path}: cannot write ({err.strerror})") from err
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_writable(folder: str | os.PathLike, missing_ok: bool = False) -> None:
    """Raise an OSError naming ``folder`` unless a file can be created in it now.

    Called before long work, so that an unwritable output is reported at once rather than
    after minutes of computing. With ``missing_ok`` a folder that does not exist yet (it will
    be created when the output is written) is checked at its nearest existing parent, and
    nothing is created.

    Chapter: book/02_focal_loss_amt.md
    """
    folder = Path(folder)
    existing = folder
    while missing_ok and not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise FileNotFoundError(f"{folder}: folder does not exist")
    probe = _temporary_name(existing / "write-check")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as err:
        raise type(err)(err.errno, f"{folder}: cannot write there ({err.strerror})") from err
    probe.unlink()


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, replace: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder whose files become ``path``'s only if the block succeeds.

    * ``path`` missing: the temporary folder (beside it) is renamed to ``path``.
    * ``path`` an empty folder: the files are moved into it (it may be the working directory).
    * ``path`` a non-empty folder: refused unless ``replace``; then the old folder is swapped
      out and deleted only after the new one is in place. A folder that contains the current
      working directory is never replaced (``-o .`` or ``-o ..`` would delete the user's work).

    Raises
    ------
    FileExistsError
        ``path`` is a file, or a non-empty folder without ``replace``.
    PermissionError
        Replacing a folder that contains the working directory.
    OSError
        The parent folder is not writable.

    Chapter: book/01_cqt_features.md
    """
    path = Path(os.path.abspath(path))
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path}: exists and is not a folder")
    existing = path.is_dir()
    non_empty = existing and any(path.iterdir())
    if non_empty and not replace:
        raise FileExistsError(f"{path}: folder exists and is not empty")
    if non_empty and Path.cwd().resolve().is_relative_to(path.resolve()):
        raise PermissionError(
            f"{path}: will not replace a folder that contains the working directory"
        )
    # an empty existing folder receives the files in place; otherwise build beside it
    in_place = existing and not non_empty
    anchor = path / "contents" if in_place else path  # names the temporary folder
    anchor.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(anchor)
    tmp = _temporary_name(anchor)
    tmp.mkdir()  # mode 0o777 less the umask: an ordinary folder once renamed
    try:
        yield tmp
        if in_place:
            for item in sorted(tmp.iterdir()):
                os.replace(item, path / item.name)
            tmp.rmdir()
        elif non_empty:
            previous = _temporary_name(path)
            os.replace(path, previous)
            os.replace(tmp, path)
            shutil.rmtree(previous, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """Write arrays to an uncompressed ``.npz`` atomically and reproducibly.

    ``numpy.savez`` stamps the current time into the zip entries; here every entry gets a fixed
    date, so the same arrays always give the same bytes. The file appears under its name only
    once complete, so concurrent readers (DataLoader workers) never see half an item.

    Chapter: book/01_cqt_features.md
    """
    with atomic_output(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue())


def save_checked(obj: object, path: str | os.PathLike) -> str:
    """``torch.save`` ``obj`` to ``path`` atomically, wrapped with the SHA-256 of its bytes.

    The file holds ``{"format": CHECKED_FORMAT, "sha256": digest, "payload": bytes}`` where
    ``payload`` is ``torch.save(obj)`` as a uint8 tensor (so a damaged byte reaches the
    checksum instead of stopping the zip reader); the same ``obj`` always gives the same file
    (saving straight to the temporary file would record its random name inside the archive).

    Returns
    -------
    str
        The payload's hex SHA-256.

    Chapter: book/02_focal_loss_amt.md
    """
    import torch

    payload = io.BytesIO()
    torch.save(obj, payload)
    data = payload.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    wrapped = io.BytesIO()
    payload_tensor = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    torch.save({"format": CHECKED_FORMAT, "sha256": digest, "payload": payload_tensor}, wrapped)
    with atomic_output(path) as tmp:
        tmp.write_bytes(wrapped.getvalue())
    return digest


def _torch_load(source, path: Path, what: str):
    import torch

    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except Exception as err:
        # garbage makes torch's reader raise almost anything, and a file holding code gets
        # several paragraphs about weights_only: the gist fits one line
        raise ChecksumError(
            f"{path}: not a readable {what} (corrupt, another format, or holding more than "
            "tensors and plain values)"
        ) from err


def load_checked(
    path: str | os.PathLike, what: str = "timbrelab file", legacy_ok: bool = False
) -> object:
    """Load a file written by :func:`save_checked`, after verifying its SHA-256.

    Parameters
    ----------
    path : str or PathLike
    what : str
        Names the kind of file in messages ("checkpoint", "weights file").
    legacy_ok : bool
        Also accept a plain ``torch.save`` file without a checksum (only for files whose whole
        bytes the caller has already verified, like shipped weights listed in a registry).

    Raises
    ------
    FileNotFoundError
        No such file.
    ChecksumError
        Empty, unreadable, not written by :func:`save_checked` (unless ``legacy_ok``), or
        changed since it was written. One-line messages naming ``path``.

    Chapter: book/02_focal_loss_amt.md
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {what}")
    if path.stat().st_size == 0:
        raise ChecksumError(f"{path}: empty file (0 bytes), not a {what}")
    outer = _torch_load(path, path, what)
    if not (isinstance(outer, dict) and outer.get("format") == CHECKED_FORMAT):
        if legacy_ok:
            return outer
        raise ChecksumError(
            f"{path}: not a {what} written by timbrelab (it has no checksum inside: "
            "an older timbrelab or another program wrote it)"
        )
    payload = outer.get("payload")
    data = payload.numpy().tobytes() if hasattr(payload, "numpy") else b""
    if hashlib.sha256(data).hexdigest() != outer.get("sha256"):
        raise ChecksumError(
            f"{path}: checksum mismatch, the {what} was corrupted or changed after it was written"
        )
    return _torch_load(io.BytesIO(data), path, what)
