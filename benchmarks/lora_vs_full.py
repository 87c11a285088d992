"""
LoRA's learning rate, chosen on English dev, and LoRA against full fine-tuning on the README's main job (UDPOS, DLFA
at layer 10, the main job's budget and flags). Decided before any run (2026-12-03, issue 20):

- the grid: LoRA rank 8, alpha 16 on query and value (the harness's LoRA defaults) at learning rates `LORA_GRID`,
  each on `SEEDS`; full fine-tuning at the main job's learning rate on the same seeds;
- the choice: the learning rate with the best mean English dev F1 over the seeds (ties: the smaller); no target
  language plays a part. It becomes the harness's learning rate under `--lora_r` (`arguments.LORA_LEARNING_RATE`);
- the table: full fine-tuning against LoRA at the chosen rate, means over the seeds: trainable parameters, seconds
  per training step, training time, the process's peak resident memory (`/usr/bin/time`), English dev and the
  target average.

Every run is the harness command in a fresh process, one after the other; a run already in `--output` is kept, not
redone, and a report made with other flags (the main job's, or a run's own) or on another data folder (its path,
relative to the repository) is refused, naming them.

    python benchmarks/lora_vs_full.py --output benchmarks/results/lora_vs_full.json
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from dlfa_zero_shot.arguments import differing_flags
from dlfa_zero_shot.files import write_atomically


ROOT = Path(__file__).resolve().parent.parent
MAIN_JOB = (
    "--task", "udpos", "--model_name_or_path", "offline:multilingual-e5-small", "--fusion_layers", "10",
    "--max_train_samples", "1000", "--num_train_epochs", "2", "--max_eval_samples", "100", "--max_seq_length", "64",
    "--per_device_train_batch_size", "16", "--freeze_word_embeddings", "--save_total_limit", "1", "--use_cpu",
    "--do_train", "--do_eval", "--disable_tqdm", "true", "--report_to", "none",
)  # fmt: skip
FULL_LEARNING_RATE = "1e-4"  # the main job's
LORA_GRID = ("1e-4", "3e-4", "1e-3", "3e-3")
LORA_RANK = "8"
SEEDS = ("42", "43")  # the Trainer's default seed (the main job's) and the next


def measure(name: str, flags: tuple[str, ...], data_dir: Path, runs_dir: Path) -> dict:
    """One harness run of the main job with `flags`, in a fresh process: its cost and scores."""
    output_dir = runs_dir / name
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        command = ["/usr/bin/time", "-f", "%M", "-o", rss.name, sys.executable,
                   str(ROOT / "examples" / "run_zero_shot.py"), *MAIN_JOB, "--data_dir", str(data_dir),
                   "--output_dir", str(output_dir), *flags]  # fmt: skip
        with open(runs_dir / f"{name}.log", "w") as log:
            subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
        peak_kib = int(rss.read().split()[-1])
    (result_file,) = output_dir.glob("aif-layer-10*/results.json")
    result = json.loads(result_file.read_text())
    return {
        "trainable_parameters": result["trainable_parameters"],
        "train_seconds_per_step": round(result["train_seconds_per_step"], 3),
        "train_runtime_seconds": result["train_runtime_seconds"],
        "peak_rss_mib": round(peak_kib / 1024),
        "english_dev_f1": round(100 * result["scores"]["selection"]["f1"], 2),
        "target_average_f1": round(100 * result["target_average"], 2),
        "flags": " ".join(flags),
    }


def planned_runs() -> dict[str, tuple[str, ...]]:
    """Every run of the plan: name -> the flags it adds to the main job."""
    runs = {f"full-seed{seed}": ("--learning_rate", FULL_LEARNING_RATE, "--seed", seed) for seed in SEEDS}
    for rate in LORA_GRID:
        for seed in SEEDS:
            runs[f"lora-r{LORA_RANK}-lr{rate}-seed{seed}"] = (
                "--lora_r", LORA_RANK, "--learning_rate", rate, "--seed", seed,
            )  # fmt: skip
    return runs


def mean_of(runs: dict[str, dict], prefix: str) -> dict:
    """The mean over `SEEDS` of every number of the runs named `<prefix>-seed<seed>`."""
    rows = [runs[f"{prefix}-seed{seed}"] for seed in SEEDS]
    keys = ("trainable_parameters", "train_seconds_per_step", "train_runtime_seconds", "peak_rss_mib",
            "english_dev_f1", "target_average_f1")  # fmt: skip
    return {key: statistics.mean(row[key] for row in rows) for key in keys}


def choose_learning_rate(runs: dict[str, dict]) -> str:
    """The grid's learning rate with the best mean English dev F1 over the seeds; ties go to the smaller."""
    means = {rate: mean_of(runs, f"lora-r{LORA_RANK}-lr{rate}")["english_dev_f1"] for rate in LORA_GRID}
    return max(sorted(LORA_GRID, key=float), key=lambda rate: means[rate])


def grid_table(runs: dict[str, dict], chosen: str) -> str:
    """The grid's English dev F1 per seed and its mean, the chosen rate marked (markdown, as docs/usage.md shows)."""
    header = f"| LoRA r {LORA_RANK} learning rate | English dev F1 (seeds {', '.join(SEEDS)}) | mean |"
    lines = [header, "|---|---|---|"]
    for rate in LORA_GRID:
        scores = [runs[f"lora-r{LORA_RANK}-lr{rate}-seed{seed}"]["english_dev_f1"] for seed in SEEDS]
        marked = f"{rate} (chosen)" if rate == chosen else rate
        lines.append(f"| {marked} | {', '.join(f'{s:.2f}' for s in scores)} | {statistics.mean(scores):.2f} |")
    return "\n".join(lines)


def comparison_table(runs: dict[str, dict], chosen: str) -> str:
    """Full fine-tuning against LoRA at the chosen rate, means over the seeds (markdown, as the README shows)."""
    header = (
        f"| run (mean of seeds {', '.join(SEEDS)}) | trainable parameters | s / step | training time (s) | "
        "peak RSS (MiB) | English dev F1 | target average F1 |"
    )
    lines = [header, "|---|---|---|---|---|---|---|"]
    rows = {f"full fine-tuning, lr {FULL_LEARNING_RATE}": mean_of(runs, "full"),
            f"LoRA r {LORA_RANK}, lr {chosen}": mean_of(runs, f"lora-r{LORA_RANK}-lr{chosen}")}  # fmt: skip
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row['trainable_parameters']:,.0f} | {row['train_seconds_per_step']:.3f} | "
            f"{row['train_runtime_seconds']:.1f} | {row['peak_rss_mib']:,.0f} | {row['english_dev_f1']:.2f} | "
            f"{row['target_average_f1']:.2f} |"
        )
    return "\n".join(lines)


def data_label(data_dir: Path) -> str:
    """The data folder as a report records it: relative to the repository (`../shared/data/xtreme-lite`)."""
    return os.path.relpath(data_dir.resolve(), ROOT)


def check_same_job(report: dict, output: Path, data_dir: Path) -> None:
    """
    Stop, naming what differs, when `report` holds runs made on other data or of another job than `MAIN_JOB`, or a
    run under a planned name with other flags than the plan's (`planned_runs`): none of them is reused.
    """
    setup, runs = (report.get("setup"), report.get("runs")) if isinstance(report, dict) else (None, None)
    shaped = isinstance(setup, dict) and isinstance(setup.get("command"), str) and isinstance(runs, dict)
    if not shaped or not all(isinstance(run, dict) and isinstance(run.get("flags"), str) for run in runs.values()):
        raise SystemExit(f"{output} is not a report of this benchmark (a 'setup' command, runs with flags)")
    stored_data, requested_data = report["setup"].get("data_dir"), data_label(data_dir)
    differing = (
        [f"--data_dir: stored {stored_data!r}, now {requested_data!r}"] if stored_data != requested_data else []
    )
    differing += differing_flags(report["setup"]["command"].split(), MAIN_JOB)
    for name, flags in planned_runs().items():
        if name in runs:
            differing += [f"{name} {item}" for item in differing_flags(runs[name]["flags"].split(), flags)]
    if differing:
        raise SystemExit(
            f"{output} holds runs made with other settings ({'; '.join(differing)}): none is reused. Give another "
            "--output (and --runs_dir), or move it away to measure this job."
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", type=Path, default=ROOT.parent / "shared" / "data" / "xtreme-lite")
    parser.add_argument("--runs_dir", type=Path, default=ROOT / "benchmarks" / "runs" / "lora")
    parser.add_argument("--note", help="a remark kept with the runs measured by this call (e.g. the machine's load)")
    parser.add_argument(
        "--output",
        type=Path,
        required=True,
        help="the JSON report; runs it holds with the same settings are not redone",
    )
    args = parser.parse_args()
    report = {"setup": {"command": " ".join(MAIN_JOB), "data_dir": data_label(args.data_dir)}, "runs": {}}
    if args.output.exists():
        try:
            report = json.loads(args.output.read_text())
        except json.JSONDecodeError as error:
            raise SystemExit(f"{args.output} is not a report of this benchmark: not JSON ({error})") from None
        check_same_job(report, args.output, args.data_dir)
    args.runs_dir.mkdir(parents=True, exist_ok=True)
    for name, flags in planned_runs().items():
        if name not in report["runs"]:
            report["runs"][name] = {**measure(name, flags, args.data_dir, args.runs_dir),
                                    **({"note": args.note} if args.note else {})}  # fmt: skip
            write_atomically(args.output, json.dumps(report, indent=1) + "\n")  # each run kept as it lands
            print(f"{name}: {report['runs'][name]}", flush=True)
    report["chosen_learning_rate"] = choose_learning_rate(report["runs"])
    write_atomically(args.output, json.dumps(report, indent=1) + "\n")
    print(grid_table(report["runs"], report["chosen_learning_rate"]))
    print()
    print(comparison_table(report["runs"], report["chosen_learning_rate"]))


if __name__ == "__main__":
    main()
