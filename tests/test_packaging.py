"""The repository as a user gets it: no symlinks, a clone made without symlink support installs, saves and reloads a
self-contained checkpoint, and the sdist carries its tests."""

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from dlfa_tester import DLFABertModelTester
from modeling_dlfa import DLFABertForTokenClassification
from remote_code import SAVED_FILES, run_without_plugin


ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A clone of this repository's HEAD as Windows (or `core.symlinks=false`) checks it out."""
    if not (ROOT / ".git").exists():
        pytest.skip(f"SKIPPED LOUDLY: {ROOT} is not a git checkout, so there is nothing to clone")
    target = tmp_path_factory.mktemp("clone") / "dlfa"
    subprocess.run(["git", "-c", "core.symlinks=false", "clone", "--quiet", str(ROOT), str(target)], check=True)
    return target


def test_no_symlinks_are_tracked():
    if not (ROOT / ".git").exists():
        pytest.skip(f"SKIPPED LOUDLY: {ROOT} is not a git checkout")
    staged = subprocess.run(["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert [line for line in staged.splitlines() if line.startswith("120000")] == []


SAVE = """
import sys
import modeling_dlfa
from modeling_dlfa import DLFABertConfig, DLFABertForTokenClassification
import configuration_dlfa
assert configuration_dlfa.DLFABertConfig is DLFABertConfig  # one config class at run time
config = DLFABertConfig(**__import__("json").loads(sys.argv[2]))
model = DLFABertForTokenClassification(config).eval()
model.save_pretrained(sys.argv[1])
print(modeling_dlfa.__file__)
"""

RELOAD = """
import json, sys
import torch
from transformers import AutoModelForTokenClassification
model = AutoModelForTokenClassification.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
with torch.no_grad():
    print(json.dumps(model(input_ids=torch.tensor([[5, 6, 7, 8]])).logits.tolist()))
"""


@pytest.fixture(scope="module")
def site(clone, tmp_path_factory) -> Path:
    """The clone installed (not editable) into a folder of its own, as a user's site-packages."""
    site = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target",
                    str(site), str(clone)], check=True, capture_output=True)  # fmt: skip
    return site


def test_a_clone_without_symlinks_installs_saves_and_reloads(site, tmp_path):
    config = DLFABertModelTester().get_config().to_dict()
    keep = (
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "fusion_layer",
    )
    shape = {key: config[key] for key in keep}
    environment = {**os.environ, "PYTHONPATH": str(site)}
    saved = subprocess.run([sys.executable, "-c", SAVE, str(tmp_path / "ckpt"), json.dumps(shape)], cwd=tmp_path,
                           env=environment, capture_output=True, text=True)  # fmt: skip
    assert saved.returncode == 0, saved.stderr[-3000:]
    assert saved.stdout.strip().startswith(str(site))  # the installed copy, not this checkout
    files = sorted(path.name for path in (tmp_path / "ckpt").iterdir())
    assert files == SAVED_FILES
    assert "class DLFABertConfig" in (tmp_path / "ckpt" / "configuration_dlfa.py").read_text()

    logits = json.loads(run_without_plugin(RELOAD, [str(tmp_path / "ckpt")], tmp_path).strip().splitlines()[-1])
    model = DLFABertForTokenClassification.from_pretrained(tmp_path / "ckpt").eval()
    with torch.no_grad():
        expected = model(input_ids=torch.tensor([[5, 6, 7, 8]])).logits
    torch.testing.assert_close(torch.tensor(logits), expected)


CARD = """
import sys
from pathlib import Path
from dlfa_zero_shot import model_card
from transformers import BertConfig
result = {"run": "baseline", "metric": "f1", "scores": {"selection": {"f1": 0.5}, "de": {"f1": 0.4}}}
print(model_card.write_model_card(Path(sys.argv[1]), "panx", result, BertConfig(), "base").read_text())
print(model_card.TEMPLATE)
"""


def test_an_installed_package_writes_the_model_card_from_its_shipped_template(site, tmp_path):
    """The card's template is package data (model_cards/ holds no code): an installed dlfa finds it beside itself."""
    environment = {**os.environ, "PYTHONPATH": str(site)}
    written = subprocess.run([sys.executable, "-c", CARD, str(tmp_path)], check=False, cwd=tmp_path, env=environment,
                             capture_output=True, text=True)  # fmt: skip
    assert written.returncode == 0, written.stderr[-3000:]
    template = Path(written.stdout.strip().splitlines()[-1])
    assert template.resolve() == (site / "model_cards" / "dlfa_model_card.md").resolve()
    assert "trust_remote_code=True" in (tmp_path / "README.md").read_text()
    assert not list((site / "model_cards").glob("*.py"))


def test_the_sdist_carries_the_tests_and_the_licence(clone, tmp_path):
    built = subprocess.run(
        [sys.executable, "-c", f"from setuptools import build_meta; print(build_meta.build_sdist({str(tmp_path)!r}))"],
        cwd=clone, capture_output=True, text=True,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    with tarfile.open(tmp_path / built.stdout.strip().splitlines()[-1]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    tracked = subprocess.run(
        ["git", "ls-files", "tests", "examples", "dlfa_zero_shot"], cwd=clone, capture_output=True, text=True
    ).stdout
    assert {"LICENSE", "setup.cfg", "modeling_dlfa/configuration_dlfa.py"} <= names
    assert set(tracked.split()) <= names


def test_committed_results_hold_no_machine_paths():
    """Archived runs name their data relative to the data folder, so they mean the same on every machine."""
    if not (ROOT / ".git").exists():
        pytest.skip(f"SKIPPED LOUDLY: {ROOT} is not a git checkout")
    listed = subprocess.run(["git", "ls-files", "*.json"], cwd=ROOT, capture_output=True, text=True, check=True)
    pattern = re.compile(r'"(/(home|root|tmp|work|Users|var)/|[A-Z]:\\\\)')
    offending = [path for path in listed.stdout.split() if pattern.search((ROOT / path).read_text(encoding="utf-8"))]
    assert offending == []


def test_a_passing_tests_temporary_folder_is_gone_when_it_ends(pytester):
    """The suite's settings remove each passing test's `tmp_path` as the test ends, not at the session's end: the
    suite writes checkpoints by the gigabyte, and keeping them all filled CI's disk."""
    pytester.makepyprojecttoml((ROOT / "pyproject.toml").read_text())
    record = pytester.path / "tmp_paths.txt"
    pytester.makepyfile(
        f"""
        def test_writes(tmp_path):
            (tmp_path / "weights.bin").write_bytes(bytes(1 << 20))
            with open({str(record)!r}, "a") as f:
                f.write(str(tmp_path) + "\\n")

        def test_sees_the_first_folder_gone():
            first = open({str(record)!r}).read().split()[0]
            import os
            assert not os.path.exists(first), first
        """
    )
    result = pytester.runpytest_subprocess(*pytester.path.glob("test_*.py"), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
