"""
DLFA configurations. Importing this package registers `DLFABertConfig` and `DLFAConfig` with `AutoConfig`.

The classes themselves live in `modeling_dlfa/configuration_dlfa.py`, beside the modeling file that imports them as
`.configuration_dlfa` (the flat layout of a checkpoint folder), so that `save_pretrained` copies both files and there
is exactly one class of each at run time.
"""

from modeling_dlfa.configuration_dlfa import DLFABertConfig, DLFAConfig


__all__ = ["DLFABertConfig", "DLFAConfig"]
