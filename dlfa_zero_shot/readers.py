"""
Readers for the file formats of `../shared/data/xtreme-lite` and the stock transformers example scripts: token/tag
TSV and CoNLL (`token<TAB>tag` or `token ... tag` separated by spaces, a blank line between sentences), CoNLL-U,
sentence-pair TSV, and json / jsonl / csv files with a `tokens` column and a tag column (`ner_tags`, `pos_tags`,
`tags` or `labels`) or with `premise`/`hypothesis` or `sentence1`/`sentence2` columns and `label` (or MultiNLI's and
SNLI's `gold_label`). Every malformed line raises a `ValueError` that names the file and the line.
"""

import csv
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


logger = logging.getLogger(__name__)


@dataclass
class TaggedSentence:
    tokens: list[str]
    tags: list[str] | None  # None: unlabelled text (predictions only)
    line: int = field(default=0, compare=False)  # where the sentence starts in its file, for error messages


@dataclass
class SentencePair:
    first: str
    second: str
    label: str | None  # None: unlabelled
    line: int = field(default=0, compare=False)


def example_labels(example: TaggedSentence | SentencePair) -> list[str]:
    """The labels of one example: a sentence's tags, or a pair's label; none for unlabelled text."""
    if isinstance(example, SentencePair):
        return [] if example.label is None else [example.label]
    return example.tags or []


def is_labelled(example: TaggedSentence | SentencePair) -> bool:
    """Whether `example` can be trained on or scored: a pair with its label, a sentence with a tag for some word."""
    return bool(example_labels(example))


TAG_COLUMNS = ("ner_tags", "pos_tags", "tags", "labels")
PAIR_COLUMNS = (("premise", "hypothesis"), ("sentence1", "sentence2"))
GOLD_LABEL = "gold_label"
# A pair's label column, by preference: MultiNLI's and SNLI's own files call it `gold_label` (beside `label1` ... of
# each annotator).
LABEL_COLUMNS = ("label", GOLD_LABEL)
# The gold label MultiNLI and SNLI give a pair whose annotators reached no consensus: GLUE leaves such pairs out.
NO_CONSENSUS = "-"
# Columns that identify a pair: beside the two sentences alone, they still name pairs to predict.
ID_COLUMNS = ("id", "idx", "index")  # `index`: GLUE's own tsv files
# XNLI's own files hold every language, in this column; a file here is one language's.
LANGUAGE_COLUMN = "language"


def pair_columns(names: list[str], where: str) -> tuple[str, str, str | None] | None:
    """
    The (first sentence, second sentence, label) columns among `names` (a header's, or a json row's keys), the label
    None for pairs to predict; None where `names` name no pair. Pairs to predict name their sentences (and ids) alone:
    a label column under another name would otherwise leave a test file predicted, not scored. A `language` column
    (XNLI's own files, every language in one) is refused. Errors name `where` (the file and line).
    """
    pair = next((pair for pair in PAIR_COLUMNS if set(pair) <= set(names)), None)
    if pair is None:
        return None
    if LANGUAGE_COLUMN in names:
        raise ValueError(
            f"{where}: a '{LANGUAGE_COLUMN}' column: the file holds pairs of several languages; give each language "
            "its own file (--test_files de=PATH,...)"
        )
    label = next((column for column in LABEL_COLUMNS if column in names), None)
    if label is None and set(names) - {*pair, *ID_COLUMNS}:
        raise ValueError(
            f"{where}: no label column ({' or '.join(LABEL_COLUMNS)}) among {names}; pairs to predict name their "
            f"sentences' columns and {' or '.join(ID_COLUMNS)} alone"
        )
    return *pair, label


def warn_left_out(path: Path, count: int) -> None:
    """Say how many of `path`'s pairs were left out for having no gold label (`NO_CONSENSUS`)."""
    if count:
        logger.warning(
            "%s: %d pair(s) with the gold label %r (no annotator consensus) left out, as GLUE does", path, count,
            NO_CONSENSUS,
        )  # fmt: skip


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with open(path, encoding="utf-8-sig") as handle:  # -sig: a byte-order mark is no part of the first line
        for line_number, line in enumerate(handle, start=1):
            yield line_number, line.rstrip("\n").rstrip("\r")


def _read_sentences(path: Path, limit: int | None, parse_line) -> list[TaggedSentence]:
    """Blank-line separated sentences; `parse_line(line, line_number)` gives `(token, tag)`, or None to skip."""
    sentences, tokens, tags, start = [], [], [], 0
    for line_number, line in _lines(path):
        if line.strip():
            parsed = parse_line(line, line_number)
            if parsed is not None:
                start = start or line_number
                tokens.append(parsed[0])
                tags.append(parsed[1])
            continue
        if tokens:
            sentences.append(TaggedSentence(tokens, tags, start))
            tokens, tags, start = [], [], 0
        if limit is not None and len(sentences) >= limit:
            return sentences
    if tokens:
        sentences.append(TaggedSentence(tokens, tags, start))
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
    """
    `first<TAB>second<TAB>label` lines (XNLI, PAWS-X), or a first non-blank line naming the columns as the json /
    csv reader knows them (`pair_columns`), in any order among others: `premise hypothesis label`, `sentence1
    sentence2 label`, MultiNLI's and SNLI's own `gold_label ... sentence1 sentence2 ...` (whose pairs without a gold
    label, "-", are left out), or `sentence1 sentence2` alone for pairs to predict.
    """
    pairs, columns, label_column, left_out, first_line, width = [], (0, 1, 2), "label", 0, True, None
    for line_number, line in _lines(path):
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split("\t")]
        header = pair_columns(fields, f"{path}:{line_number}") if first_line else None
        first_line = False
        if header:
            label_column, width = header[2], len(fields)
            columns = tuple(fields.index(name) for name in header if name is not None)
            continue
        if len(fields) <= max(columns):
            raise ValueError(
                f"{path}:{line_number}: expected {max(columns) + 1} tab-separated fields, got {len(fields)}: {line!r}"
            )
        if label_column is None and any(fields[width:]):
            raise ValueError(
                f"{path}:{line_number}: {len(fields)} fields under a header of {width} that names no label column: "
                f"name the label's column {LABEL_COLUMNS[0]!r} to score these pairs: {line!r}"
            )
        label = fields[columns[2]] if label_column else None
        if label == "":
            raise ValueError(f"{path}:{line_number}: its {label_column} (field {columns[2] + 1}) is empty: {line!r}")
        if label_column == GOLD_LABEL and label == NO_CONSENSUS:
            left_out += 1
            continue
        pairs.append(SentencePair(fields[columns[0]], fields[columns[1]], label, line_number))
        if limit is not None and len(pairs) >= limit:
            break
    warn_left_out(path, left_out)
    return pairs


def read_conll(path: Path, limit: int | None = None) -> list[TaggedSentence]:
    """
    CoNLL-style files: a word per line, its tag in the last whitespace-separated field (CoNLL-2003 `token POS chunk
    tag`, `token<TAB>tag`), a blank line between sentences, `-DOCSTART-` lines skipped. A file of bare tokens (one
    field a line) is unlabelled text, to predict.
    """

    def parse(line: str, line_number: int) -> tuple[str, str | None] | None:
        if line.startswith("-DOCSTART-"):
            return None
        fields = line.split("\t") if "\t" in line else line.split()
        return (fields[0], fields[-1]) if len(fields) > 1 else (fields[0], None)

    sentences = _read_sentences(path, limit, parse)
    for sentence in sentences:
        missing = [tag is None for tag in sentence.tags]
        if all(missing):
            sentence.tags = None
        elif any(missing):
            line = sentence.line + missing.index(True)
            raise ValueError(f"{path}:{line}: a word without a tag in a tagged sentence")
    return sentences


def _records(path: Path) -> Iterator[tuple[int, dict]]:
    """(line, row) of a json (a list of objects, or one object per line), jsonl or csv file."""
    if path.suffix == ".csv":
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            for row in reader:
                if None in row:
                    raise ValueError(f"{path}:{reader.line_num}: more fields than the header's {reader.fieldnames}")
                yield reader.line_num, row
        return
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix == ".json" and text.lstrip().startswith("["):
        for index, row in enumerate(json.loads(text)):
            yield index + 1, row
        return
    for line_number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                yield line_number, json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{line_number}: not a JSON object ({error.msg})") from None


def read_records(kind: str, path: Path, limit: int | None = None) -> list:
    """
    A json / jsonl / csv file as the stock example scripts read it: tagging rows have `tokens` and a tag column
    (lists; csv cells hold JSON lists), pair rows `premise`/`hypothesis` or `sentence1`/`sentence2`, and `label` or
    `gold_label` (`pair_columns`; a MultiNLI or SNLI pair without a gold label, "-", is left out). A row without its
    labels, or with `datasets`' -1 for a pair's label in json, is unlabelled text (predictions only); -1 beside
    labelled pairs is refused (`datasets`' SNLI marks its pairs without consensus so, and -1 is a class of some -1/1
    data: neither is guessed).
    """
    examples, left_out, first_minus_one = [], 0, None
    for line, row in _records(path):

        def cell(column: str):
            value = row.get(column)
            if path.suffix == ".csv" and kind == "token" and isinstance(value, str) and value.startswith("["):
                try:
                    return json.loads(value)
                except json.JSONDecodeError as error:
                    raise ValueError(
                        f"{path}:{line}: '{column}' is not a JSON list ({error.msg}): {value[:40]!r}; a csv cell "
                        "holds its list as JSON, with double quotes (pandas' to_csv writes Python's repr instead)"
                    ) from None
            return value

        if kind == "token":
            if "tokens" not in row:
                raise ValueError(f"{path}:{line}: a tagging row needs a 'tokens' column; it has {sorted(row)}")
            tokens = cell("tokens")
            tag_column = next((column for column in TAG_COLUMNS if column in row), None)
            tags = cell(tag_column) if tag_column else None
            if path.suffix == ".csv" and tags == "":  # an empty cell: no tags, as an empty pair label is no label
                tags = None
            if not isinstance(tokens, list) or (tags is not None and not isinstance(tags, list)):
                raise ValueError(f"{path}:{line}: 'tokens' and '{tag_column}' must be lists")
            if tags is not None and len(tags) != len(tokens):
                raise ValueError(f"{path}:{line}: {len(tokens)} tokens but {len(tags)} {tag_column}")
            if tags is not None and not all(isinstance(tag, str) for tag in tags):
                raise ValueError(
                    f"{path}:{line}: '{tag_column}' holds {tags[:5]}..., not tag names: write the names (B-PER, NOUN, "
                    "...); ids say nothing of which tags begin or continue an entity, which seqeval scores by"
                )
            examples.append(
                TaggedSentence([str(t) for t in tokens], None if tags is None else [str(t) for t in tags], line)
            )
        else:
            columns = pair_columns(list(row), f"{path}:{line}")
            if columns is None:
                raise ValueError(
                    f"{path}:{line}: a pair row needs premise/hypothesis or sentence1/sentence2; it has {sorted(row)}"
                )
            first, second, label_column = columns
            sentences = [row[first], row[second]]
            if not all(isinstance(sentence, str) for sentence in sentences):
                raise ValueError(f"{path}:{line}: '{first}' and '{second}' must be text; they are {sentences!r}")
            value = row[label_column] if label_column else None
            if label_column == GOLD_LABEL and value in (None, ""):
                raise ValueError(f"{path}:{line}: its {GOLD_LABEL} is empty")
            if label_column == GOLD_LABEL and value == NO_CONSENSUS:
                left_out += 1
                continue
            # datasets' ClassLabel writes -1 for "no label" (GLUE's test splits, SNLI's pairs without consensus)
            minus_one = type(value) is int and value == -1
            if minus_one and first_minus_one is None:
                first_minus_one = line
            unlabelled = value in (None, "") or minus_one
            examples.append(SentencePair(sentences[0], sentences[1], None if unlabelled else str(value), line))
        if limit is not None and len(examples) >= limit:
            break
    if first_minus_one is not None and any(map(is_labelled, examples)):
        raise ValueError(
            f"{path}:{first_minus_one}: a label of -1 (`datasets`' 'no label': SNLI's pairs without consensus) "
            "beside labelled pairs: leave those pairs out (`dataset.filter(lambda row: row['label'] != -1)`), or "
            "write the labels as names where -1 is a class"
        )
    warn_left_out(path, left_out)
    return examples


def read_examples(kind: str, path: Path, limit: int | None = None) -> list:
    """The examples of one file, by the task's kind ("token" or "pair") and the file's suffix."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix in (".json", ".jsonl", ".csv"):
        examples = read_records(kind, path, limit)
    elif kind == "pair":
        examples = read_pair_tsv(path, limit)
    elif path.suffix == ".conllu":
        examples = read_conllu(path, limit)
    else:
        examples = read_conll(path, limit) if path.suffix in (".conll", ".txt") else read_tagged_tsv(path, limit)
    if not examples:
        raise ValueError(f"{path}: the file holds no examples")
    return examples
