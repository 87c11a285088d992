"""
The parts of a zero-shot run that `examples/run_zero_shot.py` puts together: the `Trainer` with a learning rate of
its own for the fusion block, the data-parallel replica check, XTREME scoring of every word or pair, and prediction
files.
"""

import hashlib
import logging
from pathlib import Path

import datasets
import evaluate
import numpy as np
import torch
from torch.utils.data import DataLoader, SequentialSampler
from transformers import AutoConfig, EvalPrediction, PreTrainedModel, Trainer, TrainerCallback

from modeling_dlfa.fusion_dlfa import FUSION_CLASSES

from .features import IGNORE_INDEX, word_predictions
from .files import write_atomically
from .readers import is_labelled
from .tasks import XTREME_METRIC, TaskSpec


METRIC_KEYS = ("f1", "precision", "recall", "token_accuracy", "accuracy")
logger = logging.getLogger(__name__)


def device_name(device: torch.device) -> str:
    """What a run trained on, for its results: "cpu", or the accelerator's name (e.g. "cuda: NVIDIA H200")."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return device.type


# The modules a new head brings: a missing weight anywhere else is a backbone weight the checkpoint lacks.
NEW_HEAD_MODULES = frozenset({"fusion", "fusions", "classifier", "classifiers", "pooler", "pre_classifier"})


def load_new_head(model_class: type[PreTrainedModel], checkpoint: str, **kwargs) -> PreTrainedModel:
    """
    `model_class.from_pretrained(checkpoint, **kwargs)` for a model with a new head (the fusion block, the
    classifier, a pooler the backbone lacks) on a pretrained encoder, refusing a checkpoint that leaves any encoder
    weight at its random initialisation (another encoder family, a prefix that does not match): a model that would
    train from a random encoder is never built silently.
    """
    model, info = model_class.from_pretrained(checkpoint, output_loading_info=True, **kwargs)
    missing = sorted(key for key in info["missing_keys"] if NEW_HEAD_MODULES.isdisjoint(key.split(".")))
    if missing:
        model_type = AutoConfig.from_pretrained(checkpoint, cache_dir=kwargs.get("cache_dir")).model_type
        raise ValueError(
            f"{checkpoint}: {len(missing)} encoder weights of {model_class.__name__} are not in this checkpoint (e.g. "
            f"{', '.join(missing[:3])}): its encoder would start at random. The checkpoint's config says model type "
            f"{model_type!r}; give a checkpoint whose weights are that family's encoder's."
        )
    new = sorted({key.rsplit(".", 1)[0] for key in info["missing_keys"]})
    logger.info("%s: every encoder weight loaded; new (initialised as the model defines): %s", checkpoint, new)
    return model


def predicted_ids(logits: torch.Tensor | tuple, labels: torch.Tensor) -> torch.Tensor:
    """`preprocess_logits_for_metrics`: keep the argmax, not the logits."""
    return (logits[0] if isinstance(logits, tuple) else logits).argmax(dim=-1)


class ZeroShotScorer:
    """XTREME metrics through the `evaluate` module: on Trainer predictions (selection) or on word-level ids."""

    def __init__(self, task: TaskSpec):
        self.task = task
        self.metric = evaluate.load(XTREME_METRIC, config_name=task.metric)

    def __call__(self, prediction) -> dict[str, float]:
        """`compute_metrics` during training: the labelled positions of each window (every word has one)."""
        predicted, label_ids = prediction.predictions, prediction.label_ids
        if self.task.kind != "token":
            return self.metric.compute(predictions=predicted.tolist(), references=label_ids.tolist())
        keep = label_ids != IGNORE_INDEX
        return self.score_words(
            [row[mask] for row, mask in zip(predicted, keep)], [row[mask] for row, mask in zip(label_ids, keep)]
        )

    def score_words(self, predicted: list, gold: list) -> dict[str, float]:
        """Tagging: one array of label ids per sentence, gold and predicted; a negative id is a ValueError."""
        return self.metric.compute(
            predictions=[self.task.tag_names(row) for row in predicted],
            references=[self.task.tag_names(row) for row in gold],
        )


def fusion_parameters(model: torch.nn.Module) -> set[int]:
    """The ids of the parameters of every fusion block of `model`, wherever it sits (`bert.fusion`, `fusions.10`)."""
    fusions = tuple(FUSION_CLASSES.values())
    return {id(p) for module in model.modules() if isinstance(module, fusions) for p in module.parameters()}


class FusionLearningRateTrainer(Trainer):
    """`Trainer` whose optimizer gives the fusion blocks (`fusion_parameters`) their own learning rate."""

    def __init__(self, *args, fusion_learning_rate: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fusion_learning_rate = fusion_learning_rate

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        model = self.model if model is None else model
        if self.optimizer is None and self.fusion_learning_rate is not None:
            decay, in_fusion = set(self.get_decay_parameter_names(model)), fusion_parameters(model)
            groups = {}
            for name, parameter in model.named_parameters():
                if parameter.requires_grad:
                    key = (id(parameter) in in_fusion, name in decay)
                    groups.setdefault(key, []).append(parameter)
            optimizer_class, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
            self.optimizer = optimizer_class(
                [
                    {
                        "params": parameters,
                        "lr": self.fusion_learning_rate if in_fusion else self.args.learning_rate,
                        "weight_decay": self.args.weight_decay if decayed else 0.0,
                    }
                    for (in_fusion, decayed), parameters in groups.items()
                ],
                **optimizer_kwargs,
            )
        return super().create_optimizer(model)


class ReplicaCheck(TrainerCallback):
    """
    Under data-parallel training (`accelerate launch`, torchrun), gather a SHA-256 of every process's parameters at
    the end of each epoch and stop with an error if the replicas differ. The digests of the last epoch are kept.
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


def evaluate_language(
    trainer: Trainer, scorer: ZeroShotScorer, features, examples: list, head: int | None = None
) -> tuple[dict, dict]:
    """
    Predict one language (length-sorted batches) and score every word (tagging) or pair. `head`: the head of a
    layer search (`layer_search.DLFAForLayerSearch`) to score. Returns the scores and the compact
    per-item record: predicted and gold label ids, and for tagging each sentence's word count.
    """
    predictions = predict_in_order(trainer, features)
    predictions = predictions if head is None else predictions[..., head]
    return score_predictions(scorer, features, examples, predictions)


def predict_in_order(trainer: Trainer, dataset) -> np.ndarray:
    """
    `trainer.predict(dataset).predictions`, one row per dataset row, in the dataset's order. The scoring here maps
    rows back to words and pairs by position, but since huggingface/transformers#33514 the Trainer batches evaluation
    by length too under `train_sampling_strategy="group_by_length"`, which permutes the rows `predict` returns; so
    prediction runs on a loader of its own, with a sequential sampler, through the Trainer's evaluation loop (devices,
    processes and gathering as in `predict`). The Trainer's arguments are left as they are.
    """
    if isinstance(dataset, datasets.Dataset):  # the model's inputs and labels, as the Trainer would keep them
        kept = [*getattr(trainer.processing_class, "model_input_names", ["input_ids", "attention_mask"]), "labels"]
        dataset = dataset.select_columns([name for name in dataset.column_names if name in kept])
    args = trainer.args
    loader = DataLoader(
        dataset, batch_size=args.eval_batch_size, sampler=SequentialSampler(dataset), collate_fn=trainer.data_collator,
        num_workers=args.dataloader_num_workers, pin_memory=args.dataloader_pin_memory,
    )  # fmt: skip
    output = trainer.evaluation_loop(trainer.accelerator.prepare(loader), "Prediction", metric_key_prefix="predict")
    return output.predictions


def score_predictions(scorer: ZeroShotScorer, features, examples: list, predictions: np.ndarray) -> tuple[dict, dict]:
    """`evaluate_language` on predicted label ids already made: one row per feature row (tagging: padded)."""
    task = scorer.task
    if task.kind == "token":
        lengths = [len(example.tokens) for example in examples]
        predicted = word_predictions(features, [np.asarray(row) for row in predictions], lengths)
        # -1 where there is no gold tag (unlabelled text): such a language is predicted, not scored
        gold = [np.array([task.label_to_id.get(tag, -1) for tag in example.tags or [None] * len(example.tokens)])
                for example in examples]  # fmt: skip
        scores = scorer.score_words(predicted, gold) if all(map(is_labelled, examples)) else {}
        record = {"predicted": np.concatenate(predicted), "gold": np.concatenate(gold), "lengths": np.array(lengths)}
    else:
        predicted = np.empty(len(examples), dtype=np.int64)
        predicted[np.asarray(features["sentence_index"])] = np.asarray(predictions).reshape(-1)
        gold = np.array([task.label_to_id.get(example.label, -1) for example in examples])
        labelled = all(map(is_labelled, examples))
        scores = scorer.metric.compute(predictions=predicted.tolist(), references=gold.tolist()) if labelled else {}
        record = {"predicted": predicted, "gold": gold}
    return {key: float(value) for key, value in scores.items() if key in METRIC_KEYS}, record


def write_predictions(path: Path, task: TaskSpec, examples: list, record: dict) -> None:
    """Tagging: `token<TAB>tag`, a blank line between sentences; pairs: one label per line. Whole or not at all."""
    if task.kind != "token":
        write_atomically(path, "".join(f"{name}\n" for name in task.tag_names(record["predicted"])))
        return
    lines, start = [], 0
    for example in examples:
        names = task.tag_names(record["predicted"][start : start + len(example.tokens)])
        start += len(example.tokens)
        lines.extend(f"{token}\t{name}\n" for token, name in zip(example.tokens, names))
        lines.append("\n")
    write_atomically(path, "".join(lines))


class LayerSearchScorer:
    """`compute_metrics` for a one-pass layer search: every head scored; `mean_head_<score>` selects checkpoints."""

    def __init__(self, scorer: ZeroShotScorer, head_names: list[str]):
        self.scorer, self.head_names = scorer, head_names

    def __call__(self, prediction) -> dict[str, float]:
        metrics, main = {}, self.scorer.task.main_score
        for index, name in enumerate(self.head_names):
            head = EvalPrediction(predictions=prediction.predictions[..., index], label_ids=prediction.label_ids)
            metrics.update({f"{name}_{key}": value for key, value in self.scorer(head).items()})
        metrics[f"mean_head_{main}"] = float(np.mean([metrics[f"{name}_{main}"] for name in self.head_names]))
        return metrics


class LayerSearchTrainer(FusionLearningRateTrainer):
    """
    The Trainer of a one-pass layer search: every training log also carries each head's mean loss since the last
    log, as `loss_<run name>` (`head_names`: the model's head keys -> run names), in the history and in every
    logger.
    """

    def __init__(self, *args, head_names: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        self.head_names = head_names

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:
            means = self.model.head_loss_means()
            logs = {**logs, **{f"loss_{self.head_names[head]}": value for head, value in means.items()}}
        super().log(logs, start_time)


def apply_lora(model: PreTrainedModel, rank: int, alpha: int, dropout: float, target_modules: list[str]):
    """
    LoRA (`peft`) on the encoder's `target_modules`, while the head's own modules (`NEW_HEAD_MODULES` the model has:
    the fusion block, the pooler where the head has one, the classifier) train in full (`modules_to_save`). Returns the `PeftModel`; `merge_and_unload()` gives back the
    plain model class, which saves and loads as any checkpoint of it.
    """
    from peft import LoraConfig, get_peft_model

    in_full = sorted({name.rsplit(".", 1)[-1] for name, _ in model.named_modules()} & NEW_HEAD_MODULES)
    config = LoraConfig(
        r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules, modules_to_save=in_full
    )
    return get_peft_model(model, config)
