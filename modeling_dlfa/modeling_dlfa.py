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
"""PyTorch DLFA: Double Layers Feature Aggregation (Chen, Guo, Liu, Tao, ICPR 2022, arXiv 2205.08497) on BERT
(`DLFABert*`) and on any encoder family of `ENCODER_FAMILIES` (`DLFA*`: RoBERTa, XLM-R, DeBERTa-v2, DistilBERT,
ELECTRA, BERT).

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
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import MODEL_MAPPING, AutoModel, AutoModelForSequenceClassification, AutoModelForTokenClassification
from transformers.activations import ACT2FN
from transformers.loss.loss_utils import ForTokenClassification, fixed_cross_entropy
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_outputs import (
    BaseModelOutput,
    BaseModelOutputWithPooling,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from transformers.modeling_utils import PreTrainedModel
from transformers.models.bert.configuration_bert import BertConfig
from transformers.models.bert.modeling_bert import (
    BertEmbeddings,
    BertEncoder,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    BertPooler,
    BertPreTrainedModel,
)
from transformers.processing_utils import Unpack
from transformers.utils import ModelOutput, TransformersKwargs, logging
from transformers.utils.generic import can_return_tuple
from transformers.utils.output_capturing import capture_outputs

from .configuration_dlfa import DLFABertConfig, DLFAConfig, DLFAFusionConfig
from .fusion_dlfa import FUSION_CLASSES, AIFBlock, ConcatenationFusion, ScalarMix, init_fusion_weights
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


class DLFABertPreTrainedModel(BertPreTrainedModel):
    config: DLFABertConfig
    config_class = DLFABertConfig

    def __init__(self, config: DLFABertConfig, *inputs: Any, **kwargs: Any):
        super().__init__(config, *inputs, **kwargs)
        # The config checks its fields when it is made, but a field set afterwards (`config.fusion_layer = 0`) is not.
        config.validate_dlfa_fields()

    def _init_weights(self, module: nn.Module) -> None:
        """Initialize the weights; the AIF branches end in a zero-scaled norm so the gate starts at `aif_gate_init`."""
        super()._init_weights(module)
        init_fusion_weights(module)


class DLFABertModel(DLFABertPreTrainedModel):
    """
    BERT encoder whose output is the AIF fusion of layer `config.fusion_layer` with the last layer (or, with
    `config.fusion_method`, one of the peer fusions kept for comparison).

    Outputs ([`BaseModelOutputWithPooling`]): `last_hidden_state` `(batch, seq_len, hidden_size)` is the fused
    sequence, `pooler_output` `(batch, hidden_size)` the BERT pooler applied to the fused [CLS] state;
    `hidden_states` and `attentions`, when asked for, are the encoder's own, as in [`BertModel`] (so
    `hidden_states[-1]` is the unfused last layer).
    """

    _no_split_modules = ["BertEmbeddings", "BertLayer"]

    def __init__(self, config: DLFABertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        self.fusion = FUSION_CLASSES[config.fusion_method](config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    @capture_outputs(tie_last_hidden_states=False)
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[torch.Tensor] | BaseModelOutputWithPooling:
        r"""
        input_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
            Token ids; give exactly one of `input_ids` and `inputs_embeds`.
        attention_mask (`torch.Tensor` of shape `(batch_size, sequence_length)`, *optional*):
            1 on real tokens, 0 on padding. Besides masking attention, it keeps padding out of the AIF global mean
            and of the AIF normalisation statistics, so padding never changes the outputs of real tokens.
        token_type_ids, position_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
            As in [`BertModel`].
        inputs_embeds (`torch.Tensor` of shape `(batch_size, sequence_length, hidden_size)`, *optional*):
            Embedded tokens instead of `input_ids`.
        """
        if (input_ids is None) ^ (inputs_embeds is not None):
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")
        embedding_output = self.embeddings(
            input_ids=input_ids,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
        )
        padding_mask = padding_mask_of(attention_mask, embedding_output)
        encoder_attention_mask = create_bidirectional_mask(
            config=self.config, inputs_embeds=embedding_output, attention_mask=attention_mask
        )

        # The layers run here rather than through `BertEncoder.forward` so that the states the fusion reads are kept
        # without recording every hidden state; output capture (hidden_states, attentions) still hooks each layer.
        hidden_states = embedding_output
        kept_states = {0: embedding_output}
        for layer_number, layer in enumerate(self.encoder.layer, start=1):
            hidden_states = layer(hidden_states, encoder_attention_mask, position_ids=position_ids, **kwargs)
            if layer_number in self.fusion.input_layers:
                kept_states[layer_number] = hidden_states

        fusion_inputs = [kept_states[index] for index in self.fusion.input_layers]
        fused_states = self.fusion(*fusion_inputs, padding_mask=padding_mask)
        pooled_output = self.pooler(fused_states) if self.pooler is not None else None
        return BaseModelOutputWithPooling(last_hidden_state=fused_states, pooler_output=pooled_output)


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


class DLFATokenClassificationHead:
    """
    The forward and `save_pretrained` of DLFA's tagging heads, on the BERT classes and on the encoder families: a
    linear tagging head (`dropout`, `classifier`) on the fused states, which the model's `fused_outputs` computes.
    """

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
        labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
            Tag ids in `[0, config.num_labels - 1]`; -100 marks tokens left out of the loss.
        num_items_in_batch (`int` or `torch.Tensor`, *optional*):
            Passed by `Trainer`: the number of labelled tokens in the whole accumulated batch. The loss is then the
            sum over this micro-batch divided by it, so gradient accumulation matches one large batch.

        Returns [`TokenClassifierOutput`] with `logits` of shape `(batch_size, sequence_length, num_labels)`.
        """
        outputs = self.fused_outputs(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            **kwargs,
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


class DLFASequenceClassificationHead:
    """
    The forward of DLFA's sequence heads, on the BERT classes and on the encoder families: a classification or
    regression head (`dropout`, `classifier`) on the `pooler_output` of the model's `fused_outputs`, the family's
    pooling of the fused first token (single-label, multi-label and regression problem types).
    """

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
        labels (`torch.Tensor` of shape `(batch_size,)` or `(batch_size, num_labels)`, *optional*):
            Class ids in `[0, config.num_labels - 1]` (single-label), float targets (regression when
            `num_labels == 1`), or float 0/1 rows (multi-label), as in [`BertForSequenceClassification`].
        num_items_in_batch (`int` or `torch.Tensor`, *optional*):
            Passed by `Trainer`: the number of label entries in the whole accumulated batch; see
            [`sequence_classification_loss`].

        Returns [`SequenceClassifierOutput`] with `logits` of shape `(batch_size, num_labels)`.
        """
        outputs = self.fused_outputs(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            **kwargs,
        )
        logits = self.classifier(self.dropout(outputs.pooler_output))

        loss = None
        if labels is not None:
            loss = sequence_classification_loss(logits, labels, self.config, num_items_in_batch)

        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class DLFABertForTokenClassification(DLFATokenClassificationHead, DLFABertPreTrainedModel):
    """DLFA-BERT with a linear tagging head on the fused states (NER, POS), as [`BertForTokenClassification`]."""

    def __init__(self, config: DLFABertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = DLFABertModel(config, add_pooling_layer=False)
        classifier_dropout = (
            config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        )
        self.dropout = nn.Dropout(classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def fused_outputs(self, input_ids: torch.Tensor | None = None, **kwargs) -> BaseModelOutputWithPooling:
        """[`DLFABertModel`]'s outputs: the fused states."""
        return self.bert(input_ids, return_dict=True, **kwargs)


class DLFABertForSequenceClassification(DLFASequenceClassificationHead, DLFABertPreTrainedModel):
    """
    DLFA-BERT with a classification or regression head on the pooled fused [CLS] state (XNLI, PAWS-X), as
    [`BertForSequenceClassification`] (single-label, multi-label and regression problem types).
    """

    def __init__(self, config: DLFABertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = DLFABertModel(config)
        classifier_dropout = (
            config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        )
        self.dropout = nn.Dropout(classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def fused_outputs(self, input_ids: torch.Tensor | None = None, **kwargs) -> BaseModelOutputWithPooling:
        """[`DLFABertModel`]'s outputs: the fused states and the BERT pooler on the fused [CLS] state."""
        return self.bert(input_ids, return_dict=True, **kwargs)


@dataclass
class LayerSearchOutput(ModelOutput):
    r"""
    loss (`torch.FloatTensor` of shape `()`, *optional*):
        The mean of the heads' losses, when `labels` are given.
    logits (`torch.FloatTensor`):
        Every head's logits, heads in `config.search_heads` order: `(batch_size, sequence_length, num_heads,
        num_labels)` for tagging, `(batch_size, num_heads, num_labels)` for sequence classification.
    head_losses (`torch.FloatTensor` of shape `(num_heads,)`, *optional*):
        Each head's loss, when `labels` are given.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    head_losses: torch.FloatTensor | None = None


SEARCH_FIELDS = ("search_layers", "search_problem", "search_heads")  # a search's config fields, not its heads'


class LayerSearchHeads:
    """
    The heads of a one-pass fusion-layer search, shared by [`DLFABertForLayerSearch`] and [`DLFAForLayerSearch`]: a
    fusion block and a classifier for every candidate layer of `config.search_layers`, and a classifier on the last
    layer (`"last"`), trained together on the mean of their losses. A subclass calls `check_search`, builds its
    encoder (its `base_model`), calls `add_search_heads` and says which module pools sequence heads
    (`sequence_pooler`); `forward` is shared.

    Config fields: `search_layers` (candidate layers, each in `1 .. num_hidden_layers - 1`) and `search_problem`
    (`"token"` or `"sequence"`); `search_heads` (the heads' names, in logits order) is written here.
    """

    def check_search(self) -> str:
        """
        Check `config.search_layers` and `config.search_problem` (a ValueError names a bad one) before anything is
        built, and keep the problem as `search_problem`, which it returns.
        """
        config = self.config
        layers = list(getattr(config, "search_layers", None) or [])
        problem = getattr(config, "search_problem", "token")
        if not layers or any(not 1 <= layer <= config.num_hidden_layers - 1 for layer in layers):
            raise ValueError(f"search_layers={layers!r}: give one or more layers in 1..{config.num_hidden_layers - 1}")
        if problem not in ("token", "sequence"):
            raise ValueError(f"search_problem={problem!r} is not supported: choose 'token' or 'sequence'.")
        self.search_problem = problem
        return problem

    def add_search_heads(self, dropout: float) -> None:
        """
        Add the heads for `config.search_layers` (checked by `check_search`): `fusions`, `classifiers`, and `dropout`
        before each classifier.
        """
        config = self.config
        layers = list(config.search_layers)
        self.dropout = nn.Dropout(dropout)
        self.fusions = nn.ModuleDict(
            {str(layer): FUSION_CLASSES[config.fusion_method](self.head_config(layer)) for layer in layers}
        )
        self.classifiers = nn.ModuleDict(
            {name: nn.Linear(config.hidden_size, config.num_labels) for name in [*map(str, layers), "last"]}
        )
        config.search_heads = [*map(str, layers), "last"]
        self.head_loss_sums, self.head_loss_count = [0.0] * len(config.search_heads), 0  # plain floats: no device

    def head_fields(self) -> dict[str, Any]:
        """The search's config fields that an exported head keeps: all but the search's own and its class names."""
        dropped = (*SEARCH_FIELDS, "architectures", "auto_map")
        return {key: value for key, value in self.config.to_dict().items() if key not in dropped}

    def head_config(self, layer: int) -> DLFAFusionConfig:
        """The configuration of the DLFA model of the head of `layer`: the search's, without its search fields."""
        return type(self.config).from_dict({**self.head_fields(), "fusion_layer": layer})

    def search_outputs(
        self,
        hidden_states: tuple[torch.Tensor, ...],
        padding_mask: torch.Tensor,
        pool: nn.Module | None,
        labels: torch.Tensor | None,
        num_items_in_batch: torch.Tensor | int | None,
    ) -> LayerSearchOutput:
        """
        Every head's logits on the encoder's `hidden_states` (`num_hidden_layers + 1` tensors of shape `(batch,
        seq_len, hidden_size)`), `padding_mask` `(batch, seq_len)` (True on real tokens); `pool` turns states into
        `(batch, hidden_size)` for sequence heads (None: tagging).
        """
        logits = []
        for name in self.config.search_heads:
            if name == "last":
                states = hidden_states[-1]
            else:
                fusion = self.fusions[name]
                states = fusion(*(hidden_states[index] for index in fusion.input_layers), padding_mask=padding_mask)
            features = pool(states) if pool is not None else states
            logits.append(self.classifiers[name](self.dropout(features)))
        stacked = torch.stack(logits, dim=-2)  # heads before the label axis: batch (and positions) stay in front

        loss = head_losses = None
        if labels is not None:
            if self.search_problem == "token":
                losses = [
                    ForTokenClassification(head_logits, labels, self.config, num_items_in_batch=num_items_in_batch)
                    for head_logits in logits
                ]
            else:
                losses = [
                    sequence_classification_loss(head_logits, labels, self.config, num_items_in_batch)
                    for head_logits in logits
                ]
            head_losses = torch.stack(losses)
            loss = head_losses.mean()
            if self.training:  # running sums for logging (`head_loss_means`), as the Trainer logs only `loss`
                values = head_losses.detach().float().cpu().tolist()
                self.head_loss_sums = [total + value for total, value in zip(self.head_loss_sums, values)]
                self.head_loss_count += 1
        return LayerSearchOutput(loss=loss, logits=stacked, head_losses=head_losses)

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
    ) -> tuple[torch.Tensor] | LayerSearchOutput:
        r"""
        Inputs as in the encoder family's base model; labels, num_items_in_batch as in the DLFA token or sequence
        classifiers: every head is scored against the same labels. Sequence heads pool through `sequence_pooler()`.

        Returns [`LayerSearchOutput`].
        """
        kwargs.pop("output_hidden_states", None)
        outputs = run_encoder(
            self.base_model,
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_hidden_states=True,
            **kwargs,
        )
        padding_mask = padding_mask_of(attention_mask, outputs.last_hidden_state)
        pool = self.sequence_pooler() if self.search_problem == "sequence" else None
        return self.search_outputs(outputs.hidden_states, padding_mask, pool, labels, num_items_in_batch)

    def head_loss_means(self, reset: bool = True) -> dict[str, float]:
        """Each head's mean training loss since the last call (empty before the first training step)."""
        if not self.head_loss_count:
            return {}
        means = {
            head: total / self.head_loss_count for head, total in zip(self.config.search_heads, self.head_loss_sums)
        }
        if reset:
            self.head_loss_sums, self.head_loss_count = [0.0] * len(self.config.search_heads), 0
        return means

    def export_state(
        self, name: str, fusion_key: str = "fusion", classifier_key: str = "classifier", pooler_key: str | None = None
    ) -> dict[str, torch.Tensor]:
        """
        The weights of the head `name` (checked to be one of `config.search_heads`) as an ordinary model keeps them:
        the encoder under its `base_model_prefix`, the head's fusion block under `fusion_key` (a DLFA head), its
        classifier under `classifier_key`, and the dense layer of `sequence_pooler()` under `pooler_key` if given.
        """
        if name not in self.config.search_heads:
            raise ValueError(f"no head {name!r}: the heads are {self.config.search_heads}")
        prefix = self.base_model_prefix
        state = {f"{prefix}.{key}": value for key, value in self.base_model.state_dict().items()}
        if name != "last":
            state.update({f"{fusion_key}.{key}": value for key, value in self.fusions[name].state_dict().items()})
        state.update({f"{classifier_key}.{key}": value for key, value in self.classifiers[name].state_dict().items()})
        if pooler_key:
            pooler = self.sequence_pooler().dense.state_dict()
            state.update({f"{pooler_key}.{key}": value for key, value in pooler.items()})
        return state


class DLFABertForLayerSearch(LayerSearchHeads, DLFABertPreTrainedModel):
    """
    One-pass fusion-layer search on a BERT encoder ([`LayerSearchHeads`]): every head is evaluated in one forward
    pass; `export_head` turns the chosen one into an ordinary [`DLFABertForTokenClassification`] /
    [`DLFABertForSequenceClassification`] (or the stock BERT head, for `"last"`) with the encoder as trained.
    Sequence heads share the encoder's pooler.
    """

    def __init__(self, config: DLFABertConfig):
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=self.check_search() == "sequence")
        classifier_dropout = (
            config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        )
        self.add_search_heads(classifier_dropout)
        self.post_init()

    def sequence_pooler(self) -> nn.Module:
        """The pooling of the sequence heads: the encoder's own pooler."""
        return self.bert.pooler

    def export_head(self, name: str) -> PreTrainedModel:
        """
        The head `name` (a layer of `config.search_layers` as a string, or `"last"`) as an ordinary model with the
        encoder as trained: a DLFA tagger/classifier, or for `"last"` the stock BERT head.
        """
        state = self.export_state(name, fusion_key="bert.fusion")
        token = self.search_problem == "token"
        if name == "last":
            model_class = BertForTokenClassification if token else BertForSequenceClassification
            config = BertConfig.from_dict({**self.head_fields(), "model_type": "bert"})
        else:
            model_class = DLFABertForTokenClassification if token else DLFABertForSequenceClassification
            config = self.head_config(int(name))
        exported = model_class(config)
        exported.load_state_dict(state, strict=True)
        return exported.eval()


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
    DLFA on an encoder family of `ENCODER_FAMILIES`. Every DLFA model holds the family's own base model (built by
    `AutoModel.from_config(config.encoder_config)`, the transformers class itself) under the family's
    `base_model_prefix` (`bert`, `roberta`, `deberta`, `distilbert`, `electra`), beside the fusion block `fusion`
    and its head. Its weights are thus keyed as in the family's own checkpoints: transformers' loading adds or strips
    that prefix per key, so a stock base-model folder (keys without prefix) or head folder (`roberta.*`, ...) fills
    the encoder, and only the fusion block and the head are new.
    """

    config: DLFAConfig
    config_class = DLFAConfig
    supports_gradient_checkpointing = True
    # Read on the class by transformers (`is_backend_compatible`), so it cannot follow the family: DeBERTa-v2's own
    # class does not declare it.
    _supports_attention_backend = True

    def encoder_class(self) -> type[PreTrainedModel]:
        """The family's base model class, as `AutoModel.from_config(self.config.encoder_config)` builds it."""
        config_class = type(self.config.encoder_config)
        if config_class not in MODEL_MAPPING:
            raise ValueError(
                f"encoder_config is a {config_class.__name__}, which has no base model in transformers' AutoModel "
                "mapping: give the family's own config class"
            )
        return MODEL_MAPPING[config_class]

    # Attention runs inside the encoder: the implementations this model supports are its encoder class's (DeBERTa-v2:
    # eager only), checked at loading and in `set_attn_implementation` as for the family's own model.
    _supports_sdpa = EncoderClassFlag()
    _supports_flash_attn = EncoderClassFlag()
    _supports_flex_attn = EncoderClassFlag()

    def __init__(self, config: DLFAConfig, *inputs: Any, **kwargs: Any):
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

    def add_encoder_and_fusion(self) -> None:
        """Add the encoder family's base model (`add_encoder`), and the fusion block as `fusion`."""
        self.add_encoder()
        self.fusion = FUSION_CLASSES[self.config.fusion_method](self.config)

    def add_encoder(self) -> None:
        """Add the encoder family's base model under its `base_model_prefix`."""
        encoder = AutoModel.from_config(self.config.encoder_config, **self.config.family_setting("base_model_kwargs"))
        # Read from this instance by transformers' loading, which adds or strips it per checkpoint key.
        self.base_model_prefix = encoder.base_model_prefix
        self.add_module(self.base_model_prefix, encoder)

    def fused_outputs(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutput:
        r"""
        Runs the encoder as the family's own model does (its own embeddings, position ids, attention masks and
        layers) and fuses the layers `fusion.input_layers` of its `hidden_states`.

        Takes the inputs of the family's base model (`(batch_size, sequence_length)` ids and masks, or
        `inputs_embeds` of shape `(batch_size, sequence_length, embedding_size)`); those not given are not passed,
        as DistilBERT's forward has no `token_type_ids`. Returns [`BaseModelOutput`] with the fused states
        `(batch_size, sequence_length, hidden_size)` as `last_hidden_state`; `hidden_states` and `attentions` are
        what the family's own base model returns for the same `output_hidden_states` (True, or a list of indices:
        those states and None for the others, transformers >= 5.24) and `output_attentions`.
        """
        output_hidden_states = kwargs.pop("output_hidden_states", None)
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        output_attentions = kwargs.pop("output_attentions", None)
        if output_attentions is None:  # the encoder reads its own config, not this model's
            output_attentions = self.config.output_attentions
        num_states, fused_layers = self.config.num_hidden_layers + 1, set(self.fusion.input_layers)
        requested = requested_hidden_states(output_hidden_states, num_states)
        inputs = {"input_ids": input_ids, "token_type_ids": token_type_ids, "position_ids": position_ids}
        # Given indices, transformers' output capture keeps only those hidden states (transformers >= 5.24; earlier
        # releases, and DeBERTa-v2, which always computes them, return all): the fused layers and the requested ones.
        encoder_outputs = run_encoder(
            self.base_model,
            **inputs,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            output_hidden_states=True if requested >= set(range(num_states)) else sorted(requested | fused_layers),
            output_attentions=output_attentions,
            **kwargs,
        )
        hidden_states = encoder_outputs.hidden_states
        padding_mask = padding_mask_of(attention_mask, encoder_outputs.last_hidden_state)
        fused_states = self.fusion(
            *(hidden_states[index] for index in self.fusion.input_layers), padding_mask=padding_mask
        )
        return BaseModelOutput(
            last_hidden_state=fused_states,
            hidden_states=(
                returned_hidden_states(self.base_model, hidden_states, requested, fused_layers) if requested else None
            ),
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
        self.add_encoder_and_fusion()
        self.post_init()

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
        return self.fused_outputs(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            **kwargs,
        )


class DLFAForTokenClassification(DLFATokenClassificationHead, DLFAPreTrainedModel):
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


class DLFAForSequenceClassification(DLFASequenceClassificationHead, DLFAPreTrainedModel):
    """
    DLFA on any encoder family with a classification or regression head on the family's pooling of the fused first
    token ([`DLFAPooler`]), then dropout and a linear classifier (single-label, multi-label and regression).
    """

    def __init__(self, config: DLFAConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.add_encoder_and_fusion()
        self.pooler = DLFAPooler(config)
        self.dropout = nn.Dropout(config.family_setting("sequence_dropout"))
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def fused_outputs(self, *args, **kwargs) -> BaseModelOutputWithPooling:
        """[`DLFAPreTrainedModel.fused_outputs`], with the family's pooling of the fused first token."""
        outputs = super().fused_outputs(*args, **kwargs)
        return BaseModelOutputWithPooling(
            last_hidden_state=outputs.last_hidden_state,
            pooler_output=self.pooler(outputs.last_hidden_state),
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


class DLFAForLayerSearch(LayerSearchHeads, DLFAPreTrainedModel):
    """
    One-pass fusion-layer search on any encoder family of `ENCODER_FAMILIES` ([`LayerSearchHeads`]): the family's own
    base model, shared by a DLFA head per candidate layer and the last-layer head; sequence heads share one
    [`DLFAPooler`] (the family's pooling). `export_head` turns the chosen head into an ordinary
    [`DLFAForTokenClassification`] / [`DLFAForSequenceClassification`], or for `"last"` into the family's own stock
    head (`AutoModelForTokenClassification` / `AutoModelForSequenceClassification` of `encoder_config`), with the
    encoder as trained and the same logits.
    """

    def __init__(self, config: DLFAConfig):
        super().__init__(config)
        token = self.check_search() == "token"
        self.add_encoder()
        if not token:
            self.pooler = DLFAPooler(config)
        self.add_search_heads(config.family_setting("token_dropout" if token else "sequence_dropout"))
        self.post_init()

    def sequence_pooler(self) -> nn.Module:
        """The pooling of the sequence heads: the family's own, on the fused first token ([`DLFAPooler`])."""
        return self.pooler

    def export_head(self, name: str) -> PreTrainedModel:
        """
        The head `name` (a layer of `config.search_layers` as a string, or `"last"`) as an ordinary model with the
        encoder as trained: a generic DLFA tagger/classifier, or for `"last"` the family's stock head, whose pooling
        and classifier sit where `EncoderFamily.stock_sequence_head` says.
        """
        token, stock = self.search_problem == "token", name == "last"
        # The family's stock head keeps its pooling and classifier in places of its own.
        sequence_keys = self.config.family_setting("stock_sequence_head") if stock else ("pooler.dense", "classifier")
        pooler_key, classifier_key = (None, "classifier") if token else sequence_keys
        state = self.export_state(name, classifier_key=classifier_key, pooler_key=pooler_key)
        if stock:
            fields = self.head_fields()
            labels = {key: fields[key] for key in ("id2label", "label2id", "problem_type") if key in fields}
            encoder = self.config.encoder_config
            auto_class = AutoModelForTokenClassification if token else AutoModelForSequenceClassification
            exported = auto_class.from_config(type(encoder).from_dict({**encoder.to_dict(), **labels}))
        else:
            dlfa_class = DLFAForTokenClassification if token else DLFAForSequenceClassification
            exported = dlfa_class(self.head_config(int(name)))
        exported.load_state_dict(state, strict=True)
        return exported.eval()


__all__ = [
    "AIFBlock",
    "ConcatenationFusion",
    "DLFABertForLayerSearch",
    "DLFABertForSequenceClassification",
    "DLFABertForTokenClassification",
    "DLFABertModel",
    "DLFABertPreTrainedModel",
    "DLFAForLayerSearch",
    "DLFAForSequenceClassification",
    "DLFAForTokenClassification",
    "DLFAModel",
    "DLFAPreTrainedModel",
    "ScalarMix",
]
