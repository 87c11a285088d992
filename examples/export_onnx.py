#!/usr/bin/env python
"""
Export a fine-tuned DLFA (or stock BERT) token or sequence classifier to ONNX for CPU inference, and check it
against PyTorch on a padded batch of real text.

    python examples/export_onnx.py --model runs/udpos-offline/aif-layer-10/model --out udpos-dlfa.onnx
    # then: onnxruntime.InferenceSession("udpos-dlfa.onnx").run(["logits"], tokenizer(..., return_tensors="np"))

Needs `onnx` and `onnxruntime` (pip install -e ".[onnx]").
"""

import argparse
import logging
from pathlib import Path

from transformers import AutoConfig, AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

import modeling_dlfa  # noqa: F401  (registers the DLFA classes with the Auto classes)
from dlfa_zero_shot.onnx_export import OPSET, export_onnx, max_difference


def without_torchvision_notice(record: logging.LogRecord) -> bool:
    """A log filter: torch's ONNX exporter says when torchvision is not installed; these models use none of its ops."""
    return not record.getMessage().startswith("torchvision is not installed")


def main() -> None:
    for handler in logging.getLogger("torch.onnx").handlers:  # torch's own handler of its "onnx" log component
        handler.addFilter(without_torchvision_notice)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a fine-tuned model folder or Hub id (with its tokenizer)")
    parser.add_argument("--out", type=Path, required=True, help="the .onnx file to write (must not exist)")
    parser.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default {OPSET})")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest logit difference accepted")
    parser.add_argument("--trust_remote_code", action="store_true", help="load a DLFA checkpoint's own code")
    args = parser.parse_args()
    if args.out.exists():
        raise SystemExit(f"{args.out} exists; choose another --out (nothing is overwritten)")
    config = AutoConfig.from_pretrained(args.model, trust_remote_code=args.trust_remote_code)
    token = any("TokenClassification" in name for name in config.architectures or [])
    auto_class = AutoModelForTokenClassification if token else AutoModelForSequenceClassification
    model = auto_class.from_pretrained(args.model, trust_remote_code=args.trust_remote_code)
    tokenizer = AutoTokenizer.from_pretrained(args.model, trust_remote_code=args.trust_remote_code)
    sample = ["DLFA fuses two layers .", "Der Hund schläft heute im Garten unter dem Baum ."]
    inputs = tokenizer(sample, padding=True, return_tensors="pt")
    path = export_onnx(model, args.out, "token_type_ids" in inputs, args.opset)
    difference = max_difference(model, path, dict(inputs))
    if difference > args.tolerance:
        raise SystemExit(f"ONNX Runtime differs from PyTorch by {difference:.2e} > {args.tolerance:.0e}")
    print(f"wrote {path} (ONNX Runtime vs PyTorch: max |difference| {difference:.2e})")


if __name__ == "__main__":
    main()
