"""
One process per run folder. A process holds each run folder it trains, evaluates or reads back through an
operating-system lock (`filelock`: `flock` on `<run folder>/.lock`, released by the system when the process ends,
however it ends) and records its id beside it (`.lock.pid`). A second process that asks for a folder a live process
holds is refused at once, with the folder and the holder's id; a lock left by a dead process never blocks.
"""

import logging
import os
import socket
from pathlib import Path
from typing import Self

from filelock import FileLock, Timeout

from .files import process_alive, remove_leftovers, write_atomically


logger = logging.getLogger(__name__)
LOCK_FILE = ".lock"
HOLDER_FILE = ".lock.pid"  # "<pid> <host>" of the process that holds the lock


class RunFolderBusy(SystemExit):
    """Another live process holds the run folder; the message names it and that process."""


def holder_of(run_dir: Path) -> str:
    """Who holds `run_dir`, as its holder recorded it ("process 1234 on host"), for the refusal."""
    try:
        pid, host = (run_dir / HOLDER_FILE).read_text().split()
    except (OSError, ValueError):
        return "another process (it has not recorded its id yet)"
    if host == socket.gethostname() and not process_alive(int(pid)):
        return "another process (it has not recorded its id yet)"
    return f"process {pid} on {host}"


def lock_run_folder(run_dir: Path) -> FileLock:
    """
    Hold `run_dir` for this process (until it ends, or the returned lock is released), or raise `RunFolderBusy`
    naming the folder and the process that holds it.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(run_dir / LOCK_FILE, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise RunFolderBusy(
            f"{run_dir} is in use by {holder_of(run_dir)}: two processes in one run folder would write over each "
            "other's checkpoints and results. Wait for it to finish (then run this command again: it reads that "
            "run back or resumes it), or give another --output_dir."
        ) from None
    write_atomically(run_dir / HOLDER_FILE, f"{os.getpid()} {socket.gethostname()}\n")
    return lock


class RunFolders:
    """
    The run folders this process holds, until it ends or leaves the `with` block: each held once (`lock_run_folder`), and cleared of what the
    writes of dead processes left unfinished in it (`files.remove_leftovers`). Only the process that saves holds
    folders (`holds`): the other processes of a data-parallel run share them with it.
    """

    def __init__(self, holds: bool):
        self.holds = holds
        self.locks: dict[Path, FileLock] = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        """Release every folder held (a command's process ends here anyway; a call in a longer process goes on)."""
        for lock in self.locks.values():
            lock.release()
        self.locks.clear()

    def hold(self, run_dir: Path) -> None:
        if run_dir in self.locks or not self.holds:
            return
        self.locks[run_dir] = lock_run_folder(run_dir)
        for path in remove_leftovers(run_dir):
            logger.warning("removed %s, a write an interrupted process did not finish", path)
