"""Every key the schema accepts has a named, tested effect; a key without an entry here fails the suite.

Effects: `model` (module tree, parameter count or output of the built model), `schedule` (the staging
schedule or DSC temperature), `memory` (tensors saved for backward), `graph` (the autograd graph), or
`unsupported` (the key is listed as not acted on, with its reason, instead of being silently dropped).
"""

from __future__ import annotations


import pytest
import torch

from collapse_doctor.config import IMPLEMENTED_CONSUMERS, iter_fields, parse_config
from collapse_doctor.measure import saved_tensor_bytes
from collapse_doctor.model import build_model
from collapse_doctor.schedule import Schedule
from collapse_doctor.train.ema import EMA
from collapse_doctor.data.arc import make_sample, usable_tasks
from conftest import arc_tasks, make_batch, tiny_raw

# key -> (effect, alternative value, extra overrides that make the effect observable)
EFFECTS: dict[str, tuple] = {
    "model.hidden_dim": ("model", 48, {}),
    "model.num_colors": ("model", 12, {}),
    "model.num_classes": ("model", 11, {}),
    "model.max_grid_size": ("model", 9, {"data.max_grid_size": 9}),
    "model.max_clues": ("model", 4, {}),
    "model.num_solver_steps": ("model", 3, {}),
    "model.dropout": ("model", 0.3, {}),
    "model.dsc_num_heads": ("model", 2, {}),
    "model.msre_encoding_dim": ("model", 16, {}),
    "model.msre_num_freq": ("model", 4, {}),
    "model.use_context_encoder": ("model", False, {"model.use_cross_attention_context": False, "model.use_solver_context": False, "model.use_hyperlora": False, "model.use_hpm": False}),
    "model.use_dsc": ("model", False, {}),
    "model.use_msre": ("model", False, {}),
    "model.use_learned_pos": ("model", True, {}),
    "model.use_cross_attention_context": ("model", False, {}),
    "model.spatial_downsample": ("model", 1, {}),
    "model.use_solver_context": ("model", False, {}),
    "model.solver_context_heads": ("model", 2, {}),
    "model.use_hyperlora": ("model", False, {}),
    "model.hyperlora_rank": ("model", 4, {}),
    "model.hyperlora_scaling": ("model", 0.5, {}),
    "model.hyperlora_dropout": ("model", 0.5, {}),
    "model.hyperlora_init_scale": ("model", 0.01, {}),
    "model.hyperlora_start_epoch": ("schedule", 2, {}),
    "model.use_hpm": ("model", False, {}),
    "model.hpm_start_epoch": ("schedule", 2, {}),
    "model.hpm_warmup_epochs": ("schedule", 2.0, {}),
    "model.hpm_top_k": ("model_with_memory", 3, {}),
    "model.hpm_balance_weight": ("unsupported", 0.1, {}),
    "model.hpm_primitives_per_bank": ("model", 9, {}),
    "model.hpm_levels_per_bank": ("model", 2, {}),
    "model.hpm_use_cross_attention": ("model", False, {}),
    "model.hpm_memory_size": ("memory_capacity", 3, {}),
    "model.hpm_retrieval_k": ("model_with_memory", 2, {}),
    "model.hpm_use_compositional_bank": ("model", False, {}),
    "model.hpm_use_pattern_bank": ("model", False, {}),
    "model.hpm_use_relational_bank": ("model", False, {}),
    "model.hpm_use_concept_bank": ("model", True, {}),
    "model.hpm_use_procedural_bank": ("model", False, {}),
    "model.hpm_use_instance_bank": ("model", False, {}),
    "model.bg_bias": ("model", -0.5, {}),
    "model.fg_bias": ("model", 0.5, {}),
    "model.use_lcr": ("unsupported", True, {}),
    "model.use_sph": ("unsupported", True, {}),
    "model.use_act": ("unsupported", True, {}),
    "training.max_epochs": ("schedule", 20, {}),
    "training.temperature_start": ("schedule", 2.0, {}),
    "training.temperature_end": ("schedule", 0.1, {}),
    "training.meta_learning_start_epoch": ("schedule", 5, {}),
    "training.solver_context_start_epoch": ("schedule", 2, {}),
    "training.solver_context_warmup_epochs": ("schedule", 2.0, {}),
    "training.cross_attention_start_epoch": ("schedule", 2, {}),
    "training.cross_attention_warmup_epochs": ("schedule", 2.0, {}),
    "training.hyperlora_warmup_epochs": ("schedule", 2.0, {}),
    "training.hyperlora_warmup_start_scale": ("schedule", 0.5, {"training.hyperlora_warmup_epochs": 4.0}),
    "training.hyperlora_warmup_end_scale": ("schedule", 0.5, {"training.hyperlora_warmup_epochs": 4.0}),
    "training.use_ema": ("ema", True, {}),
    "training.ema_decay": ("ema_decay", 0.9, {"training.use_ema": True}),
    "training.gradient_checkpointing": ("memory", True, {}),
    "training.checkpoint_use_reentrant": ("graph", True, {"training.gradient_checkpointing": True}),
    "data.max_grid_size": ("data", 9, {}),
    "data.ignore_padding_in_loss": ("data", False, {}),
    "data.augmentation.enabled": ("data", False, {}),
    "data.augmentation.rotation": ("data", False, {}),
    "data.augmentation.flip": ("data", False, {}),
    "data.augmentation.transpose": ("data", False, {}),
    "data.augmentation.color_permutation": ("data", False, {}),
    "data.augmentation.color_permutation_prob": ("data", 0.5, {}),
    "data.augmentation.translational": ("data", False, {}),
    "training.loo_training.enabled": ("schedule", False, {}),
    "training.loo_training.start_epoch": ("schedule", 6, {}),
    "training.equivariance_training.enabled": ("schedule", False, {}),
    "training.equivariance_training.start_epoch": ("schedule", 6, {}),
}
# Keys read by the trainer, data pipeline or device setup, which this version does not include: they
# are typed and validated now, and listed as unsupported whenever a YAML sets them.
for dotted, field, _ in iter_fields():
    if field.metadata["consumer"] not in IMPLEMENTED_CONSUMERS:
        EFFECTS.setdefault(dotted, ("unsupported", field.default, {}))


def config_with(**overrides):
    raw = tiny_raw()
    for dotted, value in overrides.items():
        section, *rest = dotted.split(".")
        node = raw.setdefault(section, {})
        for part in rest[:-1]:
            node = node.setdefault(part, {})
        node[rest[-1]] = value
    return parse_config(raw, source="tiny.yaml")


def model_fingerprint(config, fill_memory=False):
    torch.manual_seed(0)
    model = build_model(config).train()
    if fill_memory:
        # HPM's gate starts closed (tanh(0) = 0), so routing and retrieval only show once it opens.
        with torch.no_grad():
            model.hpm.gate.fill_(1.0)
        for bank in model.hpm.dynamic_banks.values():
            bank.store(torch.randn(12, config.model.hidden_dim), torch.randn(12, config.model.hidden_dim))
    size = min(8, config.model.max_grid_size)
    batch = make_batch(size=size, canvas=config.model.max_grid_size)
    torch.manual_seed(1)
    out = model(*batch)
    return str(model), model.parameter_table(), out.logits.detach()


def schedule_fingerprint(config):
    schedule = Schedule.from_config(config)
    return schedule.as_dict(), [schedule.stage_at(e / 2) for e in range(0, 16)]


def saved_bytes(config):
    """Bytes of tensors autograd saves for backward in one training forward."""
    torch.manual_seed(0)
    model = build_model(config).train()
    return saved_tensor_bytes(lambda: model(*make_batch()))


def data_fingerprint(config):
    """Which tasks a 10x10-canvas model keeps, and 40 augmented samples of a real ARC task."""
    tasks = arc_tasks()
    kept = [t.task_id for t in usable_tasks(tasks, config.data, config.model.max_grid_size)]
    small = next(t for t in tasks if t.max_side <= 6)
    samples = [make_sample(small, config.data, 10, seed=0, index=i) for i in range(40)]
    return kept, [(s.dihedral, s.permutation, s.offset, s.query_target.tobytes()) for s in samples]


def ema_evaluation_weights(config):
    """The output-head bias the evaluation copy carries after one update from perturbed weights."""
    torch.manual_seed(0)
    model = build_model(config)
    ema = EMA.from_config(model, config.training)
    if ema is None:
        return None
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model)
    return ema.evaluation_copy(model).solver.output_head.net[3].bias.detach().clone()


def graph_node_names(config):
    torch.manual_seed(0)
    model = build_model(config).train()
    out = model(*make_batch()).logits
    names, stack, seen = set(), [out.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        stack.extend(n for n, _ in node.next_functions)
    return names


def test_every_schema_key_has_an_effect_entry():
    schema = {dotted for dotted, _, _ in iter_fields()}
    assert sorted(schema - set(EFFECTS)) == [], "add an effect test for these keys"
    assert sorted(set(EFFECTS) - schema) == []


@pytest.mark.parametrize("dotted", sorted(EFFECTS))
def test_key_has_its_effect(dotted):
    effect, alternative, context = EFFECTS[dotted]
    base = config_with(**context)
    changed = config_with(**context, **{dotted: alternative})
    if effect != "unsupported":
        assert base.config != changed.config, f"{dotted}: the alternative value equals the base value"
    if effect == "model":
        a, b = model_fingerprint(base.config), model_fingerprint(changed.config)
        assert a[0] != b[0] or a[1] != b[1] or a[2].shape != b[2].shape or not torch.equal(a[2], b[2])
    elif effect == "model_with_memory":
        assert not torch.equal(model_fingerprint(base.config, True)[2], model_fingerprint(changed.config, True)[2])
    elif effect == "memory_capacity":
        bank = build_model(changed.config).hpm.dynamic_banks["instance"]
        bank.store(torch.randn(10, 32), torch.randn(10, 32))
        assert bank.keys.shape[0] == alternative
    elif effect == "schedule":
        assert schedule_fingerprint(base.config) != schedule_fingerprint(changed.config)
    elif effect == "memory":
        assert saved_bytes(changed.config) < 0.8 * saved_bytes(base.config)
    elif effect == "graph":
        assert "CheckpointFunctionBackward" in graph_node_names(changed.config)
        assert "CheckpointFunctionBackward" not in graph_node_names(base.config)
    elif effect == "data":
        assert data_fingerprint(base.config) != data_fingerprint(changed.config)
    elif effect in ("ema", "ema_decay"):
        evaluated = [ema_evaluation_weights(c.config) for c in (base, changed)]
        if effect == "ema":
            assert evaluated[0] is None and evaluated[1] is not None
        else:
            assert not torch.equal(evaluated[0], evaluated[1])
    elif effect == "unsupported":
        assert dotted in [u.key for u in changed.unsupported_keys]
        assert dotted not in [u.key for u in base.unsupported_keys]
    else:
        raise AssertionError(f"unknown effect {effect}")


def test_checkpointing_keeps_the_outputs_and_gradients():
    """Non-reentrant checkpointing changes memory, not results (the full check is `grad-check`)."""
    grads = []
    for on in (False, True):
        config = config_with(**{"training.gradient_checkpointing": on}).config
        torch.manual_seed(0)
        model = build_model(config).train()
        torch.manual_seed(3)
        model(*make_batch()).logits.square().mean().backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    for name, plain in grads[0].items():
        checkpointed = grads[1][name]
        assert (plain is None) == (checkpointed is None), name
        if plain is not None:
            torch.testing.assert_close(plain, checkpointed, rtol=1e-5, atol=1e-7, msg=name)
