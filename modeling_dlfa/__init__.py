"""
The DLFA plugin. Importing this package registers `DLFABertConfig` and the three DLFA models with the Auto classes
(`AutoConfig`, `AutoModel`, `AutoModelForTokenClassification`, `AutoModelForSequenceClassification`), and marks them
so that `save_pretrained` copies their code into the checkpoint folder.
"""

from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoModelForTokenClassification

# The three files are flat modules that are also copied, as they are, into every saved checkpoint folder; they never
# register anything themselves.
from .configuration_dlfa import DLFABertConfig
from .modeling_dlfa import (
    AIFBlock,
    DLFABertForLayerSearch,
    DLFABertForSequenceClassification,
    DLFABertForTokenClassification,
    DLFABertModel,
    DLFABertPreTrainedModel,
)
from .pipeline_dlfa import WordTokenClassificationPipeline, add_word_pipeline


AutoConfig.register(DLFABertConfig.model_type, DLFABertConfig, exist_ok=True)
DLFABertConfig.register_for_auto_class()
for _auto_class, _model_class in (
    (AutoModel, DLFABertModel),
    (AutoModelForTokenClassification, DLFABertForTokenClassification),
    (AutoModelForSequenceClassification, DLFABertForSequenceClassification),
):
    _auto_class.register(DLFABertConfig, _model_class, exist_ok=True)
    _model_class.register_for_auto_class(_auto_class.__name__)

__all__ = [
    "AIFBlock",
    "DLFABertForLayerSearch",
    "DLFABertConfig",
    "DLFABertForSequenceClassification",
    "DLFABertForTokenClassification",
    "DLFABertModel",
    "DLFABertPreTrainedModel",
    "WordTokenClassificationPipeline",
    "add_word_pipeline",
]
