"""The `model:` section: which modules are built and their sizes (reference section 1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from collapse_doctor.config.keys import DATACLASS_FRAME, key


# --------------------------------------------------------------------------------------------------
# model:
# --------------------------------------------------------------------------------------------------
@dataclass(**DATACLASS_FRAME)
class ModelConfig:
    """The `model:` section: what RLAN builds (reference section 1)."""

    hidden_dim: int = key(
        128,
        gt=0,
        doc="Feature width D of every module.",
        ref="1.0",
        source="RLANConfig default 128; rlan_stable.yaml 256",
    )
    num_colors: int = key(
        10,
        ge=2,
        doc="Colour vocabulary; embedding tables hold num_colors + 1 rows (the last is PAD).",
        ref="1.2",
        source="RLANConfig default 10",
    )
    num_classes: int = key(
        10,
        ge=2,
        doc="Output classes of the solver's head (class 0 is background).",
        ref="1.11",
        source="RLANConfig default 10",
    )
    max_grid_size: int = key(
        30,
        ge=1,
        le=30,
        doc="Canvas side: every grid is padded onto max_grid_size x max_grid_size; sizes the position tables.",
        ref="1.0, 2.1",
        source="RLANConfig default 30",
    )
    max_clues: int = key(
        5,
        ge=1,
        doc="K, the number of DSC clues.",
        ref="1.7",
        source="RLANConfig default 5; rlan_stable.yaml 7 (6 at 2a50f2d)",
    )
    num_solver_steps: int = key(
        6,
        ge=1,
        doc="T, recurrent solver steps; the forward returns logits for every step.",
        ref="1.11",
        source="RLANConfig default 6",
    )
    dropout: float = key(
        0.1,
        ge=0.0,
        lt=1.0,
        doc="Dropout in the encoder, DSC stop MLP, context FFNs, the solver input and attention.",
        ref="1.2, 1.11",
        source="RLANConfig default 0.1",
    )
    dsc_num_heads: int = key(
        4,
        ge=1,
        doc="Heads of the CrossAttentionInjector's attention (the reference reuses the DSC head count there).",
        ref="1.5",
        source="rlan_stable.yaml 4",
    )
    msre_encoding_dim: int = key(
        32, ge=1, doc="Width of MSRE's relative-coordinate code.", ref="1.8", source="rlan_stable.yaml 32"
    )
    msre_num_freq: int = key(
        8,
        ge=1,
        doc="Fourier frequencies per MSRE coordinate (2^0..2^(F-1) times pi).",
        ref="1.8",
        source="rlan_stable.yaml 8",
    )
    use_context_encoder: bool = key(
        True,
        doc="Build the ContextEncoder over the demonstration pairs (core module).",
        ref="1.3",
        source="RLANConfig default true",
    )
    use_dsc: bool = key(
        True,
        doc="Build the Dynamic Saliency Controller; off gives K centred anchors with uniform attention and zero stop "
        "logits.",
        ref="1.7",
        source="RLANConfig default true",
    )
    use_msre: bool = key(
        True,
        doc="Build Multi-Scale Relative Encoding of each cell against each clue centroid (needs DSC).",
        ref="1.8",
        source="RLANConfig default true",
    )
    use_learned_pos: bool = key(
        False,
        doc="Learned 2-D position table in the GridEncoder instead of the fixed sinusoidal one.",
        ref="1.2",
        source="RLANConfig default false",
    )
    use_cross_attention_context: bool = key(
        False,
        doc="Inject context with the CrossAttentionInjector over spatial support features instead of FiLM on a pooled "
        "vector.",
        ref="1.4, 1.5",
        source="RLANConfig default false (the YAML's true never reached be4fd25 runs, section 0 item 1)",
    )
    spatial_downsample: int = key(
        1,
        ge=1,
        doc="Target size s of the ContextEncoder's spatial downsampler (AdaptiveAvgPool to s x s + conv + position); "
        "1 = none.",
        ref="1.3",
        source="RLANConfig default 1; rlan_stable.yaml 8",
    )
    use_solver_context: bool = key(
        False,
        doc="SolverCrossAttention: the solver's hidden state attends to support features at every step.",
        ref="1.11",
        source="tool default false (RLANConfig default true): an optional module is off unless the YAML names it",
    )
    solver_context_heads: int = key(
        4, ge=1, doc="Heads of SolverCrossAttention.", ref="1.11", source="RLANConfig default 4"
    )
    use_hyperlora: bool = key(
        False,
        doc="HyperLoRA: predict per-task LoRA deltas for the GRU gates, candidate and output head.",
        ref="1.10",
        source="RLANConfig default false",
    )
    hyperlora_rank: int = key(8, ge=1, doc="Rank r of each predicted delta.", ref="1.10", source="RLANConfig default 8")
    hyperlora_scaling: float = key(
        1.0, ge=0.0, doc="Multiplier on A.B (delta = scaling * A @ B).", ref="1.10", source="RLANConfig default 1.0"
    )
    hyperlora_dropout: float = key(
        0.0,
        ge=0.0,
        lt=1.0,
        doc="Dropout inside HyperLoRA's context fusion.",
        ref="1.10",
        source="RLANConfig default 0.0",
    )
    hyperlora_init_scale: float = key(
        0.1,
        ge=0.0,
        doc="Std of the normal init of the last Linear of each A/B predictor (0.01 before 74a42b0).",
        ref="1.10",
        source="RLANConfig default 0.1",
    )
    hyperlora_start_epoch: Optional[int] = key(
        None,
        ge=0,
        consumer="schedule",
        doc="Epoch from which HyperLoRA's deltas are applied; null = live from step 0.",
        ref="3.4",
        source="tool default null (reference key from 297ee18, code default 3)",
    )
    use_hpm: bool = key(
        False,
        doc="Hierarchical Primitive Memory: memory-enhanced pooled context added to every pixel.",
        ref="1.6",
        source="RLANConfig default false",
    )
    hpm_start_epoch: Optional[int] = key(
        None,
        ge=0,
        consumer="schedule",
        doc="Epoch from which HPM contributes; null = live from step 0.",
        ref="1.6, 3.4",
        source="tool default null (reference code default 3)",
    )
    hpm_warmup_epochs: float = key(
        0.0,
        ge=0.0,
        consumer="schedule",
        doc="Linear ramp of HPM's contribution from 0 to full over this many epochs after its start (tool key).",
        ref="3.3",
        source="tool default 0 (abrupt, as in the reference)",
    )
    hpm_top_k: int = key(2, ge=1, doc="Banks each sample is routed to.", ref="1.6", source="rlan_stable.yaml 2")
    hpm_balance_weight: float = key(
        0.01,
        ge=0.0,
        consumer="trainer",
        doc="Weight of HPM's load-balance loss.",
        ref="1.6",
        source="rlan_stable.yaml 0.01",
    )
    hpm_primitives_per_bank: int = key(
        32, ge=1, doc="Primitives per static bank, split over the levels.", ref="1.6", source="rlan_stable.yaml 32"
    )
    hpm_levels_per_bank: int = key(
        3, ge=1, doc="Hierarchy levels per static bank.", ref="1.6", source="rlan_stable.yaml 3"
    )
    hpm_use_cross_attention: bool = key(
        True,
        doc="Blend the routed sum with a 4-head cross-attention over bank outputs.",
        ref="1.6",
        source="rlan_stable.yaml true",
    )
    hpm_memory_size: int = key(
        10000, ge=1, doc="Capacity of each dynamic bank's in-memory buffer.", ref="1.6", source="rlan_stable.yaml 10000"
    )
    hpm_retrieval_k: int = key(
        5, ge=1, doc="Entries a dynamic bank retrieves per query.", ref="1.6", source="rlan_stable.yaml 5"
    )
    hpm_use_compositional_bank: bool = key(
        True, doc="Static COMPOSITIONAL bank.", ref="1.6", source="rlan_stable.yaml true"
    )
    hpm_use_pattern_bank: bool = key(True, doc="Static PATTERN bank.", ref="1.6", source="rlan_stable.yaml true")
    hpm_use_relational_bank: bool = key(True, doc="Static RELATIONAL bank.", ref="1.6", source="rlan_stable.yaml true")
    hpm_use_concept_bank: bool = key(False, doc="Static CONCEPT bank.", ref="1.6", source="rlan_stable.yaml false")
    hpm_use_procedural_bank: bool = key(
        True, doc="Dynamic PROCEDURAL bank (buffer of stored task codes).", ref="1.6", source="rlan_stable.yaml true"
    )
    hpm_use_instance_bank: bool = key(
        True, doc="Dynamic INSTANCE bank (buffer of stored contexts).", ref="1.6", source="rlan_stable.yaml true"
    )
    context_path: Literal["auto", "vector", "spatial"] = key(
        "auto",
        doc="ContextEncoder path: 'auto' as the reference (spatial when CrossAttentionInjector, SolverCrossAttention "
        "or HyperLoRA is built, else vector); 'spatial' forces the spatial path with FiLM on its pooled features "
        "(ablate uses it to separate the path change from the modules); 'vector' refuses modules that need "
        "spatial features (tool key).",
        ref="1.1, 1.3",
        source="tool default 'auto' (the reference's rule)",
    )
    bg_bias: float = key(
        0.0,
        doc="Initial output-head bias of class 0 (background).",
        ref="1.11",
        source="tool default 0.0; the reference hard-coded -0.5 from b3e7200 to be4fd25, 0.0 at 2a50f2d and from "
        "045427f",
    )
    fg_bias: float = key(
        0.0, doc="Initial output-head bias of classes 1..C-1.", ref="1.11", source="tool default 0.0 (reference 0.0)"
    )
    use_lcr: bool = key(
        False,
        doc="Latent Counting Registers. Not built by this tool: true is listed as unsupported.",
        ref="1.9",
        source="YAML false",
        unsupported_if=bool,
        unsupported_why="LCR is not built by collapse-doctor (off in every reference config it follows)",
    )
    use_sph: bool = key(
        False,
        doc="Symbolic Predicate Heads. Not built by this tool: true is listed as unsupported.",
        ref="1.9",
        source="YAML false",
        unsupported_if=bool,
        unsupported_why="SPH is not built by collapse-doctor (off in every reference config it follows)",
    )
    use_act: bool = key(
        False,
        doc="Adaptive computation time. Not built by this tool: true is listed as unsupported.",
        ref="1.9",
        source="YAML false",
        unsupported_if=bool,
        unsupported_why="ACT is not built by collapse-doctor (off in every reference config it follows)",
    )

    @property
    def spatial_modules(self) -> tuple[str, ...]:
        return tuple(
            k for k in ("use_cross_attention_context", "use_solver_context", "use_hyperlora") if getattr(self, k)
        )

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
