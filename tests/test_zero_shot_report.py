"""The benchmark report's statistics and document handling, on results.json files laid out as the benchmark does."""

import json
import re
from pathlib import Path

import pytest

from dlfa_zero_shot.analysis import load_runs as collect
from dlfa_zero_shot.report import BEGIN, END, backbone_shape, replace_generated, restore_runs, summarize, write_results


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


def test_archived_runs_restore_to_the_same_report_without_overwriting_runs(task_dir, tmp_path):
    """A fresh machine has only the committed JSON: restoring it must give back the same statistics."""
    runs = collect(task_dir)
    archive = tmp_path / "udpos.json"
    shape = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37}
    shape["vocab_size"] = 99
    write_results(archive, summarize("udpos", runs), runs, shape)

    fresh = tmp_path / "fresh" / "udpos"
    write_run(fresh, "baseline", 1, 50.0, {"de": 1.0, "zh": 1.0})  # a run already there is not replaced
    written = restore_runs(archive, fresh)
    assert len(written) == sum(len(by_seed) for by_seed in runs.values()) - 1
    assert collect(fresh)["baseline"][1]["target_average"] == pytest.approx(0.01)

    (fresh / "seed-1" / "baseline" / "results.json").unlink()
    restore_runs(archive, fresh)
    assert summarize("udpos", collect(fresh)) == summarize("udpos", runs)
    # no model files come back: the parameter table takes the backbone's shape from the archive
    assert not list(fresh.rglob("config.json")) and backbone_shape(fresh.parent, tmp_path) == shape
