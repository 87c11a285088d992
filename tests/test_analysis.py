"""Run names, layer selection on English dev (`dlfa_zero_shot.analysis`) and the statistics every report uses
(`dlfa_zero_shot.study_statistics`)."""

import numpy as np
import pytest

from dlfa_zero_shot.analysis import select_on_english_dev
from dlfa_zero_shot.names import BASELINE, configuration_of, layer_of, run_name
from dlfa_zero_shot.plans import StudyPlan, study_layer_choice
from dlfa_zero_shot.study_statistics import holm, paired_gain


NAMES = ["baseline", "aif-layer-08", "concat-layer-11", "scalar-mix", "paper-gate-layer-10", "gate-init-0.1-layer-10",
         "fusion-lr-x10-layer-11"]  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_a_run_name_and_its_settings_round_trip(name):
    assert run_name(**configuration_of(name)) == name


def test_run_names_say_the_fusion_and_its_layer():
    assert run_name(None) == BASELINE and run_name(8) == "aif-layer-08" and layer_of("aif-layer-08") == 8
    assert run_name(8, "concat") == "concat-layer-08" and run_name(3, "scalar_mix") == "scalar-mix"
    assert run_name(8, aif_gate="paper") == "paper-gate-layer-08" and layer_of("scalar-mix") is None
    assert run_name(8, fusion_lr_factor=10.000000000000002) == "fusion-lr-x10-layer-08"


@pytest.mark.parametrize("bad, hint", [("aif-layer-8", "did you mean 'aif-layer-08'"), ("last", "is not a run name"),
                                       ("concat", "is not a run name"), ("layer-08", "is not a run name")])  # fmt: skip
def test_names_the_benchmark_cannot_make_are_refused(bad, hint):
    with pytest.raises(ValueError, match=hint):
        configuration_of(bad)


def result(dev: float, target: float) -> dict:
    return {"metric": "f1", "scores": {"selection": {"f1": dev / 100}}, "target_average": target / 100}


def test_selection_compares_layers_on_the_seeds_they_all_have():
    runs = {
        "aif-layer-08": {1: result(90, 70), 2: result(99, 70)},  # best mean only thanks to seed 2
        "aif-layer-10": {1: result(91, 60)},
    }
    assert select_on_english_dev(runs) == ([1], "aif-layer-10")
    runs["aif-layer-10"][2] = result(90, 60)
    assert select_on_english_dev(runs) == ([1, 2], "aif-layer-08")
    with pytest.raises(ValueError, match="share no seed"):
        select_on_english_dev({"aif-layer-08": {1: result(1, 1)}, "aif-layer-10": {2: result(1, 1)}})


def test_the_study_layer_choice_waits_for_all_its_runs_and_ignores_others():
    runs = {"aif-layer-08": {1: result(90, 0), 2: result(90, 0)}, "aif-layer-10": {1: result(95, 0)},
            "aif-layer-06": {1: result(99, 0), 2: result(99, 0)}}  # fmt: skip
    chosen, missing = study_layer_choice(runs)
    assert chosen is None
    assert missing == ["aif-layer-10 seed 2", "aif-layer-11 seed 1", "aif-layer-11 seed 2"]
    runs["aif-layer-10"][2] = result(80, 0)  # mean 87.5
    runs["aif-layer-11"] = {1: result(86, 0), 2: result(89, 0), 3: result(100, 0)}  # 87.5; with seed 3, 91.7
    assert study_layer_choice(runs) == ("aif-layer-08", [])  # neither layer 6 nor seed 3 is the plan's


def test_a_run_is_read_from_its_own_folder_and_a_copy_moved_aside_among_the_runs_is_refused(tmp_path):
    """A copy of a run moved aside in its seed folder (`seed-1/baseline.old/`, sorted after `seed-1/baseline/`) was
    read as the run it had been, in place of the run in that folder: the report compared the old scores."""
    import json

    from dlfa_zero_shot.analysis import load_runs

    def write(folder: str, run: str, seed: int, dev: float) -> None:
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "results.json").write_text(json.dumps({"run": run, "seed": seed, **result(dev, 0)}))

    write("seed-1/baseline", "baseline", 1, 90)
    write("seed-2/baseline", "baseline", 2, 91)
    assert {seed: run["scores"]["selection"]["f1"] for seed, run in load_runs(tmp_path)["baseline"].items()} == {
        1: 0.90, 2: 0.91
    }  # fmt: skip
    write("seed-1/baseline.old", "baseline", 1, 50)
    with pytest.raises(ValueError, match=r"seed-1/baseline.old/results.json holds run 'baseline' seed 1, not the run"):
        load_runs(tmp_path)
    (tmp_path / "seed-1" / "baseline.old" / "results.json").unlink()
    write("seed-3/baseline", "baseline", 2, 92)  # seed 2's copied to seed 3's folder
    with pytest.raises(ValueError, match=r"seed-3/baseline/results.json holds run 'baseline' seed 2"):
        load_runs(tmp_path)


def test_the_sequential_rule_adds_seeds_only_to_a_wide_interval_and_never_past_the_bound():
    plan = StudyPlan()
    assert plan.seeds_due("udpos", 0.4) == 5 and plan.seeds_due("udpos", None) == 5  # None: every difference equal
    assert StudyPlan(seeds_upper_bound=5).seeds_due("udpos", 0.9) == 5  # a bound at the first look stops every task
    assert plan.seeds_due("udpos", 0.9) == 10  # this study's bound since 2026-12-03: the plan's own extension
    assert StudyPlan(seeds_upper_bound=8).seeds_due("udpos", 0.9) == 8
    assert StudyPlan(seeds_upper_bound=20).seeds_due("udpos", 0.9) == 10
    assert plan.seeds_due("panx", 0.9) == plan.seeds_due("xnli", 0.9) == 5  # held at the first look (2026-12-03)
    assert StudyPlan(held_at_first_seeds=()).seeds_due("panx", 0.9) == 10
    assert hash(plan) == hash(StudyPlan())  # a plan is a value


def test_paired_gain_and_holm_adjustment():
    gain = paired_gain({1: result(0, 71.5), 2: result(0, 73.5), 3: result(0, 72.5)},
                       {1: result(0, 70), 2: result(0, 71), 3: result(0, 69)})  # fmt: skip
    assert gain["differences"] == pytest.approx([1.5, 2.5, 3.5]) and gain["mean"] == pytest.approx(2.5)
    assert gain["t_test_p"] == pytest.approx(0.0495, abs=5e-4)  # t = 2.5 * sqrt(3) = 4.33, 2 degrees of freedom
    # Holm: the smallest p times 3, the next times 2 (never below the one before), the largest as is
    assert holm({"a": 0.01, "b": 0.04, "c": 0.03}) == pytest.approx({"a": 0.03, "c": 0.06, "b": 0.06})
    assert holm({"a": 0.6, "b": 0.5}) == pytest.approx({"b": 1.0, "a": 1.0})


def test_the_gain_interval_is_the_t_interval_of_the_paired_differences():
    seeds = range(1, 6)
    gain = paired_gain({seed: result(0, 70 + seed) for seed in seeds}, {seed: result(0, 70) for seed in seeds})
    # differences 1, 2, 3, 4, 5: mean 3, std sqrt(2.5)
    half_width = 2.776445 * 2.5**0.5 / 5**0.5  # t(0.975, 4 degrees of freedom) * std / sqrt(n)
    assert gain["ci95"] == pytest.approx([3 - half_width, 3 + half_width], abs=1e-5)
    assert gain["t_test_p"] == pytest.approx(0.013236, abs=1e-5)  # t = 3 / sqrt(2.5 / 5) = 4.24, 4 degrees of freedom
    # every difference equal: no spread, so neither an interval nor a test
    same = paired_gain({1: result(0, 75), 2: result(0, 50)}, {1: result(0, 50), 2: result(0, 25)})
    assert same["differences"] == [25.0, 25.0] and "ci95" not in same and "t_test_p" not in same


def test_item_counts_give_back_seqeval_f1_and_accuracy():
    import evaluate

    from dlfa_zero_shot.study_statistics import item_counts, score_from_counts
    from dlfa_zero_shot.tasks import PANX_TAGS, XTREME_METRIC

    gold = [["B-PER", "I-PER", "O"], ["B-LOC", "O"], ["O", "B-ORG", "I-ORG", "O"]]
    predicted = [["B-PER", "I-PER", "O"], ["B-ORG", "O"], ["O", "B-ORG", "O", "O"]]
    ids = {tag: index for index, tag in enumerate(PANX_TAGS)}
    record = {
        "predicted": np.array([ids[t] for sentence in predicted for t in sentence]),
        "gold": np.array([ids[t] for sentence in gold for t in sentence]),
        "lengths": np.array([len(sentence) for sentence in gold]),
    }
    counts = item_counts(record, PANX_TAGS)
    expected = evaluate.load(XTREME_METRIC, config_name="tagging").compute(predictions=predicted, references=gold)[
        "f1"
    ]
    assert score_from_counts(counts.sum(axis=0), tagging=True) == pytest.approx(100 * expected)
    pairs = item_counts({"predicted": np.array([0, 1, 2, 2]), "gold": np.array([0, 1, 1, 2])}, None)
    assert score_from_counts(pairs.sum(axis=0), tagging=False) == pytest.approx(75.0)


def test_bootstrap_of_a_configuration_against_itself_is_exactly_zero_and_centres_on_the_gain():
    from dlfa_zero_shot.study_statistics import bootstrap_gain

    rng = np.random.default_rng(0)
    base = {seed: {lang: np.stack([rng.integers(0, 2, 200), np.ones(200), np.ones(200)], 1).astype(float)
                   for lang in ("de", "zh")} for seed in (1, 2, 3)}  # fmt: skip
    same = bootstrap_gain({"a": base, "b": base}, "a", "b", tagging=False, resamples=500)
    assert same["mean"] == 0.0 and same["ci95"] == [0.0, 0.0]
    better = {seed: {lang: np.maximum(values, np.array([[1, 1, 1]] * 20 + [[0, 1, 1]] * 180)) for lang, values in
                     by_language.items()} for seed, by_language in base.items()}  # fmt: skip
    observed = np.mean([100 * (better[s][lang][:, 0].mean() - base[s][lang][:, 0].mean())
                        for s in base for lang in ("de", "zh")])  # fmt: skip
    gain = bootstrap_gain({"a": better, "b": base}, "a", "b", tagging=False, resamples=2000)
    assert gain["ci95"][0] < observed < gain["ci95"][1] and gain["mean"] == pytest.approx(observed, abs=0.5)


def test_layer_search_validation_compares_rankings_picks_and_the_cost_of_a_mismatch():
    from dlfa_zero_shot.study_statistics import layer_search_validation

    runs = {"aif-layer-08": {1: result(90, 60), 2: result(90, 60)}, "aif-layer-10": {1: result(92, 63), 2: result(91, 61)},
            "aif-layer-11": {1: result(91, 64), 2: result(93, 65)}}  # fmt: skip
    searches = {
        1: {
            "head_selection_scores": {
                "aif-layer-08": 0.80,
                "aif-layer-10": 0.85,
                "aif-layer-11": 0.84,
                "baseline": 0.9,
            }
        },
        2: {"head_selection_scores": {"aif-layer-08": 0.80, "aif-layer-10": 0.86, "aif-layer-11": 0.84}},
    }
    found = layer_search_validation(runs, searches)
    assert found["seeds"][1]["spearman_dev"] == pytest.approx(1.0)  # same order as the separate runs' English dev
    assert found["seeds"][1]["one_pass_pick"] == found["seeds"][1]["sweep_pick"] == "aif-layer-10"
    assert found["seeds"][2]["one_pass_pick"] == "aif-layer-10" and found["seeds"][2]["sweep_pick"] == "aif-layer-11"
    assert found["seeds"][2]["mismatch_cost"] == pytest.approx(4.0)  # 65 - 61 on the target average
    assert found["picks_agree"] == 1 and found["mismatch_cost_mean"] == pytest.approx(2.0)
    # the sweep's own English dev ranks 10 > 11 > 8 on seed 1 and 11 > 10 > 8 on seed 2: rho 0.5 between the seeds
    assert found["sweep_seed_spearman_dev_mean"] == pytest.approx(0.5)

    # every head scored alike on a seed (a tiny English dev): no ranking, so no rho, and the means leave that seed out
    for name, score in zip(runs, (0.7, 0.8, 0.9)):
        runs[name][3] = result(100 * score, 60)
    searches[3] = {"head_selection_scores": dict.fromkeys(runs, 0.5)}
    tied = layer_search_validation(runs, searches)
    assert tied["seeds"][3]["spearman_dev"] is None and tied["seeds"][3]["spearman_target"] is None
    assert tied["spearman_dev_mean"] == pytest.approx(found["spearman_dev_mean"])
