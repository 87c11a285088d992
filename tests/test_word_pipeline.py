"""The word-level pipeline takes `word_level` per call: two threads sharing one pipeline never see each other's."""

import threading

import torch

from dlfa_tester import save_tiny_bert
from dlfa_zero_shot.tasks import TASKS
from modeling_dlfa import DLFABertForTokenClassification, WordTokenClassificationPipeline


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
