#!/usr/bin/env python
"""
Fine-tune a DLFA head (or the last-layer baseline) on English and evaluate it zero-shot on every other language, with
the standard `Trainer`; optionally sweep the fusion layer (the paper's Table 1) in one command.

    # offline, with the embedded multilingual backbone and local XTREME files
    python examples/run_zero_shot.py --task udpos --data_dir ../shared/data/xtreme-lite \
        --model_name_or_path offline:multilingual-e5-small --fusion_layers 10,last --output_dir runs/udpos

    # the paper's setting, where the Hub is reachable: mBERT and XTREME's data from the Hub
    python examples/run_zero_shot.py --task panx --dataset_name google/xtreme \
        --model_name_or_path bert-base-multilingual-cased \
        --fusion_layers 1-11,last --num_train_epochs 5 --learning_rate 2e-5 --per_device_train_batch_size 32 \
        --output_dir runs/panx

Protocol: training, checkpoint selection and layer selection use English only (the English dev set, or a seeded
held-out slice of the English training file where that is the only English data); every other language is zero-shot.
An interrupted run resumes: finished layers are read back from their `results.json`, and an unfinished one continues
from its last Trainer checkpoint. Every checkpoint folder loads on its own with `trust_remote_code=True`.
"""

import hashlib
import json
import logging
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

import evaluate
import numpy as np
import torch
from transformers import (
    AutoConfig,
    AutoTokenizer,
    BertForSequenceClassification,
    BertForTokenClassification,
    DataCollatorForTokenClassification,
    DataCollatorWithPadding,
    HfArgumentParser,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.trainer_utils import get_last_checkpoint


EXAMPLES = Path(__file__).resolve().parent
sys.path[:0] = [str(EXAMPLES.parent), str(EXAMPLES)]
from model_cards.card import write_model_card  # noqa: E402
from modeling_dlfa import DLFABertForSequenceClassification, DLFABertForTokenClassification  # noqa: E402
from offline_backbone import OFFLINE_PREFIX, resolve_backbone  # noqa: E402
from hub_data import load_hub_task_data  # noqa: E402
from zero_shot_data import LABEL_ALIGNMENTS, TASKS, TaskData, align_labels, encode_pairs, load_task_data  # noqa: E402


logger = logging.getLogger("run_zero_shot")
BASELINE = "last"
MAIN_METRIC = {"tagging": "f1", "classification": "accuracy"}
METRIC_KEYS = {"f1", "precision", "recall", "token_accuracy", "accuracy"}


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        default="bert-base-multilingual-cased",
        metadata={"help": f"a BERT on the Hub or on disk, or '{OFFLINE_PREFIX}multilingual-e5-small' (no Hub needed)"},
    )
    fusion_layers: str = field(
        default="8",
        metadata={"help": "layers to fuse with the last, one run each: '8', '6,8,10', '1-11'; 'last' is the baseline"},
    )
    aif_reduction: int = field(default=4, metadata={"help": "AIF bottleneck ratio r"})
    aif_gate: str = field(default="aff", metadata={"help": "'aff' (sigmoid) or 'paper' (W * sigmoid)"})
    aif_gate_init: float = field(
        default=0.5, metadata={"help": "the gate's starting value in (0, 1); small values start at the last layer"}
    )
    aif_norm: str = field(default="batch", metadata={"help": "'batch' (masked BatchNorm) or 'layer'"})
    fusion_method: str = field(
        default="aif",
        metadata={"help": "'aif' (DLFA) or a peer fusion for comparison: 'scalar_mix' (ELMo, all layers), 'concat'"},
    )
    fusion_learning_rate: float | None = field(
        default=None, metadata={"help": "learning rate of the fusion block (default: --learning_rate)"}
    )
    freeze_word_embeddings: bool = field(default=False, metadata={"help": "keep the word embeddings fixed"})
    cache_dir: str | None = field(default=None, metadata={"help": "where Hub downloads and converted backbones go"})


@dataclass
class DataArguments:
    task: str = field(default="udpos", metadata={"help": f"one of {sorted(TASKS)}"})
    data_dir: str = field(default=None, metadata={"help": "a folder laid out as ../shared/data/xtreme-lite"})
    dataset_name: str | None = field(
        default=None,
        metadata={"help": "instead of --data_dir: XTREME on the Hub ('google/xtreme') or a local copy of its layout"},
    )
    train_language: str = field(default="en", metadata={"help": "the one training language (English data here)"})
    eval_languages: str | None = field(default=None, metadata={"help": "comma-separated; default: all found"})
    eval_split: str | None = field(
        default=None, metadata={"help": "evaluation split(s) in order of preference, e.g. 'test' or 'test,dev'"}
    )
    max_seq_length: int = field(default=128)
    max_train_samples: int | None = field(default=None)
    max_eval_samples: int | None = field(default=None, metadata={"help": "per language, selection set included"})
    label_alignment: str = field(default="first_content", metadata={"help": f"one of {LABEL_ALIGNMENTS}"})


def parse_layers(spec: str, num_layers: int) -> list[int | str]:
    """'1-11,last' -> [1, ..., 11, 'last'], each checked against the backbone's depth."""
    layers: list[int | str] = []
    for part in (piece.strip() for piece in spec.split(",") if piece.strip()):
        if part == BASELINE:
            layers.append(BASELINE)
            continue
        start, _, end = part.partition("-")
        if not (start.isdigit() and (not end or end.isdigit())):
            raise ValueError(f"--fusion_layers: {part!r} is neither a layer, a range like 1-11, nor 'last'")
        for layer in range(int(start), int(end or start) + 1):
            if not 1 <= layer <= num_layers - 1:
                raise ValueError(
                    f"--fusion_layers: layer {layer} is out of range 1..{num_layers - 1} for this backbone"
                )
            layers.append(layer)
    if not layers:
        raise ValueError("--fusion_layers names no layer")
    return list(dict.fromkeys(layers))


def build_model(
    backbone: str, task_kind: str, labels: tuple[str, ...], layer: int | str, model_args: ModelArguments
) -> PreTrainedModel:
    label_maps = {"id2label": dict(enumerate(labels)), "label2id": {label: i for i, label in enumerate(labels)}}
    if layer == BASELINE:
        model_class = BertForTokenClassification if task_kind == "token" else BertForSequenceClassification
        model = model_class.from_pretrained(
            backbone, num_labels=len(labels), **label_maps, cache_dir=model_args.cache_dir
        )
    else:
        model_class = DLFABertForTokenClassification if task_kind == "token" else DLFABertForSequenceClassification
        model = model_class.from_pretrained(
            backbone,
            num_labels=len(labels),
            **label_maps,
            fusion_layer=layer,
            aif_reduction=model_args.aif_reduction,
            aif_gate=model_args.aif_gate,
            aif_gate_init=model_args.aif_gate_init,
            aif_norm=model_args.aif_norm,
            fusion_method=model_args.fusion_method,
            cache_dir=model_args.cache_dir,
        )
    if model_args.freeze_word_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    return model


def featurize(data: TaskData, tokenizer: PreTrainedTokenizerBase, data_args: DataArguments) -> dict:
    labels = {label: index for index, label in enumerate(data.task.labels)}
    if data.task.kind == "token":

        def encode(examples):
            return align_labels(examples, tokenizer, labels, data_args.max_seq_length, data_args.label_alignment)
    else:

        def encode(examples):
            return encode_pairs(examples, tokenizer, labels, data_args.max_seq_length)

    return {
        "train": encode(data.train),
        "selection": encode(data.selection),
        "evaluation": {language: encode(examples) for language, examples in data.evaluation.items()},
    }


def run_name(layer: int | str, fusion_method: str) -> str:
    """The folder and table name of one configuration: 'last', 'layer-08', 'concat-layer-08', 'scalar_mix'."""
    if layer == BASELINE:
        return BASELINE
    if fusion_method == "scalar_mix":  # mixes every layer: the fusion layer plays no part
        return fusion_method
    return f"layer-{layer:02d}" if fusion_method == "aif" else f"{fusion_method}-layer-{layer:02d}"


class FusionLearningRateTrainer(Trainer):
    """`Trainer` whose optimizer gives the fusion block (parameters under `bert.fusion.`) its own learning rate."""

    def __init__(self, *args, fusion_learning_rate: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fusion_learning_rate = fusion_learning_rate

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        optimizer = super().create_optimizer(model)
        if self.fusion_learning_rate is None:
            return optimizer
        fusion_ids = {id(parameter) for name, parameter in self.model.named_parameters() if ".fusion." in f".{name}"}
        groups = []
        for group in optimizer.param_groups:  # split each (weight-decay) group into its fusion and other parameters
            for in_fusion in (False, True):
                parameters = [parameter for parameter in group["params"] if (id(parameter) in fusion_ids) == in_fusion]
                if parameters:
                    learning_rate = self.fusion_learning_rate if in_fusion else group["lr"]
                    groups.append({**group, "params": parameters, "lr": learning_rate})
        optimizer.param_groups = groups
        return optimizer


class ZeroShotScorer:
    """Turns `Trainer` predictions into XTREME metrics through the `evaluate` module in examples/metrics/xtreme."""

    def __init__(self, task_kind: str, labels: tuple[str, ...]):
        self.task_kind, self.labels = task_kind, labels
        self.metric = evaluate.load(str(EXAMPLES / "metrics" / "xtreme"), config_name=self.config_name)

    @property
    def config_name(self) -> str:
        return "tagging" if self.task_kind == "token" else "classification"

    def __call__(self, prediction) -> dict[str, float]:
        logits, label_ids = prediction.predictions, prediction.label_ids
        predicted = np.argmax(logits, axis=-1)
        if self.task_kind != "token":
            return self.metric.compute(predictions=predicted.tolist(), references=label_ids.tolist())
        predicted_tags, reference_tags = [], []
        for row_prediction, row_labels in zip(predicted, label_ids):
            keep = row_labels != -100
            predicted_tags.append([self.labels[i] for i in row_prediction[keep]])
            reference_tags.append([self.labels[i] for i in row_labels[keep]])
        return self.metric.compute(predictions=predicted_tags, references=reference_tags)


class ReplicaCheck(TrainerCallback):
    """
    Under data-parallel training (`accelerate launch`, torchrun), gather a SHA-256 of every process's parameters at
    the end of each epoch and stop with an error if the replicas differ. The digests of the last epoch are kept in
    `digests`. (BatchNorm running statistics are buffers, per process as in `nn.BatchNorm1d`, and not compared.)
    """

    def __init__(self):
        self.digests: list[str] | None = None

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return
        digest = hashlib.sha256()
        for parameter in model.parameters():
            digest.update(parameter.detach().cpu().contiguous().numpy().tobytes())
        gathered = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(gathered, digest.hexdigest())
        if len(set(gathered)) > 1:
            raise RuntimeError(f"data-parallel replicas diverged at epoch {state.epoch}: parameter digests {gathered}")
        self.digests = gathered


def run_layer(
    layer: int | str,
    backbone: str,
    features: dict,
    data: TaskData,
    tokenizer: PreTrainedTokenizerBase,
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: TrainingArguments,
) -> dict:
    """Train and evaluate one configuration in its own folder; read it back if it already finished."""
    name = run_name(layer, model_args.fusion_method)
    run_dir = Path(training_args.output_dir) / name
    results_file = run_dir / "results.json"
    if results_file.exists():
        logger.info("%s: finished earlier, reading %s", name, results_file)
        return json.loads(results_file.read_text())

    scorer = ZeroShotScorer(data.task.kind, data.task.labels)
    metric = MAIN_METRIC[scorer.config_name]
    args = TrainingArguments(
        **{
            **training_args.to_dict(),
            "output_dir": str(run_dir),
            "eval_strategy": "epoch",
            "save_strategy": "epoch",
            "load_best_model_at_end": True,
            "metric_for_best_model": f"eval_{metric}",
            "greater_is_better": True,
            "report_to": training_args.report_to or "none",
            "push_to_hub": False,  # main() pushes the run selected on English once the sweep is done
        }
    )
    collator = (
        DataCollatorForTokenClassification(tokenizer)
        if data.task.kind == "token"
        else DataCollatorWithPadding(tokenizer)
    )
    model = build_model(backbone, data.task.kind, data.task.labels, layer, model_args)
    replica_check = ReplicaCheck()
    trainer = FusionLearningRateTrainer(
        model=model,
        args=args,
        train_dataset=features["train"],
        eval_dataset=features["selection"],  # English only: checkpoint selection never sees a target language
        data_collator=collator,
        processing_class=tokenizer,
        compute_metrics=scorer,
        callbacks=[replica_check],
        fusion_learning_rate=None if layer == BASELINE else model_args.fusion_learning_rate,
    )
    checkpoint = get_last_checkpoint(str(run_dir)) if run_dir.is_dir() else None
    trainer.train(resume_from_checkpoint=checkpoint)

    scores = {"selection": trainer.evaluate(features["selection"], metric_key_prefix="selection")}
    for language, language_features in features["evaluation"].items():
        scores[language] = trainer.evaluate(language_features, metric_key_prefix=language)
    per_language = {
        language: {
            key.removeprefix(f"{language}_"): value
            for key, value in values.items()
            if key.removeprefix(f"{language}_") in METRIC_KEYS
        }
        for language, values in scores.items()
    }
    targets = [language for language in features["evaluation"] if language != data_args.train_language]
    result = {
        "run": name,
        "fusion_layer": layer,
        "fusion_method": None if layer == BASELINE else model_args.fusion_method,
        "metric": metric,
        "scores": per_language,
        "target_average": statistics.mean(per_language[language][metric] for language in targets) if targets else None,
        "files": data.files,
        "world_size": args.world_size,
        "replica_parameter_sha256": replica_check.digests,
    }
    trainer.save_model(str(run_dir / "model"))
    if not trainer.is_world_process_zero():
        return result
    write_model_card(
        run_dir / "model",
        data.task.name,
        result,
        model.config,
        model_args.model_name_or_path,
        training_args.hub_model_id,
    )
    results_file.write_text(json.dumps(result, indent=2) + "\n")
    return result


def push_selected_run(output_dir: Path, selected_run: str, training_args: TrainingArguments) -> str:
    """Upload the selected run's model folder (weights, code, tokenizer, card) with the stock Hub client."""
    from huggingface_hub import create_repo, upload_folder

    repo_id = training_args.hub_model_id or output_dir.name
    create_repo(repo_id, private=training_args.hub_private_repo, token=training_args.hub_token, exist_ok=True)
    upload_folder(
        repo_id=repo_id,
        folder_path=output_dir / selected_run / "model",
        token=training_args.hub_token,
        commit_message=f"DLFA zero-shot run {selected_run} (selected on English dev)",
        ignore_patterns=["training_args.bin"],
    )
    return repo_id


def write_reports(results: list[dict], languages: list[str], train_language: str, output_dir: Path) -> dict:
    metric = results[0]["metric"]
    best = max(results, key=lambda result: result["scores"]["selection"][metric])
    targets = [language for language in languages if language != train_language]
    summary = {
        "metric": metric,
        "selected_by_english_dev": best["run"],
        "runs": {result["run"]: result for result in results},
    }
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    header = ["run", "en dev"] + languages + ["avg (targets)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for result in results:
        cells = [
            result["run"] + (" (selected)" if result is best else ""),
            _percent(result["scores"]["selection"][metric]),
        ]
        cells += [_percent(result["scores"][language][metric]) for language in languages]
        cells.append(_percent(result["target_average"]))
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    (output_dir / "summary.md").write_text(f"{metric} (%), zero-shot from {train_language}\n\n{table}\n")
    _write_heatmap(results, targets, metric, output_dir / "heatmap.png")
    return summary


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _write_heatmap(results: list[dict], languages: list[str], metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = np.array([[100 * result["scores"][language][metric] for language in languages] for result in results])
    figure, axes = plt.subplots(figsize=(1 + 0.6 * len(languages), 1 + 0.45 * len(results)))
    image = axes.imshow(values, cmap="viridis", aspect="auto")
    axes.set_xticks(range(len(languages)), languages)
    axes.set_yticks(range(len(results)), [result["run"] for result in results])
    middle = (values.min() + values.max()) / 2
    for row in range(values.shape[0]):
        for column in range(values.shape[1]):
            color = "black" if values[row, column] > middle else "white"  # viridis is light at the top
            axes.text(column, row, f"{values[row, column]:.1f}", ha="center", va="center", fontsize=7, color=color)
    axes.set_xlabel("language (zero-shot)")
    axes.set_ylabel("fusion layer")
    figure.colorbar(image, ax=axes, label=f"{metric} (%)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> dict:
    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    if data_args.task not in TASKS:
        raise ValueError(f"--task {data_args.task!r} is not supported: choose one of {sorted(TASKS)}")
    if (data_args.data_dir is None) == (data_args.dataset_name is None):
        raise ValueError(
            "give exactly one of --data_dir (a folder laid out as ../shared/data/xtreme-lite) and --dataset_name "
            "(XTREME on the Hub, 'google/xtreme')"
        )
    if data_args.train_language != "en":
        raise ValueError(
            f"--train_language {data_args.train_language!r}: the local data has English training sets only"
        )

    task = TASKS[data_args.task]
    backbone = resolve_backbone(model_args.model_name_or_path, model_args.cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(backbone, cache_dir=model_args.cache_dir)
    num_layers = AutoConfig.from_pretrained(backbone, cache_dir=model_args.cache_dir).num_hidden_layers
    layers = parse_layers(model_args.fusion_layers, num_layers)
    eval_languages = data_args.eval_languages.split(",") if data_args.eval_languages else None
    eval_splits = tuple(data_args.eval_split.split(",")) if data_args.eval_split else None
    limits = dict(
        max_train_samples=data_args.max_train_samples, max_eval_samples=data_args.max_eval_samples,
        seed=training_args.seed,
    )  # fmt: skip
    if data_args.dataset_name is not None:
        data = load_hub_task_data(
            task, data_args.dataset_name, eval_languages, eval_splits, cache_dir=model_args.cache_dir, **limits
        )
    else:
        data = load_task_data(task, Path(data_args.data_dir), eval_languages, eval_splits, **limits)
    features = featurize(data, tokenizer, data_args)
    output_dir = Path(training_args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if training_args.should_save:
        tokenizer.save_pretrained(output_dir / "tokenizer")

    results = []
    for layer in layers:
        torch.manual_seed(training_args.seed)
        results.append(run_layer(layer, backbone, features, data, tokenizer, model_args, data_args, training_args))
    if not training_args.should_save:  # other data-parallel processes: the main one writes the reports
        return {}
    summary = write_reports(results, list(data.evaluation), data_args.train_language, output_dir)
    print((output_dir / "summary.md").read_text())
    if training_args.push_to_hub:
        repo_id = push_selected_run(output_dir, summary["selected_by_english_dev"], training_args)
        logger.info("pushed %s to the Hub as %s", summary["selected_by_english_dev"], repo_id)
    return summary


if __name__ == "__main__":
    main()
