"""
DLFA-BERT configuration. Importing this package registers `DLFABertConfig` with `AutoConfig`.

The class itself lives in `modeling_dlfa/configuration_dlfa.py`, beside the modeling file that imports it as
`.configuration_dlfa` (the flat layout of a checkpoint folder), so that `save_pretrained` copies both files and there
is exactly one `DLFABertConfig` class at run time.
"""

from modeling_dlfa.configuration_dlfa import DLFABertConfig


__all__ = ["DLFABertConfig"]
