#!/usr/bin/env bash
# Every run of a pre-registered study, in its plan's order: `bash benchmarks/study.sh [study|pawsx] [benchmark
# arguments]` (docs/study-plan.md, the default, or docs/pawsx-plan.md). Resumable (finished runs are skipped, an
# unfinished one resumes from its last checkpoint). After each phase the archive is refreshed, so a finished run can
# be committed as soon as it lands: `python benchmarks/zero_shot_report.py --study <protocol>` then
# `git add benchmarks/results/study docs`. A plan whose number of seeds awaits a dated decision stops before phase 3.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
    study|pawsx) protocol=$1; shift ;;
    ""|-*) protocol=study ;;
    *) echo "study.sh: unknown study '$1' (study or pawsx)" >&2; exit 2 ;;
esac
runs_dir=()
for ((i = 1; i <= $#; i++)); do  # the report reads the runs where the benchmark writes them
    if [[ ${!i} == --runs_dir ]]; then j=$((i + 1)); runs_dir=(--runs_dir "${!j}/$protocol"); fi
done
# The plan's tasks, layer choice and seeds, read from their one owner (dlfa_zero_shot.plans.STUDY_PLANS).
plan() { python -c "import sys; from dlfa_zero_shot.plans import STUDY_PLANS, run_name; plan = STUDY_PLANS[sys.argv[1]]; print($1)" "$protocol"; }
tasks=$(plan "' '.join(plan.tasks)")
choice=$(plan "','.join(run_name(layer) for layer in plan.choice_layers)")
choice_seeds=$(plan "','.join(map(str, plan.choice_seeds))")
first_seeds=$(plan "plan.first_seeds")
benchmark=(python benchmarks/zero_shot_benchmark.py --protocol "$protocol" "$@")
report=(python benchmarks/zero_shot_report.py --study "$protocol" "${runs_dir[@]}")
for task in $tasks; do        # 1. the baseline's learning curve on English dev: each task's budget
    "${benchmark[@]}" --task "$task" --phase curve && "${report[@]}" > /dev/null
done
for task in $tasks; do        # 2. the layer choice: DLFA at the plan's layers on its choice seeds, English dev only
    "${benchmark[@]}" --task "$task" --configs "$choice" --seeds "$choice_seeds" && "${report[@]}" > /dev/null
done
if [[ $(plan "plan.seeds_decision == ''") == True ]]; then
    echo "study.sh: the $protocol plan's number of seeds awaits its dated decision (plans.StudyPlan.seeds_decision)" >&2
    exit 3
fi
for task in $tasks; do        # 3. the paired comparison on seeds 1 to the first look (more by the plan's rule)
    "${benchmark[@]}" --task "$task" --configs baseline,aif-layer-best,concat-layer-best --seeds "1-$first_seeds" \
        && "${report[@]}" > /dev/null
done
