"""
ONNX export of a fine-tuned token or sequence classifier (DLFA or the stock BERT head) for CPU inference with ONNX
Runtime: dynamic batch and sequence axes, inputs `input_ids`, `attention_mask` (and `token_type_ids` where the
tokenizer makes them), output `logits`; its int8 dynamic quantization; and the check of either against PyTorch.
Every model file is written whole (`write_whole`, on `files.staged_beside`, not `files.staged_file`: a model over 2 GB
keeps its weights in a second file named after the model, so every file of the staged folder moves): a reader never
finds a half-written one.
"""

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedModel

from .files import staged_beside


# The default opset: the one torch.onnx's `dynamo=True` exporter writes its operators in (any other is converted to,
# afterwards); `examples/export_onnx.py --opset` defaults to it too.
OPSET = 18
QUANTIZATIONS = ("int8",)  # `examples/export_onnx.py --quantize`
# The bits int8's product weights may use (`quantize_int8`'s `weight_bits`): 7, what the export writes, safe on every
# CPU; 8, which only `benchmarks/onnx_int8_accuracy.py --weight_bits 8` asks for, to measure what 7 costs.
INT8_WEIGHT_BITS = (7, 8)


def write_whole(path: Path, write: Callable[[Path], object]) -> Path:
    """
    `write(destination)` into a folder beside `path` (`files.staged_beside`), then each file it wrote synced and moved
    beside `path`, `path` itself last (a model over 2 GB keeps its weights in a file of its own, named after it): no
    reader sees a half-written model, a failed write leaves nothing behind, a killed one only what
    `files.remove_leftovers` clears, and a full disk is a `DiskFullError`. Returns `path`.
    """
    with staged_beside(path) as destination:
        write(destination)
    return Path(path)


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
    return write_whole(path, lambda destination: program.save(str(destination)))


def quantize_int8(source: Path, path: Path, weight_bits: int = INT8_WEIGHT_BITS[0]) -> Path:
    """
    The exported model `source`, int8 dynamically quantized into `path` (ONNX Runtime's `quantize_dynamic`): the
    weights of its matrix products with a weight (the linear layers, the fusion's 1x1 convolutions) are stored as int8,
    per output channel, and the activations entering them are quantized to uint8 as each batch runs; the embedding
    tables are stored as uint8, one scale per table, and the rows looked up are dequantized; everything else
    (attention's own products, normalisations, softmax, the fusion's gate) stays float32.

    The products' weights use `weight_bits` of their 8 bits (7: `reduce_range`): on x86 CPUs without VNNI (AVX2, or
    AVX-512 without VNNI), ONNX Runtime multiplies uint8 by int8 with VPMADDUBSW, whose pairwise sums saturate at 16
    bits when full-range weights meet large activations. On an AVX2 CPU, full-range weights moved the tests' 2-layer
    taggers' logits by up to 38% of their largest value (labels changed; 1-6% for some families), 7-bit weights by at
    most 2.4% (tests/test_onnx.py). What the eighth bit changes where the products do not saturate (x86 with VNNI) was
    measured on a real tagger and not told apart from zero (docs/usage.md), so the export keeps 7 on every CPU. Any
    other `weight_bits` is a ValueError naming it.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if weight_bits not in INT8_WEIGHT_BITS:
        raise ValueError(f"weight_bits={weight_bits!r}: int8's weights use one of {INT8_WEIGHT_BITS} bits")

    def quantize(destination: Path) -> None:
        quantize_dynamic(
            source, destination, per_channel=True, reduce_range=weight_bits == 7, weight_type=QuantType.QInt8
        )

    return write_whole(path, quantize)


@dataclass
class Agreement:
    """ONNX Runtime's logits against PyTorch's, on real tokens (tagging) or on every row (sequence classification)."""

    max_difference: float  # the largest absolute logit difference
    argmax_agreement: float  # the share of tokens (rows) whose highest logit is the same label


def compare_with_pytorch(model: PreTrainedModel, path: Path, inputs: dict[str, torch.Tensor]) -> Agreement:
    """ONNX Runtime (the model at `path`) against PyTorch (`model`, put in eval mode) on `inputs` (real tokens of a tagger, every row of a pair classifier)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    wanted = {node.name for node in session.get_inputs()}
    onnx_logits = session.run(["logits"], {name: value.numpy() for name, value in inputs.items() if name in wanted})[0]
    with torch.no_grad():
        torch_logits = model.eval()(**{name: value for name, value in inputs.items() if name in wanted}).logits.numpy()
    if onnx_logits.ndim == 3:  # tagging: compare real tokens (padded positions are not used by anyone)
        mask = inputs["attention_mask"].numpy().astype(bool)
        onnx_logits, torch_logits = onnx_logits[mask], torch_logits[mask]
    return Agreement(
        max_difference=float(np.abs(onnx_logits - torch_logits).max()),
        argmax_agreement=float((onnx_logits.argmax(-1) == torch_logits.argmax(-1)).mean()),
    )


def max_difference(model: PreTrainedModel, path: Path, inputs: dict[str, torch.Tensor]) -> float:
    """Largest absolute difference between ONNX Runtime's and PyTorch's logits on `inputs`."""
    return compare_with_pytorch(model, path, inputs).max_difference
