"""Every key the schema accepts has a named, tested effect; a key without an entry here fails the suite.

Effects: `model` (module tree, parameter count or output of the built model), `schedule` (the staging
schedule or DSC temperature), `memory` (tensors saved for backward), `graph` (the autograd graph),
`trainer` (the metric rows and weights after two real optimizer steps on ARC tasks), `device` (the
autocast dtype on CUDA), `probe` / `verdict` (the probe's run settings, the verdict of a fixed series),
or `unsupported` (the key is listed as not acted on, with its reason, instead of being silently dropped).
"""

from __future__ import annotations

import pytest
import torch
from conftest import arc_tasks, make_batch, tiny_raw
from series import VERDICT_SERIES, collapsed

from collapse_doctor.config import iter_fields, parse_config, replace_key
from collapse_doctor.config.schedule import Schedule, steps_per_epoch
from collapse_doctor.data.arc import make_sample, usable_tasks
from collapse_doctor.experiments.measure import saved_tensor_bytes
from collapse_doctor.experiments.probe import run_probe
from collapse_doctor.experiments.run_setup import RunSettings, configure_cpu
from collapse_doctor.judge.verdict import early_stop, judge
from collapse_doctor.model import build_model
from collapse_doctor.train.ema import EMA
from collapse_doctor.train.trainer import Trainer, autocast_dtype

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
    "model.use_context_encoder": (
        "model",
        False,
        {
            "model.use_cross_attention_context": False,
            "model.use_solver_context": False,
            "model.use_hyperlora": False,
            "model.use_hpm": False,
        },
    ),
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
    "model.context_path": (
        "model",
        "spatial",
        {"model.use_cross_attention_context": False, "model.use_solver_context": False, "model.use_hyperlora": False},
    ),
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
    "data.ignore_padding_in_loss": ("data", False, {"model.num_classes": 11}),
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
    # trainer: two optimizer steps on real ARC tasks
    "model.hpm_balance_weight": ("trainer", 0.5, {}),
    "training.batch_size": ("trainer", 3, {}),
    "training.grad_accumulation_steps": ("trainer", 2, {}),
    "training.learning_rate": ("trainer", 1e-3, {}),
    "training.weight_decay": ("trainer", 0.5, {}),
    "training.gradient_clip": ("trainer", 0.01, {}),
    "training.beta1": ("trainer", 0.5, {}),
    "training.beta2": ("trainer", 0.5, {}),
    "training.dsc_lr_multiplier": ("trainer", 3.0, {}),
    "training.msre_lr_multiplier": ("trainer", 3.0, {}),
    "training.hyperlora_lr_multiplier": ("trainer", 3.0, {}),
    "training.loss_mode": ("trainer", "focal", {}),
    "training.bg_weight_cap": ("trainer", 4.0, {"training.loss_mode": "weighted_stablemax"}),
    "training.fg_weight_cap": ("trainer", 8.0, {"training.loss_mode": "weighted_stablemax"}),
    "training.focal_gamma": ("trainer", 1.0, {"training.loss_mode": "focal_weighted"}),
    "training.focal_alpha": ("trainer", 0.5, {"training.loss_mode": "focal_stablemax"}),
    "training.lambda_entropy": ("trainer", 0.5, {}),
    "training.lambda_sparsity": ("trainer", 0.1, {}),
    "training.lambda_predicate": ("unsupported", 0.01, {}),
    "training.lambda_curriculum": ("trainer", 0.5, {}),
    "training.lambda_deep_supervision": ("trainer", 0.5, {}),
    "training.lambda_act": ("unsupported", 0.5, {}),
    "training.min_clues": ("trainer", 5.0, {}),
    "training.min_clue_weight": ("trainer", 1.0, {"training.min_clues": 5.0}),
    "training.ponder_weight": ("trainer", 0.5, {}),
    "training.entropy_ponder_weight": ("trainer", 0.5, {}),
    "training.loo_training.loss_weight": ("trainer", 0.9, {"training.meta_learning_start_epoch": 0}),
    "training.loo_training.min_pairs_for_loo": ("trainer", 10, {"training.meta_learning_start_epoch": 0}),
    "training.equivariance_training.loss_weight": ("trainer", 0.9, {"training.meta_learning_start_epoch": 0}),
    "training.equivariance_training.num_augmentations": ("trainer", 1, {"training.meta_learning_start_epoch": 0}),
    "probe.seed": ("trainer", 1, {}),
    # device: what autocast a CUDA run uses
    "device.mixed_precision": ("device", True, {}),
    "device.dtype": ("device", "float16", {"device.mixed_precision": True}),
    # probe run settings
    "probe.steps": ("probe_steps", 3, {"training.batch_size": 2, "training.grad_accumulation_steps": 1}),
    "probe.steps_per_epoch": ("probe_epoch", 7, {}),
    "probe.threads": ("probe_cpu", 2, {}),
    "probe.flush_denormal": ("probe_cpu", False, {}),
    "probe.early_stop_after": ("probe_early_stop", 5, {}),
    "probe.lr_batch_exponent": ("probe_lr", 0.5, {}),
    "probe.lr_reference_batch": ("probe_lr", 1000, {"probe.lr_batch_exponent": 1.0}),
    "probe.warm_start_steps": (
        "probe_warm",
        3,
        {"training.batch_size": 2, "probe.steps": 2, "verdict.learned_acc": 0.0, "verdict.fg_acc_floor": 0.0},
    ),
    "probe.warm_start_until_learned": (
        "probe_warm_until",
        True,
        {
            "training.batch_size": 2,
            "probe.steps": 2,
            "probe.warm_start_steps": 25,
            "verdict.learned_acc": 0.0,
            "verdict.fg_acc_floor": 0.0,
            "verdict.fg_mode_share": 1.0,
        },
    ),
}
# verdict keys: the verdict of a fixed hand-written series changes
for dotted, alternative in {
    "verdict.bg_excess": 0.5,
    "verdict.bg_share_max": 0.5,
    "verdict.fg_acc_floor": 0.001,
    "verdict.pool_fg_cells": 0,
    "verdict.min_consecutive": 30,
    "verdict.fg_mode_share": 0.9,
    "verdict.learned_acc": 0.9,
    "verdict.final_window": 3,
    "verdict.nonfinite_budget": 3,
    "verdict.window_before": 5,
    "verdict.window_after": 3,
}.items():
    EFFECTS[dotted] = ("verdict", alternative, {})


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


_TRAINER_CACHE: dict = {}


def trainer_fingerprint(config):
    """Metric rows and a weight checksum after two optimizer steps on real ARC tasks (batch 2 unless set)."""
    if config in _TRAINER_CACHE:
        return _TRAINER_CACHE[config]
    config = replace_key(config, "training.batch_size", 2) if config.training.batch_size == 75 else config
    config = (
        replace_key(config, "training.grad_accumulation_steps", 1)
        if config.training.grad_accumulation_steps == 4
        else config
    )
    tasks = usable_tasks(arc_tasks(), config.data, config.model.max_grid_size)
    trainer = Trainer(config, tasks, seed=config.probe.seed, steps_per_epoch=1)
    rows = [trainer.train_step() for _ in range(2)]
    weights = {name: float(p.detach().double().sum()) for name, p in trainer.model.named_parameters()}
    result = (repr(rows), weights)
    _TRAINER_CACHE[config] = result
    return result


def tmp_dir():
    import tempfile

    return tempfile.mkdtemp(prefix="cd-effects-")


def test_every_schema_key_has_an_effect_entry():
    schema = {dotted for dotted, _, _ in iter_fields()}
    assert sorted(schema - set(EFFECTS)) == [], "add an effect test for these keys"
    assert sorted(set(EFFECTS) - schema) == []


# Keys whose effect is shown by training (warm starts at the full preset) are slow; the rest are not.
@pytest.mark.parametrize(
    "dotted",
    [
        pytest.param(k, marks=pytest.mark.slow) if EFFECTS[k][0] in ("probe_warm", "probe_warm_until") else k
        for k in sorted(EFFECTS)
    ],
)
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
    elif effect == "trainer":
        assert trainer_fingerprint(base.config) != trainer_fingerprint(changed.config)
    elif effect == "device":
        assert autocast_dtype(base.config.device, "cuda") != autocast_dtype(changed.config.device, "cuda")
        assert autocast_dtype(changed.config.device, "cpu") is None  # a CPU probe always runs float32
    elif effect == "probe_steps":
        result = run_probe(changed, RunSettings(preset="full"), out_dir=tmp_dir())
        assert len([r for r in result.rows if "event" not in r]) == alternative
    elif effect == "probe_epoch":
        assert steps_per_epoch(changed.config) == alternative != steps_per_epoch(base.config)
    elif effect == "probe_cpu":
        threads = torch.get_num_threads()
        try:
            configure_cpu(base.config.probe)
            before = (torch.get_num_threads(), float(torch.tensor([1e-39]) * 1.0))
            configure_cpu(changed.config.probe)
            after = (torch.get_num_threads(), float(torch.tensor([1e-39]) * 1.0))
        finally:
            torch.set_num_threads(threads)
            torch.set_flush_denormal(False)
        assert before != after
    elif effect == "probe_early_stop":
        series = collapsed(n=30, onset=10)  # collapsed for 20 steps at the end
        assert early_stop(series, base.config.verdict, base.config.probe.early_stop_after) is None
        assert "still open after" in early_stop(series, changed.config.verdict, changed.config.probe.early_stop_after)
    elif effect == "probe_lr":
        from collapse_doctor.experiments.presets import PRESETS, apply_preset

        assert (
            apply_preset(base, PRESETS["tiny"])[0].training.learning_rate
            != apply_preset(changed, PRESETS["tiny"])[0].training.learning_rate
        )
    elif effect in ("probe_warm", "probe_warm_until"):
        cache = tmp_dir()
        full = RunSettings(preset="full")
        runs = [run_probe(c, full, out_dir=tmp_dir(), warm_cache_dir=cache) for c in (base, changed)]
        if effect == "probe_warm":
            assert runs[0].report.warm_start is None and runs[1].report.warm_start.phase1_steps == alternative
        else:  # learned at once (thresholds 0): stops at the 20-step minimum instead of running all 25
            assert runs[0].report.warm_start.phase1_steps == 25 and runs[1].report.warm_start.phase1_steps == 20
    elif effect == "verdict":
        assert (
            judge(VERDICT_SERIES, base.config.verdict).to_json()
            != judge(VERDICT_SERIES, changed.config.verdict).to_json()
        )
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
