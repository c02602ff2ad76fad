"""Trainer pieces that the probe's verdict depends on: optimizer groups, the sample stream, metric counts."""

from __future__ import annotations

import torch
from conftest import arc_tasks, tiny_config

from collapse_doctor.data.arc import usable_tasks
from collapse_doctor.data.stream import SampleStream
from collapse_doctor.model import build_model
from collapse_doctor.train.step import step_counts
from collapse_doctor.train.trainer import parameter_groups


def test_parameter_groups_follow_the_reference_names_quirks_included():
    config = tiny_config(
        ["training.hyperlora_lr_multiplier=3.0", "training.dsc_lr_multiplier=2.0", "training.learning_rate=1e-3"]
    )
    model = build_model(config)
    groups = parameter_groups(model, config)
    by_name = {name: g for g in groups for name in g["names"]}
    assert sum(len(g["names"]) for g in groups) == len(list(model.parameters()))
    lora = next(n for n in by_name if n.startswith("hyper_lora.") and n.endswith("weight"))
    assert by_name[lora]["lr"] == 3e-3
    assert by_name["dsc.clue_queries"]["lr"] == 2e-3
    assert all(
        by_name[n]["weight_decay"] == 0.0 for n in by_name if any(word in n for word in ("bias", "norm", "embedding"))
    )
    assert by_name["dsc.query_proj.weight"]["weight_decay"] == 0.01
    # GroupNorm inside nn.Sequential is named by index, so the reference's heuristic gives it weight decay.
    head_norm = "solver.output_head.net.2.weight"
    assert (
        isinstance(model.solver.output_head.net[2], torch.nn.GroupNorm) and by_name[head_norm]["weight_decay"] == 0.01
    )


def test_sample_stream_rebuilds_any_batch_from_its_index():
    config = tiny_config()
    tasks = usable_tasks(arc_tasks(), config.data, config.model.max_grid_size)
    a, b = SampleStream(tasks, config, seed=5), SampleStream(tasks, config, seed=5)
    later = a.batch(40, 4)
    a.batch(0, 4)
    again = b.batch(40, 4)
    assert torch.equal(later.query_target, again.query_target) and torch.equal(
        later.support_inputs, again.support_inputs
    )
    assert later.pair_mask.any(dim=1).all()
    assert not torch.equal(SampleStream(tasks, config, seed=6).batch(40, 4).query_target, later.query_target)
    # one pass over the tasks visits every task once
    seen = [a.task_for(i).task_id for i in range(len(tasks))]
    assert sorted(seen) == sorted(t.task_id for t in tasks)


def test_step_counts_pool_valid_cells_and_exclude_padding():
    counts = step_counts(10)
    target = torch.tensor([[0, 0, 3, 3, -100, 10]])
    logits = torch.zeros(1, 10, 6)
    for cell, cls in enumerate([0, 3, 3, 0, 5, 5]):
        logits[0, cls, cell] = 1.0
    counts.add(logits.view(1, 10, 1, 6), target.view(1, 1, 6))
    row = counts.row()
    assert row["valid_cells"] == 4
    assert row["bg_acc"] == 0.5 and row["fg_acc"] == 0.5
    assert row["pred_bg_share"] == 0.5 and row["target_bg_share"] == 0.5
    assert row["fg_pred_mode"] in (0, 3) and row["fg_pred_mode_share"] == 0.5
    assert row["colours_predicted"] == 2 and row["colours_present"] == 2
