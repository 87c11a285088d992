"""
Faults: a run killed, cut short or crowded out ends with the uninterrupted run's result or a clear word, and loses
nothing. The harness runs as a subprocess on the tiny BERT and the real data; the pieces run as functions where a
subprocess adds nothing.
"""

import json
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from harness import QUICK, SCRIPT, call_main, run_script


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
    call_main(*harness_command(output_dir, tiny_multilingual_bert, xtreme_lite), cwd=output_dir.parent)
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
    from dlfa_zero_shot.model_card import write_model_card
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


KILLED_BETWEEN_RENAMES = """
import os, signal, sys
from pathlib import Path
from dlfa_zero_shot.files import staged_folder
folder = Path(sys.argv[1])
def kill_before_the_new_folder_is_in_place(event, args):
    if event == "os.rename" and Path(args[1]) == folder:  # the second rename: the new folder into place
        os.kill(os.getpid(), signal.SIGKILL)
sys.addaudithook(kill_before_the_new_folder_is_in_place)
with staged_folder(folder) as staging:
    (staging / "weights").write_text("the new folder")
"""


@pytest.mark.parametrize("next_step", ["holding the run folder", "saving the folder again"])
def test_a_folder_whose_writer_died_between_its_two_renames_is_put_back(tmp_path, caplog, next_step):
    """
    `staged_folder` moves the earlier folder aside, then renames the new one into place: a process killed between
    the two leaves no folder in place, the earlier one aside. The next process in that folder puts it back.
    """
    from dlfa_zero_shot.files import remove_leftovers, staged_folder

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights").write_text("the earlier folder")
    completed = subprocess.run([sys.executable, "-c", KILLED_BETWEEN_RENAMES, str(folder)], capture_output=True,
                               check=False)  # fmt: skip
    assert completed.returncode == -signal.SIGKILL, completed.stderr.decode()[-2000:]
    assert not folder.exists()

    if next_step == "holding the run folder":  # as `run_lock.RunFolders.hold` does before a run reads its folder
        remove_leftovers(tmp_path)
        # before: the earlier folder, named as a leftover write, was removed: the run's model was lost
        assert (folder / "weights").read_text() == "the earlier folder"
    else:
        with pytest.raises(RuntimeError, match="the save fails"), staged_folder(folder):
            raise RuntimeError("the save fails")
        assert (folder / "weights").read_text() == "the earlier folder"  # before: no folder at all
    assert f"restored {folder} from .earlier-" in caplog.text
    assert not list(tmp_path.glob(".earlier-*"))


def test_a_folder_whose_new_version_fails_its_rename_is_put_back_at_once(tmp_path, caplog, monkeypatch):
    """
    The earlier folder moved aside, the rename of the new one into place fails (here: EXDEV, as on a folder that
    became a mount point): the earlier folder is back in place before the error reaches the caller, and said so.
    """
    import errno

    from dlfa_zero_shot.files import staged_folder

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights").write_text("the earlier folder")
    real_replace = os.replace

    def failing_replace(source, target):
        if Path(target) == folder and Path(source).name.startswith(".partial-"):  # the new folder into place
            raise OSError(errno.EXDEV, "Invalid cross-device link", str(source))
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="Invalid cross-device link"), staged_folder(folder) as staging:
        (staging / "weights").write_text("the new folder")
    # before: no folder in place, the earlier one hidden as .earlier-<pid>-... until another process put it back
    assert (folder / "weights").read_text() == "the earlier folder"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model"]
    assert f"put {folder} back" in caplog.text


def test_an_incomplete_last_checkpoint_is_set_aside_and_the_run_resumes_from_the_one_before(
    tmp_path, uninterrupted, tiny_multilingual_bert, xtreme_lite
):
    """Killed during its last checkpoint's save (no trainer state yet, the weights cut in half), before its result."""
    output_dir = copy_run(uninterrupted, tmp_path)
    run_dir = output_dir / "aif-layer-01"
    for finished in ("results.json", "predictions.npz", "model"):
        shutil.rmtree(run_dir / finished) if finished == "model" else (run_dir / finished).unlink()
    (run_dir / "checkpoint-6" / "trainer_state.json").unlink()
    weights = run_dir / "checkpoint-6" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])

    completed = call_main(*harness_command(output_dir, tiny_multilingual_bert, xtreme_lite), cwd=tmp_path)
    assert "checkpoint-6 is not a complete checkpoint (no trainer_state.json" in completed.stderr
    assert "the run falls back to the checkpoint before it" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert scores(output_dir) == scores(uninterrupted)
    aside = [path.name for path in run_dir.iterdir() if path.name.startswith("damaged-checkpoint-6-")]
    assert len(aside) == 1  # set aside, not deleted
    assert not half_written(output_dir)


def killed_at(output_dir: Path, command: list[str], event: str, target: str, source: str | None = None) -> None:
    """
    Run the harness until it is about to open (`event` "open") or rename into ("os.rename", from `source`) a path
    matching `target`, where it SIGKILLs itself (the fault benchmark's `benchmarks/kill_at.py`).
    """
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    kill_at = [str(SCRIPT.parent.parent / "benchmarks" / "kill_at.py"), json.dumps([event, target, source])]
    completed = subprocess.run([sys.executable, *kill_at, *command], cwd=output_dir.parent, env=environment,
                               capture_output=True, text=True, check=False)  # fmt: skip
    assert completed.returncode == -signal.SIGKILL, completed.stderr[-3000:]


@pytest.mark.parametrize("where", ["inside a checkpoint save", "inside the results write", "between model/'s renames"])
def test_a_run_killed_at_any_point_ends_with_the_uninterrupted_scores_when_run_again(
    tmp_path, uninterrupted, tiny_multilingual_bert, xtreme_lite, where
):
    """SIGKILL inside the job's own process at the points where a write is half done; then the same command."""
    output_dir = tmp_path / "run"
    command = harness_command(output_dir, tiny_multilingual_bert, xtreme_lite)
    if where == "inside a checkpoint save":  # weights, optimizer and RNG state written; the trainer state not yet
        killed_at(output_dir, command, "open", "*/aif-layer-01/checkpoint-4/trainer_state.json")
        expected = "checkpoint-4 is not a complete checkpoint (no trainer_state.json"
    else:
        killed_at(output_dir, command, "os.rename", "*/aif-layer-01/results.json", "*/.partial-*-results.json")
        expected = "-results.json, a write an interrupted process did not finish"
    if where == "between model/'s renames":  # run again, it saves model/ again: killed before the new one is in place
        killed_at(output_dir, command, "os.rename", "*/aif-layer-01/model", "*/.partial-*-model")
        assert not (output_dir / "aif-layer-01" / "model").exists()
        expected = "aif-layer-01/model from .earlier-"

    completed = run_script(*command, cwd=tmp_path)
    assert expected in completed.stderr
    assert "Traceback" not in completed.stderr
    assert scores(output_dir) == scores(uninterrupted)
    assert not half_written(output_dir) and not list(output_dir.rglob(".earlier-*"))
    assert (output_dir / "aif-layer-01" / "model" / "model.safetensors").is_file()


# ---------------------------------------------------------------------------------------------------------------------
# 2. A damaged file is named, never a traceback


def test_a_damaged_results_file_is_named_set_aside_and_the_run_computed_again(
    tmp_path, uninterrupted, tiny_multilingual_bert, xtreme_lite
):
    output_dir = copy_run(uninterrupted, tmp_path)
    results = output_dir / "aif-layer-01" / "results.json"
    results.write_bytes(results.read_bytes()[:100])

    completed = call_main(*harness_command(output_dir, tiny_multilingual_bert, xtreme_lite), cwd=tmp_path,
                           check=False)  # fmt: skip
    # before: a raw json.decoder.JSONDecodeError traceback, exit 1
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert f"{results.relative_to(tmp_path)} is damaged: cut short" in completed.stderr and "it is not reused" in completed.stderr
    assert scores(output_dir) == scores(uninterrupted)
    aside = [path for path in results.parent.iterdir() if path.name.startswith("damaged-results.json-")]
    assert len(aside) == 1 and aside[0].stat().st_size == 100  # kept as it was


def test_a_truncated_checkpoint_falls_back_to_the_last_complete_one(
    tmp_path, uninterrupted, tiny_multilingual_bert, xtreme_lite
):
    """The weights of the last checkpoint cut in half after the save (its trainer state is there)."""
    output_dir = copy_run(uninterrupted, tmp_path)
    run_dir = output_dir / "aif-layer-01"
    (run_dir / "results.json").unlink()
    weights = run_dir / "checkpoint-6" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])

    completed = call_main(*harness_command(output_dir, tiny_multilingual_bert, xtreme_lite), cwd=tmp_path,
                           check=False)  # fmt: skip
    # before: a raw SafetensorError traceback ("incomplete metadata"), exit 1
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "checkpoint-6 is not a complete checkpoint (model.safetensors: not a whole safetensors file" in (
        completed.stderr
    )
    assert "resuming from checkpoint-4, the last complete checkpoint" in completed.stderr
    assert scores(output_dir) == scores(uninterrupted)


@pytest.mark.parametrize(
    "content, problem",
    [(b"", "it is empty (0 bytes)"), (b'{"run": "baseline", "sco', "cut short"),
     (b"run: baseline\n", "not valid JSON")],  # fmt: skip
)
def test_read_json_names_the_file_and_what_is_wrong(tmp_path, content, problem):
    from dlfa_zero_shot.files import DamagedFileError, read_json

    path = tmp_path / "results.json"
    path.write_bytes(content)
    with pytest.raises(DamagedFileError, match=re.escape(f"{path} is damaged: {problem}")):
        read_json(path)


# ---------------------------------------------------------------------------------------------------------------------
# 3. One run per folder

HOLD_RUN_FOLDER = """
import os, socket, sys, time
from pathlib import Path
from filelock import FileLock
run_dir = Path(sys.argv[1])
run_dir.mkdir(parents=True)
lock = FileLock(run_dir / ".lock")  # as a harness process holds its run folder (dlfa_zero_shot.run_lock)
lock.acquire()
(run_dir / ".lock.pid").write_text(f"{os.getpid()} {socket.gethostname()}")
print("holding", flush=True)
time.sleep(600)
"""


def hold(run_dir: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLD_RUN_FOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding"
    return holder


def test_a_second_process_is_refused_at_once_naming_the_folder_and_the_holder(
    tmp_path, tiny_multilingual_bert, xtreme_lite
):
    output_dir = tmp_path / "run"
    holder = hold(output_dir / "aif-layer-01")  # another harness process, training that run
    try:
        completed = call_main(*harness_command(output_dir, tiny_multilingual_bert, xtreme_lite), cwd=tmp_path,
                               check=False)  # fmt: skip
    finally:
        holder.kill()  # it dies holding the lock, as a killed run would
        holder.wait()
    # before: both trained the whole run into the same checkpoints and results, both exit 0
    assert completed.returncode == 1
    assert f"run/aif-layer-01 is in use by process {holder.pid} on " in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not list((output_dir / "aif-layer-01").glob("checkpoint-*"))  # refused before any training


def test_a_run_folder_lock_names_a_live_holder_and_a_dead_holder_never_blocks(tmp_path):
    from dlfa_zero_shot.run_lock import RunFolderBusy, lock_run_folder

    holder = hold(tmp_path / "baseline")
    try:
        with pytest.raises(RunFolderBusy, match=f"is in use by process {holder.pid} on "):
            lock_run_folder(tmp_path / "baseline")
        lock_run_folder(tmp_path / "aif-layer-01").release()  # another run of the sweep, in the same output folder
    finally:
        holder.kill()  # it dies holding the lock, as a killed run would
        holder.wait()
    lock_run_folder(tmp_path / "baseline").release()


# ---------------------------------------------------------------------------------------------------------------------
# 4. Stopping


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_at_a_clean_point_and_the_same_command_ends_with_the_uninterrupted_scores(
    tmp_path, uninterrupted, tiny_multilingual_bert, xtreme_lite, signum
):
    output_dir = tmp_path / "run"
    command = [sys.executable, str(SCRIPT), *harness_command(output_dir, tiny_multilingual_bert, xtreme_lite)]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    process = subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                               env=environment)  # fmt: skip
    first_checkpoint = output_dir / "aif-layer-01" / "checkpoint-2" / "trainer_state.json"
    deadline = time.monotonic() + 300
    while not first_checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=300)
    # before: killed at once by SIGTERM (exit -15), a KeyboardInterrupt traceback on Ctrl-C; no word of resuming
    assert process.returncode == 128 + signum, stderr[-3000:]
    assert f"Stopped by {signal.Signals(signum).name} after training step" in stderr
    assert "run the same command again" in stderr and "Traceback" not in stderr
    assert not (output_dir / "aif-layer-01" / "results.json").exists()
    if signum == signal.SIGINT:  # the resume is SIGTERM's case's: the same
        return

    call_main(*harness_command(output_dir, tiny_multilingual_bert, xtreme_lite), cwd=tmp_path)
    assert scores(output_dir) == scores(uninterrupted)
    assert not half_written(output_dir)


def test_main_off_the_main_thread_runs_and_leaves_the_signal_handlers_as_they_were(
    tmp_path, uninterrupted, tiny_multilingual_bert, xtreme_lite, monkeypatch
):
    """Only the main thread may set a signal handler: `main` called from another one sets none and runs."""
    from dlfa_zero_shot import cli

    output_dir = copy_run(uninterrupted, tmp_path)  # a finished run, read back
    monkeypatch.chdir(tmp_path)
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    outcome = []

    def call() -> None:
        try:
            outcome.append(cli.main(harness_command(output_dir, tiny_multilingual_bert, xtreme_lite), program=SCRIPT))
        except Exception as error:  # noqa: BLE001 -- the test reports it
            outcome.append(error)

    thread = threading.Thread(target=call)
    thread.start()
    thread.join()
    assert outcome == [0]  # before: ValueError: signal only works in main thread of the main interpreter
    assert {signum: signal.getsignal(signum) for signum in before} == before


def test_a_signal_handler_set_outside_python_is_kept_and_the_others_restored(monkeypatch, caplog):
    """
    `signal.getsignal` is None for a handler set from C (an embedding application's): Python cannot set it back, so
    the stop handler leaves it in place, says so, and still handles the other signal.
    """
    from dlfa_zero_shot.stopping import StopOnSignal

    real_getsignal = signal.getsignal
    before = {signum: real_getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    from_c = lambda signum: None if signum == signal.SIGTERM else real_getsignal(signum)
    monkeypatch.setattr(signal, "getsignal", from_c)
    with StopOnSignal().installed() as stop:
        assert real_getsignal(signal.SIGTERM) == before[signal.SIGTERM]  # before: replaced, and could not be restored
        assert real_getsignal(signal.SIGINT) == stop.request
    assert {signum: real_getsignal(signum) for signum in before} == before  # before: TypeError from signal(.., None)
    assert "SIGTERM keeps the handler set outside Python" in caplog.text


def test_main_gives_the_caller_back_its_logging_and_transformers_verbosity(
    tmp_path, uninterrupted, tiny_multilingual_bert, xtreme_lite, monkeypatch
):
    """A caller in-process (a notebook, a test) finds its root logger and transformers' verbosity as it left them."""
    import transformers

    from dlfa_zero_shot import cli

    output_dir = copy_run(uninterrupted, tmp_path)  # a finished run, read back
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # a fresh process's root logger (pytest's own handlers set aside)
    level, verbosity = root.level, transformers.utils.logging.get_verbosity()
    root.setLevel(logging.WARNING)
    transformers.utils.logging.set_verbosity_error()
    try:
        assert cli.main(harness_command(output_dir, tiny_multilingual_bert, xtreme_lite), program=SCRIPT) == 0
        # before: a StreamHandler added to the root logger, its level INFO, transformers' verbosity WARNING
        assert root.handlers == [] and root.level == logging.WARNING
        assert transformers.utils.logging.get_verbosity() == logging.ERROR
    finally:
        root.setLevel(level)
        transformers.utils.logging.set_verbosity(verbosity)


def test_the_resume_hint_of_main_without_a_program_names_a_command_that_runs(tmp_path, monkeypatch, capsys):
    """Called with no `program`, `main`'s resume hint names `python -m dlfa_zero_shot.cli`, which runs."""
    from dlfa_zero_shot import cli
    from dlfa_zero_shot.stopping import RunStopped

    def stopped(*args, **kwargs):
        raise RunStopped(signal.SIGTERM, "after training step 2")

    monkeypatch.setattr(cli, "run", stopped)  # the harness stops at its first clean point
    monkeypatch.chdir(tmp_path)
    argv = ["--task", "udpos", "--data_dir", "data", "--model_name_or_path", "model", "--do_train", "--output_dir",
            "run"]  # fmt: skip
    assert cli.main(argv) == 143
    hint = shlex.split(capsys.readouterr().err.strip().splitlines()[-1])
    assert hint[0] == "python" and hint[-len(argv) :] == argv
    completed = subprocess.run([sys.executable, *hint[1 : -len(argv)], "--help"], cwd=tmp_path, capture_output=True,
                               text=True, check=False)  # fmt: skip
    # before: `python <...>/dlfa_zero_shot/cli.py`, which fails (a relative import in a module with no package)
    assert completed.returncode == 0 and "--fusion_layers" in completed.stdout, completed.stderr[-2000:]


# ---------------------------------------------------------------------------------------------------------------------
# 5. A full disk


@pytest.fixture
def small_disk(tmp_path):
    """A size-limited tmpfs (`mount` needs root: skipped loudly without it); `small_disk(megabytes)` mounts one."""
    mounted = []

    def mount(megabytes: int) -> Path:
        if os.geteuid() != 0:
            pytest.skip("SKIPPED LOUDLY: a full disk is simulated with a size-limited tmpfs, whose mount needs root")
        folder = tmp_path / f"disk-{len(mounted)}"
        folder.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(folder)], check=True)
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_during_a_result_write_names_the_folder_and_the_bytes(small_disk):
    from dlfa_zero_shot.files import DiskFullError, write_atomically

    disk = small_disk(1)
    write_atomically(disk / "results.json", "the earlier, complete file\n")
    with pytest.raises(DiskFullError, match=rf"No space left on the device of {disk}: writing summary.json failed "
                                            r"\(it needs about 2.0 MiB \(2097152 bytes\); .* free\)"):  # fmt: skip
        write_atomically(disk / "summary.json", b"x" * 2 * 1024 * 1024)
    assert (disk / "results.json").read_text() == "the earlier, complete file\n"
    assert sorted(path.name for path in disk.iterdir()) == ["results.json"]


def test_a_full_disk_during_a_checkpoint_save_keeps_the_previous_checkpoint_and_resumes(
    tmp_path, uninterrupted, tiny_multilingual_bert, xtreme_lite, small_disk
):
    checkpoint = folder_size(uninterrupted / "aif-layer-01" / "checkpoint-2")
    disk = small_disk((3 * checkpoint // 2) // 2**20)  # room for the first checkpoint, not the second
    output_dir = disk / "run"
    completed = call_main(*harness_command(output_dir, tiny_multilingual_bert, xtreme_lite), cwd=disk, check=False)
    # before: a raw "SafetensorError: ... No space left on device" traceback from inside the Trainer
    assert completed.returncode == 1, completed.stderr[-3000:]
    message = completed.stderr.strip().splitlines()[-1]
    assert message.startswith("No space left on the device of run/aif-layer-01: saving checkpoint-4 ")
    assert "Removed the incomplete checkpoint-4; checkpoint-2 and every earlier file are intact" in message
    assert "Traceback" not in completed.stderr
    assert [path.name for path in (output_dir / "aif-layer-01").glob("checkpoint-*")] == ["checkpoint-2"]

    subprocess.run(["mount", "-o", "remount,size=1g", str(disk)], check=True)  # as a user frees space
    call_main(*harness_command(output_dir, tiny_multilingual_bert, xtreme_lite), cwd=disk)
    assert scores(output_dir) == scores(uninterrupted)
    assert not half_written(output_dir)


def folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
