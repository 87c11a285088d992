#!/usr/bin/env python
"""
Export a fine-tuned DLFA (or stock BERT) token or sequence classifier to ONNX for CPU inference, optionally int8
quantized, and check it against PyTorch on a padded batch of real text.

    python examples/export_onnx.py --model runs/udpos-offline/aif-layer-10/model --out udpos-dlfa.onnx
    python examples/export_onnx.py --model runs/udpos-offline/aif-layer-10/model --out udpos-dlfa-int8.onnx \\
        --quantize int8
    # then: onnxruntime.InferenceSession("udpos-dlfa.onnx").run(["logits"], tokenizer(..., return_tensors="np"))

Float32 must give PyTorch's logits within `--tolerance`; int8 (ONNX Runtime's dynamic quantization: int8 weights,
activations quantized per batch) must pick PyTorch's label on at least `--int8_agreement` of the sample's real tokens
(or rows), and its largest logit difference is printed. Needs `onnx` and `onnxruntime` (pip install -e ".[onnx]").
"""

import argparse
import logging
import shutil
import tempfile
from pathlib import Path

from transformers import AutoConfig, AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

import modeling_dlfa  # noqa: F401  (registers the DLFA classes with the Auto classes)
from dlfa_zero_shot.files import data_beside
from dlfa_zero_shot.onnx_export import (
    OPSET,
    QUANTIZATIONS,
    compare_with_pytorch,
    export_onnx,
    quantize_int8,
    write_whole,
)


def without_torchvision_notice(record: logging.LogRecord) -> bool:
    """A log filter: torch's ONNX exporter says when torchvision is not installed; these models use none of its ops."""
    return not record.getMessage().startswith("torchvision is not installed")


def copy_model(source: Path, destination: Path) -> None:
    """
    The model file `source` and the files beside it (the weights of a model over 2 GB, in a file its model names), into
    the folder of `destination`, under their own names (`destination` is named as `source`).
    """
    for file in source.parent.iterdir():
        shutil.copyfile(file, destination.parent / file.name)


def main() -> None:
    for handler in logging.getLogger("torch.onnx").handlers:  # torch's own handler of its "onnx" log component
        handler.addFilter(without_torchvision_notice)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a fine-tuned model folder or Hub id (with its tokenizer)")
    parser.add_argument("--out", type=Path, required=True,
                        help="the .onnx file to write (must not exist; nor <out>.data, a model over 2 GB's weights)")  # fmt: skip
    parser.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default {OPSET})")
    parser.add_argument("--quantize", choices=QUANTIZATIONS, help="quantize the exported model (default: float32)")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest logit difference accepted (float32)")
    parser.add_argument(
        "--int8_agreement", type=float, default=0.9, help="smallest share of PyTorch's labels kept (int8)"
    )
    parser.add_argument("--trust_remote_code", action="store_true", help="load a DLFA checkpoint's own code")
    args = parser.parse_args()
    if not 0 <= args.int8_agreement <= 1:
        parser.error(f"--int8_agreement {args.int8_agreement} is not a share: give a number in [0, 1]")
    if taken := [str(path) for path in (args.out, data_beside(args.out)) if path.exists() or path.is_symlink()]:
        raise SystemExit(f"{', '.join(taken)} exists; choose another --out (nothing is overwritten)")
    config = AutoConfig.from_pretrained(args.model, trust_remote_code=args.trust_remote_code)
    token = any("TokenClassification" in name for name in config.architectures or [])
    auto_class = AutoModelForTokenClassification if token else AutoModelForSequenceClassification
    model = auto_class.from_pretrained(args.model, trust_remote_code=args.trust_remote_code)
    tokenizer = AutoTokenizer.from_pretrained(args.model, trust_remote_code=args.trust_remote_code)
    sample = ["DLFA fuses two layers .", "Der Hund schläft heute im Garten unter dem Baum ."]
    inputs = dict(tokenizer(sample, padding=True, return_tensors="pt"))
    with_token_type_ids = "token_type_ids" in inputs
    with tempfile.TemporaryDirectory() as folder:  # checked here first: a rejected model never reaches --out
        candidate = export_onnx(model, Path(folder) / "float32" / args.out.name, with_token_type_ids, args.opset)
        if args.quantize is not None:
            candidate = quantize_int8(candidate, Path(folder) / "int8" / args.out.name)
        agreement = compare_with_pytorch(model, candidate, inputs)
        found = f"max |difference| {agreement.max_difference:.2e}, the same label on {agreement.argmax_agreement:.0%}"
        if args.quantize is None and agreement.max_difference > args.tolerance:
            raise SystemExit(f"ONNX Runtime differs from PyTorch by {agreement.max_difference:.2e} > "
                             f"{args.tolerance:.0e}; nothing was written to {args.out}")  # fmt: skip
        if args.quantize is not None and agreement.argmax_agreement < args.int8_agreement:
            raise SystemExit(f"int8 keeps PyTorch's label on {agreement.argmax_agreement:.0%} of the sample, under "
                             f"--int8_agreement {args.int8_agreement:.0%} ({found}); nothing was written to "
                             f"{args.out}")  # fmt: skip
        path = write_whole(args.out, lambda destination: copy_model(candidate, destination))
    print(f"wrote {path} (ONNX Runtime vs PyTorch: {found})")


if __name__ == "__main__":
    main()
