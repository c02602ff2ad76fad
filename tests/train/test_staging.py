"""Staged activation: before its start a module is exactly inert; after it, it ramps in as configured."""

from __future__ import annotations

import copy

import torch
from conftest import make_batch, tiny_config

from collapse_doctor.config.schedule import Schedule, Stage
from collapse_doctor.model import build_model

STAGED = {
    "model.hyperlora_start_epoch": 2,
    "training.solver_context_start_epoch": 2,
    "training.cross_attention_start_epoch": 2,
    "model.hpm_start_epoch": 2,
}


def staged_config(extra=()):
    return tiny_config([f"{k}={v}" for k, v in STAGED.items()] + list(extra))


def test_staged_modules_are_bit_identical_to_their_absence_and_get_no_gradient():
    config = staged_config()
    torch.manual_seed(0)
    model = build_model(config).train()
    removed = copy.deepcopy(model)
    removed.hyper_lora = None
    removed.solver.solver_context = None
    removed.context_injector = None
    removed.hpm = None
    stage = Schedule.from_config(config).stage_at(1.0)
    assert (stage.hyper_lora, stage.solver_context, stage.cross_attention, stage.hpm) == (None, None, None, None)
    batch = make_batch()
    torch.manual_seed(7)
    staged_out = model(*batch, stage)
    torch.manual_seed(7)
    removed_out = removed(*batch, Stage(temperature=stage.temperature))
    assert torch.equal(staged_out.logits, removed_out.logits)
    for a, b in zip(staged_out.all_logits, removed_out.all_logits):
        assert torch.equal(a, b)
    staged_out.logits.sum().backward()
    for module in (model.hyper_lora, model.solver.solver_context, model.context_injector, model.hpm):
        assert all(p.grad is None for p in module.parameters())


def test_after_the_start_the_modules_change_the_output():
    config = staged_config()
    torch.manual_seed(0)
    model = build_model(config).eval()
    schedule = Schedule.from_config(config)
    batch = make_batch()
    with torch.no_grad():
        before, after = model(*batch, schedule.stage_at(1.9)).logits, model(*batch, schedule.stage_at(2.0)).logits
    assert not torch.equal(before, after)


def test_hyperlora_ramp_scales_the_deltas_linearly():
    config = staged_config(
        [
            "training.hyperlora_warmup_epochs=4",
            "training.hyperlora_warmup_start_scale=0.005",
            "training.hyperlora_warmup_end_scale=0.1",
        ]
    )
    schedule = Schedule.from_config(config)
    assert schedule.stage_at(2.0).hyper_lora == 0.005
    assert abs(schedule.stage_at(4.0).hyper_lora - 0.0525) < 1e-12
    assert schedule.stage_at(6.0).hyper_lora == 0.1 and schedule.stage_at(50).hyper_lora == 0.1
    torch.manual_seed(0)
    model = build_model(config).eval()
    batch = make_batch()
    with torch.no_grad():
        full = model(*batch, Stage(hyper_lora=1.0)).lora_deltas["gru_reset"]
        ramped = model(*batch, schedule.stage_at(4.0)).lora_deltas["gru_reset"]
    assert torch.allclose(ramped, 0.0525 * full, rtol=1e-5, atol=1e-7)


def test_context_ramps_start_at_zero_contribution():
    config = staged_config(
        [
            "training.solver_context_warmup_epochs=2",
            "training.cross_attention_warmup_epochs=2",
            "model.hpm_warmup_epochs=2",
        ]
    )
    schedule = Schedule.from_config(config)
    stage = schedule.stage_at(3.0)
    assert (stage.solver_context, stage.cross_attention, stage.hpm) == (0.5, 0.5, 0.5)
    torch.manual_seed(0)
    model = build_model(config).eval()
    batch = make_batch()
    with torch.no_grad():
        at_start = model(*batch, Stage(hyper_lora=None, solver_context=0.0, cross_attention=0.0, hpm=0.0)).logits
        absent = model(*batch, Stage(hyper_lora=None, solver_context=None, cross_attention=None, hpm=None)).logits
        halfway = model(*batch, Stage(hyper_lora=None, solver_context=0.5, cross_attention=0.5, hpm=0.5)).logits
    assert torch.allclose(at_start, absent, atol=1e-6)
    assert not torch.allclose(halfway, absent, atol=1e-4)


def test_unstaged_modules_are_live_from_step_zero_and_losses_follow_meta_learning_start():
    config = tiny_config(["training.meta_learning_start_epoch=5", "training.loo_training.start_epoch=7"])
    schedule = Schedule.from_config(config)
    assert schedule.as_dict() == {
        "hyper_lora": 0,
        "solver_context": 0,
        "cross_attention": 0,
        "hpm": 0,
        "loo": 7,
        "equivariance": 5,
    }
    assert schedule.events() == [(5, "equivariance loss on"), (7, "loo loss on")]
    stage = schedule.stage_at(0)
    assert (stage.hyper_lora, stage.solver_context, stage.cross_attention, stage.hpm) == (1.0, 1.0, 1.0, 1.0)
