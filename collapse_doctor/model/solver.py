"""RecursiveSolver: clue aggregation, then T ConvGRU steps with optional SolverCrossAttention and LoRA.

Follows docs/rlan-reference.md 1.11 and 2.8 (gradient checkpointing with the reference's call shape:
h None at step 0, support None when absent, the LoRA deltas as a dict). Count (LCR) and predicate (SPH)
injections are not built (both off in the reference configs). Each step also returns the share of
GRU gate pre-activations beyond |4.6| (sigmoid below 0.01 or above 0.99), over the whole canvas.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from collapse_doctor.config import ModelConfig
from collapse_doctor.encoding import PAD
from collapse_doctor.model.attention import attend
from collapse_doctor.model.dropout import Dropout
from collapse_doctor.model.hyper_lora import apply_lora

GATE_SATURATION = 4.6  # |x| beyond which sigmoid(x) < 0.01 or > 0.99


def soft_clamp_hidden(h: torch.Tensor) -> torch.Tensor:
    """Identity for |h| <= 8, tanh-compressed towards +-10 beyond."""
    excess = h.abs() - 8.0
    return torch.where(excess > 0, torch.sign(h) * (8.0 + 2.0 * torch.tanh(excess.clamp(min=0) / 2.0)), h)


def soft_clamp_logits(z: torch.Tensor) -> torch.Tensor:
    """Identity for |z| <= 1000, tanh-compressed towards +-2000 beyond."""
    excess = z.abs() - 1000.0
    return torch.where(excess > 0, torch.sign(z) * (1000.0 + 1000.0 * torch.tanh(excess.clamp(min=0) / 1000.0)), z)


class ClueAggregator(nn.Module):
    """Sum of clue features weighted by attention and by 1 - sigmoid(stop), normalised by the clue usage."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.hidden_dim
        self.proj = nn.Sequential(nn.Conv2d(d, d, 1), nn.GELU(), nn.GroupNorm(8, d))

    def forward(self, clue_features: torch.Tensor, attention: torch.Tensor, stop_logits: torch.Tensor) -> torch.Tensor:
        usage = 1 - torch.sigmoid(stop_logits)  # (B, K)
        weighted = clue_features * (attention * usage[:, :, None, None])[:, :, None]  # (B, K, D, H, W)
        aggregated = weighted.sum(1) / (usage.sum(1).detach()[:, None, None, None] + 1e-6)  # (B, D, H, W)
        return self.proj(aggregated)


class SwiGLUConv(nn.Module):
    """Conv3x3 D -> 2*I split into gate/up, SiLU(gate) * up, Conv3x3 I -> D; no biases, trunc-normal 0.02."""

    def __init__(self, d: int):
        super().__init__()
        inner = d * 3 // 2  # 384 at D = 256
        self.gate_up = nn.Conv2d(d, 2 * inner, 3, padding=1, bias=False)
        self.down = nn.Conv2d(inner, d, 3, padding=1, bias=False)
        for conv in (self.gate_up, self.down):
            nn.init.trunc_normal_(conv.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=1)
        return self.down(nn.functional.silu(gate) * up)


class ConvGRUCell(nn.Module):
    """One ConvGRU update of h (B, D, H, W) from x (B, 2D, H, W), with LoRA on the gate and candidate paths."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.hidden_dim
        c_in = 2 * d + d
        self.reset_conv = nn.Conv2d(c_in, d, 3, padding=1)
        self.update_conv = nn.Conv2d(c_in, d, 3, padding=1)
        self.candidate_proj = nn.Conv2d(c_in, d, 1)
        self.candidate = SwiGLUConv(d)
        self.norm = nn.GroupNorm(8, d)

    def forward(
        self, x: torch.Tensor, h: torch.Tensor | None, lora: dict[str, torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if h is None:
            h = x.new_zeros(x.shape[0], self.norm.num_channels, *x.shape[2:])
        lora = lora or {}
        xh = torch.cat([x, h], dim=1)  # (B, 3D, H, W)
        reset_pre = apply_lora(self.reset_conv(xh), lora.get("gru_reset"))
        update_pre = apply_lora(self.update_conv(xh), lora.get("gru_update"))
        r, z = torch.sigmoid(reset_pre), torch.sigmoid(update_pre)
        p = apply_lora(self.candidate_proj(torch.cat([x, r * h], dim=1)), lora.get("gru_candidate"))
        candidate = torch.tanh(self.candidate(p))
        h_new = self.norm(soft_clamp_hidden((1 - z) * h + z * candidate))  # (B, D, H, W)
        with torch.no_grad():
            saturation = torch.stack(
                [
                    (reset_pre.abs() > GATE_SATURATION).float().mean(),
                    (update_pre.abs() > GATE_SATURATION).float().mean(),
                ]
            )
        return h_new, saturation


class SolverCrossAttention(nn.Module):
    """The hidden state attends to support tokens pooled to 8x8 per pair; a gate from the un-normed h scales it."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.hidden_dim
        self.pool = nn.AdaptiveAvgPool2d(8)
        self.query_norm = nn.LayerNorm(d)
        self.kv_norm = nn.LayerNorm(d)
        self.attention = nn.MultiheadAttention(d, cfg.solver_context_heads, dropout=cfg.dropout, batch_first=True)
        self.gate = nn.Linear(d, d)
        self.out_norm = nn.LayerNorm(d)
        self.dropout = Dropout(cfg.dropout)

    def forward(self, h: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
        b, d, hh, ww = h.shape
        n = support.shape[1]
        pooled = self.pool(support.flatten(0, 1))  # (B*N, D, 8, 8)
        tokens = self.kv_norm(pooled.reshape(b, n, d, -1).permute(0, 1, 3, 2).reshape(b, -1, d))  # (B, N*64, D)
        x = h.flatten(2).transpose(1, 2)  # (B, H*W, D)
        attended = attend(self.attention, self.query_norm(x), tokens)
        x = self.out_norm(x + torch.sigmoid(self.gate(x)) * self.dropout(attended))
        return x.transpose(1, 2).reshape(b, d, hh, ww)


class OutputHead(nn.Module):
    """Conv3x3, GELU, GroupNorm, Conv1x1 -> C classes; class-0 bias bg_bias, the others fg_bias."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.hidden_dim
        self.net = nn.Sequential(
            nn.Conv2d(d, d, 3, padding=1), nn.GELU(), nn.GroupNorm(8, d), nn.Conv2d(d, cfg.num_classes, 1)
        )
        with torch.no_grad():
            bias = self.net[3].bias
            bias.fill_(cfg.fg_bias)
            bias[0] = cfg.bg_bias

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class RecursiveSolver(nn.Module):
    def __init__(
        self, cfg: ModelConfig, *, gradient_checkpointing: bool = False, checkpoint_use_reentrant: bool = False
    ):
        super().__init__()
        d = cfg.hidden_dim
        self.num_steps = cfg.num_solver_steps
        self.aggregator = ClueAggregator(cfg)
        self.input_embed = nn.Embedding(cfg.num_colors + 1, d)
        self.input_dropout = Dropout(cfg.dropout)
        self.gru = ConvGRUCell(cfg)
        self.solver_context = SolverCrossAttention(cfg) if cfg.use_solver_context else None
        self.output_head = OutputHead(cfg)
        self.gradient_checkpointing = gradient_checkpointing
        self.checkpoint_use_reentrant = checkpoint_use_reentrant
        self.checkpoint_preserve_rng_state = (
            True  # the reference's call uses the default; grad-check turns it off to show the hazard
        )

    def _solver_step(
        self,
        combined: torch.Tensor,
        h: torch.Tensor | None,
        support_features: torch.Tensor | None,
        lora_deltas: dict | None,
        context_scale: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """ConvGRU step (with LoRA), then SolverCrossAttention when support features are passed."""
        h_new, saturation = self.gru(combined, h, lora_deltas)
        if self.solver_context is not None and support_features is not None:
            attended = self.solver_context(h_new, support_features)
            h_new = attended if context_scale == 1.0 else h_new + context_scale * (attended - h_new)
        return h_new, saturation

    def forward(
        self,
        clue_features: torch.Tensor,
        attention: torch.Tensor,
        stop_logits: torch.Tensor,
        query_grid: torch.Tensor,
        support_features: torch.Tensor | None = None,
        lora_deltas: dict[str, torch.Tensor] | None = None,
        context_scale: float = 1.0,
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Returns every step's logits (B, C, H, W) and the gate saturation per step (T, 2: reset, update)."""
        aggregated = self.aggregator(clue_features, attention, stop_logits)  # (B, D, H, W)
        embedded = self.input_embed(query_grid.clamp(0, PAD)).permute(0, 3, 1, 2)  # (B, D, H, W)
        step_deltas = None if lora_deltas is None else {k: v for k, v in lora_deltas.items() if k != "output_head"}
        h, h0 = None, None
        all_logits, saturation = [], []
        for t in range(self.num_steps):
            combined = self.input_dropout(torch.cat([aggregated, embedded], dim=1))  # (B, 2D, H, W)
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                h, sat = checkpoint(
                    self._solver_step,
                    combined,
                    h,
                    support_features,
                    step_deltas,
                    context_scale,
                    use_reentrant=self.checkpoint_use_reentrant,
                    preserve_rng_state=self.checkpoint_preserve_rng_state,
                )
            else:
                h, sat = self._solver_step(combined, h, support_features, step_deltas, context_scale)
            if t == 0:
                h0 = h.clone()
            else:
                h = 0.7 * h + 0.3 * h0  # residual to step 0
            h_out = apply_lora(h, None if lora_deltas is None else lora_deltas.get("output_head"))
            all_logits.append(soft_clamp_logits(self.output_head(h_out)))  # (B, C, H, W)
            saturation.append(sat)
        return all_logits, torch.stack(saturation)
