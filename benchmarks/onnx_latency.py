"""
CPU inference latency: ONNX Runtime, float32 and int8 (dynamic quantization, `examples/export_onnx.py --quantize
int8`), against PyTorch eager, DLFA against the stock BERT head, at batch 1 and 32, on the offline multilingual
backbone (multilingual-e5-small) and real English UDPOS test sentences. Every (model, engine, batch) is timed in each
round, in one process, rounds interleaved; the table gives the median milliseconds per batch over rounds with min-max
(other jobs share this machine's cores: compare ratios within a row, not across days; the archive records the load
average before and after).

    python benchmarks/onnx_latency.py --rounds 5 --output benchmarks/results/onnx_latency.json
    python benchmarks/onnx_latency.py --show benchmarks/results/onnx_latency.json
"""

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import onnxruntime
import torch
from transformers import AutoTokenizer, BertForTokenClassification

from dlfa_zero_shot import provenance
from dlfa_zero_shot.data import LocalSource
from dlfa_zero_shot.files import read_json, write_atomically
from dlfa_zero_shot.offline_backbone import resolve_backbone
from dlfa_zero_shot.onnx_export import INT8_WEIGHT_BITS, export_onnx, quantize_int8
from dlfa_zero_shot.tasks import TASKS, TRAIN_LANGUAGE
from modeling_dlfa import DLFABertForTokenClassification


ROOT = Path(__file__).resolve().parent.parent
ENGINES = ("pytorch", "onnxruntime", "onnxruntime-int8")  # eager; ONNX Runtime on the float32 and the int8 export
BATCH_SIZES = (1, 32)
BACKBONE = "offline:multilingual-e5-small"
NUM_LABELS = len(TASKS["udpos"].labels)  # UDPOS's tag set: the heads are untrained, only their shapes matter
FUSION_LAYER = 10  # the README main job's


def table(archive: dict) -> str:
    """docs/usage.md's table: per batch and head, each engine's median [min-max] ms and the speed-ups."""
    rows = archive["latency"]
    header = ("batch", "head", "PyTorch eager (ms)", "ONNX Runtime float32 (ms)", "ONNX Runtime int8 (ms)",
              "float32 ORT speed-up", "int8 speed-up over float32 ORT")  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]

    def cell(row: dict) -> str:
        return f"{row['median_ms']:.1f} [{row['min_ms']:.1f}-{row['max_ms']:.1f}]"

    for size in BATCH_SIZES:
        for model in ("stock", "dlfa"):
            eager, ort, int8 = (rows[f"{model}/{engine}/batch-{size}"] for engine in ENGINES)
            lines.append(f"| {size} | {model} | {cell(eager)} | {cell(ort)} | {cell(int8)} | "
                         f"x{eager['median_ms'] / ort['median_ms']:.2f} | x{ort['median_ms'] / int8['median_ms']:.2f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", type=Path, default=ROOT.parent / "shared" / "data" / "xtreme-lite")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="batches timed per measurement (their mean)")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch's and ONNX Runtime's intra-op threads")
    parser.add_argument("--output", type=Path)
    parser.add_argument("--show", type=Path, help="print the table of an archive and exit")
    args = parser.parse_args()
    if args.show:
        print(table(read_json(args.show)))
        return
    load_before, started = provenance.load_average(), time.monotonic()
    torch.set_num_threads(args.threads)
    backbone = resolve_backbone(BACKBONE)
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    source, task = LocalSource(args.data_dir), TASKS["udpos"]
    sentences = source.read(task, TRAIN_LANGUAGE, "test", limit=32)
    batches = {size: dict(tokenizer([" ".join(s.tokens) for s in sentences[:size]], padding=True, truncation=True,
                                    max_length=128, return_tensors="pt")) for size in BATCH_SIZES}  # fmt: skip
    models = {
        "stock": BertForTokenClassification.from_pretrained(backbone, num_labels=NUM_LABELS).eval(),
        "dlfa": DLFABertForTokenClassification.from_pretrained(
            backbone, num_labels=NUM_LABELS, fusion_layer=FUSION_LAYER
        ).eval(),
    }
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    sessions = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, model in models.items():
            paths = {"onnxruntime": export_onnx(model, Path(folder) / "float32" / f"{name}.onnx")}
            int8 = Path(folder) / "int8" / f"{name}.onnx"
            paths["onnxruntime-int8"] = quantize_int8(paths["onnxruntime"], int8, INT8_WEIGHT_BITS[0])
            for engine, path in paths.items():
                sessions[name, engine] = onnxruntime.InferenceSession(
                    str(path), options, providers=["CPUExecutionProvider"]
                )

    def run(model_name: str, engine: str, size: int) -> None:
        inputs = batches[size]
        if engine == "pytorch":
            with torch.no_grad():
                models[model_name](**inputs)
        else:
            sessions[model_name, engine].run(["logits"], {key: value.numpy() for key, value in inputs.items()})

    keys = [(model, engine, size) for size in BATCH_SIZES for model in models for engine in ENGINES]
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
    setup = {"rounds": args.rounds, "repeats": args.repeats, "sentences": "first 32 English UDPOS test sentences",
             "threads": args.threads, "int8": "onnxruntime.quantization.quantize_dynamic, per-channel QInt8 weights "
             f"in {INT8_WEIGHT_BITS[0]} bits",
             "backbone": BACKBONE, "models": {"stock": f"BertForTokenClassification, {NUM_LABELS} labels",
             "dlfa": f"DLFABertForTokenClassification, {NUM_LABELS} labels, fusion_layer {FUSION_LAYER}, the plugin's "
             "other defaults"}}  # fmt: skip
    test_file = {"test-en": str(source.path(task, TRAIN_LANGUAGE, "test"))}
    made_by = provenance.collect(sys.argv, Path(__file__), backbone, test_file,
                                 {"test-en": source.sha256(task, TRAIN_LANGUAGE, "test")},
                                 onnxruntime=onnxruntime.__version__)  # fmt: skip
    archive = {
        "what": "benchmarks/onnx_latency.py: CPU latency of PyTorch eager and ONNX Runtime float32 and int8",
        "command": shlex.join(["python", "benchmarks/onnx_latency.py", *sys.argv[1:]]),
        "setup": setup,
        "date": provenance.utc_now(),
        "provenance": provenance.portable(made_by),  # code, versions, backbone and data files, each with its SHA-256
        "wall_seconds": round(time.monotonic() - started, 1),
        "load_average_before": load_before,  # other jobs on the cores slow every engine, not always equally
        "load_average_after": provenance.load_average(),
        "latency": rows,
    }
    print(table(archive))
    if args.output:
        write_atomically(args.output, json.dumps(archive, indent=1) + "\n")


if __name__ == "__main__":
    main()
