"""
Does DLFA transfer better? Every run here is one `examples/run_zero_shot.py` command (the harness users run), with
seeds, the paper's layer spread, both gate variants and two peer fusions behind the same interface.

    # what docs/results.md reports (the small CPU protocol below), then the report itself: one command
    bash benchmarks/zero_shot_small.sh

    # one phase at a time, resumable
    python benchmarks/zero_shot_benchmark.py --task udpos --phase sweep --seeds 1 --jobs 2
    python benchmarks/zero_shot_benchmark.py --task udpos --phase sweep --layers best --seeds 2,3 --jobs 2
    python benchmarks/zero_shot_benchmark.py --task udpos --phase variants --variants paper-gate,concat --jobs 2

    # the XTREME recipe on mBERT (GPU): lr 2e-5, batch 32, length 128, 10 epochs (tagging) / 5 (pairs), all data
    python benchmarks/zero_shot_benchmark.py --task panx --phase sweep --full --dataset_name google/xtreme

Phases: `sweep` runs the last-layer baseline and DLFA (AIF, "aff" gate) at each of `--layers` (`best`: the layer
with the best mean English dev score among the sweep runs so far); `variants` runs, at that best layer, the paper's
literal gate, the concatenation of the same two layers, ELMo's scalar mix of all layers, a fusion block trained
with a 10x learning rate and one whose gate starts at 0.1 (close to the last layer) instead of 1/2. A run whose
`results.json` exists is skipped, so an interrupted benchmark resumes where it stopped. Each finished run's weights
and checkpoints are deleted (`--keep_models` keeps them): the benchmark keeps numbers, not models.
`python benchmarks/zero_shot_report.py` turns the runs into the JSON and markdown reports.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from zero_shot_report import SWEEP_PREFIX, collect, select_layer


ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RUNS = ROOT / "benchmarks" / "runs"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "xtreme-lite"
# The ten target languages of the small protocol: five scripts, six families, available for UDPOS and PAN-X.
TAGGING_LANGUAGES = "ar,de,es,fi,fr,hi,ja,ru,tr,zh"
EVAL_LANGUAGES = {
    "udpos": TAGGING_LANGUAGES,
    "panx": TAGGING_LANGUAGES,
    "xnli": "ar,de,es,fr,hi,ru,tr,zh",
    "pawsx": "de",
}
# The small CPU protocol: frozen word embeddings and identical settings for every configuration of a task.
SMALL_PROTOCOL = {
    "--model_name_or_path": "offline:multilingual-e5-small",
    "--per_device_train_batch_size": "16",
    "--per_device_eval_batch_size": "32",
    "--freeze_word_embeddings": "true",
}
# Tagging: 2 epochs of 1,000 English sentences (126 steps), about 4 minutes a run on one core.
SMALL_TAGGING = {
    "--max_train_samples": "1000",
    "--max_eval_samples": "200",
    "--num_train_epochs": "2",
    "--learning_rate": "1e-4",
    "--max_seq_length": "64",
}
# Sentence pairs did not train on the tagging settings (PAWS-X predicted one class), so they get every English pair
# (XNLI 2,241, PAWS-X 1,800, after the 10% held out for selection), 3 epochs at 3e-5 and 500 test pairs a language:
# about 15 minutes an XNLI run on one core.
SMALL_PAIRS = {
    "--max_eval_samples": "500",
    "--num_train_epochs": "3",
    "--learning_rate": "3e-5",
    "--max_seq_length": "128",
}
SMALL_TASK_PROTOCOL = {"udpos": SMALL_TAGGING, "panx": SMALL_TAGGING, "xnli": SMALL_PAIRS, "pawsx": SMALL_PAIRS}
# XTREME's recipe (Hu et al. 2020, their scripts): mBERT, lr 2e-5, batch 32, length 128, 10 epochs for tagging, 5 for
# sentence pairs; all training data and every evaluation language.
FULL_PROTOCOL = {
    "--model_name_or_path": "bert-base-multilingual-cased",
    "--learning_rate": "2e-5",
    "--per_device_train_batch_size": "32",
    "--per_device_eval_batch_size": "64",
    "--max_seq_length": "128",
}
FULL_EPOCHS = {"udpos": "10", "panx": "10", "xnli": "5", "pawsx": "5"}
FUSION_LR_FACTOR = 10


GATE_INIT = 0.1
VARIANTS = ("paper-gate", "concat", "scalar-mix", f"fusion-lr-x{FUSION_LR_FACTOR}", f"gate-init-{GATE_INIT}")


def experiment_arguments(phase: str, layers: list[int], variants: list[str], learning_rate: float) -> dict:
    """name -> the harness flags that make the configuration (besides the protocol's)."""
    if phase == "sweep":
        experiments = {"baseline": {"--fusion_layers": "last"}}
        experiments.update({f"aif-layer-{layer:02d}": {"--fusion_layers": str(layer)} for layer in layers})
        return experiments
    (layer,) = layers
    flags = {
        "paper-gate": {"--aif_gate": "paper"},
        "concat": {"--fusion_method": "concat"},
        "scalar-mix": {"--fusion_method": "scalar_mix"},
        f"fusion-lr-x{FUSION_LR_FACTOR}": {"--fusion_learning_rate": str(FUSION_LR_FACTOR * learning_rate)},
        f"gate-init-{GATE_INIT}": {"--aif_gate_init": str(GATE_INIT)},
    }
    return {
        # the scalar mix reads every layer: its name carries no layer
        variant if variant == "scalar-mix" else f"{variant}-layer-{layer:02d}": {
            "--fusion_layers": str(layer),
            **flags[variant],
        }
        for variant in variants
    }


def protocol_arguments(task: str, full: bool) -> dict:
    if full:
        return {**FULL_PROTOCOL, "--num_train_epochs": FULL_EPOCHS[task]}
    return {**SMALL_PROTOCOL, **SMALL_TASK_PROTOCOL[task], "--eval_languages": EVAL_LANGUAGES[task]}


def run_results(run_dir: Path) -> dict | None:
    """The harness's results.json of a finished run folder (one configuration, one seed), or None."""
    found = sorted(run_dir.glob("*/results.json"))
    return json.loads(found[0].read_text()) if found else None


def best_sweep_layer(task_dir: Path) -> int:
    """The sweep's layer chosen on English dev, by the report's rule (compared on the seeds every layer has)."""
    runs = collect(task_dir)
    if not any(name.startswith(SWEEP_PREFIX) for name in runs):
        raise SystemExit(f"no finished sweep runs under {task_dir}: run --phase sweep first")
    _, by_dev, _ = select_layer(runs)
    return int(by_dev.removeprefix(SWEEP_PREFIX))


def launch(command: list[str], run_dir: Path, threads: int, keep_models: bool) -> tuple[Path, int]:
    run_dir.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    with open(run_dir / "log.txt", "a") as log:
        returncode = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=environment).returncode
    if returncode == 0 and not keep_models:
        for folder in run_dir.glob("*/checkpoint-*"):
            shutil.rmtree(folder)
        for weights in run_dir.glob("*/model/*.safetensors"):
            weights.unlink()
    return run_dir, returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True, choices=sorted(EVAL_LANGUAGES))
    parser.add_argument("--phase", required=True, choices=("sweep", "variants"))
    parser.add_argument(
        "--layers",
        default="2,4,6,8,10,11",
        help="DLFA fusion layers of the sweep; 'best' is the sweep's best layer on English dev so far",
    )
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"of the variants phase, some of {VARIANTS}")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--data_dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--dataset_name", help="read XTREME from the Hub (e.g. google/xtreme) instead of --data_dir")
    parser.add_argument("--runs_dir", type=Path, default=DEFAULT_RUNS)
    parser.add_argument("--full", action="store_true", help="XTREME's recipe on mBERT (a GPU job)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once; CPU threads are shared between them")
    parser.add_argument(
        "--threads", type=int, help="CPU threads a run (default: the cores over --jobs); to share cores with others"
    )
    parser.add_argument("--keep_models", action="store_true")
    args = parser.parse_args()
    data_source = {"--dataset_name": args.dataset_name} if args.dataset_name else {"--data_dir": str(args.data_dir)}
    if not args.dataset_name and not args.data_dir.is_dir():
        raise SystemExit(f"--data_dir {args.data_dir} is not a folder laid out as ../shared/data/xtreme-lite")

    protocol = protocol_arguments(args.task, args.full)
    task_dir = args.runs_dir / ("full" if args.full else "small") / args.task
    if args.phase == "variants":
        layers = [best_sweep_layer(task_dir)]
    else:
        layers = [best_sweep_layer(task_dir) if layer == "best" else int(layer) for layer in args.layers.split(",")]
    variants = args.variants.split(",")
    if not set(variants) <= set(VARIANTS):
        raise SystemExit(f"--variants {args.variants}: choose among {VARIANTS}")
    experiments = experiment_arguments(args.phase, layers, variants, float(protocol["--learning_rate"]))
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)

    pending = []
    for seed in args.seeds.split(","):  # seed-major: a partial benchmark has every configuration at equal seeds
        for name, flags in experiments.items():
            run_dir = task_dir / name / f"seed-{seed}"
            if run_results(run_dir) is not None:
                continue
            flags = {
                **protocol,
                **flags,
                "--task": args.task,
                **data_source,
                "--seed": seed,
                "--output_dir": str(run_dir),
                "--disable_tqdm": "true",
                "--report_to": "none",
            }
            command = [sys.executable, str(ROOT / "examples" / "run_zero_shot.py")]
            command += [part for flag, value in flags.items() for part in (flag, value)]
            pending.append((command, run_dir))
    print(f"{args.task} {args.phase}: {len(pending)} runs to do (layers {layers})", flush=True)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(launch, command, run_dir, threads, args.keep_models) for command, run_dir in pending]
        for future in futures:
            run_dir, returncode = future.result()
            status = "done" if returncode == 0 else f"FAILED (exit {returncode}, see {run_dir / 'log.txt'})"
            print(f"{run_dir.relative_to(args.runs_dir)}: {status}", flush=True)


if __name__ == "__main__":
    main()
