"""XTREME from the Hub: a local folder in `google/xtreme`'s layout (configs declared in its README, parquet files with
`ClassLabel` features), made from real xtreme-lite slices and read through `datasets.load_dataset` offline."""

import re
from pathlib import Path

import datasets
import pytest

from hub_data import UDPOS_LANGUAGE_NAMES, load_hub_task_data
from zero_shot_data import PANX_TAGS, TASKS, UPOS_TAGS, read_pair_tsv, read_tagged_tsv


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
        "PAN-X.de": {"test": tagged(xtreme_lite / "panx/panx_dev-de.tsv", "ner_tags", PANX_TAGS)},
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


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No Hub: `datasets` reads its offline switches at import, so they are set on its config."""
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)


def test_tagging_configs_by_language_name_with_class_label_tags(hub_copy, xtreme_lite, tmp_path):
    data = load_hub_task_data(TASKS["udpos"], str(hub_copy), max_train_samples=5, cache_dir=str(tmp_path))
    assert list(data.evaluation) == ["de", "en", "zh"]  # every language found; German has validation only
    assert data.files["de"].endswith("udpos.German/validation") and data.files["zh"].endswith("udpos.Chinese/test")
    assert data.files["selection"].endswith("udpos.English/validation") and len(data.train) == 5
    expected = read_tagged_tsv(xtreme_lite / "udpos/xtreme_udpos_test-zh.tsv", ROWS)
    assert [(s.tokens, s.tags) for s in data.evaluation["zh"]] == [(s.tokens, s.tags) for s in expected]
    assert UDPOS_LANGUAGE_NAMES["af"] == "Afrikans"  # the Hub's spelling of the config


def test_panx_with_chosen_languages(hub_copy, xtreme_lite, tmp_path):
    data = load_hub_task_data(TASKS["panx"], str(hub_copy), ["de"], max_eval_samples=4, cache_dir=str(tmp_path))
    assert list(data.evaluation) == ["de"] and len(data.evaluation["de"]) == 4
    first = read_tagged_tsv(xtreme_lite / "panx/panx_dev-de.tsv", 1)[0]
    assert (data.evaluation["de"][0].tokens, data.evaluation["de"][0].tags) == (first.tokens, first.tags)


def test_xnli_trains_on_english_validation_and_evaluates_test_per_language(hub_copy, tmp_path):
    data = load_hub_task_data(TASKS["xnli"], str(hub_copy), cache_dir=str(tmp_path))
    assert list(data.evaluation) == ["de", "en", "fr"]
    assert len(data.train) + len(data.selection) == ROWS and "held out" in data.files["selection"]
    assert data.files["fr"] == f"{hub_copy}:XNLI/test (fr rows)"
    assert {pair.label for pair in data.evaluation["de"]} <= set(TASKS["xnli"].labels)

    with pytest.raises(ValueError, match=re.escape("de 'validation' is a translation of the training data")):
        load_hub_task_data(TASKS["xnli"], str(hub_copy), ["de"], ("validation",), cache_dir=str(tmp_path))


def test_pawsx_refuses_translated_training_split(hub_copy, tmp_path):
    data = load_hub_task_data(TASKS["pawsx"], str(hub_copy), cache_dir=str(tmp_path))
    assert list(data.evaluation) == ["de"] and data.files["de"].endswith("PAWS-X.de/test")
    with pytest.raises(ValueError, match="--eval_split test"):
        load_hub_task_data(TASKS["pawsx"], str(hub_copy), ["de"], ("train",), cache_dir=str(tmp_path))


def test_missing_language_names_the_languages_that_exist(hub_copy, tmp_path):
    with pytest.raises(
        ValueError, match=re.escape("no test split for language 'fr'; languages with one: ['en', 'zh']")
    ):
        load_hub_task_data(TASKS["udpos"], str(hub_copy), ["fr"], ("test",), cache_dir=str(tmp_path))


def test_harness_runs_from_a_dataset_name(hub_copy, tmp_path, tiny_multilingual_bert):
    from test_run_zero_shot import run_harness

    summary = run_harness(
        tmp_path / "run", tiny_multilingual_bert, "--dataset_name", str(hub_copy), "--fusion_layers", "1",
        "--eval_languages", "de", "--num_train_epochs", "1", "--cache_dir", str(tmp_path / "cache"), task="panx",
    )  # fmt: skip
    result = summary["runs"]["layer-01"]
    assert set(result["scores"]) == {"selection", "de"} and result["files"]["de"].endswith("PAN-X.de/test")
