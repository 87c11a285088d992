"""
Which Trainer checkpoint a run resumes from: the last complete one. The Trainer writes a checkpoint's files in place,
one after another, `trainer_state.json` last; a process killed during the save, a full disk, or a file damaged later
leaves a `checkpoint-<step>` folder that does not load. `resume_checkpoint` checks every file of the last checkpoint
(the JSON files parse, the safetensors headers and sizes agree, the `torch.save` archives are whole), sets an
incomplete one aside under a `damaged-` name and says so, and falls back to the one before.
"""

import logging
import re
import zipfile
from pathlib import Path

from safetensors import SafetensorError, safe_open
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .files import DamagedFileError, read_json, set_aside


logger = logging.getLogger(__name__)
TRAINER_STATE = "trainer_state.json"  # the file the Trainer writes last in a checkpoint
CHECKPOINT_NAME = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


def checkpoints(run_dir: Path) -> list[Path]:
    """The `checkpoint-<step>` folders of `run_dir`, newest (highest step) first."""
    found = [path for path in Path(run_dir).iterdir() if path.is_dir() and CHECKPOINT_NAME.match(path.name)]
    return sorted(found, key=lambda path: int(CHECKPOINT_NAME.match(path.name).group(1)), reverse=True)


def file_problem(path: Path) -> str | None:
    """What is wrong with one checkpoint file (None: it reads back): JSON, safetensors, `torch.save` archives."""
    if path.suffix == ".json":
        try:
            read_json(path)
        except DamagedFileError as error:
            return error.problem
    elif path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except (SafetensorError, OSError) as error:
            return f"not a whole safetensors file ({error}; {path.stat().st_size} bytes)"
    elif path.suffix in (".pt", ".pth", ".bin"):  # torch.save's zip archives: cut short, they lose their directory
        size = path.stat().st_size
        try:
            with zipfile.ZipFile(path) as archive:
                if any(item.header_offset + item.compress_size > size for item in archive.infolist()):
                    return f"a torch.save archive cut short ({size} bytes)"
        except (zipfile.BadZipFile, OSError) as error:
            return f"not a whole torch.save archive ({error}; {size} bytes)"
    return None


def checkpoint_problems(folder: Path) -> list[str]:
    """Every reason `folder` is not a complete checkpoint (none: it is): a missing trainer state, a file cut short."""
    if not (folder / TRAINER_STATE).is_file():
        return [f"no {TRAINER_STATE} (the Trainer writes it last: the save did not finish)"]
    problems = []
    for path in sorted(folder.iterdir()):
        problem = file_problem(path) if path.is_file() else None
        if problem:
            problems.append(f"{path.name}: {problem}")
    return problems


def resume_checkpoint(run_dir: Path) -> str | None:
    """
    The last complete checkpoint of `run_dir` to resume from (None: none, train from the start). A later checkpoint
    that is not complete, or whose best checkpoint (`load_best_model_at_end`) is not, is set aside
    (`damaged-checkpoint-<step>-<time>`, never deleted), with a warning that names it, what is wrong and the
    checkpoint the run resumes from instead.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    set_aside_reasons = {}
    for folder in checkpoints(run_dir):
        problems = checkpoint_problems(folder)
        if not problems:
            best = read_json(folder / TRAINER_STATE).get("best_model_checkpoint")
            best_folder = run_dir / Path(best).name if best else None
            if best_folder is not None and best_folder != folder:
                best_problems = checkpoint_problems(best_folder) if best_folder.is_dir() else ["it is missing"]
                if best_problems:
                    problems = [f"its best checkpoint {best_folder.name} is not complete ({'; '.join(best_problems)})"]
        if not problems:
            if set_aside_reasons:
                logger.warning("%s: resuming from %s, the last complete checkpoint", run_dir, folder.name)
            return str(folder)
        aside = set_aside(folder)
        set_aside_reasons[folder.name] = problems
        logger.warning(
            "%s is not a complete checkpoint (%s): moved it aside to %s; the run falls back to the checkpoint before "
            "it", folder, "; ".join(problems), aside.name,
        )  # fmt: skip
    if set_aside_reasons:
        logger.warning("%s: no complete checkpoint is left; the run trains from the start", run_dir)
    return None
