"""ONNX export for CPU inference: ONNX Runtime gives PyTorch's logits, padding and unseen shapes included."""

import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import BertForSequenceClassification, BertForTokenClassification


if any(importlib.util.find_spec(name) is None for name in ("onnx", "onnxruntime", "onnxscript")):
    pytest.skip(
        "SKIPPED LOUDLY: ONNX export needs onnx, onnxscript and onnxruntime (pip install -e '.[onnx]')",
        allow_module_level=True,
    )

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime  # noqa: E402
import torch  # noqa: E402

from dlfa_zero_shot.files import data_beside  # noqa: E402
from dlfa_zero_shot.onnx_export import (  # noqa: E402
    OPSET,
    compare_with_pytorch,
    export_onnx,
    max_difference,
    quantize_int8,
    write_whole,
)
from modeling_dlfa import DLFABertForSequenceClassification, DLFABertForTokenClassification  # noqa: E402


ROOT = Path(__file__).resolve().parent.parent
SENTENCES = [
    "Der Hund schläft .",
    "我 喜欢 在 北京 学习 中文 。",
    "DLFA fuses the last layer with a lower one , twice .",
]


@pytest.mark.parametrize(
    "model_class",
    [
        DLFABertForTokenClassification,
        DLFABertForSequenceClassification,
        BertForTokenClassification,
        BertForSequenceClassification,
    ],  # fmt: skip
)
def test_onnx_runtime_matches_pytorch_with_padding(model_class, tiny_multilingual_bert, offline_tokenizer, tmp_path):
    extra = {"fusion_layer": 1} if model_class.__name__.startswith("DLFA") else {}
    model = model_class.from_pretrained(tiny_multilingual_bert, num_labels=5, **extra).eval()
    path = export_onnx(model, tmp_path / "model.onnx")
    inputs = dict(offline_tokenizer(SENTENCES, padding=True, return_tensors="pt"))  # 3 rows, unlike the traced 2
    assert inputs["attention_mask"].min() == 0  # the batch is padded
    assert max_difference(model, path, inputs) <= 1e-4
    single = dict(offline_tokenizer(SENTENCES[:1], return_tensors="pt"))  # batch 1, another length
    assert max_difference(model, path, single) <= 1e-4


def test_export_script_checks_and_refuses_to_overwrite(tiny_multilingual_bert, offline_tokenizer, tmp_path):
    model = DLFABertForTokenClassification.from_pretrained(tiny_multilingual_bert, num_labels=5, fusion_layer=1)
    model.save_pretrained(tmp_path / "run")
    offline_tokenizer.save_pretrained(tmp_path / "run")
    command = [sys.executable, str(ROOT / "examples" / "export_onnx.py"), "--model", str(tmp_path / "run"), "--out",
               str(tmp_path / "tagger.onnx")]  # fmt: skip
    first = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "max |difference|" in first.stdout and (tmp_path / "tagger.onnx").stat().st_size > 0
    assert "torchvision is not installed" not in first.stderr  # the command drops that notice, nothing else
    opsets = {entry.domain: entry.version for entry in onnx.load(tmp_path / "tagger.onnx").opset_import}
    assert opsets[""] == OPSET  # the script exports with the library's opset
    again = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert again.returncode != 0 and "nothing is overwritten" in again.stderr
    int8 = subprocess.run([*command[:-1], str(tmp_path / "tagger-int8.onnx"), "--quantize", "int8"],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)  # fmt: skip
    assert int8.returncode == 0 and "the same label on" in int8.stdout, int8.stderr[-3000:]
    assert "MatMulInteger" in {node.op_type for node in onnx.load(tmp_path / "tagger-int8.onnx").graph.node}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run", "tagger-int8.onnx", "tagger.onnx"]


def test_the_export_changes_no_logger_of_the_process(tiny_multilingual_bert, tmp_path):
    """
    Code that runs while the model is exported (here the model's own forward, traced by the exporter; in a server,
    any other thread) logs as the application configured logging. Before, the export set a torch logger's level to
    ERROR for the length of the call, process-wide, and set it back afterwards.
    """
    model = DLFABertForTokenClassification.from_pretrained(tiny_multilingual_bert, num_labels=5, fusion_layer=1)

    def levels() -> dict[str, int]:
        return {
            name: logger.level for name, logger in logging.root.manager.loggerDict.items() if hasattr(logger, "level")
        }

    before, seen = levels(), []
    model.register_forward_pre_hook(lambda module, args, kwargs: seen.append(levels()), with_kwargs=True)
    export_onnx(model, tmp_path / "model.onnx")
    changed = {
        name: (before.get(name, logging.NOTSET), level)
        for during in seen
        for name, level in during.items()
        if level != before.get(name, logging.NOTSET)
    }
    assert seen and not changed, changed


@pytest.mark.parametrize("family", ["xlm-roberta", "roberta", "deberta-v2", "distilbert", "electra"])
def test_generic_dlfa_tagger_of_every_family_exports(family, offline_tokenizer, tmp_path):
    from transformers import AutoConfig, AutoModel

    from modeling_dlfa import DLFAForTokenClassification

    config = AutoConfig.for_model(family, vocab_size=len(offline_tokenizer), hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=4, intermediate_size=37, hidden_dim=37,
                                  max_position_embeddings=132, pad_token_id=offline_tokenizer.pad_token_id)  # fmt: skip
    AutoModel.from_config(config).save_pretrained(tmp_path / "encoder")  # a stock checkpoint of the family
    model = DLFAForTokenClassification.from_pretrained(tmp_path / "encoder", num_labels=5, fusion_layer=1).eval()
    path = export_onnx(model, tmp_path / "model.onnx")
    inputs = dict(offline_tokenizer(SENTENCES, padding=True, return_tensors="pt"))
    assert max_difference(model, path, inputs) <= 1e-4, family


def largest_stored_weight(path: Path) -> int:
    """The largest |weight| an int8 model at `path` stores for its int8 products (`MatMulInteger`'s second input)."""
    graph = onnx.load(path).graph
    products = [node for node in graph.node if node.op_type == "MatMulInteger"]
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    weights = [onnx.numpy_helper.to_array(initializers[node.input[1]]).astype(np.int16) for node in products]
    assert weights, f"{path} has no int8 products"
    return max(int(np.abs(weight).max()) for weight in weights)


@pytest.mark.parametrize("family", ["bert", "xlm-roberta", "roberta", "deberta-v2", "distilbert", "electra"])
def test_int8_tagger_of_every_family_stays_within_its_bound_of_pytorch(family, offline_tokenizer, tmp_path):
    """
    int8 dynamic quantization rounds each quantized product's inputs to 1/255 of their range and its weights (7 bits)
    to 1/128 of each output channel's: on these 2-layer taggers the logits move by 1-2.4% of their largest value. The
    bound, 5% of it, leaves room for other CPUs' int8 kernels and still catches a broken quantization (a wrong scale
    moves the logits by their own size) and full-range weights' saturation on CPUs without VNNI (up to 38% on AVX2);
    within it, every token whose top two labels PyTorch separates by more than twice the bound keeps its label. The
    weights' 7 bits are checked as stored too: the saturation shows in the logits only on a CPU without VNNI.
    """
    from transformers import AutoConfig, AutoModel

    from modeling_dlfa import DLFAForTokenClassification

    config = AutoConfig.for_model(family, vocab_size=len(offline_tokenizer), hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=4, intermediate_size=37, hidden_dim=37,
                                  max_position_embeddings=132, pad_token_id=offline_tokenizer.pad_token_id)  # fmt: skip
    torch.manual_seed(0)
    AutoModel.from_config(config).save_pretrained(tmp_path / "encoder")  # a stock checkpoint of the family
    model = DLFAForTokenClassification.from_pretrained(tmp_path / "encoder", num_labels=5, fusion_layer=1).eval()
    int8 = quantize_int8(export_onnx(model, tmp_path / "float32.onnx"), tmp_path / "int8.onnx")
    assert largest_stored_weight(int8) <= 64  # 7 bits on any CPU: no saturation
    inputs = dict(offline_tokenizer(SENTENCES, padding=True, return_tensors="pt"))
    with torch.no_grad():
        logits = model(**inputs).logits[inputs["attention_mask"].bool()]
    bound = 0.05 * logits.abs().max().item()
    agreement = compare_with_pytorch(model, int8, inputs)
    assert agreement.max_difference <= bound, (family, agreement, bound)
    top_two = logits.topk(2, dim=-1).values
    decided = (top_two[:, 0] - top_two[:, 1]) > 2 * bound
    session = onnxruntime.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
    int8_labels = session.run(["logits"], {name: value.numpy() for name, value in inputs.items()})[0].argmax(-1)
    kept = torch.from_numpy(int8_labels)[inputs["attention_mask"].bool()] == logits.argmax(-1)
    assert kept[decided].all() and decided.any(), family


def test_int8_weights_use_the_bits_asked_for_and_no_other_number_is_taken(tiny_multilingual_bert, tmp_path):
    """
    `quantize_int8` stores 7-bit weights unless asked for 8, which use the full int8 range (what
    benchmarks/onnx_int8_accuracy.py --weight_bits 8 measures); any other number of bits is refused by name and
    writes nothing.
    """
    model = DLFABertForTokenClassification.from_pretrained(tiny_multilingual_bert, num_labels=5, fusion_layer=1)
    float32 = export_onnx(model, tmp_path / "float32.onnx")
    assert largest_stored_weight(quantize_int8(float32, tmp_path / "7" / "int8.onnx")) <= 64
    assert largest_stored_weight(quantize_int8(float32, tmp_path / "8" / "int8.onnx", weight_bits=8)) == 127
    with pytest.raises(ValueError, match="weight_bits=4"):
        quantize_int8(float32, tmp_path / "4" / "int8.onnx", weight_bits=4)
    assert not (tmp_path / "4").exists()


def test_a_model_file_is_written_whole_or_not_at_all(tmp_path):
    """A write that fails leaves neither the file nor anything half-written beside it; one that succeeds, the file."""

    def failing(destination):
        destination.write_bytes(b"half a model")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_whole(tmp_path / "model.onnx", failing)
    assert list(tmp_path.iterdir()) == []
    write_whole(tmp_path / "model.onnx", lambda destination: destination.write_bytes(b"a model"))
    assert [path.name for path in tmp_path.iterdir()] == ["model.onnx"]
    assert (tmp_path / "model.onnx").read_bytes() == b"a model"


def test_a_model_write_on_a_full_disk_is_a_disk_full_error_naming_the_folder(tmp_path):
    """Before, the writer's bare OSError came through: no folder, no bytes, no advice; and nothing may be left."""
    import errno

    from dlfa_zero_shot.files import DiskFullError

    def full(destination):
        destination.write_bytes(b"half a model")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFullError, match=str(tmp_path)):
        write_whole(tmp_path / "model.onnx", full)
    assert list(tmp_path.iterdir()) == []


def write_model_and_weights(destination: Path) -> None:
    """What an export of a model over 2 GB writes: the model file, and its weights beside it (`files.data_beside`)."""
    destination.write_bytes(b"a model")
    data_beside(destination).write_bytes(b"its weights")


def test_a_model_write_is_synced_before_it_is_renamed_into_place(tmp_path, monkeypatch):
    """
    A power cut after the rename must not find an empty model: each file (the model and its external weights) is
    fsynced before it is renamed into place, the model last, and the folder after the renames (which makes them last).
    """
    from dlfa_zero_shot import files

    calls = []
    real_sync, real_replace = files.sync, os.replace
    monkeypatch.setattr(files, "sync", lambda path: (calls.append(("sync", Path(path))), real_sync(path)))
    monkeypatch.setattr(os, "replace", lambda source, target: (calls.append(("rename", Path(target))),
                                                               real_replace(source, target)))  # fmt: skip

    write_whole(tmp_path / "model.onnx", write_model_and_weights)
    renames = [target for call, target in calls if call == "rename"]
    assert renames == [tmp_path / "model.onnx.data", tmp_path / "model.onnx"]  # the model last
    for target in renames:
        renamed = calls.index(("rename", target))
        synced = [index for index, (call, path) in enumerate(calls) if call == "sync" and path.name == target.name]
        assert synced and synced[0] < renamed, (target, calls)  # before: only "was it synced at all" was checked
    assert calls[-1] == ("sync", tmp_path), calls


def test_a_model_write_never_replaces_a_file_beside_it_it_did_not_write(tmp_path):
    """
    A model over 2 GB keeps its weights in `<name>.data`: an existing file of that name is the user's (nothing
    replaces an existing `--out` either), so the write is refused, naming it, and leaves every file as it was.
    """

    (tmp_path / "model.onnx.data").write_bytes(b"the user's file")
    with pytest.raises(FileExistsError, match=re.escape(f"{tmp_path / 'model.onnx.data'} exists")):
        write_whole(tmp_path / "model.onnx", write_model_and_weights)
    # before: the user's file replaced by the new weights, without a word
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.onnx.data"]
    assert (tmp_path / "model.onnx.data").read_bytes() == b"the user's file"


KILLED_WRITE = """
import os, sys
from pathlib import Path
from dlfa_zero_shot.onnx_export import write_whole

def killed(destination):
    destination.write_bytes(b"half a model")
    os._exit(9)

write_whole(Path(sys.argv[1]), killed)
"""


def test_a_killed_model_write_leaves_what_remove_leftovers_clears(tmp_path):
    """Before, a killed write left a `.model.onnx.<random>` folder that no cleaner knew of."""
    from dlfa_zero_shot.files import remove_leftovers

    completed = subprocess.run(
        [sys.executable, "-c", KILLED_WRITE, str(tmp_path / "model.onnx")], check=False, capture_output=True
    )
    assert completed.returncode == 9, completed.stderr.decode()[-2000:]
    assert not (tmp_path / "model.onnx").exists()
    leftovers = sorted(tmp_path.iterdir())
    assert leftovers and remove_leftovers(tmp_path) == leftovers and list(tmp_path.iterdir()) == []


def test_the_export_script_never_leaves_a_rejected_model_at_out(tiny_multilingual_bert, offline_tokenizer, tmp_path):
    """
    A model that fails its check is not written to --out; before, it was, and the rerun with a looser tolerance was
    refused because --out existed.
    """
    model = DLFABertForTokenClassification.from_pretrained(tiny_multilingual_bert, num_labels=5, fusion_layer=1)
    model.save_pretrained(tmp_path / "run")
    offline_tokenizer.save_pretrained(tmp_path / "run")
    command = [sys.executable, str(ROOT / "examples" / "export_onnx.py"), "--model", str(tmp_path / "run"), "--out",
               str(tmp_path / "tagger.onnx")]  # fmt: skip
    rejected = subprocess.run(
        [*command, "--tolerance", "0"], check=False, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    assert rejected.returncode != 0 and "differs from PyTorch" in rejected.stderr, rejected.stderr[-3000:]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"]
    accepted = subprocess.run(command, check=False, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert accepted.returncode == 0, accepted.stderr[-3000:]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run", "tagger.onnx"]


def test_the_export_script_refuses_an_existing_out_data_up_front(tiny_multilingual_bert, offline_tokenizer, tmp_path):
    """
    --out's weights file (`<out>.data`, a model over 2 GB's) is the user's: refused up front with --out itself, before
    the model is read; before, it was refused only after the export, quantization and comparison, as a traceback.
    """
    model = DLFABertForTokenClassification.from_pretrained(tiny_multilingual_bert, num_labels=5, fusion_layer=1)
    model.save_pretrained(tmp_path / "run")
    offline_tokenizer.save_pretrained(tmp_path / "run")
    (tmp_path / "tagger.onnx.data").write_bytes(b"the user's file")
    completed = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "export_onnx.py"), "--model", str(tmp_path / "run"), "--out",
         str(tmp_path / "tagger.onnx"), "--quantize", "int8"],
        check=False, capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert completed.returncode != 0
    refusal = f"{tmp_path / 'tagger.onnx.data'} exists; choose another --out"
    assert refusal in completed.stderr, completed.stderr[-3000:]
    assert "Traceback" not in completed.stderr and "torch.onnx" not in completed.stdout + completed.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run", "tagger.onnx.data"]
    assert (tmp_path / "tagger.onnx.data").read_bytes() == b"the user's file"


def test_the_int8_accuracy_benchmark_scores_a_run_as_the_harness_does(tiny_multilingual_bert, xtreme_lite, tmp_path):
    """
    benchmarks/onnx_int8_accuracy.py reads a harness run's data again, exports its model and scores it: float32 ONNX
    predicts the run's own label for every word (its predictions.npz) and gives its scores on every language, sentences
    split into windows included, in the run's own evaluation batches (int8's scores depend on them); int8's change is
    int8's score less float32's.
    """
    from harness import run_harness
    from test_benchmark import script_module

    run_harness(tmp_path / "sweep", tiny_multilingual_bert, "--data_dir", str(xtreme_lite), "--fusion_layers", "1",
                "--eval_languages", "de,zh", "--max_seq_length", "16", "--max_train_samples", "64",
                "--num_train_epochs", "4", "--per_device_eval_batch_size", "3")  # fmt: skip
    (run,) = [folder for folder in (tmp_path / "sweep").iterdir() if (folder / "results.json").is_file()]
    benchmark = script_module("onnx_int8_accuracy")
    result = benchmark.int8_accuracy(run, xtreme_lite)
    harness = json.loads((run / "results.json").read_text())
    assert set(result["languages"]) == set(harness["scores"]) == {"selection", "de", "zh"}
    assert set(result["float32_predictions_as_the_runs"].values()) == {1.0}
    with np.load(run / "predictions.npz") as records:  # not one label everywhere: the order of words matters
        assert len(np.unique(records["selection.predicted"])) > 2
    for language, row in result["languages"].items():
        assert row["float32"] == round(100 * harness["scores"][language]["f1"], 2), language
        assert row["change"] == round(row["int8"] - row["float32"], 2)
    assert result["targets"] == ["de", "zh"] and "| zh |" in benchmark.table(result)
    assert result["batch_size"] == 3  # the run's --per_device_eval_batch_size, not a default of the benchmark's

    changed = tmp_path / "changed"  # the same files, one tag of the German file changed: another data set
    for entry in harness["provenance"]["data"].values():
        (changed / entry["file"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(xtreme_lite / entry["file"], changed / entry["file"])
    german = changed / harness["provenance"]["data"]["de"]["file"]
    german.write_text(german.read_text().replace("\tNOUN", "\tVERB", 1))
    with pytest.raises(SystemExit, match=f"not the data this run was scored on: {german.relative_to(changed)} "):
        benchmark.run_data(harness, changed)
