"""The `data:`, `device:`, `probe:` and `verdict:` sections: the data, the hardware, the probe's budget
and the verdict's thresholds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from collapse_doctor.config.keys import DATACLASS_FRAME, key


# --------------------------------------------------------------------------------------------------
# data:
# --------------------------------------------------------------------------------------------------
@dataclass(**DATACLASS_FRAME)
class AugmentationConfig:
    """`data.augmentation`: per-sample augmentation (reference 2.1)."""

    enabled: bool = key(True, consumer="data", doc="Apply any augmentation.", ref="2.1", source="rlan_stable.yaml true")
    rotation: bool = key(
        True,
        consumer="data",
        doc="Allow the rotations among the dihedral transforms.",
        ref="2.1",
        source="rlan_stable.yaml true",
    )
    flip: bool = key(
        True,
        consumer="data",
        doc="Allow the flips among the dihedral transforms.",
        ref="2.1",
        source="rlan_stable.yaml true",
    )
    transpose: bool = key(
        True, consumer="data", doc="Allow transpose and anti-transpose.", ref="2.1", source="rlan_stable.yaml true"
    )
    color_permutation: bool = key(
        True, consumer="data", doc="Permute colours 1..9 (0 fixed).", ref="2.1", source="rlan_stable.yaml true"
    )
    color_permutation_prob: float = key(
        1.0,
        ge=0.0,
        le=1.0,
        consumer="data",
        doc="Probability of a colour permutation per sample.",
        ref="2.1",
        source="rlan_stable.yaml 1.0 (0.3 earlier)",
    )
    translational: bool = key(
        True,
        consumer="data",
        doc="Place grids at a random offset on the canvas.",
        ref="2.1",
        source="rlan_stable.yaml true",
    )


@dataclass(**DATACLASS_FRAME)
class DataConfig:
    """The `data:` section (reference 2.1)."""

    max_grid_size: Optional[int] = key(
        None,
        ge=1,
        le=30,
        consumer="data",
        doc="Largest grid side kept; null = model.max_grid_size.",
        ref="2.1",
        source="tool default null; rlan_stable.yaml 30",
    )
    ignore_padding_in_loss: bool = key(
        True,
        consumer="data",
        doc="Query-target padding is the ignore index (-100) instead of a class.",
        ref="2.1",
        source="rlan_stable.yaml true",
    )
    augmentation: AugmentationConfig = key(
        default_factory=AugmentationConfig,
        consumer="data",
        doc="Augmentation (nested section).",
        ref="2.1",
        source="see its keys",
    )


# --------------------------------------------------------------------------------------------------
# device:
# --------------------------------------------------------------------------------------------------
@dataclass(**DATACLASS_FRAME)
class DeviceConfig:
    """The `device:` section (reference 2.7)."""

    mixed_precision: bool = key(
        False,
        consumer="device",
        doc="Autocast forward and losses to `dtype` on CUDA (the reference ran bf16); a CPU probe runs float32 and "
        "says so.",
        ref="2.7",
        source="tool default false; rlan_stable.yaml true",
    )
    dtype: Literal["bfloat16", "float16", "float32"] = key(
        "bfloat16",
        consumer="device",
        doc="Autocast dtype when mixed_precision is on.",
        ref="2.7",
        source="rlan_stable.yaml 'bfloat16'",
    )


# --------------------------------------------------------------------------------------------------
# probe: and verdict: (tool sections; a training YAML does not carry them, presets and --set do)
# --------------------------------------------------------------------------------------------------
@dataclass(**DATACLASS_FRAME)
class ProbeConfig:
    """The `probe:` section: the budget and settings of one short training run."""

    steps: int = key(
        120,
        ge=1,
        consumer="probe",
        doc="Optimizer steps of the probe (one metrics row each).",
        ref="2.11",
        source="tool default (the tiny preset's budget)",
    )
    steps_per_epoch: Optional[int] = key(
        None,
        ge=1,
        consumer="probe",
        doc="Optimizer steps that make one probe 'epoch' for the staging schedule and temperature; null = chosen so "
        "the last staged activation falls at 40% of the steps.",
        ref="2.11",
        source="tool default null (the reference had 1,212-1,333 steps per epoch)",
    )
    seed: int = key(
        0,
        ge=0,
        consumer="probe",
        doc="Seed of the weights, dropout and the sample stream (--seed overrides).",
        ref="2.1",
        source="tool default 0",
    )
    threads: int = key(
        1,
        ge=1,
        consumer="probe",
        doc="CPU intra-op threads (torch.set_num_threads): results differ between thread counts, so it is fixed and "
        "recorded.",
        ref="-",
        source="tool default 1",
    )
    early_stop_after: Optional[int] = key(
        40,
        ge=1,
        consumer="probe",
        doc="Stop a probe once a collapse episode has lasted this many steps without recovering (and on divergence); "
        "null: always run every step. The report says how many steps it saved.",
        ref="0.11, 7.3",
        source="tool default 40: 3x the longest recovered episode measured in 39 tiny probes (13 steps, "
        "docs/verdicts.md); the reference's one recovered all-background episode was 'short'",
    )
    lr_batch_exponent: Optional[float] = key(
        None,
        ge=0.0,
        le=1.0,
        consumer="probe",
        doc="Scale training.learning_rate by (effective batch / probe.lr_reference_batch) ** this exponent, so a "
        "probe that trains a smaller batch than the config keeps a comparable step size; null: keep the config's "
        "learning rate.",
        ref="2.5, 2.11",
        source="tool default null; McCandlish et al. 2018 (An Empirical Model of Large-Batch Training): for Adam the "
        "best LR grows as B^alpha, alpha between 0.5 and 1",
    )
    lr_reference_batch: Optional[int] = key(
        None,
        ge=1,
        consumer="probe",
        doc="Effective batch (batch_size x grad_accumulation_steps) at which the config's learning rate was set, for "
        "probe.lr_batch_exponent; null: the YAML's own batch_size x grad_accumulation_steps, read before --set, "
        "the regime file and the preset.",
        ref="2.5, 2.11",
        source="tool default null (OLD 75 x 4 = 300, NEW 55 x 6 = 330)",
    )
    warm_start_steps: Optional[int] = key(
        None,
        ge=1,
        consumer="probe",
        doc="Warm-start (activation) probe: train the base (every stageable module and meta loss off) this many steps "
        "first, then load its weights and optimizer state into the candidate and train probe.steps more; with "
        "probe.warm_start_until_learned, the most phase-1 steps. null: a cold probe.",
        ref="0.11, 3.3, 7.6",
        source="tool default null; the reference's recorded collapses came right after the first step or right after "
        "an activation",
    )
    warm_start_until_learned: bool = key(
        False,
        consumer="probe",
        doc="Phase 1 of a warm start stops once the base has learned (final-window FG and BG accuracy >= "
        "verdict.learned_acc, no open collapse episode), at most probe.warm_start_steps steps ('--warm-start "
        "auto').",
        ref="7.6",
        source="tool default false",
    )
    flush_denormal: bool = key(
        True,
        consumer="probe",
        doc="torch.set_flush_denormal on CPU: saturated gates make subnormal floats that slow CPU steps.",
        ref="-",
        source="tool default true (see bench/README.md)",
    )


@dataclass(**DATACLASS_FRAME)
class VerdictConfig:
    """The `verdict:` section: thresholds and windows of the verdict (docs/verdicts.md justifies each)."""

    bg_excess: float = key(
        0.15,
        gt=0.0,
        le=1.0,
        consumer="verdict",
        doc="A step over-predicts background when predicted minus target background share exceeds this.",
        ref="2.10, 7.3",
        source="reference collapse detector: bg_ratio_pred - bg_ratio_target > 0.15",
    )
    bg_share_max: float = key(
        0.95,
        gt=0.0,
        le=1.0,
        consumer="verdict",
        doc="... or when the predicted background share exceeds this.",
        ref="7.3",
        source="reference 7.3: > 95 %",
    )
    fg_acc_floor: float = key(
        0.02,
        ge=0.0,
        le=1.0,
        consumer="verdict",
        doc="FG accuracy below this counts as 'near zero'.",
        ref="7.3",
        source="reference 7.3: FG accuracy < 2 %",
    )
    pool_fg_cells: int = key(
        1000,
        ge=0,
        consumer="verdict",
        doc="Each step's signals are pooled with the steps before it until the pool holds this many FG-target cells "
        "(0: no pooling), so small batches do not flicker across the FG floor.",
        ref="2.5, 7.3",
        source="tool default: binomial SD of a 1 % FG accuracy over 1,000 cells is 0.3 points, so the 2 % floor sits "
        "3 SD away; the reference's 330-sample steps held ~20k FG cells each",
    )
    min_consecutive: int = key(
        3,
        ge=1,
        consumer="verdict",
        doc="Flagged steps in a row that make an episode.",
        ref="7.3",
        source="reference 7.3: for >= 3 consecutive steps",
    )
    fg_mode_share: float = key(
        0.5,
        gt=0.0,
        le=1.0,
        consumer="verdict",
        doc="FG collapse: one foreground colour takes more than this share of the predictions on FG-target cells.",
        ref="2.10",
        source="reference colour-mode check: > 50 % critical",
    )
    learned_acc: float = key(
        0.2,
        ge=0.0,
        le=1.0,
        consumer="verdict",
        doc="HEALTHY needs FG and BG accuracy at least this over the final window; below it and not collapsed is "
        "INCONCLUSIVE.",
        ref="2.10",
        source="reference running-accuracy warning: < 20 %; twice the 10 % of a uniform 10-class guess",
    )
    final_window: int = key(
        10,
        ge=1,
        consumer="verdict",
        doc="Steps averaged for the final FG/BG accuracy.",
        ref="2.9",
        source="tool default 10 (the reference's run50 is longer than a tiny probe)",
    )
    nonfinite_budget: int = key(
        10,
        ge=1,
        consumer="verdict",
        doc="Consecutive skipped (non-finite) steps after which the run is DIVERGED.",
        ref="2.5",
        source="reference: abort after 10 consecutive NaN events",
    )
    window_before: int = key(
        50,
        ge=1,
        consumer="verdict",
        doc="Steps before an activation that its comparison averages.",
        ref="7.6",
        source="reference 7.6: last ~50 batches before",
    )
    window_after: int = key(
        20,
        ge=1,
        consumer="verdict",
        doc="Steps after an activation that its comparison averages.",
        ref="7.6",
        source="reference 7.6: first ~20 batches after",
    )
