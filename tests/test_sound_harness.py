"""
The harness never hands back a wrong answer without a word (issue "A sound harness"): each test here failed on the
code before its fix.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from harness import call_main, own_files, run_harness, run_script
from safetensors.torch import load_file, save_file
from transformers import (
    BertForTokenClassification,
    BertTokenizerFast,
    TrainingArguments,
    XLMRobertaConfig,
    XLMRobertaForMaskedLM,
)

from dlfa_tester import DLFABertModelTester, build, save_tiny_bert
from dlfa_zero_shot import names, study_statistics
from dlfa_zero_shot.features import examples_dataset, tokenize_tagging, word_predictions
from dlfa_zero_shot.layer_search import DLFAForLayerSearch
from dlfa_zero_shot.readers import TaggedSentence
from dlfa_zero_shot.tasks import TASKS
from dlfa_zero_shot.training import (
    FusionLearningRateTrainer,
    ZeroShotScorer,
    apply_lora,
    load_new_head,
    write_predictions,
)
from remote_code import run_without_plugin


ROOT = Path(__file__).resolve().parent.parent


def run(output_dir, backbone, data_dir, *extra: str) -> dict:
    return run_harness(output_dir, backbone, "--data_dir", str(data_dir), "--eval_languages", "de",
                       "--num_train_epochs", "1", *extra)  # fmt: skip


def test_one_pass_search_keeps_its_head_under_a_non_default_gate(tmp_path, tiny_multilingual_bert, xtreme_lite):
    # Before: KeyError 'aif-layer-01' after training (the kept head was looked up under the default gate's name).
    summary = run(tmp_path / "keep", tiny_multilingual_bert, xtreme_lite, "--fusion_layers", "1,last",
                  "--layer_search", "one_pass", "--layer_search_then", "keep", "--aif_gate", "paper")  # fmt: skip
    assert set(summary["runs"]) == {"one-pass-paper-gate-layer-01", "baseline"}
    search = json.loads((tmp_path / "keep" / "layer-search" / "results.json").read_text())
    assert search["heads"] == ["paper-gate-layer-01", "baseline"] and search["chosen"] == "paper-gate-layer-01"
    config = json.loads((tmp_path / "keep" / "layer-search" / "model" / "config.json").read_text())
    assert config["aif_gate"] == "paper"


def test_layer_search_fusion_blocks_get_the_fusion_learning_rate(tmp_path):
    # Before: the search's `fusions.<layer>` blocks were looked up as `.fusion.` and trained at the encoder's rate.
    config = DLFABertModelTester().get_config()
    config.search_layers, config.search_problem = [1, 2], "token"
    model = build(DLFAForLayerSearch, config)
    args = TrainingArguments(tmp_path, learning_rate=1e-4, report_to="none", use_cpu=True)
    optimizer = FusionLearningRateTrainer(model=model, args=args, fusion_learning_rate=3e-3).create_optimizer()
    rate = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    fusion = [name for name, _ in model.named_parameters() if name.startswith("fusions.")]
    assert fusion and all(rate[id(p)] == 3e-3 for name, p in model.named_parameters() if name in fusion)
    assert all(rate[id(p)] == 1e-4 for name, p in model.named_parameters() if name not in fusion)


def test_runs_that_differ_in_one_setting_keep_both_results(tmp_path, tiny_multilingual_bert, xtreme_lite):
    # Before: the r=8 run found the r=4 run's results.json under the same name, reported it as its own, saved no model.
    out = tmp_path / "shared"
    first = run(out, tiny_multilingual_bert, xtreme_lite, "--fusion_layers", "1")["runs"]
    second = run(out, tiny_multilingual_bert, xtreme_lite, "--fusion_layers", "1", "--aif_reduction", "8")["runs"]
    assert set(first) == {"aif-layer-01"} and set(second) == {"aif-layer-01+r8"}
    for name, reduction in (("aif-layer-01", 4), ("aif-layer-01+r8", 8)):
        assert json.loads((out / name / "model" / "config.json").read_text())["aif_reduction"] == reduction
        assert json.loads((out / name / "settings.json").read_text())["aif_reduction"] == reduction
    assert first["aif-layer-01"]["trainable_parameters"] != second["aif-layer-01+r8"]["trainable_parameters"]

    # A setting the name does not carry: the stored result is not reused, and the error names what differs.
    completed = call_main("--task", "udpos", "--model_name_or_path", str(tiny_multilingual_bert), "--output_dir",
                           str(out), "--data_dir", str(xtreme_lite), "--eval_languages", "de", "--num_train_epochs",
                           "1", "--fusion_layers", "1", "--max_train_samples", "16", "--max_eval_samples", "8",
                           "--per_device_train_batch_size", "8", "--learning_rate", "2e-3", "--use_cpu", "--seed", "0",
                           "--do_train", "--do_eval", "--report_to", "none", cwd=tmp_path, check=False)  # fmt: skip
    assert completed.returncode != 0
    assert "learning_rate: stored 0.001, requested 0.002" in completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.mark.parametrize(
    "name",
    ["paper-gate-layer-08+gate-init-0.1+r8+layer-norm+align-first+lora-r8", "baseline+align-first+lora-r4",
     "concat-layer-08+fusion-lr-x10", "aif-layer-11+r2"],
)  # fmt: skip
def test_every_setting_that_changes_a_run_is_in_its_name(name):
    settings = names.configuration_of(name)
    assert names.run_name(**settings) == name and names.layer_of(name) == settings["fusion_layer"]


def test_names_of_settings_that_change_nothing_stay_the_same():
    # The gate's settings mean nothing to the baseline or the concatenation; archived names stay as they were.
    assert names.run_name(None, "aif", "paper", 0.1, aif_reduction=8) == "baseline"
    assert names.run_name(11, "concat", "paper", aif_norm="layer") == "concat-layer-11"
    assert names.run_name(11, label_alignment=None) == "aif-layer-11"  # a pair task has no label alignment


def save_tiny_xlm_roberta(folder, tokenizer, pad_token_id=None):
    pad_token_id = tokenizer.pad_token_id if pad_token_id is None else pad_token_id
    config = XLMRobertaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                              intermediate_size=37, max_position_embeddings=132, pad_token_id=pad_token_id)  # fmt: skip
    torch.manual_seed(0)
    XLMRobertaForMaskedLM(config).save_pretrained(folder)  # keys `roberta.*`, as Hub checkpoints have them
    tokenizer.save_pretrained(folder)
    return folder


def test_an_xlm_roberta_checkpoint_trains_from_its_own_encoder(tmp_path, offline_tokenizer, xtreme_lite):
    # Before: exit 0, no warning (the load report was muted), and the encoder trained from random weights (BERT's
    # modules, BERT's position ids). Now the family's own modules load every encoder weight.
    folder = save_tiny_xlm_roberta(tmp_path / "xlmr", offline_tokenizer)
    summary = run(tmp_path / "o", folder, xtreme_lite, "--fusion_layers", "1,last", "--learning_rate", "1e-12")
    assert set(summary["runs"]) == {"aif-layer-01", "baseline"}
    checkpoint = load_file(folder / "model.safetensors")
    for name, prefix in (("aif-layer-01", "roberta."), ("baseline", "roberta.")):
        saved = load_file(tmp_path / "o" / name / "model" / "model.safetensors")
        for key in ("encoder.layer.0.attention.self.query.weight", "embeddings.position_embeddings.weight"):
            torch.testing.assert_close(saved[prefix + key], checkpoint["roberta." + key], atol=1e-6, rtol=0)
    config = json.loads((tmp_path / "o" / "aif-layer-01" / "model" / "config.json").read_text())
    assert config["model_type"] == "dlfa" and config["encoder_config"]["model_type"] == "xlm-roberta"


def test_one_pass_layer_search_keeps_a_head_on_an_xlm_roberta_checkpoint(tmp_path, offline_tokenizer, xtreme_lite):
    # Before: refused ("built for BERT encoders only"). Now the generic search shares the family's own encoder.
    folder = save_tiny_xlm_roberta(tmp_path / "xlmr", offline_tokenizer)
    summary = run(tmp_path / "o", folder, xtreme_lite, "--fusion_layers", "1,last", "--layer_search", "one_pass",
                  "--layer_search_then", "keep")  # fmt: skip
    assert set(summary["runs"]) == {"one-pass-aif-layer-01", "baseline"}
    search = json.loads((tmp_path / "o" / "layer-search" / "results.json").read_text())
    kept = summary["runs"]["one-pass-aif-layer-01"]
    assert kept["scores"]["selection"]["f1"] == pytest.approx(search["head_selection_scores"]["aif-layer-01"])
    config = json.loads((tmp_path / "o" / "layer-search" / "model" / "config.json").read_text())
    assert config["model_type"] == "dlfa" and config["encoder_config"]["model_type"] == "xlm-roberta"
    assert config["fusion_layer"] == 1 and "search_layers" not in config


def test_a_tokenizer_whose_padding_id_is_not_the_checkpoints_is_refused_before_any_work(tmp_path, offline_tokenizer):
    # Before: exit 0; the new heads took the tokenizer's pad id as XLM-R's padding_idx, so every position id moved
    # by the difference (XLM-R counts positions from it) and the pretrained position rows were read one-off.
    folder = save_tiny_xlm_roberta(
        tmp_path / "xlmr", offline_tokenizer, pad_token_id=offline_tokenizer.pad_token_id + 2
    )
    own_data = own_files(tmp_path)
    completed = call_main("--model_name_or_path", str(folder), "--output_dir", str(tmp_path / "o"), *own_data,
                           "--fusion_layers", "1,last", "--use_cpu", "--do_train", "--do_eval", "--report_to", "none",
                           cwd=tmp_path, check=False)  # fmt: skip
    assert completed.returncode != 0
    assert f"its tokenizer pads with id {offline_tokenizer.pad_token_id}" in completed.stderr
    assert f"pad_token_id={offline_tokenizer.pad_token_id + 2}" in completed.stderr
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())  # nothing was written
    # BERT numbers its positions from 0 whatever the pad id, which only marks an embedding row: a config that says 0
    # beside a tokenizer padding with 1 (multilingual-e5-small on the Hub) trains, with the tokenizer's pad id.
    bert = save_tiny_bert(tmp_path / "bert", offline_tokenizer, pad_token_id=0)
    summary = run_harness(tmp_path / "b", bert, *own_data, "--fusion_layers", "last", "--num_train_epochs", "1",
                          task="tagging")  # fmt: skip
    config = json.loads((tmp_path / "b" / "baseline" / "model" / "config.json").read_text())
    assert set(summary["runs"]) == {"baseline"} and config["pad_token_id"] == offline_tokenizer.pad_token_id


def test_a_checkpoint_whose_weights_do_not_match_never_trains_a_random_encoder(tmp_path, offline_tokenizer):
    # A BERT config whose weights sit under another prefix (saved from a wrapper module): every encoder weight would
    # start at random. Before: exit 0 and a random encoder.
    folder = save_tiny_bert(tmp_path / "wrapped", offline_tokenizer)
    weights = load_file(folder / "model.safetensors")
    save_file({f"backbone.{key}": value for key, value in weights.items()}, folder / "model.safetensors",
              metadata={"format": "pt"})  # fmt: skip
    with pytest.raises(ValueError, match=r"encoder weights of BertForTokenClassification are not in this checkpoint"):
        load_new_head(BertForTokenClassification, str(folder), num_labels=3)
    completed = call_main(*own_files(tmp_path), "--model_name_or_path", str(folder), "--output_dir",
                           str(tmp_path / "o"), "--fusion_layers", "1,last", "--use_cpu", "--do_train", "--do_eval",
                           "--report_to", "none", cwd=tmp_path, check=False)  # fmt: skip
    assert completed.returncode != 0 and "its encoder would start at random" in completed.stderr
    assert not list((tmp_path / "o").glob("*/model"))


def test_negative_label_ids_are_errors_not_the_tag_o(tmp_path):
    # Before: -1 (no prediction) was scored and written as "O", which seqeval counts as right where the gold is "O".
    task = TASKS["panx"]
    scorer = ZeroShotScorer(task)
    assert scorer.score_words([np.array([0, 1])], [np.array([0, 1])])["f1"] == 1.0
    with pytest.raises(ValueError, match=r"label ids \[0, -1\] hold \[-1\]"):
        scorer.score_words([np.array([0, -1])], [np.array([0, 0])])
    with pytest.raises(ValueError, match="hold"):
        write_predictions(
            tmp_path / "de.tsv", task, [TaggedSentence(["a", "b"], None)], {"predicted": np.array([0, -1])}
        )
    with pytest.raises(ValueError, match="hold"):
        study_statistics.item_counts({"predicted": np.array([0, -1]), "gold": np.array([0, 0]), "lengths": np.array([2])},
                             task.labels)  # fmt: skip


def test_a_word_the_tokenizer_drops_still_gets_a_prediction(tmp_path):
    # WordPiece drops a zero-width space: such a word got no sub-token, hence -1, hence "O". As XTREME does, it is now
    # the unknown token, so every word is predicted.
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "anna", "lebt", "in", "berlin"]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab))
    assert tokenizer.tokenize("\u200b") == []
    sentence = TaggedSentence(["Anna", "\u200b", "lebt", "in", "Berlin"], ["B-PER", "O", "O", "O", "B-LOC"])
    features = tokenize_tagging(examples_dataset([sentence]), tokenizer, TASKS["panx"].label_to_id, 32)
    assert features[0]["word_index"] == [0, 1, 2, 3, 4]
    labelled = [row for row in features["labels"]][0]
    predicted = word_predictions(features, [np.array(labelled)], [5])
    assert predicted[0].tolist() == [TASKS["panx"].label_to_id[tag] for tag in sentence.tags]


def test_a_model_folder_that_does_not_exist_is_named_before_any_work(tmp_path):
    # Before: four tracebacks ending in transformers' "Repo id must be in the form 'repo_name' or 'namespace/repo_name'".
    missing = tmp_path / "runs" / "udpos" / "model"
    common = ("--task", "udpos", "--data_dir", str(tmp_path), "--output_dir", str(tmp_path / "o"), "--do_eval")
    completed = call_main("--model_name_or_path", str(missing), *common, cwd=tmp_path, check=False)
    assert completed.returncode != 0 and f"the folder {missing} does not exist" in completed.stderr
    assert "Repo id must be in the form" not in completed.stderr
    completed = run_script("--model_name_or_path", "someone/tagger", *common, cwd=tmp_path, check=False)
    assert completed.returncode != 0 and "no Hub is reachable (HF_HUB_OFFLINE=1)" in completed.stderr


INIT_USE = """
import json, sys
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

tagger, info = AutoModelForTokenClassification.from_pretrained(sys.argv[1], num_labels=5, trust_remote_code=True,
                                                               output_loading_info=True)
classifier = AutoModelForSequenceClassification.from_pretrained(sys.argv[1], num_labels=3, trust_remote_code=True)
print(json.dumps({"tagger": type(tagger).__name__, "classifier": type(classifier).__name__,
                  "family": tagger.config.encoder_config.model_type, "missing": sorted(info["missing_keys"])}))
"""


def test_an_init_checkpoint_of_another_family_serves_the_stock_scripts(tmp_path, offline_tokenizer):
    # Before: make_init_checkpoint built a DLFABertModel from any folder (a random BERT encoder for XLM-R).
    folder = save_tiny_xlm_roberta(tmp_path / "xlmr", offline_tokenizer)
    subprocess.run([sys.executable, str(ROOT / "examples" / "make_init_checkpoint.py"), "--base", str(folder),
                    "--fusion_layer", "1", "--out", str(tmp_path / "init")], check=True, capture_output=True,
                   stdin=subprocess.DEVNULL)  # fmt: skip
    result = json.loads(run_without_plugin(INIT_USE, [str(tmp_path / "init")], tmp_path).strip().splitlines()[-1])
    assert (result["tagger"], result["classifier"], result["family"]) == (
        "DLFAForTokenClassification", "DLFAForSequenceClassification", "xlm-roberta"
    )  # fmt: skip
    assert result["missing"] == ["classifier.bias", "classifier.weight"]  # only the script's head is new


def test_an_init_checkpoint_of_a_family_dlfa_cannot_fuse_is_refused_by_its_family_first(tmp_path):
    # Before: the tokenizer was read first, so a GPT-2 folder whose tokenizer file is damaged failed on that file
    # (a JSONDecodeError), not on what makes it unusable (one with no tokenizer files got an empty tokenizer).
    from transformers import GPT2Config, GPT2Model

    folder = tmp_path / "gpt2"
    config = GPT2Config(n_layer=2, n_embd=16, n_head=2, vocab_size=50, n_positions=32, bos_token_id=0, eos_token_id=0)
    GPT2Model(config).save_pretrained(folder)
    (folder / "tokenizer_config.json").write_text("{cut short")
    completed = subprocess.run([sys.executable, str(ROOT / "examples" / "make_init_checkpoint.py"), "--base",
                                str(folder), "--fusion_layer", "1", "--out", str(tmp_path / "init")],
                               capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)  # fmt: skip
    assert completed.returncode != 0 and "DLFA cannot fuse model_type='gpt2'" in completed.stderr
    assert "decoder-only" in completed.stderr and not (tmp_path / "init").exists()


def test_the_harness_refuses_a_family_dlfa_cannot_fuse_before_reading_its_tokenizer(tmp_path):
    # Before: the harness read the tokenizer first, so a GPT-2 folder whose tokenizer file is damaged failed on that
    # file (a JSONDecodeError), not on what makes it unusable for training.
    from transformers import GPT2Config, GPT2Model

    folder = tmp_path / "gpt2"
    config = GPT2Config(n_layer=2, n_embd=16, n_head=2, vocab_size=50, n_positions=32, bos_token_id=0, eos_token_id=0)
    GPT2Model(config).save_pretrained(folder)
    (folder / "tokenizer_config.json").write_text("{cut short")
    output_dir = tmp_path / "runs"
    completed = call_main("--model_name_or_path", str(folder), "--output_dir", str(output_dir), "--do_train",
                          "--do_eval", "--use_cpu", *own_files(tmp_path), cwd=tmp_path, check=False)  # fmt: skip
    assert completed.returncode != 0 and "DLFA cannot fuse model_type='gpt2'" in completed.stderr
    assert "decoder-only" in completed.stderr and "JSONDecodeError" not in completed.stderr
    assert not output_dir.exists()  # refused before any run folder was made


@pytest.mark.parametrize("family", ["bert", "xlm-roberta"])
def test_the_harness_refuses_to_train_new_heads_on_a_fine_tuned_dlfa_checkpoint(tmp_path, family):
    # Before: either was refused as "not an encoder family of ENCODER_FAMILIES", which names neither what the folder
    # is nor the encoder to train from.
    from transformers import AutoConfig

    from modeling_dlfa import DLFABertConfig, DLFAConfig

    encoder = AutoConfig.for_model(family, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                   intermediate_size=37, vocab_size=99)  # fmt: skip
    config = (
        DLFABertConfig(**encoder.to_diff_dict(), fusion_layer=1)
        if family == "bert"
        else DLFAConfig(encoder_config=encoder.to_dict(), fusion_layer=1)
    )
    config.save_pretrained(tmp_path / "checkpoint")  # no weights, no tokenizer: the refusal comes first
    output_dir = tmp_path / "runs"
    completed = call_main("--model_name_or_path", str(tmp_path / "checkpoint"), "--output_dir", str(output_dir),
                          "--fusion_layers", "last", "--do_train", "--do_eval", "--use_cpu", *own_files(tmp_path),
                          cwd=tmp_path, check=False)  # fmt: skip
    assert completed.returncode != 0 and f"model_type={config.model_type!r} is a DLFA checkpoint, not an encoder" in (
        completed.stderr
    )
    assert f"train from the encoder it was built on ({family!r})" in completed.stderr and not output_dir.exists()


def parsed(tmp_path, *flags: str) -> tuple:
    """The harness's (ModelArguments, DataArguments, TrainingArguments) of these flags."""
    from transformers import HfArgumentParser, TrainingArguments

    from dlfa_zero_shot.arguments import DataArguments, ModelArguments

    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    return parser.parse_args_into_dataclasses(args=["--output_dir", str(tmp_path), "--use_cpu", "--report_to", "none",
                                                    *flags])  # fmt: skip


def settings_of(tmp_path, layer, *flags: str) -> dict:
    from dlfa_zero_shot.arguments import run_settings

    model_args, data_args, training_args = parsed(tmp_path, *flags)
    return run_settings(model_args, data_args, training_args, TASKS[data_args.task], layer)


def test_the_scalar_mix_and_the_baseline_keep_names_of_their_own(tmp_path):
    # Before: with --fusion_method scalar_mix, the baseline was named `scalar-mix` too, so `--fusion_layers 2,last`
    # trained the stock head under that name and never the scalar mix, with no baseline row; every head of a one-pass
    # search had that name.
    from dlfa_zero_shot.arguments import configuration_name

    model_args, data_args, training_args = parsed(tmp_path, "--fusion_method", "scalar_mix")
    task, rate = TASKS["udpos"], training_args.learning_rate
    assert configuration_name(None, model_args, data_args, task, rate) == "baseline"
    from dlfa_zero_shot.arguments import run_names

    assert run_names([2, None], model_args, data_args, task, rate) == {2: "scalar-mix", None: "baseline"}
    # Two layers of a fusion that uses none would be one run (and two search heads of one name): refused by name.
    with pytest.raises(ValueError, match="layers 2 and 4 would both be the run 'scalar-mix'"):
        run_names([2, 4, None], model_args, data_args, task, rate)
    assert len(set(run_names([2, 4, None], *parsed(tmp_path)[:2], task, rate).values())) == 3  # AIF: a name each


def test_two_layers_of_the_scalar_mix_are_refused_before_any_work(tmp_path, offline_tokenizer):
    # Before: exit 0, one `scalar-mix` run (the later layer's) and the other silently dropped.
    bert = save_tiny_bert(tmp_path / "bert", offline_tokenizer, num_hidden_layers=3)
    completed = call_main("--task", "udpos", "--model_name_or_path", str(bert), "--output_dir", str(tmp_path / "o"),
                           "--data_dir", str(tmp_path), "--fusion_method", "scalar_mix", "--fusion_layers",
                           "1,2,last", "--use_cpu", "--do_train", "--report_to", "none", cwd=tmp_path, check=False)  # fmt: skip
    assert completed.returncode != 0
    assert "--fusion_layers '1,2,last' with --fusion_method scalar_mix: layers 1 and 2 would both be the run" in (
        completed.stderr
    )
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())  # nothing was written


CJK_SENTENCES = [  # words the multilingual tokenizer splits into a bare "▁" and a content piece
    (["我", "喜欢", "北京", "。"], ["O", "O", "B-LOC", "O"]),
    (["王", "先生", "在", "上海", "工作", "。"], ["B-PER", "I-PER", "O", "B-LOC", "O", "O"]),
    (["东京", "和", "大阪", "很", "大", "。"], ["B-LOC", "O", "B-LOC", "O", "O", "O"]),
]


def test_an_evaluation_only_run_scores_with_the_checkpoints_label_alignment(tmp_path, offline_tokenizer):
    """
    A tagger whose config says `label_alignment: first` (stock `run_ner.py` checkpoints mean the same by saying
    nothing), evaluated without training: the words are scored from the piece it learned to tag, the one its word
    pipeline reads, and settings.json says so; a `--label_alignment` that says otherwise is refused by name before
    any work. Before: scored with the harness's `first_content`, exit 0, no warning, settings.json `first_content`.
    """
    from modeling_dlfa.pipeline_dlfa import WordTokenClassificationPipeline, add_word_pipeline

    labels = ["O", "B-PER", "I-PER", "B-LOC"]
    folder = save_tiny_bert(tmp_path / "bert", offline_tokenizer)
    torch.manual_seed(0)
    tagger = BertForTokenClassification.from_pretrained(
        folder,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={tag: i for i, tag in enumerate(labels)},
    ).eval()
    tagger.save_pretrained(tmp_path / "tagger")
    offline_tokenizer.save_pretrained(tmp_path / "tagger")
    add_word_pipeline(tmp_path / "tagger", "first")
    test_file = tmp_path / "zh.jsonl"
    test_file.write_text(
        "".join(json.dumps({"tokens": words, "ner_tags": tags}) + "\n" for words, tags in CJK_SENTENCES)
    )
    common = ("--task", "tagging", "--test_files", f"zh={test_file}", "--do_eval", "--do_predict")

    run_harness(tmp_path / "eval", tmp_path / "tagger", *common, task="tagging")
    assert json.loads((tmp_path / "eval" / "baseline" / "settings.json").read_text())["label_alignment"] == "first"
    predicted = (tmp_path / "eval" / "baseline" / "predictions" / "zh.tsv").read_text().strip().split("\n\n")
    scored = [[line.split("\t")[1] for line in sentence.splitlines()] for sentence in predicted]
    pipeline = WordTokenClassificationPipeline(model=tagger, tokenizer=offline_tokenizer)
    words = [words for words, _ in CJK_SENTENCES]
    read = {}
    for alignment in ("first", "first_content"):
        tagger.config.label_alignment = alignment
        read[alignment] = [
            [entry["entity"] for entry in sentence]
            for sentence in pipeline(words, is_split_into_words=True, word_level=True)
        ]
    assert read["first"] != read["first_content"]  # the alignment changes these words' tags
    assert scored == read["first"]

    completed = call_main("--model_name_or_path", str(tmp_path / "tagger"), "--output_dir", str(tmp_path / "o"),
                           *common, "--label_alignment", "first_content", "--use_cpu", "--report_to", "none",
                           cwd=tmp_path, check=False)  # fmt: skip
    assert completed.returncode != 0
    assert (
        "--label_alignment first_content: the checkpoint was trained with label_alignment 'first'" in completed.stderr
    )
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())  # nothing was written


def test_reuse_is_judged_per_run_on_the_settings_its_model_uses(tmp_path):
    from dlfa_zero_shot.runs import reuse_or_claim

    # The baseline uses no fusion setting and no LoRA setting without LoRA: another gate does not make it another run.
    assert settings_of(tmp_path, None) == settings_of(tmp_path, None, "--aif_gate", "paper", "--lora_alpha", "32")
    assert settings_of(tmp_path, 1) != settings_of(tmp_path, 1, "--aif_gate", "paper")
    assert settings_of(tmp_path, 1) != settings_of(tmp_path, 1, "--do_predict")  # no prediction files to reuse
    # A one-pass search's candidates are its settings: another candidate list never reads the old choice back.
    search = tmp_path / "layer-search"
    assert not reuse_or_claim(search, settings_of(tmp_path, "search:2,4"), TrainingArguments(tmp_path, use_cpu=True))
    (search / "results.json").write_text("{}")
    with pytest.raises(SystemExit, match=r"layer: stored 'search:2,4', requested 'search:6,8'"):
        reuse_or_claim(search, settings_of(tmp_path, "search:6,8"), TrainingArguments(tmp_path, use_cpu=True))
    assert reuse_or_claim(search, settings_of(tmp_path, "search:2,4"), TrainingArguments(tmp_path, use_cpu=True))


def test_a_run_that_stopped_before_its_first_checkpoint_is_claimed_again(tmp_path):
    from dlfa_zero_shot.runs import SETTINGS_FILE, reuse_or_claim

    run_dir, args = tmp_path / "aif-layer-01", TrainingArguments(tmp_path, use_cpu=True)
    assert not reuse_or_claim(run_dir, settings_of(tmp_path, 1), args)  # e.g. then refused: a random encoder
    corrected = settings_of(tmp_path, 1, "--learning_rate", "2e-5")
    assert not reuse_or_claim(run_dir, corrected, args)  # nothing to reuse: no error, the folder is this run's
    assert json.loads((run_dir / SETTINGS_FILE).read_text()) == {**corrected, "device": "cpu"}
    (run_dir / "checkpoint-10").mkdir()
    with pytest.raises(SystemExit, match="learning_rate: stored 2e-05, requested 5e-05"):
        reuse_or_claim(run_dir, settings_of(tmp_path, 1), args)  # a checkpoint to resume: settings must match


def test_lora_trains_the_generic_sequence_pooler_in_full(offline_tokenizer):
    pytest.importorskip("peft", reason="SKIPPED LOUDLY: LoRA needs the peft package (pip install -e '.[examples]')")
    from modeling_dlfa import DLFAConfig, DLFAForSequenceClassification

    encoder = XLMRobertaConfig(vocab_size=len(offline_tokenizer), hidden_size=32, num_hidden_layers=2,
                               num_attention_heads=4, intermediate_size=37)  # fmt: skip
    model = DLFAForSequenceClassification(DLFAConfig(encoder_config=encoder, fusion_layer=1, num_labels=3))
    # Before: the pooler was looked up on the encoder (XLM-R's, built without one), so the DLFA pooler stayed frozen.
    trainable = {
        name for name, p in apply_lora(model, 4, 16, 0.0, ["query", "value"]).named_parameters() if p.requires_grad
    }
    for module in ("pooler", "fusion", "classifier"):
        assert any(f"{module}.modules_to_save." in name for name in trainable), module


def test_a_run_made_on_another_device_is_neither_reused_nor_resumed_here(tmp_path):
    """Before, settings.json held no device: a folder made on a GPU and copied to a CPU machine was read back as the
    answer, or its checkpoint resumed here."""
    from dlfa_zero_shot.runs import SETTINGS_FILE, reuse_or_claim

    args = TrainingArguments(tmp_path, use_cpu=True)
    for left in ("checkpoint-10", "results.json"):  # a run to resume, a finished run
        run_dir = tmp_path / left / "aif-layer-01"
        assert not reuse_or_claim(run_dir, settings_of(tmp_path, 1), args)
        stored = json.loads((run_dir / SETTINGS_FILE).read_text())
        assert stored["device"] == "cpu"
        (run_dir / SETTINGS_FILE).write_text(json.dumps({**stored, "device": "cuda: NVIDIA H100 80GB HBM3"}))
        if left == "results.json":
            (run_dir / left).write_text("{}")
        else:
            (run_dir / left).mkdir()
        with pytest.raises(SystemExit, match=r"device: stored 'cuda: NVIDIA H100 80GB HBM3', requested 'cpu'"):
            reuse_or_claim(run_dir, settings_of(tmp_path, 1), args)
