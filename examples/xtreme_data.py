"""Readers for the XTREME-style files of `../shared/data/xtreme-lite` and label alignment for token classification."""

from dataclasses import dataclass
from pathlib import Path

from transformers import PreTrainedTokenizerBase


UPOS_TAGS = (
    "ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN", "PUNCT", "SCONJ",
    "SYM", "VERB", "X",
)


@dataclass
class TaggedSentence:
    tokens: list[str]
    tags: list[str]


def read_tagged_tsv(path: Path, limit: int | None = None) -> list[TaggedSentence]:
    """
    Sentences of a `token<TAB>tag` file with a blank line between sentences (XTREME UDPOS and PAN-X). A malformed
    line raises `ValueError` naming file and line.
    """
    sentences, tokens, tags = [], [], []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            line = line.rstrip("\n")
            if not line.strip():
                if tokens:
                    sentences.append(TaggedSentence(tokens, tags))
                    tokens, tags = [], []
                    if limit is not None and len(sentences) >= limit:
                        return sentences
                continue
            fields = line.split("\t")
            if len(fields) != 2 or not fields[0] or not fields[1]:
                raise ValueError(f"{path}:{line_number}: expected 'token<TAB>tag', got {line!r}")
            token, tag = fields
            tokens.append(token)
            tags.append(tag)
    if tokens:
        sentences.append(TaggedSentence(tokens, tags))
    return sentences[:limit] if limit is not None else sentences


def align_labels(
    sentences: list[TaggedSentence],
    tokenizer: PreTrainedTokenizerBase,
    label_to_id: dict[str, int],
    max_length: int,
) -> list[dict[str, list[int]]]:
    """
    Tokenize pre-split sentences and label the first sub-token of each word (-100 on the others and on special
    tokens), as XTREME does. A bare "▁" piece, which SentencePiece emits before some words (often CJK), carries no
    content, so the label goes to the word's first piece that does.
    """
    features = []
    for sentence in sentences:
        encoding = tokenizer(sentence.tokens, is_split_into_words=True, truncation=True, max_length=max_length)
        pieces = encoding.tokens()
        labels, labelled_words = [], set()
        for position, word in enumerate(encoding.word_ids()):
            is_bare_marker = pieces[position] == "▁"
            if word is None or word in labelled_words or is_bare_marker:
                labels.append(-100)
            else:
                labels.append(label_to_id[sentence.tags[word]])
                labelled_words.add(word)
        features.append({"input_ids": encoding["input_ids"], "attention_mask": encoding["attention_mask"], "labels": labels})
    return features
