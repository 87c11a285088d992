"""Readers, the task table, the local data source and the zero-shot rule, windows and label alignment, the metrics."""

import json
import re
import shutil
from pathlib import Path

import evaluate
import numpy as np
import pytest

from dlfa_zero_shot.data import LocalSource, described_file, load_task_data
from dlfa_zero_shot.plans import PAWSX_TARGETS
from dlfa_zero_shot.features import (
    examples_dataset,
    length_sorted,
    tokenize_tagging,
    word_predictions,
    word_windows,
    words_past_limit,
)
from dlfa_zero_shot.readers import TaggedSentence, read_conllu, read_pair_tsv, read_tagged_tsv
from dlfa_zero_shot.tasks import PANX_TAGS, TASKS, UPOS_TAGS, XTREME_METRIC


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------------------------------
# Readers on the real files


def test_tagged_tsv_reader_on_udpos_and_panx(xtreme_lite):
    sentences = read_tagged_tsv(xtreme_lite / "udpos" / "xtreme_udpos_dev-de.tsv", limit=50)
    assert len(sentences) == 50
    assert sentences[0].tokens[:3] == ["Manasse", "ist", "ein"] and sentences[0].tags[:3] == ["PROPN", "AUX", "DET"]
    assert all(len(s.tokens) == len(s.tags) and set(s.tags) <= set(UPOS_TAGS) for s in sentences)
    panx = read_tagged_tsv(xtreme_lite / "panx" / "panx_dev-zh.tsv", limit=50)
    assert all(set(s.tags) <= set(PANX_TAGS) for s in panx)


def test_conllu_reader_skips_comments_ranges_and_empty_nodes(xtreme_lite, tmp_path):
    english = read_conllu(xtreme_lite / "ud-conllu" / "en_ewt-ud-dev.conllu")
    assert len(english) == 2001
    assert english[0].tokens[:3] == ["From", "the", "AP"] and english[0].tags[:3] == ["ADP", "DET", "PROPN"]
    path = write(
        tmp_path / "x.conllu",
        "# text = Im Haus\n1-2\tIm\t_\t_\t_\t_\t_\t_\t_\t_\n1\tIn\tin\tADP\t_\t_\t3\tcase\t_\t_\n"
        "2\tdem\tder\tDET\t_\t_\t3\tdet\t_\t_\n2.1\tx\tx\tX\t_\t_\t_\t_\t_\t_\n"
        "3\tHaus\tHaus\tNOUN\t_\t_\t0\troot\t_\t_\n\n",
    )
    assert read_conllu(path) == [TaggedSentence(["In", "dem", "Haus"], ["ADP", "DET", "NOUN"])]


def test_pair_reader_with_and_without_header(xtreme_lite):
    xnli = read_pair_tsv(xtreme_lite / "xnli" / "xtreme_xnli_dev-en.tsv")
    assert len(xnli) == 2490 and {pair.label for pair in xnli} == {"contradiction", "entailment", "neutral"}
    paws_de = read_pair_tsv(xtreme_lite / "pawsx" / "pawsx_test-de.labeled.tsv")
    assert len(paws_de) == 2000 and {pair.label for pair in paws_de} == {"0", "1"}
    assert paws_de[0].first.startswith("Die Ausnahme war")


@pytest.mark.parametrize(
    "reader, text, line",
    [
        (read_tagged_tsv, "Haus\tNOUN\nkaputt\n", 2),
        (read_tagged_tsv, "Haus\tNOUN\n\nein\tDET\tzu viel\n", 3),
        (read_conllu, "# c\n1\tHaus\tHaus\tNOUN\n", 2),
        (read_pair_tsv, "a\tb\tentailment\nnur ein Satz\n", 2),
    ],
)
def test_malformed_line_error_names_file_and_line(reader, text, line, tmp_path):
    path = write(tmp_path / "broken.txt", text)
    with pytest.raises(ValueError, match=re.escape(f"{path}:{line}:")):
        reader(path)


# ---------------------------------------------------------------------------------------------------------------------
# Tasks, the local source and the zero-shot rule


def test_languages_found_per_task(xtreme_lite):
    source = LocalSource(xtreme_lite)
    found = {name: source.splits_by_language(task) for name, task in TASKS.items()}
    assert "de" in found["udpos"] and found["udpos"]["de"] == ["dev"]  # German has only dev: the fallback
    assert [lang for lang, splits in found["xnli"].items() if "test" in splits] == [
        "ar", "de", "en", "es", "fr", "hi", "ru", "tr", "zh"
    ]  # fmt: skip
    assert found["xnli"]["en"] == ["train", "dev", "test"]  # MultiNLI trains, English XNLI dev selects
    assert found["pawsx"] == {"en": ["train", "dev", "test"], **{lang: ["test"] for lang in PAWSX_TARGETS}}


def test_udpos_from_universal_dependencies_conllu(xtreme_lite):
    data = load_task_data(TASKS["udpos_ud"], LocalSource(xtreme_lite), ["en", "zh"], max_train_samples=30,
                          max_eval_samples=5)  # fmt: skip
    assert (len(data.train), len(data.selection), len(data.evaluation["zh"])) == (30, 5, 5)
    assert (
        data.files["en"] == "ud-conllu/en_ewt-ud-test.conllu" and data.files["zh"] == "ud-conllu/zh_gsd-ud-test.conllu"
    )
    assert all(set(s.tags) <= set(UPOS_TAGS) for s in data.train + data.evaluation["zh"])


def test_xnli_trains_on_multinli_and_selects_on_english_xnli_dev(xtreme_lite):
    data = load_task_data(TASKS["xnli"], LocalSource(xtreme_lite), ["en", "de"], max_eval_samples=10)
    assert len(data.train) == 20000 and data.files["train"] == "mnli/mnli_train-en.20k.tsv"
    assert data.files["selection"] == "xnli/xtreme_xnli_dev-en.tsv" and len(data.selection) == 10
    assert data.eval_splits == {"en": "test", "de": "test"}
    assert data.train[0].first.startswith("and now that was in fifty one")  # the header line is not a pair


def test_a_source_without_english_training_data_trains_on_dev_with_a_seeded_hold_out(xtreme_lite):
    data = load_task_data(TASKS["xnli_dev"], LocalSource(xtreme_lite), ["de"], max_eval_samples=10)
    assert len(data.train) + 249 == 2490  # a seeded 10% of the English file selects, the rest trains
    assert data.files["selection"] == "xnli/xtreme_xnli_dev-en.tsv (seeded 10% held out)"
    assert (
        load_task_data(TASKS["xnli_dev"], LocalSource(xtreme_lite), ["de"], max_eval_samples=10).selection
        == data.selection
    )
    assert described_file(data.files["selection"]) == data.files["train"]  # what provenance hashes for it
    assert described_file("xnli/odd (seeded) name.tsv") == "xnli/odd (seeded) name.tsv"




def test_pawsx_trains_on_english_paws_selects_on_dev_and_scores_every_test(xtreme_lite):
    data = load_task_data(TASKS["pawsx"], LocalSource(xtreme_lite))
    assert data.files["train"] == "pawsx/pawsx_train-en.paws-wiki-test.tsv" and len(data.train) == 8000
    assert data.files["selection"] == "pawsx/xtreme_pawsx_dev-en.tsv" and len(data.selection) == 2000  # no hold-out
    assert data.eval_splits == {language: "test" for language in ("en", *PAWSX_TARGETS)}
    assert all(len(data.evaluation[language]) == 2000 for language in data.evaluation)
    assert data.files["ja"] == "pawsx/pawsx_test-ja.labeled.tsv" and data.evaluation["de"][0].label in ("0", "1")
    trained = {sentence for pair in data.train for sentence in (pair.first, pair.second)}
    english_dev_and_test = data.evaluation["en"] + data.selection
    assert not trained & {sentence for pair in english_dev_and_test for sentence in (pair.first, pair.second)}


def test_a_malformed_pawsx_line_is_refused_with_its_file_and_line(xtreme_lite, tmp_path):
    source = xtreme_lite / "pawsx"
    shutil.copytree(source, tmp_path / "pawsx")
    training = tmp_path / "pawsx" / "pawsx_train-en.paws-wiki-test.tsv"
    lines = training.read_text().splitlines(keepends=True)
    training.write_text("".join(lines[:4] + ["one sentence\tits label is missing\n"] + lines[5:]))
    with pytest.raises(ValueError, match=r"pawsx_train-en\.paws-wiki-test\.tsv:5: expected 3 tab-separated fields"):
        load_task_data(TASKS["pawsx"], LocalSource(tmp_path))
    training.write_text("".join(lines[:6] + [lines[6].rsplit("\t", 1)[0] + "\t2\n"] + lines[7:]))
    with pytest.raises(ValueError, match=r"pawsx_train-en\.paws-wiki-test\.tsv:7: label\(s\) \['2'\] were never seen"):
        load_task_data(TASKS["pawsx"], LocalSource(tmp_path))


def test_panx_is_evaluated_on_dev_by_default(xtreme_lite):
    assert TASKS["panx"].eval_splits == ("dev",)
    data = load_task_data(TASKS["panx"], LocalSource(xtreme_lite), ["de"], max_train_samples=2, max_eval_samples=2)
    assert data.eval_splits == {"de": "dev"}


@pytest.mark.parametrize("task", ["xnli_dev", "pawsx"])
def test_evaluating_on_translations_of_the_training_data_is_refused(task, tmp_path):
    spec = TASKS[task]
    for language in ("en", "fr"):
        write(tmp_path / spec.local_files["dev"].format(language=language), "a\tb\t" + spec.labels[0] + "\n")
    with pytest.raises(ValueError, match="fr 'dev' is a translation of the training data"):
        load_task_data(spec, LocalSource(tmp_path), ["fr"], eval_splits=("dev",))
    with pytest.raises(ValueError, match="en 'dev' is the English training data"):
        load_task_data(spec, LocalSource(tmp_path), ["en"], eval_splits=("dev",))


def test_unknown_language_names_what_exists(xtreme_lite):
    with pytest.raises(ValueError, match="no test data for language 'xx'; languages with some: \\['ar', 'de', 'en'"):
        load_task_data(TASKS["xnli"], LocalSource(xtreme_lite), ["xx"])


# ---------------------------------------------------------------------------------------------------------------------
# Windows and label alignment


def test_word_windows_cover_every_word_once_within_the_budget():
    assert word_windows([3, 3, 3], 6) == [(0, 2), (2, 3)]
    assert word_windows([9, 1], 4) == [(0, 1), (1, 2)]  # a word over the budget gets a window of its own
    assert word_windows([], 4) == [(0, 0)]


def test_long_sentences_are_windowed_and_every_word_is_scored(xtreme_lite, offline_tokenizer):
    task = TASKS["udpos"]
    sentences = read_tagged_tsv(xtreme_lite / "udpos" / "xtreme_udpos_test-fi.tsv", limit=40)
    features = tokenize_tagging(examples_dataset(sentences), offline_tokenizer, task.label_to_id, 16)
    assert len(features) > len(sentences)  # at 16 sub-tokens most sentences need several windows
    assert max(len(ids) for ids in features["input_ids"]) <= 16
    words = {}
    for sentence, word_index, labels in zip(features["sentence_index"], features["word_index"], features["labels"]):
        assert len(word_index) == sum(label != -100 for label in labels)
        words.setdefault(sentence, []).extend(word_index)
    assert all(words[i] == list(range(len(s.tokens))) for i, s in enumerate(sentences))
    # Gold labels as "predictions" come back as each sentence's own tags, word for word.
    gold_rows = [np.where(np.asarray(labels) == -100, 0, np.asarray(labels)) for labels in features["labels"]]
    back = word_predictions(features, gold_rows, [len(s.tokens) for s in sentences])
    assert [list(row) for row in back] == [[task.label_to_id[tag] for tag in s.tags] for s in sentences]


def test_words_past_the_length_limit_are_counted_in_the_length_sorted_order_the_harness_scores(
    xtreme_lite, offline_tokenizer
):
    """The results' `words_past_max_length`: every word outside its sentence's first window, however the windows are
    ordered (the harness counts them on its length-sorted evaluation rows, where a short last window comes first)."""
    task = TASKS["udpos"]
    sentences = read_tagged_tsv(xtreme_lite / "udpos" / "xtreme_udpos_test-ar.tsv", limit=40)
    features = tokenize_tagging(examples_dataset(sentences), offline_tokenizer, task.label_to_id, 32)
    first_windows = {}  # tokenize_tagging emits each sentence's windows in order
    for sentence, words in zip(features["sentence_index"], features["word_index"]):
        first_windows.setdefault(sentence, len(words))
    past = sum(len(s.tokens) for s in sentences) - sum(first_windows.values())
    assert past > 0
    assert words_past_limit(features) == words_past_limit(length_sorted(features)) == past


def test_first_content_alignment_moves_the_label_off_a_bare_marker(xtreme_lite, offline_tokenizer):
    task = TASKS["udpos"]
    sentences = read_tagged_tsv(xtreme_lite / "udpos" / "xtreme_udpos_test-zh.tsv", limit=20)
    dataset = examples_dataset(sentences)
    first = tokenize_tagging(dataset, offline_tokenizer, task.label_to_id, 512, alignment="first")
    content = tokenize_tagging(dataset, offline_tokenizer, task.label_to_id, 512, alignment="first_content")
    bare = 0
    for ids_first, labels_first, labels_content, sentence in zip(
        first["input_ids"], first["labels"], content["labels"], sentences
    ):
        pieces = offline_tokenizer.convert_ids_to_tokens(ids_first)
        labelled_first = [piece for piece, label in zip(pieces, labels_first) if label != -100]
        labelled_content = [piece for piece, label in zip(pieces, labels_content) if label != -100]
        assert len(labelled_first) == len(labelled_content) == len(sentence.tokens)  # one label per word
        bare += labelled_first.count("▁")
        assert labelled_content.count("▁") == sum(word == "▁" for word in sentence.tokens)
    assert bare > 0  # XTREME's rule does label bare markers in Chinese


def test_unknown_alignment_is_rejected(offline_tokenizer):
    with pytest.raises(ValueError, match="label alignment 'last' is not supported"):
        tokenize_tagging(examples_dataset([TaggedSentence(["a"], ["X"])]), offline_tokenizer, {"X": 0}, 8, "last")


# ---------------------------------------------------------------------------------------------------------------------
# Metrics


def test_tagging_metric_is_seqeval_with_the_upos_quirk_and_token_accuracy():
    metric = evaluate.load(XTREME_METRIC, config_name="tagging")
    scores = metric.compute(
        predictions=[["B-PER", "I-PER", "O", "B-LOC"]], references=[["B-PER", "I-PER", "O", "B-ORG"]]
    )
    assert scores["f1"] == pytest.approx(0.5) and scores["token_accuracy"] == pytest.approx(0.75)
    extra = metric.compute(predictions=[["B-PER", "O", "B-LOC"]], references=[["B-PER", "O", "O"]])
    assert (extra["precision"], extra["recall"], extra["f1"]) == pytest.approx((0.5, 1.0, 2 / 3))
    # seqeval reads UPOS tags' first letter as B/I: SCONJ and CCONJ are the same "CONJ" chunk, NOUN NOUN is one chunk.
    quirk = metric.compute(predictions=[["SCONJ", "NOUN", "NOUN"]], references=[["CCONJ", "NOUN", "NOUN"]])
    assert quirk["token_accuracy"] == pytest.approx(2 / 3)
    assert quirk["f1"] == pytest.approx(1.0)
    merged = metric.compute(predictions=[["NOUN", "NOUN"]], references=[["NOUN", "ADJ"]])
    assert merged["f1"] == pytest.approx(0.0)  # one predicted NOUN chunk over two words matches no reference chunk


def test_classification_metric_is_accuracy_and_bad_shapes_are_refused():
    assert evaluate.load(XTREME_METRIC, config_name="classification").compute(
        predictions=[0, 2, 1, 1], references=[0, 2, 2, 1]
    ) == {"accuracy": 0.75}
    with pytest.raises(ValueError, match="sentence 0: 1 predicted tags for 2 reference tags"):
        evaluate.load(XTREME_METRIC, config_name="tagging").compute(predictions=[["O"]], references=[["O", "O"]])


# ---------------------------------------------------------------------------------------------------------------------
# A user's own files


def test_own_files_in_the_stock_scripts_formats(tmp_path):
    from dlfa_zero_shot.data import FileSource, labels_of
    from dlfa_zero_shot.readers import read_examples
    from dlfa_zero_shot.tasks import custom_task

    rows = [{"tokens": ["Anna", "lebt", "in", "Berlin"], "ner_tags": ["B-PER", "O", "O", "B-LOC"]},
            {"tokens": ["Hallo"], "ner_tags": ["O"]}]  # fmt: skip
    jsonl = write(tmp_path / "train.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    as_json = write(tmp_path / "train.json", json.dumps(rows))
    as_csv = write(tmp_path / "train.csv", "tokens,ner_tags\n" + "".join(
        f'"{json.dumps(row["tokens"]).replace(chr(34), chr(34) * 2)}","{json.dumps(row["ner_tags"]).replace(chr(34), chr(34) * 2)}"\n'
        for row in rows))  # fmt: skip
    conll = write(tmp_path / "test.conll", "-DOCSTART- -X- O O\n\nAnna NNP B-NP B-PER\nlebt VBZ B-VP O\n\n")
    for path in (jsonl, as_json, as_csv):
        examples = read_examples("token", path)
        assert [(e.tokens, e.tags) for e in examples] == [(r["tokens"], r["ner_tags"]) for r in rows], path
    assert [(e.tokens, e.tags) for e in read_examples("token", conll)] == [(["Anna", "lebt"], ["B-PER", "O"])]
    assert labels_of(read_examples("token", jsonl)) == ("B-LOC", "B-PER", "O")  # from the training file

    pairs = write(
        tmp_path / "pairs.jsonl", json.dumps({"premise": "a", "hypothesis": "b", "label": "entailment"}) + "\n"
    )
    assert read_examples("pair", pairs)[0].label == "entailment"

    task = custom_task("tagging", "token", ("B-LOC", "B-PER", "O"))
    data = load_task_data(task, FileSource(str(jsonl), None, {"de": str(conll)}), max_eval_samples=10)
    assert data.files == {"train": str(jsonl), "selection": f"{jsonl} (seeded 10% held out)", "de": str(conll)}


def test_a_pair_tsv_header_is_read_in_either_column_naming_the_json_reader_knows(tmp_path):
    """Before, only a `sentence1 sentence2 label` header was one: a `premise hypothesis label` header became a
    training pair whose label, `label`, became a class of the model."""
    from dlfa_zero_shot.data import labels_of
    from dlfa_zero_shot.readers import read_examples

    for header in ("premise\thypothesis\tlabel", "label\tpremise\thypothesis", "id\tsentence1\tsentence2\tlabel"):
        names = header.split("\t")
        row = {"premise": "A man sleeps.", "hypothesis": "A man rests.", "sentence1": "A man sleeps.",
               "sentence2": "A man rests.", "label": "entailment", "id": "7"}  # fmt: skip
        path = write(tmp_path / "train.tsv", header + "\n" + "\t".join(row[name] for name in names) + "\n")
        examples = read_examples("pair", path)
        assert [(e.first, e.second, e.label, e.line) for e in examples] == [
            ("A man sleeps.", "A man rests.", "entailment", 2)
        ], header
        assert labels_of(examples) == ("entailment",)


MULTINLI_COLUMNS = ["gold_label", "sentence1_binary_parse", "sentence2_binary_parse", "sentence1_parse",
                    "sentence2_parse", "sentence1", "sentence2", "promptID", "pairID", "genre", "label1", "label2"]  # fmt: skip
MULTINLI_ROWS = [
    ["neutral", "( Conceptually ( cream skimming ) )", "( Product ( and geography ) )", "(ROOT (S ...))",
     "(ROOT (S ...))", "Conceptually cream skimming has two basic dimensions - product and geography.",
     "Product and geography are what make cream skimming work.", "31193", "31193n", "government", "neutral", ""],
    ["-", "( ( The ( new rights ) ) )", "( Everyone ( really likes ) )", "(ROOT (S ...))", "(ROOT (S ...))",
     "The new rights are nice enough", "Everyone really likes the newest benefits", "31193", "31193c",
     "slate", "neutral", "contradiction"],
]  # fmt: skip


def test_multinli_and_snli_files_in_their_own_layout_are_read_by_their_gold_label(tmp_path, caplog):
    """MultiNLI's and SNLI's own files name the label `gold_label`, among parse-tree columns. Before, the tsv's header
    was no header: each line became a pair of parse trees labelled by a parse tree (a class of a `pairs` model
    each), and the jsonl's pairs had no label (a test file of them was predicted, not scored). A pair whose gold
    label is "-" (its annotators reached no consensus) is left out, as GLUE does, and the log says how many."""
    from dlfa_zero_shot.data import labels_of
    from dlfa_zero_shot.readers import read_examples

    tsv = write(tmp_path / "multinli_1.0_dev.txt",
                "".join("\t".join(row) + "\n" for row in [MULTINLI_COLUMNS, *MULTINLI_ROWS]))  # fmt: skip
    jsonl = write(tmp_path / "multinli_1.0_dev.jsonl",
                  "".join(json.dumps(dict(zip(MULTINLI_COLUMNS, row))) + "\n" for row in MULTINLI_ROWS))  # fmt: skip
    for path, first_line in ((tsv, 2), (jsonl, 1)):
        caplog.clear()
        examples = read_examples("pair", path)
        assert [(e.first, e.second, e.label, e.line) for e in examples] == [
            (MULTINLI_ROWS[0][5], MULTINLI_ROWS[0][6], "neutral", first_line)
        ], path
        assert labels_of(examples) == ("neutral",)
        assert f"{path}: 1 pair(s) with the gold label '-' (no annotator consensus) left out" in caplog.text


def test_the_harness_reads_a_training_file_once_and_says_once_how_many_pairs_it_left_out(tmp_path, caplog):
    """The harness reads the training file for its label set, then for training. Before, it read the file twice and
    the reader said twice that a pair without a gold label was left out, as if two had been."""
    from dlfa_zero_shot.arguments import DataArguments
    from dlfa_zero_shot.cli import data_source
    from dlfa_zero_shot.data import load_task_data

    rows = [MULTINLI_COLUMNS, *MULTINLI_ROWS, ["contradiction", *MULTINLI_ROWS[0][1:]]]
    train = write(tmp_path / "multinli_1.0_train.txt", "".join("\t".join(row) + "\n" for row in rows))
    dev = write(tmp_path / "dev.tsv", "a\tb\tneutral\nno label field\n")  # the second line: past --max_eval_samples
    test = write(tmp_path / "test-de.tsv", "c\td\tcontradiction\n")
    arguments = DataArguments(task="pairs", train_file=str(train), validation_file=str(dev), test_files=f"de={test}")
    task, source = data_source(arguments, backbone=None)  # the backbone plays no part with a training file
    data = load_task_data(task, source, max_eval_samples=1)
    assert task.labels == ("contradiction", "neutral") and [pair.label for pair in data.selection] == ["neutral"]
    assert [(pair.label, pair.line) for pair in data.train] == [("neutral", 2), ("contradiction", 4)]
    assert caplog.text.count(f"{train}: 1 pair(s) with the gold label '-'") == 1


def test_a_label_column_under_another_name_or_several_languages_in_one_pair_file_are_refused(tmp_path):
    """A header naming a pair's sentences and other columns, but no label column, would leave a test file
    predicted, not scored; XNLI's own files (a `language` column) would score every language as one. Both are
    refused with file and line; the sentences' columns alone (and ids) name pairs to predict. A "-" in a plain
    `label` column is a label (only MultiNLI's and SNLI's `gold_label` means "no consensus" by it)."""
    from dlfa_zero_shot.readers import read_examples

    refused = [
        ("labels.tsv", "sentence1\tsentence2\tlabels\na\tb\t1\n", r"labels.tsv:1: no label column \(label or gold_label\)"),
        ("labels.jsonl", '{"sentence1": "a", "sentence2": "b", "is_duplicate": 1}\n', r"labels.jsonl:1: no label column"),
        ("xnli.test.tsv", "language\tgold_label\tsentence1\tsentence2\nde\tneutral\ta\tb\n",
         r"xnli.test.tsv:1: a 'language' column: the file holds pairs of several languages"),
        ("xnli.test.jsonl", '{"language": "de", "gold_label": "neutral", "sentence1": "a", "sentence2": "b"}\n',
         r"xnli.test.jsonl:1: a 'language' column"),
        ("gold.tsv", "gold_label\tsentence1\tsentence2\tgenre\n\ta\tb\tfiction\n",
         r"gold.tsv:2: its gold_label \(field 1\) is empty"),
        ("gold.jsonl", '{"gold_label": "", "sentence1": "a", "sentence2": "b"}\n', r"gold.jsonl:1: its gold_label is empty"),
        ("unnamed.tsv", "sentence1\tsentence2\na\tb\tneutral\n",
         r"unnamed.tsv:2: 3 fields under a header of 2 that names no label column"),
        ("none.jsonl", '{"premise": "a", "hypothesis": null, "label": "neutral"}\n',
         r"none.jsonl:1: 'premise' and 'hypothesis' must be text; they are \['a', None\]"),
    ]  # fmt: skip
    for name, text, message in refused:
        with pytest.raises(ValueError, match=message):
            read_examples("pair", write(tmp_path / name, text))

    path = write(tmp_path / "test-de.tsv", "\ufeffid\tsentence1\tsentence2\n7\tDer Mann schläft.\tDer Mann ruht.\n")
    assert [(e.first, e.second, e.label) for e in read_examples("pair", path)] == [
        ("Der Mann schläft.", "Der Mann ruht.", None)
    ]
    with pytest.raises(ValueError, match=re.escape(f"{path}:3: expected 3 tab-separated fields, got 1: 'allein'")):
        read_examples("pair", write(path, "id\tsentence1\tsentence2\n7\ta\tb\nallein\n"))
    signs = write(tmp_path / "signs.tsv", "gut\tschlecht\t-\ngut\tbestens\t+\n")
    assert [e.label for e in read_examples("pair", signs)] == ["-", "+"]
    glue = write(tmp_path / "rte-test.tsv", "\nindex\tsentence1\tsentence2\n0\tDogs bark.\tDogs make noise.\t\n")
    assert [(e.first, e.label, e.line) for e in read_examples("pair", glue)] == [("Dogs bark.", None, 3)]
    exported = write(tmp_path / "glue-test.jsonl", '{"premise": "a", "hypothesis": "b", "label": -1}\n' * 2)
    assert [e.label for e in read_examples("pair", exported)] == [None, None]  # datasets' -1: no label
    # datasets' SNLI: -1 beside labelled pairs. Before, read as pairs without a label, then refused as "no labels"
    # without saying why; -1 is also a class in some -1/1 data, so such pairs are not left out unasked.
    exported = write(tmp_path / "snli.jsonl", '{"premise": "c", "hypothesis": "d", "label": 2}\n'
                     '{"premise": "a", "hypothesis": "b", "label": -1}\n')  # fmt: skip
    with pytest.raises(ValueError, match=re.escape(f"{exported}:2: a label of -1 (`datasets`' 'no label'")):
        read_examples("pair", exported)


def test_a_csv_list_cell_that_is_not_json_is_refused_with_file_and_line(tmp_path):
    """pandas' to_csv writes a list cell as Python's repr, which json cannot read: the error names the file and row."""
    from dlfa_zero_shot.readers import read_examples

    path = write(tmp_path / "train.csv", 'tokens,ner_tags\n"[""Anna""]","[""B-PER""]"\n"[\'Anna\']","[\'B-PER\']"\n')
    with pytest.raises(ValueError, match=re.escape(f"{path}:3: 'tokens' is not a JSON list")):
        read_examples("token", path)


def test_a_csv_of_text_to_tag_may_leave_its_tag_cells_empty(tmp_path):
    """As a pair row with an empty label cell is unlabelled, so is a tagging row with an empty tag cell (a csv of
    text to predict, written with the training file's columns). Before: "'tokens' and 'ner_tags' must be lists"."""
    from dlfa_zero_shot.readers import is_labelled, read_examples

    path = write(tmp_path / "predict.csv", 'tokens,ner_tags\n"[""Anna"", ""lebt""]",\n"[""Hallo""]",""\n')
    examples = read_examples("token", path)
    assert [(e.tokens, e.tags, e.line) for e in examples] == [(["Anna", "lebt"], None, 2), (["Hallo"], None, 3)]
    assert not any(is_labelled(example) for example in examples)


def test_tags_given_as_ids_are_refused_with_file_and_line(tmp_path):
    """`datasets`' to_json writes a ClassLabel column as ids: as tags, "0" and "3" have no B-/I- for seqeval to read,
    so every F1 would be 0 whatever the model predicts."""
    from dlfa_zero_shot.readers import read_examples

    rows = [{"tokens": ["Anna", "lebt"], "ner_tags": ["B-PER", "O"]}, {"tokens": ["Anna", "lebt"], "ner_tags": [1, 0]}]
    path = write(tmp_path / "train.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(ValueError, match=re.escape(f"{path}:2: 'ner_tags' holds [1, 0]..., not tag names")):
        read_examples("token", path)


def test_evaluation_only_refuses_a_requested_language_without_data(tmp_path):
    """Before, evaluation without training dropped a requested language that had no data, without a word."""
    from dlfa_zero_shot.data import FileSource
    from dlfa_zero_shot.tasks import custom_task

    conll = tmp_path / "de.conll"
    conll.write_text("Anna B-PER\nlebt O\n\n")
    task = custom_task("tagging", "token", ("B-LOC", "B-PER", "O"))
    source = FileSource(None, None, {"de": str(conll)})
    data = load_task_data(task, source, ["de"], need_training=False)
    assert list(data.evaluation) == ["de"] and data.train == [] and data.selection == []
    with pytest.raises(ValueError, match="no test data for language 'fr'; languages with some: \\['de'\\]"):
        load_task_data(task, source, ["de", "fr"], need_training=False)
    # A source with nothing to evaluate, neither a test file nor English dev, was an empty run.
    with pytest.raises(FileNotFoundError, match="no test data for any language in this source"):
        load_task_data(task, FileSource(None, None, {}), need_training=False)
    with pytest.raises(ValueError, match="no test data for language 'fr'; languages with some: \\[\\]"):
        load_task_data(task, FileSource(None, None, {}), ["fr"], need_training=False)


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("rows.jsonl", '{"tokens": ["a", "b"], "ner_tags": ["O"]}\n', r"rows.jsonl:1: 2 tokens but 1 ner_tags"),
        ("rows.jsonl", '{"tokens": ["a"], "ner_tags": ["O"]}\nnot json\n', r"rows.jsonl:2: not a JSON object"),
        ("rows.csv", 'tokens,ner_tags\n"[""a""]","[""O""]",extra\n', r"rows.csv:2: more fields than the header"),
        ("empty.jsonl", "\n", r"empty.jsonl: the file holds no examples"),
        ("rows.jsonl", '{"words": ["a"]}\n', r"rows.jsonl:1: a tagging row needs a 'tokens' column"),
    ],
)
def test_bad_own_files_name_the_file_line_and_problem(name, text, message, tmp_path):
    from dlfa_zero_shot.readers import read_examples

    with pytest.raises(ValueError, match=message):
        read_examples("token", write(tmp_path / name, text))


def test_an_example_without_labels_is_refused_where_it_would_be_trained_or_drop_its_language(tmp_path):
    """An unlabelled sentence in training data would be trained as the first label, everywhere; one among labelled
    sentences of a test file would take its language out of the scores. Both are refused with file and line; a test
    file with no labels at all is text to predict."""
    from dlfa_zero_shot.data import FileSource
    from dlfa_zero_shot.tasks import custom_task

    task = custom_task("tagging", "token", ("B-LOC", "B-PER", "O"))
    train = write(tmp_path / "train.conll", "Anna B-PER\nsingt O\n\nMadrid\nis\nbig\n")
    dev = write(tmp_path / "dev.conll", "Anna B-PER\n\nBerlin B-LOC\n")
    test = write(tmp_path / "test-de.conll", "Hans B-PER\nsingt O\n\nBerlin\nist\ngross\n")
    text = write(tmp_path / "text-sw.conll", "Nairobi\nni\nmji\n\nAmina\n")
    with pytest.raises(ValueError, match=re.escape(f"{train}:4: this example has no labels (1 of the 2 read")):
        load_task_data(task, FileSource(str(train), str(dev), {"sw": str(text)}))
    labelled = write(tmp_path / "de.conll", "Hans B-PER\n")
    for training in (True, False):  # an unlabelled --validation_file, with and without training
        with pytest.raises(ValueError, match=re.escape(f"{text}:1: this example has no labels (2 of the 2 read")):
            load_task_data(task, FileSource(str(dev), str(text), {"de": str(labelled)}), need_training=training)
    with pytest.raises(ValueError, match=re.escape(f"{test}:4: this example has no labels (1 of 2 have none)")):
        load_task_data(task, FileSource(str(dev), None, {"de": str(test)}))
    empty = write(tmp_path / "de.jsonl", '{"tokens": ["Anna"], "ner_tags": ["B-PER"]}\n'
                  '{"tokens": [], "ner_tags": []}\n')  # fmt: skip
    with pytest.raises(ValueError, match=re.escape(f"{empty}:2: this example has no labels")):
        load_task_data(task, FileSource(None, str(dev), {"de": str(empty)}), need_training=False)
    data = load_task_data(task, FileSource(str(dev), str(dev), {"sw": str(text)}))
    assert [example.tags for example in data.evaluation["sw"]] == [None, None]

    pairs = custom_task("pairs", "pair", ("entailment", "neutral"))
    trained = write(tmp_path / "train.jsonl", '{"premise": "a", "hypothesis": "b", "label": "neutral"}\n')
    mixed = write(tmp_path / "test-de.jsonl", '{"premise": "a", "hypothesis": "b", "label": "neutral"}\n'
                  '{"premise": "c", "hypothesis": "d"}\n')  # fmt: skip
    with pytest.raises(ValueError, match=re.escape(f"{mixed}:2: this example has no labels (1 of 2 have none)")):
        load_task_data(pairs, FileSource(str(trained), str(trained), {"de": str(mixed)}))


def test_a_tag_training_never_saw_is_refused_with_file_and_line(tmp_path):
    from dlfa_zero_shot.data import FileSource
    from dlfa_zero_shot.tasks import custom_task

    train = write(tmp_path / "train.tsv", "Anna\tB-PER\n\nBerlin\tB-LOC\n")
    test = write(tmp_path / "test-de.tsv", "Anna\tB-PER\n\nSiemens\tB-ORG\n")
    task = custom_task("tagging", "token", ("B-LOC", "B-PER"))
    with pytest.raises(ValueError, match=re.escape(f"{test}:3: label(s) ['B-ORG'] were never seen in training")):
        load_task_data(task, FileSource(str(train), None, {"de": str(test)}))
    with pytest.raises(ValueError, match="is the training file"):
        FileSource(str(train), None, {"en": str(train)})
