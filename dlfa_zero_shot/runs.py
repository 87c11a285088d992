"""
One run of the harness in its folder: the settings it must match to be reused, its `Trainer`, training (resumed from
the last checkpoint), evaluation of every language, and what it saves (`results.json`, `predictions.npz`, `model/`).
The sweep's runs and the one-pass layer search share this path; `examples/run_zero_shot.py` puts them together.
"""

import dataclasses
import io
import json
import logging
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from transformers import (
    DataCollatorForTokenClassification,
    DataCollatorWithPadding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_utils import get_last_checkpoint

from modeling_dlfa import add_word_pipeline

from . import analysis, names, provenance
from .checkpoints import checkpoint_problems, checkpoints, resume_checkpoint
from .data import TaskData
from .features import words_past_limit
from .files import (
    DamagedFileError,
    DiskFullError,
    folder_bytes,
    is_disk_full,
    read_json,
    remove,
    set_aside,
    staged_folder,
    write_atomically,
)
from .heads import DLFA_MODEL_TYPES
from .model_card import stage_hub_folder, write_model_card, write_to_hub_cache
from .run_lock import RunFolders
from .stopping import StopOnSignal
from .tasks import TRAIN_LANGUAGE
from .training import (
    FusionLearningRateTrainer,
    LayerSearchScorer,
    LayerSearchTrainer,
    ReplicaCheck,
    ZeroShotScorer,
    apply_lora,
    device_name,
    evaluate_language,
    predict_in_order,
    predicted_ids,
    score_predictions,
    write_predictions,
)


logger = logging.getLogger(__name__)
SETTINGS_FILE = "settings.json"  # in each run folder: its settings, what made it and its device (`reuse_or_claim`)


@dataclass
class Sweep:
    """What every run of one harness call shares: the data, its features, the tokenizer and the arguments."""

    data: TaskData
    features: dict  # `featurize`'s splits, and the tagging label alignment
    tokenizer: PreTrainedTokenizerBase
    training_args: TrainingArguments
    base_model: str  # the backbone as the user named it (for the model card)
    provenance: dict  # what every run of the call shares (`provenance.collect`); each run adds its settings
    folders: RunFolders  # the run folders this process holds: another live process holding one stops it at once
    stop: StopOnSignal = field(default_factory=StopOnSignal)  # SIGTERM / Ctrl-C: stop at a clean point

    def run_dir(self, name: str) -> Path:
        return Path(self.training_args.output_dir) / name


@dataclass(frozen=True)
class LoraSettings:
    """LoRA on the encoder (`training.apply_lora`); rank 0 is full fine-tuning."""

    rank: int
    alpha: int
    dropout: float
    target_modules: tuple[str, ...]


def reuse_or_claim(run_dir: Path, settings: dict, training_args: TrainingArguments) -> bool:
    """
    Whether `run_dir` holds a finished run made with `settings` on this device (read it back); else it is this run's,
    to start or to resume: its settings and device are checked against those the folder holds
    (`check_stored_settings`), then recorded. The device (`training.device_name`: `cpu`, or the GPU's model) is one
    of them because a run's numbers differ between devices, and a study runs on one kind: a CPU run is not a GPU
    run's answer, nor resumed on one. A CPU's instruction sets are recorded (`provenance.machine`) but not compared:
    they move only the last digits, and a study restored on a new machine of its kind resumes there (docs/results.md
    dates which CPU ran which run). A results.json that does not read back is never reused: it is set aside, with a
    warning, and the run is computed again (resumed from its last complete checkpoint, or trained again from the
    start).
    """
    settings = {**settings, "device": device_name(training_args.device)}  # every rank's: one GPU model per job
    check_stored_settings(run_dir, settings)
    results = run_dir / "results.json"
    with training_args.main_process_first(desc="reading the run folder"):  # it sets a damaged result aside first
        if results.exists():
            try:
                read_result(results)
                return True
            except DamagedFileError as error:
                if not training_args.should_save:
                    raise
                aside = set_aside(results)
                logger.warning("%s; it is not reused: moved it aside to %s; the run is computed again", error, aside)
    if training_args.should_save:  # written whole, then renamed: another process never reads half a file
        write_atomically(run_dir / SETTINGS_FILE, json.dumps(settings, indent=2, sort_keys=True) + "\n")
    return False


def read_result(path: Path) -> dict:
    """A finished run's results.json, or `DamagedFileError` naming what is wrong with it."""
    result = read_json(path)
    if not isinstance(result, dict):
        raise DamagedFileError(path, f"it holds a JSON {type(result).__name__}, not a run's result")
    return result


def check_stored_settings(run_dir: Path, settings: dict) -> None:
    """
    A run folder is reused (its result, or its checkpoint to resume from) only where the settings stored in it by the
    run that wrote it equal `settings`; otherwise, or where it stores none, stop and name the settings that differ.
    A folder with nothing to reuse (a run that stopped before its first checkpoint) is simply claimed again.
    """
    stored_file = run_dir / SETTINGS_FILE
    reusable = (run_dir / "results.json").exists() or (run_dir.is_dir() and get_last_checkpoint(str(run_dir)))
    if not reusable:
        return
    if not stored_file.exists():
        raise SystemExit(
            f"{run_dir} holds a run that did not record its settings ({SETTINGS_FILE}; runs made before they were "
            "recorded): it cannot be checked against this one. Move it away (or choose another --output_dir) to run "
            "it again."
        )
    try:
        stored = read_json(stored_file)
    except DamagedFileError as error:
        raise SystemExit(
            f"{error}. It records the settings {run_dir} was made with, so the run there cannot be checked against "
            "this one: move that folder away (or choose another --output_dir) to run it again."
        ) from None
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


def make_trainer(
    sweep: Sweep,
    model: PreTrainedModel,
    run_dir: Path,
    compute_metrics: Callable,
    best_metric: str,
    fusion_learning_rate: float | None,
    do_train: bool,
    replica_check: ReplicaCheck,
    trainer_class: type[FusionLearningRateTrainer] = FusionLearningRateTrainer,
    **trainer_kwargs,
) -> FusionLearningRateTrainer:
    """
    The Trainer of one run in `run_dir`: when it trains, the checkpoint is chosen per epoch on English dev by
    `best_metric` (never on a target language); no Hub push (the harness pushes the selected run once all are done).
    """
    args = dataclasses.replace(
        sweep.training_args, output_dir=str(run_dir), do_train=do_train, eval_strategy="epoch" if do_train else "no",
        save_strategy="epoch" if do_train else "no", load_best_model_at_end=do_train,
        metric_for_best_model=f"eval_{best_metric}", greater_is_better=True, push_to_hub=False,
    )  # fmt: skip
    token = sweep.data.task.kind == "token"
    collator = DataCollatorForTokenClassification if token else DataCollatorWithPadding
    return trainer_class(
        model=model, args=args, train_dataset=sweep.features["train"] if do_train else None,
        eval_dataset=sweep.features["selection"] if do_train else None, data_collator=collator(sweep.tokenizer),
        processing_class=sweep.tokenizer, compute_metrics=compute_metrics, preprocess_logits_for_metrics=predicted_ids,
        callbacks=[replica_check, sweep.stop], fusion_learning_rate=fusion_learning_rate, **trainer_kwargs,
    )  # fmt: skip


def train(trainer: FusionLearningRateTrainer, main_score: str, stop: StopOnSignal) -> dict:
    """
    `trainer.train()`, from the run folder's last complete checkpoint where an interrupted run left one
    (`checkpoints.resume_checkpoint`); returns what the run records of its training (time, and English dev after each
    epoch). A stop asked for by a signal (`stop`) ends it after the current step (`RunStopped`, naming the checkpoint
    the same command resumes from); a full disk during a checkpoint save, with that checkpoint removed
    (`DiskFullError`).
    """
    run_dir = Path(trainer.args.output_dir)
    with trainer.args.main_process_first(desc="choosing the checkpoint to resume from"):  # it sets damaged ones aside
        resume = resume_checkpoint(run_dir)
    try:
        output = trainer.train(resume_from_checkpoint=resume)
    except Exception as error:
        disk_full = checkpoint_save_error(error, trainer)
        if disk_full is None:
            raise
        raise disk_full from error
    if stop.requested:
        last = checkpoints(run_dir)
        stop.check(
            f"after training step {trainer.state.global_step} of {run_dir} ("
            + (f"it resumes from {last[0].name}, the end of its last whole epoch: the steps since are trained again, "
               "so that it ends as an uninterrupted run does)" if last else "before its first checkpoint: it trains "
               "again from the start)")
        )  # fmt: skip
    runtime = output.metrics["train_runtime"]
    return {
        "train_runtime_seconds": runtime,
        "train_seconds_per_step": runtime / max(1, trainer.state.global_step),
        "selection_by_epoch": [
            {"epoch": entry["epoch"], "step": entry["step"], "score": entry[f"eval_{main_score}"]}
            for entry in trainer.state.log_history
            if f"eval_{main_score}" in entry
        ],
    }


def recording_label_alignment(model: PreTrainedModel, sweep: Sweep) -> PreTrainedModel:
    """
    A tagger about to train, its config recording the label alignment it trains with (`config.label_alignment`), so
    that every folder saved from it, Trainer checkpoints too, is scored (an evaluation-only run) and read (the word
    pipeline) from the pieces it learned to tag.
    """
    if sweep.features["label_alignment"]:
        model.config.label_alignment = sweep.features["label_alignment"]
    return model


def checkpoint_bytes(run_dir: Path, model: PreTrainedModel) -> int:
    """
    About the bytes a checkpoint of `run_dir` takes: the last complete one's size, or, before the first, the weights
    and AdamW's two moments of every trained parameter.
    """
    complete = [folder for folder in checkpoints(run_dir) if not checkpoint_problems(folder)]
    if complete:
        return folder_bytes(complete[0])
    moments = sum(8 * parameter.numel() for parameter in model.parameters() if parameter.requires_grad)
    return weight_bytes(model) + moments


def checkpoint_save_error(error: Exception, trainer: FusionLearningRateTrainer) -> DiskFullError | None:
    """
    Where `error` (raised by `trainer.train()`) came of a full disk during a checkpoint save: remove the incomplete
    checkpoint it left (the earlier ones are intact) and return the `DiskFullError` that says so; else None.
    """
    run_dir = Path(trainer.args.output_dir)
    needed = checkpoint_bytes(run_dir, trainer.model)
    if not (trainer.args.should_save and run_dir.is_dir() and is_disk_full(error, run_dir, needed)):
        return None
    incomplete = [folder for folder in checkpoints(run_dir) if checkpoint_problems(folder)]
    for folder in incomplete:
        remove(folder)
    earlier = checkpoints(run_dir)
    removed = f"Removed the incomplete {', '.join(folder.name for folder in incomplete)}; " if incomplete else ""
    kept = (
        f"{earlier[0].name} and every earlier file are intact: the same command resumes from {earlier[0].name}."
        if earlier
        else "There is no earlier checkpoint: the same command trains the run from the start."
    )
    what = f"saving {incomplete[0].name if incomplete else 'a checkpoint'}"
    return DiskFullError(run_dir, what, needed, after=removed + kept)


def save_model_folder(trainer: FusionLearningRateTrainer, folder: Path, sweep: Sweep) -> None:
    """
    `trainer.save_model(folder)` whole or not at all (`files.staged_folder`), with the word pipeline of a tagger
    (`finish_model_folder`). Every process calls it (they take part in gathering the weights); the saving one writes.
    """
    if not trainer.args.should_save:
        trainer.save_model(str(folder))
        return
    with staged_folder(folder, needed=weight_bytes(trainer.model)) as staging:
        trainer.save_model(str(staging))
        finish_model_folder(staging, sweep)


def weight_bytes(model: PreTrainedModel) -> int:
    """The bytes `model`'s weights take as saved."""
    return sum(parameter.numel() * parameter.element_size() for parameter in model.parameters())


def finish_model_folder(folder: Path, sweep: Sweep) -> None:
    """
    A saved tagger's folder also names the word-level pipeline (`modeling_dlfa.add_word_pipeline`), with the label
    alignment it was trained on, so that `pipeline(..., trust_remote_code=True)` tags the words the harness scores.
    """
    if sweep.features["label_alignment"]:
        add_word_pipeline(folder, sweep.features["label_alignment"])


def evaluate(sweep: Sweep, trainer: FusionLearningRateTrainer, scorer: ZeroShotScorer, name: str) -> tuple[dict, dict]:
    """
    English dev and every evaluation language: their scores (labelled data, with --do_eval; English dev always) and
    their per-item records; with --do_predict, each target language's prediction file too. A stop asked for by a
    signal ends it before the next language (`RunStopped`).
    """
    args, data, task = trainer.args, sweep.data, sweep.data.task
    records, scores = {}, {}
    if not (args.do_eval or args.do_predict):
        return scores, records
    evaluated = {"selection": (sweep.features["selection"], data.selection), **{
        language: (sweep.features["evaluation"][language], examples) for language, examples in data.evaluation.items()
    }}  # fmt: skip
    run_dir = Path(args.output_dir)
    for language, (features, examples) in evaluated.items():
        if not examples:  # evaluation only, without English dev data
            continue
        sweep.stop.check(f"before evaluating {language} in {run_dir} (its training is saved)")
        language_scores, records[language] = evaluate_language(trainer, scorer, features, examples)
        if language_scores and (args.do_eval or language == "selection"):
            scores[language] = language_scores
            if trainer.is_world_process_zero():
                logger.info(
                    "%s: %s %s = %.2f", name, language, task.main_score, 100 * language_scores[task.main_score]
                )
        if args.do_predict and language != "selection" and trainer.is_world_process_zero():
            (run_dir / "predictions").mkdir(parents=True, exist_ok=True)
            path = run_dir / "predictions" / f"{language}.{'tsv' if task.kind == 'token' else 'txt'}"
            write_predictions(path, task, examples, records[language])
    return scores, records


def describe(sweep: Sweep, trainer: FusionLearningRateTrainer, name: str) -> dict:
    """What a run's results.json says of it besides its scores: the run, the model and where it trained."""
    args, task, config = trainer.args, sweep.data.task, trainer.model.config
    dlfa = config.model_type in DLFA_MODEL_TYPES
    return {
        "run": name, "seed": args.seed, "metric": task.main_score, "task": task.name, "device": device_name(args.device),
        "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "fusion_layer": getattr(config, "fusion_layer", None) if dlfa else None,
        "fusion_method": getattr(config, "fusion_method", None) if dlfa else None,
    }  # fmt: skip


def run_one(
    sweep: Sweep,
    name: str,
    settings: dict,
    model_factory: Callable[[], PreTrainedModel],
    do_train: bool,
    fusion_learning_rate: float | None = None,
    lora: LoraSettings | None = None,
) -> dict:
    """
    Train (when `do_train`) and evaluate one model in its own folder, and save it; read it back if it already
    finished with the same `settings` (`arguments.run_settings`, `reuse_or_claim`).
    """
    run_dir, task = sweep.run_dir(name), sweep.data.task
    sweep.stop.check(f"before run {name}")
    sweep.folders.hold(run_dir)
    if reuse_or_claim(run_dir, {**settings, **provenance.made_by(sweep.provenance)}, sweep.training_args):
        logger.info("%s: finished earlier with the same settings, reading %s", name, run_dir / "results.json")
        return read_result(run_dir / "results.json")
    set_seed(sweep.training_args.seed)
    model = recording_label_alignment(model_factory(), sweep) if do_train else model_factory()
    lora = lora if do_train and lora and lora.rank > 0 else None
    if lora:
        model = apply_lora(model, lora.rank, lora.alpha, lora.dropout, list(lora.target_modules))
    scorer, replica_check = ZeroShotScorer(task), ReplicaCheck()
    trainer = make_trainer(
        sweep, model, run_dir, scorer, task.main_score, fusion_learning_rate, do_train, replica_check
    )
    result = describe(sweep, trainer, name)
    if do_train:
        result.update(train(trainer, task.main_score, sweep.stop))
        if not lora:
            save_model_folder(trainer, run_dir / "model", sweep)
    scores, records = evaluate(sweep, trainer, scorer, name)
    targets = [language for language in sweep.data.evaluation if language != TRAIN_LANGUAGE and language in scores]
    result.update(
        scores=scores,
        target_average=statistics.mean(scores[lang][task.main_score] for lang in targets) if targets else None,
        files=sweep.data.files, eval_splits=sweep.data.eval_splits,
        words_past_max_length=(
            {language: words_past_limit(sweep.features["evaluation"][language]) for language in sweep.data.evaluation}
            if task.kind == "token" else None
        ),
        world_size=trainer.args.world_size, replica_parameter_sha256=replica_check.digests,
        provenance={**sweep.provenance, "settings": settings},
    )  # fmt: skip
    if trainer.is_world_process_zero():
        save_run(sweep, trainer, run_dir, result, records, lora is not None)
    return result


def save_run(
    sweep: Sweep, trainer: FusionLearningRateTrainer, run_dir: Path, result: dict, records: dict, lora: bool
) -> None:
    """
    A finished run's files, each whole or not at all (`files`): the merged model of a LoRA run, predictions.npz, the
    model card, and last results.json, which marks the run finished.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    config = trainer.model.config
    if lora:  # the adapter, and the merged model: an ordinary checkpoint of the model class
        with staged_folder(run_dir / "adapter") as staging:
            trainer.model.save_pretrained(staging)
        merged = trainer.model.merge_and_unload()
        with staged_folder(run_dir / "model") as staging:
            merged.save_pretrained(staging)
            sweep.tokenizer.save_pretrained(staging)
            finish_model_folder(staging, sweep)
        config = merged.config
    if records:
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            **{f"{language}.{key}": values.astype(np.int16) for language, record in records.items() for key, values in record.items()},
        )  # fmt: skip
        write_atomically(run_dir / "predictions.npz", buffer.getvalue())
    if trainer.args.do_train:
        write_model_card(run_dir / "model", sweep.data.task.name, result, config, sweep.base_model,
                         sweep.training_args.hub_model_id)  # fmt: skip
    write_atomically(run_dir / "results.json", json.dumps(result, indent=2) + "\n")


def run_layer_search(
    sweep: Sweep,
    settings: dict,
    model_factory: Callable[[], PreTrainedModel],
    head_names: dict[str, str],
    fusion_learning_rate: float | None = None,
) -> dict:
    """
    Train one layer search (`model_factory`: a `layer_search.DLFAForLayerSearch`, a head per
    candidate layer and the last-layer head on one encoder) through the runs' own path, score every head on English
    dev, choose the DLFA layer, and save the chosen head as an ordinary checkpoint in
    `<output_dir>/layer-search/model`. `head_names`: each search head's run name (`"10"` -> `aif-layer-10`, `"last"`
    -> `baseline`). Read back if it already finished with the same `settings` (its candidate layers among them).
    """
    name, task = names.LAYER_SEARCH, sweep.data.task
    run_dir = sweep.run_dir(name)
    sweep.stop.check(f"before run {name}")
    sweep.folders.hold(run_dir)
    if reuse_or_claim(run_dir, {**settings, **provenance.made_by(sweep.provenance)}, sweep.training_args):
        logger.info("%s: finished earlier with the same settings, reading %s", name, run_dir / "results.json")
        return read_result(run_dir / "results.json")
    set_seed(sweep.training_args.seed)
    model = recording_label_alignment(model_factory(), sweep)
    heads = {head: head_names[head] for head in model.config.search_heads}
    scorer = ZeroShotScorer(task)
    trainer = make_trainer(
        sweep, model, run_dir, LayerSearchScorer(scorer, list(heads.values())), f"mean_head_{task.main_score}",
        fusion_learning_rate, True, ReplicaCheck(), trainer_class=LayerSearchTrainer, head_names=heads,
    )  # fmt: skip
    trained = train(trainer, f"mean_head_{task.main_score}", sweep.stop)
    every_head = predict_in_order(trainer, sweep.features["selection"])  # one forward pass
    dev = {
        head_name: score_predictions(scorer, sweep.features["selection"], sweep.data.selection, every_head[..., index])[0]
        for index, head_name in enumerate(heads.values())
    }  # fmt: skip
    _, chosen = analysis.select_on_english_dev(
        {head_name: {0: {"metric": task.main_score, "scores": {"selection": scores}}}
         for head_name, scores in dev.items() if head_name != names.BASELINE}
    )  # fmt: skip
    result = {
        "run": name, "seed": trainer.args.seed, "metric": task.main_score, "task": task.name,
        "heads": list(heads.values()), "chosen": chosen,
        "head_selection_scores": {head_name: scores[task.main_score] for head_name, scores in dev.items()},
        "train_runtime_seconds": trained["train_runtime_seconds"], "device": device_name(trainer.args.device),
        "provenance": {**sweep.provenance, "settings": settings},
    }  # fmt: skip
    for head_name, score in result["head_selection_scores"].items():
        logger.info("%s: head %s, English dev %s = %.2f", name, head_name, task.main_score, 100 * score)
    if trainer.is_world_process_zero():
        chosen_head = next(head for head, head_name in heads.items() if head_name == chosen)
        with staged_folder(run_dir / "model") as staging:
            trainer.model.export_head(chosen_head).save_pretrained(staging)
            sweep.tokenizer.save_pretrained(staging)
            finish_model_folder(staging, sweep)
        write_atomically(run_dir / "results.json", json.dumps(result, indent=2) + "\n")
        print(analysis.search_table(result["head_selection_scores"], chosen, task.main_score))
    return result


def write_reports(runs: dict[str, dict], output_dir: Path) -> dict:
    """summary.json, summary.md and heatmap.png of one sweep, through `dlfa_zero_shot.analysis`."""
    selected = None  # evaluation only, without English dev data: nothing to select on
    if all("selection" in result["scores"] for result in runs.values()):
        _, selected = analysis.select_on_english_dev({name: {0: result} for name, result in runs.items()})
    summary = {"metric": next(iter(runs.values()))["metric"], "selected_by_english_dev": selected, "runs": runs}
    write_atomically(output_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    write_atomically(output_dir / "summary.md", analysis.sweep_table(runs, selected))
    if any(analysis.target_languages(result) for result in runs.values()):
        analysis.sweep_heatmap(runs, output_dir / "heatmap.png")
    return summary


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
