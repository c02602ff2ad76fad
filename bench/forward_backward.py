"""Forward+backward time of the bundled model at a few sizes, and what gradient checkpointing saves.

Prints a table; asserts nothing. Run: python bench/forward_backward.py
"""

from __future__ import annotations

import time

import torch

from collapse_doctor.config import default_config_path, load_config
from collapse_doctor.experiments.measure import saved_tensor_bytes
from collapse_doctor.model import build_model


def batch(b: int, n: int, canvas: int, size: int):
    g = torch.Generator().manual_seed(0)

    def grids(*shape):
        x = torch.full((*shape, canvas, canvas), 10, dtype=torch.long)
        x[..., :size, :size] = torch.randint(0, 10, (*shape, size, size), generator=g)
        return x

    return grids(b), grids(b, n), grids(b, n), torch.ones(b, n, dtype=torch.bool)


def main() -> None:
    torch.set_num_threads(2)
    sizes = [("tiny", 32, 10, 8, 4), ("small", 64, 16, 12, 4)]
    print(
        f"{'size':<6} {'D':>4} {'canvas':>6} {'batch':>5} {'params':>10} {'fwd+bwd s':>10} {'saved MB plain':>15} "
        f"{'saved MB ckpt':>14} {'ckpt/plain':>10}"
    )
    for name, d, canvas, grid, b in sizes:
        overrides = [
            f"model.hidden_dim={d}",
            f"model.max_grid_size={canvas}",
            "data.max_grid_size=null",
            "model.spatial_downsample=4",
        ]
        inputs = batch(b, 3, canvas, grid)
        results = {}
        for ckpt in (False, True):
            cfg = load_config(
                default_config_path("new"), overrides + [f"training.gradient_checkpointing={str(ckpt).lower()}"]
            ).config
            torch.manual_seed(0)
            model = build_model(cfg).train()
            model(*inputs).logits.mean().backward()  # warm-up
            start = time.perf_counter()
            for _ in range(3):
                model.zero_grad(set_to_none=True)
                model(*inputs).logits.mean().backward()
            elapsed = (time.perf_counter() - start) / 3
            results[ckpt] = (elapsed, saved_tensor_bytes(lambda: model(*inputs)), model.parameter_table()["total"])
        plain, ckpt = results[False], results[True]
        print(
            f"{name:<6} {d:>4} {canvas:>6} {b:>5} {plain[2]:>10,} {plain[0]:>10.3f} {plain[1] / 2**20:>15.1f} "
            f"{ckpt[1] / 2**20:>14.1f} {ckpt[1] / plain[1]:>10.2f}"
        )


if __name__ == "__main__":
    main()
