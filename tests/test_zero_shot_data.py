"""Readers, task files, the zero-shot rule, label alignment and the XTREME metrics."""

import re
from pathlib import Path

import evaluate
import pytest

from zero_shot_data import (
    PANX_TAGS,
    TASKS,
    UPOS_TAGS,
    TaggedSentence,
    align_labels,
    available_languages,
    load_task_data,
    read_conllu,
    read_pair_tsv,
    read_tagged_tsv,
)


METRICS = Path(__file__).resolve().parent.parent / "examples" / "metrics" / "xtreme"


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
# Task files and the zero-shot rule


def test_languages_found_per_task(xtreme_lite):
    found = {name: available_languages(task, xtreme_lite, task.eval_splits) for name, task in TASKS.items()}
    assert set(found) == {"udpos", "udpos_ud", "panx", "xnli", "pawsx"}
    assert "de" in found["udpos"] and "ta" in found["udpos"]  # German has only a dev file: dev is the fallback
    assert found["xnli"] == ["ar", "de", "en", "es", "fr", "hi", "ru", "tr", "zh"]
    assert found["pawsx"] == ["de"]


def test_udpos_from_universal_dependencies_conllu(xtreme_lite):
    task = TASKS["udpos_ud"]
    assert available_languages(task, xtreme_lite, task.eval_splits) == ["de", "en", "es", "fr", "ja", "zh"]
    data = load_task_data(task, xtreme_lite, ["en", "zh"], max_train_samples=30, max_eval_samples=5)
    assert (len(data.train), len(data.selection), len(data.evaluation["zh"])) == (30, 5, 5)
    assert data.files["en"].endswith("en_ewt-ud-test.conllu") and data.files["zh"].endswith("zh_gsd-ud-test.conllu")
    assert all(set(s.tags) <= set(UPOS_TAGS) for s in data.train + data.evaluation["zh"])


def test_parallel_tasks_hold_out_english_for_selection(xtreme_lite):
    data = load_task_data(TASKS["xnli"], xtreme_lite, ["en", "de"], max_eval_samples=10)
    assert len(data.train) + 249 == 2490  # a seeded 10% of the English file selects, the rest trains
    assert len(data.selection) == 10 and set(data.evaluation) == {"en", "de"}
    assert data.files["de"].endswith("xnli_test-de.labels-propagated.tsv")
    again = load_task_data(TASKS["xnli"], xtreme_lite, ["de"], max_eval_samples=10)
    assert again.selection == data.selection


@pytest.mark.parametrize("task", ["xnli", "pawsx"])
def test_evaluating_on_translations_of_the_training_data_is_refused(task, tmp_path):
    spec = TASKS[task]
    write(tmp_path / spec.train_file, "a\tb\t" + spec.labels[0] + "\n")
    translated = tmp_path / spec.eval_pattern.split("|")[-1].format(split="dev", language="fr")
    write(translated, "x\ty\t" + spec.labels[0] + "\n")
    with pytest.raises(ValueError, match="is a translation of the training data"):
        load_task_data(spec, tmp_path, ["fr"], eval_splits=("dev",))
    with pytest.raises(ValueError, match="is the training file"):
        load_task_data(spec, tmp_path, ["en"], eval_splits=("dev",))


def test_unknown_language_names_what_exists(xtreme_lite):
    with pytest.raises(FileNotFoundError, match="no test file for language 'xx'.*found: ar, de, en"):
        load_task_data(TASKS["xnli"], xtreme_lite, ["xx"])


# ---------------------------------------------------------------------------------------------------------------------
# Label alignment


class PieceTokenizer:
    """A stand-in exposing `word_ids()`/`tokens()` like a fast tokenizer, with fixed splits per word."""

    def __init__(self, splits: dict[str, list[str]]):
        self.splits = splits

    def __call__(self, words, is_split_into_words, truncation, max_length):
        pieces, word_ids = ["<s>"], [None]
        for index, word in enumerate(words):
            pieces += self.splits[word]
            word_ids += [index] * len(self.splits[word])
        pieces, word_ids = (pieces + ["</s>"])[:max_length], (word_ids + [None])[:max_length]
        return _Encoding(pieces, word_ids)


class _Encoding(dict):
    def __init__(self, pieces, word_ids):
        super().__init__(input_ids=list(range(len(pieces))), attention_mask=[1] * len(pieces))
        self._pieces, self._word_ids = pieces, word_ids

    def tokens(self):
        return self._pieces

    def word_ids(self):
        return self._word_ids


def test_first_content_alignment_skips_a_bare_marker():
    tokenizer = PieceTokenizer({"北京": ["▁", "北京"], "好": ["▁好"], "▁": ["▁"]})
    sentence = TaggedSentence(["北京", "好", "▁"], ["PROPN", "ADJ", "PUNCT"])
    labels = {"PROPN": 0, "ADJ": 1, "PUNCT": 2}
    first = align_labels([sentence], tokenizer, labels, 16, alignment="first")[0]["labels"]
    content = align_labels([sentence], tokenizer, labels, 16, alignment="first_content")[0]["labels"]
    assert first == [-100, 0, -100, 1, 2, -100]
    # The label moves to the real piece; a word that is only "▁" keeps its label.
    assert content == [-100, -100, 0, 1, 2, -100]


def test_alignment_with_the_real_tokenizer_labels_every_word_once(xtreme_lite, offline_tokenizer):
    labels = {tag: index for index, tag in enumerate(UPOS_TAGS)}
    sentences = read_tagged_tsv(xtreme_lite / "udpos" / "xtreme_udpos_test-zh.tsv", limit=20)
    for sentence, feature in zip(sentences, align_labels(sentences, offline_tokenizer, labels, 512)):
        assert sum(label != -100 for label in feature["labels"]) == len(sentence.tokens)
        pieces = offline_tokenizer.convert_ids_to_tokens(feature["input_ids"])
        labelled = [piece for piece, label in zip(pieces, feature["labels"]) if label != -100]
        assert "▁" not in labelled or all(word == "▁" for word in sentence.tokens)


def test_unknown_alignment_is_rejected():
    with pytest.raises(ValueError, match="label alignment 'last' is not supported"):
        align_labels([], None, {}, 8, alignment="last")


# ---------------------------------------------------------------------------------------------------------------------
# Metrics


def test_tagging_metric_is_seqeval_with_the_upos_quirk_and_token_accuracy():
    metric = evaluate.load(str(METRICS), config_name="tagging")
    scores = metric.compute(
        predictions=[["B-PER", "I-PER", "O", "B-LOC"]], references=[["B-PER", "I-PER", "O", "B-ORG"]]
    )
    assert scores["f1"] == pytest.approx(0.5) and scores["token_accuracy"] == pytest.approx(0.75)
    # seqeval reads UPOS tags' first letter as B/I: SCONJ and CCONJ are the same "CONJ" chunk, NOUN NOUN is one chunk.
    quirk = metric.compute(predictions=[["SCONJ", "NOUN", "NOUN"]], references=[["CCONJ", "NOUN", "NOUN"]])
    assert quirk["token_accuracy"] == pytest.approx(2 / 3)
    assert quirk["f1"] == pytest.approx(1.0)
    merged = metric.compute(predictions=[["NOUN", "NOUN"]], references=[["NOUN", "ADJ"]])
    assert merged["f1"] == pytest.approx(0.0)  # one predicted NOUN chunk over two words matches no reference chunk


def test_classification_metric_is_accuracy_and_bad_shapes_are_refused():
    assert evaluate.load(str(METRICS), config_name="classification").compute(
        predictions=[0, 2, 1, 1], references=[0, 2, 2, 1]
    ) == {"accuracy": 0.75}
    with pytest.raises(ValueError, match="sentence 0: 1 predicted tags for 2 reference tags"):
        evaluate.load(str(METRICS), config_name="tagging").compute(predictions=[["O"]], references=[["O", "O"]])
