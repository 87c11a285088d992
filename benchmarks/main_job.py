"""
The README's command 1 (the main job) run as a user runs it, timed, and archived with what it printed and the
conditions it ran under: the owner of every time and score the README states for the job (tests/test_benchmark.py
holds the README to the archive).

    python benchmarks/main_job.py --output benchmarks/results/main_job.json

The command is read from README.md, so that what is measured is what the README asks a user to run. It runs from the
repository root, exactly as written, in a fresh process under `/usr/bin/time` (the process's peak memory); its
`--output_dir` must not exist (the harness would reuse finished runs) and is kept, with the job's output beside it
(`<output_dir>.log`), for `benchmarks/onnx_int8_accuracy.py`. Measure on a quiet machine: the archive records the load
average before and after, not what else ran.
"""

import argparse
import json
import re
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dlfa_zero_shot import provenance
from dlfa_zero_shot.files import write_atomically


ROOT = Path(__file__).resolve().parent.parent
PROGRAM = "examples/run_zero_shot.py"


def readme_command(readme: Path) -> list[str]:
    """The arguments of the README's command 1 after `python examples/run_zero_shot.py`."""
    section = readme.read_text().split("## The two set-up commands", 1)[1]
    command = re.search(rf"python {re.escape(PROGRAM)} (.*?)\n\n", section.replace("\\\n", " "), re.DOTALL)
    if command is None:
        raise SystemExit(f"{readme}: no 'python {PROGRAM} ...' command under '## The two set-up commands'")
    return shlex.split(command.group(1).split("```")[0])


def output_dir_of(args: list[str]) -> Path:
    """The command's `--output_dir`, relative to the repository root where relative."""
    if "--output_dir" not in args:
        raise SystemExit(f"the README's command has no --output_dir: {shlex.join(args)}")
    return ROOT / args[args.index("--output_dir") + 1]


def printed_scores(result: dict) -> dict:
    """One run's scores as the job prints them (percent, two decimals): English dev, each test language, the average."""
    metric, scores = result["metric"], result["scores"]
    printed = {"en dev": round(100 * scores["selection"][metric], 2)}
    printed.update(
        {language: round(100 * value[metric], 2) for language, value in scores.items() if language != "selection"}
    )
    return {**printed, "target average": round(100 * result["target_average"], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--output", type=Path, required=True, help="the archive to write (JSON)")
    args = parser.parse_args()
    command = readme_command(args.readme)
    output_dir = output_dir_of(command)
    log = output_dir.parent / f"{output_dir.name}.log"
    for path in (output_dir, log):  # the harness would reuse finished runs: nothing would be measured
        if path.exists():
            raise SystemExit(
                f"{path} exists: move it away (the job must train from scratch; it is not ours to delete)"
            )
    with tempfile.TemporaryDirectory(prefix="dlfa-main-job-") as folder:
        rss = Path(folder) / "rss"
        date, load_before = provenance.utc_now(), provenance.load_average()
        started = time.monotonic()
        output_dir.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as stream:
            completed = subprocess.run(
                ["/usr/bin/time", "-f", "%M", "-o", str(rss), sys.executable, PROGRAM, *command],
                cwd=ROOT, stdout=stream, stderr=subprocess.STDOUT, check=False,
            )  # fmt: skip
        wall_seconds, children = time.monotonic() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
        if completed.returncode != 0:
            raise SystemExit(f"the main job failed (exit {completed.returncode}); its output is in {log}")
        peak_kib = int(rss.read_text().split()[-1])
    summary = json.loads((output_dir / "summary.json").read_text())
    runs = summary["runs"]
    archive = {
        "what": "benchmarks/main_job.py: the README's command 1 (the main job), timed",
        "command": shlex.join(["python", PROGRAM, *command]),
        "date": date,
        **provenance.benchmark_made_by(Path(__file__).resolve()),  # its instruction sets choose float kernels too
        "wall_seconds": round(wall_seconds, 1),
        "cpu_seconds": round(children.ru_utime + children.ru_stime, 1),
        "peak_rss_mib": round(peak_kib / 1024),
        "load_average_before": load_before,
        "load_average_after": provenance.load_average(),
        "metric": summary["metric"],
        "selected_by_english_dev": summary["selected_by_english_dev"],
        "runs": {
            name: {
                "scores": printed_scores(result),
                "train_runtime_seconds": result["train_runtime_seconds"],
                "provenance": provenance.portable(result["provenance"]),
            }
            for name, result in runs.items()
        },
    }
    write_atomically(args.output, json.dumps(archive, indent=1) + "\n")
    print(json.dumps({key: value for key, value in archive.items() if key != "runs"}, indent=1))
    for name, run in archive["runs"].items():
        print(name, run["scores"], f"training {run['train_runtime_seconds']:.1f} s")


if __name__ == "__main__":
    main()
