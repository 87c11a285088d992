"""
The harness's command-line arguments (`examples/run_zero_shot.py`, parsed with `HfArgumentParser` beside
`TrainingArguments`), and what they make of a run: its name and the settings a stored run must match.
"""

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace

from transformers import TrainingArguments

from . import names
from .features import LABEL_ALIGNMENTS
from .heads import FusionSettings
from .offline_backbone import OFFLINE_PREFIX
from .tasks import TASKS, TaskSpec


BASELINE_LAYER = "last"  # in --fusion_layers: the stock head on the last layer
# The harness's own defaults for `TrainingArguments`: length-grouped training batches pad less (x1.9 the sentences per
# second of random batches on this CPU, benchmarks/results/throughput.json); evaluation batches are length-sorted
# (`features.length_sorted`), so larger ones cost little padding.
TRAINING_DEFAULTS = {"train_sampling_strategy": "group_by_length", "per_device_eval_batch_size": 32}
# The learning rate under --lora_r unless --learning_rate is given: the grid's best mean English dev F1 on the README's
# main job (UDPOS, rank 8, multilingual-e5-small; benchmarks/lora_vs_full.py, benchmarks/results/lora_vs_full.json).
LORA_LEARNING_RATE = 3e-3
CHECKPOINT = "checkpoint"  # the run of an evaluation-only call: the fine-tuned checkpoint as it is


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        default="bert-base-multilingual-cased",
        metadata={
            "help": "the encoder to fine-tune (BERT, XLM-R, RoBERTa, DeBERTa-v2, DistilBERT, ELECTRA) on the Hub or on disk,"
            f" or '{OFFLINE_PREFIX}multilingual-e5-small' (or its XLM-R layout '{OFFLINE_PREFIX}multilingual-e5-small-xlmr')"
            " (no Hub needed); without --do_train, the fine-tuned checkpoint to evaluate (DLFA or a plain BERT head)"
        },
    )
    fusion_layers: str = field(
        default="",
        metadata={
            "help": "layers to fuse with the last, one model each: '8', '6,8,10', '1-11'; 'last' is the baseline; "
            "unset: the configuration's default layer (the second-to-last)"
        },
    )
    aif_reduction: int = field(default=names.DEFAULT_REDUCTION, metadata={"help": "AIF bottleneck ratio r"})
    aif_gate: str = field(
        default=names.DEFAULT_GATE, metadata={"help": "'aff' (sigmoid) or 'paper' (W * sigmoid, Eq. 1 as printed)"}
    )
    aif_gate_init: float = field(
        default=names.DEFAULT_GATE_INIT,
        metadata={"help": "the gate's starting value in (0, 1); small values start at the last layer"},
    )
    aif_norm: str = field(default=names.DEFAULT_NORM, metadata={"help": "'batch' (masked BatchNorm) or 'layer'"})
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
        metadata={
            "help": "LoRA rank on the encoder (0: full fine-tuning); fusion block and head train in full; the "
            f"learning rate is then {LORA_LEARNING_RATE:g} unless --learning_rate is given (chosen on UDPOS, rank 8, "
            "multilingual-e5-small)"
        },
    )
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling alpha"})
    lora_dropout: float = field(default=0.1, metadata={"help": "LoRA dropout"})
    lora_target_modules: str = field(
        default="",
        metadata={
            "help": "comma-separated encoder modules that get LoRA adapters; unset: the encoder family's attention "
            "query and value projections (`heads.lora_target_modules`)"
        },
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
            "tags/labels; premise/hypothesis or sentence1/sentence2, and label or gold_label) or CoNLL/TSV; its labels "
            "are the model's"
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
    label_alignment: str | None = field(
        default=None,
        metadata={
            "help": f"which sub-token of a word carries its tag: one of {LABEL_ALIGNMENTS}; unset: "
            f"'{names.DEFAULT_LABEL_ALIGNMENT}' when training, the checkpoint's own when evaluating one (its "
            "config.label_alignment, else 'first', the stock run_ner.py rule), which a different value may not override"
        },
    )


def with_label_alignment(
    data_args: DataArguments, task: TaskSpec, checkpoint_alignment: str | None = None
) -> DataArguments:
    """
    `data_args` with the label alignment its runs use: when training (no `checkpoint_alignment`), `--label_alignment`
    or the harness's default; when evaluating a checkpoint, the alignment it was trained with
    (`pipeline_dlfa.label_alignment_of` its config), and a `--label_alignment` that says otherwise is refused by name.
    A pair task has none (None).
    """
    given = data_args.label_alignment
    if given not in (None, *LABEL_ALIGNMENTS):
        raise ValueError(f"--label_alignment {given!r} is not supported: choose one of {LABEL_ALIGNMENTS}")
    if task.kind != "token":
        alignment = None
    elif checkpoint_alignment is None:
        alignment = given or names.DEFAULT_LABEL_ALIGNMENT
    elif given not in (None, checkpoint_alignment):
        raise ValueError(
            f"--label_alignment {given}: the checkpoint was trained with label_alignment {checkpoint_alignment!r} "
            "(its config.label_alignment; none there means 'first', the stock run_ner.py rule), and its words are "
            f"scored from the piece it learned to tag: drop --label_alignment, or give {checkpoint_alignment}"
        )
    else:
        alignment = checkpoint_alignment
    return replace(data_args, label_alignment=alignment)


def parse_layers(spec: str, num_layers: int, default_layer: int) -> list[int | None]:
    """
    '1-11,last' -> [1, ..., 11, None] (None: the last-layer baseline), each checked against the backbone's depth;
    an empty `spec` is the configuration's `default_layer`.
    """
    if not spec.strip():
        return [default_layer]
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
    """
    The run name of the model trained at `layer` (None: the baseline, the family's stock head, which has no fusion
    method) with these arguments: every setting in it.
    """
    factor = model_args.fusion_learning_rate / learning_rate if model_args.fusion_learning_rate else None
    return names.run_name(
        layer, model_args.fusion_method if layer is not None else None, model_args.aif_gate, model_args.aif_gate_init,
        factor, aif_reduction=model_args.aif_reduction, aif_norm=model_args.aif_norm, lora_r=model_args.lora_r,
        label_alignment=data_args.label_alignment if task.kind == "token" else None,
    )  # fmt: skip


def run_names(
    layers: list[int | None],
    model_args: ModelArguments,
    data_args: DataArguments,
    task: TaskSpec,
    learning_rate: float,
) -> dict[int | None, str]:
    """
    The run name of each of `layers` (`configuration_name`; None: the baseline). Two layers that would make one run,
    as two layers under the scalar mix (it mixes every layer, and its name carries none), are refused by name: each
    run of a call has a folder of its own.
    """
    names: dict[int | None, str] = {}
    for layer in layers:
        name = configuration_name(layer, model_args, data_args, task, learning_rate)
        for other, other_name in names.items():
            if other_name == name:
                raise ValueError(
                    f"--fusion_layers {model_args.fusion_layers!r} with --fusion_method {model_args.fusion_method}: "
                    f"layers {other} and {layer} would both be the run {name!r} (this fusion uses no fusion layer); "
                    "give one of them"
                )
        names[layer] = name
    return names


# Arguments that change nothing a run computes (where it is, how it reports, which runs the call makes): left out of
# the settings a stored run must match. Every other argument is compared, but for those its model does not use
# (`run_settings`).
NOT_SETTINGS = {
    "cache_dir", "trust_remote_code", "hub_dry_run", "fusion_layers", "layer_search", "layer_search_then",
}  # fmt: skip
# the fields every DLFA head is built with (`heads.FusionSettings`), and the fusion's own learning rate (the Trainer's)
FUSION_SETTINGS = {setting.name for setting in fields(FusionSettings)} | {"fusion_learning_rate"}
LORA_SETTINGS = {"lora_alpha", "lora_dropout", "lora_target_modules"}  # beside lora_r, which says whether LoRA is on
TRAINING_SETTINGS = (
    "seed", "data_seed", "learning_rate", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm",
    "num_train_epochs", "max_steps", "lr_scheduler_type", "lr_scheduler_kwargs", "warmup_steps", "warmup_ratio",
    "per_device_train_batch_size", "gradient_accumulation_steps", "world_size", "optim", "optim_args",
    "optim_target_modules", "train_sampling_strategy", "label_smoothing_factor", "neftune_noise_alpha",
    "dataloader_drop_last", "average_tokens_across_devices", "auto_find_batch_size", "fp16", "bf16", "tf32",
    "fp16_full_eval", "bf16_full_eval", "torch_compile", "use_liger_kernel", "do_train", "do_eval", "do_predict",
)  # fmt: skip


def run_settings(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: TrainingArguments,
    task: TaskSpec,
    layer: int | None | str,
) -> dict:
    """
    Every setting that changes what the run of `layer` computes (an int: DLFA at that layer; None: the baseline;
    `"search:2,4"`: the one-pass search over those layers, and the head kept from it; `CHECKPOINT`: a fine-tuned
    checkpoint evaluated as it is), as JSON values: what `runs.check_stored_settings`
    compares. Settings the run's model does not use are left out, as in its name: the fusion's for the baseline,
    LoRA's without LoRA, the label alignment for a pair task; so a new fusion setting never blocks the baseline.
    """
    unused = set(NOT_SETTINGS)
    unused |= FUSION_SETTINGS if layer is None or layer == CHECKPOINT else set()
    unused |= LORA_SETTINGS if not model_args.lora_r else set()
    unused |= {"label_alignment"} if task.kind != "token" else set()
    settings = {
        name: value
        for arguments in (model_args, data_args)
        for name, value in asdict(arguments).items()
        if name not in unused
    }
    settings.update({name: getattr(training_args, name) for name in TRAINING_SETTINGS if hasattr(training_args, name)})
    settings["layer"] = layer
    return json.loads(json.dumps(settings, default=str))


def flag_values(command: Sequence[str]) -> dict[str, str]:
    """A harness command's flags -> values (`--flag value` or `--flag=value`; a flag followed by another flag, or by
    nothing, is "true", as `HfArgumentParser` reads a bare boolean flag)."""
    values = {}
    for index, token in enumerate(command):
        if not token.startswith("--"):
            continue
        name, equals, value = token.partition("=")
        if equals:
            values[name] = value
            continue
        following = command[index + 1] if index + 1 < len(command) else "--"
        values[name] = "true" if following.startswith("--") else following
    return values


def differing_flags(stored: Sequence[str], requested: Sequence[str], ignored: Sequence[str] = ()) -> list[str]:
    """`flag: stored 'x', now 'y'` for every flag but `ignored` whose value differs between two harness commands."""
    old, new = flag_values(stored), flag_values(requested)
    return [
        f"{name}: stored {old.get(name)!r}, now {new.get(name)!r}"
        for name in sorted(set(old) | set(new))
        if name not in ignored and old.get(name) != new.get(name)
    ]
