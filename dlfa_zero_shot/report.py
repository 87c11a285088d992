"""
The benchmark report (`benchmarks/zero_shot_report.py` is its command): turns the zero-shot benchmark's runs into one
JSON archive a task, the heatmaps, and the generated part of docs/results.md (between its BEGIN/END markers; the
hand-written text around them is kept). Runs, selection and the heatmap drawing come from `analysis`, the
statistics from `study_statistics`.

Selection follows the zero-shot rule: the DLFA layer is the one with the best mean English dev score over the seeds
every sweep layer has; its gain over the baseline is the paired difference of target-language averages over the seeds
both have, with a paired t-test and a 95% t interval. The paper's protocol (the best test average over the layers) is
reported apart.
"""

import argparse
import json
import statistics
from collections import Counter
from pathlib import Path

import numpy as np

from . import analysis, provenance, study_statistics
from .analysis import dev_score, load_runs, target_score
from .files import save_figure, write_atomically
from .names import AIF_PREFIX, BASELINE, CONCAT_PREFIX, LAYER_SEARCH, SCALAR_MIX, order_key, run_name
from .plans import REPLICATION_PLAN, STUDY_PLAN, STUDY_PLANS, ReplicationPlan, StudyPlan, study_layer_choice
from .study_statistics import language_gains, mean_std, paired_gain
from .tasks import TASKS, TRAIN_LANGUAGE, TaskSpec


BEGIN, END = "<!-- BEGIN zero_shot_report (generated: edit outside) -->", "<!-- END zero_shot_report -->"
# The paper's Table 1 (mBERT-base, XTREME test average over target languages, best of the 11 layers, one seed); the
# earlier small study reports these tasks.
PAPER = {
    "udpos": (70.28, 71.81, 10),
    "panx": (62.17, 63.34, 8),
    "xnli": (65.40, 66.91, 11),
    "pawsx": (81.94, 84.37, 6),
}
TARGET_GAIN = {"udpos": 1.5, "panx": 1.2}
# Figure files are named by what the task is, not by the data set.
FIGURE_NAMES = {"udpos": "pos", "panx": "ner", "xnli": "nli", "pawsx": "paraphrase"}


def run_timings(task_dir: Path) -> dict[str, dict]:
    """Run folder (relative to `task_dir`) -> the benchmark's `wall_time.json` of that finished run."""
    return {path.parent.relative_to(task_dir).as_posix(): json.loads(path.read_text())
            for path in sorted(task_dir.rglob("wall_time.json"))}  # fmt: skip


def run_cpu_seconds(timings: dict[str, dict]) -> dict[str, float]:
    """Run folder -> CPU seconds, of the `run_timings` that record them (the benchmark's runs since 2026-12-06)."""
    return {folder: timing["cpu_seconds"] for folder, timing in timings.items() if "cpu_seconds" in timing}


def write_archive(
    path: Path, task_dir: Path, backbone: dict | None, summary: dict | None = None, predictions: str | None = None
) -> Path:
    """
    The committed archive of one task (both studies), what `restore_archive` writes back: the small study's
    `summary`, `runs` (run name -> seed -> results.json), the backbone's shape (for the parameter table, as no model
    files are archived) and, where there are some, the one-pass layer searches (seed -> record), the learning
    curve (`n-<examples>` -> results.json) and the benchmark's wall time of each run (run folder -> seconds). Each
    run's `predictions.npz` is copied to `<path's folder>/predictions/<predictions>/<run folder>.npz` (by default
    the task folder's name). File paths in the results are already relative to the data folder (the harness records
    them so); every absolute path left (a run's command line, output folder, cache) is cut by `provenance.portable`,
    whichever part of the archive holds it.
    """
    archive = {"summary": summary} if summary is not None else {}
    archive.update(runs=load_runs(task_dir), backbone_shape=backbone)
    searches = analysis.load_searches(task_dir)
    if searches:
        archive["searches"] = searches
    timings = run_timings(task_dir)
    if timings:  # the benchmark's process wall times (evaluation included) and, since 2026-12-06, CPU times
        archive["wall_times"] = {folder: timing["seconds"] for folder, timing in timings.items()}
    cpu_seconds = run_cpu_seconds(timings)
    if cpu_seconds:
        archive["cpu_times"] = cpu_seconds
    curve_runs = sorted((task_dir / "curve").glob(analysis.CURVE_RESULTS))
    curve = {path.relative_to(task_dir / "curve").parts[0]: json.loads(path.read_text()) for path in curve_runs}
    if curve:
        archive["curve"] = curve
    if path.is_file():
        check_nothing_dropped(path, archive)
    for stored in sorted(task_dir.rglob("predictions.npz")):
        run_folder = stored.parent.relative_to(task_dir).as_posix()
        target = path.parent / "predictions" / (predictions or task_dir.name) / f"{run_folder}.npz"
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(target, stored.read_bytes())
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(provenance.portable(archive), indent=1) + "\n")
    return path


def archived_results(archive: dict) -> dict[str, dict]:
    """
    Run folder (relative to the task's folder: `seed-N/<run>`, `curve/n-<examples>/seed-N/<run>`) -> the results
    (or search record) an archive holds for it.
    """
    folders = {f"seed-{seed}/{LAYER_SEARCH}": record for seed, record in archive.get("searches", {}).items()}
    for name, by_seed in archive.get("runs", {}).items():
        folders.update({f"seed-{seed}/{name}": result for seed, result in by_seed.items()})
    for point, result in archive.get("curve", {}).items():
        folders[f"curve/{point}/seed-{result['seed']}/{result['run']}"] = result
    return folders


def check_nothing_dropped(path: Path, archive: dict) -> None:
    """
    Refuse (SystemExit naming them) to replace the archive at `path` with `archive` when it would lose results the
    committed one holds: the runs folder then lacks runs made elsewhere (a new machine; `--restore` first).
    """
    lost = sorted(archived_results(json.loads(path.read_text())).keys() - archived_results(archive).keys())
    if lost:
        shown = ", ".join(lost[:6]) + (f" and {len(lost) - 6} more" if len(lost) > 6 else "")
        raise SystemExit(
            f"{path} holds {len(lost)} result(s) the runs folder lacks ({shown}); nothing was written: restore them "
            f"first (--restore {path.stem.removesuffix('_replication')} with the --study that archived them), or "
            f"remove {path} to archive these runs alone"
        )


def restore_archive(path: Path, task_dir: Path, predictions: str | None = None) -> list[Path]:
    """
    Write the runs of a committed archive back as run folders (`seed-N/<run>/results.json`, the searches' records,
    `curve/n-<examples>/seed-1/baseline/results.json`, each run's archived `predictions.npz` and process wall time
    (`wall_time.json`); no weights), so that the report can be regenerated, and the benchmark resumed, on a machine
    without the original runs. A run that already has a results.json is left alone. `predictions`: the predictions
    folder's name `write_archive` was given. Returns the results files written.
    """
    archive = json.loads(path.read_text())
    wall_times, cpu_times = archive.get("wall_times", {}), archive.get("cpu_times", {})
    written = []
    for folder, result in archived_results(archive).items():
        target = task_dir / folder / "results.json"
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)  # an unfinished run's folder may be there
        write_atomically(target, json.dumps(result, indent=1) + "\n")
        stored = path.parent / "predictions" / (predictions or task_dir.name) / f"{folder}.npz"
        if stored.exists():
            write_atomically(target.parent / "predictions.npz", stored.read_bytes())
        if folder in wall_times:
            timing = {"seconds": wall_times[folder]}
            timing.update({"cpu_seconds": cpu_times[folder]} if folder in cpu_times else {})
            write_atomically(target.parent / "wall_time.json", json.dumps(timing) + "\n")
        written.append(target)
    return written


def median_runtime(by_seed: dict[int, dict]) -> float | None:
    runtimes = [result["train_runtime_seconds"] for result in by_seed.values() if result.get("train_runtime_seconds")]
    return statistics.median(runtimes) if runtimes else None


def summarize(task: str, runs: dict[str, dict[int, dict]]) -> dict:
    """Every statistic the report shows, from the runs alone."""
    baseline = runs[BASELINE]
    languages = [language for language in next(iter(baseline.values()))["scores"] if language not in ("selection",)]
    metric = next(iter(baseline.values()))["metric"]
    experiments = {}
    for name, by_seed in runs.items():
        results = list(by_seed.values())
        experiments[name] = {
            "seeds": sorted(by_seed),
            "english_dev": mean_std([dev_score(result) for result in results]),
            "target_average": mean_std([target_score(result) for result in results]),
            "languages": {
                language: statistics.mean(100 * result["scores"][language][metric] for result in results)
                for language in languages
            },
            "gain_over_baseline": None if name == BASELINE else paired_gain(by_seed, baseline),
            "language_gains": None if name == BASELINE else language_gains(by_seed, baseline, languages),
            "train_seconds_median": median_runtime(by_seed),
            "per_seed": {
                seed: {"english_dev": dev_score(r), "target_average": target_score(r)} for seed, r in by_seed.items()
            },
        }

    summary = {"task": task, "metric": metric, "languages": languages, "experiments": experiments}
    layers = [name for name in runs if name.startswith(AIF_PREFIX)]
    if layers:
        shared, by_dev = analysis.select_on_english_dev(runs, layers)
        by_test = analysis.best_on_targets(runs, layers, shared)
        on_shared = {name: [runs[name][seed] for seed in shared] for name in (by_dev, by_test)}
        baseline_shared = statistics.mean(target_score(baseline[seed]) for seed in shared)
        summary["selection"] = {
            "seeds_compared": shared,
            "dev_selected": by_dev,
            "dev_selected_gain": experiments[by_dev]["gain_over_baseline"],
            "best_of_layers_paper_protocol": by_test,
            "best_of_layers_gain_on_compared_seeds": statistics.mean(map(target_score, on_shared[by_test]))
            - baseline_shared,
            # DLFA against the peers it is meant to beat: the concatenation of the same two layers, the scalar mix
            "dlfa_minus_peers": {
                peer: paired_gain(runs[by_dev], runs[peer])
                for peer in (CONCAT_PREFIX + by_dev.removeprefix(AIF_PREFIX), SCALAR_MIX)
                if peer in runs
            },
        }
        gain = experiments[by_dev]["gain_over_baseline"]
        spread = [experiments[name]["target_average"]["std"] for name in (by_dev, BASELINE)]
        if task in TARGET_GAIN and gain and None not in spread:
            summary["targets"] = {
                "gain_at_least": TARGET_GAIN[task],
                "gain": gain["mean"],
                "two_std_across_seeds": 2 * max(spread),
                "met": gain["mean"] >= TARGET_GAIN[task] and gain["mean"] > 2 * max(spread),
            }
    return summary


# ---------------------------------------------------------------------------------------------------------------------
# Output


def _cell(statistic: dict) -> str:
    if statistic["std"] is None:
        return f"{statistic['mean']:.2f}"
    return f"{statistic['mean']:.2f} ± {statistic['std']:.2f}"


def _gain_cell(gain: dict | None) -> str:
    if gain is None:
        return "—"
    text = f"{gain['mean']:+.2f}"
    if "ci95" in gain:
        text += f" [{gain['ci95'][0]:+.2f}, {gain['ci95'][1]:+.2f}], p={gain['t_test_p']:.2f}"
    return text + f" (n={gain['n']})"


def _time_cell(seconds: float | None, baseline_seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds:.0f} s" + (f" (×{seconds / baseline_seconds:.2f})" if baseline_seconds else "")


def heading(spec: TaskSpec) -> str:
    """A task's heading in the report: "UDPOS (POS tagging, seqeval F1)", "XNLI (accuracy)"."""
    named = spec.presentation
    return f"{named.dataset} ({', '.join(filter(None, (named.abbreviation, spec.metric_name)))})"


def markdown(summary: dict, figure_link: str | None) -> str:
    task, languages = summary["task"], summary["languages"]
    targets = [language for language in languages if language != TRAIN_LANGUAGE]
    lines = [f"### {heading(TASKS[task])}", ""]
    header = "| configuration | seeds | en dev | target avg | gain vs baseline [95% CI], paired t-test | train time | "
    lines += [header + " | ".join(targets) + " |", "|---" * (6 + len(targets)) + "|"]
    base_time = summary["experiments"]["baseline"]["train_seconds_median"]
    for name in sorted(summary["experiments"], key=order_key):
        experiment = summary["experiments"][name]
        row = [name, ",".join(map(str, experiment["seeds"])), _cell(experiment["english_dev"]),
               _cell(experiment["target_average"]), _gain_cell(experiment["gain_over_baseline"]),
               _time_cell(experiment["train_seconds_median"], base_time)]  # fmt: skip
        row += [f"{experiment['languages'][language]:.1f}" for language in targets]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    selection = summary.get("selection")
    if selection:
        paper_baseline, paper_dlfa, paper_layer = PAPER[task]
        dev_gain = selection["dev_selected_gain"]
        lines += [
            f"- Layer chosen on English dev (seeds {selection['seeds_compared']}): **{selection['dev_selected']}**; "
            f"its gain over the baseline: **{_gain_cell(dev_gain)}** F1/accuracy points on the target average.",
            *(
                f"- DLFA ({selection['dev_selected']}) minus {peer}, paired by seed: {_gain_cell(gain)}."
                for peer, gain in selection["dlfa_minus_peers"].items()
            ),
            f"- The paper's protocol (best target average over the layers, same seeds): "
            f"{selection['best_of_layers_paper_protocol']}, "
            f"{selection['best_of_layers_gain_on_compared_seeds']:+.2f}.",
            f"- Paper (mBERT-base, full XTREME, best of 11 layers, one seed): "
            f"{paper_baseline:.2f} → {paper_dlfa:.2f} "
            f"({paper_dlfa - paper_baseline:+.2f}) at layer {paper_layer}.",
        ]
    if "targets" in summary:
        target = summary["targets"]
        verdict = "met" if target["met"] else "**missed**"
        lines.append(
            f"- Target (gain ≥ {target['gain_at_least']} and > 2 std across seeds = "
            f"{target['two_std_across_seeds']:.2f}):"
            f" {verdict} (gain {target['gain']:+.2f})."
        )
    if figure_link is not None:
        lines += ["", f"![{task}: layer x language, DLFA minus baseline]({figure_link})"]
    return "\n".join(lines) + "\n"


def heatmap(summary: dict, path: Path) -> Path | None:
    """Each configuration's target-language scores minus the baseline's, paired by seed: where it helps or hurts."""
    experiments = summary["experiments"]
    names = sorted((name for name in experiments if name != BASELINE), key=order_key)
    if not names:
        return None
    languages = [language for language in summary["languages"] if language != TRAIN_LANGUAGE]
    grid = [
        [experiments[name]["language_gains"][language] for language in languages]
        + [experiments[name]["gain_over_baseline"]["mean"]]
        for name in names
    ]
    title = f"{summary['task']}: minus the baseline ({summary['metric']} points, paired seeds)"
    return analysis.heatmap(names, [*languages, "avg"], grid, title, path, gains=True)


def _rho(value: float | None) -> str:
    return "undefined" if value is None else f"{value:+.2f}"


def search_section(task: str, validation: dict) -> str:
    """The one-pass layer search against the separate-run sweep of the same seeds (issue 12)."""
    lines = [f"#### {task}: one-pass layer search against the sweep", "",
             "| seed | layers | Spearman, English dev | Spearman, target avg | one-pass pick | sweep pick | "
             "cost of the one-pass pick (target avg: sweep pick minus one-pass pick) |", "|---" * 7 + "|"]  # fmt: skip
    for seed, row in validation["seeds"].items():
        lines.append(f"| {seed} | {', '.join(name.removeprefix(AIF_PREFIX) for name in row['layers'])} | "
                     f"{_rho(row['spearman_dev'])} | {_rho(row['spearman_target'])} | {row['one_pass_pick']} | "
                     f"{row['sweep_pick']} | {row['mismatch_cost']:+.2f} |")  # fmt: skip
    if validation["seeds"]:
        lines += ["", f"Picks agree on {validation['picks_agree']} of {len(validation['seeds'])} seeds; mean Spearman "
                  f"{_rho(validation['spearman_dev_mean'])} (English dev), {_rho(validation['spearman_target_mean'])} "
                  f"(target average); mean cost {validation['mismatch_cost_mean']:+.2f} points (negative: the one-pass "
                  "pick scored higher on the targets than the sweep's English-dev pick)."]  # fmt: skip
        if validation["sweep_seed_spearman_dev_mean"] is not None:
            lines[-1] += (f" The sweep against itself: its English-dev rankings on two seeds correlate at "
                          f"{validation['sweep_seed_spearman_dev_mean']:+.2f} on average (how reproducible the "
                          "ranking to be matched is).")  # fmt: skip
    return "\n".join(lines) + "\n"


def paper_comparison(summaries: list[dict]) -> str:
    """The paper's gains beside the ones measured here, per task."""
    lines = [
        "### The paper side by side",
        "",
        "| task | paper: baseline → DLFA (best of 11 layers, 1 seed) | here: gain at the layer chosen on English dev "
        "| here: best of the swept layers (the paper's protocol) |",
        "|---|---|---|---|",
    ]
    for summary in summaries:
        paper_baseline, paper_dlfa, paper_layer = PAPER[summary["task"]]
        selection = summary.get("selection")
        if selection is None:
            continue
        chosen = f"{_gain_cell(selection['dev_selected_gain'])} at {selection['dev_selected']}"
        seeds = ",".join(map(str, selection["seeds_compared"]))
        best = (
            f"{selection['best_of_layers_gain_on_compared_seeds']:+.2f} at "
            f"{selection['best_of_layers_paper_protocol']} (seeds {seeds})"
        )
        paper = f"{paper_baseline:.2f} → {paper_dlfa:.2f} ({paper_dlfa - paper_baseline:+.2f}) at layer {paper_layer}"
        lines.append(f"| {summary['task']} | {paper} | {chosen} | {best} |")
    return "\n".join(lines) + "\n"


MBERT_BASE_SHAPE = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
                    "vocab_size": 119547}  # fmt: skip


SHAPE_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size")


def backbone_shape(runs_dir: Path, results_dir: Path) -> dict | None:
    """
    The benchmark backbone's shape (SHAPE_KEYS): from a run's saved config, or, where the runs were restored from the
    archive (which keeps no model files), from the shape the archive recorded.
    """
    configs = sorted(runs_dir.glob(f"*/seed-*/{AIF_PREFIX}*/model/config.json"))
    if configs:
        config = json.loads(configs[0].read_text())
        return {key: config[key] for key in SHAPE_KEYS}
    for archive in sorted(results_dir.glob("*.json")):
        shape = json.loads(archive.read_text()).get("backbone_shape")
        if shape:
            return shape
    return None


def parameter_overhead(backbone: dict) -> str:
    """Parameters each fusion adds to a token classifier, for the benchmark's backbone and for mBERT-base."""
    import torch

    from modeling_dlfa import DLFABertConfig, DLFABertForTokenClassification

    shapes = {"benchmark backbone": backbone, "mBERT-base": MBERT_BASE_SHAPE}
    lines = ["| fusion | " + " | ".join(shapes) + " |", "|---" * (1 + len(shapes)) + "|"]
    for method in ("aif", "concat", "scalar_mix"):
        cells = []
        for shape in shapes.values():
            config = DLFABertConfig(**{key: shape[key] for key in SHAPE_KEYS}, fusion_method=method, num_labels=17)
            with torch.device("meta"):
                model = DLFABertForTokenClassification(config)
            fusion = sum(parameter.numel() for parameter in model.fusion.parameters())
            rest = sum(parameter.numel() for parameter in model.parameters()) - fusion
            cells.append(f"{fusion:,} (+{100 * fusion / rest:.2f}%)")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def learning_curve_figure(curves: dict[str, list[dict]], budgets: dict[str, dict], path: Path) -> Path:
    """English dev against training examples, one line per epoch count, one panel per task; the chosen budget ringed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.4), squeeze=False)
    for axis, (task, points) in zip(axes[0], curves.items()):
        for epochs in sorted({point["epochs"] for point in points}):
            line = sorted((p["examples"], p["english_dev"]) for p in points if p["epochs"] == epochs)
            axis.plot(*zip(*line), marker="o", label=f"{epochs} epoch{'s' if epochs > 1 else ''}")
        if task in budgets:
            chosen = budgets[task]
            axis.scatter([chosen["examples"]], [chosen["english_dev"]], s=160, facecolors="none", edgecolors="red",
                         label="chosen budget")  # fmt: skip
            axis.axhline(chosen["plateau"] - chosen["margin"], color="grey", linestyle=":", linewidth=1)
        axis.set_xscale("log")
        sizes = sorted({point["examples"] for point in points})
        axis.set_xticks(sizes, [f"{size:,}" for size in sizes])
        axis.minorticks_off()
        axis.set_title(f"{task}: baseline, English dev", fontsize=9)
        axis.set_xlabel("English training examples")
        axis.legend(fontsize=7)
    axes[0][0].set_ylabel("English dev (points)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(figure, path, dpi=110)
    plt.close(figure)
    return path


def replace_generated(document: Path, generated: str, begin: str = BEGIN, end: str = END) -> None:
    """Write `generated` between the markers of `document`, keeping everything outside them."""
    text = document.read_text() if document.exists() else f"# Results\n\n{begin}\n{end}\n"
    if begin not in text or end not in text:
        raise SystemExit(f"{document} lacks the markers {begin!r} ... {end!r}; add them where the tables belong")
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    write_atomically(document, f"{head}{begin}\n{generated}{end}{tail}")


# ---------------------------------------------------------------------------------------------------------------------
# The study (docs/study-plan.md): every run archived as it lands, predictions included


STUDY_BEGIN, STUDY_END = "<!-- BEGIN study_report (generated: edit outside) -->", "<!-- END study_report -->"


def study_progress(runs_dir: Path, figure: Path, document_dir: Path, plan: StudyPlan = STUDY_PLAN) -> str:
    """The study's generated block as far as its runs go: budgets from the curve, the layer choice, runs so far."""
    curves, budgets = {}, {}
    for task in plan.tasks:
        points = analysis.load_curve(runs_dir / task / "curve")
        if points:
            curves[task] = points
            budgets[task] = analysis.choose_budget(points, plan.budget_margin)
    lines = ["### Budgets (learning curve of the baseline, English dev, seed 1)", ""]
    if not curves:
        return "\n".join(lines + ["No curve runs yet.", ""])
    learning_curve_figure(curves, budgets, figure)
    lines += [
        "A task's budget is fixed once its curve (`CURVE` in benchmarks/zero_shot_benchmark.py) is complete; until "
        "then the last column is provisional.",
        "",
        "| task | points so far (examples x epochs: English dev) | best so far | cheapest within "
        f"{plan.budget_margin:g} point{'' if plan.budget_margin == 1 else 's'} |",
        "|---|---|---|---|",
    ]
    for task, points in curves.items():
        cells = ", ".join(f"{p['examples']}x{p['epochs']}: {p['english_dev']:.2f}" for p in points)
        chosen = budgets[task]
        lines.append(f"| {task} | {cells} | {chosen['plateau']:.2f} | {chosen['examples']} x {chosen['epochs']} "
                     f"({chosen['english_dev']:.2f}) |")  # fmt: skip
    lines += ["", f"![learning curves]({figure.relative_to(document_dir).as_posix()})", ""]
    for task in plan.tasks:
        runs = load_runs(runs_dir / task)
        layers = [run_name(layer) for layer in plan.choice_layers]
        if any(name in runs for name in layers):
            chosen, missing = study_layer_choice(runs, plan)
            cells = []
            for name in layers:
                seeds = [seed for seed in plan.choice_seeds if seed in runs.get(name, {})]
                if seeds:
                    dev = statistics.mean(dev_score(runs[name][seed]) for seed in seeds)
                    cells.append(f"{name} {dev:.2f} (seeds {seeds})")
            outcome = f"chosen **{chosen}**" if chosen else f"not finished (missing {', '.join(missing)})"
            lines.append(f"- {task}: layer choice on English dev: {', '.join(cells)}; {outcome}.")
        rule = plan.cpu_rule(run_cpu_seconds(run_timings(runs_dir / task)))
        if rule:
            lines.append(
                f"- {task}: the plan's CPU rule: ({plan.cpu_rule_runs} x {rule.first_run}'s "
                f"{rule.first_cpu_seconds:.0f} CPU s + the curve's {rule.curve_cpu_seconds:.0f} CPU s) / "
                f"{plan.cpu_rule_threads} threads = {rule.hours:.1f} h, "
                f"{'at most' if rule.within else 'above'} {plan.cpu_rule_hours:g} h: {rule.seeds} seeds. "
                + (f"Decided {plan.seeds_decision}." if plan.seeds_decision else "The decision is dated in "
                   "docs/results.md and written into the plan (`seeds_decision`) before any comparison run.")
            )  # fmt: skip
        if runs:
            lines.append(
                f"- {task}: finished runs: "
                + ", ".join(f"{name} (seeds {sorted(runs[name])})" for name in sorted(runs, key=order_key))
            )
    return "\n".join(lines) + "\n"


def load_counts(
    task_dir: Path, name: str, seeds: list[int], labels: tuple[str, ...] | None, languages: list[str]
) -> dict:
    """seed -> target language -> `study_statistics.item_counts` of a run, from its `predictions.npz`."""
    counts = {}
    for seed in seeds:
        stored = np.load(task_dir / f"seed-{seed}" / name / "predictions.npz")
        counts[seed] = {
            language: study_statistics.item_counts(
                {
                    key: stored[f"{language}.{key}"]
                    for key in ("predicted", "gold", "lengths")
                    if f"{language}.{key}" in stored
                },
                labels,
            )
            for language in languages
        }
    return counts


def study_comparisons(
    runs_dir: Path, resamples: int | None = None, plan: StudyPlan = STUDY_PLAN, first_look: bool = False
) -> dict[str, dict]:
    """
    The plan's primary (DLFA at the chosen layer minus the baseline) and secondary (DLFA minus the concatenation of
    the same layers) comparisons of every task that has them, with seed intervals, the item-and-seed bootstrap,
    raw and Holm-adjusted p (over every finished comparison) and the verdict. Each records the seeds its task is due
    by the sequential rule (`seeds_due`) and, once the rule has looked, the primary half-width it looked at
    (`first_half_width`). A comparison short of its due seeds is interim: printed with its raw p, left out of Holm,
    and given no verdict. `resamples`: the bootstrap's, the plan's if None. `first_look`: the comparisons at the
    sequential rule's look (seeds 1 to `plan.first_seeds` alone, each task then due those seeds), as they were
    reported before any later seed ran. Seeds past a task's due seeds play no part.
    """
    found = {}
    for task in plan.tasks:
        task_dir = runs_dir / task
        runs = load_runs(task_dir)
        chosen, _ = study_layer_choice(runs, plan)
        if BASELINE not in runs or chosen is None:
            continue
        peer = CONCAT_PREFIX + chosen.removeprefix(AIF_PREFIX)
        first = next(iter(runs[BASELINE].values()))
        languages = analysis.target_languages(first)
        first_seeds = range(1, plan.first_seeds + 1)
        looked = all(seed in runs[name] for name in (BASELINE, chosen, peer) for seed in first_seeds)
        first_half_width = None
        if looked:
            at_first = paired_gain(
                {s: runs[chosen][s] for s in first_seeds}, {s: runs[BASELINE][s] for s in first_seeds}
            )
            first_half_width = (at_first["ci95"][1] - at_first["ci95"][0]) / 2 if "ci95" in at_first else None
        if not looked and not plan.interim_looks:  # a fixed number of seeds, one look: nothing before it
            continue
        due = plan.seeds_due(task, first_half_width) if looked and not first_look else plan.first_seeds
        runs = {name: {s: r for s, r in by_seed.items() if s <= due} for name, by_seed in runs.items()}
        comparisons = {}
        for kind, reference in (("primary", BASELINE), ("secondary", peer)):
            if reference not in runs or len(set(runs[chosen]) & set(runs[reference])) < 2:
                continue
            draws = plan.bootstrap_resamples if resamples is None else resamples
            gain = paired_comparison(task_dir, runs, chosen, reference, languages, draws)
            comparisons[kind] = {"configuration": chosen, "reference": reference, **gain, "seeds_due": due,
                                 "interim": gain["n"] < due}  # fmt: skip
            if looked and kind == "primary":
                comparisons[kind]["first_half_width"] = first_half_width
        if comparisons:
            found[task] = comparisons
    adjusted = study_statistics.holm({f"{task}/{kind}": c["t_test_p"] for task, by_kind in found.items()
                              for kind, c in by_kind.items() if "t_test_p" in c and not c["interim"]})  # fmt: skip
    for task, by_kind in found.items():
        for kind, comparison in by_kind.items():
            comparison["holm_p"] = adjusted.get(f"{task}/{kind}")
            comparison["verdict"] = (
                f"interim ({comparison['n']} of {comparison['seeds_due']} seeds): no verdict yet"
                if comparison["interim"]
                else verdict(comparison, plan)
                if kind == "primary"
                else difference(comparison, plan)
            )
    return found


def paired_comparison(
    task_dir: Path, runs: dict, chosen: str, reference: str, languages: list[str], resamples: int
) -> dict:
    """
    `chosen` minus `reference` over the seeds both have (`paired_gain`), with the bootstrap over seeds and items,
    both configurations' target means and English dev.
    """
    spec = TASKS[task_dir.name]
    gain = paired_gain(runs[chosen], runs[reference])
    seeds = gain["seeds"]
    check_pooling(task_dir.name, {name: {seed: runs[name][seed] for seed in seeds} for name in (chosen, reference)})
    labels = spec.labels if spec.kind == "token" else None
    counts = {name: load_counts(task_dir, name, seeds, labels, languages) for name in (chosen, reference)}
    gain["bootstrap"] = study_statistics.bootstrap_gain(counts, chosen, reference, spec.kind == "token", resamples)
    gain["means"] = {name: statistics.mean(target_score(runs[name][s]) for s in seeds) for name in (chosen, reference)}
    gain["english_dev"] = {
        name: statistics.mean(dev_score(runs[name][s]) for s in seeds) for name in (chosen, reference)
    }
    return gain


def check_pooling(task: str, runs: dict[str, dict[int, dict]]) -> None:
    """Stop, naming the runs and what differs, where `runs` (name -> seed -> result) may not be pooled."""
    refused = provenance.pooling_differences(runs)
    if refused:
        raise SystemExit(f"{task}: these runs were not made by the same code and settings, and are not pooled: "
                         + "; ".join(refused))  # fmt: skip


def provenance_line(runs: dict[str, dict[int, dict]]) -> str:
    """What the compared runs record of the code, versions and device that made them (one markdown paragraph)."""
    bare = provenance.unrecorded(runs)
    results = [result for by_seed in runs.values() for result in by_seed.values()]
    if bare:
        return (f"Provenance: none of these {len(bare)} runs records its commit, code, versions or data (they predate "
                "2026-12-06, when runs began to record them); docs/results.md names the commits each phase ran "
                "from, as written at the time, but the archive cannot show which code made which run.")  # fmt: skip
    made = {(r["provenance"]["commit"], r["provenance"]["dirty"], r["provenance"]["code_sha256"]) for r in results}
    versions = results[0]["provenance"]["versions"]
    cells = "; ".join(f"commit {commit[:7] if commit else 'none'}{' with uncommitted changes' if dirty else ''}, "
                      f"code {code[:12]}" for commit, dirty, code in sorted(made, key=str))  # fmt: skip
    return (
        f"Provenance ({len(results)} runs, checked equal before pooling): {cells}; torch {versions['torch']}, "
        f"transformers {versions['transformers']}, peft {versions['peft']}."
    )


def verdict(comparison: dict, plan: StudyPlan | ReplicationPlan = STUDY_PLAN) -> str:
    """The plan's verdict sentence for one comparison."""
    mean, p = comparison["mean"], comparison.get("holm_p")
    upper = comparison.get("ci95", [None, None])[1]
    name = comparison["configuration"]
    if p is not None and p < plan.alpha:
        return f"{name} helps ({mean:+.2f} points)" if mean > 0 else f"{name} is worse ({mean:+.2f} points)"
    if upper is not None and upper < plan.equivalence_margin:
        return f"{name} does not help, by at most {max(upper, 0):.2f} points"
    return "too close to call at this budget"


def seed_range(seeds: list[int]) -> str:
    """[6, 7, 8] -> 'seeds 6-8'; [6] -> 'seed 6'."""
    return f"seeds {seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else f"seed {seeds[0]}"


# Languages whose gains were noticed after the first look (docs/results.md, 2026-12-03): their gains on the later
# seeds alone are reported, as descriptive numbers, never tested.
NOTICED_LANGUAGES = {"udpos": ("hi", "ja")}


def later_seeds_note(
    found: dict[str, dict], runs_dir: Path, plan: StudyPlan = STUDY_PLAN, noticed: dict | None = None
) -> str:
    """
    For each task with languages noticed at the first look (`noticed`, by default `NOTICED_LANGUAGES`), their primary
    gains on the seeds after it alone (markdown lines; nothing before such a seed exists).
    """
    lines = []
    for task, languages in (NOTICED_LANGUAGES if noticed is None else noticed).items():
        primary = found.get(task, {}).get("primary")
        if primary is None:
            continue
        runs = load_runs(runs_dir / task)
        chosen, reference = primary["configuration"], primary["reference"]
        later = [seed for seed in primary["seeds"] if seed > plan.first_seeds]  # the comparison's, up to its due seeds
        if not later:
            continue
        gains = language_gains({s: runs[chosen][s] for s in later}, {s: runs[reference][s] for s in later}, languages)
        lines.append(
            f"- **{task}**, descriptive (these languages were noticed after the first look, so they are not tested): "
            f"{chosen} − {reference} on {seed_range(later)} alone: "
            + ", ".join(f"{language} {gains[language]:+.2f}" for language in languages)
            + ".\n"
        )
    return "".join(lines)


def difference(comparison: dict, plan: StudyPlan | ReplicationPlan = STUDY_PLAN) -> str:
    """
    What a secondary comparison shows: the plan gives it a test (in Holm) but no verdict rule, so it says only whether
    the Holm-adjusted test separates the two configurations.
    """
    p, name, reference = comparison.get("holm_p"), comparison["configuration"], comparison["reference"]
    if p is not None and p < plan.alpha:
        return f"{name} {'ahead of' if comparison['mean'] > 0 else 'behind'} {reference} (Holm p {p:.3f})"
    return f"no difference shown (Holm p {'-' if p is None else f'{p:.3f}'} >= {plan.alpha})"


def sequential_rule(found: dict[str, dict], plan: StudyPlan = STUDY_PLAN) -> str:
    """What the plan's sequential rule says of each task that has reached its first look (one markdown line)."""
    looked = {task: c for task, by_kind in found.items() if "first_half_width" in (c := by_kind.get("primary", {}))}
    if not looked:
        return ""
    widths = ", ".join(f"{task} {c['first_half_width']:.2f}" if c["first_half_width"] is not None else f"{task} -"
                       for task, c in looked.items())  # fmt: skip
    line = f"- Sequential rule (plan): half-width of the primary 95% interval at {plan.first_seeds} seeds: {widths} (points). "
    if plan.second_look:
        line += f"{plan.second_look}. "
    wide = [task for task, c in looked.items() if (c["first_half_width"] or 0) > plan.half_width]
    capped = [task for task in wide if looked[task]["seeds_due"] == plan.first_seeds]
    extended = [task for task in wide if task not in capped]
    reasons = {
        task: plan.held_reason(task) or f"the seeds' upper bound is {plan.seeds_upper_bound}" for task in capped
    }
    for why in dict.fromkeys(reasons.values()):
        tasks = " and ".join(task for task in capped if reasons[task] == why)
        line += (f"Above {plan.half_width}, {tasks} would get seeds {plan.first_seeds + 1}-{plan.extended_seeds}, but "
                 f"{why}: stopped at {plan.first_seeds} seeds, reported as they are. ")  # fmt: skip
    if extended:
        line += (
            ("Second look: " if plan.second_look else f"Above {plan.half_width}, extended: ")
            + ", ".join(f"{task} to {looked[task]['seeds_due']} seeds ({looked[task]['n']} done)" for task in extended)
            + ". "
        )
    if not wide:
        line += f"All at most {plan.half_width}: every task stops at {plan.first_seeds} seeds. "
    return line.rstrip() + "\n"


def mark_second_look(found: dict[str, dict], first: dict[str, dict], plan: StudyPlan = STUDY_PLAN) -> None:
    """
    The comparisons at each task's final seeds where the plan's `second_look` says they were decided after the first
    look. No analysis was pre-registered for them, so they get no verdict words (those belong to the pre-registered
    analysis) and Holm over every p-value the report prints (the plan's wording, applied to this report: the first
    look's tests and these, a task held at the first look counted in both tables), the most conservative family;
    beside it, as a sensitivity, Holm over the distinct tests (`holm_p_distinct`) and over the final seeds' tests
    alone (`holm_p_final`, what the study's own Holm gives them). Edits `found` in place.
    """
    printed = {(look, task, kind): c["t_test_p"] for look, comparisons in (("first", first), ("final", found))
               for task, by_kind in comparisons.items() for kind, c in by_kind.items() if "t_test_p" in c}  # fmt: skip
    distinct = {key: p for key, p in printed.items()
                if key[0] == "first" or found[key[1]][key[2]]["n"] > plan.first_seeds}  # fmt: skip
    adjusted, adjusted_distinct = study_statistics.holm(printed), study_statistics.holm(distinct)
    for task, by_kind in found.items():
        for kind, c in by_kind.items():
            c["holm_p_final"] = c["holm_p"]
            c["holm_p"] = adjusted.get(("final", task, kind))
            c["holm_tests"] = len(printed)
            extended = c["n"] > plan.first_seeds
            c["holm_p_distinct"] = adjusted_distinct.get(("final" if extended else "first", task, kind))
            c["verdict"] = (
                f"second look: no verdict (Holm over the {len(printed)} printed tests)"
                if c["n"] > plan.first_seeds
                else f"the first look's {c['n']} seeds, not extended"
            )


def second_look_sensitivity(found: dict[str, dict], plan: StudyPlan = STUDY_PLAN) -> str:
    """One markdown line per extended comparison: its Holm p over each family `mark_second_look` considers."""
    return "".join(
        f"- **{task}** {kind}, second look ({c['n']} seeds), Holm p by family: the {c['holm_tests']} printed tests "
        f"{c['holm_p']:.3f}, the distinct tests {c['holm_p_distinct']:.3f}, the final seeds' tests alone "
        f"{c['holm_p_final']:.3f}; no family was pre-registered for this look.\n"
        for task, by_kind in found.items() for kind, c in by_kind.items() if c["n"] > plan.first_seeds
    )  # fmt: skip


def comparison_table(found: dict[str, dict]) -> str:
    """The study's headline table (markdown)."""
    lines = ["| task | comparison | n | English dev (configuration / reference) | target means (configuration / "
             "reference) | paired gain [95% t interval] | bootstrap 95% (seeds and items) | p (raw / Holm) | verdict |",
             "|---" * 9 + "|"]  # fmt: skip
    for task, by_kind in found.items():
        for kind, c in by_kind.items():
            dev = " / ".join(f"{value:.2f}" for value in c["english_dev"].values())
            means = " / ".join(f"{value:.2f}" for value in c["means"].values())
            interval = f"[{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}]" if "ci95" in c else "-"
            boot = c["bootstrap"]["ci95"]
            holm = "-" if c["holm_p"] is None else f"{c['holm_p']:.3f}"
            p = f"{c['t_test_p']:.3f} / {holm}" if "t_test_p" in c else "-"
            lines.append(f"| {task} | {kind}: {c['configuration']} - {c['reference']} | {c['n']} | {dev} | {means} | "
                         f"{c['mean']:+.2f} {interval} | [{boot[0]:+.2f}, {boot[1]:+.2f}] | {p} | {c['verdict']} |")  # fmt: skip
    return "\n".join(lines) + "\n"


# dlfa_zero_shot/features.py as committed before 876f1d6 (SHA-256): its `words_past_limit` counted the words of a
# length-sorted sentence's first window, not those past the limit (docs/results.md, the correction of 2026-12-07).
MISCOUNTING_FEATURES = frozenset({
    "acad9a03addc96fc92235b72b9fd35dcdb930c11908107a73c93b883b9b595cf",  # e5eed29, the replication's runs
    "d36fb8e4720a0464fd4393f0a3ad911191e92a08dbc724b176010355b33ab889",  # 82e95d9
    "c47bc6d9dfb1656493ae3911734dbacc8e5c586afb1a91048add13a18d292ec3",  # 2902a8f
    "bb38a1182e06460d60044af4e7c0a9dddac836e87234d318f270fdf6085d78e8",  # 9855269, the PAWS-X study's (pairs: none)
})  # fmt: skip


def words_past_miscounted(result: dict) -> bool:
    """Whether a run's `words_past_max_length` may be miscounted: its features.py is a `MISCOUNTING_FEATURES` version,
    or is not recorded (the first study's runs, which predate the records, miscounted: the correction re-counted)."""
    digest = result.get("provenance", {}).get("code_files", {}).get("dlfa_zero_shot/features.py")
    return digest is None or digest in MISCOUNTING_FEATURES


def study_task_section(
    task: str, runs: dict[str, dict[int, dict]], by_kind: dict, figure: Path, document_dir: Path
) -> str:
    """
    One task's details beside its headline: English dev, target average and training time of each compared
    configuration; per-language means and paired gains (English test, where evaluated, apart from the targets);
    the heatmap of per-language gains; how many words lay past the length limit (scored in later windows); the
    devices the runs trained on.
    """
    names = list(dict.fromkeys(name for c in by_kind.values() for name in (c["reference"], c["configuration"])))
    names = [BASELINE] + [name for name in names if name != BASELINE] if BASELINE in names else names
    compared = set.union(*(set(c["seeds"]) for c in by_kind.values()))
    seeds = sorted(set.intersection(compared, *(set(runs[name]) for name in names)))
    runs = {name: {seed: runs[name][seed] for seed in seeds} for name in names}  # the compared runs alone
    first = runs[names[0]][seeds[0]]
    metric, targets = first["metric"], analysis.target_languages(first)
    apart = [language for language in (TRAIN_LANGUAGE,) if language in first["scores"]]
    chosen = by_kind["primary"]["configuration"] if "primary" in by_kind else names[-1]
    base_seconds = median_runtime(runs[names[0]])
    lines = [f"#### {task}: the compared configurations (seeds {seeds})", "",
             "| configuration | English dev | target average | training time per run |", "|---|---|---|---|"]  # fmt: skip
    for name in names:
        dev = mean_std([dev_score(result) for result in runs[name].values()])
        target = mean_std([target_score(result) for result in runs[name].values()])
        lines.append(f"| {name} | {_cell(dev)} | {_cell(target)} | "
                     f"{_time_cell(median_runtime(runs[name]), base_seconds if name != names[0] else None)} |")  # fmt: skip
    devices = Counter(result.get("device", "not recorded") for name in names for result in runs[name].values())
    lines += ["", "Trained on: " + ", ".join(f"{device} ({count} runs)" for device, count in sorted(devices.items()))
              + ".", "", provenance_line(runs)]  # fmt: skip
    pairs = [(c["configuration"], c["reference"]) for c in by_kind.values()]
    gains = {pair: study_statistics.language_gains(runs[pair[0]], runs[pair[1]], targets + apart) for pair in pairs}
    past = first.get("words_past_max_length") or {}
    miscounted = bool(past) and words_past_miscounted(first)
    past_column = ["words past the length limit"] if past and not miscounted else []  # none for pairs
    header = " | ".join(["language", *names, *(f"{a} − {b}" for a, b in pairs), *past_column])
    lines += ["", f"| {header} |", "|---" * (len(names) + len(pairs) + 1 + len(past_column)) + "|"]
    for language in targets + apart:
        means = [
            statistics.mean(100 * runs[name][seed]["scores"][language][metric] for seed in seeds) for name in names
        ]
        label = language if language in targets else f"{language} (apart)"
        cells = [f"{value:.2f}" for value in means] + [f"{gains[pair][language]:+.2f}" for pair in pairs]
        cells += [str(past.get(language, "-"))] if past_column else []
        lines.append(f"| {label} | {' | '.join(cells)} |")
    if miscounted:
        lines += ["", ("The words past the length limit are not shown: the code that made these runs miscounted them, "
                       "or is not recorded (every word is still scored, in later windows); docs/results.md's "
                       "correction of 2026-12-07 gives the true counts of the archived runs.")]  # fmt: skip
    grid = [[gains[pair][language] for language in targets] for pair in pairs]
    path = analysis.heatmap([f"{a} − {b}" for a, b in pairs], targets, grid,
                            f"{task}: paired gain per language ({metric} points, mean over seeds)", figure, gains=True)  # fmt: skip
    lines += ["", f"![{task}: per-language gains of {chosen}]({path.relative_to(document_dir).as_posix()})", ""]
    return "\n".join(lines)


PAWSX_BEGIN, PAWSX_END = "<!-- BEGIN pawsx_report (generated: edit outside) -->", "<!-- END pawsx_report -->"
STUDY_MARKERS = {  # the generated block of each study in docs/results.md, and its figure and comparisons names
    "study": (STUDY_BEGIN, STUDY_END, "study"),
    "pawsx": (PAWSX_BEGIN, PAWSX_END, "pawsx"),
}


def study_main(args: argparse.Namespace) -> None:
    """A pre-registered study's report (`args.study`: its plan in `STUDY_PLANS`): archives, then its block."""
    plan = STUDY_PLANS[args.study]
    begin, end, prefix = STUDY_MARKERS[args.study]
    for task in filter(None, args.restore.split(",")):
        archive = args.results_dir / f"{task}.json"
        if task not in plan.tasks or not archive.is_file():
            raise SystemExit(f"--restore {task}: the archived tasks of this study are "
                             f"{sorted(t for t in plan.tasks if (args.results_dir / f'{t}.json').is_file())}")  # fmt: skip
        print(f"{task}: restored {len(restore_archive(archive, args.runs_dir / task))} archived runs")
    backbone = backbone_shape(args.runs_dir, args.results_dir)  # before the archives are rewritten
    for task in plan.tasks:
        if (args.runs_dir / task).is_dir():
            print(f"archived {write_archive(args.results_dir / f'{task}.json', args.runs_dir / task, backbone)}")
    figure = args.document.parent / "figures" / f"{prefix}_learning_curve.png"
    block = study_progress(args.runs_dir, figure, args.document.parent, plan)
    found = study_comparisons(args.runs_dir, plan=plan)
    if found:
        tests = f"Holm over their {sum(map(len, found.values()))} tests"
        archived = found
        if plan.extended_seeds > plan.first_seeds:  # a sequential rule: its first look is reported as it was
            first = study_comparisons(args.runs_dir, plan=plan, first_look=True)
            block += (
                f"\n### The pre-registered answer: the first look (seeds 1-{plan.first_seeds}, Holm over its "
                f"{sum(map(len, first.values()))} tests, the plan's verdicts)\n\n" + comparison_table(first) + "\n"
                + "".join(f"- **{task}**, first look: {by_kind['primary']['verdict']}.\n"
                          for task, by_kind in first.items() if "primary" in by_kind)
            )  # fmt: skip
            if plan.second_look:
                mark_second_look(found, first, plan)
                archived = {"first_look": first, "final_seeds": found}
            block += (f"\n### {'Second look' if plan.second_look else 'Comparisons'} at each task's final seeds "
                      "(Holm over every p-value this block prints, both tables)\n\n")  # fmt: skip
        else:
            block += f"\n### Comparisons (seeds 1-{plan.first_seeds}, fixed in advance, one look; {tests})\n\n"
        block += comparison_table(found) + "\n"
        block += second_look_sensitivity(found, plan) if plan.second_look else ""
        block += later_seeds_note(found, args.runs_dir, plan, NOTICED_LANGUAGES if args.study == "study" else {})
        if not plan.second_look:
            block += "".join(f"- **{task}**: {by_kind['primary']['verdict']}.\n" for task, by_kind in found.items()
                             if "primary" in by_kind)  # fmt: skip
        block += sequential_rule(found, plan) if plan.extended_seeds > plan.first_seeds else ""
        for task, by_kind in found.items():
            figure = args.document.parent / "figures" / f"{prefix}_gains_{task}.png"
            block += "\n" + study_task_section(task, load_runs(args.runs_dir / task), by_kind, figure,
                                                args.document.parent)  # fmt: skip
        if backbone:
            block += "\n#### Parameters added by each fusion (token classifier)\n\n" + parameter_overhead(backbone)
        comparisons = "comparisons.json" if args.study == "study" else f"{prefix}_comparisons.json"
        write_atomically(args.results_dir / comparisons, json.dumps(archived, indent=1) + "\n")
    print(block)
    replace_generated(args.document, block, begin, end)


# ---------------------------------------------------------------------------------------------------------------------
# The UDPOS replication (docs/replication-plan.md): fixed seeds, one look


REPLICATION_BEGIN = "<!-- BEGIN replication_report (generated: edit outside) -->"
REPLICATION_END = "<!-- END replication_report -->"


def restrict_targets(result: dict, languages: list[str]) -> dict:
    """`result` scored on `languages` alone (English dev and test kept), its target average recomputed over them."""
    scores = {key: value for key, value in result["scores"].items()
              if key in ("selection", TRAIN_LANGUAGE) or key in languages}  # fmt: skip
    average = statistics.mean(scores[language][result["metric"]] for language in languages)
    return {**result, "scores": scores, "target_average": average}


def replication_runs(runs_dir: Path, plan: ReplicationPlan = REPLICATION_PLAN) -> tuple[dict, list[str]]:
    """The plan's runs found under `runs_dir/<task>` (name -> seed -> result), and the missing ones ("baseline seed 11")."""
    runs = load_runs(runs_dir / plan.task)
    found = {name: {seed: runs[name][seed] for seed in plan.seeds if seed in runs.get(name, {})}
             for name in plan.configurations}  # fmt: skip
    missing = [f"{name} seed {seed}" for seed in plan.seeds for name in plan.configurations if seed not in found[name]]
    return found, missing


def replication_comparisons(
    runs_dir: Path, plan: ReplicationPlan = REPLICATION_PLAN, resamples: int | None = None
) -> tuple[dict, dict]:
    """
    The plan's one look, once every run is there: primary (DLFA minus the baseline) and secondary (DLFA minus the
    concatenation) on the study's target languages (`plan.target_languages`, each of which every run must have
    scored), Holm over these 2 tests, the study plan's verdict words. Returns (the comparisons, the compared runs scored
    on those languages). Raises ValueError while a run is missing: there is no interim look.
    """
    runs, missing = replication_runs(runs_dir, plan)
    if missing:
        raise ValueError(f"the replication's one look needs every run; missing: {', '.join(missing)}")
    baseline, dlfa, concat = plan.configurations
    check_pooling(plan.task, runs)
    languages = list(plan.target_languages)
    unscored = sorted({f"{name} seed {seed}" for name, by_seed in runs.items() for seed, result in by_seed.items()
                       if not set(languages) <= set(result["scores"])})  # fmt: skip
    if unscored:
        raise SystemExit(
            f"{plan.task}: the replication tests {languages}, which these runs did not all score: {unscored}"
        )
    studied = {name: {seed: restrict_targets(result, languages) for seed, result in by_seed.items()}
               for name, by_seed in runs.items()}  # fmt: skip
    draws = plan.bootstrap_resamples if resamples is None else resamples
    found = {kind: {"configuration": dlfa, "reference": reference,
                    **paired_comparison(runs_dir / plan.task, studied, dlfa, reference, languages, draws)}
             for kind, reference in (("primary", baseline), ("secondary", concat))}  # fmt: skip
    adjusted = study_statistics.holm({kind: comparison["t_test_p"] for kind, comparison in found.items()})
    for kind, comparison in found.items():
        comparison["holm_p"] = adjusted[kind]
        comparison["verdict"] = verdict(comparison, plan) if kind == "primary" else difference(comparison, plan)
    return found, studied


def descriptive_table(runs: dict[str, dict[int, dict]], plan: ReplicationPlan = REPLICATION_PLAN) -> str:
    """The plan's descriptive languages: each configuration's mean, DLFA's paired gains, and their mean (markdown)."""
    baseline, dlfa, concat = plan.configurations
    languages = list(plan.descriptive_languages)
    metric = runs[baseline][plan.seeds[0]]["metric"]
    means = {name: {language: statistics.mean(100 * result["scores"][language][metric] for result in by_seed.values())
                    for language in languages} for name, by_seed in runs.items()}  # fmt: skip
    gains = {reference: language_gains(runs[dlfa], runs[reference], languages) for reference in (baseline, concat)}
    lines = [f"| language | {baseline} | {dlfa} | {concat} | {dlfa} − {baseline} | {dlfa} − {concat} |",
             "|---" * 6 + "|"]  # fmt: skip
    for language in [*languages, "mean"]:
        cells = [statistics.mean(means[name].values()) if language == "mean" else means[name][language]
                 for name in plan.configurations]  # fmt: skip
        cells += [statistics.mean(gains[ref].values()) if language == "mean" else gains[ref][language]
                  for ref in (baseline, concat)]  # fmt: skip
        lines.append(f"| {language} | " + " | ".join(f"{value:.2f}" for value in cells[:3]) + " | "
                     + " | ".join(f"{value:+.2f}" for value in cells[3:]) + " |")  # fmt: skip
    return "\n".join(lines) + "\n"


def replication_block(
    runs_dir: Path, document_dir: Path, plan: ReplicationPlan = REPLICATION_PLAN
) -> tuple[str, dict]:
    """The replication's generated block: which runs are done until all are, then the one look; and its comparisons."""
    runs, missing = replication_runs(runs_dir, plan)
    total = len(plan.seeds) * len(plan.configurations)
    lines = [f"### UDPOS replication: {seed_range(list(plan.seeds))}, fixed in advance, one look "
             "(docs/replication-plan.md)", ""]  # fmt: skip
    if missing:
        done = ", ".join(f"{name} (seeds {sorted(by_seed)})" for name, by_seed in runs.items() if by_seed) or "none"
        lines.append(f"{total - len(missing)} of {total} runs done: {done}. By the plan no comparison is computed "
                     f"before all {total} are: no interim look.")  # fmt: skip
        return "\n".join(lines) + "\n", {}
    found, studied = replication_comparisons(runs_dir, plan)
    figure = document_dir / "figures" / f"replication_gains_{plan.task}.png"
    lines += [comparison_table({plan.task: found}), f"- **{plan.task}**, replication: {found['primary']['verdict']}.",
              f"- Secondary: {found['secondary']['verdict']}.", "",
              study_task_section(plan.task, studied, found, figure, document_dir),
              f"Languages the study never scored (descriptive, in no test; {TASKS[plan.task].metric_name}, mean of "
              f"{len(plan.seeds)} seeds):", "", descriptive_table(runs, plan)]  # fmt: skip
    return "\n".join(lines), found


def replication_main(args: argparse.Namespace, plan: ReplicationPlan = REPLICATION_PLAN) -> None:
    """The replication's report: archive its runs (`<task>_replication.json`), then its block in the document."""
    archive = args.results_dir / f"{plan.task}_replication.json"
    task_dir = args.runs_dir / plan.task
    for task in filter(None, args.restore.split(",")):
        if task != plan.task or not archive.is_file():
            raise SystemExit(f"--restore {task}: the replication's archive is {archive} (task {plan.task})")
        print(f"{task}: restored {len(restore_archive(archive, task_dir, archive.stem))} archived replication runs")
    if task_dir.is_dir():
        print(f"archived {write_archive(archive, task_dir, None, predictions=archive.stem)}")
    block, found = replication_block(args.runs_dir, args.document.parent, plan)
    if found:
        write_atomically(args.results_dir / f"{archive.stem}_comparisons.json", json.dumps(found, indent=1) + "\n")
    print(block)
    replace_generated(args.document, block, REPLICATION_BEGIN, REPLICATION_END)


def main(argv: list[str] | None = None, root: Path = Path(".")) -> None:
    """The report's command line; `root` is the repository root the default folders are under."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--study", choices=("small", *STUDY_PLANS, "replication"), default="small", help="which study to report"
    )
    parser.add_argument("--runs_dir", type=Path, help="default: benchmarks/runs/<study>")
    parser.add_argument("--results_dir", type=Path, help="default: benchmarks/results/zero_shot (small), .../study")
    parser.add_argument("--document", type=Path, default=root / "docs" / "results.md")
    parser.add_argument(
        "--restore",
        default="",
        help="comma-separated tasks whose archived runs (in --results_dir) are written back under --runs_dir first",
    )
    args = parser.parse_args(argv)
    args.runs_dir = args.runs_dir or root / "benchmarks" / "runs" / args.study
    args.results_dir = args.results_dir or root / "benchmarks" / "results" / (
        "zero_shot" if args.study == "small" else "study"
    )
    if args.study in STUDY_PLANS:
        return study_main(args)
    if args.study == "replication":
        return replication_main(args)

    for task in filter(None, args.restore.split(",")):
        if task not in PAPER:
            raise SystemExit(f"--restore {task}: choose among {sorted(PAPER)}")
        archive = args.results_dir / f"{task}.json"
        if not archive.is_file():
            archived = sorted(path.stem for path in args.results_dir.glob("*.json"))
            raise SystemExit(f"--restore {task}: there is no {archive}; the archived tasks are {archived}")
        written = restore_archive(archive, args.runs_dir / task)
        print(f"{task}: restored {len(written)} archived runs under {args.runs_dir / task}")

    backbone = backbone_shape(args.runs_dir, args.results_dir)  # before the archives are rewritten
    sections, summaries = [], []
    for task in PAPER:
        runs = load_runs(args.runs_dir / task)
        if BASELINE not in runs:
            continue
        summary = summarize(task, runs)
        summaries.append(summary)
        write_archive(args.results_dir / f"{task}.json", args.runs_dir / task, backbone, summary)
        searches = analysis.load_searches(args.runs_dir / task)
        figure = heatmap(summary, args.document.parent / "figures" / f"zero_shot_heatmap_{FIGURE_NAMES[task]}.png")
        sections.append(markdown(summary, figure and figure.relative_to(args.document.parent).as_posix()))
        if searches:
            sections.append(search_section(task, study_statistics.layer_search_validation(runs, searches)))
        print(sections[-1])
    if not sections:
        raise SystemExit(f"no finished runs under {args.runs_dir}")
    sections.append(paper_comparison(summaries))
    if backbone:
        sections.append("### Parameters added by each fusion (token classifier)\n\n" + parameter_overhead(backbone))
    replace_generated(args.document, "\n".join(sections))
