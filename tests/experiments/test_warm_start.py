"""Warm-start probes: the phase-1 checkpoint (cached, atomic, resumable) and the copy into the candidate."""

from __future__ import annotations

import pytest
import torch
from conftest import arc_tasks, tiny_raw

from collapse_doctor.config import parse_config, replace_key
from collapse_doctor.config.schedule import steps_per_epoch
from collapse_doctor.data.arc import usable_tasks
from collapse_doctor.experiments.identity import probe_key
from collapse_doctor.experiments.warm_start import SNAPSHOT_EVERY, base_config, phase1_config, run_phase1, transplant
from collapse_doctor.train.trainer import Trainer


def configs(steps: int = 3):
    raw = tiny_raw()
    raw["training"].update(batch_size=2, grad_accumulation_steps=1)
    candidate = parse_config(
        raw, source="tiny.yaml", overrides=[f"probe.warm_start_steps={steps}", "probe.steps=2"]
    ).config
    return candidate, phase1_config(base_config(candidate), candidate)


def make_trainer(config):
    tasks = usable_tasks(arc_tasks(), config.data, config.model.max_grid_size)
    return Trainer(config, tasks, seed=config.probe.seed, steps_per_epoch=steps_per_epoch(config))


def test_the_base_has_every_stageable_module_and_meta_loss_off():
    candidate, phase1 = configs()
    assert candidate.model.use_hyperlora and candidate.model.use_solver_context
    m, t = phase1.model, phase1.training
    assert not (m.use_hyperlora or m.use_solver_context or m.use_cross_attention_context or m.use_hpm)
    assert not (t.loo_training.enabled or t.equivariance_training.enabled)
    assert phase1.probe.steps == 3 and phase1.probe.early_stop_after is None


def test_copy_carries_tensors_and_optimizer_state_and_keeps_new_modules_at_init(tmp_path):
    candidate, phase1_cfg = configs()
    phase1 = run_phase1(phase1_cfg, make_trainer, tmp_path / "p1.pt")
    trainer = make_trainer(candidate)
    fresh = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    copy = transplant(phase1, trainer, candidate, phase1_cfg)
    state = trainer.model.state_dict()
    name = "solver.output_head.net.3.weight"
    assert name in copy.copied
    assert torch.equal(state[name], phase1.model_state[name])
    assert not torch.equal(state[name], fresh[name])  # it really changed: phase 1 trained it
    new = [k for k in state if k.startswith("hyper_lora.")]
    assert new and all(k in copy.kept_init for k in new)
    assert all(torch.equal(state[k], fresh[k]) for k in new)  # HyperLoRA keeps the candidate's own init
    params = dict(trainer.model.named_parameters())
    adam = trainer.optimizer.state[params[name]]
    # the whole AdamW state, not only the first moment: the second moment sets the step size, and the
    # step count sets the bias correction (a step of 0 would make the first update a full-size one)
    for key in ("exp_avg", "exp_avg_sq", "step"):
        assert torch.equal(torch.as_tensor(adam[key]), torch.as_tensor(phase1.optimizer_state[name][key])), key
    assert float(adam["step"]) == 3 and adam["exp_avg_sq"].abs().sum() > 0  # phase 1's 3 steps, really carried
    assert not trainer.optimizer.state.get(params[new[0]])  # no state for a new module
    assert 0 < copy.share_copied < 1
    assert {u["key"] for u in copy.untestable_keys} >= {"model.bg_bias"}


def test_phase1_checkpoint_is_cached_atomically_and_keyed(tmp_path):
    candidate, phase1_cfg = configs()
    path = tmp_path / f"{probe_key(phase1_cfg, 'full', 'arc-agi-1', None, 'cpu')}.pt"
    first = run_phase1(phase1_cfg, make_trainer, path)
    assert path.exists() and not first.cached
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary or partial file left
    second = run_phase1(phase1_cfg, make_trainer, path)
    assert second.cached and second.rows == first.rows
    assert all(torch.equal(second.model_state[k], first.model_state[k]) for k in first.model_state)
    other = replace_key(phase1_cfg, "probe.seed", 1)
    assert probe_key(other, "full", "arc-agi-1", None, "cpu") != path.stem


def test_an_interrupted_phase1_resumes_from_its_snapshot_with_the_same_result(tmp_path):
    steps = SNAPSHOT_EVERY + 3
    candidate, phase1_cfg = configs(steps)
    reference = run_phase1(phase1_cfg, make_trainer, tmp_path / "ref.pt")

    def interrupt(step, total):
        if step == SNAPSHOT_EVERY + 1:
            raise KeyboardInterrupt

    path = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        run_phase1(phase1_cfg, make_trainer, path, on_step=interrupt)
    assert not path.exists() and path.with_suffix(".partial.pt").exists()
    seen = []
    resumed = run_phase1(phase1_cfg, make_trainer, path, on_step=lambda step, total: seen.append(step))
    assert seen[0] == SNAPSHOT_EVERY + 1  # it went on from the snapshot, not from step 0
    assert resumed.rows == reference.rows
    assert all(torch.equal(resumed.model_state[k], reference.model_state[k]) for k in reference.model_state)
    assert not path.with_suffix(".partial.pt").exists()
