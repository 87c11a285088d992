"""
CPU inference latency: ONNX Runtime against PyTorch eager, DLFA against the stock BERT head, at batch 1 and 32, on
the offline multilingual backbone (multilingual-e5-small) and real English UDPOS test sentences. Every (model,
engine, batch) is timed in each round, rounds interleaved; the table gives the median milliseconds per batch over
rounds with min-max (other jobs share this machine's cores: compare ratios within a row, not across days).

    python benchmarks/onnx_latency.py --rounds 5 --output benchmarks/results/onnx_latency.json
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import onnxruntime
import torch
from transformers import AutoTokenizer, BertForTokenClassification

from dlfa_zero_shot.data import LocalSource
from dlfa_zero_shot.files import write_atomically
from dlfa_zero_shot.offline_backbone import resolve_backbone
from dlfa_zero_shot.onnx_export import export_onnx
from dlfa_zero_shot.tasks import TASKS, TRAIN_LANGUAGE
from modeling_dlfa import DLFABertForTokenClassification


ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", type=Path, default=ROOT.parent / "shared" / "data" / "xtreme-lite")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="batches timed per measurement (their mean)")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(2)
    backbone = resolve_backbone("offline:multilingual-e5-small")
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    sentences = LocalSource(args.data_dir).read(TASKS["udpos"], TRAIN_LANGUAGE, "test", limit=32)
    batches = {size: dict(tokenizer([" ".join(s.tokens) for s in sentences[:size]], padding=True, truncation=True,
                                    max_length=128, return_tensors="pt")) for size in (1, 32)}  # fmt: skip
    models = {
        "stock": BertForTokenClassification.from_pretrained(backbone, num_labels=17).eval(),
        "dlfa": DLFABertForTokenClassification.from_pretrained(backbone, num_labels=17, fusion_layer=10).eval(),
    }
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2
    sessions = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, model in models.items():
            path = export_onnx(model, Path(folder) / f"{name}.onnx")
            sessions[name] = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(model_name: str, engine: str, size: int) -> None:
        inputs = batches[size]
        if engine == "onnxruntime":
            sessions[model_name].run(["logits"], {key: value.numpy() for key, value in inputs.items()})
        else:
            with torch.no_grad():
                models[model_name](**inputs)

    keys = [(model, engine, size) for size in (1, 32) for model in models for engine in ("pytorch", "onnxruntime")]
    for key in keys:
        run(*key)  # warm-up
    timings = {key: [] for key in keys}
    for _ in range(args.rounds):
        for key in keys:
            start = time.perf_counter()
            for _ in range(args.repeats):
                run(*key)
            timings[key].append(1000 * (time.perf_counter() - start) / args.repeats)
    rows = {f"{model}/{engine}/batch-{size}": {"median_ms": statistics.median(values), "min_ms": min(values),
            "max_ms": max(values)} for (model, engine, size), values in timings.items()}  # fmt: skip
    lines = ["| batch | head | PyTorch eager (ms) | ONNX Runtime (ms) | ORT speed-up |", "|---|---|---|---|---|"]
    for size in (1, 32):
        for model in models:
            eager, ort = rows[f"{model}/pytorch/batch-{size}"], rows[f"{model}/onnxruntime/batch-{size}"]
            lines.append(f"| {size} | {model} | {eager['median_ms']:.1f} [{eager['min_ms']:.1f}-{eager['max_ms']:.1f}] | "
                         f"{ort['median_ms']:.1f} [{ort['min_ms']:.1f}-{ort['max_ms']:.1f}] | "
                         f"x{eager['median_ms'] / ort['median_ms']:.2f} |")  # fmt: skip
    print("\n".join(lines))
    if args.output:
        setup = {"rounds": args.rounds, "repeats": args.repeats, "sentences": "first 32 English UDPOS test sentences"}
        write_atomically(args.output, json.dumps({"setup": setup, "latency": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
