"""What a test may assert about the labels of real training runs: only what the design guarantees.

For one seed, one version of the code and one CPU, a probe's rows are bit-identical, whichever worker
process runs it. Across CPUs they are not: torch and oneDNN choose kernels by instruction set (AVX-512
on this project's Intel machines, AVX2 on many AMD EPYC hosts), which round differently, and over a
probe the differences grow. Forcing AVX2 here (ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2) moved
one seed's final FG accuracy from 0.199 to 0.184 (docs/speed.md, "Across CPUs"). A seed batch's rows
differ from separate probes' by design (its dropout stream and pair padding). So a label that sits at
a threshold can flip between machines, and a test compares labels only where every run's deciding
numbers are far from the thresholds. Decisions over seeds (rank tests on fg_auc) are what tests assert.
"""

from __future__ import annotations

from collapse_doctor.config import VerdictConfig

# Measured on the gate pair of test_gate (60 steps, final FG of the good side, docs/speed.md): up to 0.015
# between AVX-512 and AVX2 kernels for separate probes, 0.040 for seed batches, 0.043 between a seed batch
# and separate probes. Two runs whose labels differ while both sit this far from the learned level are
# at least 0.10 apart: twice the largest difference measured.
LABEL_MARGIN = 0.05


def near_learned_level(final: dict, cfg: VerdictConfig | None = None, margin: float = LABEL_MARGIN) -> bool:
    """Final FG or BG accuracy within `margin` of the learned level: HEALTHY and INCONCLUSIVE (not learned)
    are told apart there, so such a label may differ on another CPU."""
    cfg = cfg or VerdictConfig()
    values = (final.get("fg_acc"), final.get("bg_acc"))
    return any(v is None or abs(v - cfg.learned_acc) < margin for v in values)


def labels_far_from_boundaries(labels_a, finals_a, labels_b, finals_b) -> list[tuple[int, str, str]]:
    """(index, a, b) for each run whose labels differ although both runs are far from the learned level."""
    return [
        (i, a, b)
        for i, (a, fa, b, fb) in enumerate(zip(labels_a, finals_a, labels_b, finals_b))
        if a != b and not near_learned_level(fa) and not near_learned_level(fb)
    ]
