"""
Turns the zero-shot benchmark's runs (benchmarks/zero_shot_benchmark.py) into the published report: one JSON file a
task in benchmarks/results/zero_shot/, the heatmaps in docs/figures/, and the generated part of docs/results.md
(between its BEGIN/END markers; the hand-written text around them is kept).

    python benchmarks/zero_shot_report.py            # every task with runs under benchmarks/runs/small

Selection follows the zero-shot rule: the DLFA layer is the one with the best mean English dev score over the seeds
every sweep layer has; its gain over the baseline is the paired difference of target-language averages over the seeds
both have, with a paired t-test and a 95% t interval. The paper's protocol (the best test average over the layers) is
reported apart.
"""

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

import matplotlib


matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from scipy import stats  # noqa: E402


ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- BEGIN zero_shot_report (generated: edit outside) -->", "<!-- END zero_shot_report -->"
TASK_TITLES = {"udpos": "UDPOS (POS tagging, seqeval F1)", "panx": "PAN-X (NER, seqeval F1)",
               "xnli": "XNLI (accuracy)", "pawsx": "PAWS-X (accuracy)"}  # fmt: skip
# The paper's Table 1 (mBERT-base, XTREME test average over target languages, best of the 11 layers, one seed).
PAPER = {
    "udpos": (70.28, 71.81, 10),
    "panx": (62.17, 63.34, 8),
    "xnli": (65.40, 66.91, 11),
    "pawsx": (81.94, 84.37, 6),
}
TARGET_GAIN = {"udpos": 1.5, "panx": 1.2}
# Figure files are named by what the task is, not by the data set.
FIGURE_NAMES = {"udpos": "pos", "panx": "ner", "xnli": "nli", "pawsx": "paraphrase"}
SWEEP_PREFIX = "aif-layer-"
CONCAT_PREFIX = "concat-layer-"  # the benchmark names the concatenation variant by its layer, like the sweep
TRAIN_RUNTIME = re.compile(r"'train_runtime': '([0-9.]+)'")


def collect(task_dir: Path) -> dict[str, dict[int, dict]]:
    """experiment -> seed -> the harness's results.json of that run, with the Trainer's train_runtime from its log."""
    runs: dict[str, dict[int, dict]] = {}
    for results_file in sorted(task_dir.glob("*/seed-*/*/results.json")):
        experiment, seed = results_file.parts[-4], int(results_file.parts[-3].removeprefix("seed-"))
        result = json.loads(results_file.read_text())
        log = results_file.parent.parent / "log.txt"
        runtimes = TRAIN_RUNTIME.findall(log.read_text()) if log.exists() else []
        if runtimes:
            result["train_runtime_seconds"] = float(runtimes[-1])
        else:  # a run restored from the archive carries it; any other run without a log has none
            result.setdefault("train_runtime_seconds", None)
        runs.setdefault(experiment, {})[seed] = result
    return runs


def write_results(path: Path, summary: dict, runs: dict[str, dict[int, dict]], backbone: dict | None) -> None:
    """
    The committed archive of a task: its summary, every run's results (what `restore_runs` reads back) and the
    backbone's shape (for the parameter table, as the runs' model files are not archived).
    """
    path.write_text(json.dumps({"summary": summary, "runs": runs, "backbone_shape": backbone}, indent=1) + "\n")


def restore_runs(results_file: Path, task_dir: Path) -> list[Path]:
    """
    Write the runs archived in a committed results JSON back as run folders (results.json only, no weights), so that
    the report can be regenerated, and the benchmark resumed, on a machine without the original runs. A run folder
    that already holds a finished run is left alone. Returns the results files written.
    """
    written = []
    for experiment, by_seed in json.loads(results_file.read_text())["runs"].items():
        for seed, result in by_seed.items():
            seed_dir = task_dir / experiment / f"seed-{seed}"
            if any(seed_dir.glob("*/results.json")):
                continue
            target = seed_dir / result["run"] / "results.json"
            target.parent.mkdir(parents=True, exist_ok=True)  # an unfinished run's folder may be there
            target.write_text(json.dumps(result, indent=1) + "\n")
            written.append(target)
    return written


def dev_score(result: dict) -> float:
    return 100 * result["scores"]["selection"][result["metric"]]


def target_score(result: dict) -> float:
    return 100 * result["target_average"]


def mean_std(values: list[float]) -> dict:
    return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else None,
            "n": len(values)}  # fmt: skip


def paired_gain(runs: dict[int, dict], baseline: dict[int, dict]) -> dict | None:
    """Target-average gain over the baseline on the seeds both have: mean, std, paired t-test, 95% t interval."""
    seeds = sorted(set(runs) & set(baseline))
    if not seeds:
        return None
    differences = [target_score(runs[seed]) - target_score(baseline[seed]) for seed in seeds]
    gain = {"seeds": seeds, "differences": differences, **mean_std(differences)}
    if len(seeds) > 1 and gain["std"] > 0:
        half_width = stats.t.ppf(0.975, len(seeds) - 1) * gain["std"] / len(seeds) ** 0.5
        gain["ci95"] = [gain["mean"] - half_width, gain["mean"] + half_width]
        gain["t_test_p"] = float(stats.ttest_rel([target_score(runs[s]) for s in seeds],
                                                 [target_score(baseline[s]) for s in seeds]).pvalue)  # fmt: skip
    return gain


def language_gains(runs: dict[int, dict], baseline: dict[int, dict], languages: list[str]) -> dict[str, float]:
    """Per-language score minus the baseline's, averaged over the seeds both have."""
    seeds = sorted(set(runs) & set(baseline))
    metric = runs[seeds[0]]["metric"]
    return {
        language: statistics.mean(
            100 * (runs[seed]["scores"][language][metric] - baseline[seed]["scores"][language][metric])
            for seed in seeds
        )
        for language in languages
    }


def select_layer(runs: dict[str, dict[int, dict]]) -> tuple[list[int], str, str]:
    """
    The sweep's layer chosen on English dev, and the one the paper's protocol would report (best target average),
    both compared on the seeds every sweep layer has, so that no layer wins by having more seeds.
    Returns (those seeds, the dev-selected experiment, the best-of-layers experiment).
    """
    sweep = {name: by_seed for name, by_seed in runs.items() if name.startswith(SWEEP_PREFIX)}
    shared = sorted(set.intersection(*(set(by_seed) for by_seed in sweep.values())))
    if not shared:
        raise ValueError(
            f"the sweep layers share no seed: {[(name, sorted(by_seed)) for name, by_seed in sweep.items()]}"
        )

    def mean_over_shared(name: str, score) -> float:
        return statistics.mean(score(sweep[name][seed]) for seed in shared)

    by_dev = max(sweep, key=lambda name: mean_over_shared(name, dev_score))
    by_test = max(sweep, key=lambda name: mean_over_shared(name, target_score))
    return shared, by_dev, by_test


def median_runtime(by_seed: dict[int, dict]) -> float | None:
    runtimes = [result["train_runtime_seconds"] for result in by_seed.values() if result["train_runtime_seconds"]]
    return statistics.median(runtimes) if runtimes else None


def summarize(task: str, runs: dict[str, dict[int, dict]]) -> dict:
    """Every statistic the report shows, from the runs alone."""
    baseline = runs["baseline"]
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
            "gain_over_baseline": None if name == "baseline" else paired_gain(by_seed, baseline),
            "language_gains": None if name == "baseline" else language_gains(by_seed, baseline, languages),
            "train_seconds_median": median_runtime(by_seed),
            "per_seed": {
                seed: {"english_dev": dev_score(r), "target_average": target_score(r)} for seed, r in by_seed.items()
            },
        }

    summary = {"task": task, "metric": metric, "languages": languages, "experiments": experiments}
    if any(name.startswith(SWEEP_PREFIX) for name in runs):
        shared, by_dev, by_test = select_layer(runs)
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
                for peer in (CONCAT_PREFIX + by_dev.removeprefix(SWEEP_PREFIX), "scalar-mix")
                if peer in runs
            },
        }
        gain = experiments[by_dev]["gain_over_baseline"]
        spread = [experiments[name]["target_average"]["std"] for name in (by_dev, "baseline")]
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


def experiment_order(name: str) -> tuple:
    return (name != "baseline", not name.startswith(SWEEP_PREFIX), name)


def markdown(summary: dict, figure_link: str | None) -> str:
    task, languages = summary["task"], summary["languages"]
    targets = [language for language in languages if language != "en"]
    lines = [f"### {TASK_TITLES[task]}", ""]
    header = "| configuration | seeds | en dev | target avg | gain vs baseline [95% CI], paired t-test | train time | "
    lines += [header + " | ".join(targets) + " |", "|---" * (6 + len(targets)) + "|"]
    base_time = summary["experiments"]["baseline"]["train_seconds_median"]
    for name in sorted(summary["experiments"], key=experiment_order):
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
    names = sorted((name for name in experiments if name != "baseline"), key=experiment_order)
    if not names:
        return None
    languages = [language for language in summary["languages"] if language != "en"]
    grid = [
        [experiments[name]["language_gains"][language] for language in languages]
        + [experiments[name]["gain_over_baseline"]["mean"]]
        for name in names
    ]
    languages.append("avg")
    bound = max(abs(value) for row in grid for value in row) or 1.0
    figure, axes = plt.subplots(figsize=(2 + 0.65 * len(languages), 1 + 0.45 * len(names)))
    image = axes.imshow(grid, cmap="RdBu", vmin=-bound, vmax=bound, aspect="auto")
    axes.set_xticks(range(len(languages)), languages)
    axes.set_yticks(range(len(names)), names)
    for row, values in enumerate(grid):
        for column, value in enumerate(values):
            axes.text(column, row, f"{value:+.1f}", ha="center", va="center", fontsize=7)
    axes.set_title(f"{summary['task']}: minus the baseline ({summary['metric']} points, paired seeds)", fontsize=9)
    figure.colorbar(image, ax=axes)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


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
    configs = sorted(runs_dir.glob(f"*/{SWEEP_PREFIX}*/seed-*/*/model/config.json"))
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

    sys.path.insert(0, str(ROOT))
    from modeling_dlfa import DLFABertConfig, DLFABertForTokenClassification

    shapes = {"benchmark backbone": backbone, "mBERT-base": MBERT_BASE_SHAPE}
    lines = ["| fusion | " + " | ".join(shapes) + " |", "|---" * (1 + len(shapes)) + "|"]
    for method in ("aif", "concat", "scalar_mix"):
        cells = []
        for shape in shapes.values():
            config = DLFABertConfig(**{key: shape[key] for key in SHAPE_KEYS}, fusion_method=method, num_labels=17)
            with torch.device("meta"):
                model = DLFABertForTokenClassification(config)
            fusion = sum(parameter.numel() for parameter in model.bert.fusion.parameters())
            rest = sum(parameter.numel() for parameter in model.parameters()) - fusion
            cells.append(f"{fusion:,} (+{100 * fusion / rest:.2f}%)")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def replace_generated(document: Path, generated: str) -> None:
    """Write `generated` between the markers of `document`, keeping everything outside them."""
    text = document.read_text() if document.exists() else f"# Results\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{document} lacks the markers {BEGIN!r} ... {END!r}; add them where the tables belong")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    document.write_text(f"{head}{BEGIN}\n{generated}{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs_dir", type=Path, default=ROOT / "benchmarks" / "runs" / "small")
    parser.add_argument("--results_dir", type=Path, default=ROOT / "benchmarks" / "results" / "zero_shot")
    parser.add_argument("--document", type=Path, default=ROOT / "docs" / "results.md")
    parser.add_argument(
        "--restore",
        default="",
        help="comma-separated tasks whose archived runs (in --results_dir) are written back under --runs_dir first",
    )
    args = parser.parse_args()

    for task in filter(None, args.restore.split(",")):
        if task not in TASK_TITLES:
            raise SystemExit(f"--restore {task}: choose among {sorted(TASK_TITLES)}")
        archive = args.results_dir / f"{task}.json"
        if not archive.is_file():
            archived = sorted(path.stem for path in args.results_dir.glob("*.json"))
            raise SystemExit(f"--restore {task}: there is no {archive}; the archived tasks are {archived}")
        written = restore_runs(archive, args.runs_dir / task)
        print(f"{task}: restored {len(written)} archived runs under {args.runs_dir / task}")

    backbone = backbone_shape(args.runs_dir, args.results_dir)  # before the archives are rewritten
    sections, summaries = [], []
    for task in TASK_TITLES:
        runs = collect(args.runs_dir / task)
        if "baseline" not in runs:
            continue
        summary = summarize(task, runs)
        summaries.append(summary)
        args.results_dir.mkdir(parents=True, exist_ok=True)
        write_results(args.results_dir / f"{task}.json", summary, runs, backbone)
        figure = heatmap(summary, args.document.parent / "figures" / f"zero_shot_heatmap_{FIGURE_NAMES[task]}.png")
        sections.append(markdown(summary, figure and figure.relative_to(args.document.parent).as_posix()))
        print(sections[-1])
    if not sections:
        raise SystemExit(f"no finished runs under {args.runs_dir}")
    sections.append(paper_comparison(summaries))
    if backbone:
        sections.append("### Parameters added by each fusion (token classifier)\n\n" + parameter_overhead(backbone))
    replace_generated(args.document, "\n".join(sections))


if __name__ == "__main__":
    main()
