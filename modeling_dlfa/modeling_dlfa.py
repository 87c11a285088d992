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
"""PyTorch DLFA: Double Layers Feature Aggregation (Chen, Guo, Liu, Tao, ICPR 2022, arXiv 2205.08497) on any encoder
family of `ENCODER_FAMILIES` (BERT, RoBERTa, XLM-R, DeBERTa-v2, DistilBERT, ELECTRA): `DLFAModel` and
`DLFAFor{TokenClassification,SequenceClassification}`, with `DLFAConfig`; `DLFABert*`, with `DLFABertConfig`, are the
same classes for BERT under the names (and `model_type`, `dlfa_bert`) of the design card.

The last encoder layer L2 is fused with a lower layer L1 by Attentional Information Fusion (AIF):

    W  = (L1 + L2) / 2
    G  = global branch on the mean of W over real tokens    (E -> E/r -> E bottleneck with normalisation)
    Lc = local branch on every token of W                   (the same bottleneck, its own weights)
    A  = sigmoid(G + Lc)        ("aff" gate)   or   W * sigmoid(G + Lc)   ("paper" gate, Eq. 1 as printed)
    L  = L1 * A + L2 * (1 - A)  (Eq. 2)

and the fused states L feed the family's usual task heads.

This file, `configuration_dlfa.py`, `fusion_dlfa.py` (the fusion modules) and `pipeline_dlfa.py` are copied into every
saved checkpoint, so that it loads with `trust_remote_code=True` where this plugin is not installed: import only from
the standard library, torch, transformers and, relatively, `.configuration_dlfa`, `.fusion_dlfa` and `.pipeline_dlfa`.
"""

import inspect
from typing import Any

import torch
from torch import nn
from transformers import CONFIG_MAPPING, MODEL_MAPPING
from transformers.activations import ACT2FN
from transformers.loss.loss_utils import ForTokenClassification, fixed_cross_entropy
from transformers.modeling_outputs import BaseModelOutput, SequenceClassifierOutput, TokenClassifierOutput
from transformers.modeling_utils import PreTrainedModel
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, logging
from transformers.utils.generic import can_return_tuple

from .configuration_dlfa import DLFABertConfig, DLFAConfig, DLFAFusionConfig
from .fusion_dlfa import FUSION_CLASSES, init_fusion_weights
from .pipeline_dlfa import WORD_PIPELINES


logger = logging.get_logger(__name__)


def padding_mask_of(attention_mask: torch.Tensor | None, hidden_states: torch.Tensor) -> torch.Tensor:
    """The `(batch, seq_len)` boolean mask of real tokens, for `hidden_states` of shape `(batch, seq_len, ...)`."""
    batch_size, seq_length = hidden_states.shape[:2]
    if attention_mask is None:
        return torch.ones(batch_size, seq_length, dtype=torch.bool, device=hidden_states.device)
    if tuple(attention_mask.shape) != (batch_size, seq_length):
        raise ValueError(
            f"DLFA needs a 2D padding mask: attention_mask must have shape (batch_size, sequence_length) = "
            f"{(batch_size, seq_length)}, got {tuple(attention_mask.shape)}."
        )
    return attention_mask.bool()


def run_encoder(encoder: nn.Module, attention_mask: torch.Tensor | None = None, **inputs: Any) -> BaseModelOutput:
    """
    `encoder` (a family's base model) on these inputs (`(batch_size, sequence_length)` ids and masks, or
    `inputs_embeds` `(batch_size, sequence_length, embedding_size)`), with `return_dict=True`; inputs that are None
    are not passed, as DistilBERT's forward has no `token_type_ids`.
    """
    given = {name: value for name, value in inputs.items() if value is not None}
    return encoder(attention_mask=attention_mask, return_dict=True, **given)


def requested_hidden_states(output_hidden_states: bool | int | list[int] | None, num_states: int) -> set[int]:
    """
    The indices of the `num_states` hidden states that `output_hidden_states` asks for, as transformers' output
    capture reads it: a flag (all or none), or an index or list of indices (negative ones from the end; out of range
    ones select nothing).
    """
    if not output_hidden_states:  # as there: 0 and [] ask for nothing
        return set()
    if output_hidden_states is True:
        return set(range(num_states))
    indices = [output_hidden_states] if isinstance(output_hidden_states, int) else output_hidden_states
    return {index % num_states for index in indices if -num_states <= index < num_states}


def returned_hidden_states(
    encoder: nn.Module,
    hidden_states: tuple[torch.Tensor | None, ...],
    requested: set[int],
    fused_layers: set[int],
) -> tuple[torch.Tensor | None, ...]:
    """
    The encoder's `hidden_states` (`num_hidden_layers + 1` entries, each `(batch, seq_len, hidden_size)` or None),
    computed for the `requested` indices and the `fused_layers`, as the encoder returns them for the `requested` ones
    alone: the states only the fusion needed are None, unless the encoder computes every state whatever it is asked
    (DeBERTa-v2, whose forward takes `output_hidden_states` itself; every family before transformers 5.24).
    """
    asked = requested | fused_layers
    computes_all = "output_hidden_states" in inspect.signature(encoder.forward).parameters or any(
        state is not None for index, state in enumerate(hidden_states) if index not in asked
    )
    if computes_all:
        return hidden_states
    return tuple(state if index in requested else None for index, state in enumerate(hidden_states))


def sequence_classification_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    config: DLFAFusionConfig,
    num_items_in_batch: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """
    The loss of [`BertForSequenceClassification`] (problem type inferred the same way), except that when `Trainer`
    passes `num_items_in_batch` every problem type sums and divides by it, so that gradient accumulation gives the
    loss of the whole accumulated batch (transformers' own helper does this for single-label classification only).

    Shapes: `logits` `(batch, num_labels)`; `labels` `(batch,)` (class ids or regression targets) or
    `(batch, num_labels)` (multi-label targets or multi-output regression).
    """
    num_labels = config.num_labels
    if config.problem_type is None:
        if num_labels == 1:
            config.problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"

    labels = labels.to(logits.device)
    if config.problem_type == "single_label_classification":
        return fixed_cross_entropy(logits.view(-1, num_labels), labels.view(-1), num_items_in_batch)
    if config.problem_type == "regression":
        predictions = logits.view(-1) if num_labels == 1 else logits
        targets = labels.view(-1) if num_labels == 1 else labels
        elementwise = nn.functional.mse_loss(predictions.float(), targets.float(), reduction="none")
    elif config.problem_type == "multi_label_classification":
        elementwise = nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="none")
    else:
        raise ValueError(f"problem_type={config.problem_type!r} is not a sequence classification problem type.")
    if num_items_in_batch is None:
        return elementwise.mean()
    return elementwise.sum() / num_items_in_batch


class DLFAPooler(nn.Module):
    """
    The encoder family's sequence pooling, on the fused first token: dropout, a dense layer and the family's
    activation (BERT's pooler, RoBERTa's and ELECTRA's classification head, DeBERTa-v2's `ContextPooler`,
    DistilBERT's `pre_classifier` + ReLU; `EncoderFamily` in the configuration gives each one's settings). Its weights
    are named as BERT's pooler (`pooler.dense`), so a BERT checkpoint's pretrained pooler loads into it, as into BERT's
    own head; where the family's own head starts its pooling fresh (RoBERTa, XLM-R), a new head's does too
    ([`DLFAPreTrainedModel.start_pooling_as_the_family_does`]).

    Shapes: `hidden_states` `(batch, seq_len, hidden_size)` -> `(batch, hidden_size)`.
    """

    def __init__(self, config: DLFAConfig):
        super().__init__()
        self.dropout = nn.Dropout(config.family_setting("pooler_dropout"))
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = ACT2FN[config.family_setting("pooler_activation")]

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(self.dropout(hidden_states[:, 0])))


class EncoderClassFlag:
    """
    A `_supports_*` flag of the generic DLFA models (`_supports_sdpa`, ...), which follows the encoder family: read on a
    model, its encoder class's flag (transformers reads these per instance, so it resolves, reports and checks the
    model's attention implementation as it does the family's own model's); read on a class, which has no family yet,
    `False`, as code that reads the flag from the class (transformers' own tests do) can only rely on what every
    family supports. Shapes: none (a descriptor).
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, model: "DLFAPreTrainedModel | None", owner: type | None = None) -> bool:
        if model is None:
            return False
        return getattr(model.encoder_class(), self.name)


class DLFAPreTrainedModel(PreTrainedModel):
    """
    DLFA on an encoder family of `ENCODER_FAMILIES`. Every DLFA model holds the family's own base model (the
    transformers class itself, `encoder_class()`, built from `config.encoder_config`) under the family's
    `base_model_prefix` (`bert`, `roberta`, `deberta`, `distilbert`, `electra`), beside the fusion block `fusion`
    and its head. Its weights are thus keyed as in the family's own checkpoints: transformers' loading adds or strips
    that prefix per key, so a stock base-model folder (keys without prefix) or head folder (`roberta.*`, ...) fills
    the encoder, and only the fusion block and the head are new. The same per-key rule loads the checkpoints of the
    earlier `DLFABert*` classes (`bert.fusion.*`, `bert.pooler.*`; a base model's `fusion.*`) unchanged.

    `encode` checks the inputs and runs the encoder (the layer search calls it too), `encode_and_fuse` adds the
    fusion, and each model's `forward` adds its head.
    """

    config: DLFAConfig
    config_class = DLFAConfig
    supports_gradient_checkpointing = True
    # Read on the class by transformers (`is_backend_compatible`), so it cannot follow the family: DeBERTa-v2's own
    # class does not declare it.
    _supports_attention_backend = True

    def encoder_class(self) -> type[PreTrainedModel]:
        """The family's base model class (`BertModel`, `XLMRobertaModel`, ...), by `config.encoder_family`."""
        encoder_config, config_class = self.config.encoder_config, CONFIG_MAPPING[self.config.encoder_family]
        # A `DLFABertConfig` is its own encoder config (a `BertConfig`); any other must be the family's own config
        # class, the one transformers maps to the family's base model.
        if encoder_config is not self.config and type(encoder_config) is not config_class:
            raise ValueError(
                f"encoder_config is a {type(encoder_config).__name__}, which has no base model in transformers' "
                f"AutoModel mapping: give the family's own config class ({config_class.__name__})"
            )
        return MODEL_MAPPING[config_class]

    # Attention runs inside the encoder: the implementations this model supports are its encoder class's (DeBERTa-v2:
    # eager only), checked at loading and in `set_attn_implementation` as for the family's own model.
    _supports_sdpa = EncoderClassFlag()
    _supports_flash_attn = EncoderClassFlag()
    _supports_flex_attn = EncoderClassFlag()

    def __init__(self, config: DLFAConfig | DLFABertConfig, *inputs: Any, **kwargs: Any):
        super().__init__(config, *inputs, **kwargs)
        # The config checks its fields when it is made, but a field set afterwards (`config.fusion_layer = 0`) is not.
        config.validate_dlfa_fields()

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any) -> "DLFAPreTrainedModel | tuple[DLFAPreTrainedModel, dict]":
        """
        As [`PreTrainedModel.from_pretrained`], except that a new sequence head on an encoder's own checkpoint (one
        without this model's fusion weights) starts its pooling as the family's own `...ForSequenceClassification`
        does (`start_pooling_as_the_family_does`).
        """
        output_loading_info = kwargs.pop("output_loading_info", False)
        model, loading_info = super().from_pretrained(*args, output_loading_info=True, **kwargs)
        model.start_pooling_as_the_family_does(loading_info)
        return (model, loading_info) if output_loading_info else model

    def start_pooling_as_the_family_does(self, loading_info: dict[str, set]) -> None:
        """
        After loading an encoder's own checkpoint into a model with a sequence pooling ([`DLFAPooler`] as `pooler`):
        where the family's own sequence head keeps its pooling somewhere other than the checkpoint's pooler (RoBERTa
        and XLM-R start `classifier.dense` fresh; `EncoderFamily.stock_sequence_head`), the pooling's dense layer,
        which transformers filled from the checkpoint's `pooler.dense` (same name), starts fresh too, initialised by
        `_init_weights`; `loading_info` then reports it missing and the checkpoint's pooler unexpected, as the
        family's own head's report does. A DLFA checkpoint (its fusion weights loaded) keeps its trained pooling.
        """
        pooler, missing = getattr(self, "pooler", None), loading_info["missing_keys"]
        stock_pooling = self.config.family_setting("stock_sequence_head")[0]
        keeps_checkpoint_pooler = stock_pooling.removeprefix(f"{self.base_model_prefix}.") == "pooler.dense"
        if not isinstance(pooler, DLFAPooler) or keeps_checkpoint_pooler:
            return
        fusion_keys = {key for key in self.state_dict() if key.startswith(("fusion.", "fusions."))}
        pooler_keys = {f"pooler.dense.{name}" for name, _ in pooler.dense.named_parameters()}
        if not fusion_keys <= missing or pooler_keys <= missing:  # a DLFA checkpoint, or no pooler in the checkpoint
            return
        loaded = pooler.dense.weight
        pooler.dense = nn.Linear(*loaded.shape[::-1], device=loaded.device, dtype=loaded.dtype)
        self._init_weights(pooler.dense)
        loading_info["missing_keys"] |= pooler_keys
        loading_info["unexpected_keys"] |= pooler_keys
        logger.warning(
            "%s: %s newly initialised, as the family's own sequence head starts %s; the checkpoint's pooler is unused",
            type(self).__name__, ", ".join(sorted(pooler_keys)), stock_pooling,
        )  # fmt: skip

    def _init_weights(self, module: nn.Module) -> None:
        """Initialize the weights of the fusion block and the head; the encoder's own class initialises its own."""
        super()._init_weights(module)
        init_fusion_weights(module)

    def add_encoder_and_fusion(self, pooler: DLFAPooler | None = None) -> None:
        """
        Add the encoder family's base model (`add_encoder`), the sequence pooling `pooler` where given, and the fusion
        block as `fusion`, and initialise them (`post_init`) before the caller adds its head.

        The order is the one in which the plugin built and initialised these modules before its classes became one
        hierarchy (cf86106's `DLFABertModel`, inside each head: modules created, the encoder's, pooler's and fusion's
        weights drawn, then the head's), so that a seed still gives the same initial weights, and the runs they gave:
        built from a config, every draw of the random generator comes in the same place, and loaded from a
        checkpoint, transformers initialises the weights it lacks in the same module order (pooler before fusion).
        """
        # Created before the encoder, whose own `post_init` draws its weights at once: the draws of their creation
        # then come before the encoder's, as in cf86106.
        fusion = FUSION_CLASSES[self.config.fusion_method](self.config)
        self.add_encoder()
        if pooler is not None:
            self.pooler = pooler
        self.fusion = fusion
        # Each head calls `post_init` again once its head is added: it skips the modules this call marked initialised,
        # so it draws only the head's weights, after these; that order gives cf86106's initial weights
        # (`test_a_seed_gives_the_initial_weights_it_gave_at_cf86106`). On the meta device (loading) neither draws.
        self.post_init()

    def add_encoder(self) -> None:
        """Add the encoder family's base model under its `base_model_prefix`, as the family's own heads build it."""
        # `encoder_config` is the family's own config, or for `DLFABertConfig` (a BERT config) the model's own.
        encoder = self.encoder_class()(self.config.encoder_config, **self.config.family_setting("base_model_kwargs"))
        # Read from this instance by transformers' loading, which adds or strips it per checkpoint key.
        self.base_model_prefix = encoder.base_model_prefix
        self.add_module(self.base_model_prefix, encoder)

    def encode(
        self,
        layers: set[int],
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[tuple[torch.Tensor | None, ...], torch.Tensor, BaseModelOutput]:
        r"""
        Checks the inputs, then runs the encoder as the family's own model does (its own embeddings, position ids,
        attention masks and layers), computing the hidden states of `layers` (indices of `hidden_states`) and those
        `output_hidden_states` asks for.

        Takes the inputs of the family's base model (`(batch_size, sequence_length)` ids and masks, or
        `inputs_embeds` of shape `(batch_size, sequence_length, embedding_size)`: exactly one of the two); those not
        given are not passed, as DistilBERT's forward has no `token_type_ids`. Returns the encoder's hidden states
        (`num_hidden_layers + 1` entries of shape `(batch_size, sequence_length, hidden_size)`, those of `layers`
        computed), the padding mask `(batch_size, sequence_length)` (bool, True on real tokens), and
        [`BaseModelOutput`] whose `hidden_states` and `attentions` are what the family's own base model returns for
        the same `output_hidden_states` (True, or a list of indices: those states and None for the others,
        transformers >= 5.24) and `output_attentions`.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")
        # The mask is checked before the encoder runs: a mask of another shape is refused before any work.
        padding_mask = padding_mask_of(attention_mask, input_ids if input_ids is not None else inputs_embeds)
        output_hidden_states = kwargs.pop("output_hidden_states", None)
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        output_attentions = kwargs.pop("output_attentions", None)
        if output_attentions is None:  # the encoder reads its own config, not this model's
            output_attentions = self.config.output_attentions
        num_states = self.config.num_hidden_layers + 1
        requested = requested_hidden_states(output_hidden_states, num_states)
        inputs = {"input_ids": input_ids, "token_type_ids": token_type_ids, "position_ids": position_ids}
        # Given indices, transformers' output capture keeps only those hidden states (transformers >= 5.24; earlier
        # releases, and DeBERTa-v2, which always computes them, return all): `layers` and the requested ones.
        encoder_outputs = run_encoder(
            self.base_model,
            **inputs,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            output_hidden_states=True if requested >= set(range(num_states)) else sorted(requested | layers),
            output_attentions=output_attentions,
            **kwargs,
        )
        hidden_states = encoder_outputs.hidden_states
        returned = returned_hidden_states(self.base_model, hidden_states, requested, layers) if requested else None
        outputs = BaseModelOutput(
            last_hidden_state=encoder_outputs.last_hidden_state,
            hidden_states=returned,
            attentions=encoder_outputs.attentions,
        )
        return hidden_states, padding_mask, outputs

    def encode_and_fuse(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutput:
        r"""
        Runs the encoder (`encode`, on the same inputs) and fuses the layers `fusion.input_layers` of its
        `hidden_states`. Returns [`BaseModelOutput`] with the fused states `(batch_size, sequence_length,
        hidden_size)` as `last_hidden_state`, and the encoder's `hidden_states` and `attentions` as `encode` returns
        them.
        """
        input_layers = self.fusion.input_layers
        hidden_states, padding_mask, encoder_outputs = self.encode(
            set(input_layers), input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, **kwargs
        )
        fused_states = self.fusion(*(hidden_states[index] for index in input_layers), padding_mask=padding_mask)
        return BaseModelOutput(
            last_hidden_state=fused_states,
            hidden_states=encoder_outputs.hidden_states,
            attentions=encoder_outputs.attentions,
        )


class DLFAModel(DLFAPreTrainedModel):
    """
    An encoder of any family of `ENCODER_FAMILIES` whose output is the AIF fusion of layer `config.fusion_layer` with
    the last layer (or, with `config.fusion_method`, one of the peer fusions kept for comparison).

    Outputs ([`BaseModelOutput`]): `last_hidden_state` `(batch, seq_len, hidden_size)` is the fused sequence;
    `hidden_states` and `attentions`, when asked for, are the encoder's own, as in the family's base model (so
    `hidden_states[-1]` is the unfused last layer).
    """

    def __init__(self, config: DLFAConfig):
        super().__init__(config)
        self.add_encoder_and_fusion()  # ends in `post_init`: this model adds no head

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[torch.Tensor] | BaseModelOutput:
        r"""
        input_ids, token_type_ids, position_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
            As in the family's base model (DistilBERT takes no `token_type_ids`).
        attention_mask (`torch.Tensor` of shape `(batch_size, sequence_length)`, *optional*):
            1 on real tokens, 0 on padding. Besides masking attention, it keeps padding out of the AIF global mean
            and of the AIF normalisation statistics, so padding never changes the outputs of real tokens.
        inputs_embeds (`torch.Tensor` of shape `(batch_size, sequence_length, embedding_size)`, *optional*):
            Embedded tokens instead of `input_ids`.
        """
        return self.encode_and_fuse(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, **kwargs)


class DLFAForTokenClassification(DLFAPreTrainedModel):
    """
    DLFA on any encoder family with a linear tagging head on the fused states (NER, POS), as the family's own
    `...ForTokenClassification` (its dropout). `DLFAForTokenClassification.from_pretrained(stock_folder,
    fusion_layer=8, num_labels=17)` keeps every encoder weight of a stock checkpoint of the family.
    """

    def __init__(self, config: DLFAConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.add_encoder_and_fusion()
        self.dropout = nn.Dropout(config.family_setting("token_dropout"))
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[torch.Tensor] | TokenClassifierOutput:
        r"""
        Inputs as in [`DLFAModel`].

        labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
            Tag ids in `[0, config.num_labels - 1]`; -100 marks tokens left out of the loss.
        num_items_in_batch (`int` or `torch.Tensor`, *optional*):
            Passed by `Trainer`: the number of labelled tokens in the whole accumulated batch. The loss is then the
            sum over this micro-batch divided by it, so gradient accumulation matches one large batch.

        Returns [`TokenClassifierOutput`] with `logits` of shape `(batch_size, sequence_length, num_labels)`.
        """
        outputs = self.encode_and_fuse(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, **kwargs
        )
        logits = self.classifier(self.dropout(outputs.last_hidden_state))

        loss = None
        if labels is not None:
            loss = ForTokenClassification(logits, labels, self.config, num_items_in_batch=num_items_in_batch)

        return TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )

    def save_pretrained(self, *args, **kwargs):
        """
        As [`PreTrainedModel.save_pretrained`]; the folder's config also names `pipeline_dlfa.py` (copied with this
        file) as its token-classification pipeline, so that `pipeline("token-classification", model=<folder>,
        trust_remote_code=True)` tags whole words, read from the piece `config.label_alignment` says was trained.
        """
        self.config.custom_pipelines = {**(getattr(self.config, "custom_pipelines", None) or {}), **WORD_PIPELINES}
        return super().save_pretrained(*args, **kwargs)


class DLFAForSequenceClassification(DLFAPreTrainedModel):
    """
    DLFA on any encoder family with a classification or regression head on the family's pooling of the fused first
    token ([`DLFAPooler`]), then dropout and a linear classifier (single-label, multi-label and regression).
    """

    def __init__(self, config: DLFAConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.add_encoder_and_fusion(pooler=DLFAPooler(config))
        self.dropout = nn.Dropout(config.family_setting("sequence_dropout"))
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[torch.Tensor] | SequenceClassifierOutput:
        r"""
        Inputs as in [`DLFAModel`].

        labels (`torch.Tensor` of shape `(batch_size,)` or `(batch_size, num_labels)`, *optional*):
            Class ids in `[0, config.num_labels - 1]` (single-label), float targets (regression when
            `num_labels == 1`), or float 0/1 rows (multi-label), as in [`BertForSequenceClassification`].
        num_items_in_batch (`int` or `torch.Tensor`, *optional*):
            Passed by `Trainer`: the number of label entries in the whole accumulated batch; see
            [`sequence_classification_loss`].

        Returns [`SequenceClassifierOutput`] with `logits` of shape `(batch_size, num_labels)`.
        """
        outputs = self.encode_and_fuse(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, **kwargs
        )
        logits = self.classifier(self.dropout(self.pooler(outputs.last_hidden_state)))

        loss = None
        if labels is not None:
            loss = sequence_classification_loss(logits, labels, self.config, num_items_in_batch)

        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


# The BERT entry of the same classes, under the names and the `model_type` (`dlfa_bert`) of the design card: a
# `DLFABertConfig` is a BERT config with the DLFA fields, and these classes build, run and save exactly what the
# classes above do for a `DLFAConfig` of a BERT encoder (`bert.*`, `fusion.*`, `pooler.*`, `classifier.*`).
class DLFABertPreTrainedModel(DLFAPreTrainedModel):
    """[`DLFAPreTrainedModel`] with a [`DLFABertConfig`]."""

    config: DLFABertConfig
    config_class = DLFABertConfig


class DLFABertModel(DLFABertPreTrainedModel, DLFAModel):
    """[`DLFAModel`] on a BERT encoder, with a [`DLFABertConfig`]."""


class DLFABertForTokenClassification(DLFABertPreTrainedModel, DLFAForTokenClassification):
    """[`DLFAForTokenClassification`] on a BERT encoder, with a [`DLFABertConfig`] (as [`BertForTokenClassification`])."""


class DLFABertForSequenceClassification(DLFABertPreTrainedModel, DLFAForSequenceClassification):
    """
    [`DLFAForSequenceClassification`] on a BERT encoder, with a [`DLFABertConfig`]: BERT's pooler (dense, tanh) on
    the fused [CLS] state, as [`BertForSequenceClassification`].
    """


__all__ = [
    "DLFABertForSequenceClassification",
    "DLFABertForTokenClassification",
    "DLFABertModel",
    "DLFABertPreTrainedModel",
    "DLFAForSequenceClassification",
    "DLFAForTokenClassification",
    "DLFAModel",
    "DLFAPooler",
    "DLFAPreTrainedModel",
]
