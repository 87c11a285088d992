"""
ONNX export of a fine-tuned token or sequence classifier (DLFA or the stock BERT head) for CPU inference with ONNX
Runtime: dynamic batch and sequence axes, inputs `input_ids`, `attention_mask` (and `token_type_ids` where the
tokenizer makes them), output `logits`.
"""

import warnings
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedModel

from .files import staged_file


# The default opset: the one torch.onnx's `dynamo=True` exporter writes its operators in (any other is converted to,
# afterwards); `examples/export_onnx.py --opset` defaults to it too.
OPSET = 18


def export_onnx(model: PreTrainedModel, path: Path, with_token_type_ids: bool = False, opset: int = OPSET) -> Path:
    """
    Export `model` (put in eval mode) to `path` with PyTorch's `torch.export`-based exporter (`dynamo=True`, which
    needs `onnxscript`); dynamic `batch` and `sequence` axes.
    """
    model = model.eval()
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if with_token_type_ids else [])
    example = {name: torch.ones(2, 8, dtype=torch.long) for name in names}
    example["attention_mask"][1, 5:] = 0  # padding in the example, so that the masked path is the one exported
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The process's logging is the application's to configure (examples/export_onnx.py drops torch's notice that
    # torchvision is not installed, whose operators these models never use); the export changes no logger.
    with torch.no_grad(), warnings.catch_warnings():
        # Known, harmless notices: the two inputs share their axes on purpose; a deprecation inside torch's
        # own pytree code.
        warnings.filterwarnings("ignore", message="# The axis name")
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
        program = torch.onnx.export(
            model, (), kwargs=example, output_names=["logits"], opset_version=opset, dynamo=True, verbose=False,
            dynamic_shapes={name: {0: batch, 1: sequence} for name in names},
        )  # fmt: skip
    with staged_file(path) as temporary:  # whole or not at all
        program.save(str(temporary))
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
