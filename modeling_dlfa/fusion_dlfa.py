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
"""
DLFA's fusion modules: the AIF block (with its written-out backward, `AIFFunction`) and the peer fusions kept for
comparison (`ScalarMix`, `ConcatenationFusion`), by `config.fusion_method` in `FUSION_CLASSES`, and their
initialisation (`init_fusion_weights`).

Copied into every saved checkpoint with `modeling_dlfa.py`, which imports it relatively: import only from the standard
library, torch, transformers and, relatively, `.configuration_dlfa`.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.autograd.function import once_differentiable
from transformers import initialization as init

from .configuration_dlfa import DLFAFusionConfig


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """
    BatchNorm over the channels of channel-last features whose training statistics come from the marked positions
    only, so that padding tokens (or examples with no real token) never shift the statistics. With no position
    marked, or one, the output stays finite: the variance falls back to zero and `eps` bounds the scale.
    In eval mode it uses the running statistics, exactly as `nn.BatchNorm1d`.

    With `initial_output` set, `_init_weights` starts the scale at zero and the shift at that value, so that the
    norm first outputs that constant (the last norm of an AIF branch: it sets the gate's starting value).

    For [`AIFBlock`]'s written-out backward, `normalize` also returns the statistics it used, and reuses them when
    given (so that recomputing the block in backward moves the running statistics once per step, not twice), and
    `gradients` is its backward.

    Shapes: `hidden_states` `(batch, positions, channels)`, `mask` `(batch, positions)` (bool) -> same as input.
    """

    def __init__(self, num_features: int, initial_output: float | None = None):
        super().__init__(num_features)
        self.initial_output = initial_output

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.normalize(hidden_states, mask)[0]

    def normalize(
        self,
        hidden_states: torch.Tensor,
        mask: torch.Tensor,
        statistics: tuple | None = None,
        shift: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, tuple, torch.Tensor]:
        """
        The normalised states (plus `shift`, broadcast, where given: one pass over the states fewer than adding it
        after), the statistics they used, and what `gradients` reads (the centred states, float32). The statistics,
        `(mean, inverse_std, token_share)`, are float32 per channel, and each marked position's share of the count,
        `(batch, positions, 1)`, or None where the running statistics were used. Batch statistics (training) update
        the running ones; given `statistics`, nothing is updated.
        """
        values = hidden_states.float()
        if statistics is not None:
            mean, inverse_std, token_share = statistics
            centered = values - mean
        elif not self.training and self.track_running_stats:
            # Copies, so that a later training step's update of the buffers cannot touch a backward still to come.
            mean, token_share = self.running_mean.float().clone(), None
            inverse_std = torch.rsqrt(self.running_var.float() + self.eps)
            centered = values - mean
        else:
            weights = mask.unsqueeze(-1).float()
            count = weights.sum()
            token_share = weights / count.clamp(min=1.0)
            shares, channels = token_share.reshape(-1), values.shape[-1]
            with torch.autocast(values.device.type, enabled=False):  # the statistics stay float32
                mean = shares @ values.reshape(-1, channels)
                centered = values - mean
                var = shares @ centered.square().reshape(-1, channels)
            inverse_std = torch.rsqrt(var + self.eps)
            if self.training and self.track_running_stats:
                self._update_running_stats(mean, var, count)
        bias = self.bias if shift is None else self.bias + shift
        normalized = torch.addcmul(bias, centered, self.weight * inverse_std)
        return normalized.to(hidden_states.dtype), (mean, inverse_std, token_share), centered

    def gradients(
        self, grad_output: torch.Tensor, centered: torch.Tensor, statistics: tuple
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The gradients of `normalize` from its centred states and statistics: input, weight, bias."""
        _, inverse_std, token_share = statistics
        grad = grad_output.float()
        grad_bias = grad.sum(dim=(0, 1))
        grad_weight = (grad * centered).sum(dim=(0, 1)) * inverse_std
        scale = self.weight * inverse_std
        if token_share is None:
            grad_input = grad * scale
        else:
            # Batch statistics: a marked position also moves the mean and the variance, which takes
            # share * (sum(grad) + normalized * sum(grad * normalized)) off its gradient before the scale.
            correction = torch.addcmul(grad_bias, centered, grad_weight * inverse_std)
            grad_input = torch.addcmul(grad, token_share, correction, value=-1).mul_(scale)
        dtype = self.weight.dtype
        return grad_input.to(dtype), grad_weight.to(dtype), grad_bias.to(dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, count: torch.Tensor) -> None:
        self.num_batches_tracked.add_(1)
        momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        # A batch without a real token carries no statistics; as in nn.BatchNorm1d the running variance is unbiased.
        momentum = momentum * (count > 0).float()
        unbiased_var = var * count / (count - 1).clamp(min=1.0)
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
        self.running_var.lerp_(unbiased_var.to(self.running_var.dtype), momentum)


class MaskedLayerNorm(nn.LayerNorm):
    """
    LayerNorm over the channels of each position; it takes (and ignores) the mask so that it can stand in for
    [`MaskedBatchNorm1d`]: its output never depends on other positions or examples. `normalize` and `gradients` are
    [`MaskedBatchNorm1d`]'s; the statistics are per position, `(mean, inverse_std)`, and recomputed each time (the
    same), and what `gradients` reads is the input.

    Shapes: `hidden_states` `(batch, positions, channels)`, `mask` `(batch, positions)` -> same as input.
    """

    def __init__(self, num_features: int, initial_output: float | None = None):
        super().__init__(num_features)
        self.initial_output = initial_output

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return super().forward(hidden_states)

    def normalize(
        self,
        hidden_states: torch.Tensor,
        mask: torch.Tensor,
        statistics: tuple | None = None,
        shift: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, tuple, torch.Tensor]:
        normalized, mean, inverse_std = torch.native_layer_norm(
            hidden_states, self.normalized_shape, self.weight, self.bias, self.eps
        )
        if shift is not None:
            normalized.add_(shift)
        return normalized, (mean, inverse_std), hidden_states

    def gradients(
        self, grad_output: torch.Tensor, hidden_states: torch.Tensor, statistics: tuple
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mean, inverse_std = statistics
        grad_output = grad_output.to(hidden_states.dtype)
        return torch.ops.aten.native_layer_norm_backward(
            grad_output, hidden_states, self.normalized_shape, mean, inverse_std, self.weight, self.bias, [True] * 3
        )


AIF_NORM_CLASSES = {"batch": MaskedBatchNorm1d, "layer": MaskedLayerNorm}


def linear_gradients(
    grad_output: torch.Tensor, inputs: torch.Tensor, weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """
    The gradients of `nn.functional.linear(inputs, weight, bias)`: weight, bias, inputs. Shapes: `grad_output`
    `(..., out_features)`, `inputs` `(..., in_features)`, `weight` `(out_features, in_features)`.
    """
    grad_rows = grad_output.reshape(-1, grad_output.shape[-1])
    grad_weight = grad_rows.t() @ inputs.reshape(-1, inputs.shape[-1])
    return grad_weight, grad_rows.sum(dim=0), grad_output @ weight


class AIFContextBranch(nn.Module):
    """
    One AIF branch: Conv1d(E, E/r, 1) -> Norm -> ReLU -> Conv1d(E/r, E, 1) -> Norm. A 1x1 convolution over the
    token axis is a linear map of each token's features, so the convolutions are `nn.Linear` layers applied to
    channel-last states (no transposes); a Conv1d weight of shape `(out, in, 1)` loads as `weight[..., 0]`.

    `forward` also returns what [`AIFBlock`]'s written-out backward needs: the intermediates (recomputed in backward)
    and the norms' statistics; `gradients` is the branch's backward. Both read the linear layers' weights directly.

    Shapes: `hidden_states` `(batch, positions, hidden_size)`, `mask` `(batch, positions)` (bool)
    -> `(batch, positions, hidden_size)`.
    """

    def __init__(self, config: DLFAFusionConfig):
        super().__init__()
        bottleneck_size = config.hidden_size // config.aif_reduction  # >= 1: the config bounds r by hidden_size
        norm_class = AIF_NORM_CLASSES[config.aif_norm]
        self.reduce = nn.Linear(config.hidden_size, bottleneck_size)
        self.reduce_norm = norm_class(bottleneck_size)
        self.activation = nn.ReLU()
        self.expand = nn.Linear(bottleneck_size, config.hidden_size)
        # G + Lc starts at logit(aif_gate_init) everywhere, half from each branch.
        initial_logit = math.log(config.aif_gate_init / (1 - config.aif_gate_init))
        self.expand_norm = norm_class(config.hidden_size, initial_output=initial_logit / 2)

    def forward(
        self,
        hidden_states: torch.Tensor,
        mask: torch.Tensor,
        statistics: tuple | None = None,
        shift: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, tuple, tuple]:
        """
        The branch's output (plus `shift`, broadcast, where given), what `gradients` reads back, and its norms'
        statistics (reused when given: see [`MaskedBatchNorm1d.normalize`]).
        """
        reduce_statistics, expand_statistics = statistics or (None, None)
        reduced = nn.functional.linear(hidden_states, self.reduce.weight, self.reduce.bias)
        normalized, reduce_statistics, reduce_kept = self.reduce_norm.normalize(reduced, mask, reduce_statistics)
        activated = self.activation(normalized)
        expanded = nn.functional.linear(activated, self.expand.weight, self.expand.bias)
        output, expand_statistics, expand_kept = self.expand_norm.normalize(expanded, mask, expand_statistics, shift)
        return output, (reduce_kept, activated, expand_kept), (reduce_statistics, expand_statistics)

    def gradients(
        self, grad_output: torch.Tensor, hidden_states: torch.Tensor, intermediates: tuple, statistics: tuple
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """The gradients of `forward(hidden_states, ...)`: its input's, and its parameters' in `parameters()` order."""
        reduce_kept, activated, expand_kept = intermediates
        reduce_statistics, expand_statistics = statistics
        grad_expanded, *expand_norm_grads = self.expand_norm.gradients(grad_output, expand_kept, expand_statistics)
        *expand_grads, grad_activated = linear_gradients(grad_expanded, activated, self.expand.weight)
        grad_normalized = torch.ops.aten.threshold_backward(grad_activated, activated, 0)  # ReLU's
        grad_reduced, *reduce_norm_grads = self.reduce_norm.gradients(grad_normalized, reduce_kept, reduce_statistics)
        *reduce_grads, grad_input = linear_gradients(grad_reduced, hidden_states, self.reduce.weight)
        return grad_input, (*reduce_grads, *reduce_norm_grads, *expand_grads, *expand_norm_grads)


@dataclass
class AIFStates:
    """What [`AIFBlock`] computes on the way to the fused states, which its written-out backward recomputes."""

    mean_states: torch.Tensor  # W, (batch, seq_len, hidden_size)
    token_share: torch.Tensor  # each real token's share of its example, (batch, seq_len, 1)
    pooled: torch.Tensor  # the mean of W over real tokens, (batch, 1, hidden_size)
    gate: torch.Tensor  # sigmoid(G + Lc)
    attention: torch.Tensor  # A: the gate ("aff"), or W times the gate ("paper")
    difference: torch.Tensor  # L1 - L2
    branch_intermediates: tuple  # the global branch's, then the local branch's
    statistics: tuple  # the global branch's norms' statistics, then the local branch's


class AIFBlock(nn.Module):
    """
    The AIF block of DLFA: fuses a lower layer's hidden states L1 with the last layer's L2.

    `global_context` sees the mean of W = (L1 + L2) / 2 over real tokens (one position per example), `local_context`
    sees every token of W; their sum, through a sigmoid, is the attention map A (times W for the `"paper"` gate),
    and the output is L1 * A + L2 * (1 - A).

    With gradients enabled the block runs as [`AIFFunction`], whose backward is written out: it keeps L1, L2 and the
    norms' statistics and recomputes the rest, where autograd would keep several `(batch, seq_len, hidden_size)`
    intermediates. Without gradients it is `fuse`, the computation itself (which autograd can also differentiate,
    keeping those intermediates: the tests' reference).

    Shapes: `lower_hidden_states`, `last_hidden_state` `(batch, seq_len, hidden_size)`, `padding_mask`
    `(batch, seq_len)` (bool, True on real tokens) -> `(batch, seq_len, hidden_size)`. Like every fusion module
    here, it names the `hidden_states` indices it reads in `input_layers` and takes those states in that order.
    """

    def __init__(self, config: DLFAFusionConfig):
        super().__init__()
        self.input_layers = (config.fusion_layer, config.num_hidden_layers)
        self.gate = config.aif_gate
        self.global_context = AIFContextBranch(config)
        self.local_context = AIFContextBranch(config)

    def forward(
        self, lower_hidden_states: torch.Tensor, last_hidden_state: torch.Tensor, padding_mask: torch.Tensor
    ) -> torch.Tensor:
        if torch.is_grad_enabled():
            return AIFFunction.apply(self, padding_mask, lower_hidden_states, last_hidden_state, *self.parameters())
        return self.fuse(lower_hidden_states, last_hidden_state, padding_mask)[0]

    def fuse(
        self, lower_hidden_states: torch.Tensor, last_hidden_state: torch.Tensor, padding_mask: torch.Tensor
    ) -> tuple[torch.Tensor, tuple]:
        """The fused states, and the norms' statistics they used."""
        states = self.compute_states(lower_hidden_states, last_hidden_state, padding_mask)
        # Eq. 2, L1 * A + L2 * (1 - A), with one product fewer.
        return torch.addcmul(last_hidden_state, states.attention, states.difference), states.statistics

    def compute_states(
        self,
        lower_hidden_states: torch.Tensor,
        last_hidden_state: torch.Tensor,
        padding_mask: torch.Tensor,
        statistics: tuple | None = None,
    ) -> AIFStates:
        """Everything up to the attention map; given `statistics`, the norms reuse them (and update nothing)."""
        global_statistics, local_statistics = statistics or (None, None)
        mean_states = torch.add(lower_hidden_states, last_hidden_state).div_(2)
        token_weights = padding_mask.unsqueeze(-1).to(mean_states.dtype)
        token_share = token_weights / token_weights.sum(dim=1, keepdim=True).clamp(min=1)
        with torch.autocast(mean_states.device.type, enabled=False):  # a mean, in the states' own precision
            pooled = token_share.transpose(1, 2) @ mean_states
        global_context, global_intermediates, global_statistics = self.global_context(
            pooled, padding_mask.any(dim=1, keepdim=True), global_statistics
        )
        logits, local_intermediates, local_statistics = self.local_context(
            mean_states, padding_mask, local_statistics, shift=global_context
        )
        gate = logits.sigmoid_()
        return AIFStates(
            mean_states=mean_states,
            token_share=token_share,
            pooled=pooled,
            gate=gate,
            attention=mean_states * gate if self.gate == "paper" else gate,
            difference=lower_hidden_states - last_hidden_state,
            branch_intermediates=(global_intermediates, local_intermediates),
            statistics=(global_statistics, local_statistics),
        )

    def fuse_gradients(
        self,
        grad_output: torch.Tensor,
        lower_hidden_states: torch.Tensor,
        last_hidden_state: torch.Tensor,
        padding_mask: torch.Tensor,
        statistics: tuple,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        """
        The gradients of `fuse` (which used `statistics`), from its recomputation: L1's, L2's, and the parameters'
        in `parameters()` order.
        """
        states = self.compute_states(lower_hidden_states, last_hidden_state, padding_mask, statistics)
        grad_lower = grad_output * states.attention
        grad_last = grad_output - grad_lower
        grad_attention = states.difference.mul_(grad_output)
        grad_gate = grad_attention * states.mean_states if self.gate == "paper" else grad_attention
        grad_logits = torch.ops.aten.sigmoid_backward(grad_gate, states.gate)
        global_intermediates, local_intermediates = states.branch_intermediates
        global_statistics, local_statistics = states.statistics
        grad_pooled, global_grads = self.global_context.gradients(
            grad_logits.sum(dim=1, keepdim=True), states.pooled, global_intermediates, global_statistics
        )
        grad_mean, local_grads = self.local_context.gradients(
            grad_logits, states.mean_states, local_intermediates, local_statistics
        )
        if self.gate == "paper":
            grad_mean.addcmul_(grad_attention, states.gate)
        grad_mean.addcmul_(states.token_share, grad_pooled)
        grad_lower.add_(grad_mean, alpha=0.5)  # W = (L1 + L2) / 2
        return grad_lower, grad_last.add_(grad_mean, alpha=0.5), (*global_grads, *local_grads)


class AIFFunction(torch.autograd.Function):
    """
    [`AIFBlock`] with its backward written out. Forward keeps L1, L2, the mask and the norms' statistics (per channel,
    or per token for LayerNorm); the encoder keeps L1 anyway, as the input of the layer above it. Backward recomputes
    the block from them, reusing the statistics (so the running statistics move once per step) under the forward's
    autocast state, and applies each step's gradient. The block has no dropout, so no random state is replayed.
    Double backward is not supported.

    `apply(block, padding_mask, lower_hidden_states, last_hidden_state, *block.parameters())` -> the fused states.
    """

    @staticmethod
    def forward(
        ctx, block: AIFBlock, padding_mask: torch.Tensor, lower: torch.Tensor, last: torch.Tensor, *parameters
    ) -> torch.Tensor:
        fused, statistics = block.fuse(lower, last, padding_mask)
        norms = [norm_statistics for branch in statistics for norm_statistics in branch]
        ctx.block, ctx.statistics_sizes = block, [len(norm_statistics) for norm_statistics in norms]
        device = lower.device.type
        ctx.autocast = (device, torch.get_autocast_dtype(device), torch.is_autocast_enabled(device))
        ctx.save_for_backward(padding_mask, lower, last, *(tensor for statistics in norms for tensor in statistics))
        return fused

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: torch.Tensor):
        padding_mask, lower, last, *saved = ctx.saved_tensors
        norms, start = [], 0
        for size in ctx.statistics_sizes:
            norms.append(tuple(saved[start : start + size]))
            start += size
        statistics = ((norms[0], norms[1]), (norms[2], norms[3]))  # the global branch's two norms, the local's
        device, dtype, enabled = ctx.autocast
        with torch.autocast(device, dtype=dtype, enabled=enabled):
            grad_lower, grad_last, grad_parameters = ctx.block.fuse_gradients(
                grad_output, lower, last, padding_mask, statistics
            )
        return None, None, grad_lower, grad_last, *grad_parameters


class ScalarMix(nn.Module):
    """
    ELMo's scalar mix (Peters et al., 2018), a peer of AIF for comparison: `gamma * sum_k softmax(s)_k h_k` over the
    embedding output and every layer's output, with learned `s` (initialised to a uniform mix) and `gamma` (1).

    Shapes: `num_hidden_layers + 1` tensors `(batch, seq_len, hidden_size)` -> `(batch, seq_len, hidden_size)`.
    """

    def __init__(self, config: DLFAFusionConfig):
        super().__init__()
        self.input_layers = tuple(range(config.num_hidden_layers + 1))
        self.layer_weights = nn.Parameter(torch.zeros(config.num_hidden_layers + 1))
        self.gamma = nn.Parameter(torch.ones(()))

    def forward(self, *layer_states: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        # gamma folded into each layer's weight, and a running sum rather than a stacked copy of every layer: backward
        # keeps the layers themselves (which the encoder keeps) and one number per layer.
        weights = self.gamma * torch.softmax(self.layer_weights, dim=0).to(layer_states[0].dtype)
        mixed = layer_states[0] * weights[0]
        for states, weight in zip(layer_states[1:], weights[1:]):
            mixed = torch.addcmul(mixed, states, weight)
        return mixed


class ConcatenationFusion(nn.Module):
    """
    Concatenation of the two layers, a peer of AIF for comparison: `[L1; L2] W^T + b` with `W` of shape
    `(hidden_size, 2 * hidden_size)`, so the task heads keep their input size. `W` starts as `[I/2, I/2]` (the average
    of the two layers, where AIF also starts) rather than at random, which would scramble the pretrained features.

    Shapes: `lower_hidden_states`, `last_hidden_state` `(batch, seq_len, hidden_size)` -> `(batch, seq_len,
    hidden_size)`.
    """

    def __init__(self, config: DLFAFusionConfig):
        super().__init__()
        self.input_layers = (config.fusion_layer, config.num_hidden_layers)
        self.weight = nn.Parameter(torch.empty(config.hidden_size, 2 * config.hidden_size))
        self.bias = nn.Parameter(torch.empty(config.hidden_size))

    def forward(
        self,
        lower_hidden_states: torch.Tensor,
        last_hidden_state: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        # Two products rather than one on the concatenation: backward keeps the two layers, not a copy of both.
        lower_weight, last_weight = self.weight.chunk(2, dim=1)
        return nn.functional.linear(lower_hidden_states, lower_weight) + nn.functional.linear(
            last_hidden_state, last_weight, self.bias
        )


FUSION_CLASSES = {"aif": AIFBlock, "scalar_mix": ScalarMix, "concat": ConcatenationFusion}


def init_fusion_weights(module: nn.Module) -> None:
    """
    The initialisation of DLFA's fusion modules beyond `PreTrainedModel._init_weights` (which gives linear layers
    N(0, initializer_range), zero biases, unit norms): called by every DLFA model's `_init_weights` after its parent's.
    The AIF branches end in a zero-scaled norm so the gate starts at `aif_gate_init`.
    """
    if isinstance(module, (MaskedBatchNorm1d, MaskedLayerNorm)) and module.initial_output is not None:
        # With the branches' output scale at zero, the gate is sigmoid(G + Lc) = aif_gate_init everywhere at
        # initialisation (by default 1/2: the fused states start as the average of the two layers) instead of a random
        # per-channel mix, and it grows from there (the scale still receives gradient).
        init.zeros_(module.weight)
        init.constant_(module.bias, module.initial_output)
    elif isinstance(module, ScalarMix):
        init.zeros_(module.layer_weights)
        init.ones_(module.gamma)
    elif isinstance(module, ConcatenationFusion):
        hidden_size = module.weight.shape[0]
        identity = torch.eye(hidden_size, dtype=module.weight.dtype, device=module.weight.device)
        init.copy_(module.weight, torch.cat([identity, identity], dim=1) / 2)
        init.zeros_(module.bias)
