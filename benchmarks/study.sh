#!/usr/bin/env bash
# Every run of the study (docs/study-plan.md), in the plan's order; resumable (finished runs are skipped, an
# unfinished one resumes from its last checkpoint). After each phase the archive is refreshed, so a finished run can be
# committed as soon as it lands: `python benchmarks/zero_shot_report.py --study study` then `git add
# benchmarks/results/study docs`.
set -euo pipefail
cd "$(dirname "$0")/.."
benchmark="python benchmarks/zero_shot_benchmark.py --protocol study $*"
report="python benchmarks/zero_shot_report.py --study study"
for task in udpos panx xnli; do        # 1. the baseline's learning curve on English dev: each task's budget
    $benchmark --task $task --phase curve && $report > /dev/null
done
for task in udpos panx xnli; do        # 2. the layer choice: DLFA at 8, 10, 11 on seeds 1 and 2, English dev only
    $benchmark --task $task --configs aif-layer-08,aif-layer-10,aif-layer-11 --seeds 1,2 && $report > /dev/null
done
for task in udpos panx xnli; do        # 3. the paired comparison on seeds 1-5 (seeds 6-10 by the plan's rule)
    $benchmark --task $task --configs baseline,aif-layer-best,concat-layer-best --seeds 1-5 && $report > /dev/null
done
