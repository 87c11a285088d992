"""Write a Hub model card (README.md with YAML metadata and a `model-index`) into a saved zero-shot run."""

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from string import Template

import yaml


TEMPLATE = Path(__file__).with_name("dlfa_model_card.md")


@dataclass(frozen=True)
class TaskCard:
    title: str
    pipeline_tag: str  # also the model-index task type
    dataset: str  # Hub id of the data set
    dataset_config: str
    metric: str  # key in results.json
    metric_name: str


TASK_CARD = {
    "udpos": TaskCard(
        "part-of-speech tagging (UDPOS)", "token-classification", "google/xtreme", "udpos", "f1", "seqeval F1"
    ),
    "udpos_ud": TaskCard(
        "part-of-speech tagging (UD)", "token-classification", "universal_dependencies", "gsd", "f1", "seqeval F1"
    ),
    "panx": TaskCard(
        "named entity recognition (PAN-X)", "token-classification", "google/xtreme", "PAN-X", "f1", "seqeval F1"
    ),
    "xnli": TaskCard(
        "natural language inference (XNLI)", "text-classification", "google/xtreme", "XNLI", "accuracy", "accuracy"
    ),
    "xnli_dev": TaskCard(
        "natural language inference (XNLI, trained on its English dev set)",
        "text-classification",
        "google/xtreme",
        "XNLI",
        "accuracy",
        "accuracy",
    ),
    # a user's own files (--task tagging / pairs)
    "tagging": TaskCard(
        "token classification (your data)", "token-classification", "custom", "custom", "f1", "seqeval F1"
    ),
    "pairs": TaskCard(
        "sentence-pair classification (your data)", "text-classification", "custom", "custom", "accuracy", "accuracy"
    ),  # fmt: skip
    "pawsx": TaskCard(
        "paraphrase identification (PAWS-X)", "text-classification", "google/xtreme", "PAWS-X", "accuracy", "accuracy"
    ),
}
KNOWN_BASE_MODELS = {"multilingual-e5-small": ("intfloat/multilingual-e5-small", "mit")}


def card_metadata(task: str, result: dict, model_name: str, base_model: str, license_name: str) -> dict:
    card = TASK_CARD[task]
    languages = [language for language in result["scores"] if language != "selection"]
    entries = []
    for language in languages:
        entries.append(
            {
                "task": {"type": card.pipeline_tag, "name": card.title},
                "dataset": {
                    "type": card.dataset,
                    "name": f"{card.title} ({language})",
                    "config": card.dataset_config,
                },
                "metrics": [
                    {
                        "type": card.metric,
                        "value": round(100 * result["scores"][language][card.metric], 2),
                        "name": f"{card.metric_name} ({language}{'' if language == 'en' else ', zero-shot'})",
                    }
                ],
            }
        )
    return {
        "language": sorted(set(languages) | {"en"}),
        "license": license_name,
        "library_name": "transformers",
        "pipeline_tag": card.pipeline_tag,
        "base_model": base_model,
        "datasets": [card.dataset],
        "metrics": ["seqeval" if card.metric == "f1" else "accuracy"],
        "tags": ["dlfa", "cross-lingual", "zero-shot", task, "custom_code"],
        "model-index": [{"name": model_name, "results": entries}],
    }


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
    card = TASK_CARD[task]
    is_dlfa = getattr(config, "fusion_layer", None) is not None
    token_task = card.pipeline_tag == "token-classification"
    auto_class = "AutoModelForTokenClassification" if token_task else "AutoModelForSequenceClassification"
    average = result.get("target_average")
    body = Template(TEMPLATE.read_text()).substitute(
        model_name=repo_id,
        head_description="tagger" if token_task else "classifier",
        task_title=card.title,
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
            else f'predict = pipeline("{card.pipeline_tag}", model=model, tokenizer=tokenizer)'
        ),
        metric_name=card.metric_name,
        results_table=results_table(result, card.metric),
        target_average="-" if average is None else f"{100 * average:.2f}",
        train_files=result.get("files", {}).get("train", "-"),
        selection_file=result.get("files", {}).get("selection", "-"),
        seed=result.get("seed", "-"),
        device=result.get("device", "-"),
    )
    metadata = card_metadata(task, result, repo_id, base_name, license_name)
    path = model_dir / "README.md"
    path.write_text("---\n" + yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True) + "---\n\n" + body)
    return path


def stage_hub_folder(model_dir: Path, target: Path) -> Path:
    """
    The folder `--push_to_hub` uploads, built first: the run's model folder without its training arguments, its card
    checked by `huggingface_hub`'s own offline parsing of the metadata (`ModelCard.load`: the YAML, the model-index
    as evaluation results). Raises ValueError if the card's metadata does not parse.
    """
    from huggingface_hub import ModelCard

    target = Path(target)
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(model_dir, target, ignore=shutil.ignore_patterns("training_args.bin"))
    card = ModelCard.load(target / "README.md", ignore_metadata_errors=False)
    if not card.data.eval_results:
        raise ValueError(f"{target / 'README.md'}: the model card has no model-index results")
    return target


def write_to_hub_cache(folder: Path, cache: Path, repo_id: str) -> Path:
    """Write `folder` into a Hub cache (`HF_HUB_CACHE` layout) as `repo_id`'s `main`; returns the snapshot folder."""
    digest = hashlib.sha1()
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    commit = digest.hexdigest()
    repo = Path(cache) / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    if snapshot.exists():
        shutil.rmtree(snapshot)
    shutil.copytree(folder, snapshot)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot
