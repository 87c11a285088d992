"""The DLFA heads under `Trainer`: gradient accumulation gives the loss (and update) of one large batch."""

import pytest
import torch
from transformers import Trainer, TrainingArguments

from dlfa_tester import DLFABertModelTester, build
from modeling_dlfa import DLFABertForSequenceClassification, DLFABertForTokenClassification


TESTER = DLFABertModelTester(batch_size=8, seq_length=9)


def train_one_step(model, examples, batch_size: int, accumulation: int, output_dir) -> tuple[float, dict]:
    args = TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
        max_steps=1,
        learning_rate=0.5,
        optim="sgd",
        lr_scheduler_type="constant",
        max_grad_norm=0.0,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        dataloader_drop_last=False,
        seed=0,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=examples)
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return losses[0], {name: param.detach().clone() for name, param in model.named_parameters()}


def make_examples(model_class) -> list[dict[str, torch.Tensor]]:
    # Rows with different numbers of labelled tokens: the case where averaging per micro-batch goes wrong.
    inputs = TESTER.prepare_inputs()
    labels = TESTER.prepare_labels(model_class, inputs)
    return [{**{key: value[row] for key, value in inputs.items()}, "labels": labels[row]} for row in range(8)]


@pytest.mark.parametrize("model_class", [DLFABertForTokenClassification, DLFABertForSequenceClassification])
def test_gradient_accumulation_matches_one_large_batch(model_class, tmp_path):
    # LayerNorm in the AIF branches keeps every example independent of its micro-batch, so the two runs must agree
    # to rounding; with "batch" the statistics (rightly) differ per micro-batch.
    config = TESTER.get_config(aif_norm="layer", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    examples = make_examples(model_class)
    model = build(model_class, config, eval_mode=False)
    twin = build(model_class, config, eval_mode=False)

    loss_full, weights_full = train_one_step(model, examples, 8, 1, tmp_path / "full")
    loss_accumulated, weights_accumulated = train_one_step(twin, examples, 2, 4, tmp_path / "accumulated")

    assert loss_accumulated == pytest.approx(loss_full, rel=1e-4)
    for name, value in weights_full.items():
        torch.testing.assert_close(weights_accumulated[name], value, atol=1e-5, rtol=1e-4)


def test_gradient_accumulation_keeps_the_loss_scale_with_batch_norm(tmp_path):
    config = TESTER.get_config(aif_norm="batch")
    examples = make_examples(DLFABertForTokenClassification)
    loss_full, _ = train_one_step(build(DLFABertForTokenClassification, config), examples, 8, 1, tmp_path / "a")
    loss_accumulated, _ = train_one_step(build(DLFABertForTokenClassification, config), examples, 2, 4, tmp_path / "b")
    # Not equal (the batch statistics and dropout differ), but not off by the accumulation factor either.
    assert loss_accumulated == pytest.approx(loss_full, rel=0.2)


def test_multi_label_and_regression_losses_honour_num_items_in_batch():
    from modeling_dlfa.modeling_dlfa import sequence_classification_loss

    logits = torch.randn(4, 3)
    for problem_type, labels in (
        ("multi_label_classification", torch.randint(0, 2, (4, 3)).float()),
        ("regression", torch.randn(4, 3)),
    ):
        config = TESTER.get_config(problem_type=problem_type)
        mean = sequence_classification_loss(logits, labels, config)
        halves = sum(
            sequence_classification_loss(logits[part], labels[part], config, num_items_in_batch=labels.numel())
            for part in (slice(0, 2), slice(2, 4))
        )
        torch.testing.assert_close(halves, mean)


def test_predictions_come_back_in_dataset_order_under_length_grouped_training(tmp_path):
    """The harness scores `predict` rows by position; transformers batches evaluation by length too under
    `train_sampling_strategy="group_by_length"` (the study's setting), which permutes them."""
    from dlfa_zero_shot.training import predict_in_order

    torch.manual_seed(0)
    model = build(DLFABertForSequenceClassification, TESTER.get_config()).eval()
    rows = [{"input_ids": torch.randint(5, TESTER.vocab_size, (TESTER.seq_length,))} for _ in range(48)]

    def trainer(strategy: str) -> Trainer:
        args = TrainingArguments(output_dir=str(tmp_path / strategy), per_device_eval_batch_size=4, use_cpu=True,
                                 train_sampling_strategy=strategy, report_to="none", disable_tqdm=True)  # fmt: skip
        return Trainer(model=model, args=args)

    expected = trainer("random").predict(rows).predictions
    grouped = trainer("group_by_length")
    assert not torch.allclose(torch.as_tensor(grouped.predict(rows).predictions), torch.as_tensor(expected))
    assert torch.allclose(torch.as_tensor(predict_in_order(grouped, rows)), torch.as_tensor(expected), atol=1e-6)
    assert grouped.args.train_sampling_strategy == "group_by_length"  # training keeps its batches
