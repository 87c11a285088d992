"""
The DLFA plugin. Importing this package registers `DLFABertConfig` and the three DLFA models with the Auto classes
(`AutoConfig`, `AutoModel`, `AutoModelForTokenClassification`, `AutoModelForSequenceClassification`), and marks them
so that `save_pretrained` copies their code into the checkpoint folder.
"""

import sys

import configuration_dlfa.configuration_dlfa as _configuration_module


# `modeling_dlfa.py` imports its config as `.configuration_dlfa`, the flat layout of a checkpoint folder (see the
# README). Inside this package that name is an alias of the one configuration module, so there is a single
# `DLFABertConfig` class; the file `modeling_dlfa/configuration_dlfa.py` is a symlink that lets `save_pretrained`
# find and copy the file.
sys.modules[f"{__name__}.configuration_dlfa"] = _configuration_module

from transformers import (  # noqa: E402
    AutoModel,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from configuration_dlfa import DLFABertConfig  # noqa: E402  (registers AutoConfig)

from .modeling_dlfa import (  # noqa: E402
    AttentionalInformationFusion,
    DLFABertForSequenceClassification,
    DLFABertForTokenClassification,
    DLFABertModel,
    DLFABertPreTrainedModel,
)


for _auto_class, _model_class in (
    (AutoModel, DLFABertModel),
    (AutoModelForTokenClassification, DLFABertForTokenClassification),
    (AutoModelForSequenceClassification, DLFABertForSequenceClassification),
):
    _auto_class.register(DLFABertConfig, _model_class, exist_ok=True)
    _model_class.register_for_auto_class(_auto_class.__name__)

__all__ = [
    "AttentionalInformationFusion",
    "DLFABertConfig",
    "DLFABertForSequenceClassification",
    "DLFABertForTokenClassification",
    "DLFABertModel",
    "DLFABertPreTrainedModel",
]
