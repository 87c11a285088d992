"""What a run records of its making (`dlfa_zero_shot.provenance`), and when runs may be pooled."""

import ast
import json
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from dlfa_zero_shot import names
from dlfa_zero_shot.provenance import (
    PACKAGES_ROOT,
    benchmark_made_by,
    code_files,
    collect,
    cpu_instruction_sets,
    git_state,
    pooling_differences,
    utc_now,
)


SCRIPT = PACKAGES_ROOT / "examples" / "run_zero_shot.py"
ROOT = Path(__file__).resolve().parent.parent


def test_archives_are_dated_in_utc_to_the_second():
    stated = datetime.fromisoformat(utc_now())  # ISO 8601 with its zone: readable by any tool, never local time
    assert stated.utcoffset() == timedelta(0)
    assert abs(datetime.now(timezone.utc) - stated) < timedelta(seconds=5)


def test_a_benchmark_records_which_instruction_sets_chose_its_int8_kernels(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx avx2 fma avx512f avx512_vnni\n\nprocessor\t: 1\n")
    assert cpu_instruction_sets(cpuinfo) == ["avx2", "avx512f", "avx512_vnni"]  # avx, fma: no kernel chooses by them
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx avx2\n")
    assert cpu_instruction_sets(cpuinfo) == ["avx2"]  # no VNNI: the int8 weights' 7 bits matter here
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse sse2\n")
    assert cpu_instruction_sets(cpuinfo) == []  # x86 without any of them: known to have none
    cpuinfo.write_text("processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32\n")
    assert cpu_instruction_sets(cpuinfo) is None  # Linux on ARM: unknown, not "none"
    assert cpu_instruction_sets(tmp_path / "absent") is None  # not Linux: unknown, not "none"


def test_a_benchmark_records_the_versions_of_the_packages_only_it_uses_beside_the_projects():
    """A benchmark's own packages (ONNX Runtime for the ONNX ones) are recorded with the project's, whichever
    record it writes: a run's (`collect`) or a benchmark's (`benchmark_made_by`)."""
    for made_by in (collect(["--help"], SCRIPT, "offline:none", {}, {}, onnxruntime="9.9.9"),
                    benchmark_made_by(SCRIPT, onnxruntime="9.9.9")):  # fmt: skip
        assert made_by["versions"]["onnxruntime"] == "9.9.9" and made_by["versions"]["transformers"]


def test_the_commit_is_recorded_only_for_the_checkout_the_code_and_program_came_from(tmp_path):
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PACKAGES_ROOT, capture_output=True, text=True)
    if head.returncode == 0:
        assert git_state(SCRIPT)["commit"] == head.stdout.strip()
    copy = tmp_path / "elsewhere" / "run_zero_shot.py"  # a program from another tree: its code is not that commit's
    copy.parent.mkdir()
    shutil.copyfile(SCRIPT, copy)
    foreign = git_state(copy)
    assert foreign["commit"] is None and foreign["installed"]["version"]
    # packages installed into a venv inside a checkout: git answers for the checkout, which is not where they are
    checkout = tmp_path / "checkout"
    subprocess.run(["git", "init", "-q", str(checkout)], check=True)
    site = checkout / ".venv" / "lib" / "site-packages"
    site.mkdir(parents=True)
    assert git_state(None, root=site)["commit"] is None


def test_the_code_digest_covers_the_program_that_ran(tmp_path):
    copy = tmp_path / "run_zero_shot.py"
    copy.write_text(SCRIPT.read_text() + "\n# changed\n")
    ours, theirs = code_files(SCRIPT), code_files(copy)
    assert ours.keys() == theirs.keys() and "program:run_zero_shot.py" in ours
    assert [name for name in ours if ours[name] != theirs[name]] == ["program:run_zero_shot.py"]


def made(device: str, settings: dict | None = None) -> dict:
    return {"device": device, "provenance": {"code_files": {"a.py": "1"}, "versions": {"torch": "2.13.0"}, "data": {},
            "backbone": {"sha256": None}, "settings": {"seed": 1, "learning_rate": 5e-5, **(settings or {})}}}  # fmt: skip


def test_runs_pool_across_cards_of_one_device_kind_and_setting_order_but_not_across_kinds():
    h100, h200 = made("cuda: NVIDIA H100 80GB HBM3"), made("cuda: NVIDIA H200")
    assert pooling_differences({"baseline": {1: h100}, "aif-layer-11": {1: h200}}) == []
    reordered = made("cpu", {"b": 1, "a": 2}), made("cpu", {"a": 2, "b": 1})
    assert pooling_differences({"baseline": {1: reordered[0]}, "aif-layer-11": {1: reordered[1]}}) == []
    refused = pooling_differences({"baseline": {1: made("cpu")}, "aif-layer-11": {1: h200}})
    assert refused == ["different device kind (cpu / cuda): baseline seed 1 | aif-layer-11 seed 1"]


def test_every_uncommitted_path_is_recorded_whole(tmp_path):
    # `git status --porcelain` starts a modified tracked file's line with a space (" M path"): stripping the whole
    # output before cutting each line's status cut the first path's first letter ("ests/..." for "tests/...").
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "a.py").write_text("a = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "a")
    (tmp_path / "tests" / "a.py").write_text("a = 2\n")
    state = git_state(None, root=tmp_path.resolve())
    assert state["dirty"] and state["uncommitted"] == ["tests/a.py"]


def recorded_commits(value: object) -> set[str]:
    """Every commit an archive's records name (`git_state`'s `commit`, wherever it is nested)."""
    if isinstance(value, dict):
        found = {value["commit"]} if isinstance(value.get("commit"), str) else set()
        return found.union(*(recorded_commits(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(recorded_commits(item) for item in value))
    return set()


def git(*args: str) -> subprocess.CompletedProcess:
    """`git args` in this checkout; its whole history is there (a shallow clone is refused by name)."""
    shallow = subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=ROOT, capture_output=True, text=True,
                             check=False).stdout.strip()  # fmt: skip
    assert shallow == "false", f"these tests read the whole history of a git checkout at {ROOT} (shallow: {shallow!r})"
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)


def lost_commits(commits: set[str]) -> set[str]:
    """Those of `commits` that are not in HEAD's history."""
    return {commit for commit in commits if git("merge-base", "--is-ancestor", commit, "HEAD").returncode}


def test_every_commit_an_archive_records_is_in_the_history_or_its_loss_is_dated():
    # A recorded commit says which code made a run only while it can be read. The PAWS-X study's frozen branch lived
    # only in one machine's worktree, and its commit ac17e83, which a run records, went with that machine: a frozen
    # branch is merged into main (keeping main's files) before its runs are archived, and a commit lost anyway is
    # named in docs/results.md's dated entries ("<commit> was lost").
    commits = {}
    for path in sorted((ROOT / "benchmarks" / "results").rglob("*.json")):
        for commit in recorded_commits(json.loads(path.read_text())):
            commits.setdefault(commit, str(path.relative_to(ROOT)))
    assert len(commits) > 1
    dated = (ROOT / "docs" / "results.md").read_text()
    undated = {
        commit: commits[commit] for commit in lost_commits(set(commits)) if f"{commit[:7]} was lost" not in dated
    }
    assert undated == {}


# A pre-registered study's plan, and the archive of its runs that record their commits (the first study's runs
# predate the record).
PLANS = {"docs/pawsx-plan.md": "pawsx.json", "docs/replication-plan.md": "udpos_replication.json"}


def archived_run_commits(archive: str) -> dict[tuple[str, int], str]:
    """The commit each run of a study's archive records, by (run name, seed); a curve point's run is seed 1."""
    runs = json.loads((ROOT / "benchmarks" / "results" / "study" / archive).read_text())
    recorded = {(name, int(seed)): run["provenance"]["commit"] for name, by_seed in runs["runs"].items()
                for seed, run in by_seed.items()}  # fmt: skip
    recorded.update({(point, 1): run["provenance"]["commit"] for point, run in runs.get("curve", {}).items()})
    assert recorded and None not in recorded.values()
    return recorded


@pytest.mark.parametrize("plan", sorted(PLANS))
def test_every_run_of_a_preregistered_study_ran_from_code_that_holds_its_committed_plan(plan):
    # The plan was committed before any of its runs: each run's recorded commit has the commit that added the plan in
    # its history (a lost commit is `test_every_commit_...`'s).
    added = git("log", "--diff-filter=A", "--format=%H", "--", plan).stdout.split()
    assert len(added) == 1, f"{plan} was added by {added}"
    recorded = archived_run_commits(PLANS[plan])
    lost = lost_commits(set(recorded.values()))
    before = {run: commit for run, commit in recorded.items()
              if commit not in lost and git("merge-base", "--is-ancestor", added[0], commit).returncode}  # fmt: skip
    assert before == {}, f"runs of {plan} from code without the plan"


def seeds_decision_at(commit: str) -> str | None:
    """`plans.PAWSX_SEEDS_DECISION` as `commit`'s plans.py writes it; None where it has none (or `commit` is lost)."""
    source = git("show", f"{commit}:dlfa_zero_shot/plans.py").stdout
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and [target.id for target in node.targets if isinstance(target, ast.Name)] == [
            "PAWSX_SEEDS_DECISION"
        ]:
            return ast.literal_eval(node.value)
    return None


def test_every_pawsx_comparison_run_ran_from_code_that_holds_the_dated_seeds_decision():
    # Any PAWS-X run past the layer choice and the curve is a comparison run: its commit's plans.py holds the seeds
    # decision main holds (its text, dated), not merely a line that starts to assign one.
    from dlfa_zero_shot.plans import PAWSX_PLAN

    assert PAWSX_PLAN.seeds_decision
    choice = {(names.run_name(layer), seed) for layer in PAWSX_PLAN.choice_layers for seed in PAWSX_PLAN.choice_seeds}
    comparison = {run: commit for run, commit in archived_run_commits(PLANS["docs/pawsx-plan.md"]).items()
                  if run not in choice and not run[0].startswith("n-")}  # fmt: skip
    undecided = {run: commit for run, commit in comparison.items()
                 if seeds_decision_at(commit) != PAWSX_PLAN.seeds_decision}  # fmt: skip
    assert undecided == {}, "comparison runs from code without the dated seeds decision"
