"""
Turns the zero-shot benchmark's runs into the published report (`dlfa_zero_shot.report`): one JSON archive a task in
benchmarks/results/zero_shot/, the heatmaps in docs/figures/, the generated part of docs/results.md.

    python benchmarks/zero_shot_report.py                      # every task with runs under benchmarks/runs/small
    python benchmarks/zero_shot_report.py --restore udpos,panx,xnli   # first write the archived runs back

Selection follows the zero-shot rule: the DLFA layer is the one with the best mean English dev score over the seeds
every swept layer has; its gain over the baseline is the paired difference of target-language averages over the
seeds both have, with a paired t-test and a 95% t interval. The paper's protocol (the best test average over the
layers) is reported apart.
"""

from pathlib import Path

from dlfa_zero_shot.report import main


if __name__ == "__main__":
    main(root=Path(__file__).resolve().parent.parent)
