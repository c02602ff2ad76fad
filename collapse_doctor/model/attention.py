"""Multi-head attention on an nn.MultiheadAttention's own parameters, for training on CPU.

`attend(mha, query, key_value)` computes what `mha(query, key_value, key_value, need_weights=False)`
computes (batch_first, no masks) with the same operations in the same order, so without dropout the
outputs and the gradients are bit-identical (a test compares); with dropout the attention weights take
`model.dropout.dropout`'s cheaper masks instead of `F.dropout`'s (issue 22, item 5). It skips what the
fused path adds around the math: PyTorch's CPU scaled-dot-product attention with dropout runs its math
fallback through `_safe_softmax`, whose all-masked-row check (`isneginf`, `all`, `where` over every
attention weight) costs as much as the softmax itself, although without a mask no row can be all masked.
The module, its parameter names and its state dict stay those of nn.MultiheadAttention.
bench/throughput.py measures the gain.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from collapse_doctor.model.dropout import dropout


def attend(mha: nn.MultiheadAttention, query: torch.Tensor, key_value: torch.Tensor) -> torch.Tensor:
    """query (B, L, D), key_value (B, S, D) -> (B, L, D), as nn.MultiheadAttention with batch_first."""
    if not (mha.training and mha.dropout > 0.0):
        return mha(query, key_value, key_value, need_weights=False)[
            0
        ]  # without dropout PyTorch's fused kernel is the fast one
    q, kv = query.transpose(0, 1), key_value.transpose(0, 1)  # (L, B, D), (S, B, D), as MHA works
    length, batch, d = q.shape
    heads = mha.num_heads
    head_dim = d // heads
    w_q, w_kv = mha.in_proj_weight.split([d, 2 * d])
    b_q, b_kv = mha.in_proj_bias.split([d, 2 * d])
    q = F.linear(q, w_q, b_q)
    k, v = F.linear(kv, w_kv, b_kv).unflatten(-1, (2, d)).unsqueeze(0).transpose(0, -2).squeeze(-2).contiguous()
    source = k.shape[0]
    q = q.view(length, batch * heads, head_dim).transpose(0, 1).view(batch, heads, length, head_dim)
    k = k.view(source, batch * heads, head_dim).transpose(0, 1).view(batch, heads, source, head_dim)
    v = v.view(source, batch * heads, head_dim).transpose(0, 1).view(batch, heads, source, head_dim)
    scale = math.sqrt(1.0 / math.sqrt(head_dim))  # applied to q and k each, as the math kernel does
    weights = torch.softmax(torch.matmul(q * scale, k.transpose(-2, -1) * scale), dim=-1)
    weights = dropout(weights, mha.dropout, True)
    out = torch.matmul(weights, v).permute(2, 0, 1, 3).contiguous().view(batch * length, d)
    out = F.linear(out, mha.out_proj.weight, mha.out_proj.bias)
    return out.view(length, batch, d).transpose(0, 1)
