"""A tiny DLFA-BERT and its inputs, shared by the test modules (the ModelTester of transformers' model tests)."""

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import BertConfig, BertModel, PreTrainedTokenizerBase

from modeling_dlfa import (
    DLFABertConfig,
    DLFABertForSequenceClassification,
    DLFABertForTokenClassification,
    DLFABertModel,
)


ALL_MODEL_CLASSES = (DLFABertModel, DLFABertForTokenClassification, DLFABertForSequenceClassification)


@dataclass
class DLFABertModelTester:
    batch_size: int = 3
    seq_length: int = 7
    vocab_size: int = 99
    hidden_size: int = 32
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 37
    max_position_embeddings: int = 64
    num_labels: int = 3
    fusion_layer: int = 2

    def backbone_shape(self) -> dict:
        return dict(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            max_position_embeddings=self.max_position_embeddings,
        )

    def get_bert_config(self, **overrides) -> BertConfig:
        """A plain BERT config of the same tiny shape, as in a stock BERT checkpoint."""
        return BertConfig(**{**self.backbone_shape(), **overrides})

    def get_config(self, **overrides) -> DLFABertConfig:
        values = dict(
            self.backbone_shape(),
            num_labels=self.num_labels,
            fusion_layer=self.fusion_layer,
            hidden_dropout_prob=0.1,
            attention_probs_dropout_prob=0.1,
        )
        return DLFABertConfig(**{**values, **overrides})

    def prepare_inputs(self, seed: int = 0) -> dict[str, torch.Tensor]:
        """Ids of real tokens (never the pad id 0), with the later rows right-padded by 1, 2, ... tokens."""
        generator = torch.Generator().manual_seed(seed)
        input_ids = torch.randint(1, self.vocab_size, (self.batch_size, self.seq_length), generator=generator)
        attention_mask = torch.ones_like(input_ids)
        for row in range(1, self.batch_size):
            attention_mask[row, self.seq_length - row :] = 0
        input_ids = input_ids.masked_fill(attention_mask == 0, 0)
        token_type_ids = torch.zeros_like(input_ids)
        token_type_ids[:, self.seq_length // 2 :] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}

    def prepare_labels(self, model_class, inputs: dict[str, torch.Tensor], seed: int = 0) -> torch.Tensor | None:
        generator = torch.Generator().manual_seed(seed)
        if model_class is DLFABertForTokenClassification:
            labels = torch.randint(0, self.num_labels, inputs["input_ids"].shape, generator=generator)
            return labels.masked_fill(inputs["attention_mask"] == 0, -100)
        if model_class is DLFABertForSequenceClassification:
            return torch.randint(0, self.num_labels, (inputs["input_ids"].shape[0],), generator=generator)
        return None


def first_output(outputs) -> torch.Tensor:
    """The main tensor of any DLFA model's output: fused states for the base model, logits for the heads."""
    return outputs.logits if hasattr(outputs, "logits") else outputs.last_hidden_state


def assert_same_hidden_states(returned: tuple | None, expected: tuple | None, where: str) -> None:
    """`returned` are the hidden states the stock model gave (`expected`): None for None, the same states exactly."""
    if expected is None:
        assert returned is None, where
        return
    assert [state is None for state in returned] == [state is None for state in expected], where
    for state, stock_state in zip(returned, expected):
        if stock_state is not None:
            torch.testing.assert_close(state, stock_state, atol=0, rtol=0, msg=where)


def build(model_class, config: DLFABertConfig, seed: int = 0, eval_mode: bool = True):
    torch.manual_seed(seed)
    model = model_class(config)
    return model.eval() if eval_mode else model.train()


def save_tiny_bert(
    folder: Path, tokenizer: PreTrainedTokenizerBase, num_hidden_layers: int = 2, pad_token_id: int | None = None
) -> Path:
    """
    A hidden-32 BERT over `tokenizer`'s vocabulary, saved with the tokenizer: a small stand-in checkpoint. Its config's
    `pad_token_id` is the tokenizer's unless given.
    """
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=130,
        pad_token_id=tokenizer.pad_token_id if pad_token_id is None else pad_token_id,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
