"""DLFA-BERT configuration; importing this package registers it with `AutoConfig`."""

from transformers import AutoConfig

from .configuration_dlfa import DLFABertConfig


AutoConfig.register(DLFABertConfig.model_type, DLFABertConfig, exist_ok=True)
DLFABertConfig.register_for_auto_class()

__all__ = ["DLFABertConfig"]
