"""
Faults: a run killed, cut short or crowded out ends with the uninterrupted run's result or a clear word, and loses
nothing. The harness runs as a subprocess on the tiny BERT and the real data; the pieces run as functions where a
subprocess adds nothing.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from harness import QUICK, run_script


ARGS = ("--task", "udpos", "--fusion_layers", "1", "--eval_languages", "de", "--num_train_epochs", "3",
        "--freeze_word_embeddings")  # fmt: skip


def harness_command(output_dir: Path, backbone: Path, data_dir: Path) -> list[str]:
    """
    The tiny job into `output_dir`, named relative to its parent, the working directory of every run: a copied run
    folder's checkpoints then name their own folder, not the one they were copied from.
    """
    return [*ARGS, "--model_name_or_path", str(backbone), "--data_dir", str(data_dir), "--output_dir",
            output_dir.name, *QUICK, "--do_train", "--do_eval"]  # fmt: skip


def scores(output_dir: Path) -> dict:
    return json.loads((output_dir / "aif-layer-01" / "results.json").read_text())["scores"]


def half_written(output_dir: Path) -> list[Path]:
    return sorted(path for path in output_dir.rglob("*") if path.name.startswith(".partial-"))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_multilingual_bert, xtreme_lite) -> Path:
    """The tiny run, finished without a fault: the scores every faulted run must end with."""
    output_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    run_script(*harness_command(output_dir, tiny_multilingual_bert, xtreme_lite), cwd=output_dir.parent)
    return output_dir


def copy_run(uninterrupted: Path, tmp_path: Path) -> Path:
    copied = tmp_path / "run"
    shutil.copytree(uninterrupted, copied)
    return copied


# ---------------------------------------------------------------------------------------------------------------------
# 1. Whole files or none

WRITE_CUT_SHORT = """
import resource, signal, sys
from pathlib import Path
import numpy as np
path, writer = Path(sys.argv[1]), sys.argv[2]
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # (Python ignores it)
resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))  # the process dies at its 2001st byte of a file
if writer == "predictions":
    from dlfa_zero_shot.readers import TaggedSentence
    from dlfa_zero_shot.tasks import TASKS
    from dlfa_zero_shot.training import write_predictions
    examples = [TaggedSentence(["Hund"] * 100, ["NOUN"] * 100) for _ in range(20)]
    write_predictions(path, TASKS["udpos"], examples, {"predicted": np.zeros(2000, dtype=np.int64)})
elif writer == "summary":
    from dlfa_zero_shot.runs import write_reports
    result = {"run": "baseline", "metric": "f1", "scores": {"selection": {"f1": 0.5}}, "padding": "x" * 5000}
    write_reports({"baseline": result}, path.parent)
elif writer == "model card":
    from transformers import BertConfig
    from model_cards.card import write_model_card
    result = {"run": "baseline", "metric": "f1", "scores": {"selection": {"f1": 0.5}, "de": {"f1": 0.4}}}
    write_model_card(path.parent, "udpos", result, BertConfig(), "base", None)
"""


@pytest.mark.parametrize(
    "writer, name", [("predictions", "de.tsv"), ("summary", "summary.json"), ("model card", "README.md")]
)
def test_a_process_killed_while_writing_leaves_the_earlier_file_whole(tmp_path, writer, name):
    """A write cut off by the death of its process (here at its 2001st byte) never leaves half a file in place."""
    path = tmp_path / name
    path.write_text("the earlier, complete file\n")
    completed = subprocess.run([sys.executable, "-c", WRITE_CUT_SHORT, str(path), writer], capture_output=True)
    assert completed.returncode == -signal.SIGXFSZ, completed.stderr.decode()[-2000:]
    assert path.read_text() == "the earlier, complete file\n"  # before: the file cut to 2000 bytes
    from dlfa_zero_shot.files import remove_leftovers

    leftovers = half_written(tmp_path)
    assert leftovers and remove_leftovers(tmp_path) == leftovers and not half_written(tmp_path)


def test_write_atomically_replaces_a_file_whole_with_the_umask_permissions(tmp_path):
    from dlfa_zero_shot.files import write_atomically

    path = tmp_path / "folder" / "results.json"
    write_atomically(path, "{}\n")
    earlier = open(path)  # a reader of the earlier file keeps reading it whole
    write_atomically(path, b'{"run": "baseline"}\n')
    assert earlier.read() == "{}\n" and path.read_text() == '{"run": "baseline"}\n'
    earlier.close()
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in path.parent.iterdir()) == ["results.json"]
