"""Parameter counts at hidden_dim 256 equal the reference's figures (docs/rlan-reference.md 1.2-1.13).

Deliberate differences are listed in docs/model.md: the 2a50f2d DSC's dead attn_proj (33,025) and the
unused structure/content projectors (264,192) are not built.
"""

from __future__ import annotations

import pytest
import torch

from collapse_doctor.config import default_config_path, load_config, parse_config
from collapse_doctor.model import build_model


@pytest.fixture(scope="module")
def new_model():
    torch.manual_seed(0)
    return build_model(load_config(default_config_path("new")).config)


def test_yaml_intended_be4fd25_column(new_model):
    table = new_model.parameter_table()
    assert table == {
        "encoder": 67_712,
        "feature_proj": 66_304,
        "context_encoder": 3_940_224,
        "context_injector": 789_760,
        "hpm": 748_817,
        "dsc": 628_097,
        "msre": 109_152,
        "hyper_lora": 5_000_448,
        "solver": 7_383_818,
        "total": 18_734_332,
    }


def test_submodule_counts(new_model):
    def count(module):
        return sum(p.numel() for p in module.parameters())

    assert count(new_model.context_encoder.pair_encoder) == 3_333_248
    assert count(new_model.context_encoder.downsampler) == 590_592 + 16_384
    assert count(new_model.solver.gru) == 6_391_040
    assert count(new_model.solver.gru.candidate) == 2_654_208
    assert count(new_model.solver.solver_context) == 330_496
    assert count(new_model.solver.output_head) == 593_162
    assert count(new_model.hyper_lora.context_fuse) == 263_424
    assert count(new_model.hyper_lora.predictors["gru_reset"]) == 1_184_256
    assert count(new_model.hpm.router) == 67_078
    assert count(new_model.hpm.static_banks["pattern"]) == 73_731


def test_as_executed_be4fd25_column():
    """What train_rlan.py built from the be4fd25 YAML: FiLM, no downsampler, no HPM (reference 1.1)."""
    overrides = ["model.use_cross_attention_context=false", "model.spatial_downsample=1", "model.use_hpm=false"]
    torch.manual_seed(0)
    table = build_model(load_config(default_config_path("new"), overrides).config).parameter_table()
    assert table["context_encoder"] == 3_333_248
    assert table["context_injector"] == 131_584
    assert table["total"] == 16_720_363


def test_2a50f2d_column_less_the_dead_attn_proj():
    torch.manual_seed(0)
    table = build_model(load_config(default_config_path("old")).config).parameter_table()
    assert table["context_encoder"] == 4_189_056  # vector path
    assert table["context_injector"] == 131_584
    assert table["dsc"] == 660_866 - 33_025
    assert table["solver"] == 7_053_322
    assert table["total"] == 12_277_996 - 33_025


def test_hpm_without_cross_attention_aggregator_drops_it():
    cfg = parse_config({"model": {"hidden_dim": 256, "use_hpm": True, "hpm_use_cross_attention": False}}).config
    assert build_model(cfg).parameter_table()["hpm"] == 748_817 - 263_681
