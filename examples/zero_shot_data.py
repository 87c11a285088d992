"""
Data for zero-shot cross-lingual runs: the readers for the formats of `../shared/data/xtreme-lite` (token/tag TSV,
CoNLL-U, sentence-pair TSV), the four XTREME tasks, where their files are, and the zero-shot rule.
"""

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from transformers import PreTrainedTokenizerBase


UPOS_TAGS = (
    "ADJ",
    "ADP",
    "ADV",
    "AUX",
    "CCONJ",
    "DET",
    "INTJ",
    "NOUN",
    "NUM",
    "PART",
    "PRON",
    "PROPN",
    "PUNCT",
    "SCONJ",
    "SYM",
    "VERB",
    "X",
)
PANX_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
LABEL_ALIGNMENTS = ("first_content", "first")


@dataclass
class TaggedSentence:
    tokens: list[str]
    tags: list[str]


@dataclass
class SentencePair:
    first: str
    second: str
    label: str


# ---------------------------------------------------------------------------------------------------------------------
# Readers


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


# ---------------------------------------------------------------------------------------------------------------------
# Tasks and their files


@dataclass(frozen=True)
class TaskSpec:
    name: str
    kind: str  # "token" or "pair"
    labels: tuple[str, ...]
    # Other languages' files are translations of the English ones: never evaluate on the split trained on.
    parallel: bool
    train_file: str  # English, relative to the data folder
    train_split: str
    selection_file: str | None  # English held-out data; None: hold out a slice of the training file
    eval_pattern: str  # with {split} and {language}; "|" separates alternative file names
    eval_splits: tuple[str, ...]  # preference order of evaluation splits per language
    reader: str = "tsv"
    metric: str = "tagging"


TASKS = {
    "udpos": TaskSpec(
        "udpos",
        "token",
        UPOS_TAGS,
        False,
        "udpos/xtreme_udpos_train-en.tsv",
        "train",
        "udpos/xtreme_udpos_dev-en.tsv",
        "udpos/xtreme_udpos_{split}-{language}.tsv",
        ("test", "dev"),
    ),
    # The same task from Universal Dependencies CoNLL-U files: English EWT for training and selection, the GSD
    # treebanks (de fr es zh ja) and EWT test for evaluation.
    "udpos_ud": TaskSpec(
        "udpos_ud",
        "token",
        UPOS_TAGS,
        False,
        "ud-conllu/en_ewt-ud-train.conllu",
        "train",
        "ud-conllu/en_ewt-ud-dev.conllu",
        "ud-conllu/{language}_gsd-ud-{split}.conllu|ud-conllu/{language}_ewt-ud-{split}.conllu",
        ("test",),
    ),
    "panx": TaskSpec(
        "panx",
        "token",
        PANX_TAGS,
        False,
        "panx/panx_train-en.tsv",
        "train",
        "panx/panx_dev-en.tsv",
        "panx/panx_{split}-{language}.tsv",
        ("dev",),
    ),
    "xnli": TaskSpec(
        "xnli",
        "pair",
        ("contradiction", "entailment", "neutral"),
        True,
        "xnli/xtreme_xnli_dev-en.tsv",
        "dev",
        None,
        "xnli/xnli_{split}-{language}.labels-propagated.tsv|xnli/xtreme_xnli_{split}-{language}.tsv",
        ("test",),
        reader="pair",
        metric="classification",
    ),
    "pawsx": TaskSpec(
        "pawsx",
        "pair",
        ("0", "1"),
        True,
        "pawsx/xtreme_pawsx_dev-en.tsv",
        "dev",
        None,
        "pawsx/pawsx_{split}-{language}.labeled.tsv|pawsx/xtreme_pawsx_{split}-{language}.tsv",
        ("test",),
        reader="pair",
        metric="classification",
    ),
}


@dataclass
class TaskData:
    task: TaskSpec
    train: list
    selection: list  # English only: checkpoint and layer selection
    evaluation: dict[str, list]  # language -> examples, English included when it has an evaluation file
    files: dict[str, str]


def read_examples(task: TaskSpec, path: Path, limit: int | None = None) -> list:
    if task.reader == "pair":
        return read_pair_tsv(path, limit)
    return read_conllu(path, limit) if path.suffix == ".conllu" else read_tagged_tsv(path, limit)


def eval_file(task: TaskSpec, data_dir: Path, language: str, splits: tuple[str, ...]) -> tuple[Path, str] | None:
    """The evaluation file of `language`: the first split of `splits` that has one."""
    for split in splits:
        for pattern in task.eval_pattern.split("|"):
            candidate = data_dir / pattern.format(split=split, language=language)
            if candidate.exists():
                return candidate, split
    return None


def available_languages(task: TaskSpec, data_dir: Path, splits: tuple[str, ...]) -> list[str]:
    languages = set()
    for split in splits:
        for pattern in task.eval_pattern.split("|"):
            relative = Path(pattern.replace("{split}", split))
            prefix, suffix = relative.name.split("{language}")
            for path in (data_dir / relative.parent).glob(f"{prefix}*{suffix}"):
                languages.add(path.name[len(prefix) : len(path.name) - len(suffix)])
    return sorted(languages)


def check_zero_shot(task: TaskSpec, train_path: Path, eval_files: dict[str, tuple[Path, str]]) -> None:
    """Refuse to evaluate on the training file, or on the training split of a parallel (translated) data set."""
    for language, (path, split) in eval_files.items():
        if path.resolve() == train_path.resolve():
            raise ValueError(f"{task.name}: {path} ({language}) is the training file; evaluate on another split")
        if task.parallel and split == task.train_split:
            raise ValueError(
                f"{task.name}: {path} ({language}) is a translation of the training data {train_path}: the "
                f"{task.name} '{split}' files of all languages are translations of one another, and the English "
                f"'{split}' file is trained on. Zero-shot evaluation must use another split (e.g. --eval_split test)."
            )


def hold_out_selection(
    examples: list, fraction: float, seed: int, max_train: int | None, max_selection: int | None
) -> tuple[list, list]:
    """Where the English training data is the only English data: a seeded `fraction` of it, held out for selection."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    held_out = max(1, int(len(examples) * fraction))
    selection = [examples[i] for i in sorted(order[:held_out])][:max_selection]
    train = [examples[i] for i in sorted(order[held_out:])][:max_train]
    return train, selection


def load_task_data(
    task: TaskSpec,
    data_dir: Path,
    eval_languages: list[str] | None = None,
    eval_splits: tuple[str, ...] | None = None,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    selection_fraction: float = 0.1,
    seed: int = 0,
) -> TaskData:
    """Read a task's English training and selection data and its per-language evaluation data from `data_dir`."""
    data_dir = Path(data_dir)
    splits = eval_splits or task.eval_splits
    train_path = data_dir / task.train_file
    if not train_path.exists():
        raise FileNotFoundError(f"{task.name}: no English training file {train_path} (is --data_dir right?)")
    languages = eval_languages or available_languages(task, data_dir, splits)
    if not languages:
        raise FileNotFoundError(f"{task.name}: no evaluation files for split(s) {splits} under {data_dir}")
    eval_files = {}
    for language in languages:
        found = eval_file(task, data_dir, language, splits)
        if found is None:
            known = ", ".join(available_languages(task, data_dir, splits))
            raise FileNotFoundError(
                f"{task.name}: no {'/'.join(splits)} file for language {language!r} under {data_dir}; found: {known}"
            )
        eval_files[language] = found
    check_zero_shot(task, train_path, eval_files)

    if task.selection_file is not None:
        train = read_examples(task, train_path, max_train_samples)
        selection_path = data_dir / task.selection_file
        selection = read_examples(task, selection_path, max_eval_samples)
        files = {"train": str(train_path), "selection": str(selection_path)}
    else:
        train, selection = hold_out_selection(
            read_examples(task, train_path), selection_fraction, seed, max_train_samples, max_eval_samples
        )
        files = {"train": str(train_path), "selection": f"{train_path} (seeded {selection_fraction:.0%} held out)"}
    evaluation = {language: read_examples(task, path, max_eval_samples) for language, (path, _) in eval_files.items()}
    files.update({language: str(path) for language, (path, _) in eval_files.items()})
    return TaskData(task, train, selection, evaluation, files)


# ---------------------------------------------------------------------------------------------------------------------
# Features


def align_labels(
    sentences: list[TaggedSentence],
    tokenizer: PreTrainedTokenizerBase,
    label_to_id: dict[str, int],
    max_length: int,
    alignment: str = "first_content",
) -> list[dict[str, list[int]]]:
    """
    Tokenize pre-split sentences and label one sub-token per word (-100 on the others and on special tokens).
    `"first"`: the first sub-token, as XTREME does. `"first_content"`: the first sub-token that is not a bare "▁";
    SentencePiece tokenizers often split a word (CJK above all) into "▁" + the real piece, and "▁" carries no
    content.
    """
    if alignment not in LABEL_ALIGNMENTS:
        raise ValueError(f"label alignment {alignment!r} is not supported: choose one of {LABEL_ALIGNMENTS}")
    features = []
    for sentence in sentences:
        encoding = tokenizer(sentence.tokens, is_split_into_words=True, truncation=True, max_length=max_length)
        pieces = encoding.tokens()
        word_ids = encoding.word_ids()
        labels, labelled_words = [], set()
        for position, word in enumerate(word_ids):
            if word is None or word in labelled_words:
                labels.append(-100)
                continue
            next_is_same_word = position + 1 < len(word_ids) and word_ids[position + 1] == word
            if alignment == "first_content" and pieces[position] == "▁" and next_is_same_word:
                labels.append(-100)
                continue
            labels.append(label_to_id[sentence.tags[word]])
            labelled_words.add(word)
        features.append(
            {"input_ids": encoding["input_ids"], "attention_mask": encoding["attention_mask"], "labels": labels}
        )
    return features


def encode_pairs(
    pairs: list[SentencePair], tokenizer: PreTrainedTokenizerBase, label_to_id: dict[str, int], max_length: int
) -> list[dict]:
    encoding = tokenizer(
        [pair.first for pair in pairs], [pair.second for pair in pairs], truncation=True, max_length=max_length
    )
    return [
        {**{key: values[index] for key, values in encoding.items()}, "labels": label_to_id[pair.label]}
        for index, pair in enumerate(pairs)
    ]
