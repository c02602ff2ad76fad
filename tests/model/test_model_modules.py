"""Every module, when active, changes the output and receives gradient; the forward returns every step."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import tiny_config

from collapse_doctor.model import build_model
from collapse_doctor.model.rlan import TOP_LEVEL_MODULES


def built_with_memory(config=None):
    torch.manual_seed(0)
    model = build_model(config or tiny_config())
    # Fill the dynamic banks so that their query projections take part (empty banks return zeros).
    for bank in model.hpm.dynamic_banks.values():
        bank.store(torch.randn(12, 32), torch.randn(12, 32))
    return model


def test_forward_returns_final_and_every_step_logits(batch):
    model = built_with_memory().eval()
    out = model(*batch)
    assert out.logits.shape == (2, 10, 10, 10)
    assert len(out.all_logits) == 2 and out.all_logits[-1] is out.logits
    assert out.gate_saturation.shape == (2, 2)
    assert set(out.lora_deltas) == {"gru_reset", "gru_update", "gru_candidate", "output_head"}


def test_gradient_reaches_every_parameter_of_every_module(batch):
    model = built_with_memory().train()
    torch.manual_seed(1)
    out = model(*batch)
    (out.logits.square().mean() + out.hpm_balance_loss).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert missing == []
    for name in TOP_LEVEL_MODULES:
        grads = [p.grad.abs().sum() for p in getattr(model, name).parameters()]
        assert torch.stack(grads).sum() > 0, f"{name} receives only zero gradient"


@pytest.mark.parametrize(
    "remove",
    [
        pytest.param(lambda m: setattr(m, "hyper_lora", None), id="hyper_lora"),
        pytest.param(lambda m: setattr(m.solver, "solver_context", None), id="solver_context"),
        pytest.param(lambda m: setattr(m, "context_injector", None), id="context_injector"),
        pytest.param(lambda m: setattr(m, "hpm", None), id="hpm"),
        pytest.param(lambda m: setattr(m, "dsc", None), id="dsc"),
        pytest.param(lambda m: setattr(m, "msre", None), id="msre"),
    ],
)
def test_output_depends_on_each_module(batch, remove):
    model = built_with_memory().eval()
    without = copy.deepcopy(model)
    remove(without)
    with torch.no_grad():
        assert not torch.equal(model(*batch).logits, without(*batch).logits)


def test_core_modules_switch_off_by_config(batch):
    cfg = tiny_config(
        [
            "model.use_dsc=false",
            "model.use_cross_attention_context=false",
            "model.use_solver_context=false",
            "model.use_hyperlora=false",
            "model.use_hpm=false",
        ]
    )
    model = build_model(cfg).eval()
    assert model.dsc is None and model.msre is None  # MSRE needs DSC centroids
    out = model(*batch)
    assert torch.equal(out.clues.stop_logits, torch.zeros_like(out.clues.stop_logits))
    no_context = build_model(
        tiny_config(
            [
                "model.use_context_encoder=false",
                "model.use_cross_attention_context=false",
                "model.use_solver_context=false",
                "model.use_hyperlora=false",
                "model.use_hpm=false",
            ]
        )
    )
    assert no_context.context_encoder is None and no_context.context_injector is None
    assert no_context(*batch).logits.shape == (2, 10, 10, 10)


def test_bias_initialisation_reaches_the_output_head():
    model = build_model(tiny_config(["model.bg_bias=-0.5", "model.fg_bias=0.25"]))
    bias = model.solver.output_head.net[3].bias
    assert bias[0].item() == -0.5 and torch.allclose(bias[1:], torch.full((9,), 0.25))


def test_hyperlora_init_gain_grows_with_init_scale():
    """Reference 1.10: at D=256, init 0.1 gives ||dW||_F about 216; init 0.01 about 2.2."""
    from collapse_doctor.config import parse_config

    norms = {}
    for init in (0.1, 0.01):
        torch.manual_seed(0)
        cfg = parse_config({"model": {"hidden_dim": 256, "use_hyperlora": True, "hyperlora_init_scale": init}}).config
        lora = build_model(cfg).hyper_lora.eval()
        context = torch.randn(8, 256)
        a, b = lora.predictors["gru_reset"](context)
        norms[init] = torch.linalg.matrix_norm(torch.bmm(a, b)).mean().item()
    assert 150 < norms[0.1] < 300
    assert 1.5 < norms[0.01] < 3.0


@pytest.mark.parametrize(("training", "p"), [(True, 0.0), (False, 0.1)])
def test_attend_is_bit_identical_to_multihead_attention_without_dropout(training, p):
    """Without dropout drawn (p 0, or eval) the model's attention path reproduces nn.MultiheadAttention
    exactly: outputs and gradients."""
    from torch import nn

    from collapse_doctor.model.attention import attend

    torch.manual_seed(0)
    mha = nn.MultiheadAttention(32, 4, dropout=p, batch_first=True).train(training)
    query = torch.randn(6, 100, 32, requires_grad=True)
    key_value = torch.randn(6, 192, 32, requires_grad=True)
    results = []
    for forward in (
        lambda: mha(query, key_value, key_value, need_weights=False)[0],
        lambda: attend(mha, query, key_value),
    ):
        query.grad = key_value.grad = None
        mha.zero_grad()
        torch.manual_seed(1)
        out = forward()
        (out.square().sum() + out[:, :3].sum()).backward()
        results.append([out.detach(), query.grad, key_value.grad, *(p.grad for p in mha.parameters())])
    assert all(torch.equal(a, b) for a, b in zip(*results))
    assert not torch.equal(results[0][0], torch.zeros_like(results[0][0]))


def test_attend_in_training_draws_its_dropout_masks_from_the_seed():
    from torch import nn

    from collapse_doctor.model.attention import attend

    torch.manual_seed(0)
    mha = nn.MultiheadAttention(32, 4, dropout=0.1, batch_first=True).train()
    query, key_value = torch.randn(6, 100, 32), torch.randn(6, 192, 32)

    def run(seed):
        torch.manual_seed(seed)
        return attend(mha, query, key_value)

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))
    assert not torch.equal(run(1), attend(mha.eval(), query, key_value))


def test_dropout_drops_p_of_the_elements_in_every_lane_and_keeps_the_expectation():
    from collapse_doctor.model.dropout import LANES, dropout, keep_threshold

    x = torch.ones(1_000_003, requires_grad=True)  # not a multiple of 4: the last word is cut
    torch.manual_seed(0)
    out = dropout(x, 0.1)
    kept = out.detach() != 0
    scale = LANES / keep_threshold(0.1)
    assert torch.allclose(out.detach()[kept], torch.full((int(kept.sum()),), scale))
    for lane in range(4):  # every 16-bit lane of a word, the top one included, drops at rate p
        assert abs(1 - kept[lane::4].float().mean().item() - 0.1) < 0.003
    assert abs(out.detach().mean().item() - 1.0) < 0.003
    out.sum().backward()
    assert torch.equal(x.grad, out.detach())  # the gradient is the mask times the scale
    assert abs(keep_threshold(0.1) / LANES - 0.9) < 1 / LANES


def test_dropout_is_seeded_and_off_where_it_should_be():
    from collapse_doctor.model.dropout import Dropout, dropout

    x = torch.randn(64, 33)
    torch.manual_seed(3)
    first = dropout(x, 0.5)
    torch.manual_seed(3)
    assert torch.equal(first, dropout(x, 0.5))
    assert not torch.equal(first, dropout(x, 0.5))
    assert dropout(x, 0.0) is x and dropout(x, 0.5, training=False) is x
    assert torch.equal(dropout(x, 0.99999), torch.zeros_like(x))
    module = Dropout(0.5)
    assert module.eval()(x) is x and not torch.equal(module.train()(x), x)
