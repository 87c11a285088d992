"""The model card of a finished run, for every task: YAML metadata that parses, a model-index with the numbers."""

import pytest
import yaml

from configuration_dlfa import DLFABertConfig
from dlfa_zero_shot.tasks import TASKS
from model_cards.card import TASK_CARD, write_model_card


@pytest.mark.parametrize("task", sorted(TASKS))
def test_card_for_every_task(task, tmp_path):
    metric = TASK_CARD[task].metric
    result = {
        "scores": {
            "selection": {metric: 0.9},
            "en": {metric: 0.91},
            "de": {metric: 0.8234},
        },
        "target_average": 0.8234,
        "files": {"train": "train.tsv", "selection": "dev.tsv"},
        "seed": 3,
        "device": "cuda: NVIDIA H200",
    }
    config = DLFABertConfig(num_hidden_layers=12, fusion_layer=8, aif_gate_init=0.1)
    path = write_model_card(tmp_path, task, result, config, "offline:multilingual-e5-small", "org/dlfa-run")
    text = path.read_text()
    metadata = yaml.safe_load(text.split("---\n")[1])
    assert metadata["base_model"] == "intfloat/multilingual-e5-small" and metadata["license"] == "mit"
    values = {
        entry["metrics"][0]["name"]: entry["metrics"][0]["value"] for entry in metadata["model-index"][0]["results"]
    }
    assert values[f"{TASK_CARD[task].metric_name} (de, zero-shot)"] == 82.34
    assert 'from_pretrained("org/dlfa-run", trust_remote_code=True)' in text
    if TASK_CARD[task].pipeline_tag == "token-classification":  # the word-level pipeline the folder ships
        assert 'pipeline("token-classification", model="org/dlfa-run", trust_remote_code=True)' in text
        assert "is_split_into_words=True, word_level=True" in text
    assert "| fusion layer (fused with the last, layer 12) | 8 |" in text and "**82.34**" in text
    assert "| AIF gate at initialisation | 0.1 |" in text and "peer fusions for comparison) | aif |" in text
    assert "Seed 3, trained on cuda: NVIDIA H200." in text  # what a reader needs to rerun it
