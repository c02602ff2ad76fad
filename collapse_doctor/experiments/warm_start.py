"""Warm-start (activation) probes: does a model that has learned collapse when modules switch on?

The reference's recorded collapses began right after the first optimizer step or right after a module
activation (sections 0 item 11, 3.3, 7.3); in its one post-fix run the staged epochs trained normally
and FG accuracy fell within a few steps of the activation. A cold probe only tests the first; this
tests the second:

- phase 1 trains the base (the config with every stageable module and meta loss off, or a base the
  command supplies: ablate's minimal base, bisect's good endpoint) until it has learned, in the same
  regime. Its checkpoint is cached on disk, keyed like a probe, written atomically, with snapshots that
  let an interrupted phase 1 resume;
- phase 2 builds the candidate, loads every tensor whose name and shape match (new modules keep their
  own init), carries the AdamW state of the matching parameters, and trains probe.steps more steps on
  the samples after phase 1's.

The verdict judges phase 2 alone, beside the level phase 1 reached and the reference's own test
(FG accuracy over the first ~20 steps after the switch dropped by at least 50 % against the last ~50
before it, reference 7.6).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from collapse_doctor.config import Config, get_key, replace_keys
from collapse_doctor.judge.verdict import GOOD_VERDICTS, RunningVerdict
from collapse_doctor.train.trainer import Trainer

# What "every stageable module and meta loss off" means: the modules the seed says are live too early,
# and the losses the reference staged behind meta_learning_start_epoch.
BASE_OFF: dict[str, object] = {
    "model.use_hyperlora": False,
    "model.use_solver_context": False,
    "model.use_cross_attention_context": False,
    "model.use_hpm": False,
    "training.loo_training.enabled": False,
    "training.equivariance_training.enabled": False,
}
# Keys that only set the initial value of a tensor: when that tensor is copied from phase 1, a warm
# start cannot test the key (prefix of the state-dict names the key initialises).
INIT_KEYS: dict[str, str] = {
    "model.bg_bias": "solver.output_head.net.3.bias",
    "model.fg_bias": "solver.output_head.net.3.bias",
    "model.hyperlora_init_scale": "hyper_lora.",
}
SNAPSHOT_EVERY = 25  # phase-1 steps between resumable snapshots
MIN_PHASE1_STEPS = 20  # 'until learned' never stops before this (two final windows)


def base_config(config: Config) -> Config:
    return replace_keys(config, BASE_OFF)


def phase1_config(base: Config, candidate: Config) -> Config:
    """The base as phase 1 trains it: the candidate's regime (batch, seed) and the warm-start budget,
    with no early stop (a collapse inside phase 1 may recover; only the end decides)."""
    p = candidate.probe
    # Same batch as phase 2, so that phase 2 draws the samples right after phase 1's; the LR stays the
    # base's own (its config's, under the same regime rule).
    return replace_keys(
        base,
        {
            "probe": dataclasses.replace(p, steps=p.warm_start_steps, early_stop_after=None, warm_start_steps=None),
            "training.batch_size": candidate.training.batch_size,
            "training.grad_accumulation_steps": candidate.training.grad_accumulation_steps,
            "verdict": candidate.verdict,
        },
    )


def learned_so_far(running: RunningVerdict, config: Config) -> bool:
    """The base has learned, on the rows so far (phase 1 asks after every step): a good verdict with final
    FG and BG accuracy at the learned level."""
    if len(running.steps) < max(MIN_PHASE1_STEPS, config.verdict.final_window):
        return False
    verdict = running.verdict()
    fg, bg = verdict.final.get("fg_acc"), verdict.final.get("bg_acc")
    return (
        verdict.label in GOOD_VERDICTS
        and fg is not None
        and bg is not None
        and fg >= config.verdict.learned_acc
        and bg >= config.verdict.learned_acc
    )


@dataclass
class PhaseOne:
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, dict]  # by parameter name
    rows: list[dict]
    steps: int
    learned: bool
    cached: bool = False


def _atomic_save(obj: object, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pt")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def optimizer_state_by_name(trainer: Trainer) -> dict[str, dict]:
    by_param = {id(p): name for name, p in trainer.model.named_parameters()}
    return {
        by_param[id(p)]: {k: (v.clone() if torch.is_tensor(v) else v) for k, v in state.items()}
        for p, state in trainer.optimizer.state.items()
    }


def run_phase1(
    config: Config,
    make_trainer: Callable[[Config], Trainer],
    path: Path,
    on_step: Callable[[int, int], None] | None = None,
) -> PhaseOne:
    """Train the phase-1 config, or load it from `path`; resume from `path`.partial after an interruption."""
    if path.exists():
        data = torch.load(path, weights_only=False)
        return PhaseOne(data["model"], data["optimizer"], data["rows"], data["steps"], data["learned"], cached=True)
    partial = path.with_suffix(".partial.pt")
    trainer = make_trainer(config)
    rows: list[dict] = []
    if partial.exists():
        data = torch.load(partial, weights_only=False)
        trainer.model.load_state_dict(data["model"])
        trainer.optimizer.load_state_dict(data["optimizer_full"])
        trainer.step, trainer.consecutive_nonfinite, trainer.skipped_steps = (
            data["step"],
            data["consecutive_nonfinite"],
            data["skipped_steps"],
        )
        trainer._previous_stage = trainer.stage() if trainer.step else None
        torch.set_rng_state(data["rng"])
        rows = data["rows"]
    running = RunningVerdict(config.verdict, rows)
    learned = learned_so_far(running, config) if config.probe.warm_start_until_learned else False
    while trainer.step < config.probe.steps and not learned:
        step_rows = trainer.train_step()
        rows += step_rows
        running.extend(step_rows)
        if on_step is not None:
            on_step(trainer.step, config.probe.steps)
        if config.probe.warm_start_until_learned:
            learned = learned_so_far(running, config)
        if trainer.step % SNAPSHOT_EVERY == 0 and trainer.step < config.probe.steps:
            snapshot = {
                "model": trainer.model.state_dict(),
                "optimizer_full": trainer.optimizer.state_dict(),
                "step": trainer.step,
                "consecutive_nonfinite": trainer.consecutive_nonfinite,
                "skipped_steps": trainer.skipped_steps,
                "rng": torch.get_rng_state(),
                "rows": rows,
            }
            _atomic_save(snapshot, partial)
    learned = learned_so_far(running, config)
    result = PhaseOne(
        {k: v.detach().clone() for k, v in trainer.model.state_dict().items()},
        optimizer_state_by_name(trainer),
        rows,
        trainer.step,
        learned,
    )
    _atomic_save(
        {
            "model": result.model_state,
            "optimizer": result.optimizer_state,
            "rows": rows,
            "steps": result.steps,
            "learned": learned,
        },
        path,
    )
    partial.unlink(missing_ok=True)
    return result


@dataclass
class Transplant:
    copied: list[str]  # state-dict entries copied from phase 1
    kept_init: list[str]  # candidate entries with no match (new modules): their own init
    shape_mismatch: list[str]
    parameters_copied: int  # parameter elements copied
    parameters_total: int  # the candidate's parameter elements
    optimizer_states_copied: int
    untestable_keys: list[dict]  # config keys whose init a copied tensor overrides

    @property
    def share_copied(self) -> float:
        return self.parameters_copied / self.parameters_total if self.parameters_total else 0.0

    def to_json(self) -> dict:
        return {
            "tensors_copied": len(self.copied),
            "tensors_kept_init": len(self.kept_init),
            "kept_init_modules": sorted({name.split(".")[0] for name in self.kept_init}),
            "shape_mismatch": self.shape_mismatch,
            "parameters_copied": self.parameters_copied,
            "parameters_total": self.parameters_total,
            "share_copied": self.share_copied,
            "optimizer_states_copied": self.optimizer_states_copied,
            "untestable_keys": self.untestable_keys,
        }


def transplant(phase1: PhaseOne, trainer: Trainer, config: Config, base: Config) -> Transplant:
    """Copy every phase-1 tensor whose name and shape match into the candidate, and the AdamW state of
    the matching parameters; the rest keeps the candidate's own init."""
    target = trainer.model.state_dict()
    copied, mismatch = [], []
    with torch.no_grad():
        for name, tensor in target.items():
            source = phase1.model_state.get(name)
            if source is None:
                continue
            if source.shape != tensor.shape:
                mismatch.append(f"{name} {tuple(source.shape)} -> {tuple(tensor.shape)}")
                continue
            tensor.copy_(source)
            copied.append(name)
    copied_set = set(copied)
    kept = [name for name in target if name not in copied_set]
    params = dict(trainer.model.named_parameters())
    states = 0
    for name, state in phase1.optimizer_state.items():
        if name in copied_set and name in params:
            trainer.optimizer.state[params[name]] = {
                k: (v.clone() if torch.is_tensor(v) else v) for k, v in state.items()
            }
            states += 1
    total = sum(p.numel() for p in params.values())
    moved = sum(p.numel() for name, p in params.items() if name in copied_set)
    untestable = []
    for key, prefix in INIT_KEYS.items():
        hit = [name for name in copied if name.startswith(prefix)]
        if hit:
            untestable.append(
                {
                    "key": key,
                    "tensor": prefix,
                    "why": f"its tensor is copied from phase 1 (value there {get_key(base, key)!r}, candidate "
                    f"{get_key(config, key)!r})",
                }
            )
    return Transplant(copied, kept, mismatch, moved, total, states, untestable)
