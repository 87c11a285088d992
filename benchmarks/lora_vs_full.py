"""
LoRA against full fine-tuning on the README's main job (UDPOS, DLFA at layer 10, one seed): the same harness command
twice, once with `--lora_r`, one after the other in fresh processes. Reported per run: trainable parameters, seconds
per training step, the process's peak resident memory (`/usr/bin/time`), English dev and the target average.

    python benchmarks/lora_vs_full.py --output benchmarks/results/lora_vs_full.json

One seed, LoRA rank 8, alpha 16 on query and value, at the main job's learning rate unless `--lora_learning_rate`
says otherwise (a later call adds its runs to `--output`): a cost measurement with the scores beside it, not a
comparison of the two methods' best results.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
MAIN_JOB = (
    "--task", "udpos", "--model_name_or_path", "offline:multilingual-e5-small", "--fusion_layers", "10",
    "--max_train_samples", "1000", "--num_train_epochs", "2", "--max_eval_samples", "200", "--max_seq_length", "64",
    "--per_device_train_batch_size", "16", "--learning_rate", "1e-4", "--freeze_word_embeddings", "--save_total_limit",
    "1", "--use_cpu", "--do_train", "--do_eval", "--disable_tqdm", "true", "--report_to", "none",
)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", type=Path, default=ROOT.parent / "shared" / "data" / "xtreme-lite")
    parser.add_argument("--runs_dir", type=Path, default=ROOT / "benchmarks" / "runs" / "lora")
    parser.add_argument("--lora_r", type=int, default=8)
    parser.add_argument(
        "--lora_learning_rate", type=float, help="the LoRA run's learning rate (default: the main job's, 1e-4)"
    )
    parser.add_argument("--note", help="a remark kept with the runs measured by this call (e.g. the machine's load)")
    parser.add_argument("--output", type=Path, help="the JSON report; runs it already holds are kept, not redone")
    args = parser.parse_args()
    report = {"setup": {"command": " ".join(MAIN_JOB)}, "runs": {}}
    if args.output and args.output.exists():
        report = json.loads(args.output.read_text())
    args.runs_dir.mkdir(parents=True, exist_ok=True)
    lora_name, lora_flags = f"lora-r{args.lora_r}", ("--lora_r", str(args.lora_r))
    if args.lora_learning_rate is not None:
        lora_name += f"-lr{args.lora_learning_rate:g}"
        lora_flags += ("--learning_rate", str(args.lora_learning_rate))
    for name, extra in (("full", ()), (lora_name, lora_flags)):
        if name in report["runs"]:
            continue
        output_dir = args.runs_dir / name
        with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
            command = ["/usr/bin/time", "-f", "%M", "-o", rss.name, sys.executable,
                       str(ROOT / "examples" / "run_zero_shot.py"), *MAIN_JOB, "--data_dir", str(args.data_dir),
                       "--output_dir", str(output_dir), *extra]  # fmt: skip
            with open(args.runs_dir / f"{name}.log", "w") as log:
                subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
            peak_kib = int(rss.read().split()[-1])
        result = json.loads((output_dir / "aif-layer-10" / "results.json").read_text())
        report["runs"][name] = {
            "trainable_parameters": result["trainable_parameters"],
            "train_seconds_per_step": round(result["train_seconds_per_step"], 3),
            "train_runtime_seconds": result["train_runtime_seconds"],
            "peak_rss_mib": round(peak_kib / 1024),
            "english_dev_f1": round(100 * result["scores"]["selection"]["f1"], 2),
            "target_average_f1": round(100 * result["target_average"], 2),
            "flags": " ".join(extra),
            **({"note": args.note} if args.note else {}),
        }
    lines = ["| run | trainable parameters | s / step | peak RSS (MiB) | English dev F1 | target average F1 |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for name, row in report["runs"].items():
        lines.append(f"| {name} | {row['trainable_parameters']:,} | {row['train_seconds_per_step']:.3f} | "
                     f"{row['peak_rss_mib']:,} | {row['english_dev_f1']:.2f} | {row['target_average_f1']:.2f} |")  # fmt: skip
    print("\n".join(lines))
    if args.output:
        args.output.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
