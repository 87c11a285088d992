"""
ONNX export of a fine-tuned token or sequence classifier (DLFA or the stock BERT head) for CPU inference with ONNX
Runtime: dynamic batch and sequence axes, inputs `input_ids`, `attention_mask` (and `token_type_ids` where the
tokenizer makes them), output `logits`.
"""

from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedModel


def export_onnx(model: PreTrainedModel, path: Path, with_token_type_ids: bool = False, opset: int = 17) -> Path:
    """Export `model` (put in eval mode) to `path` with TorchScript tracing; dynamic `batch` and `sequence` axes."""
    model = model.eval()
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if with_token_type_ids else [])
    example = {name: torch.ones(2, 8, dtype=torch.long) for name in names}
    example["attention_mask"][1, 5:] = 0  # padding in the traced example, so its masking is part of the graph
    dynamic = {name: {0: "batch", 1: "sequence"} for name in names}
    logits_axes = {0: "batch", 1: "sequence"} if "TokenClassification" in type(model).__name__ else {0: "batch"}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            model, (), str(path), kwargs=example, input_names=names, output_names=["logits"],
            dynamic_axes={**dynamic, "logits": logits_axes}, opset_version=opset, dynamo=False,
        )  # fmt: skip
    return path


def max_difference(model: PreTrainedModel, path: Path, inputs: dict[str, torch.Tensor]) -> float:
    """Largest absolute difference between ONNX Runtime's and PyTorch's logits on `inputs` (padding included)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    wanted = {node.name for node in session.get_inputs()}
    onnx_logits = session.run(["logits"], {name: value.numpy() for name, value in inputs.items() if name in wanted})[0]
    with torch.no_grad():
        torch_logits = model.eval()(**{name: value for name, value in inputs.items() if name in wanted}).logits.numpy()
    mask = inputs["attention_mask"].numpy().astype(bool)
    if onnx_logits.ndim == 3:  # tagging: compare real tokens (padded positions are not used by anyone)
        return float(np.abs(onnx_logits - torch_logits)[mask].max())
    return float(np.abs(onnx_logits - torch_logits).max())
