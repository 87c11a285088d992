"""
DLFA on every encoder family (the generic `DLFA*` classes): each test builds tiny STOCK checkpoints of BERT, XLM-R,
RoBERTa, DeBERTa-v2 (mDeBERTa's relative attention with position buckets), DistilBERT and ELECTRA (embedding_size !=
hidden_size) from the family's own config, as a base-model folder (keys without prefix) and a pretraining-head folder
(keys `<prefix>.*`, as Hub checkpoints are saved), and checks what a user relies on: the encoder's weights are the
checkpoint's, only the fusion block and the head are new, padding changes nothing, the encoder runs exactly as the
stock model, a saved folder reloads (with and without the plugin) to the same logits, and what cannot be fused is
refused by name. A checkpoint saved by the BERT-only release (tests/fixtures) still loads unchanged.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_trainer import train_one_step
from torch import nn
from transformers import (
    AlbertConfig,
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    BertConfig,
    BertForMaskedLM,
    BertModel,
    DebertaV2Config,
    DebertaV2ForMaskedLM,
    DebertaV2Model,
    DistilBertConfig,
    DistilBertForMaskedLM,
    DistilBertModel,
    ElectraConfig,
    ElectraForPreTraining,
    ElectraModel,
    GPT2Config,
    PreTrainedConfig,
    PreTrainedModel,
    RobertaConfig,
    RobertaForMaskedLM,
    RobertaModel,
    XLMRobertaConfig,
    XLMRobertaForMaskedLM,
    XLMRobertaModel,
)
from transformers.modeling_layers import GradientCheckpointingLayer

from dlfa_tester import assert_same_hidden_states
from dlfa_zero_shot.layer_search import DLFAForLayerSearch
from modeling_dlfa import (
    DLFABertConfig,
    DLFABertForSequenceClassification,
    DLFABertForTokenClassification,
    DLFABertModel,
    DLFAConfig,
    DLFAForSequenceClassification,
    DLFAForTokenClassification,
    DLFAModel,
)
from remote_code import run_without_plugin


SHAPE = {
    "vocab_size": 99,
    "hidden_size": 32,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "intermediate_size": 37,
    "max_position_embeddings": 64,
}
NUM_LAYERS = 3
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "dlfa_bert_tagger"


@dataclass(frozen=True)
class Family:
    config: PreTrainedConfig
    base_class: type[PreTrainedModel]
    pretraining_class: type[PreTrainedModel]  # the head Hub checkpoints of the family are saved with
    prefix: str
    pooler_activation: object  # the activation of the family's own sequence-classification pooling
    no_dropout: dict = field(default_factory=lambda: {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0})
    supports_sdpa: bool = True


FAMILIES = {
    "bert": Family(BertConfig(**SHAPE), BertModel, BertForMaskedLM, "bert", torch.tanh),
    "xlm-roberta": Family(
        XLMRobertaConfig(**SHAPE, pad_token_id=1), XLMRobertaModel, XLMRobertaForMaskedLM, "roberta", torch.tanh
    ),
    "roberta": Family(RobertaConfig(**SHAPE, pad_token_id=1), RobertaModel, RobertaForMaskedLM, "roberta", torch.tanh),
    # mDeBERTa-v3's attention: relative positions in log buckets, shared keys, no absolute position embeddings.
    "deberta-v2": Family(
        DebertaV2Config(
            **SHAPE,
            relative_attention=True,
            position_buckets=8,
            norm_rel_ebd="layer_norm",
            share_att_key=True,
            pos_att_type=["p2c", "c2p"],
            position_biased_input=False,
            type_vocab_size=0,
        ),
        DebertaV2Model,
        DebertaV2ForMaskedLM,
        "deberta",
        nn.functional.gelu,
        supports_sdpa=False,
    ),
    "distilbert": Family(
        DistilBertConfig(
            vocab_size=99, dim=32, n_layers=NUM_LAYERS, n_heads=4, hidden_dim=37, max_position_embeddings=64
        ),
        DistilBertModel,
        DistilBertForMaskedLM,
        "distilbert",
        torch.relu,
        no_dropout={"dropout": 0.0, "attention_dropout": 0.0},
    ),
    "electra": Family(
        ElectraConfig(**SHAPE, embedding_size=16), ElectraModel, ElectraForPreTraining, "electra", nn.functional.gelu
    ),
}
# The fusions a padded batch must not change: AIF with both gates and both norms, and the two peer fusions.
FUSIONS = [
    {"fusion_method": "aif", "aif_gate": "aff", "aif_norm": "batch"},
    {"fusion_method": "aif", "aif_gate": "aff", "aif_norm": "layer"},
    {"fusion_method": "aif", "aif_gate": "paper", "aif_norm": "batch"},
    {"fusion_method": "aif", "aif_gate": "paper", "aif_norm": "layer"},
    {"fusion_method": "concat"},
    {"fusion_method": "scalar_mix"},
]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> Path:
    """`<family>/base` (a stock base model, keys without prefix) and `<family>/pretraining` (keys `<prefix>.*`)."""
    root = tmp_path_factory.mktemp("stock")
    for name, family in FAMILIES.items():
        torch.manual_seed(0)
        family.base_class(family.config).save_pretrained(root / name / "base")
        torch.manual_seed(1)
        family.pretraining_class(family.config).save_pretrained(root / name / "pretraining")
    return root


def padded_inputs(family: Family, seed: int = 0) -> dict[str, torch.Tensor]:
    """Three sentences of 7, 5 and 3 tokens, right-padded with the family's pad id (real ids avoid 0-2)."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, SHAPE["vocab_size"], (3, 7), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 5:] = 0
    attention_mask[2, 3:] = 0
    return {
        "input_ids": input_ids.masked_fill(attention_mask == 0, family.config.pad_token_id),
        "attention_mask": attention_mask,
    }


def randomize_fusion_block(fusion: nn.Module, seed: int = 1) -> None:
    """Random values for every weight and running statistic of a fusion block (variances positive), far from init."""
    generator = torch.Generator().manual_seed(seed)
    state = {
        name: torch.randn(value.shape, generator=generator).abs() + 0.5
        if name.endswith("running_var")
        else torch.randn(value.shape, generator=generator) * 0.5
        for name, value in fusion.state_dict().items()
        if value.is_floating_point()
    }
    fusion.load_state_dict(state, strict=False)


def tagger(checkpoints: Path, name: str, **kwargs) -> DLFAForTokenClassification:
    """A DLFA tagger (fusion layer 2, 5 labels) on the family's stock base checkpoint, its fusion block randomised."""
    model = DLFAForTokenClassification.from_pretrained(
        checkpoints / name / "base", **{"fusion_layer": 2, "num_labels": 5, **kwargs}
    )
    randomize_fusion_block(model.fusion)
    return model.eval()


# ---------------------------------------------------------------------------------------------------------------------
# Loading stock checkpoints


@pytest.mark.parametrize("folder", ["base", "pretraining"])
@pytest.mark.parametrize("name", FAMILIES)
def test_stock_checkpoint_fills_the_encoder_and_only_fusion_and_head_are_new(name, folder, checkpoints):
    family = FAMILIES[name]
    model, info = DLFAForTokenClassification.from_pretrained(
        checkpoints / name / folder, fusion_layer=2, num_labels=5, output_loading_info=True
    )
    # The encoder is the family's own transformers class, under the family's own prefix.
    assert type(model.base_model) is family.base_class and model.base_model_prefix == family.prefix
    assert getattr(model, family.prefix) is model.base_model
    assert (model.config.encoder_config.model_type, model.config.fusion_layer, model.config.num_labels) == (name, 2, 5)

    state = model.state_dict()
    assert set(info["missing_keys"]) == {key for key in state if key.startswith(("fusion.", "classifier."))}
    assert any(key.startswith("fusion.local_context.reduce.") for key in info["missing_keys"])
    assert not info["mismatched_keys"]
    # Every encoder weight is the checkpoint's, whichever way the checkpoint keys it.
    saved = load_file(checkpoints / name / folder / "model.safetensors")
    prefix = f"{family.prefix}." if folder == "base" else ""
    encoder_keys = [key for key in state if key.startswith(f"{family.prefix}.")]
    for key in encoder_keys:
        stored_key = key.removeprefix(prefix) if prefix else key
        if stored_key in saved:
            assert torch.equal(state[key], saved[stored_key]), key
        else:  # a buffer the checkpoint does not store (position ids): as the stock model builds it
            assert key not in info["missing_keys"] and not key.endswith(("weight", "bias")), key
    assert any(key.endswith("word_embeddings.weight") for key in encoder_keys)


@pytest.mark.parametrize("name", FAMILIES)
def test_sequence_head_pools_the_fused_first_token_as_the_family_does(name, checkpoints):
    family = FAMILIES[name]
    folder = checkpoints / name / "base"
    model, info = DLFAForSequenceClassification.from_pretrained(folder, num_labels=3, output_loading_info=True)
    model.eval()
    saved = load_file(folder / "model.safetensors")
    state = model.state_dict()
    new = {key for key in state if key.startswith(("fusion.", "classifier."))}
    if "pooler.dense.weight" in saved and name == "bert":  # BERT's own head keeps the pretrained pooler
        assert torch.equal(model.pooler.dense.weight, saved["pooler.dense.weight"])
    else:  # RoBERTa's and XLM-R's own heads start their pooling fresh (`test_sequence_pooling_starts_as_...`)
        new |= {"pooler.dense.weight", "pooler.dense.bias"}
    assert set(info["missing_keys"]) == new
    assert model.config.fusion_layer == NUM_LAYERS - 1  # the default: the layer below the last

    inputs = padded_inputs(family)
    with torch.no_grad():
        fused = model.encode_and_fuse(**inputs).last_hidden_state
        pooled = family.pooler_activation(model.pooler.dense(fused[:, 0]))
        torch.testing.assert_close(model(**inputs).logits, model.classifier(pooled), atol=1e-6, rtol=0)


@pytest.mark.parametrize("folder", ["base", "pretraining"])
@pytest.mark.parametrize("name", FAMILIES)
def test_sequence_pooling_starts_as_the_familys_own_head_does(name, folder, checkpoints):
    """
    Against the family's own `...ForSequenceClassification`'s load report on the same stock checkpoint: the pooling is
    new exactly where the stock head's pooling is new, and the checkpoint's pooler is unused where the stock head
    leaves it unused. Before: on XLM-R's and RoBERTa's base checkpoints, whose stock heads start `classifier.dense`
    fresh (the checkpoint's `pooler.dense` unexpected), DLFA's `pooler.dense` loaded the checkpoint's pooler.
    """
    path = checkpoints / name / folder
    stock, stock_info = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=3, output_loading_info=True
    )
    model, info = DLFAForSequenceClassification.from_pretrained(path, num_labels=3, output_loading_info=True)
    stock_pooling = model.config.family_setting("stock_sequence_head")[0]
    stock_pooling_is_new = {f"{stock_pooling}.weight", f"{stock_pooling}.bias"} <= stock_info["missing_keys"]
    pooling_keys = {"pooler.dense.weight", "pooler.dense.bias"}
    assert pooling_keys & info["missing_keys"] == (pooling_keys if stock_pooling_is_new else set()), stock_pooling
    unused = {
        key.removeprefix(f"{FAMILIES[name].prefix}.") for key in stock_info["unexpected_keys"] if "pooler" in key
    }
    assert {key for key in info["unexpected_keys"] if "pooler" in key} == unused
    pooling = model.pooler.dense.weight
    if stock_pooling_is_new:  # initialised as the model's own new weights are
        assert 0.01 < pooling.std().item() < 0.03 and not model.pooler.dense.bias.any()
    else:
        assert torch.equal(pooling, stock.get_submodule(stock_pooling).weight)
    if name in ("xlm-roberta", "roberta") and folder == "base":  # the case of the issue: a base model's pooler
        assert unused == {"pooler.dense.weight", "pooler.dense.bias"}
        assert not torch.equal(pooling, load_file(path / "model.safetensors")["pooler.dense.weight"])


@pytest.mark.parametrize("name", FAMILIES)
def test_selected_hidden_states_are_those_the_familys_own_model_returns(name, checkpoints):
    """
    `output_hidden_states` as a list or an index (transformers >= 5.24 captures only those states) gives what the
    family's own base model gives, state for state and None for None, though the fusion reads layer 1 and the last
    layer. Before: every hidden state on BERT, RoBERTa, XLM-R, DistilBERT and ELECTRA.
    """
    family = FAMILIES[name]
    folder = checkpoints / name / "pretraining"
    stock = family.base_class.from_pretrained(folder).eval()
    models = [
        DLFAModel.from_pretrained(folder, fusion_layer=1),
        DLFAForTokenClassification.from_pretrained(folder, fusion_layer=1, num_labels=5),
        DLFAForSequenceClassification.from_pretrained(folder, fusion_layer=1),
    ]
    if name == "bert":
        models += [DLFABertModel.from_pretrained(folder, fusion_layer=1)]
    inputs = padded_inputs(family)
    for selection in ([0, 2, -1], [-2], 2, True, False):
        with torch.no_grad():
            expected = stock(**inputs, output_hidden_states=selection).hidden_states
            for model in models:
                returned = model.eval()(**inputs, output_hidden_states=selection).hidden_states
                assert_same_hidden_states(
                    returned, expected, f"{type(model).__name__} output_hidden_states={selection}"
                )


@pytest.mark.parametrize("name", FAMILIES)
def test_encoder_runs_exactly_as_the_stock_model_with_its_own_positions(name, checkpoints):
    # XLM-R and RoBERTa count positions from padding_idx + 1, DeBERTa-v2 uses relative buckets, ELECTRA projects its
    # embeddings: whatever the family does, DLFA fuses the stock model's own hidden states.
    family = FAMILIES[name]
    folder = checkpoints / name / "pretraining"
    model = DLFAModel.from_pretrained(folder, fusion_layer=1).eval()
    randomize_fusion_block(model.fusion)
    stock = family.base_class.from_pretrained(folder).eval()
    inputs = padded_inputs(family)
    with torch.no_grad():
        ours = model(**inputs, output_hidden_states=True)
        theirs = stock(**inputs, output_hidden_states=True)
        assert len(ours.hidden_states) == NUM_LAYERS + 1
        for index, (state, expected) in enumerate(zip(ours.hidden_states, theirs.hidden_states)):
            torch.testing.assert_close(state, expected, atol=0, rtol=0, msg=f"hidden_states[{index}]")
        padding_mask = inputs["attention_mask"].bool()
        expected_fused = model.fusion(theirs.hidden_states[1], theirs.last_hidden_state, padding_mask=padding_mask)
        torch.testing.assert_close(ours.last_hidden_state, expected_fused, atol=0, rtol=0)
        assert model(**inputs).hidden_states is None  # not asked for: the encoder kept only the fused layers


@pytest.mark.parametrize("name", FAMILIES)
def test_padded_batch_equals_each_sentence_alone(name, checkpoints):
    family = FAMILIES[name]
    inputs = padded_inputs(family)
    lengths = inputs["attention_mask"].sum(dim=1).tolist()
    for fusion in FUSIONS:
        model = tagger(checkpoints, name, **fusion)
        with torch.no_grad():
            batched = model(**inputs).logits
            for row, length in enumerate(lengths):
                alone = model(input_ids=inputs["input_ids"][row : row + 1, :length]).logits
                torch.testing.assert_close(batched[row : row + 1, :length], alone, atol=1e-5, rtol=0, msg=str(fusion))
    classifier = DLFAForSequenceClassification.from_pretrained(checkpoints / name / "base", num_labels=3).eval()
    randomize_fusion_block(classifier.fusion)
    with torch.no_grad():
        batched = classifier(**inputs).logits
        for row, length in enumerate(lengths):
            alone = classifier(input_ids=inputs["input_ids"][row : row + 1, :length]).logits
            torch.testing.assert_close(batched[row : row + 1], alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", FAMILIES)
def test_config_wraps_the_stock_config_and_round_trips(name, checkpoints, tmp_path):
    family = FAMILIES[name]
    folder = checkpoints / name / "base"
    config = DLFAConfig.from_pretrained(folder, aif_gate="paper", num_labels=4, **family.no_dropout)
    # The family's own config, every field kept, except the keywords that override its own fields.
    stock = family.base_class.config_class.from_pretrained(folder, **family.no_dropout).to_dict()
    ignored = {"transformers_version", "dtype", "id2label", "label2id"}
    wrapped = config.encoder_config.to_dict()
    assert type(config.encoder_config) is family.base_class.config_class
    assert {key: wrapped.get(key) for key in stock if key not in ignored} == {
        key: value for key, value in stock.items() if key not in ignored
    }
    assert all(getattr(config.encoder_config, key) == 0.0 for key in family.no_dropout)
    assert (config.num_hidden_layers, config.hidden_size, config.fusion_layer) == (NUM_LAYERS, 32, NUM_LAYERS - 1)
    assert (config.aif_gate, config.num_labels) == ("paper", 4)

    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "dlfa" and saved["encoder_config"]["model_type"] == name
    assert saved["auto_map"]["AutoConfig"] == "configuration_dlfa.DLFAConfig"
    for reloaded in (DLFAConfig.from_pretrained(tmp_path), AutoConfig.from_pretrained(tmp_path)):
        assert type(reloaded) is DLFAConfig
        assert reloaded.to_diff_dict() == config.to_diff_dict()


# ---------------------------------------------------------------------------------------------------------------------
# Refusals


def test_refuses_what_cannot_be_fused_before_reading_any_weight(tmp_path, checkpoints):
    # Config-only folders: a refusal that came after the config would fail on the missing weights file instead.
    GPT2Config(n_layer=2, n_embd=32, n_head=4).save_pretrained(tmp_path / "gpt2")
    AlbertConfig(hidden_size=32, num_attention_heads=4, intermediate_size=37).save_pretrained(tmp_path / "albert")
    distilbert = checkpoints / "distilbert" / "base"
    cases = [
        (tmp_path / "gpt2", {}, "model_type='gpt2': it is a decoder-only"),
        (tmp_path / "albert", {}, "model_type='albert': it is not an encoder family of ENCODER_FAMILIES"),
        (distilbert, {"fusion_layer": 3}, "fusion_layer=3 is out of range: it must be an integer in 1..2"),
        (distilbert, {"fusion_layer": 0}, "fusion_layer=0 is out of range: it must be an integer in 1..2"),
    ]
    for folder, kwargs, message in cases:
        for load in (DLFAForTokenClassification.from_pretrained, DLFAConfig.from_pretrained):
            with pytest.raises(ValueError, match=re.escape(message)):
                load(folder, **kwargs)


@pytest.mark.parametrize("name", FAMILIES)
def test_every_class_refuses_a_fusion_layer_set_after_the_config_was_made(name):
    """
    A fusion layer set on a config after it was made (it checks its fields when made, not on assignment) is refused
    by every DLFA class when it is built, naming the value and the range. Before: the generic classes fused the
    embeddings (0) or the last layer with itself (L); only `DLFABertModel` refused.
    """
    classes = [DLFAModel, DLFAForTokenClassification, DLFAForSequenceClassification, DLFAForLayerSearch]
    if name == "bert":
        classes += [DLFABertModel, DLFABertForTokenClassification, DLFABertForSequenceClassification]
    for model_class in classes:
        for layer in (0, NUM_LAYERS):
            if model_class.__name__.startswith("DLFABert"):
                config = DLFABertConfig(**SHAPE, fusion_layer=1)
            else:
                config = DLFAConfig(encoder_config=FAMILIES[name].config, fusion_layer=1)
            config.search_layers = [1]
            config.fusion_layer = layer
            message = f"fusion_layer={layer} is out of range: it must be an integer in 1..{NUM_LAYERS - 1}"
            with pytest.raises(ValueError, match=re.escape(message)):
                model_class(config)


def test_the_attention_flags_read_on_a_class_promise_nothing_and_on_a_model_follow_its_family(checkpoints):
    """
    `_supports_sdpa` (flash, flex) read on a generic DLFA class is False, as the class does not know its family;
    transformers reads it on the model, where it is the encoder class's. Before: read on the class, a property
    object, which is truthy, so code that reads the flag from the class (as transformers' own tests do) took every
    DLFA class for SDPA-capable, mDeBERTa's too.
    """
    for model_class in (DLFAModel, DLFAForTokenClassification, DLFAForSequenceClassification, DLFAForLayerSearch):
        for flag in ("_supports_sdpa", "_supports_flash_attn", "_supports_flex_attn"):
            assert getattr(model_class, flag) is False, (model_class.__name__, flag)
    for name, family in FAMILIES.items():
        model = tagger(checkpoints, name)
        assert model._supports_sdpa is family.supports_sdpa is family.base_class._supports_sdpa, name
        assert model._supports_flash_attn is family.base_class._supports_flash_attn, name


def test_an_encoder_config_of_a_class_transformers_cannot_build_is_refused_by_name():
    """A subclass of a family's config (AutoModel maps exact classes): before, a bare KeyError on its class."""

    class MyBertConfig(BertConfig):
        pass

    encoder = MyBertConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=37)
    config = DLFAConfig(encoder_config=encoder, fusion_layer=2, num_labels=3)
    with pytest.raises(ValueError, match="encoder_config is a MyBertConfig, which has no base model"):
        DLFAForTokenClassification(config)


def test_bert_classes_refuse_another_family_and_still_take_bert(checkpoints):
    for name in ("xlm-roberta", "distilbert"):
        with pytest.raises(ValueError, match=rf"model_type is '{name}'.*DLFAForTokenClassification"):
            DLFABertForTokenClassification.from_pretrained(checkpoints / name / "pretraining", num_labels=5)
    model, info = DLFABertForTokenClassification.from_pretrained(
        checkpoints / "bert" / "base", fusion_layer=2, num_labels=5, output_loading_info=True
    )
    assert model.config.model_type == "dlfa_bert"
    assert all(key.startswith(("fusion.", "classifier.")) for key in info["missing_keys"])


# ---------------------------------------------------------------------------------------------------------------------
# A native transformers model, per family


@pytest.mark.parametrize("name", FAMILIES)
def test_fusion_block_of_a_meta_device_load_comes_from_init_weights(name, checkpoints):
    model = DLFAForTokenClassification.from_pretrained(
        checkpoints / name / "pretraining", fusion_layer=1, num_labels=2
    )
    for key, tensor in list(model.fusion.named_parameters()) + list(model.fusion.named_buffers()):
        assert tensor.device.type == "cpu" and torch.isfinite(tensor.float()).all(), key
    for branch in (model.fusion.global_context, model.fusion.local_context):
        assert torch.equal(branch.expand_norm.weight, torch.zeros_like(branch.expand_norm.weight))
        assert torch.equal(branch.reduce_norm.running_var, torch.ones_like(branch.reduce_norm.running_var))
        assert 0.01 < branch.reduce.weight.std().item() < 0.03
    assert 0.01 < model.classifier.weight.std().item() < 0.03 and not model.classifier.bias.any()


@pytest.mark.parametrize("name", FAMILIES)
def test_outputs_tuples_and_attention_implementations(name, checkpoints):
    family = FAMILIES[name]
    inputs = padded_inputs(family)
    eager = tagger(checkpoints, name, attn_implementation="eager")
    with torch.no_grad():
        outputs = eager(**inputs, output_hidden_states=True, output_attentions=True)
        as_tuple = eager(**inputs, return_dict=False)
    assert torch.equal(as_tuple[0], outputs.logits) and len(as_tuple) == 1
    assert len(outputs.hidden_states) == NUM_LAYERS + 1 and len(outputs.attentions) == NUM_LAYERS
    assert outputs.attentions[0].shape == (3, 4, 7, 7)
    if family.supports_sdpa:
        sdpa = tagger(checkpoints, name, attn_implementation="sdpa")
        sdpa.load_state_dict(eager.state_dict())  # the same new head
        assert sdpa.base_model.config._attn_implementation == "sdpa"  # transformers has no public getter
        with torch.no_grad():
            torch.testing.assert_close(sdpa(**inputs).logits, outputs.logits, atol=1e-5, rtol=0)
    else:  # DeBERTa-v2 is eager only: the family's own refusal
        with pytest.raises(ValueError, match="does not support"):
            tagger(checkpoints, name, attn_implementation="sdpa")


@pytest.mark.parametrize("name", FAMILIES)
def test_the_config_reports_the_attention_the_encoder_runs_and_asks_for_attentions(name, checkpoints, tmp_path):
    """
    The model's config says what its encoder runs: loaded without asking for an implementation, after a reload, and
    after `set_attn_implementation`, which refuses what the family refuses; `config.output_attentions = True` returns
    the attentions, as the family's own model does. Before: an mDeBERTa model's config said `sdpa` while its encoder
    ran eager, so setting `output_attentions` raised, asking for eager; and on every family the setting was ignored.
    """
    model = tagger(checkpoints, name)
    expected = "sdpa" if FAMILIES[name].supports_sdpa else "eager"
    assert model.config._attn_implementation == model.base_model.config._attn_implementation == expected
    model.save_pretrained(tmp_path)
    reloaded = DLFAForTokenClassification.from_pretrained(tmp_path)
    assert reloaded.config._attn_implementation == expected
    if expected == "eager":
        with pytest.raises(ValueError, match="does not support"):
            reloaded.set_attn_implementation("sdpa")
    else:
        reloaded.set_attn_implementation("eager")
    assert reloaded.config._attn_implementation == reloaded.base_model.config._attn_implementation == "eager"
    reloaded.config.output_attentions = True
    inputs = padded_inputs(FAMILIES[name])
    with torch.no_grad():
        assert len(reloaded(**inputs).attentions) == NUM_LAYERS
        assert reloaded(**inputs, output_attentions=False).attentions is None  # the call's choice wins


@pytest.mark.filterwarnings("ignore:`gradient_checkpointing_enable` is deprecated:FutureWarning")
@pytest.mark.parametrize("name", FAMILIES)
def test_gradient_checkpointing_recomputes_the_layers_with_the_same_gradients(name, checkpoints):
    family = FAMILIES[name]
    model = tagger(checkpoints, name).train()
    inputs = padded_inputs(family)
    labels = torch.randint(0, 5, inputs["input_ids"].shape).masked_fill(inputs["attention_mask"] == 0, -100)
    # The layers' first sub-modules run again when a checkpointed layer is recomputed in the backward pass.
    layers = [module for module in model.base_model.modules() if isinstance(module, GradientCheckpointingLayer)]
    calls = []
    for layer in layers:
        next(layer.children()).register_forward_hook(lambda *args: calls.append(1))

    def gradients() -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model(**inputs, labels=labels).loss.backward()
        grads = {key: param.grad.clone() for key, param in model.named_parameters() if param.grad is not None}
        model.zero_grad()
        return grads

    plain = gradients()
    assert len(calls) == NUM_LAYERS
    model.gradient_checkpointing_enable()  # the name 5.10 knows (5.24 also calls it activation_checkpointing_enable)
    checkpointed = gradients()
    assert len(calls) == NUM_LAYERS + 2 * NUM_LAYERS  # each layer again in the backward pass
    assert plain.keys() == checkpointed.keys() and any(key.startswith(f"{family.prefix}.") for key in plain)
    for key, value in plain.items():
        torch.testing.assert_close(checkpointed[key], value, atol=1e-6, rtol=1e-5, msg=key)


@pytest.mark.parametrize("name", FAMILIES)
def test_resized_embeddings_save_and_reload(name, checkpoints, tmp_path):
    family = FAMILIES[name]
    model = tagger(checkpoints, name)
    model.resize_token_embeddings(SHAPE["vocab_size"] + 5)
    assert model.get_input_embeddings().num_embeddings == SHAPE["vocab_size"] + 5
    assert model.config.encoder_config.vocab_size == SHAPE["vocab_size"] + 5
    inputs = padded_inputs(family)
    inputs["input_ids"][0, 0] = SHAPE["vocab_size"] + 4  # a new token
    model.save_pretrained(tmp_path)
    reloaded = DLFAForTokenClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).logits, model(**inputs).logits, atol=0, rtol=0)


@pytest.mark.parametrize("name", ["xlm-roberta", "distilbert"])
def test_trainer_gradient_accumulation_matches_one_large_batch(name, checkpoints, tmp_path):
    family = FAMILIES[name]
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(3, SHAPE["vocab_size"], (8, 6), generator=generator)
    attention_mask = (torch.arange(6) < torch.tensor([6, 2, 5, 3, 6, 1, 4, 6])[:, None]).long()
    labels = torch.randint(0, 5, (8, 6), generator=generator).masked_fill(attention_mask == 0, -100)
    examples = [
        {"input_ids": input_ids[row], "attention_mask": attention_mask[row], "labels": labels[row]} for row in range(8)
    ]
    # LayerNorm in the AIF branches keeps every example independent of its micro-batch.
    model = tagger(checkpoints, name, aif_norm="layer", **family.no_dropout)
    twin = tagger(checkpoints, name, aif_norm="layer", **family.no_dropout)
    twin.load_state_dict(model.state_dict())

    loss_full, weights_full = train_one_step(model, examples, 8, 1, tmp_path / "full")
    loss_accumulated, weights_accumulated = train_one_step(twin, examples, 2, 4, tmp_path / "accumulated")
    assert loss_accumulated == pytest.approx(loss_full, rel=1e-4)
    for key, value in weights_full.items():
        torch.testing.assert_close(weights_accumulated[key], value, atol=1e-5, rtol=1e-4, msg=key)


# ---------------------------------------------------------------------------------------------------------------------
# Saved folders: reload, Auto classes, and trust_remote_code without the plugin


REMOTE_CODE_SCRIPT = """
import json, sys

import torch
from transformers import AutoModelForTokenClassification

results = {}
for name, job in json.loads(sys.argv[1]).items():
    model = AutoModelForTokenClassification.from_pretrained(job["folder"], trust_remote_code=True).eval()
    assert type(model).__module__.startswith("transformers_modules."), type(model).__module__
    inputs = {key: torch.tensor(value) for key, value in job["inputs"].items()}
    with torch.no_grad():
        results[name] = {"class": type(model).__name__, "logits": model(**inputs).logits.tolist()}
print(json.dumps(results))
"""


@pytest.mark.parametrize("name", FAMILIES)
def test_lora_adapts_the_familys_own_query_and_value_projections_by_default(name, checkpoints):
    # Before: the default `query,value` matched no DistilBERT module (its are `q_lin`, `v_lin`) and peft refused.
    pytest.importorskip("peft", reason="SKIPPED LOUDLY: LoRA needs the peft package (pip install -e '.[examples]')")
    from dlfa_zero_shot.heads import lora_target_modules
    from dlfa_zero_shot.training import apply_lora

    targets = lora_target_modules(AutoConfig.from_pretrained(checkpoints / name / "base").model_type)
    model = apply_lora(tagger(checkpoints, name), 4, 16, 0.0, list(targets))
    adapted = [key.split(".lora_A")[0] for key, _ in model.named_parameters() if ".lora_A." in key]
    assert {key.rsplit(".", 1)[-1] for key in adapted} == set(targets)
    assert len(adapted) == len(targets) * NUM_LAYERS  # every layer's, inside the encoder alone
    assert all(f".{model.base_model.model.base_model_prefix}." in f".{key}" for key in adapted)


@pytest.mark.parametrize("problem", ["token", "sequence"])
@pytest.mark.parametrize("name", FAMILIES)
def test_one_pass_layer_search_heads_export_with_their_logits(name, problem, checkpoints):
    """
    The one-pass layer search on every family: a stock checkpoint fills its encoder (only the search heads are new),
    and each head exports to an ordinary model with the search's logits for that head: a generic DLFA model, or for
    "last" the family's own stock head (its pooling and classifier where `stock_sequence_head` puts them).
    """
    family = FAMILIES[name]
    folder = checkpoints / name / "pretraining"
    config = DLFAConfig.from_pretrained(folder, num_labels=5, **family.no_dropout)
    config.search_layers, config.search_problem = [1, 2], problem
    search, info = DLFAForLayerSearch.from_pretrained(folder, config=config, output_loading_info=True)
    assert {key.split(".")[0] for key in info["missing_keys"]} == {"fusions", "classifiers"} | (
        {"pooler"} if problem == "sequence" else set()
    )
    for fusion in search.fusions.values():
        randomize_fusion_block(fusion)
    search.eval()
    inputs = padded_inputs(family)
    real = inputs["attention_mask"].bool()
    with torch.no_grad():
        logits = search(**inputs).logits
    auto_class = AutoModelForTokenClassification if problem == "token" else AutoModelForSequenceClassification
    stock_class = type(auto_class.from_config(family.config))
    dlfa_class = DLFAForTokenClassification if problem == "token" else DLFAForSequenceClassification
    assert search.config.search_heads == ["1", "2", "last"]
    for index, head in enumerate(search.config.search_heads):
        exported = search.export_head(head)
        assert type(exported) is (stock_class if head == "last" else dlfa_class), head
        with torch.no_grad():
            head_logits = exported(**inputs).logits
        expected = logits[..., index, :]
        if problem == "token":
            head_logits, expected = head_logits[real], expected[real]
        torch.testing.assert_close(head_logits, expected, atol=1e-5, rtol=0, msg=f"{name} head {head}")


def test_saved_folders_reload_sharded_and_through_remote_code_without_the_plugin(checkpoints, tmp_path):
    jobs, expected = {}, {}
    for name, family in FAMILIES.items():
        model = tagger(checkpoints, name, aif_gate="paper")
        folder = tmp_path / name
        model.save_pretrained(folder, max_shard_size="100KB")
        assert (
            len(list(folder.glob("model-*-of-*.safetensors"))) > 1
            and (folder / "model.safetensors.index.json").is_file()
        )
        config = json.loads((folder / "config.json").read_text())
        assert config["model_type"] == "dlfa" and config["encoder_config"]["model_type"] == name
        assert config["auto_map"]["AutoModelForTokenClassification"] == "modeling_dlfa.DLFAForTokenClassification"
        assert "from .configuration_dlfa import" in (folder / "modeling_dlfa.py").read_text()

        inputs = padded_inputs(family)
        with torch.no_grad():
            logits = model(**inputs).logits
            reloaded = AutoModelForTokenClassification.from_pretrained(folder).eval()
            assert type(reloaded) is DLFAForTokenClassification
            torch.testing.assert_close(reloaded(**inputs).logits, logits, atol=0, rtol=0)
        # The tagger's folder opens as every DLFA class: the shared encoder and fusion keys load.
        assert type(AutoModel.from_pretrained(folder)) is DLFAModel
        assert type(AutoModelForSequenceClassification.from_pretrained(folder)) is DLFAForSequenceClassification
        jobs[name] = {"folder": str(folder), "inputs": {key: value.tolist() for key, value in inputs.items()}}
        expected[name] = logits

    fixture = json.loads((FIXTURE / "expected.json").read_text())
    jobs["fixture"] = {
        "folder": str(saved_fixture(tmp_path / "fixture")),
        "inputs": {key: fixture[key] for key in ("input_ids", "attention_mask")},
    }
    expected["fixture"] = torch.tensor(fixture["logits"])

    results = json.loads(run_without_plugin(REMOTE_CODE_SCRIPT, [json.dumps(jobs)], tmp_path).strip().splitlines()[-1])
    assert set(results) == set(jobs)
    for name, result in results.items():
        assert result["class"] == (
            "DLFABertForTokenClassification" if name == "fixture" else "DLFAForTokenClassification"
        )
        torch.testing.assert_close(torch.tensor(result["logits"]), expected[name], atol=1e-6, rtol=0, msg=name)


def saved_fixture(folder: Path) -> Path:
    """
    The fixture's checkpoint as the BERT-only release saves it: `make_fixture.py` run in a fresh interpreter with that
    release's package (`release/*.py.saved`, frozen bytes of commit 17e14ce) first on the path. Its code files in the
    checkpoint are that release's, byte for byte.
    """
    package = folder.parent / f"{folder.name}-release" / "modeling_dlfa"
    package.mkdir(parents=True)
    for saved in (FIXTURE / "release").glob("*.py.saved"):
        shutil.copyfile(saved, package / saved.with_suffix("").name)
    environment = {**os.environ, "PYTHONPATH": str(package.parent)}
    subprocess.run([sys.executable, str(FIXTURE / "make_fixture.py"), str(folder)], check=True, env=environment,
                   capture_output=True, stdin=subprocess.DEVNULL)  # fmt: skip
    for code in ("modeling_dlfa.py", "configuration_dlfa.py", "pipeline_dlfa.py"):
        assert (folder / code).read_bytes() == (package / code).read_bytes(), code
    return folder


def test_checkpoint_of_the_bert_only_release_loads_with_the_same_logits(tmp_path):
    expected = json.loads((FIXTURE / "expected.json").read_text())
    inputs = {key: torch.tensor(expected[key]) for key in ("input_ids", "attention_mask")}
    model = AutoModelForTokenClassification.from_pretrained(saved_fixture(tmp_path / "fixture")).eval()
    assert type(model) is DLFABertForTokenClassification  # the installed plugin's class, not the folder's copy
    assert model.config.fusion_layer == 2 and model.fusion.global_context.reduce_norm.num_batches_tracked == 3
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, torch.tensor(expected["logits"]), atol=1e-6, rtol=0)
