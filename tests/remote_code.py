"""Run Python in a fresh interpreter that cannot import the plugin, as on a machine that only has transformers."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path


# What a saved DLFA checkpoint folder holds: weights, config, and the plugin's code files.
SAVED_FILES = [
    "config.json",
    "configuration_dlfa.py",
    "fusion_dlfa.py",
    "model.safetensors",
    "modeling_dlfa.py",
    "pipeline_dlfa.py",
]

BLOCK_PLUGIN = textwrap.dedent(
    """
    import importlib.abc, sys

    class BlockPlugin(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("modeling_dlfa", "configuration_dlfa"):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, BlockPlugin())
    try:
        import modeling_dlfa
        sys.exit("the plugin is importable: the test would prove nothing")
    except ModuleNotFoundError:
        pass
    """
)


def run_without_plugin(script: str, args: list[str], work_dir: Path, env: dict | None = None) -> str:
    """Run `script` (after the import block) offline; return its stdout, failing with its stderr."""
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(work_dir / "modules"), **(env or {})}
    environment.pop("PYTHONPATH", None)
    completed = subprocess.run(
        [sys.executable, "-c", BLOCK_PLUGIN + textwrap.dedent(script), *args],
        cwd=work_dir,
        env=environment,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "Do you wish to run the custom code" not in completed.stdout, "a load asked for trust_remote_code"
    return completed.stdout
