"""
Measure the AIF design choices the paper leaves open (gate, normalisation, reduction ratio, initialisation) on real
data: UDPOS zero-shot POS tagging with the offline multilingual backbone (multilingual-e5-small, see
examples/offline_backbone.py), trained on English with the standard `Trainer`, evaluated on other languages' test
sets. Each variant differs from `dlfa` (the defaults) in one choice; `baseline` is the stock last-layer tagger.

    python examples/offline_backbone.py --out backbones/multilingual-e5-small
    python benchmarks/aif_design.py --backbone backbones/multilingual-e5-small \
        --data-dir ../shared/data/xtreme-lite --output benchmarks/results/aif_design.json

Small on purpose (it runs on 2 CPU cores): a subsample of English training sentences, short sequences, frozen word
embeddings (the same for every variant). Token accuracy is reported; English dev is the selection set.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from transformers import (
    AutoTokenizer,
    BertForTokenClassification,
    DataCollatorForTokenClassification,
    Trainer,
    TrainingArguments,
)


ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "examples")]
from modeling_dlfa import DLFABertForTokenClassification  # noqa: E402
from zero_shot_data import TASKS, UPOS_TAGS, align_labels, eval_file, read_tagged_tsv  # noqa: E402


VARIANTS = {
    "baseline": None,
    "dlfa": {},
    "paper_gate": {"aif_gate": "paper"},
    "layer_norm": {"aif_norm": "layer"},
    "r16": {"aif_reduction": 16},
    "unit_init": {},  # the defaults, but the branches' output norm starts at scale 1 (transformers' default init)
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", type=Path)
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data" / "xtreme-lite")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, from {list(VARIANTS)}")
    parser.add_argument("--fusion-layer", type=int, default=10)
    parser.add_argument("--seeds", default="1")
    parser.add_argument("--train-sentences", type=int, default=1000)
    parser.add_argument("--eval-sentences", type=int, default=200)
    parser.add_argument("--languages", default="de,es,fr,it,nl,pt,ru,fi,tr,ar,hi")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--work-dir", type=Path, default=Path("runs/aif_design"))
    parser.add_argument("--summarize", type=Path, help="print the markdown table of a results JSON and exit")
    args = parser.parse_args()
    if args.backbone is None and args.summarize is None:
        parser.error("--backbone is required (a converted backbone folder; see examples/offline_backbone.py)")
    return args


def build_model(variant: str, args: argparse.Namespace, seed: int):
    labels = {"num_labels": len(UPOS_TAGS), "id2label": dict(enumerate(UPOS_TAGS))}
    torch.manual_seed(seed)
    if VARIANTS[variant] is None:
        model = BertForTokenClassification.from_pretrained(args.backbone, **labels)
    else:
        model = DLFABertForTokenClassification.from_pretrained(
            args.backbone, fusion_layer=args.fusion_layer, **VARIANTS[variant], **labels
        )
        if variant == "unit_init":
            with torch.no_grad():
                for branch in (model.bert.fusion.global_context, model.bert.fusion.local_context):
                    branch.expand_norm.weight.fill_(1.0)
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    return model


def token_accuracy(trainer: Trainer, features) -> float:
    prediction = trainer.predict(features)
    labels = prediction.label_ids
    predicted = np.argmax(prediction.predictions, axis=-1)
    keep = labels != -100
    return float((predicted[keep] == labels[keep]).mean())


def summary_table(report: dict) -> str:
    """A markdown table of a report: mean (and, with several seeds, min-max) per variant, token accuracy in %."""
    by_variant: dict[str, list[dict]] = {}
    for key, scores in report["results"].items():
        by_variant.setdefault(key.split("/")[0], []).append(scores)
    rows = ["| variant | seeds | en dev | target average | zh | ja | ko |", "|---|---|---|---|---|---|---|"]
    for variant, runs in by_variant.items():

        def cell(name: str) -> str:
            values = [100 * run[name] for run in runs]
            mean = f"{statistics.mean(values):.2f}"
            return mean if len(values) == 1 else f"{mean} [{min(values):.2f}-{max(values):.2f}]"

        rows.append(
            f"| {variant} | {len(runs)} | "
            + " | ".join(cell(n) for n in ("en_dev", "target_average", "zh", "ja", "ko"))
            + " |"
        )
    return "\n".join(rows)


def main() -> None:
    args = parse_args()
    if args.summarize:
        print(summary_table(json.loads(args.summarize.read_text())))
        return
    tokenizer = AutoTokenizer.from_pretrained(args.backbone)
    label_to_id = {tag: index for index, tag in enumerate(UPOS_TAGS)}
    udpos = TASKS["udpos"]

    def features(path: Path, limit: int):
        return align_labels(read_tagged_tsv(path, limit), tokenizer, label_to_id, args.max_length)

    train = features(args.data_dir / udpos.train_file, args.train_sentences)
    english_dev = features(args.data_dir / udpos.selection_file, args.eval_sentences)
    languages = args.languages.split(",")
    # Test sets, or dev where a language has no test set (German): neither is ever used for selection.
    targets = {
        language: features(eval_file(udpos, args.data_dir, language, udpos.eval_splits)[0], args.eval_sentences)
        for language in languages
    }

    # Resumable: results already in --output are kept and their runs skipped.
    results = json.loads(args.output.read_text())["results"] if args.output and args.output.exists() else {}
    setup = {key: str(value) for key, value in vars(args).items() if key not in ("seeds", "variants", "summarize")}
    # Seed-major, written after every run: an interrupted measurement still has every variant of the first seeds.
    for seed in map(int, args.seeds.split(",")):
        for variant in args.variants.split(","):
            if f"{variant}/seed{seed}" in results:
                continue
            started = time.time()
            model = build_model(variant, args, seed)
            training_args = TrainingArguments(
                output_dir=str(args.work_dir / f"{variant}-{seed}"),
                per_device_train_batch_size=args.batch_size,
                per_device_eval_batch_size=64,
                num_train_epochs=args.epochs,
                learning_rate=args.learning_rate,
                warmup_steps=0.1,  # a float below 1 is a fraction of the training steps
                weight_decay=0.01,
                seed=seed,
                save_strategy="no",
                report_to="none",
                use_cpu=True,
                logging_steps=50,
                disable_tqdm=True,
            )
            trainer = Trainer(
                model=model,
                args=training_args,
                train_dataset=train,
                data_collator=DataCollatorForTokenClassification(tokenizer),
            )
            trainer.train()
            scores = {"en_dev": token_accuracy(trainer, english_dev)}
            scores.update({language: token_accuracy(trainer, data) for language, data in targets.items()})
            scores["target_average"] = statistics.mean(scores[language] for language in languages)
            scores["seconds"] = round(time.time() - started, 1)
            results[f"{variant}/seed{seed}"] = {key: round(value, 4) for key, value in scores.items()}
            print(json.dumps({f"{variant}/seed{seed}": results[f"{variant}/seed{seed}"]}), flush=True)
            if args.output:
                args.output.parent.mkdir(parents=True, exist_ok=True)
                args.output.write_text(json.dumps({"setup": setup, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
