"""RLAN: the whole model, built from the whole ModelConfig; forward follows reference 1.0 steps 1-9.

A switch decides construction once (absent means None). Staging comes in as a `Stage` argument: a
module that is built but not yet live is skipped, so the output equals that of the model without it.
The reference's structure/content projectors are not built (no loss reads them, section 1.12).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from collapse_doctor.config import Config, ModelConfig
from collapse_doctor.config.schedule import FULL_STAGE, Stage
from collapse_doctor.model.context_encoder import Context, ContextEncoder
from collapse_doctor.model.dsc import Clues, DynamicSaliencyController, anchor_clues
from collapse_doctor.model.grid_encoder import FeatureProjection, GridEncoder, grid_sizes, valid_mask
from collapse_doctor.model.hyper_lora import HyperLoRA
from collapse_doctor.model.injection import CrossAttentionInjector, FiLMInjector
from collapse_doctor.model.memory import HPM
from collapse_doctor.model.msre import MultiScaleRelativeEncoding
from collapse_doctor.model.solver import RecursiveSolver

TOP_LEVEL_MODULES = (
    "encoder",
    "feature_proj",
    "context_encoder",
    "context_injector",
    "hpm",
    "dsc",
    "msre",
    "hyper_lora",
    "solver",
)


@dataclass
class RLANOutput:
    logits: torch.Tensor  # (B, C, H, W): the last solver step
    all_logits: list[torch.Tensor]  # T x (B, C, H, W)
    clues: Clues
    lora_deltas: dict[str, torch.Tensor] | None  # target -> (B, D, D)
    gate_saturation: torch.Tensor  # (T, 2): share of |pre-activation| > 4.6 for the reset and update gates
    hpm_balance_loss: torch.Tensor | None
    context: Context  # what the ContextEncoder produced (the equivariance loss re-pools it)


class RLAN(nn.Module):
    def __init__(
        self, cfg: ModelConfig, *, gradient_checkpointing: bool = False, checkpoint_use_reentrant: bool = False
    ):
        super().__init__()
        self.cfg = cfg
        self.encoder = GridEncoder(cfg)
        self.feature_proj = FeatureProjection(cfg)
        self.context_encoder = ContextEncoder(cfg) if cfg.use_context_encoder else None
        if self.context_encoder is None:
            self.context_injector = None
        elif cfg.use_cross_attention_context:
            self.context_injector = CrossAttentionInjector(cfg)
        else:
            self.context_injector = FiLMInjector(cfg)
        self.hpm = HPM(cfg) if cfg.use_hpm else None
        self.dsc = DynamicSaliencyController(cfg) if cfg.use_dsc else None
        self.msre = MultiScaleRelativeEncoding(cfg) if cfg.use_msre and cfg.use_dsc else None
        self.hyper_lora = HyperLoRA(cfg) if cfg.use_hyperlora else None
        self.solver = RecursiveSolver(
            cfg, gradient_checkpointing=gradient_checkpointing, checkpoint_use_reentrant=checkpoint_use_reentrant
        )

    def forward(
        self,
        query_input: torch.Tensor,
        support_inputs: torch.Tensor,
        support_outputs: torch.Tensor,
        pair_mask: torch.Tensor,
        stage: Stage = FULL_STAGE,
    ) -> RLANOutput:
        """query_input (B, H, W), support grids (B, N, H, W), pair_mask (B, N) bool; grids use PAD = 10."""
        return self.forward_with_context(
            query_input, self.encode_context(support_inputs, support_outputs, pair_mask), stage
        )

    def encode_context(
        self, support_inputs: torch.Tensor, support_outputs: torch.Tensor, pair_mask: torch.Tensor
    ) -> Context:
        if self.context_encoder is None:
            return Context()
        return self.context_encoder(support_inputs, support_outputs, pair_mask)

    def forward_with_context(
        self,
        query_input: torch.Tensor,
        context: Context,
        stage: Stage = FULL_STAGE,
        *,
        inject: bool = True,
        lora_deltas: dict[str, torch.Tensor] | None = None,
        predict_lora: bool = True,
    ) -> RLANOutput:
        """Steps 1 and 3-9 on given context. The LOO loss calls it with inject=False and its own deltas
        (the reference's forward_with_lora: no context injection, deltas from the remaining pairs)."""
        # 1. Encode the query grid.
        features = self.feature_proj(self.encoder(query_input))  # (B, D, H, W)
        valid = valid_mask(query_input)  # (B, H, W)
        sizes = grid_sizes(query_input)  # (B, 2)

        # 2. Inject the encoded demonstrations as context.
        if inject and self.context_encoder is not None:
            features = self._inject(features, context, stage)

        # 3. HPM: memory-enhanced pooled context added to every pixel.
        balance = None
        if inject and self.hpm is not None and stage.hpm is not None:
            z_aug, balance = self.hpm(context.pooled())  # (B, D)
            features = features + stage.hpm * z_aug[:, :, None, None]

        # 4. DSC: clue centroids, attention maps and stop logits.
        if self.dsc is not None:
            clues = self.dsc(features, valid, temperature=stage.temperature)
        else:
            clues = anchor_clues(valid, sizes, self.cfg.max_clues)

        # 5. MSRE: clue-relative features.
        k = clues.centroids.shape[1]
        if self.msre is not None:
            clue_features = self.msre(features, clues.centroids, sizes)  # (B, K, D, H, W)
        else:
            clue_features = features[:, None].expand(-1, k, -1, -1, -1)

        # 6. LCR and SPH are not built (reference: off).
        # 7. HyperLoRA deltas from the support features.
        if predict_lora and self.hyper_lora is not None and stage.hyper_lora is not None:
            lora_deltas = self.hyper_lora(context.support_features, scale=stage.hyper_lora)

        # 8. The recursive solver.
        solver_support = context.support_features if stage.solver_context is not None else None
        all_logits, saturation = self.solver(
            clue_features,
            clues.attention,
            clues.stop_logits,
            query_input,
            solver_support,
            lora_deltas,
            context_scale=stage.solver_context or 0.0,
        )

        # 9. Final logits are the last step's.
        return RLANOutput(all_logits[-1], all_logits, clues, lora_deltas, saturation, balance, context)

    def _inject(self, features: torch.Tensor, context: Context, stage: Stage) -> torch.Tensor:
        if isinstance(self.context_injector, CrossAttentionInjector):
            if stage.cross_attention is None:
                return features  # staged off: no injection, as if the injector were absent
            injected = self.context_injector(features, context)
            return (
                injected if stage.cross_attention == 1.0 else features + stage.cross_attention * (injected - features)
            )
        if self.context_injector is None:
            return features
        return self.context_injector(features, context)

    def parameter_table(self) -> dict[str, int]:
        """Parameters per top-level module (0 for modules not built) plus 'total' over every parameter."""
        table = {
            name: sum(p.numel() for p in getattr(self, name).parameters()) if getattr(self, name) is not None else 0
            for name in TOP_LEVEL_MODULES
        }
        table["total"] = sum(p.numel() for p in self.parameters())
        return table


def build_model(config: Config) -> RLAN:
    """The model a whole config asks for (checkpointing lives in the training section, as in the reference)."""
    return RLAN(
        config.model,
        gradient_checkpointing=config.training.gradient_checkpointing,
        checkpoint_use_reentrant=config.training.checkpoint_use_reentrant,
    )
