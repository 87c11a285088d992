"""
The one-pass fusion-layer search of the harness (`--layer_search one_pass`): one encoder of any family of
`ENCODER_FAMILIES`, shared by a DLFA head per candidate layer and the last-layer head, trained together; the chosen
head is exported as an ordinary model. Not part of the plugin (never an Auto class, never saved as a checkpoint).
"""

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import (
    CONFIG_MAPPING,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    PreTrainedConfig,
    PreTrainedModel,
)
from transformers.loss.loss_utils import ForTokenClassification
from transformers.processing_utils import Unpack
from transformers.utils import ModelOutput, TransformersKwargs
from transformers.utils.generic import can_return_tuple

from modeling_dlfa.configuration_dlfa import DLFABertConfig, DLFAConfig, DLFAFusionConfig
from modeling_dlfa.fusion_dlfa import FUSION_CLASSES
from modeling_dlfa.modeling_dlfa import DLFAPooler, DLFAPreTrainedModel, sequence_classification_loss


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
    hidden_states (`tuple(torch.FloatTensor)`, *optional*):
        The encoder's hidden states, `num_hidden_layers + 1` of shape `(batch_size, sequence_length, hidden_size)`
        (None for those not asked for), when `output_hidden_states` asks for them.
    attentions (`tuple(torch.FloatTensor)`, *optional*):
        The encoder's attention weights, when `output_attentions=True`.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    head_losses: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor | None, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


SEARCH_FIELDS = ("search_layers", "search_problem", "search_heads")  # a search's config fields, not its heads'
# What an exported head's config leaves out of the search's: the search's fields and its class names.
DROPPED = (*SEARCH_FIELDS, "architectures", "auto_map")
# DLFA's own config fields (the fusion's), beside those every config has
DLFA_FIELDS = {field.name for field in dataclasses.fields(DLFAFusionConfig)} - {
    field.name for field in dataclasses.fields(PreTrainedConfig)
}


class DLFAForLayerSearch(DLFAPreTrainedModel):
    """
    One-pass fusion-layer search on any encoder family of `ENCODER_FAMILIES`: the family's own base model, shared by
    a fusion block and a classifier for every candidate layer of `config.search_layers` and a classifier on the last
    layer (`"last"`), trained together on the mean of their losses; sequence heads share one [`DLFAPooler`] (the
    family's pooling). It takes either DLFA config; `export_head` turns the chosen head into the ordinary DLFA model
    of that config (`DLFAFor*` for a `DLFAConfig`, `DLFABertFor*` for a `DLFABertConfig`), or for `"last"` into the
    family's own stock head (`BertForTokenClassification`, ...), with the encoder as trained and the same logits.

    Config fields: `search_layers` (candidate layers, each in `1 .. num_hidden_layers - 1`) and `search_problem`
    (`"token"` or `"sequence"`); `search_heads` (the heads' names, in logits order) is written here.
    """

    def __init__(self, config: DLFAConfig | DLFABertConfig):
        super().__init__(config)
        token = self.check_search() == "token"
        self.add_encoder()
        if not token:
            self.pooler = DLFAPooler(config)
        self.add_search_heads(config.family_setting("token_dropout" if token else "sequence_dropout"))
        self.post_init()

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
        return {key: value for key, value in self.config.to_dict().items() if key not in DROPPED}

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
        Inputs as in the encoder family's base model, checked as a DLFA model checks them
        ([`DLFAPreTrainedModel.encode`]); labels, num_items_in_batch as in the DLFA token or sequence classifiers:
        every head is scored against the same labels. Sequence heads pool through `pooler`.

        Returns [`LayerSearchOutput`], with the encoder's `hidden_states` and `attentions` as the family's own model
        returns them for the same `output_hidden_states` and `output_attentions`.
        """
        # The layers every head reads: each fusion's, and the last layer (the last-layer head's).
        layers = {index for fusion in self.fusions.values() for index in fusion.input_layers}
        hidden_states, padding_mask, encoder_outputs = self.encode(
            layers | {self.config.num_hidden_layers},
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, **kwargs,
        )  # fmt: skip
        pool = self.pooler if self.search_problem == "sequence" else None
        outputs = self.search_outputs(hidden_states, padding_mask, pool, labels, num_items_in_batch)
        return LayerSearchOutput(
            **outputs, hidden_states=encoder_outputs.hidden_states, attentions=encoder_outputs.attentions
        )

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
        classifier under `classifier_key`, and the dense layer of `pooler` under `pooler_key` if given.
        """
        if name not in self.config.search_heads:
            raise ValueError(f"no head {name!r}: the heads are {self.config.search_heads}")
        prefix = self.base_model_prefix
        state = {f"{prefix}.{key}": value for key, value in self.base_model.state_dict().items()}
        if name != "last":
            state.update({f"{fusion_key}.{key}": value for key, value in self.fusions[name].state_dict().items()})
        state.update({f"{classifier_key}.{key}": value for key, value in self.classifiers[name].state_dict().items()})
        if pooler_key:
            pooler = self.pooler.dense.state_dict()
            state.update({f"{pooler_key}.{key}": value for key, value in pooler.items()})
        return state

    def export_head(self, name: str) -> PreTrainedModel:
        """
        The head `name` (a layer of `config.search_layers` as a string, or `"last"`) as an ordinary model with the
        encoder as trained: the DLFA tagger/classifier of the config's class (by the Auto classes, with which the
        plugin registers both configs), or for `"last"` the family's stock head, whose pooling and classifier sit
        where `EncoderFamily.stock_sequence_head` says.
        """
        token, stock = self.search_problem == "token", name == "last"
        # The family's stock head keeps its pooling and classifier in places of its own.
        sequence_keys = self.config.family_setting("stock_sequence_head") if stock else ("pooler.dense", "classifier")
        pooler_key, classifier_key = (None, "classifier") if token else sequence_keys
        state = self.export_state(name, classifier_key=classifier_key, pooler_key=pooler_key)
        auto_class = AutoModelForTokenClassification if token else AutoModelForSequenceClassification
        exported = auto_class.from_config(self.stock_config() if stock else self.head_config(int(name)))
        exported.load_state_dict(state, strict=True)
        return exported.eval()

    def stock_config(self) -> PreTrainedConfig:
        """The config of the family's own stock head on this encoder, with the search's labels."""
        family = self.config.encoder_family
        # A DLFABertConfig is its own encoder config: DLFA's fields in a stock head's config would make it read as a
        # DLFA model (its model card among others).
        encoder_fields = {
            key: value
            for key, value in self.config.encoder_config.to_dict().items()
            if key not in DROPPED and key not in DLFA_FIELDS
        }
        fields = self.head_fields()
        labels = {key: fields[key] for key in ("id2label", "label2id", "problem_type") if key in fields}
        return CONFIG_MAPPING[family].from_dict({**encoder_fields, **labels, "model_type": family})
