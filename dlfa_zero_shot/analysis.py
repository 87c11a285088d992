"""
Layer selection on English dev, paired statistics, the summary table and the heatmaps: what the harness's sweep
(`dlfa_zero_shot.cli`) and the benchmark report (`benchmarks/zero_shot_report.py`) call. Runs are named by
`dlfa_zero_shot.names`. A sweep or a benchmark keeps its runs as
`<output_dir>/seed-<seed>/<run name>/results.json` (the harness alone: `<output_dir>/<run name>/results.json`).
"""

import statistics
from pathlib import Path

import numpy as np

from .files import read_json, save_figure
from .names import AIF_PREFIX, LAYER_SEARCH, order_key
from .tasks import TRAIN_LANGUAGE, label_names


# ---------------------------------------------------------------------------------------------------------------------
# Runs


def load_runs(folder: Path) -> dict[str, dict[int, dict]]:
    """
    run name -> seed -> results.json of every evaluated model, from `folder/seed-<seed>/<run>/results.json` (a
    benchmark) or, where there are no seed folders, `folder/<run>/results.json` (one harness sweep: its `seed`
    recorded in each result). A one-pass layer search's own record is not a model's: `load_searches` reads those.
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
    found = sorted(Path(folder).glob("seed-*/*/results.json")) or sorted(Path(folder).glob("*/results.json"))
    return [read_json(path) for path in found]


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


def load_curve(folder: Path) -> list[dict]:
    """
    The learning-curve points under `folder/n-<examples>/seed-1/baseline/results.json`: one point per (examples,
    epoch), with the English dev score in points, cheapest first.
    """
    points = []
    for path in sorted(Path(folder).glob(CURVE_RESULTS)):
        result = read_json(path)
        examples = int(path.parts[-4].removeprefix("n-"))
        for entry in result.get("selection_by_epoch", []):
            points.append({"examples": examples, "epochs": round(entry["epoch"]), "english_dev": 100 * entry["score"]})
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


def spearman(a: list[float], b: list[float]) -> float | None:
    """Spearman's rho of two equally long score lists; None where either is constant (no ranking: rho undefined)."""
    from scipy import stats

    if len(set(a)) < 2 or len(set(b)) < 2:
        return None
    return float(stats.spearmanr(a, b).statistic)


def mean_defined(values: list[float | None]) -> float | None:
    """The mean of the values that are not None; None if none is."""
    defined = [value for value in values if value is not None]
    return statistics.mean(defined) if defined else None


def layer_search_validation(runs: dict[str, dict[int, dict]], searches: dict[int, dict]) -> dict:
    """
    The one-pass layer search against the separate-run sweep of the same seeds: per seed, Spearman's rho between the
    one-pass English dev scores of the DLFA heads and the separate runs' English dev scores, and their target
    averages; whether the two picks (best English dev) agree; and what a mismatch costs on the target average (the
    separate runs' score at the sweep's pick minus at the one-pass pick, points). Only layers both have count.

    The reference is the sweep against itself: the mean Spearman's rho between its English-dev rankings on every pair
    of seeds (`sweep_seed_spearman_dev_mean`). Where that is near zero, the layers do not differ reproducibly at this
    budget and no one-pass ranking can match the sweep's. A correlation with a constant side (every layer scored
    alike) is None, and the means leave it out.
    """
    from itertools import combinations

    per_seed = {}
    for seed, search in sorted(searches.items()):
        heads = {name: score for name, score in search["head_selection_scores"].items() if name.startswith(AIF_PREFIX)}
        layers = sorted(name for name in heads if seed in runs.get(name, {}))
        if len(layers) < 2:
            continue
        one_pass = [heads[name] for name in layers]
        dev = [dev_score(runs[name][seed]) for name in layers]
        target = [target_score(runs[name][seed]) for name in layers]
        one_pass_pick, sweep_pick = layers[int(np.argmax(one_pass))], layers[int(np.argmax(dev))]
        per_seed[seed] = {
            "layers": layers,
            "spearman_dev": spearman(one_pass, dev),
            "spearman_target": spearman(one_pass, target),
            "one_pass_pick": one_pass_pick,
            "sweep_pick": sweep_pick,
            "mismatch_cost": target_score(runs[sweep_pick][seed]) - target_score(runs[one_pass_pick][seed]),
        }
    if not per_seed:
        return {"seeds": {}}
    values = list(per_seed.values())
    common = sorted(set.intersection(*(set(v["layers"]) for v in values)))
    seed_pairs = [
        spearman([dev_score(runs[name][a]) for name in common], [dev_score(runs[name][b]) for name in common])
        for a, b in combinations(per_seed, 2)
    ] if len(common) > 1 else []  # fmt: skip
    return {
        "seeds": per_seed,
        "sweep_seed_spearman_dev_mean": mean_defined(seed_pairs),
        "picks_agree": sum(v["one_pass_pick"] == v["sweep_pick"] for v in values),
        "spearman_dev_mean": mean_defined([v["spearman_dev"] for v in values]),
        "spearman_target_mean": mean_defined([v["spearman_target"] for v in values]),
        "mismatch_cost_mean": statistics.mean(v["mismatch_cost"] for v in values),
    }


# ---------------------------------------------------------------------------------------------------------------------
# Statistics


def mean_std(values: list[float]) -> dict:
    return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else None,
            "n": len(values)}  # fmt: skip


def paired_gain(runs: dict[int, dict], reference: dict[int, dict]) -> dict | None:
    """
    Target-average difference `runs - reference` on the seeds both have: mean, std, two-sided paired t-test p and
    95% t interval (with two or more seeds).
    """
    from scipy import stats

    seeds = sorted(set(runs) & set(reference))
    if not seeds:
        return None
    ours, theirs = [target_score(runs[seed]) for seed in seeds], [target_score(reference[seed]) for seed in seeds]
    differences = [mine - other for mine, other in zip(ours, theirs)]
    gain = {"seeds": seeds, "differences": differences, **mean_std(differences)}
    if len(seeds) > 1 and gain["std"] > 0:  # equal differences: no spread, no interval
        test = stats.ttest_rel(ours, theirs)
        interval = test.confidence_interval(confidence_level=0.95)
        gain["ci95"] = [float(interval.low), float(interval.high)]
        gain["t_test_p"] = float(test.pvalue)
    return gain


def holm(p_values: dict[str, float]) -> dict[str, float]:
    """Holm's step-down adjustment of a family of p-values (controls the family-wise error rate)."""
    ordered = sorted(p_values, key=p_values.get)
    adjusted, running = {}, 0.0
    for rank, name in enumerate(ordered):
        running = max(running, min(1.0, (len(ordered) - rank) * p_values[name]))
        adjusted[name] = running
    return adjusted


def item_counts(record: dict[str, np.ndarray], labels: tuple[str, ...] | None) -> np.ndarray:
    """
    Per evaluation item, the counts its language's score is a ratio of sums of: for tagging (`labels` given), each
    sentence's (correct chunks, predicted chunks, gold chunks) for seqeval's micro F1; for pairs, (correct, 1, 1).
    `record`: a run's `predictions.npz` entries of one language (`predicted`, `gold`, and `lengths` for tagging).
    """
    if labels is None:
        correct = (record["predicted"] == record["gold"]).astype(float)
        return np.stack([correct, np.ones_like(correct), np.ones_like(correct)], axis=1)
    from seqeval.metrics.sequence_labeling import get_entities

    counts, start = [], 0
    for length in record["lengths"]:
        end = start + int(length)
        predicted = set(get_entities(label_names(labels, record["predicted"][start:end])))
        gold = set(get_entities(label_names(labels, record["gold"][start:end])))
        counts.append((len(predicted & gold), len(predicted), len(gold)))
        start = end
    return np.asarray(counts, dtype=float)


def score_from_counts(sums: np.ndarray, tagging: bool) -> np.ndarray:
    """seqeval micro F1 (tagging) or accuracy from summed `item_counts` (`(..., 3)`), in points."""
    if tagging:
        denominator = sums[..., 1] + sums[..., 2]
        return 100 * np.divide(2 * sums[..., 0], denominator, out=np.zeros_like(denominator), where=denominator > 0)
    return 100 * sums[..., 0] / sums[..., 1]


def bootstrap_gain(
    counts: dict[str, dict[int, dict[str, np.ndarray]]],
    first: str,
    second: str,
    tagging: bool,
    resamples: int,
    seed: int = 0,
) -> dict:
    """
    Paired bootstrap over seeds and items of the target-average gain `first - second` (points): in each resample the
    seeds both configurations have are drawn with replacement, and in each language the items are drawn with
    replacement, the same items for both configurations and every drawn seed. `counts[config][seed][language]` are
    `item_counts`. Returns the mean of the resampled gains and their 2.5% and 97.5% percentiles.
    """
    rng = np.random.default_rng(seed)
    seeds = sorted(set(counts[first]) & set(counts[second]))
    languages = sorted(counts[first][seeds[0]])
    seed_draws = rng.integers(0, len(seeds), size=(resamples, len(seeds)))
    per_seed_gain = np.zeros((resamples, len(seeds)))
    for language in languages:
        items = len(counts[first][seeds[0]][language])
        weights = rng.multinomial(items, np.full(items, 1 / items), size=resamples).astype(float)  # (resamples, items)
        for index, seed_value in enumerate(seeds):
            scores = [
                score_from_counts(weights @ counts[config][seed_value][language], tagging)
                for config in (first, second)
            ]
            per_seed_gain[:, index] += (scores[0] - scores[1]) / len(languages)
    gains = np.take_along_axis(per_seed_gain, seed_draws, axis=1).mean(axis=1)
    low, high = np.percentile(gains, [2.5, 97.5])
    return {"mean": float(gains.mean()), "ci95": [float(low), float(high)], "resamples": resamples, "seeds": seeds}


def language_gains(runs: dict[int, dict], reference: dict[int, dict], languages: list[str]) -> dict[str, float]:
    """Per-language score minus the reference's, in points, averaged over the seeds both have."""
    seeds = sorted(set(runs) & set(reference))
    metric = runs[seeds[0]]["metric"]
    return {
        language: statistics.mean(
            100 * (runs[seed]["scores"][language][metric] - reference[seed]["scores"][language][metric])
            for seed in seeds
        )
        for language in languages
    }


def target_languages(result: dict) -> list[str]:
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
