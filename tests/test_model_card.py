"""The model card of a finished run, for every task: YAML metadata that parses, a model-index with the numbers."""

import pytest
from huggingface_hub import ModelCard, scan_cache_dir, try_to_load_from_cache

from configuration_dlfa import DLFABertConfig
from dlfa_zero_shot.model_card import task_spec, write_model_card, write_to_hub_cache
from dlfa_zero_shot.tasks import CUSTOM_KINDS, TASKS


def finished_run(metric: str) -> dict:
    """A results.json as the harness writes it: English dev, English test, German (on its dev split), Chinese."""
    return {
        "scores": {
            "selection": {metric: 0.9},
            "en": {metric: 0.91},
            "de": {metric: 0.8234},
            "zh": {metric: 0.7},
        },
        "target_average": 0.7617,
        "eval_splits": {"en": "test", "de": "dev", "zh": "test"},
        "files": {"train": "train.tsv", "selection": "dev.tsv"},
        "seed": 3,
        "device": "cuda: NVIDIA H200",
    }


@pytest.mark.parametrize("task", sorted(TASKS) + sorted(CUSTOM_KINDS))
def test_card_for_every_task(task, tmp_path):
    spec = task_spec(task)
    config = DLFABertConfig(num_hidden_layers=12, fusion_layer=8, aif_gate_init=0.1)
    path = write_model_card(
        tmp_path, task, finished_run(spec.main_score), config, "offline:multilingual-e5-small", "org/dlfa-run"
    )
    text = path.read_text()
    card = ModelCard.load(path, ignore_metadata_errors=False)  # the Hub's own parser: YAML, then the model-index
    assert card.data.base_model == "intfloat/multilingual-e5-small" and card.data.license == "mit"
    assert card.data.model_name == "org/dlfa-run" and set(card.data.language) == {"en", "de", "zh"}
    results = {result.metric_name: result for result in card.data.eval_results}
    assert sorted(results) == sorted(
        f"{spec.metric_name} ({language})" for language in ("en", "de, zero-shot", "zh, zero-shot")
    )
    german = results[f"{spec.metric_name} (de, zero-shot)"]
    assert german.metric_value == 82.34 and german.metric_type == spec.main_score
    assert german.task_name == spec.presentation.title and spec.presentation.title in text
    if spec.hub is not None:  # XTREME on the Hub: its config for German, its name of the split evaluated
        assert (german.dataset_type, german.dataset_config) == ("google/xtreme", spec.hub.config_name("de"))
        assert german.dataset_split == spec.hub.split_names["dev"] == "validation"
    assert 'from_pretrained("org/dlfa-run", trust_remote_code=True)' in text
    if spec.kind == "token":  # the word-level pipeline the folder ships
        assert card.data.pipeline_tag == "token-classification"
        assert 'pipeline("token-classification", model="org/dlfa-run", trust_remote_code=True)' in text
        assert "is_split_into_words=True, word_level=True" in text
    assert "| fusion layer (fused with the last, layer 12) | 8 |" in text and "**76.17**" in text
    assert "| AIF gate at initialisation | 0.1 |" in text and "peer fusions for comparison) | aif |" in text
    assert "Seed 3, trained on cuda: NVIDIA H200." in text  # what a reader needs to rerun it


def test_the_model_index_has_one_entry_per_hub_config_and_split(tmp_path):
    """UDPOS has a Hub config per language; XNLI's languages share one, so its test languages share an entry."""
    config = DLFABertConfig(num_hidden_layers=12, fusion_layer=8)
    for task, entries in (("udpos", 3), ("xnli", 2)):
        path = write_model_card(tmp_path, task, finished_run(TASKS[task].main_score), config, "some/bert")
        model_index = ModelCard.load(path).data.to_dict()["model-index"][0]["results"]
        assert len(model_index) == entries
        assert sum(len(entry["metrics"]) for entry in model_index) == 3


def test_the_dry_run_cache_is_one_the_hub_library_reads(tmp_path):
    folder = tmp_path / "upload"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "sub" / "weights.bin").write_bytes(b"\x00\x01")
    snapshot = write_to_hub_cache(folder, tmp_path / "cache", "dlfa-org/tiny-tagger")
    (repo,) = scan_cache_dir(tmp_path / "cache").repos
    (revision,) = repo.revisions
    assert (repo.repo_id, repo.repo_type, revision.refs) == ("dlfa-org/tiny-tagger", "model", {"main"})
    assert sorted(file.file_name for file in revision.files) == ["config.json", "weights.bin"]
    cached = try_to_load_from_cache("dlfa-org/tiny-tagger", "config.json", cache_dir=tmp_path / "cache")
    assert cached == str(snapshot / "config.json")
