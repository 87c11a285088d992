"""A plain BERT checkpoint loads into every DLFA class: the backbone is kept, only fusion block and head are new."""

import pytest
import torch
from transformers import BertForTokenClassification, BertModel

from dlfa_tester import ALL_MODEL_CLASSES, DLFABertModelTester
from modeling_dlfa import DLFABertForSequenceClassification


BERT_CONFIG = DLFABertModelTester().get_bert_config()


@pytest.fixture(scope="module")
def bert_checkpoints(tmp_path_factory):
    """A BertModel folder (unprefixed keys, with pooler) and a BertForTokenClassification folder (`bert.` keys)."""
    root = tmp_path_factory.mktemp("bert")
    torch.manual_seed(0)
    BertModel(BERT_CONFIG).save_pretrained(root / "bert-model")
    torch.manual_seed(1)
    BertForTokenClassification(BERT_CONFIG).save_pretrained(root / "bert-tagger")
    return root


def backbone_state(model) -> dict[str, torch.Tensor]:
    """Backbone weights keyed as in a BertModel (no `bert.` prefix, no fusion block)."""
    return model.state_dict() if isinstance(model, BertModel) else model.bert.state_dict()


@pytest.mark.parametrize("model_class", ALL_MODEL_CLASSES)
@pytest.mark.parametrize("checkpoint", ["bert-model", "bert-tagger"])
def test_plain_bert_fills_the_backbone_and_only_fusion_and_head_are_new(model_class, checkpoint, bert_checkpoints):
    folder = bert_checkpoints / checkpoint
    # The tagger checkpoint has a 2-label classifier, which loads into a 2-label DLFA head like any BERT head.
    num_labels = 5 if checkpoint == "bert-model" else 2
    model, info = model_class.from_pretrained(folder, fusion_layer=2, num_labels=num_labels, output_loading_info=True)
    assert model.config.fusion_layer == 2 and model.config.num_labels == num_labels

    bert = (BertModel if checkpoint == "bert-model" else BertForTokenClassification).from_pretrained(folder)
    ours, theirs = backbone_state(model), backbone_state(bert)
    assert set(theirs) - set(ours) <= {"pooler.dense.weight", "pooler.dense.bias"}  # DLFA pools outside the encoder
    for key in set(theirs) & set(ours):
        assert torch.equal(ours[key], theirs[key]), key

    state = model.state_dict()
    expected_new = {key for key in state if key.removeprefix("bert.").startswith("fusion.")}
    if checkpoint == "bert-model":
        expected_new |= {key for key in state if key.startswith("classifier.")}
    else:  # the tagger has no pooler
        expected_new |= {key for key in state if key.removeprefix("bert.").startswith("pooler.")}
    assert any(key.endswith("fusion.local_context.reduce.weight") for key in expected_new)
    assert set(info["missing_keys"]) == expected_new
    assert not info["mismatched_keys"]


@pytest.mark.parametrize("model_class", ALL_MODEL_CLASSES)
def test_new_fusion_block_comes_from_init_weights(model_class, bert_checkpoints):
    model = model_class.from_pretrained(bert_checkpoints / "bert-model", fusion_layer=1, num_labels=2)
    fusion = model.fusion
    for name, tensor in list(fusion.named_parameters()) + list(fusion.named_buffers()):
        assert tensor.device.type == "cpu" and torch.isfinite(tensor.float()).all(), name
    for branch in (fusion.global_context, fusion.local_context):
        assert torch.equal(branch.expand_norm.weight, torch.zeros_like(branch.expand_norm.weight))
        assert torch.equal(branch.reduce_norm.running_mean, torch.zeros_like(branch.reduce_norm.running_mean))
        assert 0.01 < branch.reduce.weight.std().item() < 0.03


def test_sequence_classifier_uses_the_pretrained_pooler_on_the_fused_cls(bert_checkpoints):
    model = DLFABertForSequenceClassification.from_pretrained(bert_checkpoints / "bert-model", num_labels=2).eval()
    bert = BertModel.from_pretrained(bert_checkpoints / "bert-model")
    assert torch.equal(model.pooler.dense.weight, bert.pooler.dense.weight)
    input_ids = torch.randint(1, 99, (2, 6))
    with torch.no_grad():
        fused = model.encode_and_fuse(input_ids).last_hidden_state
        expected = model.classifier(bert.pooler(fused))
        assert torch.allclose(model(input_ids).logits, expected, atol=1e-6)
