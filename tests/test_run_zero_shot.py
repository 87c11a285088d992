"""The zero-shot harness end to end, as a subprocess, on a tiny BERT with the real multilingual tokenizer and data."""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
import yaml
from harness import QUICK, SCRIPT, call_main, own_files, run_harness, run_script
from transformers import AutoModelForTokenClassification, TrainingArguments

from dlfa_tester import DLFABertModelTester, build
from dlfa_zero_shot import cli
from dlfa_zero_shot.plans import PAWSX_TARGETS
from dlfa_zero_shot.provenance import cpu_instruction_sets, made_by
from dlfa_zero_shot.training import FusionLearningRateTrainer
from modeling_dlfa import DLFABertForTokenClassification
from remote_code import run_without_plugin


ROOT = Path(__file__).resolve().parent.parent


def run(output_dir: Path, backbone: Path, data_dir: Path, *extra: str, task: str = "udpos") -> dict:
    return run_harness(output_dir, backbone, "--data_dir", str(data_dir), *extra, task=task)


def test_sweep_writes_json_markdown_heatmap_and_selects_on_english(tmp_path, tiny_multilingual_bert, xtreme_lite):
    out = tmp_path / "sweep"
    summary = run(out, tiny_multilingual_bert, xtreme_lite, "--fusion_layers", "1,last", "--eval_languages",
                  "en,de,zh", "--num_train_epochs", "1")  # fmt: skip
    runs = summary["runs"]
    assert set(runs) == {"aif-layer-01", "baseline"} and summary["metric"] == "f1"
    best = summary["selected_by_english_dev"]
    assert all(runs[best]["scores"]["selection"]["f1"] >= run["scores"]["selection"]["f1"] for run in runs.values())
    for result in runs.values():
        assert set(result["scores"]) == {"selection", "en", "de", "zh"}
        for scores in result["scores"].values():
            assert set(scores) == {"f1", "precision", "recall", "token_accuracy"}
            assert all(0.0 <= value <= 1.0 for value in scores.values())
        assert result["target_average"] == pytest.approx(
            (result["scores"]["de"]["f1"] + result["scores"]["zh"]["f1"]) / 2
        )
        assert result["files"]["zh"] == "udpos/xtreme_udpos_test-zh.tsv"  # relative to the data folder
        assert result["words_past_max_length"]["zh"] == 0  # 128 sub-tokens hold these sentences whole

    table = (out / "summary.md").read_text()
    assert "| run | en dev | en | de | zh | avg (targets) |" in table and f"{best} (selected on en dev)" in table
    assert (out / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model_dir = out / "aif-layer-01" / "model"
    assert {"modeling_dlfa.py", "configuration_dlfa.py", "tokenizer.json"} <= {p.name for p in model_dir.iterdir()}
    assert json.loads((model_dir / "config.json").read_text())["fusion_layer"] == 1

    # The model card: YAML metadata whose model-index holds this run's numbers, then usage and the table.
    card = (model_dir / "README.md").read_text()
    metadata = yaml.safe_load(card.split("---\n")[1])
    assert metadata["library_name"] == "transformers" and "custom_code" in metadata["tags"]
    assert metadata["pipeline_tag"] == "token-classification" and set(metadata["language"]) == {"en", "de", "zh"}
    reported = {
        entry["metrics"][0]["name"]: entry["metrics"][0]["value"] for entry in metadata["model-index"][0]["results"]
    }
    scores = runs["aif-layer-01"]["scores"]
    assert reported["seqeval F1 (de, zero-shot)"] == round(100 * scores["de"]["f1"], 2)
    assert "trust_remote_code=True" in card and "| fusion layer (fused with the last, layer 2) | 1 |" in card


def test_each_run_records_the_code_versions_flags_and_data_that_made_it(tmp_path, tiny_multilingual_bert, xtreme_lite):
    out = tmp_path / "provenance"
    summary = run(out, tiny_multilingual_bert, xtreme_lite, "--fusion_layers", "last", "--eval_languages", "de",
                  "--num_train_epochs", "1")  # fmt: skip
    made = summary["runs"]["baseline"]["provenance"]
    assert json.loads((out / "baseline" / "results.json").read_text())["provenance"] == made
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    assert made["commit"] == (head.stdout.strip() if head.returncode == 0 else None)
    assert isinstance(made["dirty"], bool) and made["dirty"] == bool(made["uncommitted"])
    assert made["versions"]["torch"] == torch.__version__
    assert made["versions"]["transformers"] == transformers.__version__
    assert "peft" in made["versions"] and made["threads"] >= 1
    assert made["cpu_instruction_sets"] == cpu_instruction_sets()  # the float kernels: last digits differ by them
    assert made["argv"][made["argv"].index("--eval_languages") + 1] == "de" and "--num_train_epochs" in made["argv"]
    stored = json.loads((out / "baseline" / "settings.json").read_text())  # what a rerun must match to reuse it
    assert stored == {**made["settings"], **made_by(made), "device": "cpu"}  # a CPU run is not reused on a GPU
    assert stored["data_sha256"]["de"] == made["data"]["de"]["sha256"]
    for key, file in (("train", "udpos/xtreme_udpos_train-en.tsv"), ("selection", "udpos/xtreme_udpos_dev-en.tsv"),
                      ("de", "udpos/xtreme_udpos_dev-de.tsv")):  # fmt: skip
        digest = hashlib.sha256((xtreme_lite / file).read_bytes()).hexdigest()
        assert made["data"][key] == {"file": file, "sha256": digest}
    for name, path in (("dlfa_zero_shot/training.py", ROOT / "dlfa_zero_shot" / "training.py"),
                       ("modeling_dlfa/modeling_dlfa.py", ROOT / "modeling_dlfa" / "modeling_dlfa.py"),
                       ("program:run_zero_shot.py", SCRIPT)):  # fmt: skip
        assert made["code_files"][name] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert made["program"] == str(SCRIPT.resolve())
    assert "dlfa_zero_shot/report.py" not in made["code_files"]  # it reads archived runs; no run executes it
    weights = tiny_multilingual_bert / "model.safetensors"
    assert made["backbone"]["sha256"]["model.safetensors"] == hashlib.sha256(weights.read_bytes()).hexdigest()


def test_a_stored_run_is_not_reused_once_a_data_file_it_read_has_changed(tmp_path, tiny_multilingual_bert, xtreme_lite):
    data = tmp_path / "data"
    shutil.copytree(xtreme_lite / "udpos", data / "udpos")
    arguments = ("--fusion_layers", "last", "--eval_languages", "de", "--num_train_epochs", "1")
    run(tmp_path / "out", tiny_multilingual_bert, data, *arguments)
    german = data / "udpos" / "xtreme_udpos_dev-de.tsv"
    german.write_text(german.read_text().replace("\tNOUN\n", "\tPROPN\n", 1))  # one gold tag changed in place
    completed = call_main("--task", "udpos", "--model_name_or_path", str(tiny_multilingual_bert), "--output_dir",
                           str(tmp_path / "out"), "--data_dir", str(data), *QUICK, "--do_train", "--do_eval",
                           *arguments, cwd=tmp_path, check=False)  # fmt: skip
    assert completed.returncode != 0 and "data_sha256" in completed.stderr and "not reused" in completed.stderr


def test_long_sentences_are_scored_word_for_word_in_windows(tmp_path, tiny_multilingual_bert, xtreme_lite):
    out = tmp_path / "windows"
    summary = run(out, tiny_multilingual_bert, xtreme_lite, "--fusion_layers", "last", "--eval_languages", "fi",
                  "--max_seq_length", "16", "--num_train_epochs", "1", "--do_train", "--do_eval", "--do_predict")  # fmt: skip
    result = summary["runs"]["baseline"]
    assert result["words_past_max_length"]["fi"] > 0
    predicted = (out / "baseline" / "predictions" / "fi.tsv").read_text().split("\n\n")
    gold = (xtreme_lite / "udpos" / "xtreme_udpos_test-fi.tsv").read_text().split("\n\n")[:8]
    for sentence, reference in zip(predicted, gold):  # one line a word, the words of the data, in order
        assert [line.split("\t")[0] for line in sentence.strip().splitlines()] == [
            line.split("\t")[0] for line in reference.strip().splitlines()
        ]
    stored = np.load(out / "baseline" / "predictions.npz")
    assert stored["fi.lengths"].sum() == len(stored["fi.predicted"]) == len(stored["fi.gold"])


def test_fusion_block_gets_its_own_learning_rate_and_keeps_weight_decay_groups(tmp_path):
    model = build(DLFABertForTokenClassification, DLFABertModelTester().get_config())
    args = TrainingArguments(tmp_path, learning_rate=1e-4, weight_decay=0.01, report_to="none", use_cpu=True)
    optimizer = FusionLearningRateTrainer(model=model, args=args, fusion_learning_rate=3e-3).create_optimizer()

    group_of = {id(p): group for group in optimizer.param_groups for p in group["params"]}
    assert sum(len(group["params"]) for group in optimizer.param_groups) == len(group_of)
    assert len(group_of) == len([p for p in model.parameters() if p.requires_grad])
    for name, parameter in model.named_parameters():
        group = group_of[id(parameter)]
        assert group["lr"] == (3e-3 if name.startswith("fusion.") else 1e-4), name
        assert group["weight_decay"] == (0.0 if "bias" in name or "norm" in name.lower() else 0.01), name


def test_peer_fusion_run(tmp_path, tiny_multilingual_bert, xtreme_lite):
    out = tmp_path / "peer"
    summary = run(out, tiny_multilingual_bert, xtreme_lite, "--fusion_layers", "1", "--fusion_method", "concat",
                  "--fusion_learning_rate", "1e-2", "--eval_languages", "de", "--num_train_epochs", "1")  # fmt: skip
    result = summary["runs"]["concat-layer-01+fusion-lr-x10"]  # its own learning rate is part of what it computes
    assert result["fusion_method"] == "concat" and result["fusion_layer"] == 1
    config = json.loads((out / "concat-layer-01+fusion-lr-x10" / "model" / "config.json").read_text())
    assert config["fusion_method"] == "concat" and config["fusion_layer"] == 1


def test_the_scalar_mix_beside_the_baseline_trains_both_under_names_of_their_own(tmp_path, tiny_multilingual_bert):
    # Before: both runs were named `scalar-mix`; the stock baseline head trained under that name, the scalar mix never
    # trained, no baseline row was reported, exit 0. In a one-pass search every head had that name.
    common = (*own_files(tmp_path), "--fusion_method", "scalar_mix", "--fusion_layers", "1,last",
              "--num_train_epochs", "1")  # fmt: skip
    runs = run_harness(tmp_path / "sweep", tiny_multilingual_bert, *common, task="tagging")["runs"]
    assert set(runs) == {"scalar-mix", "baseline"}
    assert (runs["scalar-mix"]["fusion_method"], runs["baseline"]["fusion_method"]) == ("scalar_mix", None)
    config = json.loads((tmp_path / "sweep" / "scalar-mix" / "model" / "config.json").read_text())
    assert config["fusion_method"] == "scalar_mix"

    searched = run_harness(tmp_path / "search", tiny_multilingual_bert, *common, "--layer_search", "one_pass",
                           task="tagging")  # fmt: skip
    search = json.loads((tmp_path / "search" / "layer-search" / "results.json").read_text())
    assert search["heads"] == ["scalar-mix", "baseline"]
    # The chosen head is retrained as what it is (its layer is not read back from a name that carries none).
    chosen = searched["runs"][search["chosen"]]
    assert set(searched["runs"]) == {search["chosen"], "baseline"}
    assert chosen["fusion_method"] == (None if search["chosen"] == "baseline" else "scalar_mix")


def test_training_batches_are_grouped_by_length_unless_the_user_says_otherwise(
    tmp_path, tiny_multilingual_bert, xtreme_lite
):
    """Length-grouped batches are the harness's default (less padding); `--train_sampling_strategy` still wins."""
    common = ("--fusion_layers", "last", "--eval_languages", "de", "--num_train_epochs", "1")
    for strategy, extra in (("group_by_length", ()), ("random", ("--train_sampling_strategy", "random"))):
        run(tmp_path / strategy, tiny_multilingual_bert, xtreme_lite, *common, *extra)
        settings = json.loads((tmp_path / strategy / "baseline" / "settings.json").read_text())
        assert settings["train_sampling_strategy"] == strategy


def test_pawsx_trains_on_its_english_training_file_and_scores_every_test_language(
    tmp_path, tiny_multilingual_bert, xtreme_lite
):
    out = tmp_path / "pairs"
    summary = run(out, tiny_multilingual_bert, xtreme_lite, "--fusion_layers", "1", "--num_train_epochs", "1",
                  "--do_train", "--do_eval", "--do_predict", task="pawsx")  # fmt: skip
    result = summary["runs"]["aif-layer-01"]
    targets = PAWSX_TARGETS
    assert summary["metric"] == "accuracy" and set(result["scores"]) == {"selection", "en", *targets}
    assert result["target_average"] == pytest.approx(np.mean([result["scores"][lang]["accuracy"] for lang in targets]))
    data = result["provenance"]["data"]
    assert data["train"]["file"] == "pawsx/pawsx_train-en.paws-wiki-test.tsv"
    assert data["selection"]["file"] == "pawsx/xtreme_pawsx_dev-en.tsv"
    assert data["en"]["file"] == "pawsx/pawsx_test-en.labeled.tsv"  # English test: scored, apart from the targets
    labels = (out / "aif-layer-01" / "predictions" / "de.txt").read_text().splitlines()
    assert len(labels) == 8 and set(labels) <= {"0", "1"}


def test_evaluation_only_reproduces_the_training_runs_scores(tmp_path, tiny_multilingual_bert, xtreme_lite):
    trained = run(tmp_path / "train", tiny_multilingual_bert, xtreme_lite, "--fusion_layers", "1,last",
                  "--eval_languages", "de,zh", "--num_train_epochs", "1")["runs"]  # fmt: skip
    for name in ("aif-layer-01", "baseline"):  # a DLFA checkpoint, and a plain BERT tagger as the baseline
        evaluated = run_harness(tmp_path / f"eval-{name}", tmp_path / "train" / name / "model", "--data_dir",
                                str(xtreme_lite), "--eval_languages", "de,zh", "--do_eval")["runs"][name]  # fmt: skip
        for language, scores in trained[name]["scores"].items():
            assert evaluated["scores"][language] == pytest.approx(scores), (name, language)
        assert not (tmp_path / f"eval-{name}" / name / "model").exists()  # nothing was trained


def test_nothing_to_do_is_an_error(tmp_path, tiny_multilingual_bert, xtreme_lite):
    completed = run_script("--task", "udpos", "--data_dir", str(xtreme_lite), "--model_name_or_path",
                           str(tiny_multilingual_bert), "--output_dir", str(tmp_path / "x"), cwd=tmp_path, check=False)  # fmt: skip
    assert (
        completed.returncode != 0
        and "nothing to do: pass --do_train, --do_eval and/or --do_predict" in completed.stderr
    )


def test_finished_runs_are_not_redone(tmp_path, tiny_multilingual_bert, xtreme_lite):
    out, common = tmp_path / "resume", ("--eval_languages", "de", "--num_train_epochs", "1")
    run(out, tiny_multilingual_bert, xtreme_lite, "--fusion_layers", "1", *common)
    first = out / "aif-layer-01" / "results.json"
    written = (first.stat().st_mtime_ns, first.read_text())
    if not torch.cuda.is_available():
        assert json.loads(written[1])["device"] == "cpu"  # what the run trained on goes with its numbers
    summary = run(out, tiny_multilingual_bert, xtreme_lite, "--fusion_layers", "1,last", *common)
    assert (first.stat().st_mtime_ns, first.read_text()) == written
    assert set(summary["runs"]) == {"aif-layer-01", "baseline"}


def test_interrupted_training_resumes_to_the_same_result(tmp_path, tiny_multilingual_bert, xtreme_lite):
    out, common = (
        tmp_path / "interrupted",
        ("--fusion_layers", "1", "--eval_languages", "de,zh", "--num_train_epochs", "2"),
    )
    uninterrupted = run(out, tiny_multilingual_bert, xtreme_lite, *common)["runs"]["aif-layer-01"]["scores"]

    # Interrupt after the first epoch: only the first checkpoint survives.
    run_dir = out / "aif-layer-01"
    checkpoints = sorted(run_dir.glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[1]))
    assert len(checkpoints) == 2
    for leftover in (checkpoints[-1], run_dir / "model", run_dir / "results.json"):
        shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()

    resumed = run(out, tiny_multilingual_bert, xtreme_lite, *common)["runs"]["aif-layer-01"]["scores"]
    for language, scores in uninterrupted.items():
        assert resumed[language] == pytest.approx(scores, abs=1e-6), language


LOAD_CHECKPOINT = """
import json, sys
import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

checkpoint, model_dir = sys.argv[1], sys.argv[2]
# The tokenizer is stock, but it reads the config, whose auto_map points at remote code: it needs the flag too.
tokenizer = AutoTokenizer.from_pretrained(checkpoint, trust_remote_code=True)
model = AutoModelForTokenClassification.from_pretrained(checkpoint, trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules."), type(model).__module__
with torch.no_grad():
    logits = model(**tokenizer("Der Hund schläft .", return_tensors="pt")).logits
tagger = pipeline("token-classification", model=model_dir, trust_remote_code=True)
tags = tagger("Der Hund schläft .")
print(json.dumps({"logits": logits.tolist(), "tags": [entity["entity"] for entity in tags]}))
"""


def test_trainer_checkpoint_and_pipeline_load_without_the_plugin(tmp_path, tiny_multilingual_bert, xtreme_lite):
    out = tmp_path / "load"
    run(out, tiny_multilingual_bert, xtreme_lite, "--fusion_layers", "1", "--eval_languages", "de",
        "--num_train_epochs", "1")  # fmt: skip
    checkpoint = next((out / "aif-layer-01").glob("checkpoint-*"))
    assert {"modeling_dlfa.py", "configuration_dlfa.py"} <= {path.name for path in checkpoint.iterdir()}
    # What it trained with, for an evaluation-only run of the checkpoint (none would mean `first`).
    assert json.loads((checkpoint / "config.json").read_text())["label_alignment"] == "first_content"
    stdout = run_without_plugin(LOAD_CHECKPOINT, [str(checkpoint), str(out / "aif-layer-01" / "model")], tmp_path)
    result = json.loads(stdout.strip().splitlines()[-1])

    from transformers import AutoTokenizer

    model = AutoModelForTokenClassification.from_pretrained(checkpoint).eval()
    with torch.no_grad():
        encoding = AutoTokenizer.from_pretrained(checkpoint)("Der Hund schläft .", return_tensors="pt")
        expected = model(**encoding).logits
    torch.testing.assert_close(torch.tensor(result["logits"]), expected, atol=1e-5, rtol=0)
    assert result["tags"] and set(result["tags"]) <= set(model.config.id2label.values())


WORD_PIPELINE = """
import json, sys, warnings
from transformers import AutoTokenizer, pipeline

model_dir, sentences = sys.argv[1], json.loads(sys.argv[2])
tagger = pipeline("token-classification", model=model_dir, trust_remote_code=True)
# the stock tokenizer, without running the folder's code and without the "run custom code?" question
plain_tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    split = tagger(sentences, is_split_into_words=True, word_level=True)
    joined = tagger([" ".join(words) for words in sentences], word_level=True)
    grouped = tagger(sentences, is_split_into_words=True, aggregation_strategy="first")
print(json.dumps({
    "class": type(tagger).__name__,
    "plain_tokenizer_ids": [plain_tokenizer(words, is_split_into_words=True)["input_ids"] for words in sentences],
    "split": [[entity["entity"] for entity in words] for words in split],
    "joined": [[entity["entity"] for entity in words] for words in joined],
    "words": [[entity["word"] for entity in words] for words in split],
    "spans": [[[entity["start"], entity["end"]] for entity in words] for words in joined],
    "score_types": sorted({type(entity["score"]).__name__ for words in split + grouped for entity in words}),
    "empty_grouped_words": sum(entity["word"] == "" for words in grouped for entity in words),
    "warnings": [str(warning.message) for warning in caught],
}))
"""


def read_tagged(path: Path) -> list[list[tuple[str, str]]]:
    """A `--do_predict` tagging file: `token<TAB>tag` lines, a blank line between sentences."""
    sentences = [[]]
    for line in path.read_text().splitlines():
        if line:
            sentences[-1].append(tuple(line.split("\t")))
        elif sentences[-1]:
            sentences.append([])
    return [sentence for sentence in sentences if sentence]


@pytest.mark.parametrize("run_name", ["aif-layer-01", "baseline"])
def test_stock_pipeline_tags_the_words_the_harness_scored(run_name, tmp_path, tiny_multilingual_bert, xtreme_lite,
                                                          offline_tokenizer):  # fmt: skip
    """
    `pipeline("token-classification", model=<run>/model, trust_remote_code=True)` where the plugin is not installed:
    one tag per word, the tag `--do_predict` wrote for it (German, Chinese, Japanese: CJK words are where the
    tokenizer splits off a bare "▁"), for pre-split words and for the same words as one string; plain floats.
    """
    out = tmp_path / "words"
    layers = "1" if run_name != "baseline" else "last"
    run(out, tiny_multilingual_bert, xtreme_lite, "--fusion_layers", layers, "--eval_languages", "de,zh,ja",
        "--num_train_epochs", "1", "--do_train", "--do_eval", "--do_predict")  # fmt: skip
    model_dir = out / run_name / "model"
    assert (model_dir / "pipeline_dlfa.py").is_file()
    expected, sentences = [], []
    for language in ("de", "zh", "ja"):
        for sentence in read_tagged(out / run_name / "predictions" / f"{language}.tsv"):
            words = [word for word, _ in sentence]
            # the tiny backbone has 130 positions: only sentences the harness saw in one window
            if len(offline_tokenizer(words, is_split_into_words=True)["input_ids"]) <= 128:
                sentences.append(words)
                expected.append([tag for _, tag in sentence])
    assert len(sentences) >= 12 and any(len(set(tags)) > 1 for tags in expected)  # a test that can fail
    bare_pieces = sum(offline_tokenizer(words, is_split_into_words=True).tokens().count("▁") for words in sentences)
    assert bare_pieces > 0  # the case the stock heuristic gets wrong is in the data

    stdout = run_without_plugin(WORD_PIPELINE, [str(model_dir), json.dumps(sentences)], tmp_path)
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["class"] == "WordTokenClassificationPipeline"
    assert result["plain_tokenizer_ids"] == [
        offline_tokenizer(words, is_split_into_words=True)["input_ids"] for words in sentences
    ]
    assert result["split"] == expected
    assert result["joined"] == expected
    assert result["words"] == sentences
    for words, spans in zip(sentences, result["spans"]):  # character spans of the words in the joined string
        text = " ".join(words)
        assert [text[start:end] for start, end in spans] == words
    assert result["score_types"] == ["float"]
    assert result["empty_grouped_words"] == 0
    assert not any("does not support real words" in message for message in result["warnings"])


INIT_CHECKPOINT_USE = """
import json, sys
import torch
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

init = sys.argv[1]
tagger, info = AutoModelForTokenClassification.from_pretrained(
    init, num_labels=5, trust_remote_code=True, output_loading_info=True
)
classifier = AutoModelForSequenceClassification.from_pretrained(init, num_labels=3, trust_remote_code=True)
print(json.dumps({
    "tagger": type(tagger).__name__, "classifier": type(classifier).__name__, "missing": sorted(info["missing_keys"]),
    "fusion": tagger.fusion.local_context.reduce.weight[0, :4].tolist(), "gate_init": tagger.config.aif_gate_init,
}))
"""


def test_init_checkpoint_serves_the_stock_example_scripts(tmp_path, tiny_multilingual_bert):
    script = [sys.executable, str(ROOT / "examples" / "make_init_checkpoint.py"), "--base", str(tiny_multilingual_bert),
              "--fusion_layer", "1", "--aif_gate_init", "0.25", "--out", str(tmp_path / "init")]  # fmt: skip
    subprocess.run(script, check=True, capture_output=True, stdin=subprocess.DEVNULL)
    again = subprocess.run(script, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert again.returncode != 0 and "--overwrite" in again.stderr  # nothing a user saved is overwritten
    stdout = run_without_plugin(INIT_CHECKPOINT_USE, [str(tmp_path / "init")], tmp_path)
    result = json.loads(stdout.strip().splitlines()[-1])
    assert (result["tagger"], result["classifier"]) == (
        "DLFABertForTokenClassification",
        "DLFABertForSequenceClassification",
    )
    assert result["missing"] == ["classifier.bias", "classifier.weight"]  # only the script's head is new
    assert result["gate_init"] == 0.25

    from modeling_dlfa import DLFABertModel

    expected = DLFABertModel.from_pretrained(tmp_path / "init").fusion.local_context.reduce.weight[0, :4]
    torch.testing.assert_close(torch.tensor(result["fusion"]), expected)


HUB_LOAD = """
import json, sys
import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer

model = AutoModelForTokenClassification.from_pretrained("dlfa-org/tiny-tagger", trust_remote_code=True).eval()
tokenizer = AutoTokenizer.from_pretrained("dlfa-org/tiny-tagger", trust_remote_code=True)
with torch.no_grad():
    logits = model(**tokenizer("Hallo Welt", return_tensors="pt")).logits
print(json.dumps({"module": type(model).__module__, "logits": logits.tolist()}))
"""


def test_checkpoint_resolves_from_the_hub_cache_offline(tmp_path, tiny_multilingual_bert):
    """A real `from_pretrained("org/name")` resolution through the Hub cache layout, with HF_HUB_OFFLINE=1."""
    from transformers import AutoTokenizer

    model = DLFABertForTokenClassification.from_pretrained(tiny_multilingual_bert, fusion_layer=1, num_labels=4).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_multilingual_bert)
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--dlfa-org--tiny-tagger"
    snapshot = repo / "snapshots" / commit
    model.save_pretrained(snapshot)
    tokenizer.save_pretrained(snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)

    stdout = run_without_plugin(HUB_LOAD, [], tmp_path, env={"HF_HUB_CACHE": str(tmp_path / "hub")})
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["module"].startswith("transformers_modules.dlfa_hyphen_org.tiny_hyphen_tagger")
    with torch.no_grad():
        expected = model(**tokenizer("Hallo Welt", return_tensors="pt")).logits
    torch.testing.assert_close(torch.tensor(result["logits"]), expected, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_two_process_accelerate_launch_keeps_replicas_identical(tmp_path, tiny_multilingual_bert, xtreme_lite):
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines",
        "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(ROOT / "examples" / "run_zero_shot.py"),
        "--task", "udpos", "--data_dir", str(xtreme_lite), "--model_name_or_path", str(tiny_multilingual_bert),
        "--fusion_layers", "1", "--max_train_samples", "16", "--max_eval_samples", "8", "--eval_languages", "de",
        "--num_train_epochs", "2", "--per_device_train_batch_size", "4", "--learning_rate", "1e-3", "--do_train",
        "--do_eval", "--output_dir", str(tmp_path / "ddp"), "--disable_tqdm", "true", "--report_to", "none", "--use_cpu",
    ]  # fmt: skip
    completed = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads((tmp_path / "ddp" / "aif-layer-01" / "results.json").read_text())
    assert result["world_size"] == 2
    first, second = result["replica_parameter_sha256"]
    assert first == second  # gradients were averaged: both ranks end with the same weights
    model = AutoModelForTokenClassification.from_pretrained(tmp_path / "ddp" / "aif-layer-01" / "model")
    assert model.config.fusion_layer == 1


def test_one_pass_layer_search_chooses_on_english_dev_and_keeps_or_retrains(
    tmp_path, tiny_multilingual_bert, xtreme_lite
):
    common = ("--fusion_layers", "1,last", "--layer_search", "one_pass", "--eval_languages", "de",
              "--num_train_epochs", "1", "--logging_steps", "1")  # fmt: skip
    kept = run(tmp_path / "keep", tiny_multilingual_bert, xtreme_lite, *common, "--layer_search_then", "keep")
    search = json.loads((tmp_path / "keep" / "layer-search" / "results.json").read_text())
    assert search["heads"] == ["aif-layer-01", "baseline"] and search["chosen"] == "aif-layer-01"
    assert set(kept["runs"]) == {"one-pass-aif-layer-01", "baseline"}
    # The kept head is an ordinary DLFA checkpoint; its English dev score is the search head's, recomputed.
    kept_run = kept["runs"]["one-pass-aif-layer-01"]
    assert kept_run["scores"]["selection"]["f1"] == pytest.approx(search["head_selection_scores"]["aif-layer-01"])
    config = json.loads((tmp_path / "keep" / "layer-search" / "model" / "config.json").read_text())
    assert config["model_type"] == "dlfa_bert" and config["fusion_layer"] == 1 and "search_layers" not in config
    state = json.loads(next((tmp_path / "keep" / "layer-search").glob("checkpoint-*/trainer_state.json")).read_text())
    logged = [entry for entry in state["log_history"] if "loss" in entry]
    assert logged and {"loss_aif-layer-01", "loss_baseline"} <= set(logged[0])  # every head's loss is logged

    retrained = run(tmp_path / "retrain", tiny_multilingual_bert, xtreme_lite, *common)
    assert set(retrained["runs"]) == {"aif-layer-01", "baseline"}  # the chosen layer trained as an ordinary run
    assert (tmp_path / "retrain" / "aif-layer-01" / "model" / "model.safetensors").is_file()


def test_own_files_train_evaluate_and_predict_unlabelled_text(tmp_path, tiny_multilingual_bert, xtreme_lite):
    """--train_file / --validation_file / --test_files in the stock scripts' formats; the labels come from training."""
    sentences = (xtreme_lite / "panx" / "panx_train-en.tsv").read_text().split("\n\n")[:24]
    rows = [[line.split("\t") for line in sentence.splitlines()] for sentence in sentences]
    train = tmp_path / "train.jsonl"
    train.write_text(
        "".join(json.dumps({"tokens": [t for t, _ in r], "ner_tags": [g for _, g in r]}) + "\n" for r in rows[:16])
    )
    dev = tmp_path / "dev.tsv"
    dev.write_text("\n\n".join("\n".join("\t".join(pair) for pair in r) for r in rows[16:20]) + "\n")
    unlabelled = tmp_path / "sw.txt"  # text to tag: one token a line
    unlabelled.write_text("Nairobi\nni\nmji\n.\n\nAmina\nanaishi\nMombasa\n")
    labelled = tmp_path / "de.jsonl"
    labelled.write_text(
        "".join(json.dumps({"tokens": [t for t, _ in r], "ner_tags": [g for _, g in r]}) + "\n" for r in rows[20:])
    )
    summary = run_harness(
        tmp_path / "own", tiny_multilingual_bert, "--task", "tagging", "--train_file", str(train),
        "--validation_file", str(dev), "--test_files", f"de={labelled},sw={unlabelled}", "--fusion_layers", "1",
        "--num_train_epochs", "1", "--do_train", "--do_eval", "--do_predict", task="tagging",
    )  # fmt: skip
    result = summary["runs"]["aif-layer-01"]
    assert set(result["scores"]) == {"selection", "de"}  # sw has no labels: predictions only
    config = json.loads((tmp_path / "own" / "aif-layer-01" / "model" / "config.json").read_text())
    seen = sorted({tag for r in rows[:16] for _, tag in r})
    assert [config["id2label"][str(i)] for i in range(len(seen))] == seen  # the training file's labels, sorted
    tagged = (tmp_path / "own" / "aif-layer-01" / "predictions" / "sw.tsv").read_text().strip().split("\n\n")
    assert [[line.split("\t")[0] for line in block.splitlines()] for block in tagged] == [
        ["Nairobi", "ni", "mji", "."],
        ["Amina", "anaishi", "Mombasa"],
    ]
    assert all(line.split("\t")[1] in seen for block in tagged for line in block.splitlines())


def test_lora_trains_adapters_and_saves_a_merged_checkpoint(tmp_path, tiny_multilingual_bert, xtreme_lite):
    pytest.importorskip("peft", reason="SKIPPED LOUDLY: LoRA needs the peft package (pip install -e '.[examples]')")
    common = ("--fusion_layers", "1", "--eval_languages", "de", "--num_train_epochs", "1")
    full = run(tmp_path / "full", tiny_multilingual_bert, xtreme_lite, *common)["runs"]["aif-layer-01"]
    lora = run(tmp_path / "lora", tiny_multilingual_bert, xtreme_lite, *common, "--lora_r", "4")["runs"][
        "aif-layer-01+lora-r4"
    ]
    assert lora["trainable_parameters"] < full["trainable_parameters"] / 2
    run_dir = tmp_path / "lora" / "aif-layer-01+lora-r4"
    adapter = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and set(adapter["modules_to_save"]) == {"fusion", "classifier"}
    assert set(adapter["target_modules"]) == {"query", "value"}  # BERT's, the family's default
    assert json.loads((run_dir / "settings.json").read_text())["lora_target_modules"] == "query,value"  # as trained
    # The merged checkpoint is an ordinary DLFA tagger: evaluating it reproduces the LoRA run's scores.
    evaluated = run_harness(tmp_path / "eval", run_dir / "model", "--data_dir", str(xtreme_lite), "--eval_languages",
                            "de", "--do_eval")["runs"]["aif-layer-01"]  # fmt: skip
    for language, scores in lora["scores"].items():
        assert evaluated["scores"][language] == pytest.approx(scores, abs=1e-6), language
    stdout = run_without_plugin(LOAD_CHECKPOINT, [str(run_dir / "model"), str(run_dir / "model")], tmp_path)
    assert json.loads(stdout.strip().splitlines()[-1])["tags"]


def test_lora_takes_its_own_learning_rate_unless_one_is_given(tmp_path):
    """--lora_r without --learning_rate trains at the rate chosen on English dev (benchmarks/lora_vs_full.py)."""
    from dlfa_zero_shot.arguments import LORA_LEARNING_RATE

    base = ["--task", "udpos", "--data_dir", str(tmp_path), "--model_name_or_path", str(tmp_path), "--output_dir",
            str(tmp_path / "out"), "--do_train"]  # fmt: skip
    assert cli.parse_arguments(base)[2].learning_rate == TrainingArguments("x").learning_rate  # full: unchanged
    assert cli.parse_arguments([*base, "--lora_r", "8"])[2].learning_rate == LORA_LEARNING_RATE
    assert cli.parse_arguments([*base, "--lora_r", "8", "--learning_rate", "2e-5"])[2].learning_rate == 2e-5
    # Before: the one-pass search silently trained its encoder in full (at LoRA's rate), under a `+lora` run name.
    with pytest.raises(ValueError, match="--lora_r 8 with --layer_search one_pass"):
        cli.parse_arguments([*base, "--lora_r", "8", "--layer_search", "one_pass"])


HUB_PIPELINE = """
import json
from transformers import AutoModelForTokenClassification, pipeline

model = AutoModelForTokenClassification.from_pretrained("dlfa-org/tiny-tagger", trust_remote_code=True)
tagger = pipeline("token-classification", model="dlfa-org/tiny-tagger", trust_remote_code=True)
print(json.dumps({"module": type(model).__module__, "tags": [entity["entity"] for entity in tagger("Der Hund schläft .")]}))
"""


def test_push_to_hub_dry_run_builds_a_folder_that_loads_offline(tmp_path, tiny_multilingual_bert, xtreme_lite):
    """--push_to_hub builds exactly what it uploads; --hub_dry_run puts it in a Hub cache, loaded with HF_HUB_OFFLINE."""
    from huggingface_hub import ModelCard

    cache = tmp_path / "hub-cache"
    run(tmp_path / "push", tiny_multilingual_bert, xtreme_lite, "--fusion_layers", "1", "--eval_languages", "de",
        "--num_train_epochs", "1", "--push_to_hub", "--hub_model_id", "dlfa-org/tiny-tagger", "--hub_dry_run",
        str(cache))  # fmt: skip
    staged = tmp_path / "push" / "hub-upload"
    assert {"config.json", "model.safetensors", "modeling_dlfa.py", "configuration_dlfa.py", "pipeline_dlfa.py",
            "tokenizer.json", "README.md"} <= {path.name for path in staged.iterdir()}  # fmt: skip
    assert not (staged / "training_args.bin").exists()
    card = ModelCard.load(staged / "README.md", ignore_metadata_errors=False)
    assert card.data.eval_results and 'from_pretrained("dlfa-org/tiny-tagger", trust_remote_code=True)' in card.text
    stdout = run_without_plugin(HUB_PIPELINE, [], tmp_path, env={"HF_HUB_CACHE": str(cache)})
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["module"].startswith("transformers_modules.dlfa_hyphen_org.tiny_hyphen_tagger") and result["tags"]


def test_model_building_takes_fusion_settings_not_the_command_line_classes():
    """
    `heads` builds every model from a `FusionSettings` the CLI makes once from the arguments: it imports nothing from
    the argument module, and the CLI fills each of its fields from the argument of that name (the DLFA fields a stored
    run's settings compare, `arguments.FUSION_SETTINGS`, are its fields and the Trainer's fusion learning rate).
    """
    import ast
    import dataclasses

    from dlfa_zero_shot import heads

    imported = set()
    for node in ast.walk(ast.parse(Path(heads.__file__).read_text())):
        if isinstance(node, ast.ImportFrom):
            imported |= {node.module or "", *(f"{node.module or ''}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
    assert not {name for name in imported if name.split(".")[-1] == "arguments"}, sorted(imported)

    fields = {field.name for field in dataclasses.fields(heads.FusionSettings)}
    model_args = cli.parse_arguments(["--task", "udpos", "--data_dir", "x", "--output_dir", "y", "--do_train",
                                      "--aif_gate", "paper", "--aif_reduction", "4", "--fusion_method", "concat"])[0]  # fmt: skip
    settings = cli.fusion_settings(model_args)
    assert settings.config_fields() == {name: getattr(model_args, name) for name in fields}
    assert (settings.aif_gate, settings.aif_reduction, settings.fusion_method) == ("paper", 4, "concat")


def test_the_backbone_config_is_read_once_per_call(tmp_path, tiny_multilingual_bert, xtreme_lite, monkeypatch):
    """
    The backbone is resolved once into a `Backbone` (its config, family and tokenizer) that the plan and the model
    builders take. Before, a call that trains a DLFA layer and the baseline read the backbone's config six times (the
    padding check, the layer list twice, the DLFA head's family, the baseline's own loading, ...), and an
    evaluation-only call read the checkpoint's more than once. Every config load is counted: `AutoConfig`'s and each
    config class's `from_pretrained` (`DLFAConfig`'s included) read the file through `PreTrainedConfig.get_config_dict`.
    """
    from transformers import PreTrainedConfig

    read = []
    real = PreTrainedConfig.get_config_dict.__func__

    def counted(cls, path, /, **kwargs):  # positional-only: transformers passes a `name_or_path` keyword of its own
        read.append(str(path))
        return real(cls, path, **kwargs)

    monkeypatch.setattr(PreTrainedConfig, "get_config_dict", classmethod(counted))
    out = tmp_path / "train"
    summary = run(out, tiny_multilingual_bert, xtreme_lite, "--fusion_layers", "1,last", "--eval_languages", "de",
                  "--num_train_epochs", "1")  # fmt: skip
    assert set(summary["runs"]) == {"aif-layer-01", "baseline"}
    assert read.count(str(tiny_multilingual_bert)) == 1, read

    checkpoint = out / "aif-layer-01" / "model"
    evaluated = run_harness(tmp_path / "eval", checkpoint, "--data_dir", str(xtreme_lite), "--eval_languages", "de",
                            "--do_eval")["runs"]["aif-layer-01"]  # fmt: skip
    assert evaluated["scores"]["de"] == pytest.approx(summary["runs"]["aif-layer-01"]["scores"]["de"])
    assert read.count(str(checkpoint)) == 1, read
