"""
Readers for the file formats of `../shared/data/xtreme-lite` and the stock transformers example scripts: token/tag
TSV and CoNLL (`token<TAB>tag`, blank line between sentences), CoNLL-U, sentence-pair TSV. Every malformed line
raises a `ValueError` that names the file and the line.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass
class TaggedSentence:
    tokens: list[str]
    tags: list[str]


@dataclass
class SentencePair:
    first: str
    second: str
    label: str


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            yield line_number, line.rstrip("\n").rstrip("\r")


def _read_sentences(path: Path, limit: int | None, parse_line) -> list[TaggedSentence]:
    """Blank-line separated sentences; `parse_line(line, line_number)` gives `(token, tag)`, or None to skip."""
    sentences, tokens, tags = [], [], []
    for line_number, line in _lines(path):
        if line.strip():
            parsed = parse_line(line, line_number)
            if parsed is not None:
                tokens.append(parsed[0])
                tags.append(parsed[1])
            continue
        if tokens:
            sentences.append(TaggedSentence(tokens, tags))
            tokens, tags = [], []
        if limit is not None and len(sentences) >= limit:
            return sentences
    if tokens:
        sentences.append(TaggedSentence(tokens, tags))
    return sentences[:limit] if limit is not None else sentences


def read_tagged_tsv(path: Path, limit: int | None = None) -> list[TaggedSentence]:
    """`token<TAB>tag` lines, a blank line between sentences (XTREME UDPOS, PAN-X)."""

    def parse(line: str, line_number: int) -> tuple[str, str]:
        fields = line.split("\t")
        if len(fields) != 2 or not fields[0] or not fields[1]:
            raise ValueError(f"{path}:{line_number}: expected 'token<TAB>tag', got {line!r}")
        return fields[0], fields[1]

    return _read_sentences(path, limit, parse)


def read_conllu(path: Path, limit: int | None = None) -> list[TaggedSentence]:
    """Words and UPOS tags of a CoNLL-U file; comments, multi-word token ranges and empty nodes are skipped."""

    def parse(line: str, line_number: int) -> tuple[str, str] | None:
        if line.startswith("#"):
            return None
        fields = line.split("\t")
        if len(fields) != 10:
            raise ValueError(
                f"{path}:{line_number}: a CoNLL-U word line has 10 tab-separated fields, got {len(fields)}"
            )
        if "-" in fields[0] or "." in fields[0]:
            return None
        if not fields[0].isdigit():
            raise ValueError(f"{path}:{line_number}: bad CoNLL-U word id {fields[0]!r}")
        return fields[1], fields[3]

    return _read_sentences(path, limit, parse)


def read_pair_tsv(path: Path, limit: int | None = None) -> list[SentencePair]:
    """`first<TAB>second<TAB>label` lines (XNLI, PAWS-X), or a header naming `sentence1 sentence2 label` columns."""
    pairs, columns = [], (0, 1, 2)
    for line_number, line in _lines(path):
        if not line.strip():
            continue
        fields = line.split("\t")
        if line_number == 1 and {"sentence1", "sentence2", "label"} <= set(fields):
            columns = (fields.index("sentence1"), fields.index("sentence2"), fields.index("label"))
            continue
        if len(fields) <= max(columns) or not fields[columns[2]].strip():
            raise ValueError(
                f"{path}:{line_number}: expected {max(columns) + 1} tab-separated fields ending in a label, "
                f"got {line!r}"
            )
        pairs.append(SentencePair(*(fields[column].strip() for column in columns)))
        if limit is not None and len(pairs) >= limit:
            break
    return pairs


def read_examples(kind: str, path: Path, limit: int | None = None) -> list:
    """The examples of one file, by the task's kind ("token" or "pair") and the file's suffix."""
    if kind == "pair":
        return read_pair_tsv(path, limit)
    return read_conllu(path, limit) if path.suffix == ".conllu" else read_tagged_tsv(path, limit)
