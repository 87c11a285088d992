"""
The four tasks from XTREME on the Hub (`google/xtreme`, or a local copy laid out the same way: a folder whose
README.md declares the configs), read with `datasets` into the same `TaskData` the local-file readers give.

Configs and columns (as on the Hub): `udpos.<LanguageName>` and `PAN-X.<code>` hold `tokens` with `pos_tags` /
`ner_tags` (`ClassLabel` sequences); `PAWS-X.<code>` holds `sentence1`, `sentence2`, `label`; `XNLI` is one
config of every language with a `language` column and `gold_label`. English training data: the `train` split, except
XNLI, whose English data on the Hub is only `validation` (XTREME trains on MultiNLI, a separate data set): it is
trained on, with a seeded slice held out for selection, and evaluation uses `test`, as with the local files.
"""

from dataclasses import dataclass

import datasets

from zero_shot_data import SentencePair, TaggedSentence, TaskData, TaskSpec, hold_out_selection


# XTREME's UDPOS configs are named by language; the Hub spells Afrikaans "Afrikans".
UDPOS_LANGUAGE_NAMES = {
    "af": "Afrikans", "ar": "Arabic", "bg": "Bulgarian", "de": "German", "el": "Greek", "en": "English",
    "es": "Spanish", "et": "Estonian", "eu": "Basque", "fa": "Persian", "fi": "Finnish", "fr": "French",
    "he": "Hebrew", "hi": "Hindi", "hu": "Hungarian", "id": "Indonesian", "it": "Italian", "ja": "Japanese",
    "kk": "Kazakh", "ko": "Korean", "mr": "Marathi", "nl": "Dutch", "pt": "Portuguese", "ru": "Russian",
    "ta": "Tamil", "te": "Telugu", "th": "Thai", "tl": "Tagalog", "tr": "Turkish", "ur": "Urdu",
    "vi": "Vietnamese", "yo": "Yoruba", "zh": "Chinese",
}  # fmt: skip


@dataclass(frozen=True)
class HubLayout:
    config: str  # the config of one language ("{language}" in it), or of all languages (language_column set)
    columns: tuple[str, ...]  # (tokens, tags) or (first sentence, second sentence, label)
    train_split: str
    selection_split: str | None  # None: hold out a seeded slice of the English training split
    eval_splits: tuple[str, ...]  # preference order per language
    language_column: str | None = None
    language_names: dict[str, str] | None = None  # language code -> the name in the config

    def config_name(self, language: str) -> str:
        names = self.language_names or {}
        return self.config.format(language=names.get(language, language))


HUB_LAYOUTS = {
    "udpos": HubLayout(
        "udpos.{language}", ("tokens", "pos_tags"), "train", "validation", ("test", "validation"),
        language_names=UDPOS_LANGUAGE_NAMES,
    ),
    "panx": HubLayout("PAN-X.{language}", ("tokens", "ner_tags"), "train", "validation", ("test", "validation")),
    "pawsx": HubLayout("PAWS-X.{language}", ("sentence1", "sentence2", "label"), "train", "validation", ("test",)),
    "xnli": HubLayout(
        "XNLI", ("sentence1", "sentence2", "gold_label"), "validation", None, ("test",), language_column="language"
    ),
}  # fmt: skip


class HubTaskReader:
    """Reads one task's splits per language from a Hub data set (or a local folder in its layout)."""

    def __init__(self, task: TaskSpec, dataset_name: str, cache_dir: str | None = None):
        if task.name not in HUB_LAYOUTS:
            raise ValueError(f"task {task.name!r} has no Hub layout: choose one of {sorted(HUB_LAYOUTS)}")
        self.task, self.dataset_name, self.cache_dir = task, dataset_name, cache_dir
        self.layout = HUB_LAYOUTS[task.name]

    def splits_by_language(self) -> dict[str, list[str]]:
        """language code -> the splits it has."""
        layout = self.layout
        if layout.language_column is not None:
            languages_in = {split: self._languages_in(split) for split in self._splits(layout.config)}
            return {
                language: [split for split, present in languages_in.items() if language in present]
                for language in sorted(set().union(*languages_in.values()))
            }
        codes = {name: code for code, name in (layout.language_names or {}).items()}
        prefix = layout.config.split("{language}")[0]
        configs = datasets.get_dataset_config_names(self.dataset_name)
        languages = [codes.get(name, name) for name in (c[len(prefix) :] for c in configs if c.startswith(prefix))]
        return {language: self._splits(layout.config_name(language)) for language in sorted(languages)}

    def read(self, language: str, split: str, limit: int | None = None) -> list:
        """The examples of `language` in `split` (at most `limit`), as `TaggedSentence`s or `SentencePair`s."""
        layout = self.layout
        where = f"{self.dataset_name} ({layout.config_name(language)}/{split})"
        rows = self._load(layout.config_name(language), split)
        if layout.language_column is not None:
            rows = rows.filter(lambda value: value == language, input_columns=layout.language_column)
        if limit is not None:
            rows = rows.select(range(min(limit, len(rows))))
        missing = [column for column in layout.columns if column not in rows.column_names]
        if missing:
            raise ValueError(f"{where} has no column(s) {missing}; it has {rows.column_names}")
        labels = [label_names(rows.features[layout.columns[-1]], value) for value in rows[layout.columns[-1]]]
        flat = {label for row in labels for label in (row if isinstance(row, list) else [row])}
        if not flat <= set(self.task.labels):
            unknown = sorted(flat - set(self.task.labels))
            raise ValueError(f"{where}: labels {unknown} are not {self.task.name} labels {self.task.labels}")
        if self.task.kind == "token":
            return [TaggedSentence(list(tokens), tags) for tokens, tags in zip(rows[layout.columns[0]], labels)]
        firsts, seconds = rows[layout.columns[0]], rows[layout.columns[1]]
        return [SentencePair(first, second, label) for first, second, label in zip(firsts, seconds, labels)]

    def _splits(self, config: str) -> list[str]:
        return datasets.get_dataset_split_names(self.dataset_name, config)

    def _languages_in(self, split: str) -> set[str]:
        return set(self._load(self.layout.config, split)[self.layout.language_column])

    def _load(self, config: str, split: str) -> datasets.Dataset:
        return datasets.load_dataset(self.dataset_name, config, split=split, cache_dir=self.cache_dir)


def label_names(feature, value: int | str | list) -> str | list[str]:
    """One row's labels as names: `ClassLabel` ids (or sequences of them) become their names; strings stay."""
    inner = getattr(feature, "feature", feature)
    if isinstance(value, list):
        return [label_names(inner, item) for item in value]
    return inner.int2str(value) if isinstance(inner, datasets.ClassLabel) else str(value)


def load_hub_task_data(
    task: TaskSpec,
    dataset_name: str,
    eval_languages: list[str] | None = None,
    eval_splits: tuple[str, ...] | None = None,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    selection_fraction: float = 0.1,
    seed: int = 0,
    cache_dir: str | None = None,
) -> TaskData:
    """`load_task_data` for a Hub data set: English training and selection data, per-language evaluation data."""
    reader = HubTaskReader(task, dataset_name, cache_dir)
    layout = reader.layout
    splits = eval_splits or layout.eval_splits
    available = reader.splits_by_language()
    languages = eval_languages or [language for language, have in available.items() if set(have) & set(splits)]
    eval_splits_of = {}
    for language in languages:
        chosen = next((split for split in splits if split in available.get(language, ())), None)
        if chosen is None:
            raise ValueError(
                f"{task.name}: {dataset_name} has no {'/'.join(splits)} split for language {language!r}; languages "
                f"with one: {[code for code, have in available.items() if set(have) & set(splits)]}"
            )
        if chosen == layout.train_split and (task.parallel or language == "en"):
            trained_on = "the English training data" if language == "en" else "a translation of the training data"
            raise ValueError(
                f"{task.name}: {dataset_name} {language} '{chosen}' is {trained_on} (English '{layout.train_split}' "
                f"is trained on); zero-shot evaluation must use another split, e.g. "
                f"--eval_split {layout.eval_splits[0]}"
            )
        eval_splits_of[language] = chosen

    def where(split: str, language: str = "en") -> str:
        rows = f" ({language} rows)" if layout.language_column else ""
        return f"{dataset_name}:{layout.config_name(language)}/{split}{rows}"

    if layout.selection_split is not None:
        train = reader.read("en", layout.train_split, max_train_samples)
        selection = reader.read("en", layout.selection_split, max_eval_samples)
        files = {"train": where(layout.train_split), "selection": where(layout.selection_split)}
    else:
        train, selection = hold_out_selection(
            reader.read("en", layout.train_split), selection_fraction, seed, max_train_samples, max_eval_samples
        )
        files = {
            "train": where(layout.train_split),
            "selection": f"{where(layout.train_split)} (seeded {selection_fraction:.0%} held out)",
        }
    evaluation = {
        language: reader.read(language, split, max_eval_samples) for language, split in eval_splits_of.items()
    }
    files.update({language: where(split, language) for language, split in eval_splits_of.items()})
    return TaskData(task, train, selection, evaluation, files)
