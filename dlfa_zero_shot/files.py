"""
Whole files or none. Every file the harness, the report, the benchmarks and the export write goes through
`write_atomically` (or `staged_file`, for a writer that wants a path; `staged_folder` for a folder such as a saved
model): it is written beside its place under a temporary `.partial-<pid>-` name, flushed and synced, then renamed into
place and its folder synced. A kill, a crash or a full disk therefore leaves the earlier file (or none), never half of
one; a full disk is a `DiskFullError` naming the folder and the bytes the write needed. A file that does not read back
(`read_json`) is a `DamagedFileError` naming the file and what is wrong; `set_aside` moves such a file out of the way
under a `damaged-` name, never deleting it.
"""

import contextlib
import errno
import io
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


logger = logging.getLogger(__name__)
PARTIAL_PREFIX = ".partial-"  # `.partial-<pid>-<random>-<name>`: a write in progress, or one its process left behind
# `.earlier-<pid>-<random>-<name>`: a folder `staged_folder` moved aside to put its new one in place; where its process
# died between the two renames, the only copy of the folder (`recover_earlier`)
EARLIER_PREFIX = ".earlier-"
DAMAGED_PREFIX = "damaged-"  # `damaged-<name>-<time>`: a file or folder that did not read back, set aside


class DiskFullError(OSError):
    """A write that found no space left on its device: the folder, the bytes it needed, the bytes free."""

    def __init__(self, folder: Path, what: str, needed: int | None, after: str = "Nothing earlier was overwritten."):
        free = shutil.disk_usage(folder).free if folder.exists() else 0
        need = f"it needs about {human_bytes(needed)}" if needed else "it needs more space"
        message = (
            f"No space left on the device of {folder}: {what} failed ({need}; {human_bytes(free)} free). {after} "
            "Free some space and run the same command again (or give an --output_dir on a larger disk)."
        )
        super().__init__(errno.ENOSPC, message)
        self.folder, self.needed, self.free = folder, needed, free

    def __str__(self) -> str:
        return self.strerror


class DamagedFileError(ValueError):
    """A file that does not read back (cut short, empty, not what it should hold): the file and what is wrong."""

    def __init__(self, path: Path, problem: str):
        super().__init__(f"{path} is damaged: {problem}")
        self.path, self.problem = path, problem


def human_bytes(count: int) -> str:
    """`1536` -> `"1.5 KiB"`; the count in bytes as well, where it is above a KiB."""
    size, unit = float(count), "bytes"
    for bigger in ("KiB", "MiB", "GiB", "TiB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{count} bytes" if unit == "bytes" else f"{size:.1f} {unit} ({count} bytes)"


def is_disk_full(error: BaseException, folder: Path, needed: int | None = None) -> bool:
    """
    Whether `error`, raised while writing into `folder`, came of a full disk: an ENOSPC anywhere in its chain, its
    message saying so (safetensors wraps the OS error in its own), or, for writers that say neither (`torch.save`'s
    "file write failed"), less space left in `folder` than the write needed.
    """
    cause = error
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno == errno.ENOSPC or "No space left on device" in str(cause):
            return True
        cause = cause.__cause__ or cause.__context__
    return needed is not None and folder.exists() and shutil.disk_usage(folder).free < needed


def sync(path: Path) -> None:
    """fsync a file, or a folder (so that a rename into it survives a power cut)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def remove(path: Path) -> None:
    """Remove a file or a folder; one already gone is not an error."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def partial_path(path: Path, folder: bool = False, prefix: str = PARTIAL_PREFIX) -> Path:
    """
    A new empty file (or `folder`) beside `path`, named `<prefix><pid>-<random>-<name>` (the name's suffix kept, for
    writers that read the format from it), with the permissions the umask gives a new file.
    """
    while True:
        candidate = path.with_name(f"{prefix}{os.getpid()}-{secrets.token_hex(4)}-{path.name}")
        try:
            if folder:
                os.mkdir(candidate, 0o777)
            else:
                os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return candidate
        except FileExistsError:
            continue


@contextlib.contextmanager
def staged(path: Path, needed: int | None, folder: bool) -> Iterator[Path]:
    """`staged_file` and `staged_folder`: the temporary file or folder, synced and renamed into place, or removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if folder:
        recover_earlier(path.parent)
    temporary = partial_path(path, folder)
    try:
        yield temporary
        for written in [*temporary.rglob("*"), temporary] if folder else [temporary]:
            if written.is_file():
                sync(written)
        earlier = partial_path(path, folder=True, prefix=EARLIER_PREFIX) if folder and path.exists() else None
        if earlier is not None:  # a folder cannot be renamed over a full one: the earlier one moves away first
            os.replace(path, earlier)
        try:
            os.replace(temporary, path)
        except BaseException:
            if earlier is not None:
                put_back(earlier, path)
            raise
        sync(path.parent)
        if earlier is not None:
            remove(earlier)
    except BaseException as error:
        full = isinstance(error, Exception) and is_disk_full(error, path.parent, needed)
        remove(temporary)
        if full:
            raise DiskFullError(path.parent, f"{'saving' if folder else 'writing'} {path.name}", needed) from error
        raise


def put_back(earlier: Path, path: Path) -> None:
    """The folder `staged` moved aside to `earlier` renamed back to `path`, when its new one did not go in place."""
    try:
        os.replace(earlier, path)
        sync(path.parent)
    except OSError as error:  # it stays aside, where `recover_earlier` puts it back once this process has ended
        logger.error("could not put %s back from %s (%s): the next run in %s restores it", path, earlier, error,
                     path.parent)  # fmt: skip
        return
    logger.warning("put %s back: its new version could not be renamed into place", path)


def staged_file(path: str | Path, needed: int | None = None) -> contextlib.AbstractContextManager[Path]:
    """
    A temporary path beside `path` to write the file into (for writers that take a path: an ONNX program's `save`);
    when the block ends, the file is synced and renamed to `path`. If the block raises, the temporary file is removed
    and `path` is left as it was; a full disk raises `DiskFullError` (`needed`: the bytes the file takes, where known).
    """
    return staged(Path(path), needed, folder=False)


def staged_folder(folder: str | Path, needed: int | None = None) -> contextlib.AbstractContextManager[Path]:
    """
    A temporary folder beside `folder` to save into (`save_pretrained`, a copied tree); when the block ends, every file
    in it is synced and it replaces `folder` (an earlier `folder` is moved away first and removed once the new one is
    in place; where a process died between those two renames, the next `staged_folder` or `remove_leftovers` there
    moves it back: `recover_earlier`; where the new one's rename fails, this process moves it back at once, with a
    warning, and raises). If the block raises, the temporary folder is removed and `folder` is left as it was; a full
    disk raises `DiskFullError` (`needed`: about the bytes the folder takes, where known).
    """
    return staged(Path(folder), needed, folder=True)


def data_beside(path: str | Path) -> Path:
    """The file beside the ONNX model `path` that keeps its weights when it is over 2 GB: `<name>.data` (torch.onnx's)."""
    path = Path(path)
    return path.with_name(path.name + ".data")


@contextlib.contextmanager
def staged_beside(path: str | Path, needed: int | None = None) -> Iterator[Path]:
    """
    For a writer that writes `path` and files named after it beside it (an ONNX model over 2 GB keeps its weights in
    one): a temporary folder beside `path` (`.partial-<pid>-...`, so `remove_leftovers` clears what a killed write
    leaves) holding the path to write, `<folder>/<name>`. When the block ends, every file in the folder is synced and
    moved beside `path`, `path` itself last, and the folder is synced: a reader never finds half a model. A file beside
    `path` that one of them would replace (`data_beside(path)`) is the user's: a `FileExistsError` naming it, nothing moved
    (`path` itself is replaced, as the caller asked; `examples/export_onnx.py` refuses an existing `--out`, or its
    `data_beside`, before any work). If the
    block raises, nothing is moved and the folder is removed; a full disk raises `DiskFullError`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = partial_path(path, folder=True)
    try:
        yield folder / path.name
        written = sorted(folder.iterdir(), key=lambda file: file.name == path.name)
        beside = [path.parent / file.name for file in written if file.name != path.name]
        if taken := [str(file) for file in beside if file.exists() or file.is_symlink()]:
            raise FileExistsError(
                f"{', '.join(taken)} exists: writing {path} would replace it with a file of its own; move it away or "
                "choose another path (nothing is overwritten)"
            )
        for file in written:
            sync(file)
        for file in written:
            os.replace(file, path.parent / file.name)
        sync(path.parent)
    except BaseException as error:
        if isinstance(error, Exception) and is_disk_full(error, path.parent, needed):
            raise DiskFullError(path.parent, f"writing {path.name}", needed) from error
        raise
    finally:
        remove(folder)


def write_atomically(path: str | Path, data: str | bytes) -> Path:
    """Write `data` (text as UTF-8) to `path` whole or not at all (`staged_file`); returns `path`."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with staged_file(path, needed=len(payload)) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(payload)
            handle.flush()
    return Path(path)


def save_figure(figure, path: str | Path, **savefig_kwargs) -> Path:
    """A matplotlib figure into `path` (its format from the suffix), whole or not at all."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=Path(path).suffix.lstrip("."), **savefig_kwargs)
    return write_atomically(path, buffer.getvalue())


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in Path(folder).rglob("*") if path.is_file())


def remove_leftovers(folder: Path) -> list[Path]:
    """
    Remove the temporary files and folders (`.partial-<pid>-...`) that processes no longer alive left in `folder` and
    below it, writes they did not finish; a live process's are left alone. A folder such a process had moved aside to
    save a new one is moved back first where the new one is not in place (`recover_earlier`). Returns what was
    removed.
    """
    for parent in sorted({path.parent for path in Path(folder).rglob(f"{EARLIER_PREFIX}*")}):
        recover_earlier(parent)
    removed = []
    for path in sorted(Path(folder).rglob(f"{PARTIAL_PREFIX}*")):
        if writer_dead(path, PARTIAL_PREFIX) and path.exists():
            remove(path)
            removed.append(path)
    return removed


def writer_dead(path: Path, prefix: str) -> bool:
    """Whether the process that named `path` `<prefix><pid>-...` has ended (a live one's path is left alone)."""
    pid = path.name[len(prefix) :].split("-", 1)[0]
    return pid.isdigit() and not process_alive(int(pid))


def recover_earlier(folder: Path) -> list[Path]:
    """
    Put back the folders of `folder` that `staged_folder` had moved aside (`.earlier-<pid>-<random>-<name>`) when its
    process died before the new one was in place: the earlier folder is then the only copy, and is renamed back to
    `<name>`, with a warning. Where the new one is in place, the earlier one is what the dead process was removing,
    and is removed. A live process's are left alone. Returns the folders put back.
    """
    restored = []
    for earlier in sorted(Path(folder).glob(f"{EARLIER_PREFIX}*")):
        if not writer_dead(earlier, EARLIER_PREFIX):
            continue
        target = earlier.with_name(earlier.name[len(EARLIER_PREFIX) :].split("-", 2)[2])
        if target.exists():
            remove(earlier)
            continue
        os.replace(earlier, target)
        sync(folder)
        logger.warning(
            "restored %s from %s: a process that was replacing it died before the new one was in place", target,
            earlier.name,
        )  # fmt: skip
        restored.append(target)
    return restored


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (ours counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def set_aside(path: Path) -> Path:
    """Move `path` (a file or folder) to `damaged-<name>-<time>` beside it, never deleting it; returns the new path."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{DAMAGED_PREFIX}{path.name}-{stamp}")
    number = 1
    while target.exists():
        number += 1
        target = path.with_name(f"{DAMAGED_PREFIX}{path.name}-{stamp}-{number}")
    os.replace(path, target)
    return target


def read_json(path: Path) -> Any:
    """`json.loads` of `path`, or `DamagedFileError` naming the file and what is wrong (empty, cut short, not JSON)."""
    data = Path(path).read_bytes()
    if not data.strip():
        raise DamagedFileError(path, f"it is empty ({len(data)} bytes)")
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        cut = isinstance(error, json.JSONDecodeError) and (
            error.pos >= len(data.rstrip()) or error.msg.startswith("Unterminated")
        )
        what = "cut short" if cut else "not valid JSON"
        raise DamagedFileError(path, f"{what} ({error}; {len(data)} bytes)") from None
