"""The benchmark report's statistics and document handling, on results.json files laid out as the benchmark does."""

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from dlfa_zero_shot import names
from dlfa_zero_shot.analysis import load_runs as collect
from dlfa_zero_shot.plans import StudyPlan
from dlfa_zero_shot.report import (
    BEGIN,
    END,
    backbone_shape,
    replace_generated,
    restore_archive,
    summarize,
    write_archive,
)
from dlfa_zero_shot.tasks import TRAIN_LANGUAGE


def write_run(task_dir: Path, experiment: str, seed: int, dev: float, targets: dict[str, float]) -> None:
    """One run's results.json as the harness writes it (scores as fractions), where the benchmark puts it."""
    run_dir = task_dir / f"seed-{seed}" / experiment
    run_dir.mkdir(parents=True)
    scores = {"selection": {"f1": dev / 100}, **{language: {"f1": value / 100} for language, value in targets.items()}}
    average = sum(targets.values()) / len(targets) / 100
    result = {"run": experiment, "seed": seed, "metric": "f1", "scores": scores, "target_average": average,
              "train_runtime_seconds": 100.5 + seed}  # fmt: skip
    (run_dir / "results.json").write_text(json.dumps(result))


@pytest.fixture
def task_dir(tmp_path) -> Path:
    task_dir = tmp_path / "udpos"
    for seed, base in ((1, 70.0), (2, 71.0), (3, 69.0)):
        write_run(task_dir, "baseline", seed, 90.0, {"de": base - 5, "zh": base + 5})
    # Layer 4 is best on English dev; layer 2 would win on the test languages (the paper's protocol).
    write_run(task_dir, "aif-layer-02", 1, 89.0, {"de": 80.0, "zh": 80.0})
    for seed, gain in ((1, 1.5), (2, 2.5), (3, 3.5)):
        base = {1: 70.0, 2: 71.0, 3: 69.0}[seed]
        write_run(task_dir, "aif-layer-04", seed, 91.0, {"de": base + gain - 5, "zh": base + gain + 5})
        write_run(task_dir, "concat-layer-04", seed, 91.0, {"de": base + 2 * gain - 5, "zh": base + 2 * gain + 5})
    write_run(task_dir, "concat-layer-02", 1, 91.0, {"de": 90.0, "zh": 90.0})  # not the chosen layer: no peer of it
    return task_dir


def test_layer_is_chosen_on_english_dev_and_its_gain_is_paired_over_seeds(task_dir):
    summary = summarize("udpos", collect(task_dir))
    selection = summary["selection"]
    assert selection["seeds_compared"] == [1]  # the only seed every layer has
    assert selection["dev_selected"] == "aif-layer-04"
    assert selection["best_of_layers_paper_protocol"] == "aif-layer-02"
    assert selection["best_of_layers_gain_on_compared_seeds"] == pytest.approx(10.0)

    gain = selection["dev_selected_gain"]
    assert gain["seeds"] == [1, 2, 3] and gain["differences"] == pytest.approx([1.5, 2.5, 3.5])
    assert gain["mean"] == pytest.approx(2.5) and gain["std"] == pytest.approx(1.0)
    half_width = 4.302653 / 3**0.5  # t(0.975, 2 degrees of freedom) * std / sqrt(n)
    assert gain["ci95"] == pytest.approx([2.5 - half_width, 2.5 + half_width], abs=1e-5)
    assert gain["t_test_p"] == pytest.approx(0.0495, abs=5e-4)  # t = 2.5 * sqrt(3) = 4.33, 2 degrees of freedom

    # DLFA against the concatenation of the same two layers, paired by seed
    assert list(selection["dlfa_minus_peers"]) == ["concat-layer-04"]
    assert selection["dlfa_minus_peers"]["concat-layer-04"]["differences"] == pytest.approx([-1.5, -2.5, -3.5])

    # The target: a gain of at least 1.5 that also exceeds two standard deviations of either configuration.
    assert summary["targets"]["two_std_across_seeds"] == pytest.approx(2.0) and summary["targets"]["met"] is True
    assert summary["experiments"]["baseline"]["languages"] == {"de": pytest.approx(65.0), "zh": pytest.approx(75.0)}
    assert summary["experiments"]["baseline"]["train_seconds_median"] == 102.5  # the runs' Trainer train_runtime


def test_generated_part_is_replaced_and_hand_written_text_kept(tmp_path):
    document = tmp_path / "results.md"
    document.write_text(f"# Results\n\nIntro by hand.\n\n{BEGIN}\nold tables\n{END}\n\n## Conclusions by hand\n")
    replace_generated(document, "new tables\n")
    replace_generated(document, "newer tables\n")
    text = document.read_text()
    assert "Intro by hand." in text and "## Conclusions by hand" in text
    assert "newer tables" in text and "new tables\n" not in text.replace("newer tables\n", "")
    assert "old tables" not in text

    document.write_text("# Results without markers\n")
    with pytest.raises(SystemExit, match=re.escape("lacks the markers")):
        replace_generated(document, "tables\n")
    assert document.read_text() == "# Results without markers\n"


def test_an_archive_is_never_replaced_by_one_that_lacks_its_runs(task_dir, tmp_path):
    """On a new machine the report over a runs folder without the archived runs (no --restore) rewrote the committed
    archive with the new runs alone; now it refuses, names what would go and writes nothing, until they are back."""
    archive = write_archive(tmp_path / "udpos.json", task_dir, None)
    committed = archive.read_text()
    fresh = tmp_path / "fresh" / "udpos"
    write_run(fresh, "baseline", 6, 50.0, {"de": 1.0, "zh": 1.0})  # a new run, made where the others are not
    lacking = "result(s) the runs folder lacks (seed-1/aif-layer-02, seed-1/aif-layer-04"
    with pytest.raises(SystemExit, match=re.escape(lacking)) as refused:
        write_archive(archive, fresh, None)
    assert "--restore udpos with the --study" in str(refused.value) and archive.read_text() == committed
    restore_archive(archive, fresh)
    archived = json.loads(write_archive(archive, fresh, None).read_text())
    assert sorted(archived["runs"]["baseline"]) == sorted([*json.loads(committed)["runs"]["baseline"], "6"])


def test_archived_runs_restore_to_the_same_report_without_overwriting_runs(task_dir, tmp_path):
    """A fresh machine has only the committed JSON: restoring it must give back the same statistics."""
    runs = collect(task_dir)
    archive = tmp_path / "udpos.json"
    shape = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37}
    shape["vocab_size"] = 99
    write_archive(archive, task_dir, shape, summarize("udpos", runs))
    assert (
        json.loads(archive.read_text())["runs"]["baseline"]["1"]["target_average"]
        == runs["baseline"][1]["target_average"]
    )

    fresh = tmp_path / "fresh" / "udpos"
    write_run(fresh, "baseline", 1, 50.0, {"de": 1.0, "zh": 1.0})  # a run already there is not replaced
    written = restore_archive(archive, fresh)
    assert len(written) == sum(len(by_seed) for by_seed in runs.values()) - 1
    assert collect(fresh)["baseline"][1]["target_average"] == pytest.approx(0.01)

    (fresh / "seed-1" / "baseline" / "results.json").unlink()
    restore_archive(archive, fresh)
    assert summarize("udpos", collect(fresh)) == summarize("udpos", runs)
    # no model files come back: the parameter table takes the backbone's shape from the archive
    assert not list(fresh.rglob("config.json")) and backbone_shape(fresh.parent, tmp_path) == shape


def test_an_archived_curve_run_holds_no_machine_paths(tmp_path):
    """
    A curve run's record names its data folder, output folder and program as the harness saw them; the archive keeps
    each only as `<machine>/` and its last parts, as it does for every other run (before, curve runs went in whole,
    and PAWS-X's archive held this machine's folders).
    """
    task_dir = tmp_path / "pawsx"
    run_dir = task_dir / "curve" / "n-1000" / "seed-1" / "baseline"
    run_dir.mkdir(parents=True)
    epochs = [{"epoch": 1.0, "step": 32, "score": 0.5685}]
    result = {"run": "baseline", "seed": 1, "selection_by_epoch": epochs,
              "provenance": {"argv": ["--data_dir", "/work/shared/data/xtreme-lite", "--output_dir", str(run_dir)]}}  # fmt: skip
    (run_dir / "results.json").write_text(json.dumps(result))
    archive = write_archive(tmp_path / "pawsx.json", task_dir, None)
    assert str(tmp_path) not in archive.read_text() and "/work/" not in archive.read_text()
    argv = json.loads(archive.read_text())["curve"]["n-1000"]["provenance"]["argv"]
    assert argv[1] == "<machine>/shared/data/xtreme-lite" and argv[3] == "<machine>/n-1000/seed-1/baseline"
    restore_archive(tmp_path / "pawsx.json", tmp_path / "fresh" / "pawsx")
    assert (tmp_path / "fresh" / "pawsx" / "curve" / "n-1000" / "seed-1" / "baseline" / "results.json").exists()


def write_study_run(
    runs_dir: Path,
    name: str,
    seed: int,
    dev: float,
    correct: dict[str, np.ndarray],
    device: str = "cpu",
    task: str = "xnli",
) -> None:
    """
    A run as the harness writes it: results.json (the target average leaves English out) and predictions.npz (gold all
    0, predicted 0 if correct).
    """
    run_dir = runs_dir / task / f"seed-{seed}" / name
    run_dir.mkdir(parents=True)
    scores = {"selection": {"accuracy": dev}, **{lang: {"accuracy": float(c.mean())} for lang, c in correct.items()}}
    targets = [c.mean() for language, c in correct.items() if language != TRAIN_LANGUAGE]
    result = {"run": name, "seed": seed, "metric": "accuracy", "scores": scores, "device": device,
              "target_average": float(np.mean(targets)) if targets else None}  # fmt: skip
    (run_dir / "results.json").write_text(json.dumps(result))
    arrays = {}
    for language, c in correct.items():
        arrays[f"{language}.predicted"] = np.where(c, 0, 1).astype(np.int16)
        arrays[f"{language}.gold"] = np.zeros(len(c), dtype=np.int16)
    np.savez_compressed(run_dir / "predictions.npz", **arrays)


def test_study_comparisons_choose_the_layer_on_dev_and_adjust_every_printed_test(tmp_path):
    from dlfa_zero_shot.report import comparison_table, study_comparisons

    rng = np.random.default_rng(0)
    for seed in (1, 2, 3):
        base = {lang: rng.random(300) < 0.6 for lang in ("de", "zh")}
        better = {lang: values | (rng.random(300) < 0.15) for lang, values in base.items()}  # DLFA adds right answers
        write_study_run(tmp_path, "baseline", seed, 0.70, base)
        write_study_run(tmp_path, "aif-layer-10", seed, 0.72, better)
        write_study_run(tmp_path, "aif-layer-08", seed, 0.60, base)
        peer = {lang: values & (rng.random(300) > 0.01 * seed) for lang, values in better.items()}  # a little worse
        write_study_run(tmp_path, "concat-layer-10", seed, 0.71, peer)
        if seed < 3:  # the plan's layer choice: layers 8, 10, 11 on seeds 1 and 2
            write_study_run(tmp_path, "aif-layer-11", seed, 0.65, base)
    write_study_run(tmp_path, "aif-layer-06", 1, 0.99, base)  # not a candidate of the plan: plays no part
    found = study_comparisons(tmp_path, resamples=300, plan=StudyPlan(first_seeds=3, seeds_upper_bound=3))["xnli"]
    primary, secondary = found["primary"], found["secondary"]
    assert primary["configuration"] == "aif-layer-10" and primary["reference"] == "baseline"
    assert secondary["reference"] == "concat-layer-10" and 0 < secondary["mean"] < 3
    assert primary["mean"] > 5 and primary["bootstrap"]["ci95"][0] < primary["mean"] < primary["bootstrap"]["ci95"][1]
    ordered = sorted([primary, secondary], key=lambda c: c["t_test_p"])  # two tests printed: Holm x2, then x1
    assert ordered[0]["holm_p"] == pytest.approx(min(1.0, 2 * ordered[0]["t_test_p"]))
    assert ordered[1]["holm_p"] == pytest.approx(max(ordered[0]["holm_p"], ordered[1]["t_test_p"]))
    assert primary["verdict"].startswith("aif-layer-10 helps")
    table = comparison_table({"xnli": found})
    assert "| xnli | primary: aif-layer-10 - baseline | 3 |" in table

    interim = study_comparisons(tmp_path, resamples=10)["xnli"]["primary"]  # the plan's first look is at 5 seeds
    assert interim["holm_p"] is None and interim["verdict"] == "interim (3 of 5 seeds): no verdict yet"
    assert f"| {interim['t_test_p']:.3f} / - |" in comparison_table({"xnli": {"primary": interim}})

    shutil.rmtree(tmp_path / "xnli" / "seed-2" / "aif-layer-11")  # no comparison before the layer choice is complete
    assert study_comparisons(tmp_path, resamples=10) == {}


def write_seeds(runs_dir: Path, gains: dict[int, float]) -> None:
    """The plan's layer choice (layer 10 wins) and, per seed, baseline, DLFA and concatenation on 1,000 XNLI pairs,
    DLFA `gains[seed]` accuracy points above the baseline and the concatenation."""
    for seed, gain in gains.items():
        base = {"de": np.arange(1000) < 600 + seed}
        write_study_run(runs_dir, "baseline", seed, 0.70, base)
        write_study_run(runs_dir, "concat-layer-10", seed, 0.70, base)
        write_study_run(runs_dir, "aif-layer-10", seed, 0.72, {"de": np.arange(1000) < 600 + seed + round(10 * gain)})
        if seed <= 2:
            for layer in (8, 11):
                write_study_run(runs_dir, f"aif-layer-{layer:02d}", seed, 0.60, base)


def test_sequential_rule_looks_once_at_five_seeds_and_the_upper_bound_caps_it(tmp_path):
    from dlfa_zero_shot.report import sequential_rule, study_comparisons

    narrow, wide = tmp_path / "narrow", tmp_path / "wide"
    write_seeds(narrow, {1: 1.0, 2: 1.1, 3: 0.9, 4: 1.0, 5: 1.0})
    write_seeds(wide, {1: 3.0, 2: -2.0, 3: 4.0, 4: -1.0, 5: 2.0})

    found = study_comparisons(narrow, resamples=20)
    primary = found["xnli"]["primary"]
    assert primary["seeds_due"] == 5 and not primary["interim"] and primary["first_half_width"] < 0.5
    assert "every task stops at 5 seeds" in sequential_rule(found)

    # A bound of 5 (the CPU rule of 2026-11-26): a wide interval stops at 5 seeds all the same, with a verdict.
    capped = StudyPlan(seeds_upper_bound=5, held_at_first_seeds=())
    found = study_comparisons(wide, resamples=20, plan=capped)
    primary = found["xnli"]["primary"]
    assert primary["first_half_width"] > 0.5 and primary["seeds_due"] == 5
    assert primary["verdict"] == "too close to call at this budget" and primary["holm_p"] is not None
    assert "xnli would get seeds 6-10, but the seeds' upper bound is 5: stopped at 5 seeds" in sequential_rule(
        found, capped
    )

    # This study's bound since 2026-12-03 (10): seeds 6 to 10 are due, and until they land nothing is concluded ...
    write_seeds(wide, {6: 5.0})
    extended = StudyPlan(held_at_first_seeds=())
    found = study_comparisons(wide, resamples=20, plan=extended)
    primary = found["xnli"]["primary"]
    assert primary["n"] == 6 and primary["seeds_due"] == 10
    assert primary["verdict"] == "interim (6 of 10 seeds): no verdict yet" and primary["holm_p"] is None
    assert primary["first_half_width"] == pytest.approx(
        study_comparisons(wide, resamples=20, plan=capped)["xnli"]["primary"]["first_half_width"]
    )
    assert "extended: xnli to 10 seeds (6 done)" in sequential_rule(found, extended)
    # ... while the first look stays as it was reported: seeds 1-5 alone, tested and given its verdict.
    first = study_comparisons(wide, resamples=20, first_look=True)["xnli"]
    assert first["primary"]["n"] == 5 and first["primary"]["verdict"] == "too close to call at this budget"
    assert first["primary"]["holm_p"] is not None and first["secondary"]["verdict"].startswith("no difference shown")


def test_a_task_held_at_five_seeds_is_concluded_there_and_says_why(tmp_path):
    """PAN-X and XNLI (docs/results.md, 2026-12-03): held at seeds 1-5 whatever their interval; a later seed is unused."""
    from dlfa_zero_shot.plans import HELD_AT_FIRST_SEEDS
    from dlfa_zero_shot.report import sequential_rule, study_comparisons

    assert [task for task, _ in HELD_AT_FIRST_SEEDS] == ["panx", "xnli"]
    runs_dir = tmp_path / "runs"
    write_seeds(runs_dir, {1: 3.0, 2: -2.0, 3: 4.0, 4: -1.0, 5: 2.0, 6: 9.0})
    held = study_comparisons(runs_dir, resamples=20)["xnli"]  # the plan as it stands: xnli held
    first = study_comparisons(runs_dir, resamples=20, first_look=True)["xnli"]
    primary = held["primary"]
    assert primary["first_half_width"] > 0.5 and primary["seeds_due"] == 5 and not primary["interim"]
    assert primary["seeds"] == [1, 2, 3, 4, 5] and primary["mean"] == pytest.approx(first["primary"]["mean"])
    assert primary["verdict"] == first["primary"]["verdict"] == "too close to call at this budget"
    rule = sequential_rule({"xnli": held})
    assert "xnli would get seeds 6-10, but no session was lent a GPU" in rule and "stopped at 5 seeds" in rule


@pytest.mark.parametrize(
    "mean, interval, holm_p, expected",
    [
        (2.0, [1.0, 3.0], 0.01, "aif-layer-10 helps (+2.00 points)"),
        (-2.0, [-3.0, -1.0], 0.01, "aif-layer-10 is worse (-2.00 points)"),
        (0.1, [-0.5, 0.7], 0.6, "aif-layer-10 does not help, by at most 0.70 points"),
        (0.9, [-0.5, 2.3], 0.2, "too close to call at this budget"),
    ],
)
def test_verdicts_follow_the_plan(mean, interval, holm_p, expected):
    from dlfa_zero_shot.report import verdict

    assert verdict({"configuration": "aif-layer-10", "mean": mean, "ci95": interval, "holm_p": holm_p}) == expected


def test_the_significance_level_is_the_plans():
    from dlfa_zero_shot.report import verdict

    comparison = {"configuration": "aif-layer-10", "mean": 2.0, "ci95": [0.5, 3.5], "holm_p": 0.03}
    assert verdict(comparison) == "aif-layer-10 helps (+2.00 points)"  # the plan's alpha, 0.05
    assert verdict(comparison, StudyPlan(alpha=0.01)) == "too close to call at this budget"


def test_each_task_budget_is_the_cheapest_curve_point_within_the_plans_margin(tmp_path):
    from dlfa_zero_shot.report import study_progress

    for examples, english_dev in ((1000, 0.80), (2000, 0.808)):
        run_dir = tmp_path / "runs" / "udpos" / "curve" / f"n-{examples}" / "seed-1" / "baseline"
        run_dir.mkdir(parents=True)
        epochs = [{"epoch": 1.0, "step": 10, "score": english_dev}]
        (run_dir / "results.json").write_text(json.dumps({"run": "baseline", "seed": 1, "selection_by_epoch": epochs}))
    figure, docs = tmp_path / "docs" / "figures" / "curve.png", tmp_path / "docs"
    default = study_progress(tmp_path / "runs", figure, docs)
    assert "cheapest within 1 point |" in default and "| 80.80 | 1000 x 1 (80.00) |" in default
    strict = study_progress(tmp_path / "runs", figure, docs, StudyPlan(budget_margin=0.5))
    assert "cheapest within 0.5 points |" in strict and "| 80.80 | 2000 x 1 (80.80) |" in strict


def test_the_pawsx_block_reads_the_plans_cpu_rule_from_the_archived_cpu_times(tmp_path):
    """
    docs/pawsx-plan.md's CPU rule, read from the benchmark's CPU times once the first layer-choice run (seed 1 of
    layer 6: the benchmark runs seed-major) is in: 36 times its CPU seconds plus the curve's, over 2 threads, against
    15 hours; above, 5 seeds.
    """
    from dlfa_zero_shot.plans import PAWSX_PLAN
    from dlfa_zero_shot.report import study_progress

    task, figure, docs = tmp_path / "runs" / "pawsx", tmp_path / "docs" / "figures" / "curve.png", tmp_path / "docs"

    def finished(folder: str, cpu_seconds: float) -> None:
        (task / folder).mkdir(parents=True, exist_ok=True)
        (task / folder / "wall_time.json").write_text(json.dumps({"seconds": 9999.0, "cpu_seconds": cpu_seconds}))

    curve = task / "curve" / "n-1000" / "seed-1" / "baseline"
    curve.mkdir(parents=True)
    epochs = [{"epoch": 1.0, "step": 32, "score": 0.5685}]
    (curve / "results.json").write_text(json.dumps({"run": "baseline", "seed": 1, "selection_by_epoch": epochs}))
    finished("curve/n-1000/seed-1/baseline", 3600.0)
    finished("seed-1/aif-layer-08", 1000.0)  # not the first layer-choice run: no reading yet

    def block() -> str:
        return study_progress(tmp_path / "runs", figure, docs, PAWSX_PLAN)

    assert "CPU rule" not in block()
    finished("seed-1/aif-layer-06", 1400.0)  # (36 x 1400 + 3600) / 2 / 3600 = 7.5 hours
    assert "/ 2 threads = 7.5 h, at most 15 h: 10 seeds." in block()
    finished("seed-1/aif-layer-06", 3000.0)  # (36 x 3000 + 3600) / 2 / 3600 = 15.5 hours
    assert "/ 2 threads = 15.5 h, above 15 h: 5 seeds." in block()
    pending = study_progress(tmp_path / "runs", figure, docs, replace(PAWSX_PLAN, seeds_decision=""))
    assert "above 15 h: 5 seeds. The decision is dated in docs/results.md" in pending and "Decided" not in pending
    decided = replace(PAWSX_PLAN, first_seeds=5, extended_seeds=5, seeds_upper_bound=5, seeds_decision="on day 1")
    assert decided.cpu_rule({"seed-1/aif-layer-06": 1400.0}).seeds == 10  # the rule keeps both of its options
    written = study_progress(tmp_path / "runs", figure, docs, decided)
    assert "/ 2 threads = 15.5 h, above 15 h: 5 seeds. Decided on day 1." in written


def test_task_headings_name_the_data_set_its_activity_and_metric():
    from dlfa_zero_shot.report import heading
    from dlfa_zero_shot.tasks import TASKS

    assert heading(TASKS["udpos"]) == "UDPOS (POS tagging, seqeval F1)"
    assert heading(TASKS["xnli"]) == "XNLI (accuracy)"  # the data set's name says what it is


def test_layer_search_records_are_archived_and_restored(task_dir, tmp_path):
    from dlfa_zero_shot.analysis import load_searches

    record = {"run": "layer-search", "seed": 1, "head_selection_scores": {"aif-layer-04": 0.9, "aif-layer-02": 0.8}}
    (task_dir / "seed-1" / "layer-search").mkdir()
    (task_dir / "seed-1" / "layer-search" / "results.json").write_text(json.dumps(record))
    runs = collect(task_dir)
    assert "layer-search" not in runs  # a search record is not a model's run
    archive = tmp_path / "udpos.json"
    write_archive(archive, task_dir, None, summarize("udpos", runs))
    restore_archive(archive, tmp_path / "fresh")
    assert load_searches(tmp_path / "fresh") == {1: record}


def test_study_archive_keeps_runs_by_name_and_seed_with_curve_and_predictions(tmp_path):
    """The study's archive: runs -> name -> seed (the small study's schema), its learning curve, every predictions
    file and process wall time; restored into an empty folder it gives back the same runs, curve points, predictions
    and wall times, so that archiving the restored folder again loses nothing."""
    from dlfa_zero_shot.analysis import load_curve, load_runs

    runs_dir = tmp_path / "runs"
    correct = {"de": np.array([1, 0, 1, 1]), "zh": np.array([0, 1, 1, 0])}
    write_study_run(runs_dir, "baseline", 1, 0.70, correct)
    write_study_run(runs_dir, "aif-layer-10", 1, 0.72, correct)
    curve_run = runs_dir / "xnli" / "curve" / "n-2500" / "seed-1" / "baseline"
    curve_run.mkdir(parents=True)
    point = {"run": "baseline", "seed": 1, "selection_by_epoch": [{"epoch": 1.0, "step": 9, "score": 0.61}]}
    (curve_run / "results.json").write_text(json.dumps(point))
    (runs_dir / "xnli" / "seed-1" / "baseline" / "wall_time.json").write_text(json.dumps({"seconds": 52.5}))
    archive = write_archive(tmp_path / "results" / "xnli.json", runs_dir / "xnli", None)

    stored = json.loads(archive.read_text())
    assert set(stored["runs"]) == {"baseline", "aif-layer-10"} and set(stored["runs"]["baseline"]) == {"1"}
    assert stored["curve"] == {"n-2500": point}
    fresh = tmp_path / "fresh" / "xnli"
    restore_archive(archive, fresh)
    assert load_runs(fresh) == load_runs(runs_dir / "xnli")
    assert load_curve(fresh / "curve") == load_curve(runs_dir / "xnli" / "curve")
    restored = np.load(fresh / "seed-1" / "aif-layer-10" / "predictions.npz")
    original = np.load(runs_dir / "xnli" / "seed-1" / "aif-layer-10" / "predictions.npz")
    assert set(restored.files) == set(original.files)
    assert all((restored[key] == original[key]).all() for key in original.files)
    again = write_archive(tmp_path / "again" / "xnli.json", fresh, None)
    assert json.loads(again.read_text())["wall_times"] == stored["wall_times"] == {"seed-1/baseline": 52.5}


def test_study_details_give_every_language_with_english_apart_and_draw_the_gains(tmp_path):
    from dlfa_zero_shot.report import study_comparisons, study_task_section

    rng = np.random.default_rng(1)
    runs_dir = tmp_path / "runs"
    for seed in (1, 2):
        base = {lang: rng.random(200) < 0.6 for lang in ("de", "zh", "en")}
        write_study_run(runs_dir, "baseline", seed, 0.70, base)
        write_study_run(
            runs_dir, "aif-layer-10", seed, 0.72, {k: v | (rng.random(200) < 0.1) for k, v in base.items()}
        )
        write_study_run(runs_dir, "concat-layer-10", seed, 0.71, base, device="cuda: NVIDIA H200")
        for layer in (8, 11):
            write_study_run(runs_dir, f"aif-layer-{layer:02d}", seed, 0.60, base)
    found = study_comparisons(runs_dir, resamples=50, plan=StudyPlan(first_seeds=2, seeds_upper_bound=2))["xnli"]
    runs = collect(runs_dir / "xnli")
    text = study_task_section("xnli", runs, found, tmp_path / "docs" / "figures" / "gains.png", tmp_path / "docs")

    rows = {line.split(" | ")[0].lstrip("| "): line.strip("|").split(" | ") for line in text.splitlines()
            if line.startswith("| ") and " | " in line}  # fmt: skip
    assert {"de", "zh", "en (apart)"} <= set(rows)
    header = rows["language"]
    column = {name.strip(): index for index, name in enumerate(header)}
    for language in ("de", "zh", "en (apart)"):
        row = [cell.strip() for cell in rows[language]]
        dlfa, baseline = float(row[column["aif-layer-10"]]), float(row[column["baseline"]])
        assert float(row[column["aif-layer-10 − baseline"]]) == pytest.approx(dlfa - baseline, abs=0.011)
    assert (tmp_path / "docs" / "figures" / "gains.png").stat().st_size > 0
    assert "](figures/gains.png)" in text
    assert "Trained on: cpu (4 runs), cuda: NVIDIA H200 (2 runs)." in text  # a reader sees a mixed task at once
    assert "words past the length limit" not in text  # pairs have no words past it: no column of dashes


def test_words_past_the_limit_are_printed_only_where_the_runs_code_counted_them_right(tmp_path):
    """Before, the column printed whatever a run recorded: the counts of code before 876f1d6, which counted a
    length-sorted sentence's first window (UDPOS ar: 3726 printed, 1242 true)."""
    from dlfa_zero_shot.provenance import file_sha256
    from dlfa_zero_shot.report import MISCOUNTING_FEATURES, study_comparisons, study_task_section

    rng = np.random.default_rng(2)
    for seed in (1, 2):
        base = {lang: rng.random(100) < 0.6 for lang in ("de", "zh")}
        for name in ("baseline", "aif-layer-10", "concat-layer-10", "aif-layer-08", "aif-layer-11"):
            write_study_run(tmp_path, name, seed, 0.72 if name == "aif-layer-10" else 0.70, base)
    for path in tmp_path.rglob("results.json"):
        path.write_text(json.dumps({**json.loads(path.read_text()), "words_past_max_length": {"de": 37, "zh": 0}}))
    plan = StudyPlan(first_seeds=2, seeds_upper_bound=2)

    def section() -> str:
        found = study_comparisons(tmp_path, resamples=10, plan=plan)["xnli"]
        return study_task_section("xnli", collect(tmp_path / "xnli"), found, tmp_path / "gains.png", tmp_path)

    def rows(text: str) -> dict[str, list[str]]:
        return {line.split(" | ")[0].lstrip("| "): [cell.strip() for cell in line.strip("|").split(" | ")]
                for line in text.splitlines() if line.startswith("| ") and " | " in line}  # fmt: skip

    unrecorded = section()  # runs from before runs recorded their code: the first study's
    assert "words past the length limit" not in rows(unrecorded)["language"] and "37" not in rows(unrecorded)["de"]
    assert "the code that made these runs miscounted them, or is not recorded" in unrecorded
    add_provenance(tmp_path)  # code recorded, but not features.py: unknown
    assert "words past the length limit" not in rows(section())["language"]
    fixed = Path(__file__).resolve().parent.parent / "dlfa_zero_shot" / "features.py"
    for digest, shown in ((next(iter(MISCOUNTING_FEATURES)), False), (file_sha256(fixed), True)):

        def record(name, seed, made, digest=digest):
            made["code_files"]["dlfa_zero_shot/features.py"] = digest

        add_provenance(tmp_path, record)
        text = section()
        assert ("words past the length limit" in rows(text)["language"]) == shown
        assert (rows(text)["de"][-1] == "37") == shown and ("miscounted" in text) != shown


def test_languages_noticed_at_the_first_look_are_reported_on_the_later_seeds_alone(tmp_path):
    from dlfa_zero_shot.report import later_seeds_note, study_comparisons

    write_seeds(tmp_path, {1: 3.0, 2: -2.0, 3: 4.0, 4: -1.0, 5: 2.0})
    found = study_comparisons(tmp_path, resamples=10)
    assert later_seeds_note(found, tmp_path, noticed={"xnli": ("de",)}) == ""  # no later seed yet: nothing to say
    write_seeds(tmp_path, {6: 1.0, 7: 2.0})
    held = study_comparisons(tmp_path, resamples=10)  # the plan holds XNLI at 5 seeds: a later seed plays no part
    assert later_seeds_note(held, tmp_path, noticed={"xnli": ("de",)}) == ""
    extended = StudyPlan(held_at_first_seeds=())
    found = study_comparisons(tmp_path, resamples=10, plan=extended)
    note = later_seeds_note(found, tmp_path, extended, noticed={"xnli": ("de",)})
    # seeds 6 and 7 alone: DLFA is 10 and 20 items of 1,000 above the baseline, +1.50 points on average
    assert "aif-layer-10 − baseline on seeds 6-7 alone: de +1.50." in note and "descriptive" in note


def add_provenance(runs_dir: Path, change=lambda name, seed, made: None) -> None:
    """Give every run under `runs_dir` the provenance the harness records, equal for all but what `change` edits."""
    for path in runs_dir.rglob("results.json"):
        result = json.loads(path.read_text())
        made = {"commit": "7f688ba", "dirty": False, "code_sha256": "c0de",
                "code_files": {"dlfa_zero_shot/training.py": "a1", "modeling_dlfa/modeling_dlfa.py": "b2"},
                "versions": {"torch": "2.13.0+cpu", "transformers": "5.25.0", "peft": "0.21.2"},
                "backbone": {"resolved": "/cache/e5", "sha256": {"model.safetensors": "e5"}},
                "data": {"de": {"file": "xnli/test-de.tsv", "sha256": "d1"}},
                "settings": {"seed": result["seed"], "layer": names.layer_of(result["run"]), "learning_rate": 5e-5,
                             "data_dir": "../shared/data/xtreme-lite"}}  # fmt: skip
        change(result["run"], result["seed"], made)
        result["provenance"] = made
        path.write_text(json.dumps(result))


def test_runs_of_different_code_versions_data_or_settings_are_not_pooled(tmp_path):
    """A comparison pools runs only where what made them is equal but for the seed and the configuration."""
    from dlfa_zero_shot.report import study_comparisons, study_task_section

    write_seeds(tmp_path, {1: 1.0, 2: 2.0, 3: 1.5})
    plan = StudyPlan(first_seeds=3, seeds_upper_bound=3)
    legacy = study_comparisons(tmp_path, resamples=10, plan=plan)["xnli"]  # no run records provenance: not checkable
    section = study_task_section("xnli", collect(tmp_path / "xnli"), legacy, tmp_path / "gains.png", tmp_path)
    assert "the archive cannot show which code made which run" in section

    add_provenance(tmp_path, lambda name, seed, made: made["settings"].update(data_dir=f"/copy-{seed}"))
    pooled = study_comparisons(tmp_path, resamples=10, plan=plan)["xnli"]  # layers and seeds differ by design
    assert pooled["primary"]["mean"] == pytest.approx(legacy["primary"]["mean"])
    section = study_task_section("xnli", collect(tmp_path / "xnli"), pooled, tmp_path / "gains.png", tmp_path)
    assert "Provenance (9 runs, checked equal before pooling): commit 7f688ba, code c0de" in section

    def edit(name, seed, made):
        if (name, seed) == ("aif-layer-10", 3):
            made["code_files"]["dlfa_zero_shot/training.py"] = "a2"
            made["versions"]["torch"] = "2.11.0"
        if (name, seed) == ("baseline", 2):
            made["settings"]["learning_rate"] = 3e-5
            made["data"]["de"]["sha256"] = "d2"

    add_provenance(tmp_path, edit)
    with pytest.raises(SystemExit) as refused:
        study_comparisons(tmp_path, resamples=10, plan=plan)
    message = str(refused.value)
    assert "different code (dlfa_zero_shot/training.py): " in message and "| aif-layer-10 seed 3" in message
    assert "different package versions (torch: 2.13.0+cpu / 2.11.0)" in message
    assert "different settings (learning_rate: 5e-05 / 3e-05)" in message and "different data files" in message

    add_provenance(tmp_path)  # all equal again, but for one run that records none
    path = tmp_path / "xnli" / "seed-2" / "concat-layer-10" / "results.json"
    result = json.loads(path.read_text())
    del result["provenance"]
    path.write_text(json.dumps(result))
    with pytest.raises(SystemExit, match="concat-layer-10 seed 2 record no provenance"):
        study_comparisons(tmp_path, resamples=10, plan=plan)


def test_the_replication_looks_once_every_run_is_in_on_the_studys_languages(tmp_path):
    from dlfa_zero_shot.plans import ReplicationPlan
    from dlfa_zero_shot.report import replication_block, replication_comparisons, write_archive

    plan = ReplicationPlan(task="xnli", target_languages=("de", "zh"), fusion_layer=10, seeds=(11, 12, 13),
                           descriptive_languages=("ta",))  # fmt: skip
    rng = np.random.default_rng(1)
    for seed in plan.seeds:
        base = {lang: rng.random(400) < 0.6 for lang in ("de", "zh", "ta")}
        dlfa = {lang: values | (rng.random(400) < (0.5 if lang == "ta" else 0.1)) for lang, values in base.items()}
        for name, correct in (("baseline", base), ("aif-layer-10", dlfa), ("concat-layer-10", base)):
            if (name, seed) != ("concat-layer-10", 13):
                write_study_run(tmp_path, name, seed, 0.7, correct)

    block, found = replication_block(tmp_path, tmp_path, plan)  # one run missing: no comparison, no number
    assert found == {} and "8 of 9 runs done" in block and "no interim look" in block and "+" not in block
    with pytest.raises(ValueError, match="missing: concat-layer-10 seed 13"):
        replication_comparisons(tmp_path, plan, resamples=10)

    write_study_run(tmp_path, "concat-layer-10", 13, 0.7, base)
    found, studied = replication_comparisons(tmp_path, plan, resamples=50)
    runs = collect(tmp_path / "xnli")
    expected = np.mean([100 * np.mean([runs["aif-layer-10"][s]["scores"][lang]["accuracy"]
                                       - runs["baseline"][s]["scores"][lang]["accuracy"] for lang in ("de", "zh")])
                        for s in plan.seeds])  # fmt: skip
    assert found["primary"]["mean"] == pytest.approx(expected)  # ta (descriptive) is in no tested mean
    assert set(studied["baseline"][11]["scores"]) == {"selection", "de", "zh"}
    ordered = sorted(found.values(), key=lambda c: c["t_test_p"])  # Holm over its own 2 tests
    assert ordered[0]["holm_p"] == pytest.approx(min(1.0, 2 * ordered[0]["t_test_p"]))
    assert found["primary"]["verdict"].startswith("aif-layer-10 helps")
    block, _ = replication_block(tmp_path, tmp_path, plan)
    assert "| xnli | primary: aif-layer-10 - baseline | 3 |" in block and "| ta |" in block

    archive = write_archive(tmp_path / "results" / "xnli_replication.json", tmp_path / "xnli", None, None,
                            "xnli_replication")  # fmt: skip
    assert (tmp_path / "results" / "predictions" / "xnli_replication" / "seed-11" / "baseline.npz").is_file()
    fresh = tmp_path / "fresh"
    restore_archive(archive, fresh / "xnli", "xnli_replication")
    assert replication_comparisons(fresh, plan, resamples=50)[0]["primary"]["mean"] == found["primary"]["mean"]


def test_a_plan_without_interim_looks_compares_nothing_before_its_fixed_seeds(tmp_path):
    """The PAWS-X plan's rule: a fixed number of seeds and one look, so no comparison (nor p) before the last seed."""
    from dlfa_zero_shot.plans import PAWSX_PLAN
    from dlfa_zero_shot.report import study_comparisons

    assert not PAWSX_PLAN.interim_looks and PAWSX_PLAN.first_seeds == PAWSX_PLAN.extended_seeds  # no sequential rule
    fixed = StudyPlan(tasks=("xnli",), first_seeds=4, extended_seeds=4, seeds_upper_bound=4, interim_looks=False)
    write_seeds(tmp_path, {1: 3.0, 2: -2.0, 3: 4.0})
    assert study_comparisons(tmp_path, resamples=10, plan=fixed) == {}
    assert study_comparisons(tmp_path, resamples=10, plan=StudyPlan(tasks=("xnli",)))["xnli"]["primary"]["interim"]
    write_seeds(tmp_path, {4: 1.0})
    found = study_comparisons(tmp_path, resamples=10, plan=fixed)["xnli"]
    assert found["primary"]["n"] == 4 and not found["primary"]["interim"] and found["primary"]["holm_p"] is not None


def test_no_run_imports_the_modules_left_out_of_its_code_digest():
    """
    A run's code digest leaves out the report and the plans: no module a run executes may import them, nor any program
    whose archive records a code digest (the harness; a benchmark that calls `provenance.collect`).
    """
    import ast

    from dlfa_zero_shot.provenance import CODE_PACKAGES, NOT_RUN, PACKAGES_ROOT

    left_out = {path.removesuffix(".py").replace("/", ".") for path in NOT_RUN}
    sources = [path for package in CODE_PACKAGES for path in (PACKAGES_ROOT / package).rglob("*.py")]
    sources += [PACKAGES_ROOT / "examples" / "run_zero_shot.py"]
    recording = [script for script in sorted((PACKAGES_ROOT / "benchmarks").glob("*.py"))
                 if "provenance.collect(" in script.read_text()]  # fmt: skip
    assert PACKAGES_ROOT / "benchmarks" / "onnx_latency.py" in recording
    sources += recording
    for source in sources:
        if source.relative_to(PACKAGES_ROOT).as_posix() in NOT_RUN:
            continue
        package = ".".join(source.relative_to(PACKAGES_ROOT).parent.parts)
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom):  # `from .plans import X`, `from . import plans`, absolute forms
                base = package if node.level else ""
                module = ".".join(filter(None, [base, node.module or ""]))
                imported = {module, *(f"{module}.{alias.name}" for alias in node.names)}
            elif isinstance(node, ast.Import):
                imported = {alias.name for alias in node.names}
            else:
                continue
            assert not imported & left_out, f"{source}:{node.lineno} imports {imported & left_out}"


def test_a_second_look_gets_holm_over_every_printed_p_and_no_verdict_words(tmp_path):
    """Seeds past the first look that were decided after its results (the study's UDPOS) are not the plan's answer."""
    from dlfa_zero_shot.plans import SECOND_LOOK, STUDY_PLAN
    from dlfa_zero_shot.report import mark_second_look, sequential_rule, study_comparisons

    assert STUDY_PLAN.second_look == SECOND_LOOK and STUDY_PLAN.first_seeds == 5
    write_seeds(tmp_path, {1: 1.0, 2: 3.0, 3: 0.5, 4: 2.5, 5: 1.5, 6: 2.0, 7: 1.0, 8: 2.2, 9: 1.8, 10: 1.2})
    plan = StudyPlan(held_at_first_seeds=(), second_look="Lifted after the first look")
    first = study_comparisons(tmp_path, resamples=10, plan=plan, first_look=True)
    found = study_comparisons(tmp_path, resamples=10, plan=plan)
    assert found["xnli"]["primary"]["n"] == 10 and found["xnli"]["primary"]["verdict"].startswith("aif-layer-10 helps")
    mark_second_look(found, first, plan)
    printed = [c["t_test_p"] for looked in (first, found) for c in looked["xnli"].values()]
    primary = found["xnli"]["primary"]
    p = primary["t_test_p"]
    assert primary["holm_tests"] == 4 and primary["holm_p"] == pytest.approx(
        max(min(1.0, (4 - rank) * q) for rank, q in enumerate(sorted(printed)) if q <= p)
    )
    assert primary["verdict"] == "second look: no verdict (Holm over the 4 printed tests)"
    assert "helps" not in json.dumps(found) and first["xnli"]["primary"]["verdict"] != primary["verdict"]
    assert "Lifted after the first look. Second look: xnli to 10 seeds (10 done)" in sequential_rule(found, plan)


def test_the_docs_state_each_study_result_as_archived_with_its_status():
    """README's answer and docs/results.md's status table quote the archived comparisons: the study's first and second
    look, the replication's and the PAWS-X study's one look."""
    root = Path(__file__).resolve().parent.parent
    archived = json.loads((root / "benchmarks" / "results" / "study" / "comparisons.json").read_text())
    results, readme = (root / "docs" / "results.md").read_text(), (root / "README.md").read_text()

    def interval(c: dict) -> str:
        return f"{c['mean']:+.2f} [{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}]".replace("-", "−")

    for task, by_kind in archived["first_look"].items():
        primary = by_kind["primary"]
        verdict = primary["verdict"].removeprefix("aif-layer-11 ")
        row = f"| {interval(primary)}, Holm p {primary['holm_p']:.3f}: {verdict} | 1-5 | pre-registered first look"
        assert row in results and interval(primary) in readme, task
    second = archived["final_seeds"]["udpos"]["primary"]
    assert second["n"] == 10 and second["holm_tests"] == 12 and "no verdict" in second["verdict"]
    row = f"| {interval(second)}, raw p {second['t_test_p']:.3f}, Holm p {second['holm_p']:.3f} over the 12 p-values"
    assert row in results and f"{interval(second)} is a second look" in readme.replace("\n", " ")
    assert (
        f"gives {second['holm_p']:.3f} ({second['holm_p_distinct']:.3f} over its 8 distinct tests)"
        in readme.replace("\n", " ")
    )
    assert f"{second['holm_p_distinct']:.3f} over its 8 distinct tests" in results.replace("\n", " ")
    replicated = root / "benchmarks" / "results" / "study" / "udpos_replication_comparisons.json"
    replication = json.loads(replicated.read_text())
    primary = replication["primary"]  # the replication's one look (docs/replication-plan.md)
    verdict = primary["verdict"].removeprefix(f"{primary['configuration']} ")
    row = f"| {interval(primary)}, Holm p {primary['holm_p']:.3f}: {verdict} | 11-20 | replication, pre-registered"
    assert primary["n"] == 10 and set(replication) == {"primary", "secondary"} and row in results
    assert f"| {interval(primary)}, Holm p {primary['holm_p']:.3f}: {verdict} (new seeds 11-20) |" in readme
    # The PAWS-X study: "not compared yet" until the report archives its one look (once all its runs are in), then
    # that look's interval, Holm p and verdict; neither row may lag behind the archive.
    rows = [line for text in (readme, results) for line in text.splitlines() if line.startswith("| PAWS-X |")]
    pawsx = root / "benchmarks" / "results" / "study" / "pawsx_comparisons.json"
    assert len(rows) == 2
    if not pawsx.exists():
        assert all("not compared yet" in row for row in rows)
    else:
        from dlfa_zero_shot.plans import PAWSX_PLAN

        primary = json.loads(pawsx.read_text())["pawsx"]["primary"]
        assert primary["n"] == PAWSX_PLAN.first_seeds and not primary["interim"]  # its fixed seeds, its one look
        verdict = primary["verdict"].removeprefix(f"{primary['configuration']} ")
        stated = f"| {interval(primary)}, Holm p {primary['holm_p']:.3f}: {verdict}"
        assert all(stated in row and "not compared yet" not in row for row in rows), rows
    from dlfa_zero_shot.report import PAPER

    for task, (before, after, layer) in PAPER.items():  # the paper's numbers, beside each task's status
        paper = f"{before:.2f} → {after:.2f}, layer {layer}"
        assert paper in readme and paper in results, task


def test_a_fresh_clone_regenerates_the_pawsx_report_from_its_archive_with_no_diff(tmp_path):
    """
    `python benchmarks/zero_shot_report.py --study pawsx --restore pawsx` on the committed archives alone (no runs)
    rewrites docs/results.md and the archives as they are committed: every number of its block is the archive's, as
    each run lands. (The first study's 10,000-resample bootstraps take minutes; its regeneration was checked by hand
    on 2026-12-07: no diff.)
    """
    from dlfa_zero_shot.report import main

    root = Path(__file__).resolve().parent.parent
    results, document = tmp_path / "results", tmp_path / "docs" / "results.md"
    shutil.copytree(root / "benchmarks" / "results" / "study", results)
    document.parent.mkdir()
    shutil.copy(root / "docs" / "results.md", document)
    main(["--study", "pawsx", "--restore", "pawsx", "--runs_dir", str(tmp_path / "runs"), "--results_dir", str(results),
          "--document", str(document)], root=root)  # fmt: skip
    assert document.read_text() == (root / "docs" / "results.md").read_text()
    for archive in sorted((root / "benchmarks" / "results" / "study").glob("*.json")):
        assert (results / archive.name).read_text() == archive.read_text(), archive.name


def test_the_pawsx_study_looks_once_at_its_fixed_seeds_on_the_six_targets_with_english_apart(tmp_path):
    """
    The PAWS-X report once every run of its plan is in (the layer choice on seeds 1-2 of layers 6, 8, 10, 11, then
    baseline, DLFA at the chosen layer and the concatenation on seeds 1 to the decided seeds): one look, Holm over its
    2 tests, the plan's verdict words; the primary averages the 6 target languages, English test apart. Written before
    the study's comparison runs land, so that the report that reads them is known to work.
    """
    from dlfa_zero_shot.plans import PAWSX_PLAN, PAWSX_TARGETS
    from dlfa_zero_shot.report import STUDY_MARKERS, main

    runs, results, document = tmp_path / "runs", tmp_path / "results", tmp_path / "docs" / "results.md"
    begin, end, _ = STUDY_MARKERS["pawsx"]
    document.parent.mkdir()
    document.write_text(f"# Results\n\n{begin}\n{end}\n")
    curve = runs / "pawsx" / "curve" / "n-8000" / "seed-1" / "baseline"
    curve.mkdir(parents=True)
    epochs = [{"epoch": 3.0, "step": 750, "score": 0.85}]
    (curve / "results.json").write_text(json.dumps({"run": "baseline", "seed": 1, "selection_by_epoch": epochs}))
    rng, items = np.random.default_rng(0), 200
    languages = (TRAIN_LANGUAGE, *PAWSX_TARGETS)
    chosen_layer = PAWSX_PLAN.choice_layers[2]  # best on English dev below
    chosen, concat = names.run_name(chosen_layer), names.run_name(chosen_layer, "concat")
    for seed in PAWSX_PLAN.choice_seeds:
        for layer in PAWSX_PLAN.choice_layers:
            if layer != chosen_layer:
                scored = {language: rng.random(items) < 0.7 for language in languages}
                write_study_run(runs, names.run_name(layer), seed, 0.80, scored, task="pawsx")
    for seed in range(1, PAWSX_PLAN.first_seeds + 1):
        base = {language: rng.random(items) < 0.7 for language in languages}
        dlfa = {
            language: right | (rng.random(items) < 0.1) for language, right in base.items()
        }  # it adds right answers
        # and loses half of English: English is not a target
        dlfa[TRAIN_LANGUAGE] = base[TRAIN_LANGUAGE] & (rng.random(items) < 0.5)
        write_study_run(runs, names.BASELINE, seed, 0.84, base, task="pawsx")
        write_study_run(runs, chosen, seed, 0.86, dlfa, task="pawsx")
        write_study_run(runs, concat, seed, 0.85, base, task="pawsx")
    main(["--study", "pawsx", "--runs_dir", str(runs), "--results_dir", str(results), "--document", str(document)])
    found = json.loads((results / "pawsx_comparisons.json").read_text())["pawsx"]
    primary, secondary = found["primary"], found["secondary"]
    assert (primary["configuration"], primary["reference"], secondary["reference"]) == (chosen, names.BASELINE, concat)
    assert primary["n"] == secondary["n"] == PAWSX_PLAN.first_seeds and not primary["interim"]
    assert primary["mean"] > 0 and primary["verdict"].startswith(f"{chosen} helps")
    ordered = sorted([primary, secondary], key=lambda c: c["t_test_p"])  # Holm over these 2 tests alone
    assert ordered[0]["holm_p"] == pytest.approx(min(1.0, 2 * ordered[0]["t_test_p"]))
    text = document.read_text()
    assert (
        f"### Comparisons (seeds 1-{PAWSX_PLAN.first_seeds}, fixed in advance, one look; Holm over their 2 tests)"
        in text
    )
    assert f"| pawsx | primary: {chosen} - {names.BASELINE} | {PAWSX_PLAN.first_seeds} |" in text
    assert f"- **pawsx**: {primary['verdict']}." in text
    archive = json.loads((results / "pawsx.json").read_text())
    assert set(archive["runs"][names.BASELINE]) == {str(seed) for seed in range(1, PAWSX_PLAN.first_seeds + 1)}
