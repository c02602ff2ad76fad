"""Small measurements shared by tests and benchmarks."""

from __future__ import annotations

from typing import Callable

import torch


def saved_tensor_bytes(run: Callable[[], object]) -> int:
    """Bytes of the tensors autograd saves for backward while `run()` executes (a memory proxy on any device)."""
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run()
    return total
