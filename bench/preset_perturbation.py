"""Initial relative perturbation of each optional module at the config's size and at each preset.

    python bench/preset_perturbation.py [CONFIG]

Shows whether a preset keeps the effect under test (docs/probe.md): HyperLoRA's gain ||dW||_F / sqrt(D)
per target, and ||f(x) - x|| / ||x|| for the CrossAttentionInjector, SolverCrossAttention (on a
unit-normal hidden state) and HPM's memory vector against the pooled features, on real ARC batches.
"""

from __future__ import annotations

import sys

import torch

from collapse_doctor.config import load_config
from collapse_doctor.data.arc import load_tasks, usable_tasks
from collapse_doctor.data.stream import SampleStream
from collapse_doctor.experiments.presets import PRESETS, apply_preset
from collapse_doctor.model import build_model


@torch.no_grad()
def perturbations(config, tasks) -> dict[str, str]:
    torch.manual_seed(0)
    model = build_model(config).eval()
    batch = SampleStream(usable_tasks(tasks, config.data, config.model.max_grid_size), config, 0).batch(0, 4)
    context = model.encode_context(batch.support_inputs, batch.support_outputs, batch.pair_mask)
    features = model.feature_proj(model.encoder(batch.query_input))
    out = {}
    if model.hyper_lora is not None:
        deltas = model.hyper_lora(context.support_features)
        gains = [float(d.flatten(1).norm(dim=1).mean()) / config.model.hidden_dim**0.5 for d in deltas.values()]
        out["HyperLoRA gain"] = f"{min(gains):.1f}-{max(gains):.1f}"
    if model.context_injector is not None and config.model.use_cross_attention_context:
        injected = model.context_injector(features, context)
        out["CrossAttentionInjector"] = f"{float((injected - features).norm() / features.norm()):.2f}"
    if model.solver.solver_context is not None:
        h = torch.randn_like(features)
        out["SolverCrossAttention"] = (
            f"{float((model.solver.solver_context(h, context.support_features) - h).norm() / h.norm()):.2f}"
        )
    if model.hpm is not None:
        z, _ = model.hpm(context.pooled())
        out["HPM"] = f"{float(z.norm() / features.mean(dim=(2, 3)).norm()):.2f}"
    return out


def main() -> None:
    loaded = load_config(sys.argv[1] if len(sys.argv) > 1 else None)
    tasks = load_tasks()
    columns = {"config size": perturbations(loaded.config, tasks)}
    for name in ("tiny", "small"):
        columns[name] = perturbations(apply_preset(loaded, PRESETS[name])[0], tasks)
    print(f"{'module':24}" + "".join(f"{c:>14}" for c in columns))
    for module in columns["config size"]:
        print(f"{module:24}" + "".join(f"{columns[c].get(module, '-'):>14}" for c in columns))


if __name__ == "__main__":
    main()
