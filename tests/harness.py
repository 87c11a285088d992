"""
Run the zero-shot harness with real flags: in-process through `dlfa_zero_shot.cli.main` (`call_main`, `run_harness`),
or as a user does, a real subprocess of `examples/run_zero_shot.py` (`run_script`: the tests of the command line
itself: its exit codes, signals, a second process, the environment).
"""

import contextlib
import io
import json
import logging
import os
import subprocess
import sys
import traceback
from pathlib import Path

import transformers

from dlfa_zero_shot import cli


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


def call_main(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """
    `cli.main(args)` in this process, from `cwd`, as the script calls it: its exit code (1 and the traceback on
    stderr for an exception that escapes, as Python's would be), and what it printed or logged (through the root logger
    and transformers' own, which does not propagate) on stdout and stderr.
    """
    stdout, stderr = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(stderr)
    loggers = (logging.getLogger(), transformers.utils.logging.get_logger())
    level = loggers[0].level
    loggers[0].setLevel(logging.INFO)  # as `main`'s `logging.basicConfig` sets it in a process of its own
    for logger in loggers:
        logger.addHandler(handler)
    try:
        with contextlib.chdir(cwd), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                returncode = cli.main(list(args), program=SCRIPT)
            except SystemExit as exit:  # argparse's refusals, a busy run folder: as Python ends a process with one
                if exit.code is not None and not isinstance(exit.code, int):
                    print(exit.code, file=sys.stderr)
                returncode = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
            except Exception:  # noqa: BLE001 -- as Python reports any exception that escapes a script
                traceback.print_exc()
                returncode = 1
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        loggers[0].setLevel(level)
    completed = subprocess.CompletedProcess(["main", *args], returncode, stdout.getvalue(), stderr.getvalue())
    if check:
        assert completed.returncode == 0, completed.stderr[-4000:]
    return completed


def run_harness(output_dir: Path, backbone: Path, *extra: str, task: str = "udpos", quick: bool = True) -> dict:
    """
    Train and evaluate on a small slice, in-process (`extra` gives the data source and the rest); the sweep's
    summary.json.
    """
    actions = () if {"--do_train", "--do_eval", "--do_predict"} & set(extra) else ("--do_train", "--do_eval")
    args = ("--model_name_or_path", str(backbone), "--output_dir", str(output_dir))
    args = args if "--task" in extra else ("--task", task, *args)
    call_main(*args, *(QUICK if quick else ()), *actions, *extra, cwd=output_dir.parent)
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
