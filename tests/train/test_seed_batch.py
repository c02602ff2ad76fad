"""Seeds as a batch (issue 15, item 3): K seeds of one config as one vmapped model, on real ARC batches.

What must hold: each seed starts from its single run's weights and data; without dropout a batch of
one seed trains as its single run does (to float rounding); a batch is deterministic; a seed's
non-finite step is skipped for that seed alone. The verdicts on the engineered pair are compared in
tests/sweeps/test_gate.py, where the separate probes are already run.
"""

from __future__ import annotations

import math

import pytest
import torch

from collapse_doctor.config import default_config_path, load_config
from collapse_doctor.data.arc import load_tasks, usable_tasks
from collapse_doctor.experiments.presets import PRESETS, apply_preset
from collapse_doctor.train.seed_batch import SeedBatchTrainer, stack_batches
from collapse_doctor.train.trainer import Trainer


def tiny(which: str, *sets: str):
    config, _ = apply_preset(load_config(default_config_path(which), list(sets)), PRESETS["tiny"])
    return config, usable_tasks(load_tasks(), config.data, config.model.max_grid_size)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def metric_rows(rows: list[dict]) -> list[dict]:
    return [r for r in rows if "event" not in r]


def test_each_seed_starts_from_its_single_runs_weights():
    config, tasks = tiny("new")
    batch = SeedBatchTrainer(config, tasks, seeds=[3, 5], steps_per_epoch=10**6)
    for s, seed in enumerate([3, 5]):
        single = Trainer(config, tasks, seed=seed, steps_per_epoch=10**6).model.state_dict()
        mine = batch.model_for(s).state_dict()
        assert set(single) == set(mine)
        assert all(torch.equal(single[name], mine[name]) for name in single)


def test_a_batch_of_one_seed_trains_as_its_single_run_without_dropout():
    config, tasks = tiny("old", "model.dropout=0.0")
    batch = SeedBatchTrainer(config, tasks, seeds=[1], steps_per_epoch=10**6)
    single = Trainer(config, tasks, seed=1, steps_per_epoch=10**6)
    for _ in range(4):
        (mine,) = batch.train_step()
        theirs = single.train_step()
        a, b = metric_rows(mine)[0], metric_rows(theirs)[0]
        assert a["valid_cells"] == b["valid_cells"] and a["target_bg_share"] == b["target_bg_share"]
        assert math.isclose(a["loss"], b["loss"], rel_tol=1e-4)
        assert math.isclose(a["grad_norm_total"], b["grad_norm_total"], rel_tol=1e-3)
        assert abs(a["fg_acc"] - b["fg_acc"]) <= 0.01


def test_every_seed_sees_its_own_data_and_first_loss():
    config, tasks = tiny("old", "model.dropout=0.0")
    seeds = [0, 1, 2]
    batch = SeedBatchTrainer(config, tasks, seeds=seeds, steps_per_epoch=10**6)
    first = [metric_rows(rows)[0] for rows in batch.train_step()]
    for seed, row in zip(seeds, first):
        single = metric_rows(Trainer(config, tasks, seed=seed, steps_per_epoch=10**6).train_step())[0]
        assert row["valid_cells"] == single["valid_cells"]  # the seed's own batch
        assert math.isclose(row["loss"], single["loss"], rel_tol=1e-5)
        assert row["fg_acc"] == single["fg_acc"] and row["pred_bg_share"] == single["pred_bg_share"]
    assert len({row["loss"] for row in first}) == 3


@pytest.mark.slow
def test_the_same_batch_gives_the_same_rows_and_the_meta_losses_run_per_seed():
    config, tasks = tiny("new", "training.meta_learning_start_epoch=0")
    runs = []
    for _ in range(2):
        batch = SeedBatchTrainer(config, tasks, seeds=[0, 1], steps_per_epoch=10**6)
        runs.append([batch.train_step()])  # one step: LOO and equivariance are live from step 0
    assert runs[0] == runs[1]
    last = [metric_rows(rows)[0] for rows in runs[0][-1]]
    assert all({"loo", "equivariance"} <= set(row["loss_terms"]) for row in last)
    assert last[0]["loss"] != last[1]["loss"]
    events = [r["event"] for r in runs[0][0][0] if "event" in r]
    assert "loo loss on" in events and "hyper_lora on" in events


def test_a_non_finite_seed_is_skipped_alone():
    config, tasks = tiny("old")
    batch = SeedBatchTrainer(config, tasks, seeds=[0, 1], steps_per_epoch=10**6)
    with torch.no_grad():
        for p in batch.params.values():
            p[1] = float("nan")  # seed 1's loss is NaN (stablemax neutralises NaN logits, the clue hinge does not)
    before = {n: p.detach().clone() for n, p in batch.params.items()}
    good, bad = (metric_rows(rows)[0] for rows in batch.train_step())
    assert bad["skipped"] and bad["nonfinite_loss_batches"] == 1 and bad["consecutive_nonfinite"] == 1
    assert not good["skipped"] and good["grads_finite"] and good["loss"] == good["loss"]
    moved = any(not torch.equal(p[0], before[n][0]) for n, p in batch.params.items())
    kept = all(torch.equal(p[1].nan_to_num(7.0), before[n][1].nan_to_num(7.0)) for n, p in batch.params.items())
    assert moved and kept
    assert batch.skipped_steps == [0, 1]


def test_stacked_batches_pad_pair_slots_with_masked_pad_grids():
    config, tasks = tiny("old")
    batch = SeedBatchTrainer(config, tasks, seeds=[0, 1, 2, 3], steps_per_epoch=10**6)
    singles = [stream.batch(0, 8) for stream in batch.streams]
    stacked = stack_batches(singles)
    slots = max(b.support_inputs.shape[1] for b in singles)
    assert stacked.support_inputs.shape == (4, 8, slots, 10, 10)
    for s, single in enumerate(singles):
        n = single.support_inputs.shape[1]
        assert torch.equal(stacked.support_inputs[s, :, :n], single.support_inputs)
        assert not stacked.pair_mask[s, :, n:].any() and (stacked.support_inputs[s, :, n:] == 10).all()


def test_a_seed_batch_refuses_repeated_seeds():
    config, tasks = tiny("old")
    with pytest.raises(ValueError, match="distinct"):
        SeedBatchTrainer(config, tasks, seeds=[1, 1], steps_per_epoch=10)


def test_given_the_same_gradients_each_seed_takes_its_single_runs_clipped_adamw_step():
    config, tasks = tiny("new")  # parameter groups with three learning rates and no-decay names
    seeds = [0, 1]
    batch = SeedBatchTrainer(config, tasks, seeds=seeds, steps_per_epoch=10**6)
    generator = torch.Generator().manual_seed(0)
    for s, seed in enumerate(seeds):
        single = Trainer(config, tasks, seed=seed, steps_per_epoch=10**6)
        for name, p in single.model.named_parameters():
            p.grad = torch.randn(p.shape, generator=generator) * (0.05 if s == 0 else 0.0001)  # clipped / not
            if batch.params[name].grad is None:
                batch.params[name].grad = torch.zeros_like(batch.params[name])
            batch.params[name].grad[s] = p.grad
        torch.nn.utils.clip_grad_norm_(single.model.parameters(), config.training.gradient_clip)
        single.optimizer.step()
        if s == 0:
            first = {n: p.detach().clone() for n, p in single.model.named_parameters()}
    grads = list((n, p.grad) for n, p in batch.params.items())
    norms = batch._grad_norms(grads)
    assert norms[0]["total"] > config.training.gradient_clip > norms[1]["total"]
    batch._clip_and_step(grads, norms, [True, True])
    for name, p in single.model.named_parameters():  # seed 1, unclipped
        assert torch.allclose(batch.params[name][1], p, rtol=0, atol=1e-7), name
    for name, value in first.items():  # seed 0, clipped
        assert torch.allclose(batch.params[name][0], value, rtol=0, atol=1e-7), name


# --------------------------------------------------------------------------------------------------
# The sweeps: ablate and calibrate group each variant's / side's seeds into one batch
# --------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_ablate_runs_each_variants_seeds_as_one_batch(tmp_path):
    from pathlib import Path

    from collapse_doctor.sweeps.ablate import run_ablation

    config = Path(__file__).resolve().parents[2] / "fixtures" / "seed_new_main.yaml"
    common = dict(seeds=[0, 1], steps=3, only=["HyperLoRA"], jobs=2, cache_dir=tmp_path / "cache")
    result = run_ablation(config, seed_batch=True, **common)
    assert result.seed_batch and result.to_json()["seed_batch"] is True
    assert len(result.variants) >= 3
    for variant in result.variants:
        assert [s.seed for s in variant.seeds] == [0, 1]
        assert all(s.worker["seed_batch"] == [0, 1] and s.steps_run == 3 for s in variant.seeds)
    assert len({s.worker["pid"] for v in result.variants for s in v.seeds}) >= 2  # batches in parallel workers
    with pytest.raises(Exception, match="seed batch does not run warm starts"):
        run_ablation(config, seed_batch=True, overrides=["probe.warm_start_steps=50"], **common)


@pytest.mark.slow
def test_calibrate_batches_each_side_and_refuses_warm_starts(tmp_path):
    from pathlib import Path

    from collapse_doctor.experiments.regimes import by_name
    from collapse_doctor.sweeps.calibrate import ConfigSource, run_calibration

    fixtures = Path(__file__).resolve().parents[2] / "fixtures"
    good = ConfigSource("old", str(fixtures / "seed_old_2a50f2d.yaml"))
    bad = ConfigSource("new", str(fixtures / "seed_new_main.yaml"))
    common = dict(regimes=[by_name("b8")], seeds=2, min_good=0, confirm=False, cache_dir=tmp_path / "cache")
    result = run_calibration(good, bad, overrides=["probe.steps=3"], seed_batch=True, **common)
    (measured,) = result.results
    assert result.to_json()["seed_batch"] is True
    assert all(s.worker["seed_batch"] == [0, 1] for s in measured.good + measured.bad)
    with pytest.raises(Exception, match="seed batch does not run warm starts"):
        run_calibration(good, bad, warm=True, seed_batch=True, **common)
