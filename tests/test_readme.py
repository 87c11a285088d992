"""The README's quickstart runs as written (on a small 12-layer BERT folder with the real multilingual tokenizer)."""

import re
import subprocess
import sys
from pathlib import Path

from dlfa_tester import save_tiny_bert


README = Path(__file__).resolve().parent.parent / "README.md"


def test_quickstart_runs_as_written(tmp_path, offline_tokenizer):
    snippet = re.search(r"## Quickstart\n\n```python\n(.*?)```", README.read_text(), re.DOTALL).group(1)
    assert "path/to/bert" in snippet
    bert = save_tiny_bert(tmp_path / "bert", offline_tokenizer, num_hidden_layers=12)  # fusion_layer=8 fits

    script = (
        snippet.replace("path/to/bert", str(bert)) + "\nprint(type(reloaded).__name__, reloaded.config.fusion_layer)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip().splitlines()[-1] == "DLFABertForTokenClassification 8"
    assert (tmp_path / "dlfa-tagger" / "modeling_dlfa.py").is_file()


def test_any_encoder_example_runs_as_written(tmp_path, offline_tokenizer):
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    snippet = re.search(r"## Any encoder.*?```python\n(.*?)```", README.read_text(), re.DOTALL).group(1)
    assert "path/to/xlm-roberta" in snippet
    config = XLMRobertaConfig(vocab_size=len(offline_tokenizer), hidden_size=32, num_hidden_layers=12,
                              num_attention_heads=4, intermediate_size=37, max_position_embeddings=132,
                              pad_token_id=offline_tokenizer.pad_token_id)  # fmt: skip
    XLMRobertaForMaskedLM(config).save_pretrained(tmp_path / "xlmr")  # a stock checkpoint, keys `roberta.*`
    offline_tokenizer.save_pretrained(tmp_path / "xlmr")

    script = snippet.replace("path/to/xlm-roberta", str(tmp_path / "xlmr"))
    script += "\nprint(type(reloaded).__name__, reloaded.config.encoder_config.model_type, reloaded.config.fusion_layer)\n"
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip().splitlines()[-1] == "DLFAForSequenceClassification xlm-roberta 8"
