# Copyright 2026 The dlfa authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""DLFA-BERT configuration.

This file is self-contained (it imports only transformers and huggingface_hub) because `save_pretrained` copies it
into every checkpoint folder, where it must load with `trust_remote_code=True` on a machine without the plugin.
"""

import dataclasses
from typing import Any

from huggingface_hub.dataclasses import strict
from transformers import BertConfig


AIF_GATES = ("paper", "aff")
AIF_NORMS = ("batch", "layer")
FUSION_METHODS = ("aif", "scalar_mix", "concat")

# Written into every saved config, so that a checkpoint of any head loads through every Auto class.
DLFA_AUTO_MAP = {
    "AutoConfig": "configuration_dlfa.DLFABertConfig",
    "AutoModel": "modeling_dlfa.DLFABertModel",
    "AutoModelForTokenClassification": "modeling_dlfa.DLFABertForTokenClassification",
    "AutoModelForSequenceClassification": "modeling_dlfa.DLFABertForSequenceClassification",
}


@strict(accept_kwargs=True)
class DLFABertConfig(BertConfig):
    r"""
    Configuration of a BERT encoder with Double Layers Feature Aggregation (DLFA, Chen et al., ICPR 2022): the last
    layer's hidden states are fused with those of one lower layer by an Attentional Information Fusion (AIF) block
    before the task head. All [`BertConfig`] fields keep their meaning; a plain BERT `config.json` loads into this
    class unchanged.

    Args:
        fusion_layer (`int`, *optional*):
            The lower layer fused with the last one, as an index into `hidden_states` (1 = output of the first
            encoder layer). Valid range: `1 .. num_hidden_layers - 1`. Defaults to `num_hidden_layers - 1`, the
            paper's best layer on XNLI.
        aif_reduction (`int`, *optional*, defaults to 4):
            Reduction ratio r of the AIF bottleneck: the branches map `hidden_size -> hidden_size // r ->
            hidden_size`. Valid range: `1 .. hidden_size`.
        aif_gate (`str`, *optional*, defaults to `"aff"`):
            `"paper"`: the attention map is `W * sigmoid(G + Lc)` with `W = (L1 + L2) / 2` (the paper's Eq. 1 as
            printed); `"aff"`: `sigmoid(G + Lc)` alone, a convex weight in [0, 1] as in AFF/MS-CAM.
        aif_gate_init (`float`, *optional*, defaults to 0.5):
            The value of `sigmoid(G + Lc)` at initialisation, everywhere (the branches' output norms start with zero
            scale and this bias). 0.5 starts the fused states at the average of the two layers; a small value starts
            them close to the last layer alone, i.e. at the last-layer baseline. Valid range: the open interval (0, 1).
        aif_norm (`str`, *optional*, defaults to `"batch"`):
            Normalisation inside the AIF branches. `"batch"`: BatchNorm as in the paper, with statistics taken over
            real (non-padding) tokens only; `"layer"`: LayerNorm over channels, independent of the other examples
            in the batch (for per-device batches of 1 or when training and inference must see identical maths).
        fusion_method (`str`, *optional*, defaults to `"aif"`):
            `"aif"`: DLFA's Attentional Information Fusion of `fusion_layer` with the last layer. Two peer fusions
            from the literature sit behind the same interface, for comparison: `"scalar_mix"`, ELMo's softmax-weighted
            sum of the embeddings and every layer times a learned scale (Peters et al., 2018; `fusion_layer` unused),
            and `"concat"`, a linear projection of the concatenated `[L1; L2]` back to `hidden_size`.

    Example:

    ```python
    >>> from configuration_dlfa import DLFABertConfig

    >>> config = DLFABertConfig(num_hidden_layers=12, fusion_layer=8)
    >>> config.fusion_layer
    8
    ```
    """

    model_type = "dlfa_bert"

    fusion_layer: int | None = None
    aif_reduction: int = 4
    aif_gate: str = "aff"
    aif_gate_init: float = 0.5
    aif_norm: str = "batch"
    fusion_method: str = "aif"

    def __post_init__(self, **kwargs: Any) -> None:
        # A plain BERT config.json carries "model_type": "bert"; kept, it would shadow this class's own type.
        kwargs.pop("model_type", None)
        if self.fusion_layer is None and isinstance(self.num_hidden_layers, int):
            self.fusion_layer = self.num_hidden_layers - 1
        if kwargs.get("auto_map") is None:
            kwargs["auto_map"] = dict(DLFA_AUTO_MAP)
        super().__post_init__(**kwargs)
        # Field types are checked by `@strict` on every assignment; the ranges depend on other fields and are checked
        # here, raising a plain ValueError (`validate()`, run by `@strict` and at save time, wraps it).
        self.validate_dlfa_fields()

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> "DLFABertConfig":
        # `PreTrainedConfig.from_dict` builds the config first and applies keyword overrides afterwards, so the
        # constructor's validation would judge stale values: `from_pretrained(four_layer_bert, fusion_layer=2)`
        # must not fail on a default computed for another depth. Merge the overrides of declared fields first.
        field_names = {field.name for field in dataclasses.fields(cls)}
        overrides = {key: kwargs.pop(key) for key in list(kwargs) if key in field_names}
        return super().from_dict({**config_dict, **overrides}, **kwargs)

    def validate_dlfa_fields(self) -> None:
        """Check the DLFA fields against the backbone they belong to; raise `ValueError` naming the bad value."""
        num_layers = self.num_hidden_layers
        if num_layers < 2:
            raise ValueError(
                f"DLFA fuses the last layer with a lower one and needs num_hidden_layers >= 2, got {num_layers}."
            )
        if self.fusion_layer is None or not 1 <= self.fusion_layer <= num_layers - 1:
            raise ValueError(
                f"fusion_layer={self.fusion_layer!r} is out of range: it must be an integer in 1..{num_layers - 1} "
                f"(num_hidden_layers={num_layers}; the last layer is always fused)."
            )
        if not 1 <= self.aif_reduction <= self.hidden_size:
            raise ValueError(
                f"aif_reduction={self.aif_reduction!r} is out of range: it must be an integer in "
                f"1..{self.hidden_size} (hidden_size={self.hidden_size})."
            )
        if self.aif_gate not in AIF_GATES:
            raise ValueError(f"aif_gate={self.aif_gate!r} is not supported: choose one of {AIF_GATES}.")
        if not 0.0 < self.aif_gate_init < 1.0:
            raise ValueError(
                f"aif_gate_init={self.aif_gate_init!r} is out of range: it must be a number in the open interval (0, 1)."
            )
        if self.aif_norm not in AIF_NORMS:
            raise ValueError(f"aif_norm={self.aif_norm!r} is not supported: choose one of {AIF_NORMS}.")
        if self.fusion_method not in FUSION_METHODS:
            raise ValueError(f"fusion_method={self.fusion_method!r} is not supported: choose one of {FUSION_METHODS}.")


__all__ = ["DLFABertConfig"]
