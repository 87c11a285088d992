"""
Checkpoints saved by earlier releases load with identical outputs: those of commit cf86106 (`DLFABert*` with its own
model and heads; `model_type` `dlfa_bert`, `bert.*` keys), with the installed plugin and, through
`trust_remote_code`, on a machine without it (the plugin's current code files beside the saved weights and config,
and a checkpoint saved again by the current plugin). `fixtures/checkpoints_cf86106/make_fixtures.py` describes them:
each test draws the weights again from the layout and seed committed there (`write_weights`), into its own folder.

The committed outputs were computed at cf86106 on another CPU: float32 kernels differ in their last bits from one
instruction set to another (AVX-512 against AVX2: 2e-7 apart), so against them "the same" is float32's own tolerance
(`assert_close`'s default, 1e-5 absolute; a wrongly loaded weight moves them far beyond it). On one machine, every way
of loading an earlier checkpoint gives the plugin's outputs to the bit.
"""

import json
import shutil

import pytest
import torch
from transformers import AutoModel, AutoModelForSequenceClassification, AutoModelForTokenClassification

import modeling_dlfa
from fixtures.checkpoints_cf86106.make_fixtures import CHECKPOINTS, FIXTURES, write_weights
from remote_code import run_without_plugin


AUTO_CLASSES = {
    "Model": AutoModel,
    "ForTokenClassification": AutoModelForTokenClassification,
    "ForSequenceClassification": AutoModelForSequenceClassification,
}
CODE_FILES = ("modeling_dlfa.py", "configuration_dlfa.py", "fusion_dlfa.py")  # those every saved DLFA model ships

REMOTE_CODE_SCRIPT = """
import json, sys
import torch
from transformers import AutoModel, AutoModelForSequenceClassification, AutoModelForTokenClassification

AUTO_CLASSES = {"Model": AutoModel, "ForTokenClassification": AutoModelForTokenClassification,
                "ForSequenceClassification": AutoModelForSequenceClassification}
results = {}
for name, job in json.loads(sys.argv[1]).items():
    auto_class = AUTO_CLASSES[job["auto"]]
    model = auto_class.from_pretrained(job["folder"], trust_remote_code=True).eval()
    inputs = {key: torch.tensor(value) for key, value in job["inputs"].items()}
    with torch.no_grad():
        outputs = model(**inputs)
    output = outputs.logits if hasattr(outputs, "logits") else outputs.last_hidden_state
    results[name] = {"class": type(model).__name__, "module": type(model).__module__, "output": output.tolist()}
print(json.dumps(results))
"""


def auto_class_name(class_name: str) -> str:
    return next(suffix for suffix in AUTO_CLASSES if class_name.endswith(suffix))


def fixture(name: str) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    expected = json.loads((FIXTURES / name / "expected.json").read_text())
    inputs = {key: torch.tensor(expected[key]) for key in ("input_ids", "attention_mask")}
    return inputs, torch.tensor(expected["output"])


def first_output(outputs) -> torch.Tensor:
    return outputs.logits if hasattr(outputs, "logits") else outputs.last_hidden_state


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_earlier_checkpoint_loads_with_the_same_outputs(name, tmp_path):
    class_name = CHECKPOINTS[name]
    inputs, expected = fixture(name)
    model_class = getattr(modeling_dlfa, class_name)
    folder = write_weights(name, tmp_path / name)
    outputs = []
    for model in (
        model_class.from_pretrained(folder),
        AUTO_CLASSES[auto_class_name(class_name)].from_pretrained(folder),
    ):
        assert type(model) is model_class
        model.eval()
        with torch.no_grad():
            outputs.append(first_output(model(**inputs)))
    torch.testing.assert_close(outputs[0], expected)  # cf86106's outputs, computed on another CPU
    torch.testing.assert_close(outputs[1], outputs[0], atol=0, rtol=0)


def test_earlier_checkpoints_load_with_the_same_outputs_without_the_plugin(tmp_path):
    jobs, expected = {}, {}
    for name, class_name in CHECKPOINTS.items():
        inputs, expected[name] = fixture(name)
        # The earlier checkpoint as it is, with the current plugin's code files in place of the ones it shipped.
        earlier = write_weights(name, tmp_path / name)
        model = getattr(modeling_dlfa, class_name).from_pretrained(earlier).eval()
        with torch.no_grad():
            plugin = first_output(model(**inputs))
        torch.testing.assert_close(plugin, expected[name])  # cf86106's outputs, computed on another CPU
        resaved = tmp_path / f"{name}-resaved"
        model.save_pretrained(resaved)
        assert {path.name for path in resaved.glob("*.py")} >= set(CODE_FILES)
        for code in resaved.glob("*.py"):
            shutil.copyfile(code, earlier / code.name)
        for folder in (earlier, resaved):
            jobs[folder.name] = {
                "folder": str(folder),
                "auto": auto_class_name(class_name),
                "inputs": {key: value.tolist() for key, value in inputs.items()},
            }
            expected[folder.name] = plugin  # without the plugin, its outputs to the bit

    results = json.loads(run_without_plugin(REMOTE_CODE_SCRIPT, [json.dumps(jobs)], tmp_path).strip().splitlines()[-1])
    assert set(results) == set(jobs)
    for name, result in results.items():
        assert result["class"] == CHECKPOINTS[name.removesuffix("-resaved")]
        assert result["module"].startswith("transformers_modules."), result["module"]  # the folder's code, no plugin
        torch.testing.assert_close(torch.tensor(result["output"]), expected[name], atol=0, rtol=0, msg=name)
