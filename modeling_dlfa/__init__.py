"""
The DLFA plugin. Importing this package registers the DLFA configs and models with the Auto classes (`AutoConfig`,
`AutoModel`, `AutoModelForTokenClassification`, `AutoModelForSequenceClassification`): `DLFABertConfig` and the
`DLFABert*` models (BERT), `DLFAConfig` and the `DLFA*` models (any encoder family of `ENCODER_FAMILIES`); and marks
them so that `save_pretrained` copies their code into the checkpoint folder.
"""

from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoModelForTokenClassification

# The four files are flat modules that are also copied, as they are, into every saved checkpoint folder; they never
# register anything themselves.
from .configuration_dlfa import ENCODER_FAMILIES, DLFABertConfig, DLFAConfig
from .fusion_dlfa import AIFBlock
from .modeling_dlfa import (
    DLFABertForSequenceClassification,
    DLFABertForTokenClassification,
    DLFABertModel,
    DLFABertPreTrainedModel,
    DLFAForSequenceClassification,
    DLFAForTokenClassification,
    DLFAModel,
    DLFAPreTrainedModel,
)
from .pipeline_dlfa import WordTokenClassificationPipeline, add_word_pipeline


for _config_class, _model_classes in (
    (DLFABertConfig, (DLFABertModel, DLFABertForTokenClassification, DLFABertForSequenceClassification)),
    (DLFAConfig, (DLFAModel, DLFAForTokenClassification, DLFAForSequenceClassification)),
):
    AutoConfig.register(_config_class.model_type, _config_class, exist_ok=True)
    _config_class.register_for_auto_class()
    for _auto_class, _model_class in zip(
        (AutoModel, AutoModelForTokenClassification, AutoModelForSequenceClassification), _model_classes
    ):
        _auto_class.register(_config_class, _model_class, exist_ok=True)
        _model_class.register_for_auto_class(_auto_class.__name__)

__all__ = [
    "ENCODER_FAMILIES",
    "AIFBlock",
    "DLFABertConfig",
    "DLFABertForSequenceClassification",
    "DLFABertForTokenClassification",
    "DLFABertModel",
    "DLFABertPreTrainedModel",
    "DLFAConfig",
    "DLFAForSequenceClassification",
    "DLFAForTokenClassification",
    "DLFAModel",
    "DLFAPreTrainedModel",
    "WordTokenClassificationPipeline",
    "add_word_pipeline",
]
