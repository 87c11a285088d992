"""
The one table of task facts: for each task its kind, label set, metric, which splits train, select and evaluate,
whether its other-language files are translations (the parallel-task rule), where each split lives in a local
folder laid out as `../shared/data/xtreme-lite` and in XTREME on the Hub, and how reports and model cards name it
(`Presentation`). Readers (`data.py`), the script, the report and the model cards read these facts from here and
nowhere else.

Splits are named logically: `train`, `dev`, `test`. The Hub calls `dev` "validation" (`HubLayout.split_names`).
"""

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path


UPOS_TAGS = (
    "ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN", "PUNCT", "SCONJ", "SYM",
    "VERB", "X",
)  # fmt: skip
PANX_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
NLI_LABELS = ("contradiction", "entailment", "neutral")
TRAIN_LANGUAGE = "en"
# XTREME's metrics as a local `evaluate` module (no metric hub needed).
XTREME_METRIC = str(Path(__file__).with_name("metrics") / "xtreme")

# Metric family -> the score that selects checkpoints and layers (a key of the metric's output), and its name in
# reports and model cards.
MAIN_SCORE = {"tagging": "f1", "classification": "accuracy"}
METRIC_NAMES = {"tagging": "seqeval F1", "classification": "accuracy"}

# XTREME's UDPOS configs on the Hub are named by language; the Hub spells Afrikaans "Afrikans".
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
    """Where a task's splits are in a Hub data set laid out as `google/xtreme`."""

    config: str  # one language's config ("{language}" in it), or every language's (with `language_column`)
    columns: tuple[str, ...]  # (tokens, tags) or (first sentence, second sentence, label)
    language_column: str | None = None
    language_names: dict[str, str] | None = None  # language code -> its name in the config
    split_names: dict[str, str] = field(
        default_factory=lambda: {"train": "train", "dev": "validation", "test": "test"}
    )
    # The English training data where it is another data set (XNLI trains on MultiNLI): (dataset, config, columns).
    train_dataset: tuple[str, str | None, tuple[str, ...]] | None = None

    def config_name(self, language: str) -> str:
        return self.config.format(language=(self.language_names or {}).get(language, language))


@dataclass(frozen=True)
class Presentation:
    """How reports and model cards name a task; `title` reads "part-of-speech tagging (UDPOS)"."""

    dataset: str  # the data set's name in tables: "UDPOS"
    activity: str  # what the model does: "part-of-speech tagging"
    abbreviation: str | None = None  # the activity in a report heading ("POS tagging"); None: the data set says it
    note: str | None = None  # what sets a variant of the data set apart ("trained on its English dev set")

    @property
    def title(self) -> str:
        return f"{self.activity} ({', '.join(filter(None, (self.dataset, self.note)))})"


@dataclass(frozen=True)
class TaskSpec:
    name: str
    kind: str  # "token" (one label per word) or "pair" (one label per sentence pair)
    labels: tuple[str, ...]
    metric: str  # the config of the `evaluate` module `XTREME_METRIC`: "tagging" (seqeval F1, as XTREME) or "classification"
    # Other languages' files are translations of the English ones: never evaluate on the split trained on.
    parallel: bool
    train_split: str  # the English split trained on
    selection_split: str | None  # the English split that selects checkpoints and layers; None: a seeded hold-out
    eval_splits: tuple[str, ...]  # preference order of the evaluation split, per language
    local_files: dict[str, str]  # split -> file pattern under the data folder, "{language}" in it; "|": alternatives
    presentation: Presentation
    hub: HubLayout | None = None

    @property
    def main_score(self) -> str:
        return MAIN_SCORE[self.metric]

    @property
    def metric_name(self) -> str:
        """The main score's name in reports and model cards: "seqeval F1" or "accuracy"."""
        return METRIC_NAMES[self.metric]

    @property
    def label_to_id(self) -> dict[str, int]:
        return {label: index for index, label in enumerate(self.labels)}

    def tag_names(self, ids: Iterable[int]) -> list[str]:
        """Label ids -> label names (`label_names`)."""
        return label_names(self.labels, ids)


def label_names(labels: tuple[str, ...], ids: Iterable[int]) -> list[str]:
    """
    Label ids -> label names. A negative id (an ignored position, or no prediction) is never a label: ValueError,
    rather than a default tag that some metrics would count as right.
    """
    ids = [int(i) for i in ids]
    if any(i < 0 or i >= len(labels) for i in ids):
        raise ValueError(f"label ids {ids} hold {[i for i in ids if not 0 <= i < len(labels)]}: not ids of {labels}")
    return [labels[i] for i in ids]


# As XTREME does it: train on English MultiNLI, select on English XNLI dev, evaluate on the XNLI test sets.
XNLI = TaskSpec(
    "xnli",
    "pair",
    NLI_LABELS,
    "classification",
    parallel=True,
    train_split="train",
    selection_split="dev",
    eval_splits=("test",),
    local_files={
        "train": "mnli/mnli_train-{language}.20k.tsv",
        "dev": "xnli/xtreme_xnli_dev-{language}.tsv",
        "test": "xnli/xnli_test-{language}.labels-propagated.tsv|xnli/xtreme_xnli_test-{language}.tsv",
    },
    presentation=Presentation("XNLI", "natural language inference"),
    hub=HubLayout(
        "XNLI",
        ("sentence1", "sentence2", "gold_label"),
        language_column="language",
        train_dataset=("nyu-mll/multi_nli", None, ("premise", "hypothesis", "label")),
    ),
)

TASKS = {
    "udpos": TaskSpec(
        "udpos",
        "token",
        UPOS_TAGS,
        "tagging",
        parallel=False,
        train_split="train",
        selection_split="dev",
        eval_splits=("test", "dev"),  # German has dev only
        local_files={split: f"udpos/xtreme_udpos_{split}-{{language}}.tsv" for split in ("train", "dev", "test")},
        presentation=Presentation("UDPOS", "part-of-speech tagging", abbreviation="POS tagging"),
        hub=HubLayout("udpos.{language}", ("tokens", "pos_tags"), language_names=UDPOS_LANGUAGE_NAMES),
    ),
    # POS tagging from Universal Dependencies CoNLL-U files: English EWT trains and selects; the GSD treebanks
    # (de fr es zh ja) and EWT test evaluate.
    "udpos_ud": TaskSpec(
        "udpos_ud",
        "token",
        UPOS_TAGS,
        "tagging",
        parallel=False,
        train_split="train",
        selection_split="dev",
        eval_splits=("test",),
        local_files={
            split: f"ud-conllu/{{language}}_gsd-ud-{split}.conllu|ud-conllu/{{language}}_ewt-ud-{split}.conllu"
            for split in ("train", "dev", "test")
        },
        presentation=Presentation("UD", "part-of-speech tagging", abbreviation="POS tagging"),
    ),
    # PAN-X's test labels are private in XTREME's release, so dev is the evaluation split from either source.
    "panx": TaskSpec(
        "panx",
        "token",
        PANX_TAGS,
        "tagging",
        parallel=False,
        train_split="train",
        selection_split="dev",
        eval_splits=("dev",),
        local_files={split: f"panx/panx_{split}-{{language}}.tsv" for split in ("train", "dev")},
        presentation=Presentation("PAN-X", "named entity recognition", abbreviation="NER"),
        hub=HubLayout("PAN-X.{language}", ("tokens", "ner_tags")),
    ),
    "xnli": XNLI,
    # The earlier small study's XNLI: the 2,490-pair English XNLI dev set is the training data, with a seeded 10%
    # held out for selection (kept so that study's archived runs stay reproducible).
    "xnli_dev": replace(
        XNLI,
        name="xnli_dev",
        train_split="dev",
        selection_split=None,
        local_files={split: XNLI.local_files[split] for split in ("dev", "test")},
        presentation=replace(XNLI.presentation, note="trained on its English dev set"),
        hub=replace(XNLI.hub, train_dataset=None),
    ),
    # PAWS-X: trains on English PAWS (locally PAWS-Wiki's labelled test split, 8,000 pairs that share no sentence with
    # PAWS-X dev or test; on the Hub PAWS-X's English train), selects on English dev, evaluates every language's test
    # (English apart). A local folder without the training file trains on English dev with a seeded hold-out
    # (`data.english_splits`).
    "pawsx": TaskSpec(
        "pawsx",
        "pair",
        ("0", "1"),
        "classification",
        parallel=True,
        train_split="train",
        selection_split="dev",
        eval_splits=("test",),
        local_files={
            "train": "pawsx/pawsx_train-{language}.paws-wiki-test.tsv",
            "dev": "pawsx/xtreme_pawsx_dev-{language}.tsv",
            "test": "pawsx/pawsx_test-{language}.labeled.tsv|pawsx/xtreme_pawsx_test-{language}.tsv",
        },
        presentation=Presentation("PAWS-X", "paraphrase identification"),
        hub=HubLayout("PAWS-X.{language}", ("sentence1", "sentence2", "label")),
    ),
}


def custom_task(name: str, kind: str, labels: tuple[str, ...]) -> TaskSpec:
    """
    A task over a user's own files (`data.FileSource`): its kind ("token" or "pair") and its label set, from the
    training file (or the checkpoint evaluated); English `train` and `dev` files, a `test` file per language.
    """
    if kind not in ("token", "pair"):
        raise ValueError(f"task kind {kind!r}: choose 'token' (tagging) or 'pair' (sentence pairs)")
    metric = "tagging" if kind == "token" else "classification"
    activity = "token classification" if kind == "token" else "sentence-pair classification"
    return TaskSpec(name, kind, tuple(labels), metric, parallel=False, train_split="train", selection_split="dev",
                    eval_splits=("test",), local_files={},
                    presentation=Presentation("your data", activity))  # fmt: skip


# `--task` names for a user's own files, by kind (a built-in task's name also works: its kind is used)
CUSTOM_KINDS = {"tagging": "token", "pairs": "pair"}
