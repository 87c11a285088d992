"""
Runs read back, layer selection on English dev, the summary table and the heatmaps: what the harness's sweep
(`dlfa_zero_shot.cli`) and the benchmark report (`benchmarks/zero_shot_report.py`) call. Runs are named by
`dlfa_zero_shot.names`; the report's statistics are `dlfa_zero_shot.study_statistics`. A sweep or a benchmark keeps
its runs as `<output_dir>/seed-<seed>/<run name>/results.json` (the harness alone: `<output_dir>/<run name>/results.json`).
"""

import statistics
from pathlib import Path

import numpy as np

from .files import read_json, save_figure
from .names import LAYER_SEARCH, order_key
from .tasks import TRAIN_LANGUAGE


# ---------------------------------------------------------------------------------------------------------------------
# Runs


def load_runs(folder: Path) -> dict[str, dict[int, dict]]:
    """
    run name -> seed -> results.json of every evaluated model, from `folder/seed-<seed>/<run>/results.json` (a
    benchmark) or, where there are no seed folders, `folder/<run>/results.json` (one harness sweep: its `seed`
    recorded in each result). A one-pass layer search's own record is not a model's: `load_searches` reads those. A
    results.json that is not in its own run's folder is refused (`_results`).
    """
    runs: dict[str, dict[int, dict]] = {}
    for result in _results(folder):
        if result["run"] != LAYER_SEARCH:
            runs.setdefault(result["run"], {})[int(result["seed"])] = result
    return runs


def load_searches(folder: Path) -> dict[int, dict]:
    """seed -> the record of the one-pass layer search run with that seed (per-head English dev, the choice)."""
    return {int(result["seed"]): result for result in _results(folder) if result["run"] == LAYER_SEARCH}


def _results(folder: Path) -> list[dict]:
    """
    Every results.json under `folder`, each in the folder of its own run (and seed): a copy moved aside among the runs
    (`seed-1/baseline.old/`) would otherwise be read as the run it was, in place of the run in that folder. A
    ValueError names such a file.
    """
    found = sorted(Path(folder).glob("seed-*/*/results.json")) or sorted(Path(folder).glob("*/results.json"))
    results = [read_json(path) for path in found]
    for path, result in zip(found, results):
        seed = path.parent.parent.name.removeprefix("seed-") if path.parent.parent != Path(folder) else None
        if path.parent.name != result.get("run") or seed not in (None, str(result.get("seed"))):
            raise ValueError(
                f"{path} holds run {result.get('run')!r} seed {result.get('seed')!r}, not the run its folders name: "
                "move copies of runs out of the runs folder"
            )
    return results


def dev_score(result: dict) -> float:
    """English dev (selection) score, in points."""
    return 100 * result["scores"]["selection"][result["metric"]]


def target_score(result: dict) -> float:
    """Average over the target languages (every evaluated language but English), in points."""
    return 100 * result["target_average"]


def select_on_english_dev(runs: dict[str, dict[int, dict]], candidates: list[str] | None = None) -> tuple[list, str]:
    """
    The candidate with the best mean English dev score over the seeds every candidate has (so that none wins by
    having more seeds); ties go to the first in `order_key` order. Returns (those seeds, the chosen run name).
    """
    candidates = sorted(candidates if candidates is not None else runs, key=order_key)
    if not candidates:
        raise ValueError("no run to select from")
    shared = sorted(set.intersection(*(set(runs[name]) for name in candidates)))
    if not shared:
        raise ValueError(f"the candidates share no seed: {[(name, sorted(runs[name])) for name in candidates]}")
    means = {name: statistics.mean(dev_score(runs[name][seed]) for seed in shared) for name in candidates}
    return shared, max(candidates, key=lambda name: means[name])


def best_on_targets(runs: dict[str, dict[int, dict]], candidates: list[str], seeds: list[int]) -> str:
    """The paper's protocol (for comparison only; it peeks at the test languages): best mean target average."""
    return max(candidates, key=lambda name: statistics.mean(target_score(runs[name][seed]) for seed in seeds))


CURVE_RESULTS = "n-*/seed-*/baseline/results.json"  # a learning curve's runs, under its `curve` folder


def curve_points(examples: int, result: dict) -> list[dict]:
    """A learning-curve run's points (trained on `examples`): one per epoch, with its English dev score in points."""
    return [{"examples": examples, "epochs": round(entry["epoch"]), "english_dev": 100 * entry["score"]}
            for entry in result.get("selection_by_epoch", [])]  # fmt: skip


def load_curve(folder: Path) -> list[dict]:
    """
    The learning-curve points under `folder/n-<examples>/seed-1/baseline/results.json` (`curve_points`), cheapest
    first.
    """
    points = [point for path in sorted(Path(folder).glob(CURVE_RESULTS))
              for point in curve_points(int(path.parts[-4].removeprefix("n-")), read_json(path))]  # fmt: skip
    return sorted(points, key=lambda point: (point["examples"] * point["epochs"], point["examples"]))


def choose_budget(points: list[dict], margin: float) -> dict:
    """The study plan's rule: the cheapest point (examples x epochs) within `margin` points of the curve's best."""
    if not points:
        raise ValueError("no learning-curve points: run the curve first")
    plateau = max(point["english_dev"] for point in points)
    cheapest = min(
        (point for point in points if point["english_dev"] >= plateau - margin),
        key=lambda point: (point["examples"] * point["epochs"], point["examples"]),
    )
    return {**cheapest, "plateau": plateau, "margin": margin}


def target_languages(result: dict) -> list[str]:
    """The languages a run was scored on but English (its selection data and its English test, if any)."""
    return [language for language in result["scores"] if language not in ("selection", TRAIN_LANGUAGE)]


# ---------------------------------------------------------------------------------------------------------------------
# Tables and heatmaps


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def sweep_table(runs: dict[str, dict], selected: str | None) -> str:
    """One row per run (one seed): English dev, every evaluated language, the target average (markdown)."""
    results = [runs[name] for name in sorted(runs, key=order_key)]
    metric = results[0]["metric"]
    languages = list(dict.fromkeys(lang for result in results for lang in result["scores"] if lang != "selection"))
    header = ["run", "en dev", *languages, "avg (targets)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for result in results:
        name = result["run"] + (" (selected on en dev)" if result["run"] == selected else "")
        cells = [name, percent(result["scores"].get("selection", {}).get(metric))]
        cells += [percent(result["scores"].get(language, {}).get(metric)) for language in languages]
        lines.append("| " + " | ".join([*cells, percent(result["target_average"])]) + " |")
    return f"{metric} (%), zero-shot from English\n\n" + "\n".join(lines) + "\n"


def search_table(head_scores: dict[str, float], chosen: str, metric: str) -> str:
    """English dev score of every head of a one-pass layer search (markdown), the chosen layer marked."""
    lines = [f"One-pass layer search: English dev {metric} (%) of each head on the shared encoder", "",
             "| head | en dev |", "|---|---|"]  # fmt: skip
    for name in sorted(head_scores, key=order_key):
        lines.append(f"| {name}{' (chosen)' if name == chosen else ''} | {100 * head_scores[name]:.2f} |")
    return "\n".join(lines) + "\n"


def heatmap(rows: list[str], columns: list[str], grid: list[list[float]], title: str, path: Path, gains: bool) -> Path:
    """A rows x columns heatmap with each value written in its cell; `gains`: a diverging map centred on zero."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = np.asarray(grid, dtype=float)
    figure, axes = plt.subplots(figsize=(2 + 0.65 * len(columns), 1 + 0.45 * len(rows)))
    if gains:
        bound = float(np.abs(values).max()) or 1.0
        image = axes.imshow(values, cmap="RdBu", vmin=-bound, vmax=bound, aspect="auto")
    else:
        image = axes.imshow(values, cmap="viridis", aspect="auto")
    middle = (values.min() + values.max()) / 2
    axes.set_xticks(range(len(columns)), columns)
    axes.set_yticks(range(len(rows)), rows)
    for row in range(values.shape[0]):
        for column in range(values.shape[1]):
            value = values[row, column]
            color = "black" if gains or value > middle else "white"  # viridis is light at the top
            text = f"{value:+.1f}" if gains else f"{value:.1f}"
            axes.text(column, row, text, ha="center", va="center", fontsize=7, color=color)
    axes.set_title(title, fontsize=9)
    figure.colorbar(image, ax=axes)
    figure.tight_layout()
    save_figure(figure, path, dpi=110)
    plt.close(figure)
    return path


def sweep_heatmap(runs: dict[str, dict], path: Path) -> Path:
    """Run x target language scores of one seed (the harness's sweep)."""
    names = sorted(runs, key=order_key)
    metric, languages = runs[names[0]]["metric"], target_languages(runs[names[0]])
    grid = [[100 * runs[name]["scores"][language][metric] for language in languages] for name in names]
    return heatmap(names, languages, grid, f"{metric} (%), zero-shot", path, gains=False)
