"""K seeds of one config trained in one process as one vectorised model (issue 15, item 3).

Each seed's model is built as the plain `Trainer` builds it (`torch.manual_seed(seed)`, then the
model), so the K initialisations are the single runs' own. Their parameters are stacked along a new
first axis (`torch.func.stack_module_state`) and the forward pass and RLANLoss run once under
`torch.func.vmap`, so every convolution is one grouped convolution over the K models and every
matmul one batched matmul. One AdamW takes all K: it is elementwise, so a seed's slice gets exactly
the update a lone AdamW would. Gradient norms, clipping, the skip of a non-finite step and the
metrics rows are per seed. The LOO and equivariance losses run seed by seed (their early returns and
holdout loops depend on each seed's batch) on the same stacked parameters through `functional_call`.

What cannot equal the single runs, and why:
- Dropout: a single run draws its masks from the one global generator as its own run goes; a batch
  draws one mask for all K from one generator, seeded from the seed list. There is no way to hand
  vmapped dropout one generator per seed, so a seed's rows depend on the batch it ran in, and the
  batch is part of what a result records.
- Support pairs: the K batches are stacked on a common number of pair slots (the most any seed drew
  at that step). The context encoder masks the extra slots; the CrossAttentionInjector has no key
  mask (reference 1.5), so in configs that build it the padding reaches the features, as it already
  does for the samples of one batch with fewer pairs than the batch's most.
- Gradient checkpointing is not applied: torch.utils.checkpoint recomputes its segment in the
  backward pass, outside vmap, and fails there (RuntimeError from functorch). Checkpointing changes
  memory, not gradients (grad-check measures that claim for a config); the report says it was off.
- A seed whose step is skipped (non-finite gradients) keeps its weights and AdamW moments, but the
  AdamW step counter is shared by the stacked tensor, so its bias correction runs one step ahead
  afterwards.
With dropout 0 and equal pair counts, a seed's rows equal its single run's up to float rounding
(grouped convolutions sum in another order); tests/train/test_seed_batch.py checks that.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Sequence
from types import SimpleNamespace

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch.utils._pytree import tree_map

from collapse_doctor.config import Config
from collapse_doctor.config.schedule import Schedule, Stage
from collapse_doctor.data.arc import Task
from collapse_doctor.data.stream import Batch, SampleStream
from collapse_doctor.encoding import PAD
from collapse_doctor.model.rlan import build_model
from collapse_doctor.train.losses import rlan_loss
from collapse_doctor.train.meta import equivariance_loss, loo_loss
from collapse_doctor.train.step import StepRecord, norms_by_group, stage_events
from collapse_doctor.train.trainer import parameter_groups

# functorch runs ops it has no batching rule for (the context encoder's GRU cell, CPU flash attention)
# seed by seed, and warns on every call; bench/seed_batch.py measures what the batch gains all the same.
FALLBACK_WARNING = r".*we have not yet implemented the batching rule.*"


def batch_dropout_seed(seeds: Sequence[int]) -> int:
    """The global generator's seed for a batch's dropout masks: a fixed function of the seed list."""
    value = 0
    for seed in seeds:
        value = (value * 1_000_003 + int(seed) + 1) % (2**63 - 1)
    return value


def stack_batches(batches: list[Batch]) -> Batch:
    """K batches as one (K, B, ...) batch on the most pair slots any of them has."""
    slots = max(b.support_inputs.shape[1] for b in batches)

    def pad(t: torch.Tensor, value) -> torch.Tensor:
        missing = slots - t.shape[1]
        if not missing:
            return t
        return torch.cat([t, torch.full((t.shape[0], missing, *t.shape[2:]), value, dtype=t.dtype)], dim=1)

    return Batch(
        torch.stack([b.query_input for b in batches]),
        torch.stack([b.query_target for b in batches]),
        torch.stack([pad(b.support_inputs, PAD) for b in batches]),
        torch.stack([pad(b.support_outputs, PAD) for b in batches]),
        torch.stack([pad(b.pair_mask, False) for b in batches]),
    )


class _Bound(nn.Module):
    """Runs fn(model) under functional_call, so the meta losses see one seed's slice of the stack."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, fn):
        return fn(self.model)


class SeedBatchTrainer:
    def __init__(self, config: Config, tasks: list[Task], *, seeds: Sequence[int], steps_per_epoch: int):
        if len(set(seeds)) != len(seeds) or not seeds:
            raise ValueError(f"seeds {list(seeds)}: a seed batch needs distinct seeds")
        self.config, self.seeds, self.steps_per_epoch = config, list(seeds), steps_per_epoch
        models = []
        for seed in self.seeds:
            torch.manual_seed(seed)  # each model initialised as its single run's
            models.append(build_model(config).train())
        self.template = copy.deepcopy(models[0]).to("meta")
        self.template.solver.gradient_checkpointing = False  # see the module docstring
        self._bound = _Bound(self.template)
        params, self.buffers = stack_module_state(models)
        self.params = {name: p.detach().requires_grad_(True) for name, p in params.items()}
        t = config.training
        self.optimizer = torch.optim.AdamW(
            parameter_groups(list(self.params.items()), config), lr=t.learning_rate, betas=(t.beta1, t.beta2)
        )
        self.schedule = Schedule.from_config(config)
        self.streams = [SampleStream(tasks, config, seed) for seed in self.seeds]
        torch.manual_seed(batch_dropout_seed(self.seeds))
        self.step = 0
        self.consecutive_nonfinite = [0] * len(self.seeds)
        self.skipped_steps = [0] * len(self.seeds)
        self._previous_stage: Stage | None = None

    @property
    def k(self) -> int:
        return len(self.seeds)

    def stage(self) -> Stage:
        return self.schedule.stage_at(self.step / self.steps_per_epoch)

    def _forward(self, batch: Batch, stage: Stage, progress: float) -> dict:
        t, model_cfg = self.config.training, self.config.model

        def one_seed(params, buffers, query, target, support_in, support_out, mask):
            out = functional_call(self.template, (params, buffers), (query, support_in, support_out, mask, stage))
            loss = rlan_loss(out, target, t, progress=progress, hpm_balance_weight=model_cfg.hpm_balance_weight)
            result = {
                "total": loss.total,
                "terms": loss.terms,
                "logits": out.logits,
                "saturation": out.gate_saturation.float().mean(dim=0),
            }
            if out.lora_deltas is not None:
                result["delta_norms"] = {k: d.float().flatten(1).norm(dim=1).mean() for k, d in out.lora_deltas.items()}
            if out.context.support_features is not None:
                result["support_features"] = out.context.support_features
            return result

        if self.k == 1:  # functorch's group_norm rule fails on a batch of one; one model needs no vmap
            first = tree_map(lambda x: x[0], (self.params, self.buffers, batch.query_input, batch.query_target))
            rest = (batch.support_inputs[0], batch.support_outputs[0], batch.pair_mask[0])
            return tree_map(lambda x: x.unsqueeze(0), one_seed(*first, *rest))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=FALLBACK_WARNING)
            return vmap(one_seed, randomness="different")(
                self.params,
                self.buffers,
                batch.query_input,
                batch.query_target,
                batch.support_inputs,
                batch.support_outputs,
                batch.pair_mask,
            )

    def _seed_call(self, k: int, fn):
        """fn(model) with seed k's slice of the stacked parameters (gradients reach the stack)."""
        state = {f"model.{n}": p[k] for n, p in self.params.items()} | {
            f"model.{n}": b[k] for n, b in self.buffers.items()
        }
        return functional_call(self._bound, state, (fn,))

    def train_step(self) -> list[list[dict]]:
        """One optimizer step for every seed; per seed, its event rows then its metrics row."""
        t = self.config.training
        accumulation, k = t.grad_accumulation_steps, self.k
        stage = self.stage()
        events = stage_events(self.schedule, self._previous_stage, stage, self.step)
        self._previous_stage = stage
        self.optimizer.zero_grad(set_to_none=True)
        records = [StepRecord.start(self.config.model.num_classes) for _ in range(k)]
        lora_live = False
        progress = stage.epoch / t.max_epochs
        for micro in range(accumulation):
            index = self.step * accumulation + micro
            singles = [stream.batch(index, t.batch_size) for stream in self.streams]
            batch = stack_batches(singles)
            out = self._forward(batch, stage, progress)
            total_values = out["total"].detach().tolist()  # one read for all seeds, not one per seed
            term_values = {name: value.detach().tolist() for name, value in out["terms"].items()}
            norms = {name: v.detach().tolist() for name, v in out.get("delta_norms", {}).items()}
            lora_live = lora_live or bool(norms)
            finite = [
                records[s].add(
                    out["logits"][s].detach(),
                    batch.query_target[s],
                    out["saturation"][s].detach(),
                    {name: values[s] for name, values in norms.items()},
                    {name: values[s] for name, values in term_values.items()},
                    total_values[s],
                )
                for s in range(k)
            ]
            live = torch.where(torch.isfinite(out["total"]), out["total"], torch.zeros_like(out["total"]))
            (live.sum() / accumulation).backward()
            for s in range(k):
                if not finite[s]:
                    self._zero_seed_grads(s)  # the reference's skip also wipes what was accumulated
                    continue
                self._meta_losses(s, singles[s], out, stage, records[s])
        grads = [(name, p.grad) for name, p in self.params.items() if p.grad is not None]
        grad_norms = self._grad_norms(grads)
        grads_finite = [all(math.isfinite(v) for v in norms.values()) for norms in grad_norms]
        took_step = [records[s].takes_step(grads_finite[s], accumulation) for s in range(k)]
        self._clip_and_step(grads, grad_norms, took_step)
        params_finite = self._params_finite()
        rows = []
        for s in range(k):
            self.consecutive_nonfinite[s] = records[s].consecutive_nonfinite(
                self.consecutive_nonfinite[s], grads_finite[s]
            )
            self.skipped_steps[s] += 0 if took_step[s] else 1
            row = records[s].row(
                step=self.step,
                stage=stage,
                grad_norms=grad_norms[s],
                gradient_clip=t.gradient_clip,
                lora_live=lora_live,
                grads_finite=grads_finite[s],
                params_finite=params_finite[s],
                took_step=took_step[s],
                consecutive_nonfinite=self.consecutive_nonfinite[s],
            )
            rows.append([dict(e) for e in events] + [row])
        self.step += 1
        return rows

    def _meta_losses(self, s: int, batch: Batch, out: dict, stage: Stage, record: StepRecord) -> None:
        """Seed s's LOO and equivariance losses and their backward passes, on its own (unpadded) batch."""
        t = self.config.training
        accumulation = t.grad_accumulation_steps
        if stage.loo:
            loo = self._seed_call(
                s,
                lambda model: loo_loss(
                    model,
                    (batch.support_inputs, batch.support_outputs, batch.pair_mask),
                    stage,
                    weight=t.loo_training.loss_weight,
                    accumulation=accumulation,
                    min_pairs=t.loo_training.min_pairs_for_loo,
                ),
            )
            if loo is not None:
                record.add_term("loo", loo.value)
        if stage.equivariance and "support_features" in out:
            own = batch.support_inputs.shape[1]  # this seed's pair slots, without the batch's padding
            seed_out = SimpleNamespace(context=SimpleNamespace(support_features=out["support_features"][s][:, :own]))
            equi = self._seed_call(
                s,
                lambda model: equivariance_loss(
                    model,
                    seed_out,
                    stage,
                    weight=t.equivariance_training.loss_weight,
                    num_augmentations=t.equivariance_training.num_augmentations,
                    accumulation=accumulation,
                ),
            )
            if equi is not None:
                record.add_term("equivariance", equi.value)

    def _zero_seed_grads(self, s: int) -> None:
        with torch.no_grad():
            for p in self.params.values():
                if p.grad is not None:
                    p.grad[s].zero_()

    @torch.no_grad()
    def _grad_norms(self, grads: list[tuple[str, torch.Tensor]]) -> list[dict[str, float]]:
        if not grads:
            return [{"total": 0.0} for _ in self.seeds]
        norms = torch.stack([g.float().reshape(self.k, -1).norm(dim=1) for _, g in grads], dim=1)  # (K, P)
        names = [name for name, _ in grads]
        return [norms_by_group(names, norms[s]) for s in range(self.k)]

    @torch.no_grad()
    def _clip_and_step(
        self, grads: list[tuple[str, torch.Tensor]], grad_norms: list[dict[str, float]], took_step: list[bool]
    ) -> None:
        """clip_grad_norm_ per seed, one AdamW step for all, then the skipped seeds put back as they were."""
        if not any(took_step):
            self.optimizer.zero_grad(set_to_none=True)
            return
        clip = self.config.training.gradient_clip
        coefficients = torch.tensor(
            [min(1.0, clip / (norms["total"] + 1e-6)) if ok else 0.0 for norms, ok in zip(grad_norms, took_step)]
        )
        skipped = [s for s, ok in enumerate(took_step) if not ok]
        for _, g in grads:
            g.mul_(coefficients.view(-1, *([1] * (g.dim() - 1))).to(g.dtype))
            if skipped:
                g[skipped] = 0.0  # a skipped seed's non-finite entries stay out of the moments it gets back
        saved = self._snapshot(skipped)
        self.optimizer.step()
        self._restore(skipped, saved)

    def _snapshot(self, seeds: list[int]) -> list:
        if not seeds:
            return []
        out = []
        for p in self.params.values():
            state = self.optimizer.state.get(p, {})
            moments = {key: v[seeds].clone() for key, v in state.items() if key != "step" and v.dim() > 0}
            out.append((p[seeds].clone(), moments))
        return out

    def _restore(self, seeds: list[int], saved: list) -> None:
        if not seeds:
            return
        for p, (weights, moments) in zip(self.params.values(), saved):
            p[seeds] = weights
            state = self.optimizer.state.get(p, {})
            for key, value in moments.items():
                state[key][seeds] = value

    @torch.no_grad()
    def _params_finite(self) -> list[bool]:
        finite = torch.ones(self.k, dtype=torch.bool)
        for p in self.params.values():
            finite &= torch.isfinite(p.reshape(self.k, -1)).all(dim=1)
        return finite.tolist()

    def model_for(self, s: int) -> nn.Module:
        """A plain RLAN carrying seed s's current weights (for evaluation or a checkpoint)."""
        model = build_model(self.config)
        model.load_state_dict({n: p[s].detach() for n, p in self.params.items()}, strict=False)
        return model
