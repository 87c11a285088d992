"""
Which model a run trains or evaluates: a new head (the stock last-layer head, a DLFA fusion, the one-pass layer
search) on a pretrained encoder, with every encoder weight checked loaded, or a fine-tuned checkpoint.
"""

import dataclasses

from transformers import (
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    PreTrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from modeling_dlfa import DLFABertConfig, DLFAConfig
from modeling_dlfa.configuration_dlfa import ENCODER_FAMILIES, check_encoder_family

from . import names
from .backbone import Backbone
from .layer_search import DLFAForLayerSearch
from .tasks import TaskSpec
from .training import load_new_head


@dataclasses.dataclass(frozen=True)
class FusionSettings:
    """
    The DLFA configuration fields a call sets on every DLFA head it builds (the fusion layer aside, which varies by
    run): built once from the command line (`cli.fusion_settings`), so that building a model reads no argument class.
    """

    fusion_method: str
    aif_reduction: int
    aif_gate: str
    aif_gate_init: float
    aif_norm: str

    def config_fields(self) -> dict:
        """These settings as `DLFAConfig` / `DLFABertConfig` keywords."""
        return dataclasses.asdict(self)


def new_head_fields(task: TaskSpec, tokenizer: PreTrainedTokenizerBase) -> dict:
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


def check_padding_id(backbone: Backbone) -> None:
    """
    Refuse (ValueError naming both ids) a backbone of a family that numbers its positions from the pad id (RoBERTa,
    XLM-R: `EncoderFamily.positions_from_pad`) whose config and tokenizer disagree on that id: a new head takes the
    tokenizer's (`new_head_fields`), which would move every position of the pretrained encoder. Elsewhere the pad id
    only marks an embedding row, and the tokenizer's is the right one (multilingual-e5-small's config says 0, its
    tokenizer pads with 1).
    """
    config, tokenizer = backbone.config, backbone.tokenizer
    config_id, tokenizer_id = getattr(config, "pad_token_id", None), tokenizer.pad_token_id
    family = ENCODER_FAMILIES.get(config.model_type)
    if family and family.positions_from_pad and None not in (config_id, tokenizer_id) and config_id != tokenizer_id:
        raise ValueError(
            f"{backbone.path}: its tokenizer pads with id {tokenizer_id} ({tokenizer.pad_token!r}) but its config says "
            f"pad_token_id={config_id}; {config.model_type} numbers its positions from that id, so a model built "
            "with the tokenizer's would read other position rows. Use the checkpoint's own tokenizer, or set the "
            "same pad_token_id in both."
        )


def checkpoint_labels(config: PreTrainedConfig) -> tuple[str, ...]:
    """A fine-tuned checkpoint's labels, in id order."""
    return tuple(config.id2label[index] for index in range(config.num_labels))


DLFA_MODEL_TYPES = (DLFABertConfig.model_type, DLFAConfig.model_type)  # a DLFA checkpoint's config


def dlfa_config_class(family: str) -> type[DLFABertConfig] | type[DLFAConfig]:
    """
    The DLFA config of the runs of `family` (a `model_type` of `ENCODER_FAMILIES`): `DLFABertConfig` for BERT, whose
    checkpoints keep the design card's `model_type` (`dlfa_bert`) and classes (`DLFABert*`), `DLFAConfig` otherwise.
    The model classes follow from the config through the Auto classes (`head_class`), with which the plugin registers
    both.
    """
    return DLFABertConfig if family == "bert" else DLFAConfig


def head_class(kind: str) -> type[AutoModelForTokenClassification] | type[AutoModelForSequenceClassification]:
    """
    The Auto class of every head of a task of `kind` (`"token"`, or `"pair"` / `"sequence"`: one label per input): it
    builds the family's stock head from the backbone's own config and the DLFA head from a `dlfa_config_class` config.
    """
    return AutoModelForTokenClassification if kind == "token" else AutoModelForSequenceClassification


def check_fusable(config: PreTrainedConfig) -> None:
    """
    Refuse (ValueError naming it) a backbone config of a family DLFA cannot fuse: `prepare_backbone`'s `check_config`
    wherever heads are to be built, so that the refusal comes before the tokenizer such a backbone may lack. A
    DLFA checkpoint (fine-tuned, or `make_init_checkpoint`'s init folder) is refused as what it is, not as a family.
    """
    if config.model_type in DLFA_MODEL_TYPES:
        raise ValueError(
            f"model_type={config.model_type!r} is a DLFA checkpoint, not an encoder to put new heads on: train from the "
            f"encoder it was built on ({config.encoder_family!r}); a fine-tuned one is scored with --do_eval alone"
        )
    check_encoder_family(config.model_type)


def dlfa_config(backbone: Backbone, **fields) -> DLFABertConfig | DLFAConfig:
    """
    The config of a DLFA head on `backbone`: its family's `dlfa_config_class`, from the backbone's config, with
    `fields` set; refused (ValueError naming it) unless DLFA can fuse the backbone's family.
    """
    check_encoder_family(backbone.family)
    return backbone.config_as(dlfa_config_class(backbone.family), **fields)


# LoRA's default targets, the attention's query and value projections, for the families peft's own table lacks
# (peft 0.21 has BERT, XLM-R, RoBERTa, DeBERTa-v2 and ELECTRA, not DistilBERT).
LORA_TARGET_MODULES = {"distilbert": ("q_lin", "v_lin")}


def lora_target_modules(family: str) -> tuple[str, ...]:
    """The modules LoRA adapts in an encoder of `family` unless told: peft's table, else `LORA_TARGET_MODULES`."""
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    check_encoder_family(family)
    modules = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(family) or LORA_TARGET_MODULES.get(family)
    if not modules:
        raise ValueError(f"LoRA has no default target modules for the {family!r} encoder: give --lora_target_modules")
    return tuple(modules)


def build_model(
    backbone: Backbone, task: TaskSpec, layer: int | None, fusion: FusionSettings, freeze_word_embeddings: bool = False
) -> PreTrainedModel:
    """A new head on `backbone`: the family's stock head for the baseline (layer None), else DLFA at `layer`."""
    fields = new_head_fields(task, backbone.tokenizer)
    if layer is None:
        config = backbone.config_as(**fields)
    else:
        config = dlfa_config(backbone, **fields, fusion_layer=layer, **fusion.config_fields())
    model = load_new_head(head_class(task.kind), backbone.path, config=config, cache_dir=backbone.cache_dir)
    if freeze_word_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    return model


def load_finetuned(
    path: str,
    task: TaskSpec,
    cache_dir: str | None = None,
    trust_remote_code: bool = False,
    config: PreTrainedConfig | None = None,
) -> PreTrainedModel:
    """A fine-tuned checkpoint to evaluate (`config`: its config, where already read); its labels must be the task's."""
    auto_class = AutoModelForTokenClassification if task.kind == "token" else AutoModelForSequenceClassification
    model = auto_class.from_pretrained(path, config=config, cache_dir=cache_dir, trust_remote_code=trust_remote_code)
    labels = checkpoint_labels(model.config)
    if labels != task.labels:
        raise ValueError(f"{path}: its labels {labels} are not the {task.name} labels {task.labels} in that order")
    return model


def build_layer_search(
    backbone: Backbone, task: TaskSpec, layers: list[int], fusion: FusionSettings, freeze_word_embeddings: bool = False
) -> DLFAForLayerSearch:
    """
    The one-pass layer search on `backbone`: a DLFA head for each of `layers` and the stock head on one encoder, with
    the family's `dlfa_config_class` config (so that it exports the heads a DLFA run of the family saves).
    """
    config = dlfa_config(backbone, **new_head_fields(task, backbone.tokenizer), **fusion.config_fields())
    config.search_layers, config.search_problem = layers, "token" if task.kind == "token" else "sequence"
    model = load_new_head(DLFAForLayerSearch, backbone.path, config=config, cache_dir=backbone.cache_dir)
    if freeze_word_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    return model


def default_fusion_layer(backbone: Backbone) -> int:
    """The configuration's own default fusion layer for `backbone` (what `--fusion_layers` unset means)."""
    return backbone.config_as(DLFAConfig).fusion_layer


def checkpoint_name(config: PreTrainedConfig) -> str:
    """The run name of a fine-tuned checkpoint, from its config (a plain BERT head is the baseline)."""
    if getattr(config, "model_type", None) not in DLFA_MODEL_TYPES:
        return names.BASELINE
    return names.run_name(
        config.fusion_layer, config.fusion_method, config.aif_gate, config.aif_gate_init,
        aif_reduction=config.aif_reduction, aif_norm=config.aif_norm, label_alignment=None,
    )  # fmt: skip
