"""EMA keeps shadow weights for evaluation only (reference 2.6 and seed claim 'EMA disabled')."""

import torch
from conftest import tiny_config

from collapse_doctor.model import build_model
from collapse_doctor.train.ema import EMA


def test_ema_never_touches_the_training_weights_and_lags_them():
    config = tiny_config(["training.use_ema=true", "training.ema_decay=0.5"])
    torch.manual_seed(0)
    model = build_model(config)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    ema = EMA.from_config(model, config.training)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(2.0)
    trained = {n: p.detach().clone() for n, p in model.named_parameters()}
    ema.update(model)
    twin = ema.evaluation_copy(model)
    for name, p in model.named_parameters():
        assert torch.equal(p, trained[name])  # training weights untouched by update and copy
    for name, p in twin.named_parameters():
        torch.testing.assert_close(p, 0.5 * start[name] + 0.5 * trained[name])


def test_ema_off_builds_nothing():
    config = tiny_config()
    assert EMA.from_config(build_model(config), config.training) is None
