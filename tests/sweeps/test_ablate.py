"""ablate and the init audit: variants from a config, exact tests, parallel = serial, the cache, noise."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml
from conftest import tiny_raw

from collapse_doctor.cli.sweep_reports import ablation_html
from collapse_doctor.config import default_config_path, load_config
from collapse_doctor.experiments.noise import matching_background_bias, noise_audit
from collapse_doctor.judge.stats import fisher_exact, smallest_p
from collapse_doctor.sweeps.ablate import build_variants, run_ablation, select


def test_fisher_exact_matches_known_values():
    assert fisher_exact(3, 3, 0, 3) == pytest.approx(0.1)
    assert fisher_exact(1, 3, 0, 3) == pytest.approx(1.0)
    assert fisher_exact(8, 10, 2, 10) == pytest.approx(0.023014, abs=1e-5)  # scipy.stats.fisher_exact
    assert fisher_exact(2, 10, 8, 10) == fisher_exact(8, 10, 2, 10)
    assert smallest_p(3, 3) == pytest.approx(0.1) and smallest_p(5, 5) < 0.01


def test_variants_of_the_new_config():
    variants = {v.name: v for v in build_variants(load_config(None).config)}
    assert {"base", "base + spatial context path", "full"} <= set(variants)
    for label in (
        "HyperLoRA",
        "SolverCrossAttention",
        "CrossAttentionInjector",
        "HPM",
        "LOO loss",
        "equivariance loss",
        "gradient checkpointing",
        "EMA off",
        "bg_bias",
    ):
        assert variants[f"base + {label}"].reference == "base"
        assert variants[f"full - {label}"].reference == "full"
    assert variants["base + HyperLoRA"].changes_encoder_path and not variants["base + HPM"].changes_encoder_path
    assert not variants["full - HyperLoRA"].changes_encoder_path  # two other modules keep the spatial path
    assert "model.bg_bias=-0.5" in variants["base + bg_bias"].overrides
    assert "training.use_ema=false" in variants["base + EMA off"].overrides
    staged = [v.name for v in variants.values() if v.group == "stage"]
    assert len(staged) == 8 and "full, HyperLoRA from epoch 3 + 2-epoch ramp" in staged
    base = load_config(None, list(variants["base"].overrides)).config
    assert (
        not (base.model.use_hyperlora or base.model.use_hpm or base.training.loo_training.enabled)
        and base.training.use_ema
        and base.model.bg_bias == 0
    )


def test_old_config_has_no_suspect_to_ablate():
    assert [v.name for v in build_variants(load_config(default_config_path("old")).config)] == ["base", "full"]


def test_only_keeps_the_references():
    variants = build_variants(load_config(None).config)
    assert [v.name for v in select(variants, ["full - HPM"], [])] == ["full", "full - HPM"]
    assert "base + HPM" not in [v.name for v in select(variants, [], ["HPM"])]


def small_config(tmp_path):
    raw = tiny_raw(
        training={"batch_size": 2, "grad_accumulation_steps": 1, "meta_learning_start_epoch": 1}, probe={"steps": 3}
    )
    raw["model"].update(
        {"use_hpm": False, "use_cross_attention_context": False, "use_solver_context": False, "bg_bias": -0.5}
    )
    raw["training"]["equivariance_training"] = {"enabled": False}
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.slow
def test_parallel_equals_serial_and_the_cache_makes_a_rerun_instant(tmp_path):
    path = small_config(tmp_path)
    serial = run_ablation(path, preset="tiny", seeds=[0, 1], only=["HyperLoRA"], cache_dir=tmp_path / "a")
    parallel = run_ablation(path, preset="tiny", seeds=[0, 1], only=["HyperLoRA"], jobs=2, cache_dir=tmp_path / "b")
    assert [v.name for v in serial.variants] == [
        "base",
        "base + HyperLoRA",
        "full",
        "full - HyperLoRA",
        "full, HyperLoRA from epoch 3",
        "full, HyperLoRA from epoch 3 + 2-epoch ramp",
    ]
    for a, b in zip(serial.variants, parallel.variants):
        assert [(s.label, s.onset_step, s.final, s.series) for s in a.seeds] == [
            (s.label, s.onset_step, s.final, s.series) for s in b.seeds
        ]
    again = run_ablation(path, preset="tiny", seeds=[0, 1], only=["HyperLoRA"], cache_dir=tmp_path / "a")
    assert all(s.cached for v in again.variants for s in v.seeds)
    assert [s.final for v in again.variants for s in v.seeds] == [s.final for v in serial.variants for s in v.seeds]
    data = serial.to_json()
    assert data["smallest_possible_p"] == pytest.approx(1 / 3)
    assert all(len(v["per_seed"]) == 2 for v in data["variants"])
    assert {c["reference"] for c in data["claims"]} == {"base", "full"}
    page = ablation_html(serial)
    assert page.count("<svg") == 7 and "full - HyperLoRA" in page  # the summary picture and one plot a variant
    assert page.index("fg_auc per seed") < page.index("<figure>")  # the answer's picture opens the page


def test_an_interrupted_sweep_resumes_from_the_cache(tmp_path):
    path = small_config(tmp_path)
    first = run_ablation(path, preset="tiny", seeds=[0], only=["base + HyperLoRA"], cache_dir=tmp_path / "c")
    assert not any(s.cached for v in first.variants for s in v.seeds)
    wider = run_ablation(path, preset="tiny", seeds=[0], only=["HyperLoRA"], cache_dir=tmp_path / "c")
    cached = {v.name: v.seeds[0].cached for v in wider.variants}
    assert cached["base"] and cached["base + HyperLoRA"] and not cached["full"]


def test_matching_background_bias_from_the_reference():
    assert matching_background_bias(0.534, 10, softmax=True) == pytest.approx(2.33, abs=0.01)
    assert matching_background_bias(0.534, 10, softmax=False) == pytest.approx(9.31, abs=0.01)


def test_noise_audit_measures_every_module_of_the_new_config():
    report = noise_audit(load_config(None), steps=2)
    modules = {m.module: m for m in report.modules}
    assert set(modules) == {"cross_attention", "solver_context", "hpm", "hyper_lora"}
    lora = modules["hyper_lora"]
    assert 5 < lora.relative_perturbation["init"] < 40  # the rescaled tiny preset keeps the ~13x gain of D 256
    assert set(lora.delta_fro_norm) == {"init", "trained"} and set(lora.gain["init"]) == {
        "gru_reset",
        "gru_update",
        "gru_candidate",
        "output_head",
    }
    assert all(m.relative_perturbation["trained"] is not None for m in report.modules)
    bias = report.background_bias
    assert bias["configured"] == -0.5 and bias["matching_bias"] > 9 and bias["bg_argmax_share"] < 0.1
    assert 0 < report.input_dependence["init"] <= 1 and report.input_dependence["trained"] is not None
    json.dumps(report.to_json())


def test_cli_noise_json_to_stdout():
    result = subprocess.run(
        [sys.executable, "-m", "collapse_doctor", "noise", str(default_config_path("old")), "--json", "-"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["modules"] == [] and data["background_bias"]["configured"] == 0.0


def test_a_cache_entry_of_the_wrong_shape_is_set_aside_and_reruns(tmp_path, capsys):
    from collapse_doctor.sweeps.cache import ProbeCache

    cache = ProbeCache(tmp_path)
    cache.path("k1").write_text('{"verdict": 42}')
    cache.path("k2").write_text("{not json")
    assert cache.get("k1") is None and cache.get("k2") is None
    assert (tmp_path / "k1.json.bad").exists() and (tmp_path / "k2.json.bad").exists()
    assert not cache.path("k1").exists()
    err = capsys.readouterr().err
    assert "k1.json: no field 'label'" in err and "runs again" in err
    good = {
        "label": "HEALTHY",
        "onset_step": None,
        "seed": 0,
        "final": {},
        "reasons": [],
        "seconds": 1.0,
        "key": "k3",
        "metrics": "",
        "series": [{"step": 0}],
        "events": [],
    }
    cache.put("k3", good)
    assert cache.get("k3") == good


def test_a_stage_that_switches_on_too_close_to_the_end_is_named():
    from collapse_doctor.sweeps.ablate import Variant, late_stages
    from collapse_doctor.sweeps.jobs import ProbeSummary

    def variant(name, group, on_step):
        series = [{"step": s} for s in range(230, 240)]
        events = [{"step": on_step, "event": "hyper_lora on"}]
        summary = ProbeSummary("INCONCLUSIVE", None, 0, {}, [], 1.0, "k", "m", series=series, events=events)
        return Variant(name, (), "full", group, "hyper_lora", seeds=[summary])

    late = late_stages([variant("staged late", "stage", 233), variant("full", "full", 230)], window=20)
    assert late == [("staged late", 7)]  # phase-2 steps 233-239 after the switch: fewer than 20
    assert late_stages([variant("staged early", "stage", 233)], window=5) == []


@pytest.mark.slow
def test_ctrl_c_stops_a_parallel_ablation_at_once_and_says_what_is_cached(tmp_path):
    """Issue 24, item 2: a real SIGINT to `ablate --jobs 2`: running probes are stopped, queued ones never
    start, and the message counts what finished (and is cached) against what was stopped."""
    import re
    import signal
    import time

    path = small_config(tmp_path)
    cache = tmp_path / "cache"
    child = subprocess.Popen(
        [sys.executable, "-m", "collapse_doctor", "ablate", str(path), "--regime", "quick", "--steps", "6"]
        + ["--seeds", "2", "--jobs", "2", "--cache-dir", str(cache)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as a terminal gives it
        start_new_session=True,  # Ctrl-C reaches the whole process group, workers included
    )
    deadline = time.time() + 240
    while time.time() < deadline and len(list(cache.glob("*.json"))) < 1 and child.poll() is None:
        time.sleep(0.2)
    os.killpg(child.pid, signal.SIGINT)
    _, stderr = child.communicate(timeout=120)
    finished = len(list(cache.glob("*.json")))
    started = len(list((cache / "metrics").glob("*.jsonl")))
    time.sleep(3)  # a probe that starts after the interrupt would write its metrics file now
    assert child.returncode == 130 and "Traceback" not in stderr, stderr[-3000:]
    assert len(list((cache / "metrics").glob("*.jsonl"))) == started
    counts = re.search(
        r"(\d+) probes? finished in this run .* (\d+) running (?:were|was) stopped and (\d+) never", stderr
    )
    assert counts, stderr[-2000:]
    assert int(counts.group(1)) == finished and started <= finished + 2
    assert int(counts.group(3)) > 0
