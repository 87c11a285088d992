"""Auto-class registration, self-contained checkpoint folders, and `trust_remote_code` loading without the plugin."""

import json

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoModelForTokenClassification

from dlfa_tester import ALL_MODEL_CLASSES, DLFABertModelTester, build, first_output
from modeling_dlfa import (
    DLFABertConfig,
    DLFABertForSequenceClassification,
    DLFABertForTokenClassification,
    DLFABertModel,
)
from remote_code import SAVED_FILES, run_without_plugin


TESTER = DLFABertModelTester()
AUTO_CLASS_OF = {
    DLFABertModel: AutoModel,
    DLFABertForTokenClassification: AutoModelForTokenClassification,
    DLFABertForSequenceClassification: AutoModelForSequenceClassification,
}
EXPECTED_AUTO_MAP = {
    "AutoConfig": "configuration_dlfa.DLFABertConfig",
    "AutoModel": "modeling_dlfa.DLFABertModel",
    "AutoModelForTokenClassification": "modeling_dlfa.DLFABertForTokenClassification",
    "AutoModelForSequenceClassification": "modeling_dlfa.DLFABertForSequenceClassification",
}


@pytest.mark.parametrize("model_class", ALL_MODEL_CLASSES)
def test_auto_classes_build_the_dlfa_models_from_a_config(model_class):
    assert type(AutoConfig.for_model("dlfa_bert")) is DLFABertConfig
    model = AUTO_CLASS_OF[model_class].from_config(TESTER.get_config())
    assert type(model) is model_class


@pytest.mark.parametrize("model_class", ALL_MODEL_CLASSES)
def test_saved_folder_is_self_contained_and_loads_through_every_auto_class(model_class, tmp_path):
    model = build(model_class, TESTER.get_config())
    model.save_pretrained(tmp_path)

    files = sorted(path.name for path in tmp_path.iterdir())
    assert files == SAVED_FILES
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"] == EXPECTED_AUTO_MAP
    # A tagger's folder names its word-level pipeline; other heads name none (it would misread their outputs).
    pipelines = config.get("custom_pipelines", {})
    if model_class is DLFABertForTokenClassification:
        assert pipelines["token-classification"]["impl"] == "pipeline_dlfa.WordTokenClassificationPipeline"
    else:
        assert not pipelines
    assert config["architectures"] == [model_class.__name__]
    # The copied code imports nothing of ours but its sibling file.
    modeling_source = (tmp_path / "modeling_dlfa.py").read_text()
    assert "from .configuration_dlfa import DLFABertConfig" in modeling_source
    assert "import modeling_dlfa" not in modeling_source and "from configuration_dlfa" not in modeling_source

    inputs = TESTER.prepare_inputs()
    with torch.no_grad():
        expected = first_output(model(**inputs))
        reloaded = AUTO_CLASS_OF[model_class].from_pretrained(tmp_path).eval()
        assert type(reloaded) is model_class
        torch.testing.assert_close(first_output(reloaded(**inputs)), expected, atol=0, rtol=0)
    # Any head's checkpoint also opens as the base model and as the other head.
    for model_class_wanted, auto_class in AUTO_CLASS_OF.items():
        assert type(auto_class.from_pretrained(tmp_path)) is model_class_wanted


REMOTE_CODE_SCRIPT = """
import json, sys

import torch
from transformers import AutoModel, AutoModelForSequenceClassification, AutoModelForTokenClassification

auto_classes = {
    "DLFABertModel": AutoModel,
    "DLFABertForTokenClassification": AutoModelForTokenClassification,
    "DLFABertForSequenceClassification": AutoModelForSequenceClassification,
}
job = json.loads(sys.argv[1])
inputs = {key: torch.tensor(value) for key, value in job["inputs"].items()}
results = {}
for name, folder in job["folders"].items():
    model = auto_classes[name].from_pretrained(folder, trust_remote_code=True).eval()
    assert type(model).__name__ == name, type(model)
    assert type(model).__module__.startswith("transformers_modules."), type(model).__module__
    with torch.no_grad():
        outputs = model(**inputs)
    main = outputs.logits if hasattr(outputs, "logits") else outputs.last_hidden_state
    results[name] = main.tolist()
print(json.dumps(results))
"""


def test_trust_remote_code_in_a_fresh_process_without_the_plugin(tmp_path):
    inputs = TESTER.prepare_inputs()
    folders, expected = {}, {}
    for model_class in ALL_MODEL_CLASSES:
        model = build(model_class, TESTER.get_config(aif_gate="paper"))
        folder = tmp_path / model_class.__name__
        model.save_pretrained(folder)
        folders[model_class.__name__] = str(folder)
        with torch.no_grad():
            expected[model_class.__name__] = first_output(model(**inputs))

    job = json.dumps({"folders": folders, "inputs": {key: value.tolist() for key, value in inputs.items()}})
    stdout = run_without_plugin(REMOTE_CODE_SCRIPT, [job], tmp_path)
    results = json.loads(stdout.strip().splitlines()[-1])
    for name, values in results.items():
        torch.testing.assert_close(torch.tensor(values), expected[name], atol=1e-6, rtol=0)
    assert set(results) == set(folders)
