"""Probes: real training steps of the bundled RLAN on real ARC-AGI-1 tasks, judged by the verdict module."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import tiny_raw

from collapse_doctor.config import VerdictConfig, default_config_path, load_config, parse_config
from collapse_doctor.config.schedule import steps_per_epoch
from collapse_doctor.experiments.presets import PRESETS, apply_preset
from collapse_doctor.experiments.probe import read_rows, run_probe
from collapse_doctor.judge.flags import background_flag
from collapse_doctor.judge.signals import SIGNALS
from collapse_doctor.model.hyper_lora import HyperLoRA


def small_probe_config(*extra):
    """The all-modules tiny test model, batch 4, 8 steps, every staged activation inside the budget."""
    overrides = [
        "training.batch_size=4",
        "training.grad_accumulation_steps=1",
        "training.meta_learning_start_epoch=1",
        "model.hpm_start_epoch=2",
        "probe.steps=8",
        "probe.steps_per_epoch=3",
        *extra,
    ]
    return parse_config(tiny_raw(), source="tiny.yaml", overrides=overrides)


@pytest.mark.slow
def test_same_seed_gives_the_same_jsonl(tmp_path):
    a = run_probe(small_probe_config(), out_dir=tmp_path / "a")
    b = run_probe(small_probe_config(), out_dir=tmp_path / "b")
    assert a.metrics_path.read_bytes() == b.metrics_path.read_bytes()
    c = run_probe(small_probe_config("probe.seed=1"), out_dir=tmp_path / "c")
    assert c.metrics_path.read_bytes() != a.metrics_path.read_bytes()


def test_metric_rows_carry_the_named_signals_and_events(tmp_path):
    result = run_probe(small_probe_config(), out_dir=tmp_path)
    rows = read_rows(result.metrics_path)
    events = {(r["step"], r["event"]) for r in rows if "event" in r}
    assert {(0, "hyper_lora on"), (3, "loo loss on"), (3, "equivariance loss on"), (6, "hpm on")} <= events
    metrics = [r for r in rows if "event" not in r]
    assert [r["step"] for r in metrics] == list(range(8))
    missing = [name for name in (s.name for s in SIGNALS) if any(name not in r for r in metrics)]
    assert not missing, f"judge/signals.py names signals a probe row lacks: {missing}"
    for r in metrics:
        for name in ("fg_acc", "bg_acc", "pred_bg_share", "target_bg_share"):
            assert 0.0 <= r[name] <= 1.0
        assert abs(sum(r["pred_share"]) - 1.0) < 1e-9
        assert set(r["lora_delta_norm"]) == {"gru_reset", "gru_update", "gru_candidate", "output_head"}
        assert set(r["gate_saturation"]) == {"reset", "update"}
        assert "solver.gru" in r["grad_norm"] and r["grad_norm_total"] > 0
        assert not any("time" in key for key in r)
    assert "loo" in metrics[3]["loss_terms"] and "loo" not in metrics[2]["loss_terms"]
    assert "hpm_balance" in metrics[6]["loss_terms"] and "hpm_balance" not in metrics[5]["loss_terms"]
    ran = result.report.ran
    assert ran.seed == 0 and ran.steps_run == 8 and ran.device == "cpu" and ran.threads == 1
    assert result.report.data.tasks_used == 178


@pytest.mark.slow
def test_a_learning_rate_that_saturates_the_gates_collapses_after_the_first_step(tmp_path):
    """OLD config (bg_bias 0, neutral init) at 10x the reference LR: background everywhere, onset after step 0."""
    loaded = load_config(default_config_path("old"), ["training.learning_rate=5e-3", "probe.steps=30"])
    result = run_probe(loaded, out_dir=tmp_path)
    verdict = result.verdict
    assert verdict.label in ("COLLAPSED", "DIVERGED"), verdict.reasons
    assert verdict.onset_step >= 1
    first = [r for r in result.rows if "event" not in r][0]
    assert background_flag(first, VerdictConfig()) is False  # the initial predictions are not collapsed
    assert first["pred_bg_share"] < first["target_bg_share"]


def test_injected_non_finite_gradients_end_diverged(tmp_path):
    def poison(model, step):
        if step >= 2:
            next(model.parameters()).grad.fill_(float("nan"))

    result = run_probe(small_probe_config("probe.steps=20"), out_dir=tmp_path, grad_hook=poison)
    assert result.verdict.label == "DIVERGED" and result.verdict.onset_step == 2
    assert result.report.ran.steps_run == 12 and "stopped after 10" in result.report.ran.stopped_early
    assert result.report.ran.skipped_steps == 10
    rows = [r for r in result.rows if "event" not in r]
    assert rows[-1]["skipped"] and rows[-1]["grads_finite"] is False and rows[-1]["params_finite"] is True


def test_the_tiny_preset_keeps_hyperloras_initial_gain():
    """The full config's gain ||dW||_F / sqrt(D) at D 256 is kept at D 32 by rescaling init_scale."""
    loaded = load_config(None)
    tiny, changes = apply_preset(loaded, PRESETS["tiny"])
    assert any(c.key == "model.hyperlora_init_scale" for c in changes)

    def gain(model_cfg):
        torch.manual_seed(0)
        lora = HyperLoRA(model_cfg)
        context = torch.nn.functional.layer_norm(torch.randn(16, model_cfg.hidden_dim), (model_cfg.hidden_dim,))
        with torch.no_grad():
            a, b = lora.predictors["gru_update"](context)
        return float((a @ b).flatten(1).norm(dim=1).mean()) / model_cfg.hidden_dim**0.5

    full_gain, tiny_gain = gain(loaded.config.model), gain(tiny.model)
    assert 0.5 < tiny_gain / full_gain < 2.0, (full_gain, tiny_gain)
    unscaled = tiny.model.__class__(
        **{**{f: getattr(tiny.model, f) for f in tiny.model.__slots__}, "hyperlora_init_scale": 0.1}
    )
    assert gain(unscaled) < 0.1 * full_gain  # without the rescaling the effect under test would vanish


def test_presets_compress_the_schedule_and_keep_user_overrides():
    loaded = load_config(None, ["model.hidden_dim=64", "probe.steps=50"])
    config, changes = apply_preset(loaded, PRESETS["tiny"])
    assert config.model.hidden_dim == 64 and config.probe.steps == 50
    assert config.model.use_hyperlora and config.model.use_hpm and config.training.loo_training.enabled
    assert steps_per_epoch(config) == 6  # last activation (epoch 3) at 40 % of 50 steps


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "collapse_doctor", *args], capture_output=True, text=True)


@pytest.mark.slow
def test_cli_probe_diverges_without_a_traceback_and_writes_its_report(tmp_path):
    report_path = tmp_path / "report.json"
    result = run_cli(
        "probe",
        str(default_config_path("old")),
        "--set",
        "training.learning_rate=1e30",
        "--steps",
        "14",
        "--seed",
        "3",
        "--out",
        str(tmp_path),
        "--json",
        str(report_path),
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "DIVERGED" in result.stdout
    report = json.loads(report_path.read_text())
    assert report["verdict"] == "DIVERGED" and report["good"] is False
    assert report["ran"]["overrides"] == ["training.learning_rate=1e30", "probe.seed=3", "probe.steps=14"]
    assert report["ran"]["seed"] == 3 and report["ran"]["device"] == "cpu" and report["ran"]["dtype"] == "float32"
    assert report["versions"]["torch"] == torch.__version__
    assert report["config"]["training"]["learning_rate"] == 1e30
    assert Path(report["metrics"]).parent == tmp_path and Path(report["metrics"]).name.startswith(
        "seed_old_2a50f2d-tiny-seed3-"
    )
    assert any("mixed_precision" in note for note in report["notes"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--preset", "huge"], "--preset 'huge'"),
        (["--data", "/no/such/dir"], "/no/such/dir: no such task directory"),
        (["--device", "tpu"], "--device 'tpu'"),
    ],
)
def test_cli_probe_bad_input_is_one_line_exit_2(args, message):
    result = run_cli("probe", "--steps", "1", *args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_probe_names_a_corrupt_task_file(tmp_path):
    (tmp_path / "good.json").write_text(
        json.dumps({"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[1]], "output": [[2]]}]})
    )
    (tmp_path / "bad.json").write_text("{not json")
    result = run_cli("probe", "--steps", "1", "--data", str(tmp_path))
    assert result.returncode == 2 and "bad.json: not valid JSON" in result.stderr and "Traceback" not in result.stderr


def test_probes_that_differ_only_in_set_write_different_metric_files(tmp_path):
    from collapse_doctor.config import load_config
    from collapse_doctor.experiments.probe import run_probe

    old = Path(__file__).resolve().parents[2] / "fixtures" / "seed_old_2a50f2d.yaml"
    paths = {
        run_probe(load_config(old, [f"model.dropout={d}", "probe.steps=1"]), out_dir=tmp_path).metrics_path
        for d in (0.1, 0.2)
    }
    assert len(paths) == 2 and all(p.exists() for p in paths)
