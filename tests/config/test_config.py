"""Loading YAML into typed configs: key lists, errors reported all at once, overrides, the seed fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from collapse_doctor.config import (
    ConfigError,
    default_config_path,
    iter_fields,
    load_config,
    parse_config,
    parse_config_text,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["seed_new_main.yaml", "seed_old_2a50f2d.yaml"])
def test_seed_fixtures_load_and_match_the_embedded_copies(name):
    fixture = ROOT / "fixtures" / name
    loaded = load_config(fixture)
    assert loaded.config.model.hidden_dim == 256
    embedded = Path(default_config_path("new" if "new" in name else "old"))
    assert embedded.read_bytes() == fixture.read_bytes()


def test_new_config_resolves_as_the_seed_describes():
    cfg = load_config(default_config_path("new")).config
    m, t = cfg.model, cfg.training
    assert (m.use_hyperlora, m.use_hpm, m.use_solver_context, m.use_cross_attention_context) == (True,) * 4
    assert (m.max_clues, m.bg_bias, t.batch_size, t.grad_accumulation_steps) == (7, -0.5, 55, 6)
    assert t.gradient_checkpointing and not t.use_ema
    assert t.loo_training.enabled and t.equivariance_training.enabled and t.meta_learning_start_epoch == 3


def test_old_config_builds_no_optional_module_and_defaults_are_listed():
    loaded = load_config(default_config_path("old"))
    m = loaded.config.model
    assert not (m.use_hyperlora or m.use_hpm or m.use_solver_context or m.use_cross_attention_context)
    assert m.bg_bias == 0.0 and loaded.config.training.use_ema and m.max_clues == 6
    for key in (
        "model.use_hyperlora",
        "model.bg_bias",
        "training.gradient_checkpointing",
        "training.loo_training.enabled",
    ):
        assert key in loaded.defaulted_keys


def test_unknown_sections_are_listed_as_dotted_keys_not_refused():
    loaded = load_config(default_config_path("new"))
    assert "logging.log_every" in loaded.unknown_keys
    assert "hardware.seed" in loaded.unknown_keys
    assert "evaluation.num_guesses" in loaded.unknown_keys
    unsupported = {u.key: u.reason for u in loaded.unsupported_keys}
    assert "model.num_predicates" in unsupported and "SPH" in unsupported["model.num_predicates"]


def test_strict_refuses_unknown_keys():
    with pytest.raises(ConfigError) as info:
        parse_config({"model": {"hidden_dim": 64, "colour_magic": 3}}, source="s.yaml", strict=True)
    assert info.value.problems == ["s.yaml: model.colour_magic: unknown key (--strict)"]


def test_known_but_unbuilt_module_switched_on_is_unsupported():
    loaded = parse_config({"model": {"use_lcr": True, "use_sph": False}})
    keys = [u.key for u in loaded.unsupported_keys]
    assert "model.use_lcr" in keys and "model.use_sph" not in keys


def test_every_problem_is_reported_at_once_with_file_and_key():
    text = (
        "model:\n  hidden_dim: abc\n  max_clues: 0\ntraining:\n  loss_mode: softmaxx\n  loo_training:\n    "
        "start_epoch: -1\n  use_ema: 1\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, source="cfg.yaml")
    assert sorted(info.value.problems) == sorted(
        [
            "cfg.yaml: model.hidden_dim: expected int, got 'abc'",
            "cfg.yaml: model.max_clues: must be >= 1, got 0",
            "cfg.yaml: training.use_ema: expected bool, got 1",
            "cfg.yaml: training.loss_mode: expected one of 'stablemax', 'weighted_stablemax', 'focal_weighted', "
            "'focal_stablemax', 'focal', got 'softmaxx'",
            "cfg.yaml: training.loo_training.start_epoch: must be >= 0, got -1",
        ]
    )


@pytest.mark.parametrize(
    "model, message",
    [
        ({"hidden_dim": 100}, "model.hidden_dim: must be divisible by 8"),
        (
            {"hidden_dim": 40, "use_cross_attention_context": True, "dsc_num_heads": 3},
            "not divisible by model.dsc_num_heads=3",
        ),
        (
            {"use_context_encoder": False, "use_hyperlora": True},
            "model.use_hyperlora: needs model.use_context_encoder: true",
        ),
        ({"use_hpm": True, "hpm_top_k": 9}, "model.hpm_top_k: 9 is more than the 5 enabled banks"),
    ],
)
def test_impossible_combinations_name_the_key(model, message):
    with pytest.raises(ConfigError) as info:
        parse_config({"model": model}, source="c.yaml")
    assert any(message in p for p in info.value.problems), info.value.problems


def test_int_is_coerced_to_float_but_nothing_else():
    cfg = parse_config({"model": {"bg_bias": -1}}).config
    assert cfg.model.bg_bias == -1.0 and isinstance(cfg.model.bg_bias, float)
    with pytest.raises(ConfigError):
        parse_config({"model": {"bg_bias": "-1"}})
    with pytest.raises(ConfigError):
        parse_config({"model": {"hidden_dim": 64.0}})


def test_overrides_apply_and_are_named_as_overrides():
    loaded = load_config(default_config_path("old"), ["model.hidden_dim=64", "training.loo_training.enabled=true"])
    assert loaded.config.model.hidden_dim == 64 and loaded.config.training.loo_training.enabled
    assert "training.loo_training.enabled" not in loaded.defaulted_keys
    with pytest.raises(ConfigError) as info:
        load_config(default_config_path("old"), ["model.hidden_dim=big", "nonsense"])
    assert "--set model.hidden_dim: expected int, got 'big'" in info.value.problems
    assert any("expected KEY=VALUE" in p for p in info.value.problems)


def test_malformed_yaml_and_missing_file_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  hidden_dim: [\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert len(info.value.problems) == 1 and info.value.problems[0].startswith(f"{bad}: malformed YAML at line")
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(scalar)
    section = tmp_path / "section.yaml"
    section.write_text("model: 3\n")
    with pytest.raises(ConfigError, match="model: expected a mapping of keys"):
        load_config(section)


def test_every_field_is_documented_with_reference_and_source():
    for dotted, field, _ in iter_fields():
        meta = field.metadata
        assert meta.get("doc") and meta.get("ref") and meta.get("source"), dotted


def test_yaml_12_floats_such_as_5e_minus_4_are_numbers():
    from collapse_doctor.config import parse_config_text

    loaded = parse_config_text(
        "training:\n  learning_rate: 5e-4\n", source="c.yaml", overrides=["training.gradient_clip=1e1"]
    )
    assert loaded.config.training.learning_rate == 5e-4 and loaded.config.training.gradient_clip == 10.0
    with pytest.raises(ConfigError):
        parse_config_text('training:\n  learning_rate: "5e-4"\n', source="c.yaml")  # a quoted string stays a string


def test_a_yaml_alias_bomb_is_refused_with_one_line(tmp_path):
    from collapse_doctor.config import load_config

    levels = ['a: &a ["x","x","x","x","x","x","x","x","x"]'] + [
        f"{n}: &{n} [{','.join(['*' + p] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi")
    ]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(levels) + "\n")
    with pytest.raises(ConfigError, match="alias bomb"):
        load_config(path)


def test_set_of_an_unknown_key_is_an_error_with_a_suggestion_and_a_duplicate_key_is_refused(tmp_path):
    from collapse_doctor.config import load_config

    with pytest.raises(ConfigError, match="did you mean model.hidden_dim"):
        load_config(None, ["model.hiden_dim=64"])
    loaded = load_config(None, ["training.scheduler=cosine"])  # known to the reference, not acted on: listed
    assert "training.scheduler" in [u.key for u in loaded.unsupported_keys]
    path = tmp_path / "dup.yaml"
    path.write_text("model:\n  hidden_dim: 64\n  dropout: 0.1\n  hidden_dim: 128\n")
    with pytest.raises(ConfigError, match="appears twice, at lines 2 and 4"):
        load_config(path)


def test_replace_keys_rebuilds_each_section_once_and_refuses_a_key_replaced_whole_and_in_part():
    import dataclasses

    from collapse_doctor.config import Config, get_key, replace_key, replace_keys

    config = Config()
    changes = {"training.batch_size": 4, "model.hidden_dim": 64, "training.learning_rate": 1e-3}
    one_go = replace_keys(config, changes)
    step_by_step = config
    for dotted, value in changes.items():
        step_by_step = replace_key(step_by_step, dotted, value)
    assert one_go == step_by_step and all(get_key(one_go, k) == v for k, v in changes.items())
    assert one_go.data is config.data and config.training.batch_size != 4  # untouched sections shared; a copy
    with pytest.raises(ValueError, match="training"):
        replace_keys(config, {"training": dataclasses.replace(config.training), "training.batch_size": 4})
