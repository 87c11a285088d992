"""The zero-shot harness end to end on a tiny BERT with the real multilingual tokenizer and real data slices."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForTokenClassification, TrainingArguments

from dlfa_tester import DLFABertModelTester, build
from modeling_dlfa import DLFABertForTokenClassification
from remote_code import run_without_plugin
from run_zero_shot import FusionLearningRateTrainer, main, parse_layers, run_name


def run(output_dir: Path, backbone: Path, data_dir: Path, *extra: str, task: str = "udpos") -> dict:
    return run_harness(output_dir, backbone, "--data_dir", str(data_dir), *extra, task=task)


def run_harness(output_dir: Path, backbone: Path, *extra: str, task: str = "udpos") -> dict:
    """The harness on a small slice, quickly: the data source and anything else comes in `extra`."""
    return main([
        "--task", task, "--model_name_or_path", str(backbone),
        "--output_dir", str(output_dir), "--max_train_samples", "16", "--max_eval_samples", "8",
        "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "8", "--learning_rate", "1e-3",
        "--use_cpu", "--seed", "0", "--disable_tqdm", "true", "--report_to", "none", "--save_total_limit", "3",
        *extra,
    ])  # fmt: skip


def test_layer_specs():
    assert parse_layers("1-3,last,2", 12) == [1, 2, 3, "last"]
    with pytest.raises(ValueError, match="layer 12 is out of range 1..11"):
        parse_layers("10-12", 12)
    with pytest.raises(ValueError, match="'top' is neither a layer"):
        parse_layers("top", 12)


def test_sweep_writes_json_markdown_heatmap_and_selects_on_english(tmp_path, tiny_multilingual_bert, xtreme_lite):
    summary = run(
        tmp_path,
        tiny_multilingual_bert,
        xtreme_lite,
        "--fusion_layers",
        "1,last",
        "--eval_languages",
        "en,de,zh",
        "--num_train_epochs",
        "1",
    )
    runs = summary["runs"]
    assert set(runs) == {"layer-01", "last"} and summary["metric"] == "f1"
    best = max(runs, key=lambda name: runs[name]["scores"]["selection"]["f1"])
    assert summary["selected_by_english_dev"] == best
    for result in runs.values():
        assert set(result["scores"]) == {"selection", "en", "de", "zh"}
        for scores in result["scores"].values():
            assert set(scores) == {"f1", "precision", "recall", "token_accuracy"}
            assert all(0.0 <= value <= 1.0 for value in scores.values())
        assert result["target_average"] == pytest.approx(
            (result["scores"]["de"]["f1"] + result["scores"]["zh"]["f1"]) / 2
        )

    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    table = (tmp_path / "summary.md").read_text()
    assert "| run | en dev | en | de | zh | avg (targets) |" in table and f"{best} (selected)" in table
    assert (tmp_path / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model_dir = tmp_path / "layer-01" / "model"
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
    scores = runs["layer-01"]["scores"]
    assert reported["seqeval F1 (de, zero-shot)"] == round(100 * scores["de"]["f1"], 2)
    assert reported["seqeval F1 (en)"] == round(100 * scores["en"]["f1"], 2)
    assert "trust_remote_code=True" in card and "| fusion layer (fused with the last, layer 2) | 1 |" in card


def test_run_names_say_the_fusion_and_its_layer():
    assert [run_name("last", "aif"), run_name(8, "aif"), run_name(8, "concat"), run_name(8, "scalar_mix")] == [
        "last", "layer-08", "concat-layer-08", "scalar_mix"
    ]


def test_fusion_block_gets_its_own_learning_rate_and_keeps_weight_decay_groups(tmp_path):
    model = build(DLFABertForTokenClassification, DLFABertModelTester().get_config())
    args = TrainingArguments(tmp_path, learning_rate=1e-4, weight_decay=0.01, report_to="none", use_cpu=True)
    optimizer = FusionLearningRateTrainer(model=model, args=args, fusion_learning_rate=3e-3).create_optimizer()

    group_of = {id(p): group for group in optimizer.param_groups for p in group["params"]}
    assert sum(len(group["params"]) for group in optimizer.param_groups) == len(group_of)
    assert len(group_of) == len([p for p in model.parameters() if p.requires_grad])
    for name, parameter in model.named_parameters():
        group = group_of[id(parameter)]
        assert group["lr"] == (3e-3 if name.startswith("bert.fusion.") else 1e-4), name
        assert group["weight_decay"] == (0.0 if "bias" in name or "norm" in name.lower() else 0.01), name


def test_peer_fusion_run(tmp_path, tiny_multilingual_bert, xtreme_lite):
    summary = run(
        tmp_path, tiny_multilingual_bert, xtreme_lite, "--fusion_layers", "1", "--fusion_method", "concat",
        "--fusion_learning_rate", "1e-2", "--eval_languages", "de", "--num_train_epochs", "1",
    )  # fmt: skip
    result = summary["runs"]["concat-layer-01"]
    assert result["fusion_method"] == "concat" and result["fusion_layer"] == 1
    config = json.loads((tmp_path / "concat-layer-01" / "model" / "config.json").read_text())
    assert config["fusion_method"] == "concat" and config["fusion_layer"] == 1


def test_pair_task_run(tmp_path, tiny_multilingual_bert, xtreme_lite):
    summary = run(
        tmp_path, tiny_multilingual_bert, xtreme_lite, "--fusion_layers", "1", "--num_train_epochs", "1", task="pawsx"
    )
    result = summary["runs"]["layer-01"]
    assert summary["metric"] == "accuracy" and set(result["scores"]) == {"selection", "de"}
    assert result["target_average"] == result["scores"]["de"]["accuracy"]


def test_finished_runs_are_not_redone(tmp_path, tiny_multilingual_bert, xtreme_lite):
    common = ("--eval_languages", "de", "--num_train_epochs", "1")
    run(tmp_path, tiny_multilingual_bert, xtreme_lite, "--fusion_layers", "1", *common)
    first = tmp_path / "layer-01" / "results.json"
    written = (first.stat().st_mtime_ns, first.read_text())
    summary = run(tmp_path, tiny_multilingual_bert, xtreme_lite, "--fusion_layers", "1,last", *common)
    assert (first.stat().st_mtime_ns, first.read_text()) == written
    assert set(summary["runs"]) == {"layer-01", "last"}


def test_interrupted_training_resumes_to_the_same_result(tmp_path, tiny_multilingual_bert, xtreme_lite):
    common = ("--fusion_layers", "1", "--eval_languages", "de,zh", "--num_train_epochs", "2")
    uninterrupted = run(tmp_path, tiny_multilingual_bert, xtreme_lite, *common)["runs"]["layer-01"]["scores"]

    # Interrupt after the first epoch: only the first checkpoint survives.
    run_dir = tmp_path / "layer-01"
    checkpoints = sorted(run_dir.glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[1]))
    assert len(checkpoints) == 2
    for leftover in (checkpoints[-1], run_dir / "model", run_dir / "results.json"):
        shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()

    resumed = run(tmp_path, tiny_multilingual_bert, xtreme_lite, *common)["runs"]["layer-01"]["scores"]
    for language, scores in uninterrupted.items():
        for name, value in scores.items():
            assert resumed[language][name] == pytest.approx(value, abs=1e-6), (language, name)


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
    run(tmp_path, tiny_multilingual_bert, xtreme_lite, "--fusion_layers", "1", "--eval_languages", "de",
        "--num_train_epochs", "1")  # fmt: skip
    checkpoint = next((tmp_path / "layer-01").glob("checkpoint-*"))
    assert {"modeling_dlfa.py", "configuration_dlfa.py"} <= {path.name for path in checkpoint.iterdir()}
    stdout = run_without_plugin(LOAD_CHECKPOINT, [str(checkpoint), str(tmp_path / "layer-01" / "model")], tmp_path)
    result = json.loads(stdout.strip().splitlines()[-1])

    from transformers import AutoTokenizer

    model = AutoModelForTokenClassification.from_pretrained(checkpoint).eval()
    with torch.no_grad():
        encoding = AutoTokenizer.from_pretrained(checkpoint)("Der Hund schläft .", return_tensors="pt")
        expected = model(**encoding).logits
    torch.testing.assert_close(torch.tensor(result["logits"]), expected, atol=1e-5, rtol=0)
    assert result["tags"] and set(result["tags"]) <= set(model.config.id2label.values())


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
    "fusion": tagger.bert.fusion.local_context.reduce.weight[0, :4].tolist(),
}))
"""


def test_init_checkpoint_serves_the_stock_example_scripts(tmp_path, tiny_multilingual_bert):
    from make_init_checkpoint import make_init_checkpoint

    init = make_init_checkpoint(str(tiny_multilingual_bert), 1, tmp_path / "init")
    with pytest.raises(FileExistsError, match="--overwrite"):
        make_init_checkpoint(str(tiny_multilingual_bert), 1, init)
    stdout = run_without_plugin(INIT_CHECKPOINT_USE, [str(init)], tmp_path)
    result = json.loads(stdout.strip().splitlines()[-1])
    assert (result["tagger"], result["classifier"]) == (
        "DLFABertForTokenClassification",
        "DLFABertForSequenceClassification",
    )
    assert result["missing"] == ["classifier.bias", "classifier.weight"]  # only the script's head is new

    from modeling_dlfa import DLFABertModel

    expected = DLFABertModel.from_pretrained(init).fusion.local_context.reduce.weight[0, :4]
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
    from modeling_dlfa import DLFABertForTokenClassification
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
    script = Path(__file__).resolve().parent.parent / "examples" / "run_zero_shot.py"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines",
        "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(script),
        "--task", "udpos", "--data_dir", str(xtreme_lite), "--model_name_or_path", str(tiny_multilingual_bert),
        "--fusion_layers", "1", "--max_train_samples", "16", "--max_eval_samples", "8", "--eval_languages", "de",
        "--num_train_epochs", "2", "--per_device_train_batch_size", "4", "--learning_rate", "1e-3",
        "--output_dir", str(tmp_path / "ddp"), "--disable_tqdm", "true", "--report_to", "none", "--use_cpu",
    ]  # fmt: skip
    completed = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads((tmp_path / "ddp" / "layer-01" / "results.json").read_text())
    assert result["world_size"] == 2
    first, second = result["replica_parameter_sha256"]
    assert first == second  # gradients were averaged: both ranks end with the same weights
    assert (
        AutoModelForTokenClassification.from_pretrained(tmp_path / "ddp" / "layer-01" / "model").config.fusion_layer
        == 1
    )
