"""Model-class properties of transformers' common model tests, for the three DLFA classes; and DLFA's own tests."""

import copy
import json
import re

import pytest
import torch
from torch.nn import functional as F
from transformers import BertModel, PreTrainedModel, set_seed
from transformers.testing_utils import CaptureLogger
from transformers.utils import logging as hf_logging

from dlfa_tester import ALL_MODEL_CLASSES, DLFABertModelTester, assert_same_hidden_states, build, first_output
from dlfa_zero_shot.layer_search import DLFAForLayerSearch
from fixtures.initial_weights_cf86106.make_fixture import EXPECTED as INITIAL_WEIGHTS
from fixtures.initial_weights_cf86106.make_fixture import initial_weights
from modeling_dlfa import (
    AIFBlock,
    DLFABertForSequenceClassification,
    DLFABertForTokenClassification,
    DLFABertModel,
    DLFAConfig,
    DLFAForSequenceClassification,
    DLFAForTokenClassification,
    DLFAModel,
)
from modeling_dlfa.fusion_dlfa import FUSION_CLASSES, ConcatenationFusion, MaskedLayerNorm


TESTER = DLFABertModelTester()
HEAD_CLASSES = (DLFABertForTokenClassification, DLFABertForSequenceClassification)
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


def assert_close(actual, expected, atol=1e-5):
    torch.testing.assert_close(actual, expected, atol=atol, rtol=0)


def randomize_fusion(model, seed: int = 1) -> None:
    """Give every AIF parameter and running statistic a random value, so the fusion is far from its init."""
    if isinstance(model, DLFAForLayerSearch):
        randomize_module(model.fusions, seed)
    else:
        randomize_module(model.fusion, seed)


def randomize_module(fusion: torch.nn.Module, seed: int = 1) -> None:
    """Give every parameter and running statistic of `fusion` a random value."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in list(fusion.named_parameters()) + list(fusion.named_buffers()):
            if name.endswith("num_batches_tracked"):
                continue
            values = torch.randn(tensor.shape, generator=generator)
            tensor.copy_(values.abs() + 0.5 if name.endswith("running_var") else values * 0.5)


def base_model(model) -> BertModel:
    """The BERT encoder inside every DLFA-BERT class."""
    return model.bert


# ---------------------------------------------------------------------------------------------------------------------
# Save / load


@pytest.mark.parametrize("model_class", ALL_MODEL_CLASSES)
def test_save_load_round_trip_twice_with_safetensors(model_class, tmp_path):
    model = build(model_class, TESTER.get_config())
    randomize_fusion(model)
    inputs = TESTER.prepare_inputs()
    with torch.no_grad():
        expected = first_output(model(**inputs))

    model.save_pretrained(tmp_path / "first")
    assert (tmp_path / "first" / "model.safetensors").is_file()
    assert not list((tmp_path / "first").glob("*.bin"))
    reloaded = model_class.from_pretrained(tmp_path / "first").eval()
    reloaded.save_pretrained(tmp_path / "second")
    twice = model_class.from_pretrained(tmp_path / "second").eval()

    for candidate in (reloaded, twice):
        assert type(candidate) is model_class
        with torch.no_grad():
            assert_close(first_output(candidate(**inputs)), expected, atol=0)
        for key, value in model.state_dict().items():
            assert torch.equal(candidate.state_dict()[key], value), key


@pytest.mark.parametrize("model_class", ALL_MODEL_CLASSES)
def test_every_missing_weight_is_initialised_by_init_weights(model_class, monkeypatch):
    # As transformers' `test_can_init_all_missing_weights`: seed each module's init, then a model built on the meta
    # device and filled only by `_init_weights` must equal the one built from the config.
    config = TESTER.get_config()
    original = PreTrainedModel._initialize_weights

    def seeded_initialize_weights(self, module, *args, **kwargs):
        set_seed(0)
        original(self, module, *args, **kwargs)

    monkeypatch.setattr(PreTrainedModel, "_initialize_weights", seeded_initialize_weights)
    from_config = model_class(copy.deepcopy(config))
    from_nothing = model_class.from_pretrained(None, config=config, state_dict={})

    assert not [name for name, param in from_nothing.named_parameters() if param.device.type == "meta"]
    assert list(from_config.state_dict()) == list(from_nothing.state_dict())
    different = [
        key
        for key, value in from_config.state_dict().items()
        if not torch.equal(value, from_nothing.state_dict()[key])
    ]
    assert different == []


@pytest.mark.parametrize("model_class", ALL_MODEL_CLASSES)
def test_fusion_block_init(model_class):
    """The gate starts at exactly 1/2: the branches' output norms have zero scale; the rest is BERT's usual init."""
    model = build(model_class, TESTER.get_config())
    fusion = model.fusion
    for branch in (fusion.global_context, fusion.local_context):
        assert torch.equal(branch.expand_norm.weight, torch.zeros_like(branch.expand_norm.weight))
        assert torch.equal(branch.reduce_norm.weight, torch.ones_like(branch.reduce_norm.weight))
        assert torch.equal(branch.reduce.bias, torch.zeros_like(branch.reduce.bias))
        assert 0.01 < branch.reduce.weight.std().item() < 0.03
        assert torch.equal(branch.expand_norm.running_var, torch.ones_like(branch.expand_norm.running_var))


def test_a_seed_gives_the_initial_weights_it_gave_at_cf86106(tmp_path):
    """
    With the same seed, each BERT head starts from the weights cf86106's classes drew (fixtures/
    initial_weights_cf86106), built from its config or on a stock checkpoint with or without a pooler: a seed keeps
    giving the runs it gave, the README's main job and the archived studies among them.
    """
    expected = json.loads(INITIAL_WEIGHTS.read_text())
    actual = initial_weights(tmp_path)
    assert {way: sorted(weights) for way, weights in actual.items()} == {
        way: sorted(weights) for way, weights in expected.items()
    }
    different = {
        way: [key for key, statistics in weights.items() if actual[way][key] != statistics]
        for way, weights in expected.items()
    }
    assert {way: keys for way, keys in different.items() if keys} == {}


@pytest.mark.parametrize("model_class", HEAD_CLASSES)
def test_mismatched_num_labels_errors_unless_ignored(model_class, tmp_path):
    model = build(model_class, TESTER.get_config(num_labels=3))
    model.save_pretrained(tmp_path)
    with pytest.raises(RuntimeError, match="ignore_mismatched_sizes"):
        model_class.from_pretrained(tmp_path, num_labels=5)

    resized = model_class.from_pretrained(tmp_path, num_labels=5, ignore_mismatched_sizes=True).eval()
    assert resized.classifier.out_features == 5
    assert torch.equal(resized.fusion.local_context.reduce.weight, model.fusion.local_context.reduce.weight)
    logits = resized(**TESTER.prepare_inputs()).logits
    assert logits.shape[-1] == 5


# ---------------------------------------------------------------------------------------------------------------------
# Forward behaviour


@pytest.mark.parametrize("model_class", ALL_MODEL_CLASSES)
@pytest.mark.parametrize("aif_norm", ["batch", "layer"])
def test_batching_equivalence(model_class, aif_norm):
    """A sentence alone gives the same outputs as inside a padded batch of others (eval mode)."""
    model = build(model_class, TESTER.get_config(aif_norm=aif_norm))
    randomize_fusion(model)
    inputs = TESTER.prepare_inputs()
    with torch.no_grad():
        batched = first_output(model(**inputs))
        for row in range(TESTER.batch_size):
            length = int(inputs["attention_mask"][row].sum())
            alone = {key: value[row : row + 1, :length] for key, value in inputs.items()}
            single = first_output(model(**alone))
            if model_class is DLFABertForSequenceClassification:
                assert_close(single[0], batched[row])
            else:
                assert_close(single[0], batched[row, :length])


@pytest.mark.parametrize("model_class", ALL_MODEL_CLASSES)
@pytest.mark.parametrize("aif_norm", ["batch", "layer"])
def test_padding_never_changes_results_in_training(model_class, aif_norm):
    """Extra padding leaves real-token outputs and the BatchNorm running statistics exactly as they were."""
    config = TESTER.get_config(aif_norm=aif_norm, **NO_DROPOUT)
    model = build(model_class, config, eval_mode=False)
    randomize_fusion(model)
    twin = copy.deepcopy(model)
    inputs = TESTER.prepare_inputs()
    padded = {key: F.pad(value, (0, 5)) for key, value in inputs.items()}

    plain_output, padded_output = first_output(model(**inputs)), first_output(twin(**padded))
    if model_class is DLFABertForSequenceClassification:
        assert_close(padded_output, plain_output)
    else:
        assert_close(padded_output[:, : TESTER.seq_length], plain_output)
    for key, value in model.state_dict().items():
        assert_close(twin.state_dict()[key], value)


@pytest.mark.parametrize("model_class", ALL_MODEL_CLASSES)
def test_attention_implementation_switches_at_run_time_and_agrees(model_class):
    """transformers reads the modeling file's source to decide whether the switch is allowed: no class may look like a
    hand-written attention layer, and no flag may be forced."""
    assert "_can_set_attn_implementation" not in vars(model_class) and all(
        "_can_set_attn_implementation" not in vars(parent) for parent in model_class.__mro__ if parent.__module__.startswith("modeling_dlfa")
    )  # fmt: skip
    model = build(model_class, TESTER.get_config())
    randomize_fusion(model)
    inputs = TESTER.prepare_inputs()
    outputs = {}
    for implementation in ("eager", "sdpa"):
        with CaptureLogger(hf_logging.get_logger("transformers.modeling_utils")) as captured:
            model.set_attn_implementation(implementation)
        assert "does not support setting its attention implementation" not in captured.out
        with torch.no_grad():
            outputs[implementation] = first_output(model(**inputs, output_attentions=implementation == "eager"))
    assert_close(outputs["sdpa"], outputs["eager"])


@pytest.mark.parametrize("model_class", ALL_MODEL_CLASSES)
def test_hidden_states_and_attentions_are_the_encoders(model_class):
    config = TESTER.get_config()
    model = build(model_class, config)
    model.set_attn_implementation("eager")
    inputs = TESTER.prepare_inputs()
    with torch.no_grad():
        outputs = model(**inputs, output_hidden_states=True, output_attentions=True)

    shape = (TESTER.batch_size, TESTER.seq_length)
    assert len(outputs.hidden_states) == config.num_hidden_layers + 1
    assert all(state.shape == (*shape, config.hidden_size) for state in outputs.hidden_states)
    assert len(outputs.attentions) == config.num_hidden_layers
    heads = config.num_attention_heads
    assert all(weights.shape == (shape[0], heads, shape[1], shape[1]) for weights in outputs.attentions)

    # The same weights in a stock BertModel give the same per-layer states and attentions: they are not the fused ones.
    bert = BertModel(config, add_pooling_layer=False).eval()
    bert.load_state_dict(base_model(model).state_dict(), strict=False)
    bert.set_attn_implementation("eager")
    with torch.no_grad():
        reference = bert(**inputs, output_hidden_states=True, output_attentions=True)
    for ours, theirs in zip(
        outputs.hidden_states + outputs.attentions, reference.hidden_states + reference.attentions
    ):
        assert_close(ours, theirs)

    with torch.no_grad():
        plain = model(**inputs)
    assert plain.hidden_states is None and plain.attentions is None


@pytest.mark.parametrize("model_class", ALL_MODEL_CLASSES)
def test_return_dict_false_matches_output_tuple(model_class):
    model = build(model_class, TESTER.get_config())
    inputs = TESTER.prepare_inputs()
    labels = TESTER.prepare_labels(model_class, inputs)
    if labels is not None:
        inputs["labels"] = labels
    with torch.no_grad():
        as_dict = model(**inputs, output_hidden_states=True)
        as_tuple = model(**inputs, output_hidden_states=True, return_dict=False)
    assert isinstance(as_tuple, tuple)
    expected = as_dict.to_tuple()
    assert len(as_tuple) == len(expected)
    for ours, theirs in zip(as_tuple, expected):
        if isinstance(theirs, tuple):
            for a, b in zip(ours, theirs):
                assert torch.equal(a, b)
        else:
            assert torch.equal(ours, theirs)


@pytest.mark.parametrize("model_class", ALL_MODEL_CLASSES)
def test_inputs_embeds_match_input_ids(model_class):
    model = build(model_class, TESTER.get_config())
    inputs = TESTER.prepare_inputs()
    embeds = model.get_input_embeddings()(inputs["input_ids"])
    with torch.no_grad():
        from_ids = first_output(model(**inputs))
        from_embeds = first_output(
            model(
                inputs_embeds=embeds, attention_mask=inputs["attention_mask"], token_type_ids=inputs["token_type_ids"]
            )
        )
    assert_close(from_embeds, from_ids)


@pytest.mark.parametrize("model_class", HEAD_CLASSES)
def test_training_steps_lower_the_loss(model_class):
    model = build(model_class, TESTER.get_config(**NO_DROPOUT), eval_mode=False)
    inputs = TESTER.prepare_inputs()
    inputs["labels"] = TESTER.prepare_labels(model_class, inputs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        loss = model(**inputs).loss
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert losses[-1] < 0.5 * losses[0], losses
    assert all(param.grad is None or torch.isfinite(param.grad).all() for param in model.parameters())


@pytest.mark.parametrize("model_class", HEAD_CLASSES)
def test_gradient_checkpointing_gives_the_same_gradients(model_class):
    model = build(model_class, TESTER.get_config(**NO_DROPOUT), eval_mode=False)
    randomize_fusion(model)
    inputs = TESTER.prepare_inputs()
    inputs["labels"] = TESTER.prepare_labels(model_class, inputs)

    def gradients(checkpointing: bool) -> dict[str, torch.Tensor]:
        candidate = copy.deepcopy(model)
        if checkpointing:
            if hasattr(candidate, "activation_checkpointing_enable"):  # its name from transformers 5.2x on
                candidate.activation_checkpointing_enable()
                assert candidate.is_activation_checkpointing
            else:
                candidate.gradient_checkpointing_enable()
                assert candidate.is_gradient_checkpointing
        candidate(**inputs).loss.backward()
        return {name: param.grad for name, param in candidate.named_parameters() if param.grad is not None}

    plain, checkpointed = gradients(False), gradients(True)
    assert plain.keys() == checkpointed.keys()
    assert any(name.startswith("bert.encoder") for name in plain)
    for name in plain:
        assert_close(checkpointed[name], plain[name])


@pytest.mark.parametrize(
    "backend",
    ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)],  # inductor: ~50 s of C++ codegen
)
def test_torch_compile_runs_forward_and_backward(backend):
    model = build(DLFABertForTokenClassification, TESTER.get_config(**NO_DROPOUT), eval_mode=False)
    inputs = TESTER.prepare_inputs()
    inputs["labels"] = TESTER.prepare_labels(DLFABertForTokenClassification, inputs)
    eager = copy.deepcopy(model)
    compiled = torch.compile(model, backend=backend)

    compiled_outputs = compiled(**inputs)
    compiled_outputs.loss.backward()
    eager_outputs = eager(**inputs)
    eager_outputs.loss.backward()
    assert_close(compiled_outputs.logits, eager_outputs.logits)
    for (name, param), eager_param in zip(model.named_parameters(), eager.parameters()):
        assert_close(param.grad, eager_param.grad, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------------
# DLFA's own


def reference_fusion(fusion: AIFBlock, lower, last, mask, training: bool):
    """
    Eq. 1 and Eq. 2 written out with Conv1d on (batch, channels, positions), as the paper describes the block; the
    norms' statistics from real tokens (in the global branch, from examples with one), or per token for LayerNorm.
    """
    mean_states = (lower + last) / 2
    weights = mask.float()
    pooled = (mean_states * weights[..., None]).sum(1) / weights.sum(1, keepdim=True).clamp(min=1)

    def batch_norm(x, norm, positions):
        if isinstance(norm, MaskedLayerNorm):
            normalized = F.layer_norm(x.transpose(1, 2), norm.normalized_shape, norm.weight, norm.bias, norm.eps)
            return normalized.transpose(1, 2)
        if training:
            real = x.permute(0, 2, 1)[positions]
            mean, var = real.mean(0), real.var(0, unbiased=False)
        else:
            mean, var = norm.running_mean, norm.running_var
        return (x - mean[:, None]) / torch.sqrt(var[:, None] + norm.eps) * norm.weight[:, None] + norm.bias[:, None]

    def branch(module, x, positions):
        hidden = F.conv1d(x, module.reduce.weight[..., None], module.reduce.bias)
        hidden = F.relu(batch_norm(hidden, module.reduce_norm, positions))
        hidden = F.conv1d(hidden, module.expand.weight[..., None], module.expand.bias)
        return batch_norm(hidden, module.expand_norm, positions)

    global_context = branch(fusion.global_context, pooled[:, :, None], mask.any(1, keepdim=True))
    local_context = branch(fusion.local_context, mean_states.transpose(1, 2), mask)
    attention = torch.sigmoid(global_context + local_context).transpose(1, 2)
    if fusion.gate == "paper":
        attention = mean_states * attention
    return lower * attention + last * (1 - attention)


@pytest.mark.parametrize("aif_gate", ["paper", "aff"])
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("fusion_layer", range(1, TESTER.num_hidden_layers))
def test_fused_output_follows_the_equations(aif_gate, training, fusion_layer):
    config = TESTER.get_config(aif_gate=aif_gate, fusion_layer=fusion_layer, **NO_DROPOUT)
    model = build(DLFABertModel, config, eval_mode=not training)
    randomize_fusion(model)
    inputs = TESTER.prepare_inputs()
    outputs = model(**inputs, output_hidden_states=True)
    mask = inputs["attention_mask"].bool()

    expected = reference_fusion(
        model.fusion, outputs.hidden_states[fusion_layer], outputs.hidden_states[-1], mask, training=training
    )
    assert_close(outputs.last_hidden_state[mask], expected[mask], atol=1e-4)


FUSION_SETTINGS = [
    *({"fusion_method": "aif", "aif_gate": gate, "aif_norm": norm} for gate in ("aff", "paper") for norm in ("batch", "layer")),
    {"fusion_method": "concat"},
    {"fusion_method": "scalar_mix"},
]  # fmt: skip


def fusion_and_inputs(settings: dict, training: bool, shape=(4, 9, 32)):
    """A fusion module of `settings` with random weights and statistics, its input layers and a padded mask."""
    batch_size, seq_length, hidden_size = shape
    config = TESTER.get_config(hidden_size=hidden_size, **settings)
    torch.manual_seed(0)
    fusion = FUSION_CLASSES[config.fusion_method](config).train(training)
    randomize_module(fusion)
    states = [torch.randn(batch_size, seq_length, hidden_size, requires_grad=True) for _ in fusion.input_layers]
    mask = torch.ones(batch_size, seq_length, dtype=torch.bool)
    mask[1, seq_length - 3 :] = False
    mask[2, 1:] = False  # one real token
    mask[3] = False  # no real token
    return fusion, states, mask


def reference_peer_fusion(fusion, states):
    """Concatenation, `[L1; L2] W^T + b`, and the scalar mix, `gamma * sum_k softmax(s)_k h_k`, written out."""
    if isinstance(fusion, ConcatenationFusion):
        return F.linear(torch.cat(states, dim=-1), fusion.weight, fusion.bias)
    return fusion.gamma * torch.einsum("l,lbsh->bsh", torch.softmax(fusion.layer_weights, 0), torch.stack(states))


@pytest.mark.parametrize("settings", FUSION_SETTINGS, ids=lambda settings: "-".join(settings.values()))
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_fusion_outputs_and_gradients_follow_the_equations(settings, training):
    """Every fusion method, gate and norm: outputs, input and parameter gradients, running statistics (moved once)."""
    fusion, states, mask = fusion_and_inputs(settings, training)
    forward_only = copy.deepcopy(fusion)
    with torch.no_grad():
        without_gradients = forward_only(*states, padding_mask=mask)
    output = fusion(*states, padding_mask=mask)
    grad_output = torch.randn(output.shape, generator=torch.Generator().manual_seed(2))
    output.backward(grad_output)

    leaves = [state.detach().requires_grad_() for state in states]
    if isinstance(fusion, AIFBlock):
        expected = reference_fusion(fusion, *leaves, mask, training=training)
    else:
        expected = reference_peer_fusion(fusion, leaves)
    parameters = dict(fusion.named_parameters())
    expected_grads = torch.autograd.grad(expected, [*leaves, *parameters.values()], grad_output, allow_unused=True)
    assert torch.equal(output, without_gradients)  # the same computation with and without gradients
    assert_close(output, expected)
    # Float32 rounding, relative to the largest gradient (the batch statistics of the global branch, over 3 examples,
    # amplify it; the biases before a BatchNorm have a gradient of 0 up to rounding).
    scale = max(grad.abs().max() for grad in expected_grads if grad is not None)
    for name, actual, wanted in zip(["L1", "L2", *parameters], [*states, *parameters.values()], expected_grads):
        torch.testing.assert_close(actual.grad, wanted, atol=3e-6 * scale, rtol=1e-5, msg=name)
    # The running statistics (and their count) moved once, in forward, as in the forward-only copy.
    for (name, buffer), (_, once) in zip(fusion.named_buffers(), forward_only.named_buffers()):
        assert torch.equal(buffer, once), name


@pytest.mark.parametrize("settings", FUSION_SETTINGS, ids=lambda settings: "-".join(settings.values()))
def test_fusion_keeps_little_beyond_its_input_layers_for_backward(settings):
    """Besides the layers it reads (which the encoder keeps), a fusion keeps less than an eighth of one layer."""
    fusion, states, mask = fusion_and_inputs(settings, training=True, shape=(4, 32, 64))
    kept = []
    with torch.autograd.graph.saved_tensors_hooks(lambda tensor: kept.append(tensor) or tensor, lambda tensor: tensor):
        fusion(*states, padding_mask=mask)
    own = {tensor.untyped_storage().data_ptr() for tensor in [*states, *fusion.parameters()]}
    extra = {tensor.untyped_storage().data_ptr(): tensor.untyped_storage().nbytes() for tensor in kept}
    extra_bytes = sum(size for pointer, size in extra.items() if pointer not in own)
    one_layer = states[0].numel() * states[0].element_size()
    assert extra_bytes < one_layer / 8, (extra_bytes, one_layer)


@pytest.mark.parametrize("settings", FUSION_SETTINGS[:4], ids=lambda settings: "-".join(settings.values()))
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_aif_under_autocast_matches_autograd_through_fuse(settings, training):
    """Under bfloat16 autocast (Trainer's --bf16), the written-out backward agrees with autograd through `fuse`."""
    fusion, states, mask = fusion_and_inputs(settings, training)
    reference, leaves = copy.deepcopy(fusion), [state.detach().requires_grad_() for state in states]
    grad_output = torch.randn(states[0].shape, generator=torch.Generator().manual_seed(2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = fusion(*states, padding_mask=mask)
        expected = reference.fuse(*leaves, mask)[0]
    output.backward(grad_output)
    expected.backward(grad_output)
    assert torch.equal(output, expected)
    # bfloat16 rounds the gradients that autograd casts at each bfloat16 tensor, and the written-out ones not.
    for actual, wanted in [(states, leaves), (list(fusion.parameters()), list(reference.parameters()))]:
        scale = max(tensor.grad.abs().max() for tensor in wanted)
        for mine, theirs in zip(actual, wanted):
            torch.testing.assert_close(mine.grad, theirs.grad, atol=3e-2 * scale, rtol=0)


@pytest.mark.parametrize("gate_init", [0.5, 0.1, 0.9])
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_gate_starts_at_aif_gate_init(gate_init, training):
    """At initialisation the fused states are gate_init * L1 + (1 - gate_init) * L2 at every position."""
    config = TESTER.get_config(aif_gate_init=gate_init, **NO_DROPOUT)
    for model in (build(DLFABertModel, config, eval_mode=not training),
                  DLFABertModel.from_pretrained(None, config=config, state_dict={}).train(training)):  # fmt: skip
        outputs = model(**TESTER.prepare_inputs(), output_hidden_states=True)
        lower, last = outputs.hidden_states[TESTER.fusion_layer], outputs.hidden_states[-1]
        assert_close(outputs.last_hidden_state, gate_init * lower + (1 - gate_init) * last)


def test_paper_and_aff_gates_differ():
    outputs = {}
    for gate in ("paper", "aff"):
        model = build(DLFABertModel, TESTER.get_config(aif_gate=gate))
        randomize_fusion(model)
        with torch.no_grad():
            outputs[gate] = model(**TESTER.prepare_inputs()).last_hidden_state
    assert not torch.allclose(outputs["paper"], outputs["aff"])


@pytest.mark.parametrize("bad_layer", [0, -1, TESTER.num_hidden_layers, TESTER.num_hidden_layers + 3])
def test_invalid_fusion_layer_is_rejected_by_the_model(bad_layer):
    config = TESTER.get_config()
    config.fusion_layer = bad_layer  # a config edited after construction is checked again by the model
    expected = (
        re.escape(f"fusion_layer={bad_layer} is out of range") + ".*" + re.escape(f"1..{TESTER.num_hidden_layers - 1}")
    )
    with pytest.raises(ValueError, match=expected):
        DLFABertModel(config)


@pytest.mark.parametrize("model_class", ALL_MODEL_CLASSES)
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("aif_norm", ["batch", "layer"])
def test_degenerate_inputs_give_finite_outputs(model_class, training, aif_norm):
    """An all-padding row, a batch of one and a sequence of one: finite outputs, losses and gradients."""
    model = build(model_class, TESTER.get_config(aif_norm=aif_norm), eval_mode=not training)
    full = TESTER.prepare_inputs()
    all_padding = {key: value.clone() for key, value in full.items()}
    all_padding["attention_mask"][0] = 0
    cases = {
        "all-padding row": all_padding,
        "batch of one": {key: value[:1] for key, value in full.items()},
        "sequence of one": {key: value[:, :1] for key, value in full.items()},
        "one token, batch of one": {key: value[:1, :1] for key, value in full.items()},
    }
    for name, inputs in cases.items():
        labels = TESTER.prepare_labels(model_class, inputs)
        if labels is not None:
            if model_class is DLFABertForTokenClassification:
                labels = torch.zeros_like(inputs["input_ids"])  # every token labelled, so the loss is defined
            inputs = {**inputs, "labels": labels}
        outputs = model(**inputs)
        assert torch.isfinite(first_output(outputs)).all(), name
        if training and labels is not None:
            outputs.loss.backward()
            assert torch.isfinite(outputs.loss), name
            assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters()), name
            model.zero_grad()


def test_batch_norm_statistics_ignore_padding_and_empty_rows():
    model = build(DLFABertModel, TESTER.get_config(**NO_DROPOUT), eval_mode=False)
    inputs = TESTER.prepare_inputs()
    norm = model.fusion.local_context.reduce_norm
    outputs = model(**inputs, output_hidden_states=True)
    mean_states = (outputs.hidden_states[TESTER.fusion_layer] + outputs.hidden_states[-1]) / 2
    with torch.no_grad():  # the norm's input, on real tokens
        real = model.fusion.local_context.reduce(mean_states)[inputs["attention_mask"].bool()]
    expected_mean = 0.9 * torch.zeros(real.shape[-1]) + 0.1 * real.mean(0)
    assert_close(norm.running_mean, expected_mean)

    # A batch with no real token leaves the running statistics alone.
    before = norm.running_mean.clone()
    model(**{**inputs, "attention_mask": torch.zeros_like(inputs["attention_mask"])})
    assert torch.equal(norm.running_mean, before)


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_bfloat16_runs_and_stays_close_to_float32(training):
    model = build(DLFABertForTokenClassification, TESTER.get_config(**NO_DROPOUT), eval_mode=not training)
    randomize_fusion(model)
    low_precision = copy.deepcopy(model).to(torch.bfloat16)
    inputs = TESTER.prepare_inputs()
    with torch.no_grad():
        reference, logits = model(**inputs).logits, low_precision(**inputs).logits
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits).all()
    assert (logits.float() - reference).abs().max() < 0.1 * reference.abs().max()


def test_attention_mask_must_be_two_dimensional():
    model = build(DLFABertModel, TESTER.get_config())
    inputs = TESTER.prepare_inputs()
    four_d = inputs["attention_mask"][:, None, None, :]
    with pytest.raises(ValueError, match=r"shape \(batch_size, sequence_length\) = \(3, 7\), got \(3, 1, 1, 7\)"):
        model(input_ids=inputs["input_ids"], attention_mask=four_d)


def test_exactly_one_of_input_ids_and_inputs_embeds():
    model = build(DLFABertModel, TESTER.get_config())
    inputs = TESTER.prepare_inputs()
    with pytest.raises(ValueError, match="exactly one of input_ids or inputs_embeds"):
        model(attention_mask=inputs["attention_mask"])
    with pytest.raises(ValueError, match="exactly one of input_ids or inputs_embeds"):
        model(input_ids=inputs["input_ids"], inputs_embeds=model.get_input_embeddings()(inputs["input_ids"]))


# ---------------------------------------------------------------------------------------------------------------------
# Peer fusions (kept behind the same interface for the benchmarks)

PEER_FUSIONS = ("concat", "scalar_mix")


@pytest.mark.parametrize("fusion_method", PEER_FUSIONS)
def test_peer_fusions_start_from_a_plain_average(fusion_method):
    """Concatenation starts as the average of the two layers and the scalar mix as the mean of every state."""
    model = build(DLFABertModel, TESTER.get_config(fusion_method=fusion_method))
    with torch.no_grad():
        outputs = model(**TESTER.prepare_inputs(), output_hidden_states=True)
    states = outputs.hidden_states
    if fusion_method == "concat":
        expected = (states[TESTER.fusion_layer] + states[-1]) / 2
    else:
        expected = torch.stack(states).mean(0)
    assert_close(outputs.last_hidden_state, expected)


@pytest.mark.parametrize("fusion_method", PEER_FUSIONS)
def test_peer_fusions_save_load_and_init_from_nothing(fusion_method, tmp_path):
    config = TESTER.get_config(fusion_method=fusion_method)
    model = build(DLFABertForTokenClassification, config)
    initial = {name: value.clone() for name, value in model.fusion.state_dict().items()}
    from_nothing = DLFABertForTokenClassification.from_pretrained(None, config=config, state_dict={})
    for name, value in from_nothing.fusion.state_dict().items():
        assert torch.equal(value, initial[name]), name

    randomize_fusion(model)
    inputs = TESTER.prepare_inputs()
    model.save_pretrained(tmp_path)
    reloaded = DLFABertForTokenClassification.from_pretrained(tmp_path).eval()
    assert type(reloaded.fusion) is type(model.fusion)
    with torch.no_grad():
        assert_close(reloaded(**inputs).logits, model(**inputs).logits, atol=0)


@pytest.mark.parametrize("fusion_method", PEER_FUSIONS)
def test_peer_fusions_receive_gradients(fusion_method):
    model = build(DLFABertForTokenClassification, TESTER.get_config(fusion_method=fusion_method), eval_mode=False)
    inputs = TESTER.prepare_inputs()
    model(**inputs, labels=TESTER.prepare_labels(DLFABertForTokenClassification, inputs)).loss.backward()
    for name, parameter in model.fusion.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


# ---------------------------------------------------------------------------------------------------------------------
# One-pass layer search


@pytest.mark.parametrize("problem", ["token", "sequence"])
def test_layer_search_heads_equal_their_exported_models(problem, tmp_path):
    config = TESTER.get_config(num_labels=3)
    config.search_layers, config.search_problem = [1, 2], problem
    search = DLFAForLayerSearch(config).eval()
    randomize_fusion(search)
    inputs = TESTER.prepare_inputs()
    labels = torch.randint(0, 3, inputs["input_ids"].shape if problem == "token" else inputs["input_ids"].shape[:1])
    with torch.no_grad():
        output = search(**inputs, labels=labels)
    assert output.logits.shape[-2:] == (3, 3)  # (..., heads: layers 1, 2 and the last, labels)
    assert output.loss == pytest.approx(output.head_losses.mean().item())
    for index, head in enumerate(["1", "2", "last"]):
        exported = search.export_head(head)
        assert type(exported).__name__ == ("Bert" if head == "last" else "DLFABert") + (
            "ForTokenClassification" if problem == "token" else "ForSequenceClassification"
        )
        if head == "last":  # the family's own head: nothing of DLFA in its config (a model card would call it DLFA)
            assert not {"fusion_layer", "fusion_method", "aif_gate"} & exported.config.to_dict().keys()
        exported.save_pretrained(tmp_path / head)
        reloaded = type(exported).from_pretrained(tmp_path / head).eval()
        with torch.no_grad():
            assert_close(reloaded(**inputs).logits, output.logits[..., index, :])
    with pytest.raises(ValueError, match="no head '7'"):
        search.export_head("7")


def layer_search(problem: str = "token") -> DLFAForLayerSearch:
    config = TESTER.get_config(num_labels=3)
    config.search_layers, config.search_problem = [1, 2], problem
    return build(DLFAForLayerSearch, config)


def encoder_calls(model) -> list:
    """The calls to `model`'s encoder from now on, recorded before the encoder's forward runs."""
    calls = []
    model.base_model.register_forward_pre_hook(lambda module, args: calls.append(module))
    return calls


def test_layer_search_refuses_a_bad_attention_mask_before_running_the_encoder():
    search = layer_search()
    calls, inputs = encoder_calls(search), TESTER.prepare_inputs()
    four_d = inputs["attention_mask"][:, None, None, :]
    with pytest.raises(ValueError, match=r"shape \(batch_size, sequence_length\) = \(3, 7\), got \(3, 1, 1, 7\)"):
        search(input_ids=inputs["input_ids"], attention_mask=four_d)
    assert calls == []


def test_layer_search_takes_exactly_one_of_input_ids_and_inputs_embeds():
    search = layer_search()
    calls, inputs = encoder_calls(search), TESTER.prepare_inputs()
    embeds = search.get_input_embeddings()(inputs["input_ids"])
    for given in ({}, {"input_ids": inputs["input_ids"], "inputs_embeds": embeds}):
        with pytest.raises(ValueError, match="exactly one of input_ids or inputs_embeds"):
            search(**given, attention_mask=inputs["attention_mask"])
    assert calls == []


@pytest.mark.parametrize("problem", ["token", "sequence"])
def test_layer_search_returns_the_hidden_states_asked_for_as_the_stock_model(problem):
    # As the family's own heads (transformers >= 5.24): a list of indices gives those states and None for the others.
    search = layer_search(problem)
    stock = BertModel(search.config, add_pooling_layer=False).eval()
    stock.load_state_dict(search.base_model.state_dict())
    inputs = TESTER.prepare_inputs()
    for selection in ([0, 2, -1], [-2], True, False):
        with torch.no_grad():
            expected = stock(**inputs, output_hidden_states=selection).hidden_states
            returned = search(**inputs, output_hidden_states=selection).hidden_states
        assert_same_hidden_states(returned, expected, f"output_hidden_states={selection}")


def test_layer_search_refuses_layers_out_of_range():
    config = TESTER.get_config()
    config.search_layers = [config.num_hidden_layers]
    with pytest.raises(ValueError, match="search_layers="):
        DLFAForLayerSearch(config)


# ---------------------------------------------------------------------------------------------------------------------
# One hierarchy: the BERT classes are the generic classes with a BERT config


@pytest.mark.parametrize(
    ("bert_class", "generic_class"),
    [
        (DLFABertModel, DLFAModel),
        (DLFABertForTokenClassification, DLFAForTokenClassification),
        (DLFABertForSequenceClassification, DLFAForSequenceClassification),
    ],
)
def test_a_bert_class_is_its_generic_class_with_a_bert_config(bert_class, generic_class):
    """Same modules, weight names and outputs as the generic class on the same BERT encoder; no forward of its own."""
    assert issubclass(bert_class, generic_class) and "forward" not in vars(bert_class)
    model = build(bert_class, TESTER.get_config(**NO_DROPOUT))
    randomize_fusion(model)
    config = DLFAConfig(
        encoder_config=TESTER.get_bert_config(**NO_DROPOUT), fusion_layer=TESTER.fusion_layer, num_labels=3
    )
    generic = generic_class(config).eval()
    generic.load_state_dict(model.state_dict(), strict=True)
    inputs = TESTER.prepare_inputs()
    with torch.no_grad():
        assert_close(first_output(generic(**inputs)), first_output(model(**inputs)), atol=0)
