"""
The harness's command (`examples/run_zero_shot.py`) killed at a precise point inside its own process, for the fault
benchmark (`benchmarks/faults.py`) and tests/test_faults.py:

    python benchmarks/kill_at.py '["os.rename", "*/run/aif-layer-11/results.json", "*/.partial-*-results.json", 1]' \\
        --task udpos ... (the harness's arguments, as the user gives them)

The first argument is the kill, JSON `[event, target, source, nth]`: an audit hook (`sys.addaudithook`) SIGKILLs the
process at the `nth` (1: the first; may be left out) `event` whose path matches the glob `target`, before it happens:
event "open" (a file opened), or "os.rename" (`os.rename` and `os.replace`: a path renamed to `target` from a path
matching `source`; null: any). Then this script runs the harness exactly as `examples/run_zero_shot.py` does
(`dlfa_zero_shot.cli.main`, that script recorded as the program), with the remaining arguments.
"""

import fnmatch
import json
import os
import signal
import sys
from pathlib import Path

from dlfa_zero_shot.cli import main


SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "run_zero_shot.py"


def path_of(value) -> str:
    return os.fsdecode(value) if isinstance(value, (str, bytes, os.PathLike)) else ""


def install_kill(event: str, target: str, source: str | None = None, nth: int = 1) -> None:
    """SIGKILL this process at the `nth` `event` ("open" or "os.rename") of a path matching `target` (from `source`)."""
    seen = 0

    def kill(name: str, args: tuple) -> None:
        nonlocal seen
        if name != event:
            return
        path, renamed_from = (path_of(args[1]), path_of(args[0])) if name == "os.rename" else (path_of(args[0]), "")
        if fnmatch.fnmatch(path, target) and fnmatch.fnmatch(renamed_from, source or "*"):
            seen += 1
            if seen == nth:
                os.kill(os.getpid(), signal.SIGKILL)

    sys.addaudithook(kill)


if __name__ == "__main__":
    install_kill(*json.loads(sys.argv[1]))
    sys.exit(main(sys.argv[2:], program=SCRIPT))
