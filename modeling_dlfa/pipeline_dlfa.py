# Copyright 2026 The dlfa authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""Word-level token classification for tokenizers that mark word starts, not word continuations.

The stock `TokenClassificationPipeline` finds word boundaries with a `continuing_subword_prefix` ("##" in WordPiece).
SentencePiece tokenizers (XLM-R, multilingual-e5) have none, so it falls back to a character heuristic ("Tokenizer
does not support real words") that breaks where the tokenizer splits a bare "▁" off a word, as it does before most
CJK words: "喜欢" becomes "▁" + "喜欢", two "words", the first one empty, tagged from a piece no label was trained on.

`WordTokenClassificationPipeline` takes the words from the fast tokenizer instead (`word_ids` for pre-split input;
whitespace-separated words, by character offsets, for a string), and reads each word from the piece its model was
trained to label, as recorded in `config.label_alignment`:

- `"first"` (the default, the stock `run_ner.py` rule): the word's first piece;
- `"first_content"` (what `examples/run_zero_shot.py` trains and scores): the first piece that is not a bare "▁".

With `aggregation_strategy="first"` the output is one entry per word grouped into entities as the stock pipeline
does; with `word_level=True` it is exactly one entry per word, none filtered, in order: the tags the harness scores,
each with the word as written and its character span. Scores are plain Python floats.

    tagger = pipeline("token-classification", model="path/to/run/model", trust_remote_code=True)
    tagger(["我", "喜欢", "北京", "。"], is_split_into_words=True, word_level=True)
    # [{'entity': 'PRON', 'score': 0.99, 'word': '我', 'start': 0, 'end': 1}, {'entity': 'VERB', ...}, ...]

This file is copied into saved checkpoints (`add_word_pipeline`, and every DLFA tagger's `save_pretrained`), so it
imports only from the standard library, numpy and transformers.
"""

import contextvars
import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np
from transformers import PreTrainedConfig
from transformers.pipelines.token_classification import AggregationStrategy, TokenClassificationPipeline


LABEL_ALIGNMENTS = ("first", "first_content")
BARE_WORD_START = "▁"
# `config.custom_pipelines`: what makes `pipeline("token-classification" | "ner", model=<folder>, trust_remote_code=
# True)` build this class from the folder's copy of this file.
WORD_PIPELINES = {
    task: {"impl": "pipeline_dlfa.WordTokenClassificationPipeline", "pt": ["AutoModelForTokenClassification"]}
    for task in ("token-classification", "ner")
}


WORD_LEVEL = contextvars.ContextVar("dlfa_word_level", default=False)  # this call's `word_level`, for `aggregate`


class WordTokenClassificationPipeline(TokenClassificationPipeline):
    """
    [`TokenClassificationPipeline`] whose words are the tokenizer's words (see the module docstring), with one more
    call argument, `word_level` (bool): one entry per word, every word, no grouping into entities.
    """

    def _sanitize_parameters(self, word_level: bool | None = None, **kwargs):
        preprocess_params, forward_params, postprocess_params = super()._sanitize_parameters(**kwargs)
        if word_level is not None:
            if word_level and not self.tokenizer.is_fast:
                raise ValueError("word_level=True needs a fast tokenizer (it reads word boundaries from offsets)")
            postprocess_params["word_level"] = word_level
        return preprocess_params, forward_params, postprocess_params

    @property
    def label_alignment(self) -> str:
        return label_alignment_of(self.model.config)

    def gather_pre_entities(
        self,
        sentence: str,
        input_ids: np.ndarray,
        scores: np.ndarray,
        offset_mapping: list[tuple[int, int]] | None,
        special_tokens_mask: np.ndarray,
        aggregation_strategy: AggregationStrategy,
        word_ids: list[int | None] | None = None,
        word_to_chars_map: list[tuple[int, int]] | None = None,
    ) -> list[dict]:
        # NONE: the parent then skips its heuristic (and its warning); `is_subword` is set here from real words.
        pieces = super().gather_pre_entities(
            sentence, input_ids, scores, offset_mapping, special_tokens_mask, AggregationStrategy.NONE,
            word_ids=word_ids, word_to_chars_map=word_to_chars_map,
        )  # fmt: skip
        if offset_mapping is None:  # a slow tokenizer: no offsets, no words
            return pieces
        if word_ids is not None:
            words = [word_ids[piece["index"]] for piece in pieces]
        else:
            words = whitespace_words(sentence, [(piece["start"], piece["end"]) for piece in pieces])
        kept, kept_words, texts = [], [], [piece["word"] for piece in pieces]
        for position, (piece, word) in enumerate(zip(pieces, words)):
            if skips_bare_word_start(self.label_alignment, texts, words, position):
                continue
            piece["is_subword"] = bool(kept_words) and kept_words[-1] == word
            kept.append(piece)
            kept_words.append(word)
        return kept

    def aggregate(self, pre_entities: list[dict], aggregation_strategy: AggregationStrategy) -> list[dict]:
        if WORD_LEVEL.get():  # one entry per word: the words, not grouped into entities
            return self.aggregate_words(pre_entities, aggregation_strategy)
        return super().aggregate(pre_entities, aggregation_strategy)

    def postprocess(
        self,
        all_outputs,
        aggregation_strategy=AggregationStrategy.NONE,
        ignore_labels=None,
        word_level: bool = False,
    ) -> list[dict]:
        if not word_level:
            entities = super().postprocess(all_outputs, aggregation_strategy, ignore_labels)
            return [plain_python(entity) for entity in entities]
        if aggregation_strategy in (AggregationStrategy.NONE, AggregationStrategy.SIMPLE):
            aggregation_strategy = AggregationStrategy.FIRST
        # The stock postprocess calls `aggregate` without our argument: the call's choice reaches it through a context
        # variable, which belongs to this thread (and task) alone, never through the shared pipeline object.
        token = WORD_LEVEL.set(True)
        try:
            entities = super().postprocess(all_outputs, aggregation_strategy, ignore_labels=[])
        finally:
            WORD_LEVEL.reset(token)
        sentence = all_outputs[0]["sentence"]
        for entity in entities:
            # a word's first piece may start at the space before it ("▁" stands for that space)
            while entity["start"] < entity["end"] and sentence[entity["start"]].isspace():
                entity["start"] += 1
            entity["word"] = sentence[entity["start"] : entity["end"]]  # as written, not as normalised
        return [plain_python(entity) for entity in entities]


def label_alignment_of(config: PreTrainedConfig) -> str:
    """
    The label alignment a saved tagger was trained with: its `config.label_alignment`, or `"first"` where its config
    has none (the stock `run_ner.py` rule); a ValueError names any other value.
    """
    alignment = getattr(config, "label_alignment", None) or "first"
    if alignment not in LABEL_ALIGNMENTS:
        raise ValueError(f"config.label_alignment={alignment!r} is not supported: choose one of {LABEL_ALIGNMENTS}")
    return alignment


def skips_bare_word_start(alignment: str, pieces: list[str], words: list[int | None], position: int) -> bool:
    """
    Whether the piece at `position` is passed over when a word's tag is read from (or, in training, given to) one of
    its pieces under `alignment`: under `"first_content"`, a bare "▁" followed by another piece of the same word (it
    carries no content, so the word starts at its next piece). `pieces` are the tokens as strings, `words` the word
    of each (None for special tokens).
    """
    return (
        alignment == "first_content"
        and pieces[position] == BARE_WORD_START
        and position + 1 < len(words)
        and words[position + 1] == words[position]
    )


def whitespace_words(sentence: str, spans: list[tuple[int, int]]) -> list[int]:
    """
    The whitespace-separated word of each piece, from its character span: the word holding its first non-space
    character, or for a piece of spaces only (a bare "▁" standing for the space before a word) the next word.
    """
    starts = [match.start() for match in re.finditer(r"\S+", sentence)]
    words = []
    for start, end in spans:
        content = start + len(sentence[start:end]) - len(sentence[start:end].lstrip())
        if content == end:  # nothing but spaces: it opens the word that follows
            words.append(int(np.searchsorted(starts, end, side="left")))
        else:
            words.append(int(np.searchsorted(starts, content, side="right")) - 1)
    return words


def plain_python(entity: dict) -> dict:
    """numpy scalars (`score`, offsets) as Python floats and ints, so the output serialises as is."""
    return {key: value.item() if isinstance(value, np.generic) else value for key, value in entity.items()}


def add_word_pipeline(save_directory: str | Path, label_alignment: str | None = None) -> None:
    """
    Make a saved token-classification folder (any architecture) build [`WordTokenClassificationPipeline`] through
    `pipeline(..., trust_remote_code=True)`: copy this file into it and declare it in its `config.json`, with the
    `label_alignment` the model was trained with (None: keep the folder's, else `"first"`).
    """
    if label_alignment is not None and label_alignment not in LABEL_ALIGNMENTS:
        raise ValueError(f"label_alignment={label_alignment!r} is not supported: choose one of {LABEL_ALIGNMENTS}")
    save_directory = Path(save_directory)
    config_file = save_directory / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file} does not exist: save the model to {save_directory} first")
    replace_whole(save_directory / Path(__file__).name, Path(__file__).read_bytes())
    config = json.loads(config_file.read_text())
    config["custom_pipelines"] = {**config.get("custom_pipelines", {}), **WORD_PIPELINES}
    if label_alignment is not None:
        config["label_alignment"] = label_alignment
    replace_whole(config_file, (json.dumps(config, indent=2, sort_keys=True) + "\n").encode())


def replace_whole(path: Path, data: bytes) -> None:
    """
    Write `path` through a temporary file renamed into place, so that a crash never leaves half a config. (The
    harness's own writes go through `dlfa_zero_shot.files`; this file ships in checkpoints, on the standard library.)
    """
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".partial-{os.getpid()}-", delete=False) as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(handle.name, 0o644)
    os.replace(handle.name, path)
