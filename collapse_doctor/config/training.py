"""The `training:` section: optimizer, losses, staging and the meta losses (reference section 2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from collapse_doctor.config.keys import DATACLASS_FRAME, key


# --------------------------------------------------------------------------------------------------
# training:
# --------------------------------------------------------------------------------------------------
@dataclass(**DATACLASS_FRAME)
class LOOConfig:
    """`training.loo_training`: the leave-one-out meta-learning loss (reference 2.3)."""

    enabled: bool = key(
        False,
        consumer="schedule",
        doc="Add the LOO loss from its start epoch.",
        ref="2.3",
        source="tool default false (absent before 9fee255)",
    )
    loss_weight: float = key(
        0.2,
        ge=0.0,
        consumer="trainer",
        doc="Weight of each holdout's CE (divided by N and accumulation).",
        ref="2.3",
        source="rlan_stable.yaml 0.2 (0.5 before fa53b4a)",
    )
    min_pairs_for_loo: int = key(
        2,
        ge=2,
        consumer="trainer",
        doc="LOO runs on a batch only if every sample has at least this many pairs.",
        ref="2.3",
        source="rlan_stable.yaml 2",
    )
    start_epoch: Optional[int] = key(
        None,
        ge=0,
        consumer="schedule",
        doc="Epoch the LOO loss starts; null = training.meta_learning_start_epoch.",
        ref="3.4",
        source="tool default null (reference key from 37f59d5, code default 12)",
    )


@dataclass(**DATACLASS_FRAME)
class EquivarianceConfig:
    """`training.equivariance_training`: the augmentation-equivariance loss on HyperLoRA deltas (reference 2.3)."""

    enabled: bool = key(
        False,
        consumer="schedule",
        doc="Add the equivariance loss from its start epoch.",
        ref="2.3",
        source="tool default false (absent before 9fee255)",
    )
    loss_weight: float = key(
        0.05,
        ge=0.0,
        consumer="trainer",
        doc="Weight of the loss (divided by num_augmentations and accumulation).",
        ref="2.3",
        source="rlan_stable.yaml 0.05 (0.1 before fa53b4a)",
    )
    num_augmentations: int = key(
        4,
        ge=1,
        le=4,
        consumer="trainer",
        doc="How many of rot90, rot180, flip_h, flip_v are used.",
        ref="2.3",
        source="rlan_stable.yaml 4",
    )
    start_epoch: Optional[int] = key(
        None,
        ge=0,
        consumer="schedule",
        doc="Epoch the loss starts; null = training.meta_learning_start_epoch.",
        ref="3.4",
        source="tool default null (reference key from 37f59d5, code default 8)",
    )


LossMode = Literal["stablemax", "weighted_stablemax", "focal_weighted", "focal_stablemax", "focal"]


@dataclass(**DATACLASS_FRAME)
class TrainingConfig:
    """The `training:` section: optimisation, losses, staging (reference sections 2 and 3)."""

    max_epochs: int = key(
        200,
        ge=1,
        consumer="schedule",
        doc="Epochs of the run; the DSC temperature anneals from temperature_start to temperature_end over them.",
        ref="1.7, 2.12",
        source="rlan_stable.yaml 200",
    )
    temperature_start: float = key(
        1.0,
        gt=0.0,
        consumer="schedule",
        doc="DSC attention temperature at epoch 0.",
        ref="1.7",
        source="rlan_stable.yaml 1.0",
    )
    temperature_end: float = key(
        0.5,
        gt=0.0,
        consumer="schedule",
        doc="DSC temperature at max_epochs (geometric decay).",
        ref="1.7",
        source="rlan_stable.yaml 0.5",
    )
    batch_size: int = key(
        75,
        ge=1,
        consumer="trainer",
        doc="Samples per batch.",
        ref="2.5",
        source="rlan_stable.yaml 75 at 2a50f2d/045427f, 55 at be4fd25",
    )
    grad_accumulation_steps: int = key(
        4,
        ge=1,
        consumer="trainer",
        doc="Batches per optimizer step.",
        ref="2.5",
        source="rlan_stable.yaml 4 (6 at be4fd25)",
    )
    learning_rate: float = key(
        5e-4,
        gt=0.0,
        consumer="trainer",
        doc="AdamW base learning rate (constant).",
        ref="2.5",
        source="rlan_stable.yaml 5e-4",
    )
    weight_decay: float = key(
        0.01,
        ge=0.0,
        consumer="trainer",
        doc="AdamW weight decay (0 for parameters named bias/norm/embedding).",
        ref="2.5",
        source="rlan_stable.yaml 0.01",
    )
    gradient_clip: float = key(
        1.0, gt=0.0, consumer="trainer", doc="Max total gradient norm.", ref="2.5", source="rlan_stable.yaml 1.0"
    )
    beta1: float = key(
        0.9, ge=0.0, lt=1.0, consumer="trainer", doc="AdamW beta1.", ref="2.5", source="rlan_stable.yaml 0.9"
    )
    beta2: float = key(
        0.95, ge=0.0, lt=1.0, consumer="trainer", doc="AdamW beta2.", ref="2.5", source="rlan_stable.yaml 0.95"
    )
    dsc_lr_multiplier: float = key(
        1.0,
        gt=0.0,
        consumer="trainer",
        doc="LR multiplier of DSC parameters.",
        ref="2.5",
        source="rlan_stable.yaml 1.0",
    )
    msre_lr_multiplier: float = key(
        1.0,
        gt=0.0,
        consumer="trainer",
        doc="LR multiplier of MSRE parameters.",
        ref="2.5",
        source="rlan_stable.yaml 1.0",
    )
    hyperlora_lr_multiplier: float = key(
        1.0,
        gt=0.0,
        consumer="trainer",
        doc="LR multiplier of HyperLoRA parameters.",
        ref="2.5",
        source="tool default 1.0; rlan_stable.yaml 3.0 (10.0 from 3f43c0c to fa53b4a)",
    )
    loss_mode: LossMode = key(
        "stablemax",
        consumer="trainer",
        doc="Task loss: stablemax CE, or its weighted / focal variants.",
        ref="2.3",
        source="rlan_stable.yaml 'stablemax'",
    )
    bg_weight_cap: float = key(
        2.0,
        gt=0.0,
        consumer="trainer",
        doc="Background class weight in the weighted modes.",
        ref="2.3",
        source="rlan_stable.yaml 2.0",
    )
    fg_weight_cap: float = key(
        5.0,
        ge=1.0,
        consumer="trainer",
        doc="Largest foreground class weight in the weighted modes.",
        ref="2.3",
        source="rlan_stable.yaml 5.0",
    )
    focal_gamma: float = key(
        2.0, ge=0.0, consumer="trainer", doc="Focal exponent.", ref="2.3", source="rlan_stable.yaml 2.0"
    )
    focal_alpha: float = key(
        0.75,
        ge=0.0,
        le=1.0,
        consumer="trainer",
        doc="Focal alpha for foreground (1 - alpha for background).",
        ref="2.3",
        source="rlan_stable.yaml 0.75",
    )
    lambda_entropy: float = key(
        0.01,
        ge=0.0,
        consumer="trainer",
        doc="Weight of the DSC attention-entropy loss.",
        ref="2.3",
        source="rlan_stable.yaml 0.01",
    )
    lambda_sparsity: float = key(
        0.5,
        ge=0.0,
        consumer="trainer",
        doc="Weight of the clue sparsity / min-clue terms.",
        ref="2.3",
        source="rlan_stable.yaml 0.5",
    )
    lambda_predicate: float = key(
        0.0,
        ge=0.0,
        consumer="trainer",
        unsupported_if=lambda v: v > 0,
        unsupported_why="the predicate loss reads SPH's predicates; SPH is not built, so the term is 0 (as in the "
        "reference with use_sph false)",
        doc="Weight of the predicate-diversity loss (0 without SPH).",
        ref="2.3",
        source="rlan_stable.yaml 0.01 (evaluates to 0 with SPH off)",
    )
    lambda_curriculum: float = key(
        0.0,
        ge=0.0,
        consumer="trainer",
        doc="Weight of the clue-curriculum loss.",
        ref="2.3",
        source="rlan_stable.yaml 0.0",
    )
    lambda_deep_supervision: float = key(
        0.0,
        ge=0.0,
        consumer="trainer",
        doc="Weight of the mean task loss of steps 0..T-2.",
        ref="2.3",
        source="rlan_stable.yaml 0.0",
    )
    lambda_act: float = key(
        0.0,
        ge=0.0,
        consumer="trainer",
        unsupported_if=lambda v: v > 0,
        unsupported_why="ACT is not built, so its halting loss is 0",
        doc="Weight of the ACT halting loss (ACT is not built).",
        ref="2.3",
        source="rlan_stable.yaml 0.0",
    )
    min_clues: float = key(
        1.0,
        ge=0.0,
        consumer="trainer",
        doc="Hinge target of expected clues used per sample.",
        ref="2.3",
        source="rlan_stable.yaml 1.0 (2.5 at 2a50f2d)",
    )
    min_clue_weight: float = key(
        5.0, ge=0.0, consumer="trainer", doc="Weight of the min-clue hinge.", ref="2.3", source="rlan_stable.yaml 5.0"
    )
    ponder_weight: float = key(
        0.02, ge=0.0, consumer="trainer", doc="Cost per used clue.", ref="2.3", source="rlan_stable.yaml 0.02"
    )
    entropy_ponder_weight: float = key(
        0.02,
        ge=0.0,
        consumer="trainer",
        doc="Cost per used clue times its normalised attention entropy.",
        ref="2.3",
        source="rlan_stable.yaml 0.02",
    )
    use_ema: bool = key(
        False,
        consumer="ema",
        doc="Keep an EMA of the weights for evaluation only (never for training).",
        ref="2.6",
        source="tool default false; rlan_stable.yaml true at 2a50f2d, false from b3e7200",
    )
    ema_decay: float = key(
        0.999, gt=0.0, lt=1.0, consumer="ema", doc="EMA decay mu.", ref="2.6", source="rlan_stable.yaml 0.999"
    )
    meta_learning_start_epoch: int = key(
        3,
        ge=0,
        consumer="schedule",
        doc="Epoch LOO and equivariance start when their own start_epoch is null.",
        ref="2.4",
        source="reference code default 3 (8 at affe1a2)",
    )
    solver_context_start_epoch: Optional[int] = key(
        None,
        ge=0,
        consumer="schedule",
        doc="Epoch SolverCrossAttention starts; null = live from step 0.",
        ref="3.4",
        source="tool default null (reference key from c689f56)",
    )
    solver_context_warmup_epochs: float = key(
        0.0,
        ge=0.0,
        consumer="schedule",
        doc="Linear ramp of SolverCrossAttention's contribution from 0 to full after its start (tool key).",
        ref="3.3",
        source="tool default 0 (abrupt, as in the reference)",
    )
    cross_attention_start_epoch: Optional[int] = key(
        None,
        ge=0,
        consumer="schedule",
        doc="Epoch the CrossAttentionInjector starts; null = live from step 0. Before it, no context is injected.",
        ref="3.2, 3.4",
        source="tool default null (reference key from c689f56)",
    )
    cross_attention_warmup_epochs: float = key(
        0.0,
        ge=0.0,
        consumer="schedule",
        doc="Linear ramp of the injector's contribution from 0 to full after its start (tool key).",
        ref="3.3",
        source="tool default 0 (abrupt, as in the reference)",
    )
    hyperlora_warmup_epochs: float = key(
        0.0,
        ge=0.0,
        consumer="schedule",
        doc="Epochs over which HyperLoRA's delta scale ramps from start to end scale; 0 = no ramp (scale 1).",
        ref="3.4",
        source="tool default 0; reference 4 from 4fe85c0",
    )
    hyperlora_warmup_start_scale: float = key(
        0.005,
        ge=0.0,
        consumer="schedule",
        doc="Delta scale at HyperLoRA's start when a warm-up is set.",
        ref="3.4",
        source="reference 0.005 (4fe85c0)",
    )
    hyperlora_warmup_end_scale: float = key(
        0.1,
        ge=0.0,
        consumer="schedule",
        doc="Delta scale at and after the end of the warm-up.",
        ref="3.4",
        source="reference 0.1 (4fe85c0)",
    )
    gradient_checkpointing: bool = key(
        False,
        doc="Checkpoint each solver step (torch.utils.checkpoint) with the reference's call shape.",
        ref="2.8",
        source="tool default false; rlan_stable.yaml true at be4fd25 only",
    )
    checkpoint_use_reentrant: bool = key(
        False, doc="use_reentrant of that checkpoint call.", ref="2.8", source="reference call: false"
    )
    loo_training: LOOConfig = key(
        default_factory=LOOConfig,
        consumer="schedule",
        doc="Leave-one-out loss (nested section).",
        ref="2.3",
        source="see its keys",
    )
    equivariance_training: EquivarianceConfig = key(
        default_factory=EquivarianceConfig,
        consumer="schedule",
        doc="Equivariance loss (nested section).",
        ref="2.3",
        source="see its keys",
    )
