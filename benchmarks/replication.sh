#!/usr/bin/env bash
# Every run of the UDPOS replication (docs/replication-plan.md), seed-major; resumable (finished runs are skipped, an
# unfinished one resumes from its last checkpoint). Archive and report with
# `python benchmarks/zero_shot_report.py --study replication`, then `git add benchmarks/results/study docs`.
set -euo pipefail
cd "$(dirname "$0")/.."
# The task, configurations and seeds come from their one owner, dlfa_zero_shot.plans.REPLICATION_PLAN.
read -r task configs seeds < <(python -c "from dlfa_zero_shot.plans import REPLICATION_PLAN as p
print(p.task, ','.join(p.configurations), ','.join(map(str, p.seeds)))")
exec python benchmarks/zero_shot_benchmark.py --protocol replication --task "$task" --configs "$configs" \
    --seeds "$seeds" "$@"
