"""
A task's data from either source, through one rule.

`LocalSource` reads a folder laid out as `../shared/data/xtreme-lite`; `HubSource` reads XTREME on the Hub
(`google/xtreme`, or a local folder in its layout) with `datasets`. Both answer the same two questions (which
splits each language has; the examples of one language and split), and `load_task_data` does the rest once: the
English training and selection data, the evaluation split of each language, and the zero-shot rule.
"""

import logging
import random
from dataclasses import dataclass
from pathlib import Path

from .provenance import file_sha256
from .readers import SentencePair, TaggedSentence, example_labels, is_labelled, read_examples
from .tasks import TRAIN_LANGUAGE, TaskSpec


logger = logging.getLogger(__name__)


@dataclass
class TaskData:
    task: TaskSpec
    train: list  # English
    selection: list  # English only: checkpoint and layer selection
    evaluation: dict[str, list]  # language -> examples, English included when it has an evaluation file
    eval_splits: dict[str, str]  # language -> the split evaluated
    files: dict[str, str]  # "train", "selection" and each language -> where the examples came from
    sha256: dict[str, str | None]  # the same keys -> the SHA-256 of that file (None: read from the Hub)


class LocalSource:
    """A folder laid out as `../shared/data/xtreme-lite`; files are described relative to it."""

    def __init__(self, data_dir: str | Path):
        self.data_dir = Path(data_dir)
        if not self.data_dir.is_dir():
            raise FileNotFoundError(f"--data_dir {self.data_dir} is not a folder")

    def splits_by_language(self, task: TaskSpec) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for split, patterns in task.local_files.items():
            for pattern in patterns.split("|"):
                relative = Path(pattern)
                prefix, suffix = relative.name.split("{language}")
                for path in (self.data_dir / relative.parent).glob(f"{prefix}*{suffix}"):
                    language = path.name[len(prefix) : len(path.name) - len(suffix)]
                    if split not in found.setdefault(language, []):
                        found[language].append(split)
        return dict(sorted(found.items()))

    def path(self, task: TaskSpec, language: str, split: str) -> Path:
        for pattern in task.local_files.get(split, "").split("|"):
            if pattern and (self.data_dir / pattern.format(language=language)).is_file():
                return self.data_dir / pattern.format(language=language)
        raise FileNotFoundError(f"{task.name}: no {split} file for {language!r} under {self.data_dir}")

    def read(self, task: TaskSpec, language: str, split: str, limit: int | None = None) -> list:
        return read_examples(task.kind, self.path(task, language, split), limit)

    def describe(self, task: TaskSpec, language: str, split: str) -> str:
        return self.path(task, language, split).relative_to(self.data_dir).as_posix()

    def sha256(self, task: TaskSpec, language: str, split: str) -> str | None:
        return file_sha256(self.path(task, language, split))


class HubSource:
    """XTREME on the Hub (`google/xtreme`) or a local folder in its layout (a README declaring the configs)."""

    def __init__(self, dataset_name: str, cache_dir: str | None = None):
        self.dataset_name, self.cache_dir = dataset_name, cache_dir
        # Where a task trains on another data set (XNLI on MultiNLI): its Hub id, or a local copy in its layout.
        self.train_dataset_name: str | None = None

    def _layout(self, task: TaskSpec):
        if task.hub is None:
            raise ValueError(f"task {task.name!r} has no Hub layout; read it from local files (--data_dir)")
        return task.hub

    def splits_by_language(self, task: TaskSpec) -> dict[str, list[str]]:
        import datasets

        layout = self._layout(task)
        logical = {hub: split for split, hub in layout.split_names.items()}
        if layout.language_column is not None:
            found: dict[str, list[str]] = {}
            for hub_split in datasets.get_dataset_split_names(self.dataset_name, layout.config):
                if hub_split in logical:
                    for language in sorted(set(self._load(layout.config, hub_split)[layout.language_column])):
                        found.setdefault(language, []).append(logical[hub_split])
        else:
            codes = {name: code for code, name in (layout.language_names or {}).items()}
            prefix = layout.config.split("{language}")[0]
            configs = datasets.get_dataset_config_names(self.dataset_name)
            languages = [codes.get(c[len(prefix) :], c[len(prefix) :]) for c in configs if c.startswith(prefix)]
            found = {
                language: [
                    logical[split]
                    for split in datasets.get_dataset_split_names(self.dataset_name, layout.config_name(language))
                    if split in logical
                ]
                for language in languages
            }
        if layout.train_dataset is not None:
            found.setdefault(TRAIN_LANGUAGE, []).append("train")
        return dict(sorted(found.items()))

    def read(self, task: TaskSpec, language: str, split: str, limit: int | None = None) -> list:
        layout = self._layout(task)
        where = self.describe(task, language, split)
        if split == "train" and layout.train_dataset is not None:
            dataset, config, columns = layout.train_dataset
            rows = self._load(config, "train", self.train_dataset_name or dataset)
        else:
            columns = layout.columns
            rows = self._load(layout.config_name(language), layout.split_names[split])
            if layout.language_column is not None:
                rows = rows.filter(lambda value: value == language, input_columns=layout.language_column)
        if limit is not None:
            rows = rows.select(range(min(limit, len(rows))))
        missing = [column for column in columns if column not in rows.column_names]
        if missing:
            raise ValueError(f"{where} has no column(s) {missing}; it has {rows.column_names}")
        labels = [label_names(rows.features[columns[-1]], value) for value in rows[columns[-1]]]
        flat = {label for row in labels for label in (row if isinstance(row, list) else [row])}
        if not flat <= set(task.labels):
            raise ValueError(
                f"{where}: labels {sorted(flat - set(task.labels))} are not {task.name} labels {task.labels}"
            )
        if task.kind == "token":
            return [TaggedSentence(list(tokens), tags) for tokens, tags in zip(rows[columns[0]], labels)]
        return [SentencePair(a, b, label) for a, b, label in zip(rows[columns[0]], rows[columns[1]], labels)]

    def describe(self, task: TaskSpec, language: str, split: str) -> str:
        layout = self._layout(task)
        if split == "train" and layout.train_dataset is not None:
            return f"{self.train_dataset_name or layout.train_dataset[0]}/train"
        rows = f" ({language} rows)" if layout.language_column else ""
        return f"{self.dataset_name}:{layout.config_name(language)}/{layout.split_names[split]}{rows}"

    def sha256(self, task: TaskSpec, language: str, split: str) -> str | None:
        return None  # a Hub data set is named by `describe`; its files are the datasets cache's

    def _load(self, config: str | None, split: str, dataset: str | None = None):
        import datasets

        return datasets.load_dataset(dataset or self.dataset_name, config, split=split, cache_dir=self.cache_dir)


class FileSource:
    """
    A user's own files (the stock scripts' formats, or CoNLL/TSV): English `train` and `dev` files, and a `test` file
    per language. Files are described by their path as given. The training file is read once, whole
    (`training_examples`): it gives the label set before it is trained on, and the reader's warnings are said once.
    """

    def __init__(self, train_file: str | None, validation_file: str | None, test_files: dict[str, str]):
        self.files = {(TRAIN_LANGUAGE, "train"): train_file, (TRAIN_LANGUAGE, "dev"): validation_file}
        self.files.update({(language, "test"): path for language, path in test_files.items()})
        self.files = {key: Path(path) for key, path in self.files.items() if path}
        for path in self.files.values():
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no such file")
        trained = self.files.get((TRAIN_LANGUAGE, "train"))
        for (language, split), path in self.files.items():
            if split == "test" and trained is not None and path.resolve() == trained.resolve():
                raise ValueError(f"--test_files {language}={path} is the training file; evaluate on other data")
        self._training: dict[str, list[TaggedSentence | SentencePair]] = {}  # task kind -> the training file's

    def splits_by_language(self, task: TaskSpec) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for language, split in self.files:
            found.setdefault(language, []).append(split)
        return dict(sorted(found.items()))

    def training_examples(self, kind: str) -> list[TaggedSentence | SentencePair]:
        """Every example of the training file, as the reader of a task of `kind` reads it (once)."""
        if kind not in self._training:
            self._training[kind] = read_examples(kind, self.files[TRAIN_LANGUAGE, "train"])
        return list(self._training[kind])

    def read(self, task: TaskSpec, language: str, split: str, limit: int | None = None) -> list:
        if (language, split) == (TRAIN_LANGUAGE, "train"):
            return self.training_examples(task.kind)[:limit]
        return read_examples(task.kind, self.files[language, split], limit)

    def describe(self, task: TaskSpec, language: str, split: str) -> str:
        return str(self.files[language, split])

    def sha256(self, task: TaskSpec, language: str, split: str) -> str | None:
        return file_sha256(self.files[language, split])


def labels_of(examples: list) -> tuple[str, ...]:
    """The label set of training examples, sorted (tagging: every tag; pairs: every label)."""
    found = {label for example in examples for label in example_labels(example)}
    if not found:
        raise ValueError("the training file has no labels")
    return tuple(sorted(found))


def check_labels(task: TaskSpec, examples: list, where: str, required: bool) -> None:
    """
    Every label of `examples` must be one the model knows, and an example without labels is refused where labels are
    `required` (training and selection data) or where others of its file have them (evaluation data is scored when
    every example is labelled and only predicted when none is: a mix would drop the language from the scores). Each
    error names the file and line (and the label).
    """
    known = set(task.labels)
    unlabelled = [example for example in examples if not is_labelled(example)]
    if unlabelled and required:
        raise ValueError(
            f"{where}:{unlabelled[0].line}: this example has no labels ({len(unlabelled)} of the {len(examples)} read "
            "have none); training and selection examples need labels"
        )
    if unlabelled and len(unlabelled) < len(examples):
        raise ValueError(
            f"{where}:{unlabelled[0].line}: this example has no labels ({len(unlabelled)} of {len(examples)} have "
            "none) while the others have them: label every example to score the language, or none to predict only"
        )
    for example in examples:
        unknown = sorted(set(example_labels(example)) - known)
        if unknown:
            raise ValueError(
                f"{where}:{example.line}: label(s) {unknown} were never seen in training; the labels are {list(task.labels)}"
            )


def label_names(feature, value: int | str | list) -> str | list[str]:
    """One row's labels as names: `ClassLabel` ids (or sequences of them) become their names; strings stay."""
    import datasets

    inner = getattr(feature, "feature", feature)
    if isinstance(value, list):
        return [label_names(inner, item) for item in value]
    return inner.int2str(value) if isinstance(inner, datasets.ClassLabel) else str(value)


def english_splits(task: TaskSpec, english: list[str]) -> tuple[str, str | None]:
    """
    (the English split trained on, the English split that selects or None for a seeded hold-out). Where a source
    lacks the task's English training split (PAWS-X in xtreme-lite), its selection split is trained on instead,
    with a slice held out.
    """
    if task.train_split in english:
        return task.train_split, task.selection_split if task.selection_split in english else None
    if task.selection_split in english:
        logger.warning(
            "%s: this source has no English %s split; training on English %s with a seeded hold-out for selection",
            task.name, task.train_split, task.selection_split,
        )  # fmt: skip
        return task.selection_split, None
    raise FileNotFoundError(f"{task.name}: no English {task.train_split} data in this source (it has {english})")


def check_zero_shot(task: TaskSpec, trained_split: str, eval_splits: dict[str, str]) -> None:
    """
    The zero-shot rule: never evaluate on the English data trained on, nor, for a parallel task (whose other
    languages' files are translations of the English ones), on any language's copy of the split trained on.
    """
    for language, split in eval_splits.items():
        if split != trained_split or not (language == TRAIN_LANGUAGE or task.parallel):
            continue
        trained_on = (
            "the English training data" if language == TRAIN_LANGUAGE else "a translation of the training data"
        )
        raise ValueError(
            f"{task.name}: {language} '{split}' is {trained_on} (English '{trained_split}' is trained on); "
            f"zero-shot evaluation must use another split, e.g. --eval_split {task.eval_splits[0]}"
        )


HELD_OUT = " (seeded {:.0%} held out)"  # after the training file: `TaskData.files`' name of a held-out selection


def described_file(entry: str) -> str:
    """The file a `TaskData.files` entry read: a held-out selection's (`HELD_OUT`) is the training file."""
    opening, closing = HELD_OUT.split("{")[0], HELD_OUT.split("}")[-1]
    head, _, tail = entry.rpartition(opening)
    return head if head and tail.endswith(closing) else entry


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


def evaluation_splits(
    task: TaskSpec,
    available: dict[str, list[str]],
    splits: tuple[str, ...],
    eval_languages: list[str] | None,
    need_some: bool = True,
) -> dict[str, str]:
    """
    Each evaluation language -> the first of `splits` the source has for it: `eval_languages`, or every language with
    one of them. A requested language with none of them is a ValueError naming the languages that have some; without
    `eval_languages`, a source with none for any language is a FileNotFoundError if `need_some`.
    """
    with_eval = [language for language, have in available.items() if set(have) & set(splits)]
    if not with_eval and need_some and not eval_languages:
        raise FileNotFoundError(f"{task.name}: no {'/'.join(splits)} data for any language in this source")
    split_of = {}
    for language in eval_languages or with_eval:
        chosen = next((split for split in splits if split in available.get(language, ())), None)
        if chosen is None:
            raise ValueError(
                f"{task.name}: no {'/'.join(splits)} data for language {language!r}; languages with some: {with_eval}"
            )
        split_of[language] = chosen
    return split_of


def read_evaluation(
    task: TaskSpec,
    source: LocalSource | HubSource | FileSource,
    split_of: dict[str, str],
    max_eval_samples: int | None,
) -> tuple[dict[str, list], dict[str, str]]:
    """Each language's examples of its split (the first `max_eval_samples`), and where they were read."""
    evaluation = {
        language: source.read(task, language, split, max_eval_samples) for language, split in split_of.items()
    }
    return evaluation, {language: source.describe(task, language, split) for language, split in split_of.items()}


def file_digests(
    task: TaskSpec, source: LocalSource | HubSource | FileSource, read: dict[str, tuple[str, str]]
) -> dict[str, str | None]:
    """`read`: what `TaskData.files` names (split or language) -> (language, split) -> that file's SHA-256."""
    return {key: source.sha256(task, language, split) for key, (language, split) in read.items()}


def load_evaluation_only(
    task: TaskSpec,
    source: LocalSource | HubSource | FileSource,
    available: dict[str, list[str]],
    splits: tuple[str, ...],
    eval_languages: list[str] | None,
    max_eval_samples: int | None,
) -> TaskData:
    """
    `load_task_data` without English training data: the languages found, and English dev (if any) for selection; a
    source with neither is a FileNotFoundError.
    """
    english = available.get(TRAIN_LANGUAGE, [])
    split_of = evaluation_splits(task, available, splits, eval_languages, need_some="dev" not in english)
    selection = source.read(task, TRAIN_LANGUAGE, "dev", max_eval_samples) if "dev" in english else []
    evaluation, files = read_evaluation(task, source, split_of, max_eval_samples)
    read = {language: (language, split) for language, split in split_of.items()}
    if selection:
        files["selection"] = source.describe(task, TRAIN_LANGUAGE, "dev")
        read["selection"] = (TRAIN_LANGUAGE, "dev")
    for language, examples in [("selection", selection), *evaluation.items()]:
        check_labels(task, examples, files.get(language, language), required=language == "selection")
    return TaskData(task, [], selection, evaluation, split_of, files, file_digests(task, source, read))


def load_task_data(
    task: TaskSpec,
    source: LocalSource | HubSource | FileSource,
    eval_languages: list[str] | None = None,
    eval_splits: tuple[str, ...] | None = None,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    selection_fraction: float = 0.1,
    seed: int = 0,
    need_training: bool = True,
) -> TaskData:
    """
    A task's English training and selection data and its per-language evaluation data, by the zero-shot rule.
    `need_training=False` (evaluation only): a source without English training data gives no training examples, and
    the English dev data, where there is some, for selection.
    """
    splits = tuple(eval_splits or task.eval_splits)
    available = source.splits_by_language(task)
    english = available.get(TRAIN_LANGUAGE, [])
    if not need_training and task.train_split not in english:
        return load_evaluation_only(task, source, available, splits, eval_languages, max_eval_samples)
    trained_split, selection_split = english_splits(task, english)
    split_of = evaluation_splits(task, available, splits, eval_languages)
    check_zero_shot(task, trained_split, split_of)

    files = {"train": source.describe(task, TRAIN_LANGUAGE, trained_split)}
    if selection_split is not None:
        train = source.read(task, TRAIN_LANGUAGE, trained_split, max_train_samples)
        selection = source.read(task, TRAIN_LANGUAGE, selection_split, max_eval_samples)
        files["selection"] = source.describe(task, TRAIN_LANGUAGE, selection_split)
    else:
        train, selection = hold_out_selection(
            source.read(task, TRAIN_LANGUAGE, trained_split), selection_fraction, seed, max_train_samples,
            max_eval_samples,
        )  # fmt: skip
        files["selection"] = files["train"] + HELD_OUT.format(selection_fraction)
    evaluation, evaluation_files = read_evaluation(task, source, split_of, max_eval_samples)
    files.update(evaluation_files)
    checked = [(files["train"], train, True), (described_file(files["selection"]), selection, True)]
    checked += [(files[language], examples, False) for language, examples in evaluation.items()]
    for where, examples, required in checked:
        check_labels(task, examples, where, required)
    read = {"train": (TRAIN_LANGUAGE, trained_split), "selection": (TRAIN_LANGUAGE, selection_split or trained_split),
            **{language: (language, split) for language, split in split_of.items()}}  # fmt: skip
    return TaskData(task, train, selection, evaluation, split_of, files, file_digests(task, source, read))
