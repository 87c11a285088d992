"""The benchmarks' command lines: the zero-shot benchmark's planned harness commands (as a subprocess with --dry_run),
and the LoRA benchmark's job, reuse rule and archived report."""

import importlib.util
import json
import re
import shlex
import statistics
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest


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


def test_every_configuration_and_seed_is_planned_once_and_finished_runs_are_skipped(
    tmp_path, offline_backbone, monkeypatch
):
    monkeypatch.setenv("DLFA_CACHE", str(offline_backbone.parent))  # the protocols' backbone, converted already
    commands = planned(tmp_path, "--configs", "baseline,aif-layer-11", "--seeds", "1-2")
    assert sorted((flag(c, "--seed"), flag(c, "--fusion_layers")) for c in commands) == [
        ("1", "11"), ("1", "last"), ("2", "11"), ("2", "last")
    ]  # fmt: skip
    assert all(flag(c, "--use_cpu") == "true" for c in commands)  # the protocol pins the CPU

    baseline = next(c for c in commands if (flag(c, "--seed"), flag(c, "--fusion_layers")) == ("1", "last"))
    write_finished_run(tmp_path / "runs" / "small" / "xnli" / "seed-1" / "baseline", baseline, {})
    again = planned(tmp_path, "--configs", "baseline,aif-layer-11", "--seeds", "1-2")
    assert ("1", "last") not in [(flag(c, "--seed"), flag(c, "--fusion_layers")) for c in again] and len(again) == 3


def write_finished_run(run_dir: Path, command: list[str], data: dict, result: dict | None = None, **changed) -> None:
    """A finished run's results.json as the harness here would write it for `command` (its provenance: the command
    line, code, versions, backbone and `data` files; its device), with `result` and `changed` (in its provenance)."""
    made = script_module("zero_shot_benchmark").made_here(flag(command, "--model_name_or_path"), True)
    recorded = {"argv": command, "code_sha256": made["code_sha256"], "code_files": made["code_files"],
                "versions": made["versions"], "backbone": {"sha256": made["backbone_sha256"]}, "data": data,
                "settings": {}}  # fmt: skip
    run_dir.mkdir(parents=True, exist_ok=True)
    result = {"run": run_dir.name, "device": made["device"], **(result or {}), "provenance": {**recorded, **changed}}
    (run_dir / "results.json").write_text(json.dumps(result))


def test_the_benchmark_asks_a_child_process_which_device_a_run_would_train_on(tmp_path, monkeypatch):
    """The skip check compares a finished run's device with the one a run would train on here. Asked in the
    benchmark's own process, `TrainingArguments.device` set up CUDA there with `--use_cpu false`, and the long-lived
    process held GPU memory (in exclusive-process mode, the GPU) while the runs it started trained. A child process
    answers now, as the harness would."""
    from transformers import TrainingArguments

    from dlfa_zero_shot.training import device_name

    benchmark = script_module("zero_shot_benchmark")
    expected = {
        use_cpu: device_name(TrainingArguments(output_dir=str(tmp_path), use_cpu=use_cpu, report_to="none").device)
        for use_cpu in (True, False)
    }

    def device_asked_here(arguments):
        raise AssertionError("the benchmark's own process asked TrainingArguments for its device")

    monkeypatch.setattr(TrainingArguments, "device", property(device_asked_here))
    backbone = tmp_path / "backbone"
    backbone.mkdir()
    (backbone / "config.json").write_text("{}")
    for use_cpu in (True, False):
        assert benchmark.made_here(str(backbone), use_cpu)["device"] == expected[use_cpu]


def test_a_finished_run_is_not_skipped_unless_it_is_the_run_planned_now(tmp_path, offline_backbone, monkeypatch):
    """Before, a results.json was enough: a run of an edited protocol, of other code, versions, backbone or device, or
    of a data file changed since, was skipped, and the report read it as the run planned."""
    from dlfa_zero_shot import provenance

    monkeypatch.setenv("DLFA_CACHE", str(offline_backbone.parent))  # the protocols' backbone, converted already
    (command, other) = planned(tmp_path, "--configs", "baseline,aif-layer-11")
    data = tmp_path / "data" / "xnli"
    data.mkdir()
    (data / "dev-en.tsv").write_text("a\tb\tentailment\n")
    digest = provenance.file_sha256(data / "dev-en.tsv")
    files = {"train": {"file": "xnli/dev-en.tsv", "sha256": digest},  # the small protocol's XNLI: a held-out dev
             "selection": {"file": "xnli/dev-en.tsv (seeded 10% held out)", "sha256": digest}}  # fmt: skip
    finished = tmp_path / "runs" / "small" / "xnli" / "seed-1" / "baseline"

    def refusal(result: dict | None = None, **changed) -> str:
        """The benchmark's refusal of the finished baseline with `changed` in its provenance; "" where it is
        skipped. No run starts either way: the other configuration is planned only where the baseline is skipped."""
        write_finished_run(finished, command, files, result, **changed)
        done = benchmark_dry_run(tmp_path, "small", "xnli", "--configs", "baseline,aif-layer-11")
        if done.returncode == 0:
            assert "small/xnli: 1 runs to do" in done.stdout
            assert [line.split()[2:] for line in done.stdout.splitlines() if "run_zero_shot.py" in line] == [other]
            return ""
        assert done.returncode == 1 and "they are not reused" in done.stderr and "run_zero_shot.py" not in done.stdout
        return done.stderr

    assert refusal() == ""  # the run planned: skipped (its held-out selection is the training file's lines)
    moved = [str(tmp_path / "elsewhere") if part == flag(command, "--output_dir") else part for part in command]
    assert refusal(argv=moved) == ""  # where the runs lie is no setting
    edited = [("1e-4" if part == flag(command, "--learning_rate") else part) for part in command]
    assert f"--learning_rate: stored '1e-4', now '{flag(command, '--learning_rate')}'" in refusal(argv=edited)
    assert "--fp16: stored 'true', now None" in refusal(argv=[*command, "--fp16"])  # a bare flag is "true"
    code_files = {**provenance.code_files(ROOT / "examples" / "run_zero_shot.py"), "dlfa_zero_shot/training.py": "0"}
    stale_code = refusal(code_files=code_files, code_sha256=provenance.code_sha256(code_files))
    assert "the harness code differs (dlfa_zero_shot/training.py)" in stale_code
    assert "torch 1.0 then" in refusal(versions={**provenance.package_versions(), "torch": "1.0"})
    assert "the backbone's files differ" in refusal(backbone={"sha256": {"model.safetensors": "0"}})
    on_gpu = refusal({"device": "cuda: NVIDIA H100 80GB HBM3"})  # a GPU machine's folder, copied here
    assert "device: recorded 'cuda: NVIDIA H100 80GB HBM3', here 'cpu'" in on_gpu
    (data / "dev-en.tsv").write_text("a\tb\tneutral\n")
    assert "its train data" in refusal() and "has changed since" in refusal()
    (data / "dev-en.tsv").write_text("a\tb\tentailment\n")
    (finished / "results.json").write_text(json.dumps({"run": "baseline", "seed": 1}))
    unrecorded = benchmark_dry_run(tmp_path, "small", "xnli", "--configs", "baseline")
    assert unrecorded.returncode == 1 and "records no provenance" in unrecorded.stderr
    (finished / "results.json").write_text("[]")  # damaged: the harness sets it aside and computes the run again
    damaged = benchmark_dry_run(tmp_path, "small", "xnli", "--configs", "baseline")
    assert damaged.returncode == 0 and "small/xnli: 1 runs to do" in damaged.stdout
    (finished / "results.json").write_text(json.dumps({"run": "baseline", "provenance": "7f688ba"}))
    unreadable = benchmark_dry_run(tmp_path, "small", "xnli", "--configs", "baseline")
    assert unreadable.returncode == 1 and "its provenance cannot be read" in unreadable.stderr


def test_a_harness_command_reads_as_hf_argument_parser_reads_it():
    from dlfa_zero_shot.arguments import differing_flags, flag_values

    command = ["--seed", "1", "--do_train", "--learning_rate=5e-5", "--fp16"]
    assert flag_values(command) == {"--seed": "1", "--do_train": "true", "--learning_rate": "5e-5", "--fp16": "true"}
    assert differing_flags(command, ["--learning_rate", "5e-5", "--seed", "1", "--do_train", "true"]) == [
        "--fp16: stored 'true', now None"
    ]


def test_use_cpu_false_lets_the_trainer_take_a_gpu(tmp_path):
    commands = planned(tmp_path, "--configs", "baseline", "--use_cpu", "false")
    assert commands and all(flag(c, "--use_cpu") == "false" and c.count("--use_cpu") == 1 for c in commands)


def test_the_layer_search_configuration_trains_the_search_alone(tmp_path):
    (command,) = planned(tmp_path, "--configs", "layer-search", "--search_layers", "8,10,11")
    assert flag(command, "--layer_search") == "one_pass" and flag(command, "--layer_search_then") == "keep"
    assert flag(command, "--fusion_layers") == "8,10,11"  # no `last`: the baseline is a configuration of its own


def test_the_study_compares_only_after_its_whole_layer_choice_of_the_runs_planned_now(
    tmp_path, offline_backbone, monkeypatch
):
    """`aif-layer-best` under the study protocol is the plan's choice (layers 8, 10, 11 on seeds 1 and 2, English
    dev) at the budget read off the plan's learning curve: with one of those runs missing the benchmark stops, rather
    than choose among the runs it happens to have. Before, the curve and the layer-choice runs were read as they were:
    a layer choice made with other settings, a copy of a run moved aside in its seed folder, a curve of another
    backbone, an unfinished curve or a stray curve run set the budget and the layer of the runs planned now."""
    monkeypatch.setenv("DLFA_CACHE", str(offline_backbone.parent))  # the protocols' backbone, converted already

    def dry_run(*arguments: str) -> subprocess.CompletedProcess:
        done = benchmark_dry_run(tmp_path, "study", "xnli", *arguments)
        assert (done.returncode == 0) == ("run_zero_shot.py" in done.stdout), done.stderr
        return done

    def commands(*arguments: str) -> list[list[str]]:
        done = dry_run(*arguments)
        assert done.returncode == 0, done.stderr
        return [line.split()[2:] for line in done.stdout.splitlines() if "run_zero_shot.py" in line]

    def write_run(command: list[str], name: str, result: dict, **changed) -> Path:
        run_dir = Path(flag(command, "--output_dir")) / name
        write_finished_run(run_dir, command, {}, {"seed": int(flag(command, "--seed")), **result}, **changed)
        return run_dir

    def curve_point(command: list[str], score: float = 0.7, **changed) -> Path:
        return write_run(command, "baseline", {"selection_by_epoch": [{"epoch": 1.0, "step": 9, "score": score}]},
                         **changed)  # fmt: skip

    def layer_run(layer: str, seed: str, dev: float, name: str = "", **changed) -> Path:
        run = f"aif-layer-{int(layer):02d}"
        result = {"run": run, "metric": "accuracy", "scores": {"selection": {"accuracy": dev}}}
        return write_run(layer_runs[layer, seed], name or run, result, **changed)

    best = ("--configs", "aif-layer-best", "--seeds", "3")
    curve = commands("--phase", "curve")
    points = [curve_point(command) for command in curve]
    choice = commands("--configs", "aif-layer-08,aif-layer-10,aif-layer-11", "--seeds", "1,2")
    assert [flag(c, "--max_train_samples") for c in choice] == [flag(curve[0], "--max_train_samples")] * 6
    dev = {"8": 0.9, "10": 0.6, "11": 0.5}
    layer_runs = {(flag(c, "--fusion_layers"), flag(c, "--seed")): c for c in choice}
    for layer, seed in layer_runs:
        if (layer, seed) != ("11", "2"):
            layer_run(layer, seed, dev[layer])
    stopped = dry_run(*best)
    assert stopped.returncode != 0 and "missing aif-layer-11 seed 2" in stopped.stderr

    layer_run("11", "2", dev["11"])
    (command,) = commands(*best)
    assert (flag(command, "--fusion_layers"), flag(command, "--seed")) == ("8", "3")
    for seed in ("1", "2"):  # layer 10's earlier runs, moved aside in their seed folders (they sort after layer 10's)
        layer_run("10", seed, 0.99, name="aif-layer-10.old", argv=[*layer_runs["10", seed], "--fp16"])
    (command,) = commands(*best)  # before, they chose layer 10
    assert flag(command, "--fusion_layers") == "8"

    edited = [("1e-4" if part == flag(command, "--learning_rate") else part) for part in layer_runs["8", "1"]]
    layer_run("8", "1", dev["8"], argv=edited)
    stale_layer = dry_run(*best)
    assert "seed-1/aif-layer-08 (read for the layer): --learning_rate: stored '1e-4'" in stale_layer.stderr
    assert "they are not reused (move them out of the runs folder" in stale_layer.stderr
    assert "layer choice on English dev is" not in stale_layer.stdout  # refused before it is chosen
    layer_run("8", "1", dev["8"])
    curve_point(curve[1], backbone={"sha256": {"model.safetensors": "0"}})
    stale_curve = dry_run(*best)
    assert f"{points[1]} (read for the budget): the backbone's files differ" in stale_curve.stderr
    assert "budget" not in stale_curve.stdout  # refused before the budget is read off it
    curve_point(curve[1])
    (points[-1] / "results.json").unlink()
    unfinished = dry_run(*best).stderr
    assert f"is not finished (missing {points[-1].parent.parent.name}): run --phase curve first" in unfinished
    curve_point(curve[-1])
    stray = [part.replace(f"n-{flag(curve[0], '--max_train_samples')}", "n-100") for part in curve[0]]
    curve_point(stray, score=0.99)
    strays = dry_run(*best).stderr
    assert "no run of this protocol's curve" in strays and "n-100/seed-1/baseline" in strays


def test_without_a_plan_the_best_layer_is_chosen_among_the_finished_runs_planned_now(
    tmp_path, offline_backbone, monkeypatch
):
    """Under a protocol without a plan (`small`), `aif-layer-best` is the layer with the best English dev among the
    finished `aif-layer-*` runs, each read from its own folder and each the run planned now."""
    monkeypatch.setenv("DLFA_CACHE", str(offline_backbone.parent))  # the protocols' backbone, converted already
    runs = {flag(c, "--fusion_layers"): c for c in planned(tmp_path, "--configs", "aif-layer-08,aif-layer-10")}
    seed_1 = tmp_path / "runs" / "small" / "xnli" / "seed-1"
    for layer, dev in (("8", 0.9), ("10", 0.6)):
        write_finished_run(seed_1 / f"aif-layer-{int(layer):02d}", runs[layer], {},
                           {"seed": 1, "metric": "accuracy", "scores": {"selection": {"accuracy": dev}}})  # fmt: skip
    (command,) = planned(tmp_path, "--configs", "aif-layer-best", "--seeds", "2")
    assert (flag(command, "--fusion_layers"), flag(command, "--seed")) == ("8", "2")
    best_dev = {"seed": 1, "run": "aif-layer-10", "metric": "accuracy", "scores": {"selection": {"accuracy": 0.99}}}
    for aside in ("seed-1.old/aif-layer-10", "seed-01/aif-layer-10", "seed-1/aif-layer-10.old"):  # no run's folder
        write_finished_run(seed_1.parent / aside, runs["10"], {}, best_dev)
    (command,) = planned(tmp_path, "--configs", "aif-layer-best", "--seeds", "2")
    assert flag(command, "--fusion_layers") == "8"  # before, seed-1.old/ stopped the benchmark with a traceback
    (seed_1 / "aif-layer-11").mkdir()
    (seed_1 / "aif-layer-11" / "results.json").write_text("[]")  # damaged: before, passed over without a word
    damaged = benchmark_dry_run(tmp_path, "small", "xnli", "--configs", "aif-layer-best", "--seeds", "2")
    assert damaged.returncode == 1 and "seed-1/aif-layer-11 (read for the layer): its results.json is damaged" in (
        damaged.stderr
    )
    (seed_1 / "aif-layer-11" / "results.json").unlink()
    edited = [("1e-4" if part == flag(command, "--learning_rate") else part) for part in runs["8"]]
    scored = {"seed": 1, "metric": "accuracy", "scores": {"selection": {"accuracy": 0.9}}}
    write_finished_run(seed_1 / "aif-layer-08", runs["8"], {}, scored, argv=edited)
    refused = benchmark_dry_run(tmp_path, "small", "xnli", "--configs", "aif-layer-best", "--seeds", "2")
    assert refused.returncode == 1 and "seed-1/aif-layer-08 (read for the layer): --learning_rate" in refused.stderr


def test_a_configuration_named_with_qualifiers_runs_with_those_settings(tmp_path):
    # Before, `aif-layer-08+r8` was not a run name, and no name could ask for another reduction, norm or LoRA.
    (command,) = planned(tmp_path, "--configs", "aif-layer-08+r8+layer-norm")
    assert (flag(command, "--fusion_layers"), flag(command, "--aif_reduction"), flag(command, "--aif_norm")) == (
        "8", "8", "layer"
    )  # fmt: skip
    (command,) = planned(tmp_path, "--configs", "baseline+lora-r8")
    assert flag(command, "--fusion_layers") == "last" and flag(command, "--lora_r") == "8"
    assert "--aif_reduction" not in command  # only the settings that differ from the defaults are passed


def test_every_configuration_name_makes_the_harness_flags_of_that_name(tmp_path):
    """`harness_flags(name)` parsed as the harness parses them names that very run (the scalar mix and the baseline too)."""
    from transformers import HfArgumentParser, TrainingArguments

    from dlfa_zero_shot.arguments import DataArguments, ModelArguments, parse_layers, run_names
    from dlfa_zero_shot.tasks import TASKS

    benchmark = script_module("zero_shot_benchmark")
    names = ["baseline", "scalar-mix", "aif-layer-08", "concat-layer-08+fusion-lr-x10", "paper-gate-layer-08+r8",
             "gate-init-0.1-layer-08+layer-norm+align-first", "baseline+align-first+lora-r4"]  # fmt: skip
    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    for name in names:
        flags = benchmark.harness_flags(name, 2e-5, "")
        arguments = ["--output_dir", str(tmp_path), "--learning_rate", "2e-5", *sum(flags.items(), ())]
        model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=arguments)
        (layer,) = parse_layers(model_args.fusion_layers, 12, 11)
        made = run_names([layer], model_args, data_args, TASKS["udpos"], training_args.learning_rate)
        assert made == {layer: name}, flags


def script_module(name: str) -> ModuleType:
    """benchmarks/<name>.py as a module (benchmarks/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def lora_benchmark() -> ModuleType:
    return script_module("lora_vs_full")


def readme_main_job() -> list[str]:
    """The arguments of the README's command 1 (the main job) after `run_zero_shot.py`."""
    return script_module("main_job").readme_command(ROOT / "README.md")


def archived(name: str) -> dict:
    """The committed benchmark archive benchmarks/results/<name>."""
    return json.loads((ROOT / "benchmarks" / "results" / name).read_text())


def prose(path: Path) -> str:
    """The text of `path` with every run of whitespace one space: a quoted phrase matches however its lines wrap."""
    return " ".join(path.read_text().split())


def table_cells(line: str) -> list[str]:
    """A markdown table row's cells after its first (the row's label)."""
    return [cell.strip() for cell in line.strip("|").split("|")][1:]


def test_the_main_job_benchmark_refuses_an_output_folder_that_exists(tmp_path):
    """The harness would reuse the finished runs of an existing --output_dir, so nothing would be timed; and the folder
    is the user's: the benchmark names it and touches nothing."""
    kept = tmp_path / "udpos-offline"
    kept.mkdir()
    (kept / "summary.json").write_text("{}")
    command = " ".join(readme_main_job()).replace("runs/udpos-offline", str(kept))
    readme = tmp_path / "README.md"
    readme.write_text(f"## The two set-up commands\n\n```bash\npython examples/run_zero_shot.py {command}\n```\n\n")
    completed = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "main_job.py"), "--readme", str(readme),
                                "--output", str(tmp_path / "main_job.json")], capture_output=True, text=True,
                               check=False)  # fmt: skip
    assert completed.returncode != 0 and f"{kept} exists: move it away" in completed.stderr
    assert (kept / "summary.json").read_text() == "{}" and not (tmp_path / "main_job.json").exists()


def test_the_lora_benchmark_measures_the_readmes_main_job():
    from dlfa_zero_shot.arguments import flag_values

    lora = lora_benchmark()
    readme = flag_values(readme_main_job())
    benchmark = flag_values(list(lora.MAIN_JOB))
    assert readme.pop("--learning_rate") == lora.FULL_LEARNING_RATE
    assert readme.pop("--fusion_layers") == "10,last" and benchmark.pop("--fusion_layers") == "10"  # DLFA alone
    for where in ("--data_dir", "--output_dir"):
        readme.pop(where)
    for quiet in ("--disable_tqdm", "--report_to"):
        benchmark.pop(quiet)
    assert readme == benchmark


def test_the_lora_benchmark_reuses_no_run_of_another_job(tmp_path):
    """Before, a report of another budget (the main job before its evaluation was halved) was read as this one's."""
    lora = lora_benchmark()
    stored = " ".join(lora.MAIN_JOB).replace("--num_train_epochs 2", "--num_train_epochs 3")
    assert stored != " ".join(lora.MAIN_JOB)
    measured = {"trainable_parameters": 1, "train_seconds_per_step": 0.5, "train_runtime_seconds": 60.0,
                "peak_rss_mib": 2000, "english_dev_f1": 90.0, "target_average_f1": 70.0}  # fmt: skip
    runs = {name: {**measured, "flags": " ".join(flags)} for name, flags in lora.planned_runs().items()}
    report = tmp_path / "lora.json"
    report.write_text(json.dumps({"setup": {"command": stored}, "runs": runs}))
    command = [sys.executable, str(ROOT / "benchmarks" / "lora_vs_full.py"), "--output", str(report), "--runs_dir",
               str(tmp_path / "runs"), "--data_dir", str(tmp_path)]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    assert completed.returncode != 0
    assert "--num_train_epochs: stored '3', now '2'" in completed.stderr and "none is reused" in completed.stderr
    assert json.loads(report.read_text())["setup"]["command"] == stored  # the stored report is left as it was
    assert not (tmp_path / "runs").exists()  # no run started

    # The same job, but a run stored under a planned name with another learning rate than the plan's.
    same_job = {"command": " ".join(lora.MAIN_JOB), "data_dir": lora.data_label(tmp_path)}
    changed = {**runs, "full-seed42": {**runs["full-seed42"], "flags": runs["full-seed42"]["flags"].replace(
        lora.FULL_LEARNING_RATE, "3e-5")}}  # fmt: skip
    report.write_text(json.dumps({"setup": same_job, "runs": changed}))
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    assert completed.returncode != 0
    assert f"full-seed42 --learning_rate: stored '3e-5', now '{lora.FULL_LEARNING_RATE}'" in completed.stderr

    # The same job and runs, measured on another data folder.
    report.write_text(json.dumps({"setup": {**same_job, "data_dir": "elsewhere/xtreme-lite"}, "runs": runs}))
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    assert completed.returncode != 0 and "--data_dir: stored 'elsewhere/xtreme-lite'" in completed.stderr
    assert not (tmp_path / "runs").exists()

    # Files that are not this benchmark's report: before, a JSON list or a file that is not JSON ended in a traceback.
    for text in (json.dumps({"setup": same_job, "runs": {"full-seed42": {}}}), json.dumps([same_job]), "{"):
        report.write_text(text)
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        assert completed.returncode != 0 and "is not a report of this benchmark" in completed.stderr, text
        assert "Traceback" not in completed.stderr

    report.write_text(json.dumps({"setup": same_job, "runs": runs}))  # every setting equal: the runs are reused
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    assert "| LoRA r 8, lr 1e-4 |" in completed.stdout and not (tmp_path / "runs" / "full-seed42").exists()


def test_the_docs_show_the_archived_lora_report():
    """The README's LoRA table, docs/usage.md's grid and the harness's LoRA rate are the archived report's."""
    from dlfa_zero_shot.arguments import LORA_LEARNING_RATE

    lora = lora_benchmark()
    report = archived("lora_vs_full.json")
    assert report["setup"]["command"] == " ".join(lora.MAIN_JOB)  # measured on today's main job
    chosen = report["chosen_learning_rate"]
    assert chosen == lora.choose_learning_rate(report["runs"]) and float(chosen) == LORA_LEARNING_RATE
    assert lora.comparison_table(report["runs"], chosen) in (ROOT / "README.md").read_text()
    usage = "\n".join(line.strip() for line in (ROOT / "docs" / "usage.md").read_text().splitlines())
    assert lora.grid_table(report["runs"], chosen) in usage


def test_the_docs_show_the_archived_fault_table():
    """docs/usage.md's fault table is the archived fault benchmark's, made on the tiny job it names."""
    faults = script_module("faults")
    archive = archived("faults.json")
    assert archive["command"].startswith(f"python examples/run_zero_shot.py {' '.join(faults.JOB)} ")
    assert archive["complete"] and archive["backbone"] == faults.BACKBONE  # the default encoder, every row
    assert len(archive["rows"]) == len(faults.ROWS)
    assert all(row["scores_equal_uninterrupted"] and not row["half_written_left"] for row in archive["rows"])
    assert faults.table(archive) in (ROOT / "docs" / "usage.md").read_text()


def test_the_docs_show_the_archived_int8_latency_and_accuracy_tables():
    """docs/usage.md's ONNX tables are the archives', and the int8 accuracy was measured on the README's main job."""
    latency, accuracy = script_module("onnx_latency"), script_module("onnx_int8_accuracy")
    usage = (ROOT / "docs" / "usage.md").read_text()
    timed = archived("onnx_latency.json")
    assert set(timed["latency"]) == {f"{head}/{engine}/batch-{size}" for head in ("stock", "dlfa")
                                     for engine in latency.ENGINES for size in latency.BATCH_SIZES}  # fmt: skip
    assert latency.table(timed) in usage
    made_by = timed["provenance"]  # which code, versions, backbone and data made the latency table
    assert timed["command"].startswith("python benchmarks/onnx_latency.py") and not made_by["dirty"]
    assert made_by["code_sha256"] and made_by["backbone"]["sha256"] and made_by["data"]["test-en"]["sha256"]
    assert made_by["versions"]["onnxruntime"] and timed["setup"]["backbone"] == latency.BACKBONE
    stated = " ".join(usage.split())  # the conditions the docs give with the table are the archive's
    assert (f"(`{timed['command']}`, {timed['date'][:10]} at commit {made_by['commit'][:7]}, a clean tree, onnxruntime "
            f"{made_by['versions']['onnxruntime']};") in stated  # fmt: skip
    assert f"load average {timed['load_average_before'][0]:g} before" in stated
    assert f"{timed['load_average_after'][0]:g} after), {timed['wall_seconds']:.0f} s in all" in stated
    assert "AVX-512 with VNNI, the archive's `cpu_instruction_sets`" in stated
    assert {"avx512f", "avx512_vnni"} <= set(made_by["cpu_instruction_sets"])
    bits = timed["setup"]["int8"].split()[-2]  # "... QInt8 weights in 7 bits"
    assert f"int8 is `--quantize int8`'s, with {bits}-bit weights" in stated
    earlier = archived("superseded/onnx_latency_04a418e.json")  # the archive this one replaced, cited beside it
    assert earlier["provenance"]["commit"].startswith("04a418e")
    assert "cpu_instruction_sets" not in earlier["provenance"]  # "its instruction sets not recorded"
    scored = archived("onnx_int8_accuracy.json")
    assert scored["run_provenance"]["argv"] == readme_main_job() and not scored["code"]["dirty"]
    assert set(scored["float32_predictions_as_the_runs"].values()) == {1.0}  # float32 ONNX is the run's model
    assert accuracy.table(scored) in usage


def test_the_readme_states_the_archived_main_job():
    """README.md's main-job table, time, memory and conditions are main_job.json's (the README's command, clean
    code)."""
    from dlfa_zero_shot.names import BASELINE
    from dlfa_zero_shot.tasks import TRAIN_LANGUAGE

    archive = archived("main_job.json")
    assert archive["command"] == shlex.join(["python", script_module("main_job").PROGRAM, *readme_main_job()])
    assert not archive["code"]["dirty"]
    lines = (ROOT / "README.md").read_text().splitlines()
    header = next(line for line in lines if line.startswith("| run | en dev |"))
    columns = table_cells(header)  # en dev, some languages, the average
    for run, result in archive["runs"].items():
        label = f"{run} (selected on en dev)" if run == archive["selected_by_english_dev"] else run
        row = next(line for line in lines if line.startswith(f"| {label} |"))
        cells = table_cells(row)
        targets = [name for name in result["scores"] if name not in {"en dev", TRAIN_LANGUAGE, "target average"}]
        scores = {**result["scores"], f"avg ({len(targets)} targets)": result["scores"]["target average"]}
        assert cells == [f"{scores[column]:.2f}" for column in columns], run
    stated = prose(ROOT / "README.md")
    trained = sorted(round(run["train_runtime_seconds"]) for run in archive["runs"].values())
    assert f"on {archive['date'][:10]} at {archive['code']['commit'][:7]}," in stated
    assert "(AVX2, no AVX-512: the archive's `cpu_instruction_sets`)" in stated
    assert "avx2" in archive["cpu_instruction_sets"] and "avx512f" not in archive["cpu_instruction_sets"]
    assert f"load average {archive['load_average_before'][0]:g} at the start" in stated
    selected, baseline = (archive["runs"][run]["scores"]["target average"]
                          for run in (archive["selected_by_english_dev"], BASELINE))  # fmt: skip
    assert f"a {selected - baseline:+.2f} average is not evidence either way" in stated
    assert (f"{archive['wall_seconds']:.0f} s ({archive['cpu_seconds']:.0f} s of CPU, training {trained[0]}-"
            f"{trained[-1]} s a model, peak RSS {archive['peak_rss_mib'] / 1024:.1f} GiB)") in stated  # fmt: skip


def test_the_int8_benchmark_scored_the_readmes_measured_main_job():
    """docs/usage.md's int8 table was measured on the README's measured main job: the run main_job.json archived."""
    scored = archived("onnx_int8_accuracy.json")
    assert scored["run_provenance"]["argv"] == readme_main_job()
    job = archived("main_job.json")
    selected = job["runs"][job["selected_by_english_dev"]]
    assert scored["run"] == job["selected_by_english_dev"]
    assert scored["run_provenance"]["code_sha256"] == selected["provenance"]["code_sha256"]
    harness = {language: result["harness"] for language, result in scored["languages"].items()}
    harness["en dev"] = harness.pop("selection")
    assert harness == {
        language: score for language, score in selected["scores"].items() if language != "target average"
    }


def test_the_docs_state_the_int8_accuracy_archives_conditions_and_summary():
    """docs/usage.md's words around the int8 table (date, commit, CPU, load, time, labels kept, changes) are
    onnx_int8_accuracy.json's; the earlier measurement that it and README.md cite is the superseded archive's."""
    scored = archived("onnx_int8_accuracy.json")
    stated = prose(ROOT / "docs" / "usage.md")
    targets = scored["targets"]
    assert f"Measured {scored['date'][:10]} at commit {scored['code']['commit'][:7]} on the README's measured run" in (
        stated
    )
    instruction_sets = set(scored["cpu_instruction_sets"])
    assert "AVX2 without VNNI" in stated and "avx2" in instruction_sets
    assert not {"avx512_vnni", "avx_vnni"} & instruction_sets
    assert (f"load average {scored['load_average_before'][0]:g} before, {scored['load_average_after'][0]:g} after, "
            f"{scored['wall_seconds']:.0f} s)") in stated  # fmt: skip
    kept = {language: scored["int8_predictions_as_float32s"][language] for language in targets}
    fewest = min(kept, key=kept.get)
    assert (f"int8 kept {100 * statistics.mean(kept.values()):.1f}% of them on the targets on average "
            f"({100 * kept[fewest]:.1f}% on {fewest}, the fewest)") in stated  # fmt: skip
    changes = [scored["languages"][language]["change"] for language in targets]
    drop = scored["largest_drop"]
    assert f"mean change over the {len(targets)} targets is {scored['mean_change_over_targets']:.2f} points" in stated
    assert f"the largest drop {drop['change']:.2f} ({drop['language']})" in stated
    assert f"single languages moved from {min(changes):.2f} to {max(changes):+.2f}" in stated

    earlier = archived("superseded/onnx_int8_accuracy_a23f566.json")
    assert earlier["code"]["commit"].startswith("a23f566") and earlier["run_provenance"]["argv"] == readme_main_job()
    drop = earlier["largest_drop"]
    assert f"read {earlier['mean_change_over_targets']:.2f} and {drop['change']:.2f} ({drop['language']})" in stated
    harness = {language: result["harness"] for language, result in earlier["languages"].items()}
    average = statistics.mean(harness[language] for language in earlier["targets"])
    assert (f"The earlier machine printed {harness['selection']:.2f} English dev and {average:.2f} on average for the "
            "DLFA row") in prose(ROOT / "README.md")  # fmt: skip


def test_the_docs_state_what_the_7_bit_int8_weights_cost_as_archived():
    """docs/usage.md's comparison of 7- and 8-bit int8 weights is the two archives': one model (the same weights and
    float32 scores), measured at one commit on a CPU whose int8 products do not saturate, and the numbers stated."""
    seven, eight = (archived(f"onnx_int8_weight_bits/{bits}.json") for bits in (7, 8))
    stated = prose(ROOT / "docs" / "usage.md")
    assert (seven["weight_bits"], eight["weight_bits"]) == (7, 8)
    assert seven["model_files_sha256"] == eight["model_files_sha256"]
    assert seven["run_provenance"]["argv"] == eight["run_provenance"]["argv"] == readme_main_job()
    assert all(seven["languages"][language]["float32"] == eight["languages"][language]["float32"]
               for language in seven["languages"])  # fmt: skip
    assert seven["code"]["commit"] == eight["code"]["commit"]
    assert not seven["code"]["dirty"] and not eight["code"]["dirty"]
    assert f"{seven['date'][:10]} at commit {seven['code']['commit'][:7]}, 2 cores with AVX-512 VNNI" in stated
    assert {"avx512f", "avx512_vnni"} <= set(seven["cpu_instruction_sets"]) == set(eight["cpu_instruction_sets"])
    assert (f"load average {seven['load_average_before'][0]:g} and {eight['load_average_before'][0]:g} before, "
            f"{seven['wall_seconds']:.0f} s and {eight['wall_seconds']:.0f} s") in stated  # fmt: skip
    assert (f"the mean change over the 16 targets was {seven['mean_change_over_targets']:.2f} with 7 bits and "
            f"{eight['mean_change_over_targets']:.2f} with 8") in stated  # fmt: skip
    targets = seven["targets"]
    kept = [100 * statistics.mean(archive["int8_predictions_as_float32s"][language] for language in targets)
            for archive in (seven, eight)]  # fmt: skip
    assert f"int8 kept {kept[0]:.1f}% and {kept[1]:.1f}% of float32's word labels" in stated
    gain = {language: eight["languages"][language]["int8"] - seven["languages"][language]["int8"]
            for language in targets}  # fmt: skip
    low, high = min(gain, key=gain.get), max(gain, key=gain.get)
    assert (f"8 bits less 7 bits ran from {gain[low]:.2f} ({low}) to {gain[high]:+.2f} ({high}), "
            f"{statistics.mean(gain.values()):+.2f} on average") in stated  # fmt: skip


def test_the_readme_shows_the_archived_cost_table_of_every_family():
    """README.md's cost table is `overhead.py --family all`'s archive, whole: every family DLFA fuses, one process."""
    from modeling_dlfa import ENCODER_FAMILIES

    overhead = script_module("overhead")
    archive = archived("overhead_family/cost_table.json")
    assert archive["complete"] and set(archive["families"]) == set(ENCODER_FAMILIES)
    assert archive["command"] in (ROOT / "README.md").read_text().replace("\n", " ")
    assert overhead.table(archive) in (ROOT / "README.md").read_text()


def test_the_readme_says_which_families_meet_the_cost_bounds_as_the_archive_does():
    """README.md's prose under the cost table names the families within issue 31's bounds by the archive's unrounded
    ratios (before, distilbert's median 1.0105, shown as 1.010 in the table, was said to meet the bound of 1.01)."""
    archive = archived("overhead_family/cost_table.json")
    results = archive["families"].values()
    readme = prose(ROOT / "README.md")
    held = re.search(r"the bytes held for backward are within ([\d.]+) of the stock head's on every family", readme)
    assert max(result["saved_bytes_ratio"]["held"] for result in results) <= float(held.group(1))
    said = re.search(
        r"The time bound of ([\d.]+) is met by the medians of (.+?) \(.*?\) and missed by (.+?) \(", readme
    )
    met, missed = (set(re.split(", | and ", said.group(group))) for group in (2, 3))
    medians = {
        family: result["forward_backward_time_ratio"]["median"] for family, result in archive["families"].items()
    }
    bound = float(said.group(1))
    assert met == {family for family, median in medians.items() if median <= bound}
    assert missed == {family for family, median in medians.items() if median > bound}


def test_the_throughput_benchmark_refuses_settings_without_its_reference_before_any_work(tmp_path):
    """Before, `--settings grouped` trained every round and then failed on the table's missing `dynamic` reference."""
    completed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--settings", "grouped", "--data_dir",
         str(tmp_path)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert completed.returncode == 2 and "--settings 'grouped'" in completed.stderr and "`dynamic`" in completed.stderr


def benchmark_dry_run(tmp_path: Path, protocol: str, task: str, *arguments: str) -> subprocess.CompletedProcess:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "zero_shot_benchmark.py"), "--protocol", protocol, "--task", task,
         "--data_dir", str(data), "--runs_dir", str(tmp_path / "runs"), "--dry_run", *arguments],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_the_replication_runs_the_studys_udpos_flags_with_its_written_budget_and_more_languages(tmp_path):
    """The replication's flags are the study's UDPOS run's, the budget read off the study's archived curve."""
    from dlfa_zero_shot import analysis, names, plans
    from dlfa_zero_shot.report import restore_archive

    runs = tmp_path / "runs" / "study" / "udpos"
    restore_archive(ROOT / "benchmarks" / "results" / "study" / "udpos.json", runs)
    plan = plans.REPLICATION_PLAN
    budget = analysis.choose_budget(analysis.load_curve(runs / "curve"), plans.STUDY_PLAN.budget_margin)
    assert plan.budget == (budget["examples"], budget["epochs"])
    assert plan.fusion_layer == names.layer_of(plans.study_layer_choice(analysis.load_runs(runs))[0])

    benchmark = script_module("zero_shot_benchmark")

    def commands(protocol: str, seed: int) -> list[dict[str, str]]:
        """The flags of the runs the protocol plans at `seed`: the study's with the budget its curve gives (above)."""
        base = benchmark.PROTOCOLS[protocol].arguments("udpos")
        if protocol == "study":
            base |= {"--max_train_samples": str(budget["examples"]), "--num_train_epochs": str(budget["epochs"])}
        return [benchmark.configuration_run(tmp_path, base, name, seed, "").flags for name in plan.configurations]

    # The study's seed 3 (the study plan runs no seed past its bound of 10), beside the replication's first seed.
    for ours, theirs in zip(commands("study", 3), commands("replication", plan.seeds[0]), strict=True):
        assert (ours.pop("--seed"), theirs.pop("--seed")) == ("3", str(plan.seeds[0]))
        languages = theirs.pop("--eval_languages").split(",")
        assert languages == [*ours.pop("--eval_languages").split(","), *plan.descriptive_languages]
        assert languages[: len(plan.target_languages)] == list(plan.target_languages)
        assert ours == theirs
    planned = benchmark_dry_run(tmp_path, "replication", "udpos", "--configs", ",".join(plan.configurations),
                                "--seeds", str(plan.seeds[0]))  # fmt: skip
    commands = [line.split()[2:] for line in planned.stdout.splitlines() if "run_zero_shot.py" in line]
    assert planned.returncode == 0 and len(commands) == 3
    assert [flag(c, "--max_train_samples") for c in commands] == [str(budget["examples"])] * 3


def test_the_pawsx_study_runs_nothing_past_its_layer_choice_before_its_seeds_are_decided_nor_past_them(tmp_path):
    from dlfa_zero_shot.plans import PAWSX_PLAN

    check_planned = script_module("zero_shot_benchmark").check_planned
    pending = replace(PAWSX_PLAN, seeds_decision="")  # docs/pawsx-plan.md's CPU rule decides 10 or 5
    check_planned(pending, ["aif-layer-06", "aif-layer-11"], [1, 2])  # the layer choice runs
    for names, seeds, refused in ((["baseline"], [1], "baseline"), (["aif-layer-06"], [1, 3], "seed 3")):
        with pytest.raises(SystemExit, match=f"{refused}: this plan's number of seeds awaits its dated decision"):
            check_planned(pending, names, seeds)
    decided = replace(PAWSX_PLAN, first_seeds=5, extended_seeds=5, seeds_upper_bound=5, seeds_decision="5")
    check_planned(decided, ["baseline", "aif-layer-06", "concat-layer-06"], [1, 2, 3, 4, 5])
    with pytest.raises(SystemExit, match=r"seeds \[6, 7\]: this plan runs seeds 1 to 5 at most"):
        check_planned(decided, ["baseline"], [5, 6, 7])
    with pytest.raises(SystemExit, match=r"seeds \[0\]: this plan runs seeds 1 to 5 at most"):
        check_planned(decided, ["baseline"], [0, 1])  # `--seeds 0-4`: a seed the plan does not have
    beyond = benchmark_dry_run(tmp_path, "pawsx", "pawsx", "--configs", "aif-layer-06", "--seeds", "1,11")
    bound = PAWSX_PLAN.seeds_upper_bound  # the plan as it stands: its decision written
    assert beyond.returncode == 1 and f"seeds [11]: this plan runs seeds 1 to {bound} at most" in beyond.stderr
    curve = benchmark_dry_run(tmp_path, "pawsx", "pawsx", "--phase", "curve")
    assert curve.returncode == 0 and "pawsx/pawsx: 4 runs to do" in curve.stdout
    command = next(line.split() for line in curve.stdout.splitlines() if "run_zero_shot.py" in line)
    assert flag(command, "--max_eval_samples") == "2000" and flag(command, "--task") == "pawsx"
    study = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "study.sh"), "replication"], capture_output=True, text=True, check=False
    )
    assert study.returncode == 2 and "unknown study 'replication'" in study.stderr


def test_the_pawsx_plans_seeds_are_what_its_cpu_rule_gives_on_the_archived_cpu_times():
    """
    docs/pawsx-plan.md: the number of seeds is the CPU rule's, read from the archived first layer-choice run; once
    written into the plan it holds for every comparison (no sequential rule).
    """
    from dlfa_zero_shot.plans import PAWSX_PLAN as plan

    archive = archived("study/pawsx.json")
    reading = plan.cpu_rule(archive.get("cpu_times", {}))
    assert plan.seeds_decision, "the decision (2026-12-07, docs/results.md) is written into the plan"
    assert reading is not None, "the seeds decision was written before the CPU rule's first run was archived"
    assert plan.first_seeds == plan.extended_seeds == plan.seeds_upper_bound == reading.seeds
    assert re.search(r"\b2\d{3}-\d{2}-\d{2}\b", plan.seeds_decision), "the decision is dated"


def test_the_readme_states_the_pawsx_layer_choice_as_archived():
    """README.md's PAWS-X line: the layer the plan's English-dev rule chose from the archived runs, its mean English
    dev, and the paper's layer 6 beside it."""
    from dlfa_zero_shot.analysis import dev_score
    from dlfa_zero_shot.plans import PAWSX_PLAN as plan
    from dlfa_zero_shot.plans import study_layer_choice

    runs = {name: {int(seed): result for seed, result in by_seed.items()}
            for name, by_seed in archived("study/pawsx.json")["runs"].items()}  # fmt: skip
    chosen, missing = study_layer_choice(runs, plan)
    assert chosen and not missing

    def dev(name: str) -> float:
        return statistics.mean(dev_score(runs[name][seed]) for seed in plan.choice_seeds)

    layers = ", ".join(str(layer) for layer in plan.choice_layers)
    assert (f"its layer choice on English dev (layers {layers}; seeds {plan.choice_seeds[0]}-{plan.choice_seeds[-1]}) "
            f"chose layer {int(chosen.rsplit('-', 1)[1])} ({dev(chosen):.2f}; layer 6, the paper's choice, read "
            f"{dev('aif-layer-06'):.2f} here)") in prose(ROOT / "README.md")  # fmt: skip


def test_the_overhead_benchmark_counts_a_tensor_saved_by_three_operations_once_as_held():
    """Memory holds a layer's input once, though its query, key and value projections each save it."""
    import torch

    class ThreeProjections(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.projections = torch.nn.ModuleList(torch.nn.Linear(4, 4) for _ in range(3))

        def forward(self, inputs):
            return SimpleNamespace(loss=sum(projection(inputs).sum() for projection in self.projections))

    saved = script_module("overhead").saved_activation_bytes(ThreeProjections(), {"inputs": torch.ones(2, 4)})
    assert saved == {"held": 2 * 4 * 4, "per_save": 3 * 2 * 4 * 4}  # float32 inputs; parameters never count


def test_the_cost_table_measures_every_family_in_one_process_and_shows_it_from_the_archive(tmp_path, capsys):
    """`overhead.py --family all` archives each family of ENCODER_FAMILIES with its load; `--show` prints its table."""
    from modeling_dlfa import ENCODER_FAMILIES

    overhead, archive = script_module("overhead"), tmp_path / "cost_table.json"
    tiny = ["--hidden-size", "64", "--num-layers", "2", "--fusion-layer", "1", "--batch-size", "2", "--seq-length",
            "16", "--pairs", "10", "--warmup", "0", "--memory-pairs", "0", "--threads", "1"]  # fmt: skip
    report = overhead.main(["--family", "all", *tiny, "--output", str(archive)])
    stored = json.loads(archive.read_text())
    assert stored == json.loads(json.dumps(report)) and stored["complete"]
    assert list(stored["families"]) == list(ENCODER_FAMILIES) and len(stored["load_average_before"]) == 3
    for family, measured in stored["families"].items():
        assert measured["setup"]["family"] == family and measured["saved_bytes_ratio"]["held"] > 1, family
    capsys.readouterr()
    overhead.main(["--show", str(archive)])
    rows = capsys.readouterr().out.splitlines()[2:]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows] == list(ENCODER_FAMILIES)
