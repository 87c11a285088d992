"""
Examples -> model inputs, with `datasets.map(batched=True)`.

Tagging: a sentence whose sub-tokens do not fit `max_length` is split into consecutive windows of whole words (as
XTREME's scripts do), so every word is scored; each feature row remembers its sentence and which words its labelled
positions belong to (`word_index`), so predictions go back to words exactly. One sub-token per word carries the label
(`label_alignment`): `"first"` is XTREME's rule; `"first_content"` (default) skips a leading bare "▁", a piece that
SentencePiece tokenizers split off many words (CJK above all) and that carries no content.
"""

from dataclasses import asdict

import datasets
import numpy as np
from transformers import PreTrainedTokenizerBase

# The alignments and the bare-piece rule are the plugin's: its word-level pipeline reads words by the same rule.
from modeling_dlfa.pipeline_dlfa import LABEL_ALIGNMENTS, skips_bare_word_start

from .data import TaskData
from .names import DEFAULT_LABEL_ALIGNMENT
from .readers import SentencePair, TaggedSentence


IGNORE_INDEX = -100


def examples_dataset(examples: list[TaggedSentence] | list[SentencePair]) -> datasets.Dataset:
    """Reader output as a `datasets.Dataset` (columns `tokens`, `tags` or `first`, `second`, `label`)."""
    return datasets.Dataset.from_list([asdict(example) for example in examples])


def word_windows(word_lengths: list[int], budget: int) -> list[tuple[int, int]]:
    """
    Consecutive `[start, end)` word ranges whose sub-token counts fit `budget` (a longer single word gets a window of
    its own and is truncated there: its first sub-token, the labelled one, is kept).
    """
    windows, start, used = [], 0, 0
    for index, length in enumerate(word_lengths):
        if index > start and used + length > budget:
            windows.append((start, index))
            start, used = index, 0
        used += length
    if start < len(word_lengths) or not windows:
        windows.append((start, len(word_lengths)))
    return windows


def tokenize_tagging(
    dataset: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    label_to_id: dict[str, int],
    max_length: int,
    alignment: str = DEFAULT_LABEL_ALIGNMENT,
) -> datasets.Dataset:
    """
    One row per window: `input_ids`, `attention_mask`, `labels` (gold tag id on one sub-token per word, -100
    elsewhere), `sentence_index`, `word_index` (the sentence's word of each labelled position, in order), `length`.
    """
    if alignment not in LABEL_ALIGNMENTS:
        raise ValueError(f"label alignment {alignment!r} is not supported: choose one of {LABEL_ALIGNMENTS}")
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    if budget < 1:
        raise ValueError(f"max_length {max_length} leaves no room for a word next to the special tokens")

    def encode(batch: dict, indices: list[int]) -> dict:
        batch["tokens"] = [without_empty_words(words, tokenizer) for words in batch["tokens"]]
        pieces = tokenizer(batch["tokens"], is_split_into_words=True, add_special_tokens=False)
        windows = []  # (sentence position in batch, first word, end word)
        for row in range(len(batch["tokens"])):
            lengths = np.bincount(
                [word for word in pieces.word_ids(row) if word is not None], minlength=len(batch["tokens"][row])
            )
            windows += [(row, start, end) for start, end in word_windows(lengths.tolist(), budget)]
        encoding = tokenizer(
            [batch["tokens"][row][start:end] for row, start, end in windows],
            is_split_into_words=True, truncation=True, max_length=max_length,
        )  # fmt: skip
        output = {"input_ids": [], "attention_mask": [], "labels": [], "sentence_index": [], "word_index": []}
        for window, (row, start, _) in enumerate(windows):
            tokens, word_ids = encoding.tokens(window), encoding.word_ids(window)
            labels, words = [], []
            for position, word in enumerate(word_ids):
                skip_bare_piece = skips_bare_word_start(alignment, tokens, word_ids, position)
                if word is None or (words and words[-1] == start + word) or skip_bare_piece:
                    labels.append(IGNORE_INDEX)
                    continue
                tags = batch["tags"][row]
                labels.append(label_to_id[tags[start + word]] if tags is not None else 0)
                words.append(start + word)
            output["input_ids"].append(encoding["input_ids"][window])
            output["attention_mask"].append(encoding["attention_mask"][window])
            output["labels"].append(labels)
            output["sentence_index"].append(indices[row])
            output["word_index"].append(words)
        output["length"] = [len(ids) for ids in output["input_ids"]]
        return output

    return dataset.map(
        encode, batched=True, with_indices=True, remove_columns=dataset.column_names, desc="tokenizing sentences"
    )


def without_empty_words(words: list[str], tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """
    The words, with every word the tokenizer turns into no piece at all (a zero-width or control character, dropped
    by WordPiece's cleaning) replaced by the unknown token, as XTREME's scripts do: every word then has a labelled
    sub-token, and so a prediction.
    """
    word_ids = tokenizer(words, is_split_into_words=True, add_special_tokens=False).word_ids()
    counts = np.bincount([word for word in word_ids if word is not None], minlength=len(words))
    return [word if count else tokenizer.unk_token for word, count in zip(words, counts)]


def tokenize_pairs(
    dataset: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, label_to_id: dict[str, int], max_length: int
) -> datasets.Dataset:
    """One row per pair: the tokenizer's inputs, `labels` (the label id), `sentence_index`, `length`."""

    def encode(batch: dict, indices: list[int]) -> dict:
        encoding = tokenizer(batch["first"], batch["second"], truncation=True, max_length=max_length)
        return {
            **encoding,
            "labels": [label_to_id[label] if label is not None else 0 for label in batch["label"]],
            "sentence_index": indices,
            "length": [len(ids) for ids in encoding["input_ids"]],
        }

    return dataset.map(
        encode, batched=True, with_indices=True, remove_columns=dataset.column_names, desc="tokenizing pairs"
    )


def length_sorted(features: datasets.Dataset) -> datasets.Dataset:
    """The rows shortest first (stable), so evaluation batches carry little padding; rows keep `sentence_index`."""
    return features.select(np.argsort(features["length"], kind="stable"))


def words_past_limit(features: datasets.Dataset) -> int:
    """
    Words that sit in a sentence's second or later window (one whose first word is not the sentence's first): a plain
    truncation at `max_length` would lose them. In any row order: `featurize`'s evaluation rows are length-sorted, so a
    sentence's short last window often comes before its first.
    """
    return sum(len(words) for words in features["word_index"] if words and words[0] > 0)


def word_predictions(features: datasets.Dataset, predicted_ids: list[np.ndarray], sentence_lengths: list[int]) -> list:
    """
    Per-window predicted label ids at the labelled positions (`predicted_ids[i]` for feature row i, padding
    removed) -> one array of label ids per sentence, one id per word. Every word has a labelled sub-token
    (`tokenize_tagging`), so a word left without a prediction, or a negative id, is a bug: ValueError naming it.
    """
    sentences = [np.full(length, -1, dtype=np.int64) for length in sentence_lengths]
    columns = zip(features["sentence_index"], features["word_index"], features["labels"], predicted_ids)
    for sentence, words, labels, predicted in columns:
        labelled = np.asarray(labels) != IGNORE_INDEX
        sentences[sentence][words] = predicted[: len(labelled)][labelled]
    for index, words in enumerate(sentences):
        if (words < 0).any():
            raise ValueError(
                f"sentence {index}: words {np.flatnonzero(words < 0).tolist()} have no predicted label id ({words.tolist()})"
            )
    return sentences


def featurize(data: TaskData, tokenizer: PreTrainedTokenizerBase, max_length: int, label_alignment: str) -> dict:
    """
    The harness's features of every split of `data`, length-sorted (evaluation order does not matter), and the tagging
    label alignment (None for pair tasks).
    """
    task = data.task

    def encode(examples: list):
        if not examples:
            return None
        dataset = examples_dataset(examples)
        if task.kind == "token":
            return tokenize_tagging(dataset, tokenizer, task.label_to_id, max_length, label_alignment)
        return tokenize_pairs(dataset, tokenizer, task.label_to_id, max_length)

    return {
        "train": encode(data.train),
        "selection": length_sorted(encode(data.selection)) if data.selection else None,
        "evaluation": {language: length_sorted(encode(examples)) for language, examples in data.evaluation.items()},
        "label_alignment": label_alignment if task.kind == "token" else None,
    }
