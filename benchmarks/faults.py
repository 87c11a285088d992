"""
Fault injection on the tiny job: for each fault, run the job (`python examples/run_zero_shot.py ...`, as a user does),
inject the fault, run the same command again, and record the exit code of the faulted run, the message the user saw,
whether the final scores equal the uninterrupted run's, and what half-written or set-aside files are left.

    python benchmarks/faults.py --output benchmarks/results/faults.json    # 4 rows at once; root (tmpfs)
    python benchmarks/faults.py --show benchmarks/results/faults.json      # the table docs/usage.md shows

A kill at a precise point inside the job's own process (inside a checkpoint save, a results write, between a folder's
two renames) comes from `benchmarks/kill_at.py`, run in the command's place with the same arguments: it installs an
audit hook (`sys.addaudithook`) that SIGKILLs the process at the `open` (or `os.rename`) of a path that matches, before
it happens, then runs the harness as `examples/run_zero_shot.py` does. Every other run is the user's command, unchanged.
A full disk is a size-limited tmpfs (`mount -t tmpfs -o size=...`, which needs root), enlarged before the command is
run again, as a user frees space. Rows run 4 at once (`PARALLEL`).
"""

import argparse
import concurrent.futures
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from dlfa_zero_shot import provenance
from dlfa_zero_shot.checkpoints import checkpoint_problems, checkpoints
from dlfa_zero_shot.files import EARLIER_PREFIX, PARTIAL_PREFIX, write_atomically


ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "run_zero_shot.py"
KILL_AT = ROOT / "benchmarks" / "kill_at.py"  # the same command, killed at a point (`KillAt`)
# The tiny job of issue 30 (96 English training sentences, 3 epochs, fusion layer 11), evaluated on German only, with
# the README main job's speed settings (frozen word embeddings, 64 sub-tokens): 2 busy cores, all faults, one hour.
JOB = ("--task", "udpos", "--model_name_or_path", "offline:multilingual-e5-small", "--max_train_samples", "96",
       "--num_train_epochs", "3", "--fusion_layers", "11", "--freeze_word_embeddings", "--max_seq_length", "64",
       "--eval_languages", "de", "--max_eval_samples", "64", "--use_cpu", "--seed", "0", "--disable_tqdm", "true",
       "--report_to", "none", "--do_train", "--do_eval", "--output_dir", "run")  # fmt: skip
RUN = "aif-layer-11"
BACKBONE = "offline:multilingual-e5-small"
CHECKPOINT_STATE = f"*/{RUN}/checkpoint-*/trainer_state.json"
PARALLEL = 4  # rows run at once: each a process of two threads; a row's faulted and again runs follow each other
KillAt = tuple  # (event, target pattern, source pattern or None, which match: 1 the first)


class Job:
    """The tiny job, run in `folder` (its output: `folder/run`), with the data in `data_dir`."""

    def __init__(self, folder: Path, data_dir: Path, backbone: str):
        self.folder, self.data_dir, self.backbone = folder, data_dir, backbone
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def run_dir(self) -> Path:
        return self.folder / "run" / RUN

    def command(self, kill_at: KillAt | None = None) -> list[str]:
        """The user's command; with `kill_at`, the same arguments to `benchmarks/kill_at.py`."""
        job = [self.backbone if flag == BACKBONE else flag for flag in JOB]
        program = [str(KILL_AT), json.dumps(kill_at)] if kill_at else [str(SCRIPT)]
        return [sys.executable, *program, *job, "--data_dir", str(self.data_dir)]

    def start(self, kill_at: KillAt | None = None) -> subprocess.Popen:
        environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
        return subprocess.Popen(
            self.command(kill_at), cwd=self.folder, env=environment, text=True, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip

    def run(self, kill_at: KillAt | None = None) -> subprocess.CompletedProcess:
        return finished(self.start(kill_at))

    def scores(self) -> dict | None:
        results = self.run_dir / "results.json"
        return json.loads(results.read_text())["scores"] if results.exists() else None


def finished(process: subprocess.Popen) -> subprocess.CompletedProcess:
    _, stderr = process.communicate()
    return subprocess.CompletedProcess(process.args, process.returncode, "", stderr)


def wait_for(pattern: str, folder: Path, process: subprocess.Popen | None = None, timeout: float = 3600) -> Path:
    """The first path under `folder` matching `pattern` (a glob), once it appears."""
    deadline = time.monotonic() + timeout
    while not (found := sorted(folder.glob(pattern))):
        if process is not None and process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{folder}/{pattern} never appeared")
        time.sleep(0.01)
    return found[0]


def message(completed: subprocess.CompletedProcess) -> str:
    """The line the user saw of a run: what a stop or refusal said, the warnings of a recovery, or nothing."""
    lines = [line.strip() for line in completed.stderr.splitlines() if line.strip()]
    if completed.returncode < 0:
        return f"(killed by {signal.Signals(-completed.returncode).name}: no message)"
    if completed.returncode != 0:
        said = [line for line in lines if line.startswith(("Stopped by", "No space"))]
        return (said or lines or ["(no message)"])[-1]
    warnings = [line.split(": ", 1)[1] for line in lines if " WARNING dlfa_zero_shot." in line]
    return " | ".join(warnings) if warnings else "(no warning)"


def leftovers(output_dir: Path) -> tuple[list[str], list[str]]:
    """What is half-written in `output_dir` (temporary files, incomplete checkpoints) and what was set aside."""
    half = [path for path in output_dir.rglob("*") if path.name.startswith((PARTIAL_PREFIX, EARLIER_PREFIX))]
    run_dir = output_dir / RUN
    half += [folder for folder in checkpoints(run_dir) if checkpoint_problems(folder)] if run_dir.is_dir() else []
    aside = [path for path in output_dir.rglob("damaged-*") if path.parent.name == RUN]
    return sorted(str(path.relative_to(output_dir)) for path in half), sorted(
        str(path.relative_to(output_dir)) for path in aside
    )


class Bench:
    """The rows, each made by one of its methods (run in threads, `PARALLEL` at once), and the mounts to undo."""

    def __init__(self, work: Path, data_dir: Path, backbone: str):
        self.work, self.data_dir, self.backbone = work, data_dir, backbone
        self.rows: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.baseline = self.job("uninterrupted")
        self.baseline_done = threading.Event()
        self.mounts: list[Path] = []
        self.save = lambda: None  # writes the archive so far (`main`)

    def job(self, name: str) -> Job:
        return Job(self.work / name, self.data_dir, self.backbone)

    def record(self, key: str, fault: str, where: str, job: Job, faulted: subprocess.CompletedProcess | None,
               again: subprocess.CompletedProcess, started: float) -> None:  # fmt: skip
        half, aside = leftovers(job.folder / "run")
        row = {
            "fault": fault,
            "where": where,
            "exit_code": faulted.returncode if faulted else None,
            "message": message(faulted) if faulted else None,
            "again_exit_code": again.returncode,
            "again_message": message(again),
            "scores": job.scores(),  # compared with the uninterrupted run's once every row is done
            "half_written_left": half,
            "set_aside": aside,
            "seconds": round(time.monotonic() - started, 1),
        }
        with self.lock:
            self.rows[key] = row
            print(json.dumps({key: row}), flush=True)
            self.save()

    def uninterrupted(self) -> None:
        """
        The uninterrupted run, with the same command started beside it once it holds its folder (a second process on
        the same folder, refused), and run again once it has finished (it reads the result back).
        """
        started = time.monotonic()
        try:
            first = self.baseline.start()
            wait_for(f"{RUN}/.lock.pid", self.baseline.folder / "run", first)
            second = self.baseline.run()
            completed = finished(first)
        finally:
            self.baseline_done.set()
        if completed.returncode != 0:
            raise RuntimeError(f"the uninterrupted run failed:\n{completed.stderr[-3000:]}")
        self.record("uninterrupted", "none (the uninterrupted run)", "-", self.baseline, None, completed, started)
        where = "the same command started while the uninterrupted run trains; run again once that one finished"
        again = self.baseline.run()
        self.record("second-process", "a second process on the same folder", where, self.baseline, second, again,
                    started)  # fmt: skip
        self.truncated_results()
        self.truncated_checkpoint()

    def kill_at(self, key: str, where: str, kill_at: KillAt, job: Job | None = None,
                copy_to: str | None = None) -> Job | None:  # fmt: skip
        """
        SIGKILL at `kill_at`, then the same command again; `copy_to`: a copy of the run folder as the kill left it,
        for a fault that starts there (returned).
        """
        started = time.monotonic()
        job = job or self.job(key)
        faulted = job.run(kill_at)
        if faulted.returncode != -signal.SIGKILL:
            raise RuntimeError(f"{key}: the kill at {kill_at} missed (exit {faulted.returncode})")
        copy = None
        if copy_to:
            copy = self.job(copy_to)
            shutil.copytree(job.folder / "run", copy.folder / "run")
        self.record(key, "SIGKILL", where, job, faulted, job.run(), started)
        return copy

    def signal_in_epoch_2(self, key: str, signum: int) -> None:
        """`signum` from outside, 2 s into the second epoch (after the first checkpoint's save)."""
        started = time.monotonic()
        job = self.job(key)
        process = job.start()
        first = wait_for("checkpoint-*/trainer_state.json", job.run_dir, process).parent.name
        time.sleep(2)
        process.send_signal(signum)
        faulted = finished(process)
        where = f"training, 2 s after {first} (the end of epoch 1) was saved"
        self.record(key, f"{signal.Signals(signum).name} from outside", where, job, faulted, job.run(), started)

    def copy_of_baseline(self, name: str) -> Job:
        job = self.job(name)
        shutil.copytree(self.baseline.folder / "run", job.folder / "run")
        return job

    def truncated_results(self) -> None:
        started = time.monotonic()
        job = self.copy_of_baseline("truncated-results")
        results = job.run_dir / "results.json"
        results.write_bytes(results.read_bytes()[: results.stat().st_size // 2])
        self.record("truncated-results", "results.json cut to half its bytes", "after the run finished", job, None,
                    job.run(), started)  # fmt: skip

    def truncated_checkpoint(self) -> None:
        started = time.monotonic()
        job = self.copy_of_baseline("truncated-checkpoint")
        (job.run_dir / "results.json").unlink()
        last = checkpoints(job.run_dir)[0]
        weights = last / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
        where = f"{last.name}/model.safetensors cut to half, results.json removed (as if killed before its result)"
        self.record("truncated-checkpoint", "truncated checkpoint", where, job, None, job.run(), started)

    def full_disk(self) -> None:
        """A tmpfs with room for the first checkpoint (as big as the uninterrupted run's), not the second."""
        started = time.monotonic()
        state = wait_for(f"{RUN}/checkpoint-*/trainer_state.json", self.baseline.folder / "run")
        time.sleep(5)  # the rest of that save (the trainer state is its last file)
        checkpoint = sum(path.stat().st_size for path in state.parent.rglob("*") if path.is_file())
        disk = self.work / "disk"
        disk.mkdir()
        megabytes = (3 * checkpoint // 2) // 2**20
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(disk)], check=True)
        self.mounts.append(disk)
        job = Job(disk, self.data_dir, self.backbone)
        faulted = job.run()
        subprocess.run(["mount", "-o", f"remount,size={6 * megabytes}m", str(disk)], check=True)  # space freed
        where = f"a {megabytes} MiB tmpfs: room for the first checkpoint, not the second; then enlarged"
        self.record("full-disk", "full disk", where, job, faulted, job.run(), started)

    def results_and_renames(self) -> None:
        """
        A kill inside the results write; then, on a copy of the folder it left, the run saving its model again killed
        between `model/`'s two renames.
        """
        where = "inside the results.json write (model/ saved; the temporary file written, not yet renamed into place)"
        results = ("os.rename", f"*/{RUN}/results.json", f"*/{PARTIAL_PREFIX}*-results.json", 1)
        copy = self.kill_at("sigkill-results", where, results, copy_to="sigkill-between-renames")
        where = ("between the two renames of model/ (the earlier one moved aside, the new one not yet in place), in "
                 "the run saving it again after a kill inside its results write")  # fmt: skip
        renames = ("os.rename", f"*/{RUN}/model", f"*/{PARTIAL_PREFIX}*-model", 1)
        self.kill_at("sigkill-between-renames", where, renames, job=copy)

    def unmount(self) -> None:
        for disk in self.mounts:
            subprocess.run(["umount", str(disk)], check=False)


ROWS = ("uninterrupted", "second-process", "sigkill-checkpoint-state", "sigkill-checkpoint-start", "sigkill-training",
        "sigkill-results", "sigkill-between-renames", "sigterm", "truncated-results", "truncated-checkpoint",
        "full-disk")  # fmt: skip


def run_all(bench: Bench) -> None:
    """Every row, `PARALLEL` at once (the baseline first; the rows made from its folder follow it in its thread)."""
    tasks = {
        "uninterrupted": bench.uninterrupted,
        "sigkill-checkpoint-state": lambda: bench.kill_at(
            "sigkill-checkpoint-state",
            "inside the second checkpoint's save: weights, optimizer, scheduler and RNG state written, "
            "trainer_state.json opened", ("open", CHECKPOINT_STATE, None, 2),
        ),
        "sigkill-results-and-renames": bench.results_and_renames,
        "sigkill-training": lambda: bench.signal_in_epoch_2("sigkill-training", signal.SIGKILL),
        "sigterm": lambda: bench.signal_in_epoch_2("sigterm", signal.SIGTERM),
        "full-disk": bench.full_disk,
        "sigkill-checkpoint-start": lambda: bench.kill_at(
            "sigkill-checkpoint-start", "start of the second checkpoint's save (its folder made, config.json opened)",
            ("open", f"*/{RUN}/checkpoint-*/config.json", None, 2),
        ),
    }  # fmt: skip
    with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
        futures = {pool.submit(task): name for name, task in tasks.items()}
        for future in concurrent.futures.as_completed(futures):
            if future.exception() is not None:  # the benchmark goes on; the row says what failed
                with bench.lock:
                    bench.rows[futures[future]] = {"fault": futures[future], "error": repr(future.exception())}
                print(f"{futures[future]} failed: {future.exception()!r}", flush=True)
    uninterrupted = bench.rows.get("uninterrupted", {}).get("scores")
    for row in bench.rows.values():
        if "error" not in row:
            row["scores_equal_uninterrupted"] = uninterrupted is not None and row["scores"] == uninterrupted


def without_machine_paths(value, replacements: dict[str, str]):
    if isinstance(value, str):
        for old, new in replacements.items():
            value = value.replace(old, new)
        return value
    if isinstance(value, list):
        return [without_machine_paths(item, replacements) for item in value]
    if isinstance(value, dict):
        return {key: without_machine_paths(item, replacements) for key, item in value.items()}
    return value


def table(archive: dict) -> str:
    """The archived rows as the Markdown table docs/usage.md shows."""

    def cell(text) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    columns = ("Fault", "Where", "Exit", "Message", "Exit again", "Message again", "Scores equal", "Half-written left",
               "Set aside")  # fmt: skip
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    uninterrupted = next((row["scores"] for row in archive["rows"] if row["fault"].startswith("none")), None)
    for row in archive["rows"]:
        if "error" in row:
            lines.append(f"| {cell(row['fault'])} | the benchmark failed: {cell(row['error'])} |||||||")
            continue
        exit_code = "-" if row["exit_code"] is None else row["exit_code"]
        lines.append("| " + " | ".join(cell(value) for value in (
            row["fault"], row["where"], exit_code, row["message"] or "-", row["again_exit_code"], row["again_message"],
            "yes" if uninterrupted is not None and row["scores"] == uninterrupted else "no", ", ".join(row["half_written_left"]) or "none",
            ", ".join(row["set_aside"]) or "none",
        )) + " |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", type=Path, default=ROOT.parent / "shared" / "data" / "xtreme-lite")
    parser.add_argument("--work_dir", type=Path, help="where the runs go (default: a new temporary folder)")
    parser.add_argument("--backbone", default=BACKBONE, help="the encoder the job fine-tunes (12 layers or more)")
    parser.add_argument("--backbone_note", help="what --backbone is, for the archive (when it is not the default)")
    parser.add_argument("--output", type=Path, help="the archive to write (JSON)")
    parser.add_argument("--show", type=Path, help="print the table of an archive and exit")
    args = parser.parse_args()
    if args.show:
        print(table(json.loads(args.show.read_text())))
        return
    work = (args.work_dir or Path(tempfile.mkdtemp(prefix="dlfa-faults-"))).resolve()
    bench = Bench(work, args.data_dir.resolve(), args.backbone)
    load_before, started = provenance.load_average(), time.monotonic()
    replacements = {str(work): "<work>", str(ROOT): "<repo>", str(args.data_dir.resolve()): "<data_dir>",
                    socket.gethostname(): "<host>"}  # fmt: skip
    if args.backbone != BACKBONE:
        replacements = {args.backbone: "<backbone>", **replacements}
    made_by = provenance.benchmark_made_by(Path(__file__).resolve())

    def archive(complete: bool) -> dict:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return without_machine_paths({
            "what": "benchmarks/faults.py: each fault injected into the tiny job, then the same command run again",
            "command": "python examples/run_zero_shot.py " + " ".join(JOB) + " --data_dir ../shared/data/xtreme-lite",
            "backbone": BACKBONE if args.backbone == BACKBONE else f"<backbone>: {args.backbone_note}",
            "complete": complete,
            "date": provenance.utc_now(),
            **made_by,
            "wall_seconds": round(time.monotonic() - started, 1),
            "cpu_seconds_of_the_runs": round(children.ru_utime + children.ru_stime, 1),
            "load_average_before": load_before,
            "load_average_now": provenance.load_average(),
            "parallel_rows": PARALLEL,
            "rows": [bench.rows[key] for key in ROWS if key in bench.rows]
            + [row for key, row in bench.rows.items() if key not in ROWS],
        }, replacements)  # fmt: skip

    if args.output:
        bench.save = lambda: write_atomically(args.output, json.dumps(archive(False), indent=2) + "\n")
    try:
        run_all(bench)
    finally:
        bench.unmount()
    final = archive(True)
    if args.output:
        write_atomically(args.output, json.dumps(final, indent=2) + "\n")
    print(table(final))
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
