"""XTREME from the Hub: a local folder in `google/xtreme`'s layout (configs declared in its README, parquet files with
`ClassLabel` features), made from real xtreme-lite slices and read through `datasets.load_dataset` offline."""

import re
from pathlib import Path

import datasets
import pytest
from harness import run_harness

from dlfa_zero_shot.data import HubSource, load_task_data
from dlfa_zero_shot.readers import read_pair_tsv, read_tagged_tsv
from dlfa_zero_shot.tasks import NLI_LABELS, PANX_TAGS, TASKS, UPOS_TAGS


ROWS = 12


def tagged(path: Path, tag_column: str, names: tuple[str, ...]) -> datasets.Dataset:
    sentences = read_tagged_tsv(path, ROWS)
    features = datasets.Features(
        {
            "tokens": datasets.List(datasets.Value("string")),
            tag_column: datasets.List(datasets.ClassLabel(names=names)),
        }
    )
    return datasets.Dataset.from_dict(
        {"tokens": [s.tokens for s in sentences], tag_column: [s.tags for s in sentences]}, features=features
    )


def pairs(path: Path, label_column: str, language: str | None = None) -> dict:
    rows = read_pair_tsv(path, ROWS)
    columns = {
        "sentence1": [r.first for r in rows],
        "sentence2": [r.second for r in rows],
        label_column: [r.label for r in rows],
    }
    return {"language": [language] * len(rows), **columns} if language else columns


@pytest.fixture(scope="module")
def hub_copy(tmp_path_factory, xtreme_lite) -> Path:
    """A data set folder as `google/xtreme` lays it out, for the configs the tests use."""
    root = tmp_path_factory.mktemp("xtreme-hub")
    configs: dict[str, dict[str, datasets.Dataset]] = {
        "udpos.English": {
            "train": tagged(xtreme_lite / "udpos/xtreme_udpos_train-en.tsv", "pos_tags", UPOS_TAGS),
            "validation": tagged(xtreme_lite / "udpos/xtreme_udpos_dev-en.tsv", "pos_tags", UPOS_TAGS),
            "test": tagged(xtreme_lite / "udpos/xtreme_udpos_test-en.tsv", "pos_tags", UPOS_TAGS),
        },
        "udpos.German": {"validation": tagged(xtreme_lite / "udpos/xtreme_udpos_dev-de.tsv", "pos_tags", UPOS_TAGS)},
        "udpos.Chinese": {"test": tagged(xtreme_lite / "udpos/xtreme_udpos_test-zh.tsv", "pos_tags", UPOS_TAGS)},
        "PAN-X.en": {
            "train": tagged(xtreme_lite / "panx/panx_train-en.tsv", "ner_tags", PANX_TAGS),
            "validation": tagged(xtreme_lite / "panx/panx_dev-en.tsv", "ner_tags", PANX_TAGS),
        },
        "PAN-X.de": {"validation": tagged(xtreme_lite / "panx/panx_dev-de.tsv", "ner_tags", PANX_TAGS)},
        "XNLI": {
            split: datasets.concatenate_datasets([
                datasets.Dataset.from_dict(pairs(xtreme_lite / f"xnli/xnli_test-{language}.labels-propagated.tsv",
                                                 "gold_label", language))
                for language in ("en", "de", "fr")
            ])
            for split in ("validation", "test")
        },
        "PAWS-X.en": {
            "train": datasets.Dataset.from_dict(pairs(xtreme_lite / "pawsx/xtreme_pawsx_dev-en.tsv", "label"))
        },
    }  # fmt: skip
    configs["PAWS-X.en"]["validation"] = configs["PAWS-X.en"]["train"]
    configs["PAWS-X.de"] = {
        split: datasets.Dataset.from_dict(pairs(xtreme_lite / "pawsx/pawsx_test-de.labeled.tsv", "label"))
        for split in ("train", "test")
    }
    card = ["---", "configs:"]
    for config, splits in configs.items():
        card += [f"- config_name: {config}", "  data_files:"]
        for split, rows in splits.items():
            rows.to_parquet(root / config / f"{split}-00000-of-00001.parquet")
            card += [f"  - split: {split}", f"    path: {config}/{split}-*.parquet"]
    (root / "README.md").write_text("\n".join(card + ["---", ""]))
    return root


@pytest.fixture(scope="module")
def multinli_copy(tmp_path_factory, xtreme_lite) -> Path:
    """MultiNLI's training split in `nyu-mll/multi_nli`'s layout (premise, hypothesis, ClassLabel label)."""
    root = tmp_path_factory.mktemp("multi_nli")
    rows = read_pair_tsv(xtreme_lite / "mnli/mnli_train-en.20k.tsv", ROWS)
    features = datasets.Features({
        "premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
        "label": datasets.ClassLabel(names=["entailment", "neutral", "contradiction"]),
    })  # fmt: skip
    columns = {
        "premise": [r.first for r in rows],
        "hypothesis": [r.second for r in rows],
        "label": [r.label for r in rows],
    }
    datasets.Dataset.from_dict(columns, features=features).to_parquet(root / "train-00000-of-00001.parquet")
    return root


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No Hub: `datasets` reads its offline switches at import, so they are set on its config."""
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)


def read_hub(task: str, hub_copy: Path, tmp_path: Path, *args, **kwargs):
    return load_task_data(TASKS[task], HubSource(str(hub_copy), str(tmp_path)), *args, **kwargs)


def test_tagging_configs_by_language_name_with_class_label_tags(hub_copy, xtreme_lite, tmp_path):
    data = read_hub("udpos", hub_copy, tmp_path, max_train_samples=5)
    assert list(data.evaluation) == ["de", "en", "zh"]  # config names mapped to codes; German has validation only
    assert data.files["de"].endswith("udpos.German/validation") and data.files["zh"].endswith("udpos.Chinese/test")
    assert data.files["selection"].endswith("udpos.English/validation") and len(data.train) == 5
    expected = read_tagged_tsv(xtreme_lite / "udpos/xtreme_udpos_test-zh.tsv", ROWS)
    assert [(s.tokens, s.tags) for s in data.evaluation["zh"]] == [(s.tokens, s.tags) for s in expected]


def test_panx_is_evaluated_on_validation_as_from_local_files(hub_copy, xtreme_lite, tmp_path):
    data = read_hub("panx", hub_copy, tmp_path, ["de"], max_eval_samples=4)
    assert data.eval_splits == {"de": "dev"} and data.files["de"].endswith("PAN-X.de/validation")
    first = read_tagged_tsv(xtreme_lite / "panx/panx_dev-de.tsv", 1)[0]
    assert (data.evaluation["de"][0].tokens, data.evaluation["de"][0].tags) == (first.tokens, first.tags)


def test_xnli_trains_on_multinli_selects_on_english_validation(hub_copy, multinli_copy, xtreme_lite, tmp_path):
    source = HubSource(str(hub_copy), str(tmp_path))
    source.train_dataset_name = str(multinli_copy)  # nyu-mll/multi_nli on the Hub
    data = load_task_data(TASKS["xnli"], source)
    assert list(data.evaluation) == ["de", "en", "fr"] and data.files["fr"] == f"{hub_copy}:XNLI/test (fr rows)"
    expected = read_pair_tsv(xtreme_lite / "mnli/mnli_train-en.20k.tsv", ROWS)
    assert [(p.first, p.label) for p in data.train] == [(p.first, p.label) for p in expected]
    assert data.files["selection"] == f"{hub_copy}:XNLI/validation (en rows)"
    assert {pair.label for pair in data.evaluation["de"]} <= set(NLI_LABELS)


def test_xnli_dev_trains_on_english_validation_and_refuses_its_translations(hub_copy, tmp_path):
    data = read_hub("xnli_dev", hub_copy, tmp_path)
    assert len(data.train) + len(data.selection) == ROWS and "held out" in data.files["selection"]
    with pytest.raises(ValueError, match=re.escape("de 'dev' is a translation of the training data")):
        read_hub("xnli_dev", hub_copy, tmp_path, ["de"], ("dev",))


def test_pawsx_refuses_translated_training_split(hub_copy, tmp_path):
    data = read_hub("pawsx", hub_copy, tmp_path)
    assert list(data.evaluation) == ["de"] and data.files["de"].endswith("PAWS-X.de/test")
    with pytest.raises(ValueError, match="--eval_split test"):
        read_hub("pawsx", hub_copy, tmp_path, ["de"], ("train",))


def test_missing_language_names_the_languages_that_exist(hub_copy, tmp_path):
    with pytest.raises(
        ValueError, match=re.escape("no test data for language 'fr'; languages with some: ['en', 'zh']")
    ):
        read_hub("udpos", hub_copy, tmp_path, ["fr"], ("test",))


def test_harness_runs_from_a_dataset_name(hub_copy, tmp_path, tiny_multilingual_bert):
    summary = run_harness(
        tmp_path / "run", tiny_multilingual_bert, "--dataset_name", str(hub_copy), "--fusion_layers", "1",
        "--eval_languages", "de", "--num_train_epochs", "1", "--cache_dir", str(tmp_path / "cache"), task="panx",
    )  # fmt: skip
    result = summary["runs"]["aif-layer-01"]
    assert set(result["scores"]) == {"selection", "de"} and result["files"]["de"].endswith("PAN-X.de/validation")
