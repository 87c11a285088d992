#!/usr/bin/env python
"""
Fine-tune a DLFA head (or the last-layer baseline) on English and evaluate it zero-shot on other languages, with the
standard `Trainer`; `--fusion_layers` sweeps the fusion layer (the paper's Table 1), one model per layer.

    # offline, with the embedded multilingual backbone and local XTREME files
    python examples/run_zero_shot.py --task udpos --data_dir ../shared/data/xtreme-lite \\
        --model_name_or_path offline:multilingual-e5-small --fusion_layers 10,last --do_train --do_eval \\
        --output_dir runs/udpos

    # evaluate (and write predictions of) a saved run or a Hub checkpoint, without training
    python examples/run_zero_shot.py --task udpos --data_dir ../shared/data/xtreme-lite \\
        --model_name_or_path runs/udpos/aif-layer-10/model --do_eval --do_predict --output_dir runs/udpos-eval

Protocol: training, checkpoint selection and layer selection use English only; every other language is zero-shot.
Runs are named by `dlfa_zero_shot.analysis.run_name` (`baseline`, `aif-layer-10`, `concat-layer-10`, ...). A
finished run is read back from its `results.json`; an unfinished one resumes from its last Trainer checkpoint.
"""

import argparse
import dataclasses
import json
import logging
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import transformers
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    BertForSequenceClassification,
    BertForTokenClassification,
    DataCollatorForTokenClassification,
    DataCollatorWithPadding,
    HfArgumentParser,
    PreTrainedModel,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_utils import get_last_checkpoint

from dlfa_zero_shot import analysis
from dlfa_zero_shot.data import FileSource, HubSource, LocalSource, TaskData, labels_of, load_task_data
from dlfa_zero_shot.features import (
    LABEL_ALIGNMENTS,
    examples_dataset,
    length_sorted,
    tokenize_pairs,
    tokenize_tagging,
    words_past_limit,
)
from dlfa_zero_shot.offline_backbone import OFFLINE_PREFIX, resolve_backbone
from dlfa_zero_shot.readers import read_examples
from dlfa_zero_shot.tasks import CUSTOM_KINDS, TASKS, TRAIN_LANGUAGE, TaskSpec, custom_task
from dlfa_zero_shot.training import (
    FusionLearningRateTrainer,
    LayerSearchScorer,
    LayerSearchTrainer,
    ReplicaCheck,
    ZeroShotScorer,
    apply_lora,
    device_name,
    evaluate_language,
    load_new_head,
    predict_in_order,
    predicted_ids,
    score_predictions,
    write_predictions,
)
from model_cards.card import stage_hub_folder, write_model_card, write_to_hub_cache
from modeling_dlfa import (
    DLFABertConfig,
    DLFABertForLayerSearch,
    DLFABertForSequenceClassification,
    DLFABertForTokenClassification,
    add_word_pipeline,
)


logger = logging.getLogger("run_zero_shot")
BASELINE_LAYER = "last"
SETTINGS_FILE = "settings.json"  # in each run folder: the settings it was made with (`run_settings`)


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        default="bert-base-multilingual-cased",
        metadata={
            "help": f"the backbone to fine-tune: a BERT on the Hub or on disk, or '{OFFLINE_PREFIX}multilingual-e5-small'"
            " (no Hub needed); without --do_train, the fine-tuned checkpoint to evaluate (DLFA or a plain BERT head)"
        },
    )
    fusion_layers: str = field(
        default="8",
        metadata={
            "help": "layers to fuse with the last, one model each: '8', '6,8,10', '1-11'; 'last' is the baseline"
        },
    )
    aif_reduction: int = field(default=4, metadata={"help": "AIF bottleneck ratio r"})
    aif_gate: str = field(
        default="aff", metadata={"help": "'aff' (sigmoid) or 'paper' (W * sigmoid, Eq. 1 as printed)"}
    )
    aif_gate_init: float = field(
        default=0.5, metadata={"help": "the gate's starting value in (0, 1); small values start at the last layer"}
    )
    aif_norm: str = field(default="batch", metadata={"help": "'batch' (masked BatchNorm) or 'layer'"})
    fusion_method: str = field(
        default="aif",
        metadata={"help": "'aif' (DLFA) or a peer fusion for comparison: 'scalar_mix' (ELMo, all layers), 'concat'"},
    )
    fusion_learning_rate: float | None = field(
        default=None, metadata={"help": "learning rate of the fusion block; unset: --learning_rate"}
    )
    freeze_word_embeddings: bool = field(default=False, metadata={"help": "keep the word embeddings fixed"})
    cache_dir: str | None = field(default=None, metadata={"help": "where Hub downloads and converted backbones go"})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "allow a checkpoint's own code (needed to evaluate a DLFA Hub checkpoint)"}
    )
    hub_dry_run: str | None = field(
        default=None,
        metadata={
            "help": "with --push_to_hub: write the folder that would be uploaded into this Hub cache folder (as "
            "--hub_model_id) instead of uploading; it then loads with HF_HUB_CACHE=<folder> HF_HUB_OFFLINE=1"
        },
    )
    lora_r: int = field(
        default=0,
        metadata={"help": "LoRA rank on the encoder (0: full fine-tuning); fusion block and head train in full"},
    )
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling alpha"})
    lora_dropout: float = field(default=0.1, metadata={"help": "LoRA dropout"})
    lora_target_modules: str = field(
        default="query,value", metadata={"help": "comma-separated encoder modules that get LoRA adapters"}
    )
    layer_search: str = field(
        default="sweep",
        metadata={
            "help": "how the --fusion_layers candidates are compared: 'sweep' (one fine-tune each) or 'one_pass' (one "
            "shared encoder with a head per layer, the layer chosen on English dev)"
        },
    )
    layer_search_then: str = field(
        default="retrain",
        metadata={
            "help": "after a one-pass search: 'retrain' the chosen layer as an ordinary run (default: the model users "
            "get is then exactly an ordinary DLFA run), or 'keep' the chosen head with the shared encoder as trained"
        },
    )


@dataclass
class DataArguments:
    task: str = field(default="udpos", metadata={"help": f"one of {sorted(TASKS)}"})
    data_dir: str | None = field(default=None, metadata={"help": "a folder laid out as ../shared/data/xtreme-lite"})
    dataset_name: str | None = field(
        default=None,
        metadata={"help": "instead of --data_dir: XTREME on the Hub ('google/xtreme') or a local copy of its layout"},
    )
    train_file: str | None = field(
        default=None,
        metadata={
            "help": "your own English training file instead of --data_dir: json/jsonl/csv (tokens + ner_tags/pos_tags/"
            "tags/labels; premise/hypothesis/label or sentence1/sentence2/label) or CoNLL/TSV; its labels are the model's"
        },
    )
    validation_file: str | None = field(
        default=None, metadata={"help": "your own English selection file (unset: 10%% of --train_file, seeded)"}
    )
    test_files: str | None = field(
        default=None,
        metadata={"help": "your own evaluation files per language, 'de=PATH,sw=PATH' (unlabelled: predictions only)"},
    )
    eval_languages: str | None = field(
        default=None, metadata={"help": "comma-separated languages to evaluate; unset: every language with data"}
    )
    eval_split: str | None = field(
        default=None,
        metadata={"help": "evaluation split(s) in order of preference, e.g. 'test,dev'; unset: the task's"},
    )
    max_seq_length: int = field(
        default=128, metadata={"help": "sub-tokens per input; longer tagging sentences are split into windows"}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "use the first N English training examples"})
    max_eval_samples: int | None = field(
        default=None,
        metadata={"help": "use the first N examples of every evaluation language and of the selection set"},
    )
    label_alignment: str = field(
        default="first_content",
        metadata={"help": f"which sub-token of a word carries its tag: one of {LABEL_ALIGNMENTS}"},
    )


def parse_layers(spec: str, num_layers: int) -> list[int | None]:
    """'1-11,last' -> [1, ..., 11, None] (None: the last-layer baseline), each checked against the backbone's depth."""
    layers: list[int | None] = []
    for part in (piece.strip() for piece in spec.split(",") if piece.strip()):
        if part == BASELINE_LAYER:
            layers.append(None)
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


def configuration_name(
    layer: int | None, model_args: ModelArguments, data_args: DataArguments, task: TaskSpec, learning_rate: float
) -> str:
    """The run name of the model trained at `layer` (None: the baseline) with these arguments: every setting in it."""
    factor = model_args.fusion_learning_rate / learning_rate if model_args.fusion_learning_rate else None
    return analysis.run_name(
        layer, model_args.fusion_method, model_args.aif_gate, model_args.aif_gate_init, factor,
        aif_reduction=model_args.aif_reduction, aif_norm=model_args.aif_norm, lora_r=model_args.lora_r,
        label_alignment=data_args.label_alignment if task.kind == "token" else None,
    )  # fmt: skip


def checkpoint_name(config) -> str:
    """The run name of a fine-tuned checkpoint, from its config (a plain BERT head is the baseline)."""
    if getattr(config, "model_type", None) != "dlfa_bert":
        return analysis.BASELINE
    return analysis.run_name(
        config.fusion_layer, config.fusion_method, config.aif_gate, config.aif_gate_init,
        aif_reduction=config.aif_reduction, aif_norm=config.aif_norm, label_alignment=None,
    )  # fmt: skip


# Arguments that change nothing a run computes (where it is, how it reports, which runs the call makes): left out of
# the settings a stored run must match. Every other argument is compared.
NOT_SETTINGS = {
    "cache_dir", "trust_remote_code", "hub_dry_run", "fusion_layers", "layer_search", "layer_search_then",
}  # fmt: skip
TRAINING_SETTINGS = (
    "seed", "data_seed", "learning_rate", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm",
    "num_train_epochs", "max_steps", "lr_scheduler_type", "lr_scheduler_kwargs", "warmup_steps", "warmup_ratio",
    "per_device_train_batch_size", "gradient_accumulation_steps", "optim", "optim_args", "train_sampling_strategy",
    "label_smoothing_factor", "fp16", "bf16", "tf32", "do_train",
)  # fmt: skip


def run_settings(model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments) -> dict:
    """Every setting that changes what a run computes, as JSON values (what `check_stored_settings` compares)."""
    settings = {
        name: value
        for arguments in (model_args, data_args)
        for name, value in dataclasses.asdict(arguments).items()
        if name not in NOT_SETTINGS
    }
    settings.update({name: getattr(training_args, name) for name in TRAINING_SETTINGS if hasattr(training_args, name)})
    return json.loads(json.dumps(settings, default=str))


def reuse_or_claim(run_dir: Path, settings: dict, training_args: TrainingArguments) -> bool:
    """
    Whether `run_dir` holds a finished run made with `settings` (read it back); else it is this run's, to start or to
    resume: its settings are checked against any the folder holds (`check_stored_settings`), then recorded.
    """
    check_stored_settings(run_dir, settings)
    if (run_dir / "results.json").exists():
        return True
    if training_args.should_save:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / SETTINGS_FILE).write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    return False


def check_stored_settings(run_dir: Path, settings: dict) -> None:
    """
    A run folder is reused (its result, or its checkpoint to resume from) only where the settings stored in it by the
    run that wrote it equal `settings`; otherwise, or where it stores none, stop and name the settings that differ.
    """
    stored_file = run_dir / SETTINGS_FILE
    if not stored_file.exists():
        if (run_dir / "results.json").exists() or (run_dir.is_dir() and get_last_checkpoint(str(run_dir))):
            raise SystemExit(
                f"{run_dir} holds a run that did not record its settings ({SETTINGS_FILE}): it cannot be checked "
                "against this one. Move it away (or choose another --output_dir) to run it again."
            )
        return
    stored = json.loads(stored_file.read_text())
    differing = [
        f"{name}: stored {stored.get(name)!r}, requested {settings.get(name)!r}"
        for name in sorted(set(stored) | set(settings))
        if stored.get(name) != settings.get(name)
    ]
    if differing:
        raise SystemExit(
            f"{run_dir} was made with other settings than this run asks for ({'; '.join(differing)}). Its result "
            "is not reused: choose another --output_dir, or move that folder away to run it again."
        )


def new_head_fields(task: TaskSpec, tokenizer) -> dict:
    """
    Config fields of every new head: the task's labels, and the tokenizer's special tokens (so that Trainer has
    nothing to align, and nothing to warn about).
    """
    return {
        "num_labels": len(task.labels),
        "id2label": dict(enumerate(task.labels)),
        "label2id": task.label_to_id,
        **{f"{kind}_token_id": getattr(tokenizer, f"{kind}_token_id") for kind in ("pad", "bos", "eos")},
    }


def checkpoint_labels(config) -> tuple[str, ...]:
    """A fine-tuned checkpoint's labels, in id order."""
    return tuple(config.id2label[index] for index in range(config.num_labels))


def build_model(
    backbone: str, task: TaskSpec, layer: int | None, model_args: ModelArguments, tokenizer
) -> PreTrainedModel:
    """A new head on `backbone`: the stock BERT head for the baseline (layer None), else DLFA at `layer`."""
    fields = new_head_fields(task, tokenizer)
    token = task.kind == "token"
    if layer is None:
        model_class = BertForTokenClassification if token else BertForSequenceClassification
        model = load_new_head(model_class, backbone, **fields, cache_dir=model_args.cache_dir)
    else:
        model_class = DLFABertForTokenClassification if token else DLFABertForSequenceClassification
        model = load_new_head(
            model_class, backbone, **fields, fusion_layer=layer, aif_reduction=model_args.aif_reduction,
            aif_gate=model_args.aif_gate, aif_gate_init=model_args.aif_gate_init, aif_norm=model_args.aif_norm,
            fusion_method=model_args.fusion_method, cache_dir=model_args.cache_dir,
        )  # fmt: skip
    if model_args.freeze_word_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    return model


def load_finetuned(path: str, task: TaskSpec, model_args: ModelArguments) -> PreTrainedModel:
    """A fine-tuned checkpoint to evaluate; its labels must be the task's."""
    auto_class = AutoModelForTokenClassification if task.kind == "token" else AutoModelForSequenceClassification
    model = auto_class.from_pretrained(
        path, cache_dir=model_args.cache_dir, trust_remote_code=model_args.trust_remote_code
    )
    labels = checkpoint_labels(model.config)
    if labels != task.labels:
        raise ValueError(f"{path}: its labels {labels} are not the {task.name} labels {task.labels} in that order")
    return model


def featurize(data: TaskData, tokenizer, data_args: DataArguments) -> dict:
    """Every split as length-sorted features (`datasets.map`, batched); evaluation order does not matter."""
    task = data.task

    def encode(examples: list):
        if not examples:
            return None
        dataset = examples_dataset(examples)
        if task.kind == "token":
            return tokenize_tagging(
                dataset, tokenizer, task.label_to_id, data_args.max_seq_length, data_args.label_alignment
            )
        return tokenize_pairs(dataset, tokenizer, task.label_to_id, data_args.max_seq_length)

    return {
        "train": encode(data.train),
        "selection": length_sorted(encode(data.selection)) if data.selection else None,
        "evaluation": {language: length_sorted(encode(examples)) for language, examples in data.evaluation.items()},
        "label_alignment": data_args.label_alignment if task.kind == "token" else None,
    }


def make_trainer(
    model: PreTrainedModel,
    run_dir: Path,
    features: dict,
    tokenizer,
    training_args: TrainingArguments,
    task: TaskSpec,
    compute_metrics,
    best_metric: str,
    callbacks: list,
    fusion_learning_rate: float | None,
    trainer_class: type[FusionLearningRateTrainer] = FusionLearningRateTrainer,
    **trainer_kwargs,
) -> FusionLearningRateTrainer:
    """
    The Trainer of one run in `run_dir`: with --do_train, the checkpoint is chosen per epoch on English dev by
    `best_metric` (never on a target language); no Hub push (main() pushes the run selected once the sweep is done).
    """
    selects = training_args.do_train
    args = dataclasses.replace(
        training_args,
        output_dir=str(run_dir),
        eval_strategy="epoch" if selects else "no",
        save_strategy="epoch" if selects else "no",
        load_best_model_at_end=selects,
        metric_for_best_model=f"eval_{best_metric}",
        greater_is_better=True,
        push_to_hub=False,
    )
    collator = (
        DataCollatorForTokenClassification(tokenizer) if task.kind == "token" else DataCollatorWithPadding(tokenizer)
    )
    return trainer_class(
        model=model,
        args=args,
        train_dataset=features["train"] if selects else None,
        eval_dataset=features["selection"] if selects else None,
        data_collator=collator,
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
        preprocess_logits_for_metrics=predicted_ids,
        callbacks=callbacks,
        fusion_learning_rate=fusion_learning_rate,
        **trainer_kwargs,
    )


def train_resuming(trainer: FusionLearningRateTrainer):
    """`trainer.train()`, from the run folder's last checkpoint where an interrupted run left one."""
    run_dir = Path(trainer.args.output_dir)
    checkpoint = get_last_checkpoint(str(run_dir)) if run_dir.is_dir() else None
    return trainer.train(resume_from_checkpoint=checkpoint)


def finish_model_folder(folder: Path, features: dict) -> None:
    """
    A saved tagger's folder also names the word-level pipeline (`modeling_dlfa.add_word_pipeline`), with the label
    alignment it was trained on, so that `pipeline(..., trust_remote_code=True)` tags the words the harness scores.
    """
    if features["label_alignment"]:
        add_word_pipeline(folder, features["label_alignment"])


def run_one(
    name: str,
    model_factory,
    data: TaskData,
    features: dict,
    tokenizer,
    model_args: ModelArguments,
    training_args: TrainingArguments,
    fusion_learning_rate: float | None,
    settings: dict,
) -> dict:
    """
    Train (with --do_train) and evaluate one model in its own folder; read it back if it already finished with the
    same `settings` (`run_settings`).
    """
    run_dir = Path(training_args.output_dir) / name
    results_file = run_dir / "results.json"
    if reuse_or_claim(run_dir, settings, training_args):
        logger.info("%s: finished earlier with the same settings, reading %s", name, results_file)
        return json.loads(results_file.read_text())

    task = data.task
    scorer = ZeroShotScorer(task)
    set_seed(training_args.seed)
    model = model_factory()
    lora = training_args.do_train and model_args.lora_r > 0
    if lora:
        model = apply_lora(model, model_args.lora_r, model_args.lora_alpha, model_args.lora_dropout,
                           model_args.lora_target_modules.split(","))  # fmt: skip
    replica_check = ReplicaCheck()
    trainer = make_trainer(model, run_dir, features, tokenizer, training_args, task, scorer, task.main_score,
                           [replica_check], fusion_learning_rate)  # fmt: skip
    args = trainer.args
    result = {"run": name, "seed": args.seed, "metric": task.main_score, "task": task.name,
              "device": device_name(args.device)}  # fmt: skip
    result["trainable_parameters"] = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    config = trainer.model.config
    result["fusion_layer"] = getattr(config, "fusion_layer", None) if config.model_type == "dlfa_bert" else None
    result["fusion_method"] = getattr(config, "fusion_method", None) if config.model_type == "dlfa_bert" else None
    if args.do_train:
        train_output = train_resuming(trainer)
        result["train_runtime_seconds"] = train_output.metrics["train_runtime"]
        result["train_seconds_per_step"] = train_output.metrics["train_runtime"] / max(1, trainer.state.global_step)
        result["selection_by_epoch"] = [
            {"epoch": entry["epoch"], "step": entry["step"], "score": entry[f"eval_{task.main_score}"]}
            for entry in trainer.state.log_history
            if f"eval_{task.main_score}" in entry
        ]
        if not lora:
            trainer.save_model(str(run_dir / "model"))
            if trainer.is_world_process_zero():
                finish_model_folder(run_dir / "model", features)

    records, scores = {}, {}
    evaluated = {"selection": (features["selection"], data.selection), **{
        language: (features["evaluation"][language], data.evaluation[language]) for language in data.evaluation
    }}  # fmt: skip
    for language, (language_features, examples) in evaluated.items():
        if not (args.do_eval or args.do_predict):
            break
        if not examples:  # evaluation only, without English dev data
            continue
        language_scores, records[language] = evaluate_language(trainer, scorer, language_features, examples)
        labelled = all((e.tags if task.kind == "token" else e.label) is not None for e in examples)
        if labelled and (args.do_eval or language == "selection"):
            scores[language] = language_scores
        if trainer.is_world_process_zero():
            if language in scores:
                logger.info(
                    "%s: %s %s = %.2f", name, language, task.main_score, 100 * scores[language][task.main_score]
                )
            if args.do_predict and language != "selection":
                suffix = "tsv" if task.kind == "token" else "txt"
                (run_dir / "predictions").mkdir(parents=True, exist_ok=True)
                write_predictions(run_dir / "predictions" / f"{language}.{suffix}", task, examples, records[language])
    targets = [language for language in data.evaluation if language != TRAIN_LANGUAGE and language in scores]
    result.update(
        scores=scores,
        target_average=statistics.mean(scores[lang][task.main_score] for lang in targets) if targets and scores else None,
        files=data.files,
        eval_splits=data.eval_splits,
        words_past_max_length=(
            {language: words_past_limit(features["evaluation"][language]) for language in data.evaluation}
            if task.kind == "token" else None
        ),
        world_size=args.world_size,
        replica_parameter_sha256=replica_check.digests,
    )  # fmt: skip
    if not trainer.is_world_process_zero():
        return result
    run_dir.mkdir(parents=True, exist_ok=True)
    if lora:  # the adapter, and the merged model: an ordinary checkpoint of the model class
        trainer.model.save_pretrained(run_dir / "adapter")
        merged = trainer.model.merge_and_unload()
        merged.save_pretrained(run_dir / "model")
        tokenizer.save_pretrained(run_dir / "model")
        finish_model_folder(run_dir / "model", features)
        config = merged.config
    if records:
        np.savez_compressed(
            run_dir / "predictions.npz",
            **{f"{language}.{key}": values.astype(np.int16) for language, record in records.items() for key, values in record.items()},
        )  # fmt: skip
    if args.do_train:
        write_model_card(run_dir / "model", task.name, result, config, model_args.model_name_or_path,
                         training_args.hub_model_id)  # fmt: skip
    results_file.write_text(json.dumps(result, indent=2) + "\n")
    return result


def run_layer_search(
    layers: list[int],
    backbone: str,
    data: TaskData,
    features: dict,
    tokenizer,
    model_args: ModelArguments,
    training_args: TrainingArguments,
    head_names: dict[str, str],
    settings: dict,
) -> dict:
    """
    Train one `DLFABertForLayerSearch` (a head per candidate layer and the last-layer head on one encoder), score
    every head on English dev, choose the DLFA layer, and save the chosen head as an ordinary checkpoint in
    `<output_dir>/layer-search/model`. `head_names`: each head's run name, by search head (`"10"`, `"last"`). Read
    back if it already finished with the same `settings`.
    """
    name, task = analysis.LAYER_SEARCH, data.task
    run_dir = Path(training_args.output_dir) / name
    if reuse_or_claim(run_dir, settings, training_args):
        logger.info("%s: finished earlier with the same settings, reading %s", name, run_dir / "results.json")
        return json.loads((run_dir / "results.json").read_text())
    set_seed(training_args.seed)
    config = DLFABertConfig.from_pretrained(
        backbone, **new_head_fields(task, tokenizer), aif_reduction=model_args.aif_reduction, aif_gate=model_args.aif_gate,
        aif_gate_init=model_args.aif_gate_init, aif_norm=model_args.aif_norm,
        fusion_method=model_args.fusion_method, cache_dir=model_args.cache_dir,
    )  # fmt: skip
    config.search_layers, config.search_problem = layers, "token" if task.kind == "token" else "sequence"
    model = load_new_head(DLFABertForLayerSearch, backbone, config=config, cache_dir=model_args.cache_dir)
    if model_args.freeze_word_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    heads = {head: head_names[head] for head in model.config.search_heads}
    scorer = ZeroShotScorer(task)
    trainer = make_trainer(
        model, run_dir, features, tokenizer, training_args, task, LayerSearchScorer(scorer, list(heads.values())),
        f"mean_head_{task.main_score}", [ReplicaCheck()], model_args.fusion_learning_rate,
        trainer_class=LayerSearchTrainer, head_names=heads,
    )  # fmt: skip
    args = trainer.args
    train_output = train_resuming(trainer)
    dev = {}
    every_head = predict_in_order(trainer, features["selection"])  # one forward pass
    for index, head_name in enumerate(heads.values()):
        dev[head_name] = score_predictions(scorer, features["selection"], data.selection, every_head[..., index])[0]
        logger.info(
            "%s: head %s, English dev %s = %.2f",
            name,
            head_name,
            task.main_score,
            100 * dev[head_name][task.main_score],
        )
    layer_heads = [head_name for head_name in dev if head_name != analysis.BASELINE]
    _, chosen = analysis.select_on_english_dev(
        {head_name: {0: {"metric": task.main_score, "scores": {"selection": dev[head_name]}}} for head_name in layer_heads}
    )  # fmt: skip
    result = {
        "run": name, "seed": args.seed, "metric": task.main_score, "task": task.name, "heads": list(heads.values()),
        "head_selection_scores": {head_name: scores[task.main_score] for head_name, scores in dev.items()},
        "chosen": chosen, "train_runtime_seconds": train_output.metrics["train_runtime"],
        "device": device_name(args.device),
    }  # fmt: skip
    if trainer.is_world_process_zero():
        chosen_head = next(head for head, head_name in heads.items() if head_name == chosen)
        trainer.model.export_head(chosen_head).save_pretrained(run_dir / "model")
        tokenizer.save_pretrained(run_dir / "model")
        finish_model_folder(run_dir / "model", features)
        (run_dir / "results.json").write_text(json.dumps(result, indent=2) + "\n")
        print(analysis.search_table(result["head_selection_scores"], chosen, task.main_score))
    return result


def push_selected_run(
    output_dir: Path, selected_run: str, training_args: TrainingArguments, dry_run: str | None
) -> str:
    """
    Build the folder to upload (the selected run's weights, code, tokenizer and checked model card), then upload it
    with the stock Hub client, or, with `dry_run`, write it into that Hub cache as the repository's `main`.
    """
    repo_id = training_args.hub_model_id or output_dir.name
    folder = stage_hub_folder(output_dir / selected_run / "model", output_dir / "hub-upload")
    if dry_run:
        snapshot = write_to_hub_cache(folder, Path(dry_run), repo_id)
        logger.info("dry run: %s written as %s into the Hub cache %s (%s)", selected_run, repo_id, dry_run, snapshot)
        return repo_id
    from huggingface_hub import create_repo, upload_folder

    create_repo(repo_id, private=training_args.hub_private_repo, token=training_args.hub_token, exist_ok=True)
    upload_folder(
        repo_id=repo_id, folder_path=folder, token=training_args.hub_token,
        commit_message=f"DLFA zero-shot run {selected_run} (selected on English dev)",
    )  # fmt: skip
    return repo_id


def write_reports(runs: dict[str, dict], output_dir: Path) -> dict:
    """summary.json, summary.md and heatmap.png of one sweep, through `dlfa_zero_shot.analysis`."""
    selected = None  # evaluation only, without English dev data: nothing to select on
    if all("selection" in result["scores"] for result in runs.values()):
        _, selected = analysis.select_on_english_dev({name: {0: result} for name, result in runs.items()})
    summary = {"metric": next(iter(runs.values()))["metric"], "selected_by_english_dev": selected, "runs": runs}
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (output_dir / "summary.md").write_text(analysis.sweep_table(runs, selected))
    if any(analysis.target_languages(result) for result in runs.values()):
        analysis.sweep_heatmap(runs, output_dir / "heatmap.png")
    return summary


def parse_arguments(argv: list[str] | None) -> tuple[ModelArguments, DataArguments, TrainingArguments]:
    parser = HfArgumentParser(
        (ModelArguments, DataArguments, TrainingArguments),
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    own_files = bool(data_args.train_file or data_args.validation_file or data_args.test_files)
    if data_args.task not in TASKS and not (own_files and data_args.task in CUSTOM_KINDS):
        raise ValueError(
            f"--task {data_args.task!r} is not supported: choose one of {sorted(TASKS)}, or with your own files "
            f"one of {sorted(CUSTOM_KINDS)}"
        )
    if sum(map(bool, (data_args.data_dir, data_args.dataset_name, own_files))) != 1:
        raise ValueError(
            "give exactly one data source: --data_dir (a folder laid out as ../shared/data/xtreme-lite), --dataset_name "
            "(XTREME on the Hub, 'google/xtreme'), or your own --train_file/--validation_file/--test_files"
        )
    if own_files and training_args.do_train and not data_args.train_file:
        raise ValueError("--do_train with your own files needs --train_file")
    if not (training_args.do_train or training_args.do_eval or training_args.do_predict):
        raise ValueError("nothing to do: pass --do_train, --do_eval and/or --do_predict")
    if model_args.layer_search not in ("sweep", "one_pass") or model_args.layer_search_then not in ("retrain", "keep"):
        raise ValueError(
            f"--layer_search {model_args.layer_search!r} --layer_search_then {model_args.layer_search_then!r}: choose "
            "--layer_search sweep|one_pass and --layer_search_then retrain|keep"
        )
    return model_args, data_args, training_args


def data_source(data_args: DataArguments, model_args: ModelArguments, training_args: TrainingArguments, backbone: str):
    """The task and where its data comes from: local XTREME files, the Hub, or the user's own files."""
    if data_args.data_dir:
        return TASKS[data_args.task], LocalSource(data_args.data_dir)
    if data_args.dataset_name:
        return TASKS[data_args.task], HubSource(data_args.dataset_name, model_args.cache_dir)
    tests = {}
    for item in filter(None, (data_args.test_files or "").split(",")):
        language, separator, path = item.partition("=")
        if not separator or not language or not path:
            raise ValueError(f"--test_files: {item!r} is not LANGUAGE=PATH")
        tests[language.strip()] = path.strip()
    source = FileSource(data_args.train_file, data_args.validation_file, tests)
    kind = TASKS[data_args.task].kind if data_args.task in TASKS else CUSTOM_KINDS[data_args.task]
    if data_args.train_file:
        labels = labels_of(kind, read_examples(kind, Path(data_args.train_file)))
    else:  # evaluation only: the checkpoint's labels
        config = AutoConfig.from_pretrained(
            backbone, cache_dir=model_args.cache_dir, trust_remote_code=model_args.trust_remote_code
        )
        labels = checkpoint_labels(config)
    return custom_task(data_args.task, kind, labels), source


def main(argv: list[str] | None = None) -> dict:
    model_args, data_args, training_args = parse_arguments(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    transformers.utils.logging.set_verbosity(training_args.get_process_log_level())

    with training_args.main_process_first(desc="preparing the backbone"):
        backbone = resolve_backbone(model_args.model_name_or_path, model_args.cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(backbone, cache_dir=model_args.cache_dir)
    task, source = data_source(data_args, model_args, training_args, backbone)
    data = load_task_data(
        task, source,
        eval_languages=data_args.eval_languages.split(",") if data_args.eval_languages else None,
        eval_splits=tuple(data_args.eval_split.split(",")) if data_args.eval_split else None,
        max_train_samples=data_args.max_train_samples, max_eval_samples=data_args.max_eval_samples,
        seed=training_args.seed, need_training=training_args.do_train,
    )  # fmt: skip
    with training_args.main_process_first(desc="tokenizing"):
        features = featurize(data, tokenizer, data_args)
    output_dir = Path(training_args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    settings = run_settings(model_args, data_args, training_args)

    def name_of(layer: int | None) -> str:
        return configuration_name(layer, model_args, data_args, task, training_args.learning_rate)

    if training_args.do_train:
        num_layers = AutoConfig.from_pretrained(backbone, cache_dir=model_args.cache_dir).num_hidden_layers
        layers = parse_layers(model_args.fusion_layers, num_layers)
        search = None
        if model_args.layer_search == "one_pass":
            candidates = [layer for layer in layers if layer is not None]
            head_names = {str(layer or "last"): name_of(layer) for layer in [*candidates, None]}
            search = run_layer_search(candidates, backbone, data, features, tokenizer, model_args, training_args,
                                      head_names, settings)  # fmt: skip
            chosen_layer = analysis.layer_of(search["chosen"])
            layers = [chosen_layer] + ([None] if None in layers else [])
        plan = {}
        for layer in layers:
            name = name_of(layer)
            plan[name] = (lambda layer=layer: build_model(backbone, task, layer, model_args, tokenizer), layer)
        if search is not None and model_args.layer_search_then == "keep":
            kept = Path(training_args.output_dir) / analysis.LAYER_SEARCH / "model"
            plan.pop(search["chosen"])
            plan = {
                analysis.ONE_PASS_PREFIX + search["chosen"]: (
                    lambda: load_finetuned(str(kept), task, model_args),
                    "kept",
                ),
                **plan,
            }
    else:
        config = AutoConfig.from_pretrained(
            backbone, cache_dir=model_args.cache_dir, trust_remote_code=model_args.trust_remote_code
        )
        plan = {checkpoint_name(config): (lambda: load_finetuned(backbone, task, model_args), None)}
    runs = {}
    for name, (factory, layer) in plan.items():
        fusion_lr = model_args.fusion_learning_rate if layer is not None else None
        run_args = dataclasses.replace(training_args, do_train=False) if layer == "kept" else training_args
        runs[name] = run_one(name, factory, data, features, tokenizer, model_args, run_args, fusion_lr, settings)
    if not training_args.should_save or not (training_args.do_eval or training_args.do_predict):
        return {"runs": runs}
    summary = write_reports(runs, output_dir)
    print(analysis.sweep_table(runs, summary["selected_by_english_dev"]))
    selected = output_dir / str(summary["selected_by_english_dev"]) / "model"
    print(f"Wrote {output_dir / 'summary.md'}, {output_dir / 'summary.json'} and {output_dir / 'heatmap.png'}"
          + (f"; the model selected on English dev is {selected}" if selected.is_dir() else ""))  # fmt: skip
    if training_args.push_to_hub:
        repo_id = push_selected_run(
            output_dir, summary["selected_by_english_dev"], training_args, model_args.hub_dry_run
        )
        logger.info("pushed %s to the Hub as %s", summary["selected_by_english_dev"], repo_id)
    return summary


if __name__ == "__main__":
    main()
