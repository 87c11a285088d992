# Copyright 2026 The dlfa authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""DLFA configurations: `DLFABertConfig` (a BERT config with the fusion fields) and `DLFAConfig` (any encoder family
of `ENCODER_FAMILIES`, whose own config it holds as `encoder_config`).

This file is self-contained (it imports only the standard library, transformers and huggingface_hub) because
`save_pretrained` copies it into every checkpoint folder, where it must load with `trust_remote_code=True` on a machine
without the plugin.
"""

import dataclasses
from typing import Any, ClassVar

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, BertConfig, PreTrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES


AIF_GATES = ("paper", "aff")
AIF_NORMS = ("batch", "layer")
FUSION_METHODS = ("aif", "scalar_mix", "concat")

# Written into every saved config, so that a checkpoint of any head loads through every Auto class.
DLFA_AUTO_MAP = {
    "AutoConfig": "configuration_dlfa.DLFABertConfig",
    "AutoModel": "modeling_dlfa.DLFABertModel",
    "AutoModelForTokenClassification": "modeling_dlfa.DLFABertForTokenClassification",
    "AutoModelForSequenceClassification": "modeling_dlfa.DLFABertForSequenceClassification",
}
DLFA_ENCODER_AUTO_MAP = {
    "AutoConfig": "configuration_dlfa.DLFAConfig",
    "AutoModel": "modeling_dlfa.DLFAModel",
    "AutoModelForTokenClassification": "modeling_dlfa.DLFAForTokenClassification",
    "AutoModelForSequenceClassification": "modeling_dlfa.DLFAForSequenceClassification",
}


@dataclasses.dataclass(frozen=True)
class FromConfig:
    """A value the encoder's config holds: the first of the fields `names` that is set (not `None`)."""

    names: tuple[str, ...]

    def resolve(self, encoder_config: PreTrainedConfig) -> Any:
        values = (getattr(encoder_config, name, None) for name in self.names)
        return next((value for value in values if value is not None), None)


CLASSIFIER_DROPOUT = FromConfig(("classifier_dropout", "hidden_dropout_prob"))


@dataclasses.dataclass(frozen=True)
class EncoderFamily:
    """
    What DLFA needs to know of one encoder family beyond what transformers says itself: the encoder is the family's
    own base model (`AutoModel.from_config(encoder_config)`), kept under the family's own `base_model_prefix` so that
    stock checkpoints load unchanged; its depth and width are its config's `num_hidden_layers` and `hidden_size`
    (DistilBERT's `n_layers` and `dim`, through its `attribute_map`); the layers fused are read from the encoder's own
    `hidden_states` (index 0: the embedding output, projected to `hidden_size` where the family projects it; index i:
    the output of layer i), which every family below follows.

    The heads are the family's own, on the fused states: sequence heads pool the first token through dropout, a dense
    layer and an activation (BERT's pooler, RoBERTa's and ELECTRA's classification head, DeBERTa-v2's
    `ContextPooler`, DistilBERT's `pre_classifier` + ReLU), then dropout and a linear classifier; token heads are
    dropout and a linear classifier. A value is a constant or a [`FromConfig`] field of the encoder's config.

    Args:
        pooler_activation: the pooling's activation, a name of `transformers.activations.ACT2FN`.
        pooler_dropout: dropout on the first token before the pooling's dense layer.
        sequence_dropout: dropout between the pooling and the sequence classifier.
        token_dropout: dropout before the token classifier.
        stock_sequence_head: where the family's own `...ForSequenceClassification` keeps the pooling's dense layer
            and the classifier (module paths): the one-pass layer search exports its last-layer head there, and a
            new DLFA sequence head takes a checkpoint's pooler only where the stock one does (`pooler.dense`).
        base_model_kwargs: the family's base model's keyword arguments as its task heads build it (BERT's and
            RoBERTa's heads build theirs without the pretraining pooler).
        positions_from_pad: whether the family numbers its position ids from the config's `pad_token_id` (RoBERTa
            and XLM-R start at `padding_idx + 1`), so that a model built with another pad id reads other position rows.
    """

    pooler_activation: str | FromConfig
    pooler_dropout: float | FromConfig
    sequence_dropout: float | FromConfig
    token_dropout: float | FromConfig
    stock_sequence_head: tuple[str, str]
    base_model_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    positions_from_pad: bool = False


# RoBERTa's and XLM-R's heads (XLM-R's modules are RoBERTa's).
ROBERTA = EncoderFamily(
    pooler_activation="tanh",
    pooler_dropout=CLASSIFIER_DROPOUT,
    sequence_dropout=CLASSIFIER_DROPOUT,
    token_dropout=CLASSIFIER_DROPOUT,
    stock_sequence_head=("classifier.dense", "classifier.out_proj"),
    base_model_kwargs={"add_pooling_layer": False},
    positions_from_pad=True,
)
# The encoder families DLFA fuses, by the `model_type` of their config. A new family is one entry here.
ENCODER_FAMILIES: dict[str, EncoderFamily] = {
    "bert": EncoderFamily(
        pooler_activation="tanh",
        pooler_dropout=0.0,
        sequence_dropout=CLASSIFIER_DROPOUT,
        token_dropout=CLASSIFIER_DROPOUT,
        stock_sequence_head=("bert.pooler.dense", "classifier"),
        base_model_kwargs={"add_pooling_layer": False},
    ),
    "roberta": ROBERTA,
    "xlm-roberta": ROBERTA,
    "electra": EncoderFamily(
        pooler_activation="gelu",
        pooler_dropout=CLASSIFIER_DROPOUT,
        sequence_dropout=CLASSIFIER_DROPOUT,
        token_dropout=CLASSIFIER_DROPOUT,
        stock_sequence_head=("classifier.dense", "classifier.out_proj"),
    ),
    "deberta-v2": EncoderFamily(
        pooler_activation=FromConfig(("pooler_hidden_act",)),
        pooler_dropout=FromConfig(("pooler_dropout",)),
        sequence_dropout=FromConfig(("cls_dropout", "hidden_dropout_prob")),
        token_dropout=FromConfig(("hidden_dropout_prob",)),
        stock_sequence_head=("pooler.dense", "classifier"),
    ),
    "distilbert": EncoderFamily(
        pooler_activation="relu",
        pooler_dropout=0.0,
        sequence_dropout=FromConfig(("seq_classif_dropout",)),
        token_dropout=FromConfig(("dropout",)),
        stock_sequence_head=("pre_classifier", "classifier"),
    ),
}


@strict(accept_kwargs=True)
class DLFAFusionConfig(PreTrainedConfig):
    r"""
    The DLFA fields, shared by [`DLFABertConfig`] and [`DLFAConfig`]: which layer is fused with the last one, and how.
    A subclass provides `num_hidden_layers` and `hidden_size` (the encoder's) and may set `default_auto_map`.

    Args:
        fusion_layer (`int`, *optional*):
            The lower layer fused with the last one, as an index into `hidden_states` (1 = output of the first
            encoder layer). Valid range: `1 .. num_hidden_layers - 1`. Defaults to `num_hidden_layers - 1`, the
            paper's best layer on XNLI.
        aif_reduction (`int`, *optional*, defaults to 4):
            Reduction ratio r of the AIF bottleneck: the branches map `hidden_size -> hidden_size // r ->
            hidden_size`. Valid range: `1 .. hidden_size`.
        aif_gate (`str`, *optional*, defaults to `"aff"`):
            `"paper"`: the attention map is `W * sigmoid(G + Lc)` with `W = (L1 + L2) / 2` (the paper's Eq. 1 as
            printed); `"aff"`: `sigmoid(G + Lc)` alone, a convex weight in [0, 1] as in AFF/MS-CAM.
        aif_gate_init (`float`, *optional*, defaults to 0.5):
            The value of `sigmoid(G + Lc)` at initialisation, everywhere (the branches' output norms start with zero
            scale and this bias). 0.5 starts the fused states at the average of the two layers; a small value starts
            them close to the last layer alone, i.e. at the last-layer baseline. Valid range: the open interval (0, 1).
        aif_norm (`str`, *optional*, defaults to `"batch"`):
            Normalisation inside the AIF branches. `"batch"`: BatchNorm as in the paper, with statistics taken over
            real (non-padding) tokens only; `"layer"`: LayerNorm over channels, independent of the other examples
            in the batch (for per-device batches of 1 or when training and inference must see identical maths).
        fusion_method (`str`, *optional*, defaults to `"aif"`):
            `"aif"`: DLFA's Attentional Information Fusion of `fusion_layer` with the last layer. Two peer fusions
            from the literature sit behind the same interface, for comparison: `"scalar_mix"`, ELMo's softmax-weighted
            sum of the embeddings and every layer times a learned scale (Peters et al., 2018; `fusion_layer` unused),
            and `"concat"`, a linear projection of the concatenated `[L1; L2]` back to `hidden_size`.
    """

    default_auto_map: ClassVar[dict[str, str]] = {}

    fusion_layer: int | None = None
    aif_reduction: int = 4
    aif_gate: str = "aff"
    aif_gate_init: float = 0.5
    aif_norm: str = "batch"
    fusion_method: str = "aif"

    def __post_init__(self, **kwargs: Any) -> None:
        if self.fusion_layer is None and isinstance(self.num_hidden_layers, int):
            self.fusion_layer = self.num_hidden_layers - 1
        if kwargs.get("auto_map") is None and self.default_auto_map:
            kwargs["auto_map"] = dict(self.default_auto_map)
        super().__post_init__(**kwargs)
        # Field types are checked by `@strict` on every assignment; the ranges depend on other fields and are checked
        # here, raising a plain ValueError (`validate()`, run by `@strict` and at save time, wraps it).
        self.validate_dlfa_fields()

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> "DLFAFusionConfig":
        # `PreTrainedConfig.from_dict` builds the config first and applies keyword overrides afterwards, so the
        # constructor's validation would judge stale values: `from_pretrained(four_layer_bert, fusion_layer=2)`
        # must not fail on a default computed for another depth. Merge the overrides of declared fields first.
        field_names = {field.name for field in dataclasses.fields(cls)}
        overrides = {key: kwargs.pop(key) for key in list(kwargs) if key in field_names}
        return super().from_dict({**config_dict, **overrides}, **kwargs)

    def family_setting(self, name: str) -> Any:
        """
        The value of the field `name` of this encoder's [`EncoderFamily`] (`ENCODER_FAMILIES[self.encoder_family]`),
        read from `encoder_config` if it says so. A subclass provides `encoder_family` (the encoder's `model_type`) and
        `encoder_config` (the config the encoder is built from).
        """
        value = getattr(ENCODER_FAMILIES[self.encoder_family], name)
        return value.resolve(self.encoder_config) if isinstance(value, FromConfig) else value

    def validate_dlfa_fields(self) -> None:
        """Check the DLFA fields against the encoder they belong to; raise `ValueError` naming the bad value."""
        num_layers = self.num_hidden_layers
        if num_layers < 2:
            raise ValueError(
                f"DLFA fuses the last layer with a lower one and needs num_hidden_layers >= 2, got {num_layers}."
            )
        if self.fusion_layer is None or not 1 <= self.fusion_layer <= num_layers - 1:
            raise ValueError(
                f"fusion_layer={self.fusion_layer!r} is out of range: it must be an integer in 1..{num_layers - 1} "
                f"(num_hidden_layers={num_layers}; the last layer is always fused)."
            )
        if not 1 <= self.aif_reduction <= self.hidden_size:
            raise ValueError(
                f"aif_reduction={self.aif_reduction!r} is out of range: it must be an integer in "
                f"1..{self.hidden_size} (hidden_size={self.hidden_size})."
            )
        if self.aif_gate not in AIF_GATES:
            raise ValueError(f"aif_gate={self.aif_gate!r} is not supported: choose one of {AIF_GATES}.")
        if not 0.0 < self.aif_gate_init < 1.0:
            raise ValueError(
                f"aif_gate_init={self.aif_gate_init!r} is out of range: it must be a number in the open interval (0, 1)."
            )
        if self.aif_norm not in AIF_NORMS:
            raise ValueError(f"aif_norm={self.aif_norm!r} is not supported: choose one of {AIF_NORMS}.")
        if self.fusion_method not in FUSION_METHODS:
            raise ValueError(f"fusion_method={self.fusion_method!r} is not supported: choose one of {FUSION_METHODS}.")


@strict(accept_kwargs=True)
class DLFABertConfig(BertConfig, DLFAFusionConfig):
    r"""
    Configuration of a BERT encoder with Double Layers Feature Aggregation (DLFA, Chen et al., ICPR 2022): the last
    layer's hidden states are fused with those of one lower layer by an Attentional Information Fusion (AIF) block
    before the task head. All [`BertConfig`] fields keep their meaning, the DLFA fields are those of
    [`DLFAFusionConfig`]; a plain BERT `config.json` loads into this class unchanged. Other encoder families (and
    checkpoints of them) take [`DLFAConfig`].

    Example:

    ```python
    >>> from configuration_dlfa import DLFABertConfig

    >>> config = DLFABertConfig(num_hidden_layers=12, fusion_layer=8)
    >>> config.fusion_layer
    8
    ```
    """

    model_type = "dlfa_bert"
    default_auto_map = DLFA_AUTO_MAP

    def __post_init__(self, **kwargs: Any) -> None:
        # A plain BERT config.json carries "model_type": "bert"; kept, it would shadow this class's own type. Any other
        # type is another encoder family, which BERT's modules would read with the wrong weights and positions.
        model_type = kwargs.pop("model_type", None)
        if model_type not in (None, "bert", self.model_type):
            raise ValueError(
                f"DLFABertConfig holds BERT encoders, but this config's model_type is {model_type!r}: load a "
                f"{model_type!r} checkpoint with DLFAConfig and its models (DLFAModel, DLFAForTokenClassification, "
                "DLFAForSequenceClassification), which wrap any encoder family DLFA supports."
            )
        super().__post_init__(**kwargs)

    @property
    def encoder_family(self) -> str:
        """The encoder family, an entry of `ENCODER_FAMILIES`: BERT."""
        return "bert"

    @property
    def encoder_config(self) -> "DLFABertConfig":
        """The config the BERT encoder is built from: this one (BERT's fields are its own)."""
        return self


@strict(accept_kwargs=True)
class DLFAConfig(DLFAFusionConfig):
    r"""
    Configuration of DLFA on any encoder family of [`ENCODER_FAMILIES`] (BERT, RoBERTa, XLM-R, DeBERTa-v2 /
    mDeBERTa, DistilBERT, ELECTRA): the family's own config, unchanged, as `encoder_config`, plus the DLFA fields of
    [`DLFAFusionConfig`] and the task fields (`num_labels`, `id2label`, `problem_type`) of the heads.

    A stock encoder's `config.json` (`model_type` "xlm-roberta", ...) loads into this class wrapped:
    `DLFAConfig.from_pretrained(xlmr_folder, fusion_layer=8)` holds the folder's config as `encoder_config`, keeps its
    labels, and applies keywords before validating (the encoder's own fields, such as `hidden_dropout_prob`, go to
    `encoder_config`). A family not in the table, a decoder-only model and a fusion layer outside `1 .. L - 1` (L the
    encoder's depth) are refused with a `ValueError` naming the value.

    Args:
        encoder_config (`PreTrainedConfig` or `dict`, *optional*):
            The encoder family's config, or its dict (with `model_type`). Defaults to a default `BertConfig`.

    Example:

    ```python
    >>> from transformers import XLMRobertaConfig
    >>> from configuration_dlfa import DLFAConfig

    >>> config = DLFAConfig(encoder_config=XLMRobertaConfig(num_hidden_layers=12), fusion_layer=8, num_labels=17)
    >>> config.num_hidden_layers, config.fusion_layer
    (12, 8)
    ```
    """

    model_type = "dlfa"
    default_auto_map = DLFA_ENCODER_AUTO_MAP
    # `sub_configs` rather than its successor `sub_configs_defaults`, which transformers < 5.24 lacks: the sub-config
    # is built in `__post_init__` below, and transformers dispatches dtype and attention implementation through it.
    sub_configs: ClassVar[dict[str, type]] = {"encoder_config": AutoConfig}

    encoder_config: dict | PreTrainedConfig | None = None

    def __post_init__(self, **kwargs: Any) -> None:
        if not isinstance(self.encoder_config, PreTrainedConfig):
            self.encoder_config = AutoConfig.for_model(**(self.encoder_config or {"model_type": "bert"}))
        check_encoder_family(self.encoder_config.model_type)
        super().__post_init__(**kwargs)

    @property
    def num_hidden_layers(self) -> int:
        return self.encoder_config.num_hidden_layers

    @property
    def hidden_size(self) -> int:
        return self.encoder_config.hidden_size

    @property
    def encoder_family(self) -> str:
        return self.encoder_config.model_type

    def get_text_config(self, decoder: bool | None = None, encoder: bool | None = None) -> PreTrainedConfig:
        # The encoder's config is the one that knows the vocabulary and the initialiser range
        # (`resize_token_embeddings`, `_init_weights`).
        return self.encoder_config

    @classmethod
    def get_config_dict(cls, pretrained_model_name_or_path: Any, **kwargs: Any) -> tuple[dict[str, Any], dict]:
        config_dict, kwargs = super().get_config_dict(pretrained_model_name_or_path, **kwargs)
        return wrap_encoder_config_dict(config_dict), kwargs

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> "DLFAConfig":
        config_dict = wrap_encoder_config_dict(config_dict)
        encoder_dict = config_dict.get("encoder_config") or {"model_type": "bert"}
        if isinstance(encoder_dict, PreTrainedConfig):
            encoder_dict = encoder_dict.to_dict()
        check_encoder_family(encoder_dict["model_type"])
        # Keywords that name a field of the encoder's config (and not of this one) override that field.
        encoder_class = CONFIG_MAPPING[encoder_dict["model_type"]]
        encoder_fields = {field.name for field in dataclasses.fields(encoder_class)} | set(encoder_class.attribute_map)
        own_fields = {field.name for field in dataclasses.fields(cls)}
        encoder_overrides = {
            key: kwargs.pop(key) for key in list(kwargs) if key in encoder_fields and key not in own_fields
        }
        config_dict = {**config_dict, "encoder_config": {**encoder_dict, **encoder_overrides}}
        return super().from_dict(config_dict, **kwargs)


# The fields of a stock encoder's config that belong to DLFA's heads once the config is wrapped.
HEAD_FIELDS = ("id2label", "label2id", "problem_type", "dtype")


def wrap_encoder_config_dict(config_dict: dict[str, Any]) -> dict[str, Any]:
    """A stock encoder's config dict as the dict of a [`DLFAConfig`] that holds it; a DLFA config dict unchanged."""
    model_type = config_dict.get("model_type")
    if model_type is None or model_type == DLFAConfig.model_type:
        return config_dict
    encoder_dict = dict(config_dict)
    head_fields = {key: encoder_dict.pop(key) for key in HEAD_FIELDS if key in encoder_dict}
    return {**head_fields, "encoder_config": encoder_dict}


def check_encoder_family(model_type: str) -> None:
    """Raise a `ValueError` naming `model_type` unless it is an encoder family of `ENCODER_FAMILIES`."""
    if model_type in ENCODER_FAMILIES:
        return
    if model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        reason = "it is a decoder-only (causal) language model, whose layers see no right context"
    else:
        reason = "it is not an encoder family of ENCODER_FAMILIES (configuration_dlfa.py), where a family is one entry"
    raise ValueError(
        f"DLFA cannot fuse model_type={model_type!r}: {reason}. DLFA fuses two layers of a bidirectional encoder "
        f"of one of the families {sorted(ENCODER_FAMILIES)}."
    )


__all__ = ["ENCODER_FAMILIES", "DLFABertConfig", "DLFAConfig", "DLFAFusionConfig", "EncoderFamily"]
