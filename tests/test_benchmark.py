"""The zero-shot benchmark's command line: which harness commands it plans, as a subprocess with --dry_run."""

import json
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent


def planned(tmp_path: Path, *arguments: str) -> list[list[str]]:
    """The harness commands the benchmark would run (each a list of arguments after run_zero_shot.py)."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    completed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "zero_shot_benchmark.py"), "--protocol", "small", "--task", "xnli",
         "--data_dir", str(data), "--runs_dir", str(tmp_path / "runs"), "--dry_run", *arguments],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    commands = [line.split()[2:] for line in completed.stdout.splitlines() if "run_zero_shot.py" in line]
    assert f"small/xnli: {len(commands)} runs to do" in completed.stdout
    return commands


def flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_every_configuration_and_seed_is_planned_once_and_finished_runs_are_skipped(tmp_path):
    commands = planned(tmp_path, "--configs", "baseline,aif-layer-11", "--seeds", "1-2")
    assert sorted((flag(c, "--seed"), flag(c, "--fusion_layers")) for c in commands) == [
        ("1", "11"), ("1", "last"), ("2", "11"), ("2", "last")
    ]  # fmt: skip
    assert all(flag(c, "--use_cpu") == "true" for c in commands)  # the protocol pins the CPU

    finished = tmp_path / "runs" / "small" / "xnli" / "seed-1" / "baseline"
    finished.mkdir(parents=True)
    (finished / "results.json").write_text(json.dumps({"run": "baseline", "seed": 1}))
    again = planned(tmp_path, "--configs", "baseline,aif-layer-11", "--seeds", "1-2")
    assert ("1", "last") not in [(flag(c, "--seed"), flag(c, "--fusion_layers")) for c in again] and len(again) == 3


def test_use_cpu_false_lets_the_trainer_take_a_gpu(tmp_path):
    commands = planned(tmp_path, "--configs", "baseline", "--use_cpu", "false")
    assert commands and all(flag(c, "--use_cpu") == "false" and c.count("--use_cpu") == 1 for c in commands)


def test_the_layer_search_configuration_trains_the_search_alone(tmp_path):
    (command,) = planned(tmp_path, "--configs", "layer-search", "--search_layers", "8,10,11")
    assert flag(command, "--layer_search") == "one_pass" and flag(command, "--layer_search_then") == "keep"
    assert flag(command, "--fusion_layers") == "8,10,11"  # no `last`: the baseline is a configuration of its own


def write_result(run_dir: Path, **result) -> None:
    run_dir.mkdir(parents=True)
    (run_dir / "results.json").write_text(json.dumps(result))


def test_the_study_compares_only_after_its_whole_layer_choice(tmp_path):
    """`aif-layer-best` under the study protocol is the plan's choice (layers 8, 10, 11 on seeds 1 and 2, English
    dev): with one of those runs missing the benchmark stops, rather than choose among the runs it happens to have."""
    task_dir = tmp_path / "runs" / "study" / "xnli"
    write_result(task_dir / "curve" / "n-2500" / "seed-1" / "baseline", run="baseline", seed=1,
                 selection_by_epoch=[{"epoch": 1.0, "step": 9, "score": 0.7}])  # fmt: skip
    for layer, seed, dev in ((8, 1, 0.9), (8, 2, 0.9), (10, 1, 0.6), (10, 2, 0.6), (11, 1, 0.5), (11, 2, 0.5)):
        if (layer, seed) != (11, 2):
            write_result(task_dir / f"seed-{seed}" / f"aif-layer-{layer:02d}", run=f"aif-layer-{layer:02d}",
                         seed=seed, metric="accuracy", scores={"selection": {"accuracy": dev}})  # fmt: skip
    command = [sys.executable, str(ROOT / "benchmarks" / "zero_shot_benchmark.py"), "--protocol", "study", "--task",
               "xnli", "--data_dir", str(tmp_path), "--runs_dir", str(tmp_path / "runs"), "--dry_run", "--configs",
               "aif-layer-best", "--seeds", "3"]  # fmt: skip
    stopped = subprocess.run(command, capture_output=True, text=True, check=False)
    assert stopped.returncode != 0 and "missing aif-layer-11 seed 2" in stopped.stderr

    write_result(task_dir / "seed-2" / "aif-layer-11", run="aif-layer-11", seed=2, metric="accuracy",
                 scores={"selection": {"accuracy": 0.5}})  # fmt: skip
    planned = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    commands = [line.split()[2:] for line in planned.splitlines() if "run_zero_shot.py" in line]
    assert [flag(c, "--fusion_layers") for c in commands] == ["8"] and flag(commands[0], "--seed") == "3"


def test_a_configuration_named_with_qualifiers_runs_with_those_settings(tmp_path):
    # Before, `aif-layer-08+r8` was not a run name, and no name could ask for another reduction, norm or LoRA.
    (command,) = planned(tmp_path, "--configs", "aif-layer-08+r8+layer-norm")
    assert (flag(command, "--fusion_layers"), flag(command, "--aif_reduction"), flag(command, "--aif_norm")) == (
        "8", "8", "layer"
    )  # fmt: skip
    (command,) = planned(tmp_path, "--configs", "baseline+lora-r8")
    assert flag(command, "--fusion_layers") == "last" and flag(command, "--lora_r") == "8"
    assert "--aif_reduction" not in command  # only the settings that differ from the defaults are passed
