"""
The word-level pipeline: `word_level` is a per-call choice (two threads sharing one pipeline never see each other's),
and every tokenizer kind (SentencePiece, WordPiece, byte-level BPE) gets one tag per word from a generic DLFA tagger.
"""

import json
import threading
from pathlib import Path

import pytest
import torch
from tokenizers import ByteLevelBPETokenizer
from transformers import AutoConfig, AutoModel, BertTokenizerFast, PreTrainedTokenizerFast, RobertaTokenizerFast

from dlfa_tester import save_tiny_bert
from dlfa_zero_shot.features import IGNORE_INDEX, examples_dataset, tokenize_tagging
from dlfa_zero_shot.readers import TaggedSentence
from dlfa_zero_shot.tasks import TASKS
from modeling_dlfa import DLFABertForTokenClassification, DLFAForTokenClassification, WordTokenClassificationPipeline
from modeling_dlfa.pipeline_dlfa import BARE_WORD_START, LABEL_ALIGNMENTS


SENTENCE = "Unbelievably , the committee reconvened yesterday ."


def test_word_level_is_a_per_call_choice_even_across_threads(tmp_path, offline_tokenizer):
    labels = TASKS["udpos"].labels  # no "O": every piece and every word comes back
    torch.manual_seed(0)
    model = DLFABertForTokenClassification.from_pretrained(
        save_tiny_bert(tmp_path / "bert", offline_tokenizer), fusion_layer=1, num_labels=len(labels),
        id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)},
    ).eval()  # fmt: skip
    tagger = WordTokenClassificationPipeline(model=model, tokenizer=offline_tokenizer)
    by_piece, by_word = tagger(SENTENCE), tagger(SENTENCE, word_level=True)
    assert len(by_word) == len(SENTENCE.split()) < len(by_piece)  # the two choices give different outputs

    # Thread A asks for words and is held inside the word-level aggregation; meanwhile thread B (here) asks for
    # pieces. Before, the choice was an attribute set on the shared pipeline for the length of A's call, so B
    # aggregated by words too.
    entered, release, results = threading.Event(), threading.Event(), {}
    aggregate_words = tagger.aggregate_words

    def held(*args, **kwargs):
        entered.set()
        release.wait(timeout=30)
        return aggregate_words(*args, **kwargs)

    tagger.aggregate_words = held
    words_thread = threading.Thread(target=lambda: results.update(words=tagger(SENTENCE, word_level=True)))
    words_thread.start()
    assert entered.wait(timeout=30)
    entered.clear()
    results["pieces"] = tagger(SENTENCE)
    release.set()
    words_thread.join(timeout=30)
    assert results["pieces"] == by_piece and results["words"] == by_word


def wordpiece_tokenizer(folder: Path) -> PreTrainedTokenizerFast:
    folder.mkdir(parents=True)
    words = sorted({word.lower() for word in " ".join(WORDS).split()} | {"##s", "##ed"})
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    return BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))


def byte_level_bpe_tokenizer(folder: Path) -> PreTrainedTokenizerFast:
    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(WORDS * 20, vocab_size=300, min_frequency=1,
                                special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])  # fmt: skip
    folder.mkdir(parents=True)
    trainer.save_model(str(folder))
    merges = [tuple(line.split()) for line in (folder / "merges.txt").read_text().splitlines()[1:] if line.strip()]
    return RobertaTokenizerFast(vocab=json.loads((folder / "vocab.json").read_text()), merges=merges)


WORDS = ["The committee reconvened yesterday in Berlin", "Anna walked home , tired"]
FAMILIES = {  # a tokenizer of each kind, with a family that ships such tokenizers
    "sentencepiece": ("xlm-roberta", None),
    "wordpiece": ("distilbert", wordpiece_tokenizer),
    "bpe": ("roberta", byte_level_bpe_tokenizer),
}


@pytest.mark.parametrize("kind", sorted(FAMILIES))
def test_every_tokenizer_kind_gets_one_tag_per_word_from_the_generic_tagger(kind, tmp_path, offline_tokenizer):
    family, make_tokenizer = FAMILIES[kind]
    tokenizer = make_tokenizer(tmp_path / "tokenizer") if make_tokenizer else offline_tokenizer
    labels = TASKS["udpos"].labels
    config = AutoConfig.for_model(family, vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=4, intermediate_size=37, hidden_dim=37, max_position_embeddings=64,
                                  pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    torch.manual_seed(0)
    AutoModel.from_config(config).save_pretrained(tmp_path / "encoder")
    model = DLFAForTokenClassification.from_pretrained(
        tmp_path / "encoder", fusion_layer=1, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    ).eval()  # fmt: skip
    tagger = WordTokenClassificationPipeline(model=model, tokenizer=tokenizer)
    for sentence in WORDS:
        words = sentence.split()
        tagged = tagger(sentence, word_level=True)
        assert [entry["word"] for entry in tagged] == words, kind
        assert [entry["word"] for entry in tagger([words], is_split_into_words=True, word_level=True)[0]] == words, (
            kind
        )
        assert all(entry["entity"] in labels for entry in tagged)


def test_training_labels_the_piece_the_pipeline_reads_by_one_rule(offline_tokenizer):
    """
    The bare-"▁" rule has one owner, the shipped pipeline's `skips_bare_word_start`, which training's label alignment
    calls too: on real SentencePiece pieces of CJK words (where the tokenizer splits a bare "▁" off), each word's
    labelled piece is its first piece that the rule does not pass over. Before, the rule was written out twice.
    """
    from modeling_dlfa.pipeline_dlfa import skips_bare_word_start

    words = ["我", "喜欢", "北京", "。", "Berlin"]
    encoding = offline_tokenizer(words, is_split_into_words=True)
    pieces, word_ids = encoding.tokens(), encoding.word_ids()
    assert BARE_WORD_START in pieces  # the case the rule is for is in the data
    labels = TASKS["udpos"].label_to_id
    sentence = TaggedSentence(words, ["PRON", "VERB", "PROPN", "PUNCT", "PROPN"])
    for alignment in LABEL_ALIGNMENTS:
        features = tokenize_tagging(examples_dataset([sentence]), offline_tokenizer, labels, 32, alignment)
        labelled = [position for position, label in enumerate(features[0]["labels"]) if label != IGNORE_INDEX]
        read, seen = [], set()
        for position, word in enumerate(word_ids):
            if word is None or word in seen or skips_bare_word_start(alignment, pieces, word_ids, position):
                continue
            read.append(position)
            seen.add(word)
        assert labelled == read, alignment
        bare = [position for position, piece in enumerate(pieces) if piece == BARE_WORD_START]
        assert (set(bare) & set(read) == set()) == (alignment == "first_content"), alignment
