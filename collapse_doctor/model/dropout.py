"""Dropout with cheaper mask draws on CPU (issue 22, item 5).

`F.dropout` on CPU draws one Bernoulli variate per element (`bernoulli_`, a float per draw), and on NEW
those draws were the largest single cost of a probe (docs/speed.md). Here one 64-bit random word,
uniform over all 2^64 values, gives four 16-bit lanes, each uniform over its 65536 values, and an
element is kept when its lane is among the lowest round((1 - p) * 65536). Kept elements are scaled by
65536 / that count, so the expectation is preserved exactly as in `F.dropout`; the drop probability is p
rounded to the nearest 1/65536. The mask is one float tensor, kept for the backward pass, which is then
one product. The masks differ from `F.dropout`'s (other draws from the same generator), so results
differ from code before this change: the cache format and the code fingerprint change with it.

The masks come from the global generator, so a seed fixes them, and `torch.utils.checkpoint` with
`preserve_rng_state` replays them. Under `torch.func.vmap` (the seed batch) an in-place draw on an
unbatched tensor cannot differ per seed, so a batched input takes `F.dropout`, as before.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LANES = 1 << 16  # the values a 16-bit lane takes


def keep_threshold(p: float) -> int:
    """How many of a lane's 65536 values keep an element: (1 - p) of them, rounded."""
    return round((1.0 - p) * LANES)


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """What F.dropout(x, p, training) does, with masks drawn four to a random word."""
    if not training or p == 0.0:
        return x
    threshold = keep_threshold(p)
    if threshold == 0:
        return x * 0.0
    if torch._C._functorch.is_batchedtensor(x) or x.device.type != "cpu":
        return F.dropout(x, p, True)  # vmap cannot draw per seed in place; other devices draw fast already
    n = x.numel()
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(1 << 63), (1 << 63) - 1)
    lanes = words.view(torch.int16)[:n].view(x.shape)
    mask = (lanes < threshold - LANES // 2).to(x.dtype).mul_(LANES / threshold)  # int16 runs from -32768
    return x * mask


class Dropout(nn.Dropout):
    """nn.Dropout drawing its masks with `dropout` above; same constructor, repr and (empty) state dict."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)
