"""Run the zero-shot harness (`examples/run_zero_shot.py`) as a user does: a real subprocess with real flags."""

import json
import os
import subprocess
import sys
from pathlib import Path


SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "run_zero_shot.py"
QUICK = (
    "--max_train_samples", "16", "--max_eval_samples", "8", "--per_device_train_batch_size", "8",
    "--per_device_eval_batch_size", "8", "--learning_rate", "1e-3", "--use_cpu", "--seed", "0", "--disable_tqdm",
    "true", "--report_to", "none", "--save_total_limit", "3",
)  # fmt: skip


def run_script(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    offline = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}  # never a network in the tests
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
        env=offline,
    )  # fmt: skip
    if check:
        assert completed.returncode == 0, completed.stderr[-4000:]
    return completed


def run_harness(output_dir: Path, backbone: Path, *extra: str, task: str = "udpos", quick: bool = True) -> dict:
    """Train and evaluate on a small slice (`extra` gives the data source and the rest); the sweep's summary.json."""
    actions = () if {"--do_train", "--do_eval", "--do_predict"} & set(extra) else ("--do_train", "--do_eval")
    args = ("--model_name_or_path", str(backbone), "--output_dir", str(output_dir))
    args = args if "--task" in extra else ("--task", task, *args)
    run_script(*args, *(QUICK if quick else ()), *actions, *extra, cwd=output_dir.parent)
    summary = output_dir / "summary.json"
    return json.loads(summary.read_text()) if summary.exists() else {}


def own_files(folder: Path) -> tuple[str, ...]:
    """
    The flags of a small tagging task of the user's own (jsonl files, tokens + tags: English training, German test):
    a run that needs no data folder.
    """
    english = [
        (["Anna", "lives", "in", "Berlin", "."], ["PROPN", "VERB", "ADP", "PROPN", "PUNCT"]),
        (["The", "dog", "sleeps", "."], ["DET", "NOUN", "VERB", "PUNCT"]),
        (["We", "read", "old", "books", "."], ["PRON", "VERB", "ADJ", "NOUN", "PUNCT"]),
        (["Paris", "is", "big", "."], ["PROPN", "AUX", "ADJ", "PUNCT"]),
    ] * 4
    german = [(["Der", "Hund", "schläft", "."], ["DET", "NOUN", "VERB", "PUNCT"])]
    files = {}
    for name, sentences in (("train", english), ("de", german)):
        files[name] = folder / f"{name}.jsonl"
        files[name].write_text("".join(json.dumps({"tokens": w, "pos_tags": t}) + "\n" for w, t in sentences))
    return "--task", "tagging", "--train_file", str(files["train"]), "--test_files", f"de={files['de']}"
