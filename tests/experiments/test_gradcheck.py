"""grad-check against real torch.utils.checkpoint on the bundled model and a real ARC batch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from collapse_doctor.config import default_config_path, load_config
from collapse_doctor.config.schedule import FULL_STAGE
from collapse_doctor.experiments.grad_compare import TOLERANCES, compare_grads
from collapse_doctor.experiments.gradcheck import compare, forward_backward, grad_check

F32 = TOLERANCES["float32"]


@pytest.fixture(scope="module")
def all_on():
    return grad_check()  # every module on, float32, seed 0


def test_non_reentrant_checkpointing_matches_plain_gradients_in_every_seed_case(all_on):
    assert all_on.baseline["bit_identical"]  # two plain runs: the floor cannot come from their difference
    cases = all_on.modes["non_reentrant"]
    assert set(cases) == {"as_configured", "support_none", "lora_dict", "lora_none", "lora_dict_one_step"}
    for name, comparison in cases.items():
        assert comparison.match and comparison.error is None, name
        assert not comparison.buffers_changed
    assert cases["as_configured"].hyperlora_grad is True and cases["lora_dict"].hyperlora_grad is True
    assert cases["lora_none"].hyperlora_grad is False  # staged off: no gradient, on either side
    modules = {m.module for m in cases["as_configured"].modules}
    assert {"hyper_lora", "solver.gru", "solver.solver_context", "context_injector", "hpm"} <= modules


def test_reentrant_checkpointing_with_a_dict_of_deltas_is_what_torch_really_does(all_on):
    cases = all_on.modes["reentrant"]
    # torch 2.x: the reentrant variant detaches only positional tensor inputs; the deltas inside the
    # dict keep their graph, the inner backward of the recompute frees it, and the next backward through
    # that graph (the next step's, or the output head's LoRA) raises.
    for name in ("as_configured", "lora_dict", "lora_dict_one_step", "support_none"):
        assert cases[name].error is not None and "backward through the graph a second time" in cases[name].error, name
    assert cases["lora_none"].match and cases["lora_none"].error is None  # no dict: reentrant matches too
    report = all_on.to_json()
    assert report["reentrant"]["match"] is False and "second time" in report["reentrant"]["error"]
    assert report["non_reentrant"]["match"] is True and report["non_reentrant"]["error"] is None


def test_each_real_hazard_is_caught(all_on):
    hazards = {h.name: h for h in all_on.hazards}
    assert set(hazards) == {"dropout_rng_not_preserved", "module_flag_changed", "train_eval_changed"}
    for hazard in hazards.values():
        assert hazard.applicable and hazard.caught, hazard.name
        assert hazard.reachable is False  # the bundled trainer passes staging as arguments and keeps train mode
    dropout = hazards["dropout_rng_not_preserved"].result
    assert dropout.error is None and "solver.solver_context" in dropout.mismatching_modules()  # silent corruption
    assert "CheckpointError" in hazards["train_eval_changed"].result.error


def test_a_buffer_updated_inside_the_checkpointed_region_is_reported():
    loaded = load_config(None, ["model.use_hyperlora=false"])
    model, batch = _tiny_model(loaded)
    # A forward hook with a counter buffer, as BatchNorm's running stats would be: the recompute runs it again.
    model.solver.gru.register_buffer("calls", torch.zeros(()))

    def count(module, args, output) -> None:
        module.calls.add_(1)

    model.solver.gru.register_forward_hook(count)
    reference = forward_backward(model, batch, FULL_STAGE, seed=0, dtype="float32")
    result = compare(model, batch, FULL_STAGE, reentrant=False, seed=0, dtype="float32", reference=reference)
    assert result.buffers_changed == ["solver.gru.calls"] and not result.match


def _tiny_model(loaded):
    from collapse_doctor.data.arc import load_tasks, usable_tasks
    from collapse_doctor.data.stream import SampleStream
    from collapse_doctor.experiments.presets import PRESETS, apply_preset
    from collapse_doctor.model.rlan import build_model

    config, _ = apply_preset(loaded, PRESETS["tiny"])
    torch.manual_seed(0)
    model = build_model(config)
    tasks = usable_tasks(load_tasks("arc-agi-1"), config.data, config.model.max_grid_size)
    return model, SampleStream(tasks, config, 0).batch(0, 2)


def test_gradient_comparison_separates_none_zero_and_real_differences():
    g = torch.randn(50, dtype=torch.float32)
    assert compare_grads(g, g.clone(), "solver.gru.w", F32).match
    assert not compare_grads(g, g * (1 + 1e-4), "solver.gru.w", F32).match  # 1e-4 relative: over the float32 tolerance
    assert not compare_grads(None, torch.zeros(3), "hyper_lora.w", F32).match  # None and zero differ for optimizers
    assert compare_grads(torch.full((3,), 1e-12), torch.full((3,), 2e-12), "x.w", F32).match  # under the absolute floor
    assert compare_grads(None, None, "x.w", F32).match


def test_a_config_without_the_dict_or_dropout_in_the_region_matches_in_both_modes():
    report = grad_check(load_config(default_config_path("old")))  # 2a50f2d: no HyperLoRA, no SolverCrossAttention
    assert report.mode_match("non_reentrant") and report.mode_match("reentrant")
    assert [c.name for c in report.cases] == ["as_configured"]
    assert all(not h.applicable and h.caught is None for h in report.hazards)


@pytest.mark.slow
def test_cli_exit_code_follows_the_mode_the_config_trains_with(tmp_path):
    out = tmp_path / "g.json"

    def run(*a):
        return subprocess.run(
            [sys.executable, "-m", "collapse_doctor", "grad-check", *a], capture_output=True, text=True
        )  # noqa: E731

    result = run("--set", "training.checkpoint_use_reentrant=true", "--json", str(out))
    data = json.loads(out.read_text())
    assert result.returncode == 1 and data["trains_with"] == "reentrant" and data["exit_code"] == 1
    assert "do not match" in result.stdout and "Traceback" not in result.stderr
    for mode in ("non_reentrant", "reentrant"):
        assert {"match", "error", "modules"} <= set(data[mode])
    result = run("--dtype", "float16")
    assert result.returncode == 2 and "--dtype" in result.stderr
