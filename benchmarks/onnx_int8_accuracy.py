"""
What int8 costs in zero-shot accuracy. A model the harness trained (a run folder of `examples/run_zero_shot.py`: the
README main job's `aif-layer-10` by default) is exported to ONNX float32 and int8 (ONNX Runtime's dynamic quantization,
`examples/export_onnx.py --quantize int8`), and both are scored on every language the run was evaluated on, English dev
included, with the harness's own data (the run's recorded settings; its data files' digests must match), features,
label alignment and scorer. Per language: float32, int8 and the change, then the mean change over the target languages
and the largest drop. The float32 ONNX scores are checked against the run's own PyTorch scores (its results.json).

    python examples/run_zero_shot.py ... --output_dir runs/udpos-offline    # README.md, set-up command 1
    python benchmarks/onnx_int8_accuracy.py --run runs/udpos-offline/aif-layer-10 \\
        --output benchmarks/results/onnx_int8_accuracy.json
    python benchmarks/onnx_int8_accuracy.py --show benchmarks/results/onnx_int8_accuracy.json
    # what the eighth bit of int8's weights changes, on a CPU whose int8 products do not saturate (x86 with VNNI):
    python benchmarks/onnx_int8_accuracy.py --run runs/udpos-offline/aif-layer-10 --weight_bits 8 \\
        --output benchmarks/results/onnx_int8_weight_bits/8.json    # and --weight_bits 7 into 7.json

int8 dynamic quantization scales each batch's activations by that batch's range, so a score depends on how the rows
are batched: they run in the harness's order (length-sorted) in the run's own evaluation batches
(`--per_device_eval_batch_size` of its recorded command line, read with the harness's parser).
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

import modeling_dlfa  # noqa: F401  (registers the DLFA classes with the Auto classes)
from dlfa_zero_shot import provenance
from dlfa_zero_shot.cli import parse_arguments
from dlfa_zero_shot.data import LocalSource, TaskData, load_task_data
from dlfa_zero_shot.features import featurize
from dlfa_zero_shot.files import read_json, write_atomically
from dlfa_zero_shot.onnx_export import INT8_WEIGHT_BITS, export_onnx, quantize_int8
from dlfa_zero_shot.tasks import TASKS, TRAIN_LANGUAGE
from dlfa_zero_shot.training import ZeroShotScorer, score_predictions


ROOT = Path(__file__).resolve().parent.parent
SELECTION = "selection"  # the harness's key for English dev in a run's scores
ENGINES = ("float32", "int8")
# The float32 export computes what PyTorch does to within 1e-4 of a logit (tests/test_onnx.py): a score further than
# this (points of F1 or accuracy) from the run's own is a difference in data, features or scoring, not in arithmetic.
HARNESS_AGREEMENT = 0.05


def run_data(result: dict, data_dir: Path) -> TaskData:
    """
    The data the run of `result` (its results.json) was trained and scored on, read again from `data_dir` with its
    recorded settings; a SystemExit naming any file whose digest differs from the one the run recorded.
    """
    settings, recorded = result["provenance"]["settings"], result["provenance"]["data"]
    data = load_task_data(
        TASKS[result["task"]], LocalSource(data_dir),
        eval_languages=settings["eval_languages"].split(",") if settings["eval_languages"] else None,
        eval_splits=tuple(settings["eval_split"].split(",")) if settings["eval_split"] else None,
        max_train_samples=settings["max_train_samples"], max_eval_samples=settings["max_eval_samples"],
        seed=settings["seed"],
    )  # fmt: skip
    changed = [f"{entry['file']} (SHA-256 {str(data.sha256.get(key))[:12]}... here, {entry['sha256'][:12]}... in the run)"
               for key, entry in recorded.items() if data.sha256.get(key) != entry["sha256"]]  # fmt: skip
    if changed or set(data.sha256) != set(recorded):
        raise SystemExit(f"{data_dir} is not the data this run was scored on: {', '.join(changed) or 'other files'}")
    return data


def eval_batch_size(result: dict) -> int:
    """
    The rows per evaluation batch of the run of `result` (its results.json): `--per_device_eval_batch_size` of its
    recorded command line, read with the harness's own parser (so its default when the command did not give one).
    """
    return parse_arguments(result["provenance"]["argv"])[2].per_device_eval_batch_size


def predict(session: onnxruntime.InferenceSession, features, tokenizer, batch_size: int) -> list[np.ndarray]:
    """
    The predicted label ids of each feature row (tagging: one per sub-token of the row, padding removed; pairs: one),
    the rows run in their order in batches of `batch_size`, padded as the harness's collator pads them.
    """
    predicted = []
    for start in range(0, len(features), batch_size):
        rows = features[start : start + batch_size]
        batch = tokenizer.pad({"input_ids": rows["input_ids"], "attention_mask": rows["attention_mask"]},
                              return_tensors="np")  # fmt: skip
        logits = session.run(
            ["logits"], {name: batch[name].astype(np.int64) for name in ("input_ids", "attention_mask")}
        )[0]
        labels = logits.argmax(-1)
        predicted += (
            [row[:length] for row, length in zip(labels, rows["length"])] if labels.ndim == 2 else list(labels)
        )
    return predicted


def score_engine(
    path: Path, data: TaskData, features: dict, tokenizer, batch_size: int, threads: int
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """
    The ONNX model at `path` on each evaluated language (and `SELECTION`): the task's main score in points, and the
    predicted label ids (tagging: of every word, sentence after sentence; pairs: of every pair).
    """
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    scorer, task = ZeroShotScorer(data.task), data.task
    evaluated = {SELECTION: (features["selection"], data.selection), **{
        language: (features["evaluation"][language], examples) for language, examples in data.evaluation.items()
    }}  # fmt: skip
    scores, predicted = {}, {}
    for language, (language_features, examples) in evaluated.items():
        if examples:
            rows = predict(session, language_features, tokenizer, batch_size)
            language_scores, record = score_predictions(scorer, language_features, examples, rows)
            scores[language], predicted[language] = (
                round(100 * language_scores[task.main_score], 2),
                record["predicted"],
            )
    return scores, predicted


def int8_accuracy(run_dir: Path, data_dir: Path, threads: int = 2, weight_bits: int = INT8_WEIGHT_BITS[0]) -> dict:
    """
    The run at `run_dir` (its `model/` and results.json), exported to float32 and int8 ONNX (`weight_bits`: as
    `quantize_int8`'s) and scored on its data in its own evaluation batches: per language the run's own score
    (`harness`, PyTorch), float32's, int8's and int8's change from float32.
    """
    result = read_json(run_dir / "results.json")
    batch_size = eval_batch_size(result)
    settings, task = result["provenance"]["settings"], TASKS[result["task"]]
    data = run_data(result, data_dir)
    folder = run_dir / "model"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    features = featurize(data, tokenizer, settings["max_seq_length"], settings.get("label_alignment"))
    auto_class = AutoModelForTokenClassification if task.kind == "token" else AutoModelForSequenceClassification
    model = auto_class.from_pretrained(folder)
    with tempfile.TemporaryDirectory() as temporary:
        float32 = export_onnx(model, Path(temporary) / "float32" / "model.onnx")
        int8 = quantize_int8(float32, Path(temporary) / "int8" / "model.onnx", weight_bits)
        paths = {"float32": float32, "int8": int8}
        scores, predicted = {}, {}
        for engine, path in paths.items():
            scores[engine], predicted[engine] = score_engine(path, data, features, tokenizer, batch_size, threads)
    harness = {language: round(100 * value[task.main_score], 2) for language, value in result["scores"].items()}
    with np.load(run_dir / "predictions.npz") as records:  # the run's own predictions, in the same order
        same = {language: float(np.mean(words == records[f"{language}.predicted"]))
                for language, words in predicted["float32"].items()}  # fmt: skip
    off = {language: (harness.get(language), score) for language, score in scores["float32"].items()
           if harness.get(language) is None or abs(harness[language] - score) > HARNESS_AGREEMENT}  # fmt: skip
    if off:
        raise SystemExit(f"float32 ONNX does not give the run's own scores (harness, ONNX): {off}; not archived")
    languages = {language: {"harness": harness[language], "float32": scores["float32"][language],
                            "int8": scores["int8"][language],
                            "change": round(scores["int8"][language] - scores["float32"][language], 2)}
                 for language in scores["float32"]}  # fmt: skip
    targets = [language for language in languages if language not in (SELECTION, TRAIN_LANGUAGE)]
    return {
        "run": result["run"],
        "metric": task.metric_name,
        "languages": languages,
        # the share of words (pairs) where float32 ONNX predicts the run's own (PyTorch) label: 1 but for near ties
        "float32_predictions_as_the_runs": same,
        "int8_predictions_as_float32s": {
            language: float(np.mean(words == predicted["float32"][language]))
            for language, words in predicted["int8"].items()
        },
        "targets": targets,
        "mean_change_over_targets": round(statistics.mean(languages[language]["change"] for language in targets), 2),
        "largest_drop": min(
            ({"language": language, "change": row["change"]} for language, row in languages.items()),
            key=lambda entry: entry["change"],
        ),
        "model_files_sha256": provenance.backbone_files(str(folder)),
        "run_provenance": {
            key: result["provenance"][key] for key in ("commit", "dirty", "code_sha256", "argv", "data")
        },
        "batch_size": batch_size,
        "threads": threads,
        "weight_bits": weight_bits,
    }


def table(archive: dict) -> str:
    """docs/usage.md's table: one row per language, then the mean change over the targets and the largest drop."""
    lines = [f"| language | float32 ONNX ({archive['metric']}) | int8 ONNX | change |", "|---|---|---|---|"]
    for language, row in archive["languages"].items():
        name = "en (dev)" if language == SELECTION else language
        lines.append(f"| {name} | {row['float32']:.2f} | {row['int8']:.2f} | {row['change']:+.2f} |")
    drop = archive["largest_drop"]
    lines.append(f"| mean change over the {len(archive['targets'])} target languages | | | "
                 f"{archive['mean_change_over_targets']:+.2f} |")  # fmt: skip
    lines.append(f"| largest drop | | | {drop['change']:+.2f} ({drop['language']}) |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a run folder of the harness (with model/ and results.json)")
    parser.add_argument("--data_dir", type=Path, default=ROOT.parent / "shared" / "data" / "xtreme-lite")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime's intra-op threads")
    parser.add_argument(
        "--weight_bits", type=int, choices=INT8_WEIGHT_BITS, default=INT8_WEIGHT_BITS[0],
        help="bits of int8's weights (8: only on a CPU whose int8 products do not saturate, x86 with VNNI)",
    )  # fmt: skip
    parser.add_argument("--output", type=Path, help="the archive to write (JSON)")
    parser.add_argument("--show", type=Path, help="print the table of an archive and exit")
    args = parser.parse_args()
    if args.show:
        print(table(read_json(args.show)))
        return
    if args.run is None or not (args.run / "results.json").is_file() or not (args.run / "model").is_dir():
        parser.error(f"--run {args.run}: give a finished run folder of the harness (results.json and model/ in it)")
    load_before, started = provenance.load_average(), time.monotonic()
    archive = {
        "what": "benchmarks/onnx_int8_accuracy.py: a harness run's model as float32 and int8 ONNX, on its own data",
        "command": f"python benchmarks/onnx_int8_accuracy.py --run {args.run} --threads {args.threads} "
        f"--weight_bits {args.weight_bits}",
        "date": provenance.utc_now(),
        **provenance.benchmark_made_by(Path(__file__).resolve(), onnxruntime=onnxruntime.__version__),
        **int8_accuracy(args.run, args.data_dir, args.threads, args.weight_bits),
        "wall_seconds": round(time.monotonic() - started, 1),
        "load_average_before": load_before,
        "load_average_after": provenance.load_average(),
    }
    if args.output:
        write_atomically(args.output, json.dumps(archive, indent=2) + "\n")
    print(table(archive))


if __name__ == "__main__":
    main()
