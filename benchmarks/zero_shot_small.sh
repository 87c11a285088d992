#!/usr/bin/env bash
# Every run behind docs/results.md (the small CPU protocol of zero_shot_benchmark.py), in the order it was run, then
# the report. Resumable: finished runs are skipped. About 2.5 hours on 2 cores.
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
python benchmarks/zero_shot_report.py
