import json
import re

import pytest
from huggingface_hub.errors import StrictDataclassClassValidationError, StrictDataclassFieldValidationError
from transformers import AutoConfig, BertConfig

from configuration_dlfa import DLFABertConfig
from dlfa_tester import DLFABertModelTester


def four_layer_bert_config() -> BertConfig:
    # Non-default activation, epsilon and type vocabulary, to see that they survive into the DLFA config.
    return DLFABertModelTester().get_bert_config(hidden_act="gelu_new", layer_norm_eps=1e-7, type_vocab_size=3)


def test_defaults_fit_bert_base():
    config = DLFABertConfig()
    assert config.model_type == "dlfa_bert"
    assert (config.num_hidden_layers, config.fusion_layer) == (12, 11)
    assert (config.aif_reduction, config.aif_gate, config.aif_norm) == (4, "aff", "batch")


def test_default_fusion_layer_follows_the_depth():
    assert DLFABertConfig(num_hidden_layers=4).fusion_layer == 3
    assert DLFABertConfig(num_hidden_layers=2).fusion_layer == 1


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"fusion_layer": 0}, "fusion_layer=0 is out of range: it must be an integer in 1..3"),
        ({"fusion_layer": 4}, "fusion_layer=4 is out of range: it must be an integer in 1..3"),
        ({"fusion_layer": -2}, "fusion_layer=-2 is out of range: it must be an integer in 1..3"),
        ({"num_hidden_layers": 1, "fusion_layer": None}, "needs num_hidden_layers >= 2, got 1"),
        ({"aif_reduction": 0}, "aif_reduction=0 is out of range: it must be an integer in 1..32"),
        ({"aif_reduction": 33}, "aif_reduction=33 is out of range: it must be an integer in 1..32"),
        ({"aif_gate": "mscam"}, "aif_gate='mscam' is not supported: choose one of ('paper', 'aff')"),
        ({"aif_norm": "group"}, "aif_norm='group' is not supported: choose one of ('batch', 'layer')"),
        ({"aif_gate_init": 0.0}, "aif_gate_init=0.0 is out of range: it must be a number in the open interval (0, 1)"),
        ({"aif_gate_init": 1.0}, "aif_gate_init=1.0 is out of range: it must be a number in the open interval (0, 1)"),
        ({"fusion_method": "sum"}, "fusion_method='sum' is not supported: choose one of ('aif', 'scalar_mix',"),
    ],
)
def test_invalid_values_raise_value_error_naming_value_and_range(overrides, message):
    values = {"hidden_size": 32, "num_attention_heads": 4, "num_hidden_layers": 4, **overrides}
    with pytest.raises(ValueError, match=re.escape(message)):
        DLFABertConfig(**values)


@pytest.mark.parametrize("field, value", [("fusion_layer", "3"), ("fusion_layer", True), ("aif_reduction", 2.5)])
def test_wrong_types_are_rejected_by_the_strict_field_check(field, value):
    with pytest.raises(
        StrictDataclassFieldValidationError, match=re.escape(f"{field}'") + ".*" + re.escape(repr(value))
    ):
        DLFABertConfig(**{field: value})


def test_a_field_emptied_after_construction_is_caught_when_saved(tmp_path):
    config = DLFABertConfig(num_hidden_layers=4)
    config.fusion_layer = None
    with pytest.raises(StrictDataclassClassValidationError, match=re.escape("fusion_layer=None is out of range")):
        config.save_pretrained(tmp_path)


def test_every_valid_value_is_accepted():
    for layer in range(1, 4):
        assert DLFABertConfig(num_hidden_layers=4, fusion_layer=layer).fusion_layer == layer
    for reduction in (1, 16, 32):
        assert (
            DLFABertConfig(hidden_size=32, num_attention_heads=4, aif_reduction=reduction).aif_reduction == reduction
        )


def test_from_plain_bert_folder_applies_keywords_before_validating(tmp_path):
    four_layer_bert_config().save_pretrained(tmp_path)
    config = DLFABertConfig.from_pretrained(tmp_path, fusion_layer=2)
    assert (config.num_hidden_layers, config.fusion_layer) == (4, 2)
    assert config.model_type == "dlfa_bert"  # not the "bert" written in the plain config.json
    # A keyword that changes the depth is judged together with the fusion layer.
    deeper = DLFABertConfig.from_pretrained(tmp_path, num_hidden_layers=12, fusion_layer=8)
    assert (deeper.num_hidden_layers, deeper.fusion_layer) == (12, 8)
    with pytest.raises(ValueError, match=re.escape("fusion_layer=4 is out of range")):
        DLFABertConfig.from_pretrained(tmp_path, fusion_layer=4)


def test_from_plain_bert_folder_keeps_every_backbone_field(tmp_path):
    bert = four_layer_bert_config()
    bert.save_pretrained(tmp_path)
    config = DLFABertConfig.from_pretrained(tmp_path, fusion_layer=2)
    ignored = {"model_type", "transformers_version", "architectures", "auto_map"}
    bert_fields = {key: value for key, value in bert.to_dict().items() if key not in ignored}
    ours = config.to_dict()
    assert {key: ours.get(key, "<missing>") for key in bert_fields} == bert_fields


def test_loaded_bad_config_raises(tmp_path):
    config = DLFABertConfig(num_hidden_layers=4, fusion_layer=2)
    config.save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    values = json.loads(path.read_text())
    values["fusion_layer"] = 7
    path.write_text(json.dumps(values))
    with pytest.raises(ValueError, match=re.escape("fusion_layer=7 is out of range: it must be an integer in 1..3")):
        DLFABertConfig.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match=re.escape("fusion_layer=7 is out of range")):
        AutoConfig.from_pretrained(tmp_path)


def test_save_load_round_trip_and_auto_config(tmp_path):
    config = DLFABertConfig(num_hidden_layers=4, fusion_layer=1, aif_reduction=8, aif_gate="paper", aif_norm="layer")
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "dlfa_bert"
    assert saved["auto_map"]["AutoConfig"] == "configuration_dlfa.DLFABertConfig"
    assert (tmp_path / "configuration_dlfa.py").is_file()

    reloaded = AutoConfig.from_pretrained(tmp_path)
    assert type(reloaded) is DLFABertConfig
    for key in ("num_hidden_layers", "fusion_layer", "aif_reduction", "aif_gate", "aif_norm"):
        assert getattr(reloaded, key) == getattr(config, key)
    assert type(AutoConfig.for_model("dlfa_bert")) is DLFABertConfig
