"""
The statistics of the studies' reports (`dlfa_zero_shot.report`): paired differences of target averages with a paired
t-test and its interval, Holm's adjustment, the paired bootstrap over seeds and items, per-language gains, and the
one-pass layer search's agreement with a sweep (Spearman's rho). Runs are read and selected by
`dlfa_zero_shot.analysis`; what the statistics decide (the plans' verdicts) is the report's. No run imports this module.
"""

import statistics

import numpy as np

from .analysis import dev_score, target_score
from .names import AIF_PREFIX
from .tasks import label_names


# ---------------------------------------------------------------------------------------------------------------------
# Paired comparisons


def mean_std(values: list[float]) -> dict:
    """Mean, sample standard deviation (None for one value) and count of `values`."""
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


# ---------------------------------------------------------------------------------------------------------------------
# The one-pass layer search against a sweep


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
