"""
The backbone of a harness call, resolved once: where `--model_name_or_path` is read from (an offline backbone
converted first), its config, its tokenizer. `cli` resolves it and passes it on; the model builders (`heads`) and the
run plan take it, and nothing reads the backbone's config or tokenizer again.
"""

import dataclasses
from collections.abc import Callable

from transformers import AutoConfig, AutoTokenizer, PreTrainedConfig, PreTrainedTokenizerBase


@dataclasses.dataclass(frozen=True)
class Backbone:
    """
    The encoder a call fine-tunes, or the fine-tuned checkpoint it evaluates. `config` is shared by everything that
    reads it: build a changed config with `config_as`, never change this one.
    """

    name: str  # as the user named it (`--model_name_or_path`): the model card's base model
    path: str  # what `from_pretrained` reads: a folder (a converted offline backbone) or a Hub id
    config: PreTrainedConfig
    tokenizer: PreTrainedTokenizerBase
    cache_dir: str | None = None
    trust_remote_code: bool = False

    @property
    def family(self) -> str:
        """Its config's `model_type`: the encoder family of a backbone to fine-tune (checked where a head is built)."""
        return self.config.model_type

    def config_as(self, config_class: type[PreTrainedConfig] | None = None, **fields) -> PreTrainedConfig:
        """
        A new config of `config_class` (default: the backbone's own) from the backbone's, with `fields` set: what
        `config_class.from_pretrained(self.path, **fields)` builds, without reading the backbone's files again.
        """
        # The path the backbone was read from is the model's to record (`from_pretrained` sets it), not its config's.
        config_dict = {key: value for key, value in self.config.to_dict().items() if key != "_name_or_path"}
        return (config_class or type(self.config)).from_dict(config_dict, **fields)


def prepare_backbone(
    path: str,
    name: str,
    cache_dir: str | None = None,
    trust_remote_code: bool = False,
    check_config: Callable[[PreTrainedConfig], None] | None = None,
) -> Backbone:
    """
    Read the config and the tokenizer of the backbone at `path` (`resolve_backbone`'s answer for `name`), once. The
    tokenizer gets that config, so that it does not read it again to learn its class. `check_config` (raising on a
    config the caller cannot use) sees the config before the tokenizer is read: its refusal is the error, not a
    tokenizer a refused backbone may lack.
    """
    config = AutoConfig.from_pretrained(path, cache_dir=cache_dir, trust_remote_code=trust_remote_code)
    if check_config:
        check_config(config)
    tokenizer = AutoTokenizer.from_pretrained(path, cache_dir=cache_dir, config=config)
    return Backbone(name, path, config, tokenizer, cache_dir, trust_remote_code)
