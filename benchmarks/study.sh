#!/usr/bin/env bash
# Every run of a pre-registered study, in its plan's order: `bash benchmarks/study.sh` (docs/study-plan.md) or
# `bash benchmarks/study.sh pawsx` (docs/pawsx-plan.md); further arguments go to the benchmark. Resumable (finished runs
# are skipped, an unfinished one resumes from its last checkpoint). After each phase the archive is refreshed, so a
# finished run can be committed as soon as it lands: `python benchmarks/zero_shot_report.py --study <protocol>` then
# `git add benchmarks/results/study docs`.
set -euo pipefail
cd "$(dirname "$0")/.."
protocol=${1:-study}
shift || true
# The plan's tasks, layer choice and seeds, read from their one owner (dlfa_zero_shot.plans.STUDY_PLANS).
plan() { python -c "from dlfa_zero_shot.plans import STUDY_PLANS, run_name; plan = STUDY_PLANS['$protocol']; print($1)"; }
tasks=$(plan "' '.join(plan.tasks)")
choice=$(plan "','.join(run_name(layer) for layer in plan.choice_layers)")
choice_seeds=$(plan "','.join(map(str, plan.choice_seeds))")
first_seeds=$(plan "plan.first_seeds")
benchmark="python benchmarks/zero_shot_benchmark.py --protocol $protocol $*"
report="python benchmarks/zero_shot_report.py --study $protocol"
for task in $tasks; do        # 1. the baseline's learning curve on English dev: each task's budget
    $benchmark --task $task --phase curve && $report > /dev/null
done
for task in $tasks; do        # 2. the layer choice: DLFA at the plan's layers on its choice seeds, English dev only
    $benchmark --task $task --configs $choice --seeds $choice_seeds && $report > /dev/null
done
for task in $tasks; do        # 3. the paired comparison on seeds 1 to the first look (more by the plan's rule)
    $benchmark --task $task --configs baseline,aif-layer-best,concat-layer-best --seeds 1-$first_seeds && $report > /dev/null
done
