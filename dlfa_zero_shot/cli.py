"""
The zero-shot harness as a library: `main(argv)` parses the command line (`arguments.py`), resolves the backbone,
loads and featurizes the task's data, plans and trains (or evaluates) the runs, and writes the sweep's reports.
`examples/run_zero_shot.py` is the command that calls it (`python -m dlfa_zero_shot.cli` runs it too); tests call
it in-process.

Fine-tune a DLFA head (or the last-layer baseline) on English and evaluate it zero-shot on other languages, with the
standard `Trainer`; `--fusion_layers` sweeps the fusion layer (the paper's Table 1), one model per layer.

    # offline, with the embedded multilingual backbone and local XTREME files
    python examples/run_zero_shot.py --task udpos --data_dir ../shared/data/xtreme-lite \\
        --model_name_or_path offline:multilingual-e5-small --fusion_layers 10,last --do_train --do_eval \\
        --output_dir runs/udpos

    # evaluate (and write predictions of) a saved run or a Hub checkpoint, without training
    python examples/run_zero_shot.py --task udpos --data_dir ../shared/data/xtreme-lite \\
        --model_name_or_path runs/udpos/aif-layer-10/model --do_eval --do_predict --output_dir runs/udpos-eval

Protocol: training, checkpoint selection and layer selection use English only; every other language is zero-shot.
Runs are named by `dlfa_zero_shot.names.run_name` (`baseline`, `aif-layer-10`, `concat-layer-10`, ...). A
finished run is read back from its `results.json`; an unfinished one resumes from its last complete Trainer checkpoint.
SIGTERM and Ctrl-C stop a run at a clean point; a second process is refused a run folder one holds; a damaged file or a
full disk is named (docs/usage.md, "Faults").
"""

import argparse
import contextlib
import dataclasses
import logging
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import transformers
from transformers import HfArgumentParser, TrainingArguments

from modeling_dlfa.pipeline_dlfa import label_alignment_of

from . import analysis, names, provenance
from .arguments import (
    BASELINE_LAYER,
    CHECKPOINT,
    LORA_LEARNING_RATE,
    TRAINING_DEFAULTS,
    DataArguments,
    ModelArguments,
    parse_layers,
    run_names,
    run_settings,
    with_label_alignment,
)
from .backbone import Backbone, prepare_backbone
from .data import FileSource, HubSource, LocalSource, labels_of, load_task_data
from .features import featurize
from .files import DamagedFileError, DiskFullError
from .heads import (
    FusionSettings,
    build_layer_search,
    build_model,
    check_fusable,
    check_padding_id,
    checkpoint_labels,
    checkpoint_name,
    default_fusion_layer,
    load_finetuned,
    lora_target_modules,
)
from .offline_backbone import resolve_backbone
from .run_lock import RunFolders
from .runs import LoraSettings, Sweep, push_selected_run, run_layer_search, run_one, write_reports
from .stopping import RunStopped, StopOnSignal
from .tasks import CUSTOM_KINDS, TASKS, TaskSpec, custom_task


logger = logging.getLogger("run_zero_shot")


def training_layers(backbone: Backbone, fusion_layers: str) -> list[int | None]:
    """The layers of `--fusion_layers` (None: the baseline), checked against the backbone's depth."""
    return parse_layers(fusion_layers, backbone.config.num_hidden_layers, default_fusion_layer(backbone))


def fusion_settings(model_args: ModelArguments) -> FusionSettings:
    """The DLFA fields the arguments set on every DLFA head (`--fusion_method`, `--aif_*`), read once."""
    fields = dataclasses.fields(FusionSettings)
    return FusionSettings(**{field.name: getattr(model_args, field.name) for field in fields})


def plan_training(
    sweep: Sweep,
    backbone: Backbone,
    layer_names: dict[int | None, str],
    fusion: FusionSettings,
    model_args: ModelArguments,
    data_args: DataArguments,
) -> dict[str, dict]:
    """
    The runs a training call makes, by name: one per `--fusion_layers` entry of `layer_names` (a DLFA layer or the
    baseline, and its run name: `arguments.run_names`), or, after a one-pass layer search, the chosen layer (retrained,
    or the search's head kept) and the baseline if asked. Each entry: the model's factory, and whether it trains.
    """
    task, lr, freeze = sweep.data.task, sweep.training_args.learning_rate, model_args.freeze_word_embeddings

    def settings_of(layer: int | str | None) -> dict:
        return run_settings(model_args, data_args, sweep.training_args, task, layer)

    kept = None
    if model_args.layer_search == "one_pass":
        candidates = [layer for layer in layer_names if layer is not None]
        search_layers = f"search:{','.join(map(str, candidates))}"
        heads = run_names([*candidates, None], model_args, data_args, task, lr)  # a distinct name each
        search = run_layer_search(
            sweep, settings_of(search_layers),
            lambda: build_layer_search(backbone, task, candidates, fusion, freeze),
            {str(layer or BASELINE_LAYER): name for layer, name in heads.items()},
            model_args.fusion_learning_rate,
        )  # fmt: skip
        chosen = next(layer for layer, name in heads.items() if name == search["chosen"])
        layer_names = {layer: heads[layer] for layer in [chosen] + ([None] if None in layer_names else [])}
        if model_args.layer_search_then == "keep":
            kept = layer_names.pop(chosen)
    plan = {}
    if kept:
        folder = str(Path(sweep.training_args.output_dir) / names.LAYER_SEARCH / "model")
        plan[names.ONE_PASS_PREFIX + kept] = {
            "model_factory": lambda: load_finetuned(folder, task, backbone.cache_dir, backbone.trust_remote_code),
            "do_train": False, "settings": settings_of(search_layers),
        }  # fmt: skip
    for layer, name in layer_names.items():
        plan[name] = {
            "model_factory": lambda layer=layer: build_model(backbone, task, layer, fusion, freeze),
            "do_train": True, "settings": settings_of(layer),
            "fusion_learning_rate": model_args.fusion_learning_rate if layer is not None else None,
        }  # fmt: skip
    return plan


def parse_arguments(argv: list[str] | None) -> tuple[ModelArguments, DataArguments, TrainingArguments]:
    parser = HfArgumentParser(
        (ModelArguments, DataArguments, TrainingArguments),
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(**TRAINING_DEFAULTS)
    model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    if model_args.lora_r:  # LoRA's own learning rate, unless --learning_rate says otherwise
        parser.set_defaults(learning_rate=LORA_LEARNING_RATE)
        model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    own_files = bool(data_args.train_file or data_args.validation_file or data_args.test_files)
    if data_args.task not in TASKS and not (own_files and data_args.task in CUSTOM_KINDS):
        raise ValueError(
            f"--task {data_args.task!r} is not supported: choose one of {sorted(TASKS)}, or with your own files "
            f"one of {sorted(CUSTOM_KINDS)}"
        )
    if sum(map(bool, (data_args.data_dir, data_args.dataset_name, own_files))) != 1:
        raise ValueError(
            "give exactly one data source: --data_dir (a folder laid out as ../shared/data/xtreme-lite), --dataset_name "
            "(XTREME on the Hub, 'google/xtreme'), or your own --train_file/--validation_file/--test_files"
        )
    if own_files and training_args.do_train and not data_args.train_file:
        raise ValueError("--do_train with your own files needs --train_file")
    if not (training_args.do_train or training_args.do_eval or training_args.do_predict):
        raise ValueError("nothing to do: pass --do_train, --do_eval and/or --do_predict")
    if model_args.lora_r and model_args.layer_search == "one_pass":
        raise ValueError(
            f"--lora_r {model_args.lora_r} with --layer_search one_pass: the one-pass search trains its shared encoder "
            "in full; search with --layer_search sweep, or search first and train the chosen layer with --lora_r"
        )
    if model_args.layer_search not in ("sweep", "one_pass") or model_args.layer_search_then not in ("retrain", "keep"):
        raise ValueError(
            f"--layer_search {model_args.layer_search!r} --layer_search_then {model_args.layer_search_then!r}: choose "
            "--layer_search sweep|one_pass and --layer_search_then retrain|keep"
        )
    return model_args, data_args, training_args


def data_source(data_args: DataArguments, backbone: Backbone) -> tuple[TaskSpec, LocalSource | HubSource | FileSource]:
    """The task and where its data comes from: local XTREME files, the Hub, or the user's own files."""
    if data_args.data_dir:
        return TASKS[data_args.task], LocalSource(data_args.data_dir)
    if data_args.dataset_name:
        return TASKS[data_args.task], HubSource(data_args.dataset_name, backbone.cache_dir)
    tests = {}
    for item in filter(None, (data_args.test_files or "").split(",")):
        language, separator, path = item.partition("=")
        if not separator or not language or not path:
            raise ValueError(f"--test_files: {item!r} is not LANGUAGE=PATH")
        tests[language.strip()] = path.strip()
    source = FileSource(data_args.train_file, data_args.validation_file, tests)
    kind = TASKS[data_args.task].kind if data_args.task in TASKS else CUSTOM_KINDS[data_args.task]
    if data_args.train_file:
        labels = labels_of(source.training_examples(kind))
    else:  # evaluation only: the checkpoint's labels
        labels = checkpoint_labels(backbone.config)
    return custom_task(data_args.task, kind, labels), source


def with_lora_targets(model_args: ModelArguments, backbone: Backbone) -> ModelArguments:
    """
    `model_args` with LoRA's target modules spelled out (under --lora_r, the encoder family's default where unset), so
    that the runs train and record the modules they adapt.
    """
    if not model_args.lora_r or model_args.lora_target_modules:
        return model_args
    targets = lora_target_modules(backbone.family)
    return dataclasses.replace(model_args, lora_target_modules=",".join(targets))


def run(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: TrainingArguments,
    argv: list[str],
    program: Path,
    stop: StopOnSignal,
    folders: RunFolders,
) -> dict:
    """
    The harness: the sweep's summary (or `{"runs": ...}` where no report is written). `argv` and `program` (the script
    that runs) are recorded in each run's provenance; `stop`: the signal handler `main` installs; `folders`: the run
    folders held.
    """
    with training_args.main_process_first(desc="preparing the backbone"):
        path = resolve_backbone(model_args.model_name_or_path, model_args.cache_dir)
    backbone = prepare_backbone(
        path,
        model_args.model_name_or_path,
        model_args.cache_dir,
        model_args.trust_remote_code,
        check_config=check_fusable if training_args.do_train else None,  # training builds heads: DLFA's families
    )  # its config and tokenizer, read once: everything below takes them from `backbone`
    if training_args.do_train:
        check_padding_id(backbone)
    task, source = data_source(data_args, backbone)
    if training_args.do_train:  # each run's name, every one its own, before any work
        data_args = with_label_alignment(data_args, task)
        layers = training_layers(backbone, model_args.fusion_layers)
        layer_names = run_names(layers, model_args, data_args, task, training_args.learning_rate)
        model_args = with_lora_targets(model_args, backbone)
        # the folders asked for: the runs' (the plan's names), or the one-pass search's (its runs follow its choice)
        first_names = [names.LAYER_SEARCH] if model_args.layer_search == "one_pass" else list(layer_names.values())
    else:  # a checkpoint is scored as it was trained to tag
        data_args = with_label_alignment(data_args, task, label_alignment_of(backbone.config))
        first_names = [checkpoint_name(backbone.config)]
    for name in first_names:
        folders.hold(Path(training_args.output_dir) / name)  # before any data is loaded: a busy folder stops us now
    data = load_task_data(
        task, source,
        eval_languages=data_args.eval_languages.split(",") if data_args.eval_languages else None,
        eval_splits=tuple(data_args.eval_split.split(",")) if data_args.eval_split else None,
        max_train_samples=data_args.max_train_samples, max_eval_samples=data_args.max_eval_samples,
        seed=training_args.seed, need_training=training_args.do_train,
    )  # fmt: skip
    with training_args.main_process_first(desc="tokenizing"):
        features = featurize(data, backbone.tokenizer, data_args.max_seq_length, data_args.label_alignment)
    output_dir = Path(training_args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    recorded = provenance.collect(argv, program, backbone.path, data.files, data.sha256)
    sweep = Sweep(data, features, backbone.tokenizer, training_args, backbone.name, recorded, folders, stop)

    if training_args.do_train:
        plan = plan_training(sweep, backbone, layer_names, fusion_settings(model_args), model_args, data_args)
    else:
        plan = {
            first_names[0]: {
                "model_factory": lambda: load_finetuned(
                    backbone.path, task, backbone.cache_dir, backbone.trust_remote_code, backbone.config
                ),
                "do_train": False,
                "settings": run_settings(model_args, data_args, training_args, task, CHECKPOINT),
            }
        }
    lora = LoraSettings(model_args.lora_r, model_args.lora_alpha, model_args.lora_dropout,
                        tuple(model_args.lora_target_modules.split(",")))  # fmt: skip
    for name in plan:  # every run folder of the call is held before any run starts (after a search: the chosen ones)
        folders.hold(sweep.run_dir(name))
    runs = {name: run_one(sweep, name, **entry, lora=lora) for name, entry in plan.items()}
    if not training_args.should_save or not (training_args.do_eval or training_args.do_predict):
        return {"runs": runs}
    summary = write_reports(runs, output_dir)
    print(analysis.sweep_table(runs, summary["selected_by_english_dev"]))
    selected = output_dir / str(summary["selected_by_english_dev"]) / "model"
    print(f"Wrote {output_dir / 'summary.md'}, {output_dir / 'summary.json'} and {output_dir / 'heatmap.png'}"
          + (f"; the model selected on English dev is {selected}" if selected.is_dir() else ""))  # fmt: skip
    if training_args.push_to_hub:
        repo_id = push_selected_run(
            output_dir, summary["selected_by_english_dev"], training_args, model_args.hub_dry_run
        )
        logger.info("pushed %s to the Hub as %s", summary["selected_by_english_dev"], repo_id)
    return summary


def main(argv: list[str] | None = None, program: Path | None = None) -> int:
    """
    The harness as a command (`argv`: its arguments, None: `sys.argv[1:]`; `program`: the script that calls it, recorded
    in each run's provenance and named in the resume hint, None: this module, `python -m dlfa_zero_shot.cli`).
    SIGTERM and Ctrl-C stop it at a clean point (`stopping.StopOnSignal`; the caller's handlers are back on return, and
    the run folders released); called off the main thread, which may not set a handler, it sets none, and SIGTERM ends
    the process at once as Python's default does. A stop, a full disk or a damaged file ends it with a message that
    says what happened and what to do, not a traceback. The root logger's handlers and level and transformers'
    verbosity, which it sets for its own messages, are the caller's again on return. Returns the exit code: 0, 1 (a
    full disk, a damaged file), or 128 + the signal's number (130 Ctrl-C, 143 SIGTERM).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    command = ["python", "-m", __spec__.name] if program is None else ["python", str(program)]
    program = Path(__file__) if program is None else program
    model_args, data_args, training_args = parse_arguments(argv)
    with caller_logging():
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
        transformers.utils.logging.set_verbosity(training_args.get_process_log_level())
        with StopOnSignal().installed() as stop, RunFolders(holds=training_args.should_save) as folders:
            try:
                run(model_args, data_args, training_args, argv, program, stop, folders)
            except RunStopped as stopped:
                again = shlex.join([*command, *argv])
                print(f"{stopped} To resume, run the same command again:\n  {again}", file=sys.stderr, flush=True)
                return stopped.exit_code
            except (DiskFullError, DamagedFileError) as error:
                print(error, file=sys.stderr, flush=True)
                return 1
    return 0


@contextlib.contextmanager
def caller_logging() -> Iterator[None]:
    """The root logger's handlers and level and transformers' verbosity as they were before the block, after it."""
    root = logging.getLogger()
    handlers, level, verbosity = list(root.handlers), root.level, transformers.utils.logging.get_verbosity()
    try:
        yield
    finally:
        for handler in [handler for handler in root.handlers if handler not in handlers]:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(level)
        transformers.utils.logging.set_verbosity(verbosity)


if __name__ == "__main__":
    sys.exit(main())
