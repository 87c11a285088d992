"""
Training throughput on this CPU (sentences per second), side by side: which settings make the study's runs faster
without changing what they compute. One model at a time, the settings interleaved in rounds in one process, the
median over rounds with min-max; real UDPOS English sentences and the offline multilingual backbone.

    python benchmarks/throughput.py --rounds 3 --steps 6 --output benchmarks/results/throughput.json

Settings (each changes one thing against `dynamic`: batches padded to their longest sentence, 2 threads, fp32):
`static` pads every batch to --max_length; `grouped` draws length-grouped batches (transformers'
`LengthGroupedSampler`, what `--group_by_length` does); `threads-1` uses one thread; `compile` runs the model
through `torch.compile` (dynamic shapes; compile time excluded, measured apart); `bf16` trains under bf16 autocast.
Every setting is measured on the stock `BertForTokenClassification` and on DLFA (layer 10). The archive records
what made it (`provenance.benchmark_made_by`: code, versions, machine) and the load average before and after.
"""

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import datasets
import torch
from transformers import (
    AutoTokenizer,
    BertForTokenClassification,
    DataCollatorForTokenClassification,
    PreTrainedModel,
)
from transformers.trainer_pt_utils import LengthGroupedSampler

from dlfa_zero_shot import provenance
from dlfa_zero_shot.data import LocalSource
from dlfa_zero_shot.features import examples_dataset, tokenize_tagging
from dlfa_zero_shot.files import write_atomically
from dlfa_zero_shot.offline_backbone import resolve_backbone
from dlfa_zero_shot.tasks import TASKS, TRAIN_LANGUAGE
from modeling_dlfa import DLFABertForTokenClassification


ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ("dynamic", "static", "grouped", "threads-1", "compile", "bf16")


def batches(
    features: datasets.Dataset,
    collator: DataCollatorForTokenClassification,
    batch_size: int,
    steps: int,
    setting: str,
    max_length: int,
    seed: int,
) -> list[dict]:
    """The batches of `steps` steps: a shuffled draw (seeded), length-grouped for `grouped`."""
    generator = torch.Generator().manual_seed(seed)
    if setting == "grouped":
        order = list(LengthGroupedSampler(batch_size, lengths=features["length"], generator=generator))
    else:
        order = torch.randperm(len(features), generator=generator).tolist()
    rows = [{key: features[i][key] for key in ("input_ids", "attention_mask", "labels")} for i in order]
    out = []
    for step in range(steps):
        chunk = rows[step * batch_size : (step + 1) * batch_size]
        if setting == "static":
            out.append(
                DataCollatorForTokenClassification(collator.tokenizer, padding="max_length", max_length=max_length)(
                    chunk
                )
            )
        else:
            out.append(collator(chunk))
    return out


def train_steps(model: torch.nn.Module, step_batches: list[dict], setting: str) -> float:
    """Seconds for the optimizer steps on `step_batches` (AdamW, as Trainer)."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-5)
    forward = model
    torch.set_num_threads(1 if setting == "threads-1" else 2)
    start = time.perf_counter()
    for batch in step_batches:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=setting == "bf16"):
            loss = forward(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return time.perf_counter() - start


def markdown_table(report: dict) -> str:
    """Sentences per second, median [min-max] over rounds, and the ratio to `dynamic`, per model and setting."""
    table = report["throughput"]
    settings = list(next(iter(table.values())))
    lines = ["| setting | " + " | ".join(table) + " |", "|---" * (1 + len(table)) + "|"]
    for setting in settings:
        cells = []
        for model in table:
            entry, reference = table[model][setting], table[model]["dynamic"]["sentences_per_second_median"]
            ratio = entry["sentences_per_second_median"] / reference
            cells.append(
                f"{entry['sentences_per_second_median']:.1f} [{entry['min']:.1f}-{entry['max']:.1f}] (x{ratio:.2f})"
            )
        lines.append(f"| {setting} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def time_rounds(
    args: argparse.Namespace,
    settings: list[str],
    models: dict[str, Callable[[], PreTrainedModel]],
    features: datasets.Dataset,
    collator: DataCollatorForTokenClassification,
) -> tuple[dict, dict]:
    """
    `args.rounds` rounds of every model x setting, each from a fresh model seeded by its round: the seconds of the
    timed steps and of the untimed first step (warm-up, compilation), per (model, setting).
    """
    seconds = {(model, setting): [] for model in models for setting in settings}
    first_step = {(model, setting): [] for model in models for setting in settings}
    for round_index in range(args.rounds):
        for model_name, factory in models.items():
            for setting in settings:
                torch.manual_seed(round_index)
                model = factory()
                model.get_input_embeddings().weight.requires_grad_(False)  # as the study trains
                model.train()
                step_batches = batches(
                    features, collator, args.batch_size, args.steps + 1, setting, args.max_length, round_index
                )
                if setting == "compile":
                    model = torch.compile(model, dynamic=True)
                warm = time.perf_counter()
                train_steps(model, step_batches[:1], setting)  # warm-up (and compilation) not timed
                first_step[model_name, setting].append(time.perf_counter() - warm)
                seconds[model_name, setting].append(train_steps(model, step_batches[1:], setting))
                print(
                    f"round {round_index} {model_name} {setting}: {seconds[model_name, setting][-1]:.2f} s", flush=True
                )
    return seconds, first_step


def throughput(sentences_per_step: int, seconds: list[float]) -> dict[str, float]:
    """Sentences per second over the rounds: median, min and max."""
    rates = [sentences_per_step / s for s in seconds]
    return {"sentences_per_second_median": statistics.median(rates), "min": min(rates), "max": max(rates)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", type=Path, default=ROOT.parent / "shared" / "data" / "xtreme-lite")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_length", type=int, default=128)
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--output", type=Path)
    parser.add_argument("--table", type=Path, help="print the markdown table of a JSON this script wrote, and stop")
    args = parser.parse_args()
    if args.table:
        print(markdown_table(json.loads(args.table.read_text())))
        return
    settings = args.settings.split(",")
    unknown = [setting for setting in settings if setting not in SETTINGS]
    if unknown or "dynamic" not in settings or len(set(settings)) < len(settings):
        parser.error(
            f"--settings {args.settings!r}: choose among {SETTINGS}, each once, with `dynamic` (the ratios' reference)"
        )

    date, load_before = provenance.utc_now(), provenance.load_average()
    backbone = resolve_backbone("offline:multilingual-e5-small")
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    task = TASKS["udpos"]
    sentences = LocalSource(args.data_dir).read(task, TRAIN_LANGUAGE, "train", limit=args.batch_size * args.steps * 4)
    features = tokenize_tagging(examples_dataset(sentences), tokenizer, task.label_to_id, args.max_length)
    collator = DataCollatorForTokenClassification(tokenizer)
    models = {
        "stock": lambda: BertForTokenClassification.from_pretrained(backbone, num_labels=len(task.labels)),
        "dlfa": lambda: DLFABertForTokenClassification.from_pretrained(
            backbone, num_labels=len(task.labels), fusion_layer=10
        ),
    }
    seconds, first_step = time_rounds(args, settings, models, features, collator)
    sentences_per_step = args.batch_size * args.steps
    table = {
        model: {setting: throughput(sentences_per_step, seconds[model, setting]) for setting in settings}
        for model in models
    }
    warmup = {f"{model}/{setting}": statistics.median(values) for (model, setting), values in first_step.items()}
    setup = {key: str(value) for key, value in vars(args).items() if key not in ("data_dir", "output", "table")}
    report = {"setup": setup, "date": date, **provenance.benchmark_made_by(Path(__file__).resolve()),
              "load_average_before": load_before, "load_average_after": provenance.load_average(),
              "throughput": table, "first_step_seconds_median": warmup}  # fmt: skip
    print(markdown_table(report))
    if args.output:
        write_atomically(args.output, json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
