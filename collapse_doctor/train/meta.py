"""The meta-learning losses of reference 2.3, each with its own immediate backward, as the reference runs them.

LOO: for each holdout slot j, HyperLoRA predicts deltas from the remaining pairs' support features
(computed once under no_grad, so the ContextEncoder gets no LOO gradient), and the model solves pair
j's input without context injection (nor HPM); softmax cross-entropy against pair j's output, averaged
over its valid cells, then weight * CE_j / N / accumulation summed over the holdouts.

Equivariance: support feature maps are rotated/flipped, re-pooled and turned into deltas, which are
pulled towards the unaugmented deltas. Global average pooling is invariant to those transforms, so the
loss is about 0 by construction (reference 2.3 [analysis]); it is kept because the reference ran it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from collapse_doctor.config.schedule import Stage
from collapse_doctor.encoding import IGNORE_INDEX, PAD
from collapse_doctor.model.context_encoder import Context
from collapse_doctor.model.rlan import RLAN, RLANOutput

Backward = Callable[[torch.Tensor], None]  # the trainer's backward (through its GradScaler on CUDA)


@dataclass
class MetaLoss:
    value: float  # the logged value (mean over holdouts / augmentations), unweighted
    accuracy: float | None = None  # LOO pixel accuracy over valid cells


def _plain_backward(loss: torch.Tensor) -> None:
    loss.backward()


def loo_loss(
    model: RLAN,
    query_support: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    stage: Stage,
    *,
    weight: float,
    accumulation: int,
    min_pairs: int,
    backward: Backward = _plain_backward,
) -> MetaLoss | None:
    """Runs the LOO loss and its backward; None when some sample has fewer than min_pairs pairs.

    The reference loops over holdouts; here all holdouts go through one forward as a batch of B x J
    queries (J holdout slots), which gives the same loss and gradient (the model has no batch
    statistics; only dropout draws differ) in a fraction of the time on CPU.
    """
    support_inputs, support_outputs, pair_mask = query_support
    if (pair_mask.sum(dim=1) < min_pairs).any():
        return None
    b, n = support_inputs.shape[:2]
    holdouts = [j for j in range(n) if pair_mask[:, j].any()]
    if not holdouts:
        return None
    with torch.no_grad():
        features = model.encode_context(support_inputs, support_outputs, pair_mask).support_features
    queries = torch.cat([support_inputs[:, j] for j in holdouts])  # (J*B, S, S), holdout-major
    targets = torch.cat([support_outputs[:, j] for j in holdouts]).clone()
    targets[targets == PAD] = IGNORE_INDEX
    targets[~torch.cat([pair_mask[:, j] for j in holdouts])] = IGNORE_INDEX
    context, deltas = Context(), None
    if features is not None:
        remaining = (
            torch.cat([features[:, [i for i in range(n) if i != j]] for j in holdouts]).detach().requires_grad_(True)
        )  # (J*B, N-1, D, h, w)
        context = Context(support_features=remaining)
        if model.hyper_lora is not None and stage.hyper_lora is not None:
            deltas = model.hyper_lora(remaining, scale=stage.hyper_lora)
    out = model.forward_with_context(
        queries, context, replace(stage, temperature=1.0), inject=False, lora_deltas=deltas, predict_lora=False
    )
    per_cell = F.cross_entropy(out.logits.float(), targets, ignore_index=IGNORE_INDEX, reduction="none").view(
        len(holdouts), b, -1
    )
    valid = (targets != IGNORE_INDEX).view(len(holdouts), b, -1)
    ce = per_cell.sum(dim=(1, 2)) / valid.sum(dim=(1, 2)).clamp(min=1)  # (J,): mean over each holdout's valid cells
    if torch.isfinite(ce).all():
        backward(weight * ce.sum() / n / accumulation)
    correct = (out.logits.argmax(1) == targets).view(len(holdouts), b, -1) & valid
    return MetaLoss(float(ce.detach().mean()), int(correct.sum()) / max(1, int(valid.sum())))


AUGMENTATIONS = (
    ("rot90", lambda x: torch.rot90(x, 1, dims=(-2, -1))),
    ("rot180", lambda x: torch.rot90(x, 2, dims=(-2, -1))),
    ("flip_h", lambda x: torch.flip(x, dims=(-1,))),
    ("flip_v", lambda x: torch.flip(x, dims=(-2,))),
)


def equivariance_loss(
    model: RLAN,
    out: RLANOutput,
    stage: Stage,
    *,
    weight: float,
    num_augmentations: int,
    accumulation: int,
    backward: Backward = _plain_backward,
) -> MetaLoss | None:
    """Runs the equivariance loss and its backward; None when HyperLoRA is not live."""
    features = out.context.support_features
    if model.hyper_lora is None or stage.hyper_lora is None or features is None:
        return None
    features = features.detach()
    with torch.no_grad():
        reference = model.hyper_lora(features, scale=stage.hyper_lora)
    values = []
    for _, augment in AUGMENTATIONS[:num_augmentations]:
        augmented = model.hyper_lora(augment(features), scale=stage.hyper_lora)
        loss = features.new_zeros(())
        for target, ref in reference.items():
            a, r = augmented[target].flatten(1).float(), ref.flatten(1).float()
            norm_gap = (r.norm(dim=1) - a.norm(dim=1)) ** 2
            direction = 1.0 - F.cosine_similarity(r, a, dim=1)
            loss = loss + (0.3 * norm_gap + 0.7 * direction).mean()
        if torch.isfinite(loss) and loss.requires_grad:
            backward(weight * loss / num_augmentations / accumulation)
        values.append(float(loss.detach()))
    return MetaLoss(sum(values) / len(values))
