#!/usr/bin/env bash
# Every run behind docs/results.md (the small CPU protocol of zero_shot_benchmark.py), in the order it was run, then
# the report. Resumable: finished runs are skipped. About 4 hours on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
benchmark="python benchmarks/zero_shot_benchmark.py --jobs 2 $*"
for task in udpos panx; do
    $benchmark --task $task --phase sweep --seeds 1                   # baseline + layers 2,4,6,8,10,11, one seed
done
for task in udpos panx; do
    $benchmark --task $task --phase sweep --layers best --seeds 2,3   # baseline + the dev-selected layer, 3 seeds
done
for task in udpos panx; do
    $benchmark --task $task --phase variants --variants paper-gate,concat,scalar-mix
done
for task in udpos panx; do
    $benchmark --task $task --phase variants --variants fusion-lr-x10 --seeds 1
done
for seeds in 1 2,3; do
    for task in udpos panx; do
        $benchmark --task $task --phase variants --variants gate-init-0.1 --seeds $seeds
    done
done
# XNLI (sentence-pair protocol): baseline + the paper's two pair-task layers, one seed; then the dev-selected layer
$benchmark --task xnli --phase sweep --layers 6,11 --seeds 1
$benchmark --task xnli --phase sweep --layers best --seeds 2,3
$benchmark --task xnli --phase variants --variants concat        # the same two layers concatenated, 3 seeds
for task in udpos panx; do
    $benchmark --task $task --phase sweep --seeds 2,3                 # the rest of the layer sweep on seeds 2 and 3
done
# On three seeds English dev picks PAN-X layer 11 (on seed 1 it was 10): the gate and peer variants again there.
$benchmark --task panx --phase variants --variants paper-gate,concat
python benchmarks/zero_shot_report.py
