"""
Write a Hub model card (README.md with YAML metadata and a `model-index`) into a saved zero-shot run, from the
template `model_cards/dlfa_model_card.md` (installed beside the package); build the folder `--push_to_hub` uploads and
the offline Hub-cache dry run.
"""

import hashlib
import shutil
from pathlib import Path
from string import Template

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.file_download import repo_folder_name

from .files import staged_folder, write_atomically
from .provenance import PACKAGES_ROOT
from .tasks import CUSTOM_KINDS, TASKS, TRAIN_LANGUAGE, TaskSpec, custom_task


# The card's text, a data file: `model_cards/` holds no code and is installed beside this package (package data).
TEMPLATE = PACKAGES_ROOT / "model_cards" / "dlfa_model_card.md"
PIPELINE_TAGS = {"token": "token-classification", "pair": "text-classification"}  # task kind -> pipeline, task type
HUB_METRICS = {"tagging": "seqeval", "classification": "accuracy"}  # metric family -> the Hub's metric id
# The Hub data set a card names: XTREME's (its config from the task's `HubLayout`), or for a task without one:
XTREME = "google/xtreme"
OTHER_DATASETS = {"udpos_ud": ("universal_dependencies", "gsd")}  # task -> (data set, config)
CUSTOM_DATASET = ("custom", "custom")  # a user's own files
KNOWN_BASE_MODELS = {"multilingual-e5-small": ("intfloat/multilingual-e5-small", "mit")}


def task_spec(task: str) -> TaskSpec:
    """A task's entry in `TASKS`, or the task of a user's own files (`--task tagging` or `pairs`)."""
    return TASKS[task] if task in TASKS else custom_task(task, CUSTOM_KINDS[task], ())


def hub_dataset(spec: TaskSpec, language: str) -> tuple[str, str]:
    """(Hub data set, config) of a task's data in `language`: XTREME's config from the task's `HubLayout`, if any."""
    if spec.hub is not None:
        return XTREME, spec.hub.config_name(language)
    return OTHER_DATASETS.get(spec.name, CUSTOM_DATASET)


def eval_result(spec: TaskSpec, result: dict, language: str) -> EvalResult:
    """One language's score (`result` as in results.json) as a model-index entry of the Hub."""
    dataset, config = hub_dataset(spec, language)
    split = result.get("eval_splits", {}).get(language)  # the logical split evaluated; the Hub's name for it below
    return EvalResult(
        task_type=PIPELINE_TAGS[spec.kind],
        task_name=spec.presentation.title,
        dataset_type=dataset,
        dataset_name=spec.presentation.dataset,
        dataset_config=config,
        dataset_split=(spec.hub.split_names if spec.hub else {}).get(split, split),
        metric_type=spec.main_score,
        metric_value=round(100 * result["scores"][language][spec.main_score], 2),
        metric_name=f"{spec.metric_name} ({language}{'' if language == TRAIN_LANGUAGE else ', zero-shot'})",
    )


def card_metadata(task: str, result: dict, model_name: str, base_model: str, license_name: str) -> ModelCardData:
    """The card's YAML metadata: the Hub's fields and a `model-index` with one result per evaluated language."""
    spec = task_spec(task)
    languages = [language for language in result["scores"] if language != "selection"]
    return ModelCardData(
        language=sorted(set(languages) | {TRAIN_LANGUAGE}),
        license=license_name,
        library_name="transformers",
        pipeline_tag=PIPELINE_TAGS[spec.kind],
        base_model=base_model,
        datasets=[hub_dataset(spec, TRAIN_LANGUAGE)[0]],
        metrics=[HUB_METRICS[spec.metric]],
        tags=["dlfa", "cross-lingual", "zero-shot", task, "custom_code"],
        model_name=model_name,
        eval_results=[eval_result(spec, result, language) for language in languages],
    )


def results_table(result: dict, metric: str) -> str:
    languages = [language for language in result["scores"] if language != "selection"]
    header = "| " + " | ".join(["en dev (selection)", *languages]) + " |"
    cells = [result["scores"]["selection"][metric], *(result["scores"][language][metric] for language in languages)]
    return "\n".join(
        [header, "|" + "---|" * (len(languages) + 1), "| " + " | ".join(f"{100 * v:.2f}" for v in cells) + " |"]
    )


def write_model_card(
    model_dir: Path, task: str, result: dict, config, base_model: str, repo_id: str | None = None
) -> Path:
    """Write `model_dir/README.md` for one finished run (`result` as in its results.json)."""
    model_dir = Path(model_dir)
    base_name, license_name = KNOWN_BASE_MODELS.get(
        Path(base_model.removeprefix("offline:")).name, (base_model, "apache-2.0")
    )
    repo_id = repo_id or model_dir.parent.name
    spec = task_spec(task)
    is_dlfa = getattr(config, "fusion_layer", None) is not None
    token_task = spec.kind == "token"
    auto_class = "AutoModelForTokenClassification" if token_task else "AutoModelForSequenceClassification"
    average = result.get("target_average")
    body = Template(TEMPLATE.read_text()).substitute(
        model_name=repo_id,
        head_description="tagger" if token_task else "classifier",
        task_title=spec.presentation.title,
        base_model=base_name,
        fusion_layer=config.fusion_layer if is_dlfa else "none (last-layer baseline)",
        num_layers=config.num_hidden_layers,
        fusion_method=getattr(config, "fusion_method", "-"),
        aif_gate=getattr(config, "aif_gate", "-"),
        aif_gate_init=getattr(config, "aif_gate_init", "-"),
        aif_norm=getattr(config, "aif_norm", "-"),
        aif_reduction=getattr(config, "aif_reduction", "-"),
        auto_class=auto_class,
        repo_id=repo_id,
        pipeline_line=(
            # the folder's own pipeline (pipeline_dlfa.py): one tag per word, read as the harness scored it
            f'tag = pipeline("token-classification", model="{repo_id}", trust_remote_code=True)\n'
            'tag(["Der", "Hund", "schläft", "."], is_split_into_words=True, word_level=True)  # one tag per word'
            if token_task
            else f'predict = pipeline("{PIPELINE_TAGS[spec.kind]}", model=model, tokenizer=tokenizer)'
        ),
        metric_name=spec.metric_name,
        results_table=results_table(result, spec.main_score),
        target_average="-" if average is None else f"{100 * average:.2f}",
        train_files=result.get("files", {}).get("train", "-"),
        selection_file=result.get("files", {}).get("selection", "-"),
        seed=result.get("seed", "-"),
        device=result.get("device", "-"),
    )
    metadata = card_metadata(task, result, repo_id, base_name, license_name)
    path = model_dir / "README.md"
    card = ModelCard(f"---\n{metadata.to_yaml()}\n---\n\n{body}", ignore_metadata_errors=False)
    return write_atomically(path, str(card))


def stage_hub_folder(model_dir: Path, target: Path) -> Path:
    """
    The folder `--push_to_hub` uploads, built first: the run's model folder without its training arguments, its card
    checked by `huggingface_hub`'s own offline parsing of the metadata (`ModelCard.load`: the YAML, the model-index
    as evaluation results). Raises ValueError if the card's metadata does not parse.
    """
    target = Path(target)
    with staged_folder(target) as staging:
        shutil.copytree(model_dir, staging, ignore=shutil.ignore_patterns("training_args.bin"), dirs_exist_ok=True)
    card = ModelCard.load(target / "README.md", ignore_metadata_errors=False)
    if not card.data.eval_results:
        raise ValueError(f"{target / 'README.md'}: the model card has no model-index results")
    return target


def write_to_hub_cache(folder: Path, cache: Path, repo_id: str) -> Path:
    """
    Write `folder` into a Hub cache (`HF_HUB_CACHE` layout) as `repo_id`'s `main`; returns the snapshot folder.

    Written by hand: huggingface_hub has no public function that puts local files into its cache (`hf_hub_download`
    and `snapshot_download` only fetch from a Hub). The files are copied into the snapshot, without `blobs/`, as the
    library's own cache does where symlinks are not available; its readers (`try_to_load_from_cache`,
    `scan_cache_dir`, `from_pretrained` offline) take that layout.
    """
    digest = hashlib.sha1()
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    commit = digest.hexdigest()
    repo = Path(cache) / repo_folder_name(repo_id=repo_id, repo_type="model")
    snapshot = repo / "snapshots" / commit
    with staged_folder(snapshot) as staging:
        shutil.copytree(folder, staging, dirs_exist_ok=True)
    write_atomically(repo / "refs" / "main", commit)
    return snapshot
