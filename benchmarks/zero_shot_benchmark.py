"""
Does DLFA transfer better? Every run here is one `examples/run_zero_shot.py` command (the harness users run) with a
protocol's settings, one configuration and one seed; `benchmarks/zero_shot_report.py` turns the runs into the report.

    # the study (docs/study-plan.md): learning curve, layer choice on English dev, then the paired comparison;
    # the PAWS-X study (docs/pawsx-plan.md) is the same with --protocol pawsx: bash benchmarks/study.sh pawsx
    python benchmarks/zero_shot_benchmark.py --protocol study --task panx --phase curve
    python benchmarks/zero_shot_benchmark.py --protocol study --task panx --configs aif-layer-08,aif-layer-10,aif-layer-11 --seeds 1,2
    python benchmarks/zero_shot_benchmark.py --protocol study --task panx --configs baseline,aif-layer-best,concat-layer-best --seeds 1-5

    # the earlier small study (docs/results.md, "Earlier small study"): bash benchmarks/zero_shot_small.sh
    # the XTREME recipe on mBERT (a GPU and the Hub): --protocol full --dataset_name google/xtreme

`--configs` takes run names (`dlfa_zero_shot.run_name`: `baseline`, `aif-layer-08`, `concat-layer-08`,
`scalar-mix`, `paper-gate-layer-08`, `gate-init-0.1-layer-08`, `fusion-lr-x10-layer-08`); `best` in place of a layer
is the DLFA layer chosen on English dev: under a protocol with a plan, the plan's layer choice (its layers and seeds,
all finished); else among the task's finished `aif-layer-*` runs (over the seeds they all have).
`layer-search` is the one-pass layer search over `--search_layers` (its chosen head kept as `one-pass-aif-layer-NN`),
to be compared with the separate-run sweep of the same seeds.
Runs live in `<runs_dir>/<protocol>/<task>/seed-<seed>/<run name>/`; a run whose `results.json` exists is skipped
where it records the harness command planned now, the harness code, package versions, backbone and device here, and
the data files as they are (else the benchmark stops before any run and names what differs); an unfinished one
resumes from its last checkpoint. The runs a plan's budget (its whole learning curve) and a `-best` layer are read
from must pass the same check, finished. Each finished run's weights and checkpoints are deleted (`--keep_models`
keeps them): the benchmark keeps numbers and per-item predictions, not models.
"""

import argparse
import functools
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from dlfa_zero_shot import analysis, plans, provenance
from dlfa_zero_shot.arguments import differing_flags, flag_values
from dlfa_zero_shot.data import described_file
from dlfa_zero_shot.files import DamagedFileError, read_json, write_atomically
from dlfa_zero_shot.names import (
    AIF_PREFIX,
    BASELINE,
    DEFAULT_LABEL_ALIGNMENT,
    DEFAULT_NORM,
    DEFAULT_REDUCTION,
    LAYER_SEARCH,
    configuration_of,
    layer_of,
)
from dlfa_zero_shot.tasks import TRAIN_LANGUAGE


ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RUNS = ROOT / "benchmarks" / "runs"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "xtreme-lite"
HARNESS = ROOT / "examples" / "run_zero_shot.py"
# The target languages of the CPU protocols (their owner is `plans`), as --eval_languages.
TAGGING_LANGUAGES = ",".join(plans.TAGGING_TARGETS)
XNLI_LANGUAGES = ",".join(plans.XNLI_TARGETS)
PAWSX_LANGUAGES = ",".join(plans.PAWSX_TARGETS)


@dataclass(frozen=True)
class Protocol:
    """Harness flags shared by every run of a protocol, and per task: the harness task and its flags."""

    flags: dict[str, str]
    task_flags: dict[str, dict[str, str]]
    harness_task: dict[str, str] = field(default_factory=dict)  # benchmark task -> harness --task, where they differ
    plan: plans.StudyPlan | None = None  # a pre-registered plan: budgets from its curve, its layer choice

    def arguments(self, task: str) -> dict[str, str]:
        if task not in self.task_flags:
            raise SystemExit(f"this protocol has no task {task!r}: it has {sorted(self.task_flags)}")
        return {**self.flags, **self.task_flags[task], "--task": self.harness_task.get(task, task)}


# The earlier small study (frozen word embeddings, short budgets): what docs/results.md's earlier section reports.
SMALL_TAGGING = {"--max_train_samples": "1000", "--max_eval_samples": "200", "--num_train_epochs": "2",
                 "--learning_rate": "1e-4", "--max_seq_length": "64", "--eval_languages": TAGGING_LANGUAGES}  # fmt: skip
SMALL_PAIRS = {"--max_eval_samples": "500", "--num_train_epochs": "3", "--learning_rate": "3e-5",
               "--max_seq_length": "128"}  # fmt: skip
SMALL = Protocol(
    flags={
        "--model_name_or_path": "offline:multilingual-e5-small",
        "--per_device_train_batch_size": "16",
        "--per_device_eval_batch_size": "32",
        "--freeze_word_embeddings": "true",
        "--train_sampling_strategy": "random",  # as its archived runs trained (the harness now groups by length)
        "--use_cpu": "true",
    },  # fmt: skip
    task_flags={
        "udpos": SMALL_TAGGING,
        "panx": SMALL_TAGGING,
        "xnli": {**SMALL_PAIRS, "--eval_languages": XNLI_LANGUAGES},
        "pawsx": {**SMALL_PAIRS, "--eval_languages": "de"},
    },  # fmt: skip
    harness_task={"xnli": "xnli_dev"},  # that study trained XNLI on the English XNLI dev set
)

# The study (docs/study-plan.md). `CURVE` is the grid of the baseline's learning curve on English dev
# (`--phase curve`): training examples, and epochs (English dev is read after each).
STUDY_COMMON = {
    "--model_name_or_path": "offline:multilingual-e5-small",
    "--per_device_train_batch_size": "32",
    "--per_device_eval_batch_size": "64",
    "--learning_rate": "5e-5",
    "--warmup_steps": "0.1",  # a fraction below 1: the share of the steps (transformers 5.2x)
    "--max_seq_length": "128",
    "--max_eval_samples": "1000",
    "--freeze_word_embeddings": "true",
    "--train_sampling_strategy": "group_by_length",
    "--save_total_limit": "2",  # the best epoch and the last (to resume)
    "--use_cpu": "true",
}
CURVE = {"udpos": ((1000, 2000, 4000, 8000), 3), "panx": ((1000, 2000, 4000, 8000), 3),
         "xnli": ((2500, 5000, 10000, 20000), 2), "pawsx": ((1000, 2000, 4000, 8000), 3)}  # fmt: skip
# Each task's budget (training examples, epochs) is not written here: `study_budget` reads it off the task's curve
# runs by the plan's rule (`analysis.choose_budget`), so it is the same on every machine that has those runs.
STUDY_TASK_FLAGS = {
    "udpos": {"--eval_languages": TAGGING_LANGUAGES},
    "panx": {"--eval_languages": TAGGING_LANGUAGES},
    # the plan reports XNLI's English test apart (never in the target average, which leaves English out)
    "xnli": {"--eval_languages": f"{TRAIN_LANGUAGE},{XNLI_LANGUAGES}"},
}
# The study's tasks are the plan's (`plans.StudyPlan.tasks`); each one's flags are here.
STUDY = Protocol(flags=STUDY_COMMON, task_flags={task: STUDY_TASK_FLAGS[task] for task in plans.STUDY_PLAN.tasks},
                 plan=plans.STUDY_PLAN)  # fmt: skip
# The PAWS-X study (docs/pawsx-plan.md): the study's settings, all 2,000 pairs of every test (as XTREME scores them)
# and of English dev, English test reported apart.
PAWSX = Protocol(
    flags={**STUDY_COMMON, "--max_eval_samples": "2000"},
    task_flags={"pawsx": {"--eval_languages": f"{TRAIN_LANGUAGE},{PAWSX_LANGUAGES}"}},
    plan=plans.PAWSX_PLAN,
)

# The UDPOS replication (docs/replication-plan.md): the study's UDPOS settings, its budget written out (the study read
# it off its curve), and the kit's languages the study never scored evaluated too (reported apart, never tested).
REPLICATION = Protocol(
    flags=STUDY_COMMON,
    task_flags={plans.REPLICATION_PLAN.task: {
        "--max_train_samples": str(plans.REPLICATION_PLAN.budget[0]),
        "--num_train_epochs": str(plans.REPLICATION_PLAN.budget[1]),
        "--eval_languages": ",".join([TAGGING_LANGUAGES, *plans.REPLICATION_PLAN.descriptive_languages]),
    }},
)  # fmt: skip

# XTREME's recipe (Hu et al. 2020, their scripts): mBERT, lr 2e-5, batch 32, length 128, 10 epochs for tagging, 5 for
# sentence pairs; all training data and every evaluation language.
FULL_COMMON = {"--model_name_or_path": "bert-base-multilingual-cased", "--learning_rate": "2e-5",
               "--per_device_train_batch_size": "32", "--per_device_eval_batch_size": "64", "--max_seq_length": "128",
               "--train_sampling_strategy": "random"}  # fmt: skip
FULL = Protocol(
    flags=FULL_COMMON,
    task_flags={
        "udpos": {"--num_train_epochs": "10"},
        "panx": {"--num_train_epochs": "10"},
        "xnli": {"--num_train_epochs": "5"},
        "pawsx": {"--num_train_epochs": "5"},
    },  # fmt: skip
)
PROTOCOLS = {"small": SMALL, "study": STUDY, "pawsx": PAWSX, "replication": REPLICATION, "full": FULL}


def parse_seeds(spec: str) -> list[int]:
    """'1-5' or '1,2,3' -> [1, 2, 3, ...]."""
    seeds = []
    for part in spec.split(","):
        start, _, end = part.partition("-")
        seeds += list(range(int(start), int(end or start) + 1))
    return seeds


# A run name's qualifiers, and the harness flags of the same names (given only where they differ from the default).
QUALIFIER_DEFAULTS = {"aif_reduction": DEFAULT_REDUCTION, "aif_norm": DEFAULT_NORM,
                      "label_alignment": DEFAULT_LABEL_ALIGNMENT, "lora_r": 0}  # fmt: skip


def harness_flags(name: str, learning_rate: float, search_layers: str) -> dict[str, str]:
    """The harness flags that make the configuration `name` (besides the protocol's)."""
    if name == LAYER_SEARCH:  # one shared model; its chosen head is kept (and evaluated) as one-pass-*
        # No `last` among the layers: the shared model always has the stock head, and `last` would also train the
        # baseline in this process (the `baseline` configuration's job), as the runs archived before 2026-11-26 did.
        return {"--layer_search": "one_pass", "--layer_search_then": "keep", "--fusion_layers": search_layers}
    settings = configuration_of(name)
    qualifiers = {f"--{setting}": str(settings[setting]) for setting, default in QUALIFIER_DEFAULTS.items()
                  if settings[setting] != default}  # fmt: skip
    if settings["fusion_method"] is None:
        return {"--fusion_layers": "last", **qualifiers}
    flags = {"--fusion_layers": str(settings["fusion_layer"] or 1), "--fusion_method": settings["fusion_method"],
             "--aif_gate": settings["aif_gate"], "--aif_gate_init": str(settings["aif_gate_init"]), **qualifiers}  # fmt: skip
    if settings["fusion_lr_factor"]:
        flags["--fusion_learning_rate"] = str(settings["fusion_lr_factor"] * learning_rate)
    return flags


def run(command: list[str], run_dir: Path, threads: int, keep_models: bool) -> int:
    """
    One harness process. Each stretch of a run (a process, to its exit) appends its wall and CPU seconds (user and
    system, every thread; far less moved by other work on the machine than wall time) to `stretches.jsonl`; a
    finished run's totals over its stretches, evaluation included, go to `wall_time.json`.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(run_dir / "log.txt", "a") as log:
        returncode = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=environment).returncode
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    stretch = {"seconds": round(time.perf_counter() - start, 1), "cpu_seconds": round(cpu, 1), "threads": threads,
               "exit": returncode}  # fmt: skip
    with open(run_dir / "stretches.jsonl", "a") as stretches:
        stretches.write(json.dumps(stretch) + "\n")
    if returncode == 0:
        lines = (run_dir / "stretches.jsonl").read_text().splitlines()
        made = [json.loads(line) for line in lines if line.endswith("}")]  # a killed benchmark may leave a torn line
        totals = {key: round(sum(s[key] for s in made), 1) for key in ("seconds", "cpu_seconds")}
        write_atomically(run_dir / "wall_time.json", json.dumps({**totals, "stretches": len(made)}) + "\n")
    if returncode == 0 and not keep_models:
        for folder in run_dir.glob("checkpoint-*"):
            shutil.rmtree(folder)
        for weights in run_dir.glob("model/*.safetensors"):
            weights.unlink()
    return returncode


def check_planned(plan: plans.StudyPlan, names: list[str], seeds: list[int]) -> None:
    """
    Refuse (SystemExit naming them) runs a pre-registered plan does not have: past its layer choice while its number
    of seeds awaits a dated decision (`seeds_decision`), and any seed outside 1 to `seeds_upper_bound`: none is added
    later.
    """
    if plan.seeds_decision == "":
        choice = {name for name, _ in plan.choice_runs}
        beyond = [name for name in names if name not in choice]
        beyond += [f"seed {seed}" for seed in seeds if seed not in plan.choice_seeds]
        if beyond:
            raise SystemExit(
                f"{', '.join(beyond)}: this plan's number of seeds awaits its dated decision (plans.StudyPlan."
                "seeds_decision); until it is written, only the curve and the layer choice run"
            )
    beyond = [seed for seed in seeds if not 1 <= seed <= plan.seeds_upper_bound]
    if beyond:
        raise SystemExit(
            f"seeds {beyond}: this plan runs seeds 1 to {plan.seeds_upper_bound} at most (plans.StudyPlan."
            "seeds_upper_bound), fixed before its comparisons; a failed run is rerun with its own seed"
        )


# Run in a child process by `device_here`: argv[1] is "true" for --use_cpu, argv[2] an output_dir it never writes.
DEVICE_PROBE = """
import sys
from transformers import TrainingArguments
from dlfa_zero_shot.training import device_name
arguments = TrainingArguments(output_dir=sys.argv[2], use_cpu=sys.argv[1] == "true", report_to="none")
print(device_name(arguments.device))
"""


@functools.cache
def device_here(use_cpu: bool) -> str:
    """
    The device a harness run would train on here (`training.device_name` of the `TrainingArguments` it builds),
    asked of a short-lived child process: `TrainingArguments.device` sets up CUDA, and a context held by this
    long-lived process would take GPU memory from the runs it starts, and in exclusive-process mode the GPU itself.
    """
    probe = [sys.executable, "-c", DEVICE_PROBE, str(use_cpu).lower(), str(ROOT / "benchmarks")]
    done = subprocess.run(probe, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not done.stdout.strip():
        raise SystemExit(f"cannot tell which device a run would train on here:\n{done.stderr.strip()}")
    return done.stdout.strip().splitlines()[-1]


@functools.cache
def made_here(backbone: str, use_cpu: bool) -> dict:
    """
    What a harness run of `backbone` would be made by here, in `provenance.made_by`'s terms (the data's digests
    aside: they are each run's own files), with the code files behind the digest and the device it would train on
    (`device_here`). The backbone's digests are those of the offline backbone (converted here first where it is not
    yet, as the harness's first run would) or a local folder; a Hub name has none here (nor in the runs), so its
    revision is not checked.
    """
    from dlfa_zero_shot.offline_backbone import OFFLINE_PREFIX, resolve_backbone

    folder = resolve_backbone(backbone) if backbone.startswith(OFFLINE_PREFIX) else backbone
    return {
        **provenance.code_and_versions(HARNESS),
        "backbone_sha256": provenance.backbone_files(folder),
        "device": device_here(use_cpu),
    }


# Where the runs and the data lie is no setting: the data files are compared by their digests instead.
PATH_FLAGS = ("--output_dir", "--data_dir")


def finished_run_differences(result: dict, arguments: list[str], data_dir: Path | None) -> list[str]:
    """
    Why a finished run (its results.json, `result`) is not the one the harness `arguments` plan now, by what the
    harness itself checks before it reuses a run (`runs.reuse_or_claim`): the command line it records (paths aside:
    `PATH_FLAGS`; its settings follow from it and the code), what made it (`provenance.made_by`: code, versions,
    backbone) and its device against `made_here`, and each data file it read against the file under `data_dir` now
    (None: a Hub dataset, whose files have no digest here). Empty: it may be skipped, or decide a setting of the runs
    planned (`deciding_results`). A run that records no provenance (made before 2026-12-06) cannot be checked and is
    refused.
    """
    made = result.get("provenance")
    if not made:
        return ["it records no provenance (runs made before 2026-12-06 do not): it cannot be checked"]
    planned = flag_values(arguments)
    now = made_here(planned["--model_name_or_path"], planned.get("--use_cpu") == "true")
    try:
        recorded = {**provenance.made_by(made), "device": result.get("device")}
        differences = differing_flags(made["argv"], arguments, ignored=PATH_FLAGS)
    except (KeyError, TypeError, AttributeError) as error:
        return [f"its provenance cannot be read ({type(error).__name__}: {error})"]
    if recorded["code_sha256"] != now["code_sha256"]:
        files = made.get("code_files") or {}
        changed = sorted(name for name in files.keys() | now["code_files"].keys()
                         if files.get(name) != now["code_files"].get(name))  # fmt: skip
        differences.append(f"the harness code differs ({', '.join(changed)})")
    differences += [f"{name} {recorded['versions'].get(name)} then, {now['versions'].get(name)} now"
                    for name in sorted(recorded["versions"].keys() | now["versions"].keys())
                    if recorded["versions"].get(name) != now["versions"].get(name)]  # fmt: skip
    if recorded["backbone_sha256"] != now["backbone_sha256"]:
        differences.append(f"the backbone's files differ from {planned['--model_name_or_path']}'s here")
    if recorded["device"] != now["device"]:
        differences.append(f"device: recorded {recorded['device']!r}, here {now['device']!r}")
    for key, digest in recorded["data_sha256"].items():
        file = data_dir / described_file(made["data"][key].get("file", "")) if data_dir else None
        if digest and file and (not file.is_file() or provenance.file_sha256(file) != digest):
            differences.append(f"its {key} data {file} is missing or has changed since")
    return differences


@dataclass(frozen=True)
class PlannedRun:
    """One harness run: its folder (`output_dir / name`) and its flags (the protocol's and the configuration's)."""

    output_dir: Path
    name: str
    flags: dict[str, str]

    @property
    def run_dir(self) -> Path:
        return self.output_dir / self.name


def configuration_run(task_dir: Path, base: dict[str, str], name: str, seed: int, search_layers: str) -> PlannedRun:
    """The run of configuration `name` at `seed` over the protocol's flags `base` (its budget included)."""
    flags = harness_flags(name, float(base["--learning_rate"]), search_layers)
    return PlannedRun(task_dir / f"seed-{seed}", name, {**base, **flags, "--seed": str(seed)})


def curve_runs(protocol: Protocol, task: str, task_dir: Path) -> list[PlannedRun]:
    """The baseline's learning curve (`CURVE`), seed 1, scored on English alone."""
    base, (sizes, epochs) = protocol.arguments(task), CURVE[task]
    return [
        PlannedRun(task_dir / "curve" / f"n-{size}" / "seed-1", BASELINE,
                   {**base, "--max_train_samples": str(size), "--num_train_epochs": str(epochs), "--seed": "1",
                    "--fusion_layers": "last", "--eval_languages": TRAIN_LANGUAGE})
        for size in sizes
    ]  # fmt: skip


def harness_arguments(run: PlannedRun, args: argparse.Namespace) -> list[str]:
    """The harness command line of `run` (after the script): its flags, the data source, and the benchmark's own."""
    source = {"--dataset_name": args.dataset_name} if args.dataset_name else {"--data_dir": str(args.data_dir)}
    flags = {**run.flags, **source, "--output_dir": str(run.output_dir), "--do_train": "true", "--do_eval": "true",
             "--disable_tqdm": "true", "--report_to": "none"}  # fmt: skip
    if args.use_cpu:
        flags["--use_cpu"] = args.use_cpu
    return [part for item in flags.items() for part in item]


def finished_result(run_dir: Path) -> dict | None:
    """
    A finished run's results.json; None where the run is not finished, or is damaged (the harness sets a damaged
    results.json aside and makes the run again).
    """
    try:
        result = read_json(run_dir / "results.json")
    except (FileNotFoundError, DamagedFileError):
        return None
    return result if isinstance(result, dict) else None  # (not a dict: damaged, as the harness reads it)


STALE = (
    "finished runs that are not the runs planned now; they are not reused (move them out of the runs folder to run "
    "them again, or run them where the code, versions, backbone and device that made them are):\n"
)


def deciding_results(runs: list[PlannedRun], decides: str, args: argparse.Namespace) -> list[tuple[PlannedRun, dict]]:
    """
    (run, results.json) of each finished one of `runs`, which `decides` a setting of the runs planned (the budget, the
    layer): read from the run's own folder, and the run planned now (`finished_run_differences`), else a SystemExit
    naming every one that is not, before any run. A results.json that does not read back is named too, never passed
    over.
    """
    data_dir = None if args.dataset_name else args.data_dir
    finished, stale = [], []
    for run in runs:
        result = finished_result(run.run_dir)
        if result is None and (run.run_dir / "results.json").exists():
            stale.append(f"{run.run_dir} (read for {decides}): its results.json is damaged (the harness sets it aside "
                         "and makes the run again)")  # fmt: skip
        if result is None:
            continue
        differences = finished_run_differences(result, harness_arguments(run, args), data_dir)
        if differences:
            stale.append(f"{run.run_dir} (read for {decides}): {'; '.join(differences)}")
        finished.append((run, result))
    if stale:
        raise SystemExit(STALE + "\n".join(stale))
    return finished


def study_budget(protocol: Protocol, task_dir: Path, args: argparse.Namespace) -> dict[str, str]:
    """
    A task's training budget, chosen by the plan's rule on its learning curve: the runs of `curve_runs`, every one
    finished and the run planned now, and no other run under `curve/`.
    """
    curve = curve_runs(protocol, args.task, task_dir)
    planned = {run.run_dir / "results.json" for run in curve}
    strays = [
        str(path.parent) for path in sorted((task_dir / "curve").glob("*/*/*/results.json")) if path not in planned
    ]
    if strays:
        raise SystemExit(f"runs under {task_dir / 'curve'} that are no run of this protocol's curve, which the budget "
                         f"is read from (move them out of the runs folder): {', '.join(strays)}")  # fmt: skip
    finished = deciding_results(curve, "the budget", args)
    done = {run.run_dir for run, _ in finished}
    missing = [run.output_dir.parent.name for run in curve if run.run_dir not in done]
    if missing:
        raise SystemExit(f"the learning curve under {task_dir / 'curve'} is not finished (missing "
                         f"{', '.join(missing)}): run --phase curve first")  # fmt: skip
    points = [point for run, result in finished
              for point in analysis.curve_points(int(run.flags["--max_train_samples"]), result)]  # fmt: skip
    if not points:
        raise SystemExit(f"the learning-curve runs under {task_dir / 'curve'} record no English dev score by epoch")
    budget = analysis.choose_budget(points, protocol.plan.budget_margin)
    print(f"{task_dir.name}: budget {budget['examples']} examples x {budget['epochs']} epochs (English dev "
          f"{budget['english_dev']:.2f}, curve best {budget['plateau']:.2f})", flush=True)  # fmt: skip
    return {"--max_train_samples": str(budget["examples"]), "--num_train_epochs": str(budget["epochs"])}


def is_aif_run(name: str) -> bool:
    """Whether `name` is the run name of DLFA at a layer (`aif-layer-08`, `aif-layer-08+r8`)."""
    try:
        return name.startswith(AIF_PREFIX) and configuration_of(name)["fusion_layer"] is not None
    except ValueError:  # not a run name: a folder moved aside, say
        return False


def chosen_layer(task_dir: Path, plan: plans.StudyPlan | None, base: dict[str, str], args: argparse.Namespace) -> int:
    """
    The DLFA layer chosen on English dev among runs read from their own folders, each the run planned now over the
    protocol's flags `base`: the plan's choice (`StudyPlan.choice_runs`, all finished) under a protocol with a plan,
    else among the finished `aif-layer-*` runs over the seeds they all have.
    """
    if plan:
        candidates = plan.choice_runs
    else:
        found = [(path.parent.parent.name, path.parent.name)
                 for path in sorted(task_dir.glob(f"seed-*/{AIF_PREFIX}*/results.json"))]  # fmt: skip
        # a run's own folder alone: not `aif-layer-10.old/`, `seed-1.old/` nor `seed-01/`
        candidates = [(name, int(folder.removeprefix("seed-"))) for folder, name in found
                      if re.fullmatch(r"seed-[1-9]\d*", folder) and is_aif_run(name)]  # fmt: skip
    runs = [configuration_run(task_dir, base, name, seed, args.search_layers) for name, seed in candidates]
    results: dict[str, dict[int, dict]] = {}
    for run, result in deciding_results(runs, "the layer", args):
        results.setdefault(run.name, {})[int(run.flags["--seed"])] = result
    if plan:
        chosen, missing = plans.study_layer_choice(results, plan)
        if missing:
            raise SystemExit(f"{task_dir}: the study's layer choice is not finished (missing {', '.join(missing)}): "
                             "run it before any '-best' configuration")  # fmt: skip
        print(f"{task_dir.name}: the study's layer choice on English dev is {chosen}", flush=True)
        return layer_of(chosen)
    if not results:
        raise SystemExit(f"no finished {AIF_PREFIX}* runs under {task_dir}: run the layer choice first")
    seeds, chosen = analysis.select_on_english_dev(results)
    print(f"{task_dir.name}: English dev chooses {chosen} among {sorted(results)} (seeds {seeds})", flush=True)
    return layer_of(chosen)


def planned_runs(args: argparse.Namespace, protocol: Protocol, task_dir: Path) -> list[PlannedRun]:
    """
    Every run the command asks for, finished ones included. The settings read off finished runs (a plan's budget, the
    layer of a `-best` configuration) are read only from the runs planned now (`deciding_results`).
    """
    if args.phase == "curve":
        if not protocol.plan:
            planned = sorted(name for name, protocol in PROTOCOLS.items() if protocol.plan)
            raise SystemExit(f"--phase curve belongs to the protocols with a plan: {planned}")
        return curve_runs(protocol, args.task, task_dir)
    base, names = protocol.arguments(args.task), args.configs.split(",")
    if protocol.plan:
        check_planned(protocol.plan, names, parse_seeds(args.seeds))
        base = {**base, **study_budget(protocol, task_dir, args)}
    if any("-best" in name for name in names):
        layer = chosen_layer(task_dir, protocol.plan, base, args)
        names = [name.replace("-best", f"-{layer:02d}") for name in names]
    # seed-major: a partial benchmark has every configuration at equal seeds
    return [configuration_run(task_dir, base, name, seed, args.search_layers)
            for seed in parse_seeds(args.seeds) for name in names]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocol", required=True, choices=sorted(PROTOCOLS))
    parser.add_argument("--task", required=True)
    parser.add_argument(
        "--phase", choices=("runs", "curve"), default="runs", help="'curve': the baseline learning curve"
    )
    parser.add_argument("--configs", default="baseline", help="comma-separated run names; 'best' for the chosen layer")
    parser.add_argument("--seeds", default="1", help="'1-5' or '1,2,3'")
    parser.add_argument(
        "--search_layers", default="2,4,6,8,10,11", help="the candidate layers of the 'layer-search' configuration"
    )
    parser.add_argument("--data_dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--dataset_name", help="read XTREME from the Hub (e.g. google/xtreme) instead of --data_dir")
    parser.add_argument("--runs_dir", type=Path, default=DEFAULT_RUNS)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads a run")
    parser.add_argument("--keep_models", action="store_true", help="keep each run's weights and checkpoints")
    parser.add_argument(
        "--use_cpu",
        choices=("true", "false"),
        help="override the protocol's device: 'false' lets the Trainer take a GPU (the small and study protocols pin "
        "the CPU, so that runs compared with each other ran on one kind of device)",
    )
    parser.add_argument("--dry_run", action="store_true", help="print the harness commands, run nothing")
    args = parser.parse_args()
    protocol = PROTOCOLS[args.protocol]
    if not args.dataset_name and not args.data_dir.is_dir():
        raise SystemExit(f"--data_dir {args.data_dir} is not a folder laid out as ../shared/data/xtreme-lite")

    task_dir = args.runs_dir / args.protocol / args.task
    pending, stale = [], []
    for run_to_make in planned_runs(args, protocol, task_dir):
        arguments = harness_arguments(run_to_make, args)
        result = finished_result(run_to_make.run_dir)
        if result is None:
            pending.append(([sys.executable, str(HARNESS), *arguments], run_to_make.run_dir))
            continue
        differences = finished_run_differences(result, arguments, None if args.dataset_name else args.data_dir)
        if differences:
            stale.append(f"{run_to_make.run_dir}: {'; '.join(differences)}")
    if stale:  # before any run: a finished run is skipped only where it is the run planned now
        raise SystemExit(STALE + "\n".join(stale))
    print(f"{args.protocol}/{args.task}: {len(pending)} runs to do", flush=True)
    failed = 0
    for command, run_dir in pending:
        if args.dry_run:
            print(" ".join(command))
            continue
        returncode = run(command, run_dir, args.threads, args.keep_models)
        status = (
            f"done ({json.loads((run_dir / 'wall_time.json').read_text())['seconds']:.0f} s)"
            if returncode == 0
            else f"FAILED (exit {returncode}, see {run_dir / 'log.txt'})"
        )
        failed += returncode != 0
        print(f"{run_dir.relative_to(args.runs_dir)}: {status}", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
