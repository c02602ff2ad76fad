"""grad-check: do gradients under torch.utils.checkpoint equal the gradients without it?

The seed blames checkpointing ("None values and Dict arguments are not checkpointed correctly"). This
measures it: on one real ARC batch and one RNG state, a forward/backward without checkpointing (the
reference) and one with it, for each `use_reentrant` mode, compared parameter by parameter (max
absolute and relative difference, relative L2, cosine, and None / zero / non-zero gradient on each
side) and buffer by buffer (a recompute must not update a buffer twice).

Cases: the seed's three (h None at step 0, support None, LoRA deltas as a dict) and the hazards that
really corrupt checkpointed gradients (dropout with preserve_rng_state off, a module flag or the
train/eval mode changed between forward and backward). An exception raised inside checkpointing is
a result, recorded with its text.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import torch

from collapse_doctor.config import LoadedConfig, load_config
from collapse_doctor.config.schedule import FULL_STAGE, Stage
from collapse_doctor.data.stream import Batch, SampleStream
from collapse_doctor.errors import CollapseDoctorError
from collapse_doctor.experiments.grad_compare import (
    TOLERANCES,
    ModuleDiff,
    ParamDiff,
    Tolerance,
    by_module,
    compare_grads,
)
from collapse_doctor.experiments.run_setup import RunSettings, prepare_run
from collapse_doctor.model.rlan import RLAN, build_model
from collapse_doctor.train.losses import stablemax_cross_entropy

MODES = {"non_reentrant": False, "reentrant": True}
ALL_MODULES_ON = [
    "model.use_context_encoder=true",
    "model.use_dsc=true",
    "model.use_msre=true",
    "model.use_cross_attention_context=true",
    "model.use_solver_context=true",
    "model.use_hyperlora=true",
    "model.use_hpm=true",
]


# --------------------------------------------------------------------------------------------------
# One forward/backward
# --------------------------------------------------------------------------------------------------
@dataclass
class RunState:
    grads: dict[str, torch.Tensor | None]
    buffers: dict[str, torch.Tensor]
    loss: float


def forward_backward(
    model: RLAN,
    batch: Batch,
    stage: Stage,
    *,
    seed: int,
    dtype: str,
    between: Callable[[RLAN], contextlib.AbstractContextManager] | None = None,
) -> RunState:
    """Seeded forward (train mode) and backward of the task loss over every solver step. `between`
    wraps the backward only: a hazard that changes the model after the forward."""
    model.train()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bfloat16" else contextlib.nullcontext()
    with autocast:
        out = model(batch.query_input, batch.support_inputs, batch.support_outputs, batch.pair_mask, stage)
        loss = sum(
            stablemax_cross_entropy(logits.float(), batch.query_target).float().mean() for logits in out.all_logits
        )
        if out.hpm_balance_loss is not None:
            loss = loss + out.hpm_balance_loss.float()
    with between(model) if between is not None else contextlib.nullcontext():
        loss.backward()
    grads = {name: None if p.grad is None else p.grad.detach().clone() for name, p in model.named_parameters()}
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    return RunState(grads, buffers, loss.item())


@dataclass
class Comparison:
    """Checkpointed against the reference, one case, one mode."""

    match: bool
    error: str | None
    modules: list[ModuleDiff] = field(default_factory=list)
    params: list[ParamDiff] = field(default_factory=list)
    buffers_changed: list[str] = field(default_factory=list)  # buffers that differ from the reference run
    hyperlora_grad: bool | None = None  # did HyperLoRA's parameters get a non-zero gradient? (None: not built)
    warnings: list[str] = field(default_factory=list)

    def mismatching_modules(self) -> list[str]:
        return [m.module for m in self.modules if not m.match]

    def to_json(self, with_params: bool = False) -> dict:
        data = {
            "match": self.match,
            "error": self.error,
            "modules": [asdict(m) for m in self.modules],
            "buffers_changed": self.buffers_changed,
            "hyperlora_grad": self.hyperlora_grad,
            "warnings": self.warnings,
        }
        if with_params:
            data["params"] = [asdict(p) for p in self.params]
        return data


def compare(
    model: RLAN,
    batch: Batch,
    stage: Stage,
    *,
    reentrant: bool,
    seed: int,
    dtype: str,
    reference: RunState,
    preserve_rng_state: bool = True,
    between=None,
) -> Comparison:
    ckpt = copy.deepcopy(model)
    ckpt.solver.gradient_checkpointing = True
    ckpt.solver.checkpoint_use_reentrant = reentrant
    ckpt.solver.checkpoint_preserve_rng_state = preserve_rng_state
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            run = forward_backward(ckpt, batch, stage, seed=seed, dtype=dtype, between=between)
        except Exception as exc:  # an error inside checkpointing is a result, not a crash
            text = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            return Comparison(False, text, warnings=_warning_texts(caught))
    tol = TOLERANCES[dtype]
    params = [compare_grads(reference.grads[name], run.grads[name], name, tol) for name in reference.grads]
    buffers = [name for name, value in reference.buffers.items() if not torch.equal(value, run.buffers[name])]
    lora = [name for name in run.grads if name.startswith("hyper_lora.")]
    hyperlora = any(run.grads[n] is not None and bool(torch.any(run.grads[n] != 0)) for n in lora) if lora else None
    modules = by_module(params)
    return Comparison(
        all(m.match for m in modules) and not buffers, None, modules, params, buffers, hyperlora, _warning_texts(caught)
    )


def _warning_texts(caught) -> list[str]:
    return sorted({str(w.message).strip().splitlines()[0] for w in caught})


# --------------------------------------------------------------------------------------------------
# Cases and hazards
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    name: str
    description: str
    stage: Stage
    needs: str  # the module the case exercises ("" always applicable)
    solver_steps: int | None = None  # run the solver for this many steps instead of the config's


def seed_cases(model: RLAN) -> list[Case]:
    cases = [
        Case(
            "as_configured",
            "every built module live: h None at step 0, support features a tensor, LoRA deltas a dict (when built)",
            FULL_STAGE,
            "",
        )
    ]
    if model.solver.solver_context is not None:
        cases.append(
            Case(
                "support_none",
                "SolverCrossAttention staged off: support_features=None passed into the checkpoint",
                Stage(solver_context=None),
                "solver_context",
            )
        )
    if model.hyper_lora is not None:
        cases.append(
            Case(
                "lora_dict",
                "HyperLoRA live, SolverCrossAttention off: the dict of deltas is the only context input",
                Stage(solver_context=None, hyper_lora=1.0),
                "hyper_lora",
            )
        )
        cases.append(Case("lora_none", "HyperLoRA staged off: lora_deltas=None", Stage(hyper_lora=None), "hyper_lora"))
        cases.append(
            Case(
                "lora_dict_one_step",
                "as lora_dict with one solver step: one checkpoint reads the deltas (the output head's LoRA, outside "
                "it, shares their graph)",
                Stage(solver_context=None, hyper_lora=1.0),
                "hyper_lora",
                solver_steps=1,
            )
        )
    return cases


@dataclass
class Hazard:
    name: str
    description: str
    applicable: bool  # does the checkpointed region hold what the hazard needs?
    reachable: bool  # can this config's training loop (the bundled trainer, the reference's call) hit it?
    why: str
    result: Comparison | None = None

    @property
    def caught(self) -> bool | None:
        if self.result is None:
            return None
        return self.result.error is not None or not self.result.match

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "applicable": self.applicable,
            "reachable": self.reachable,
            "why": self.why,
            "caught": self.caught,
            "result": None if self.result is None else self.result.to_json(),
        }


@contextlib.contextmanager
def _eval_during_backward(model: RLAN) -> Iterator[None]:
    model.eval()
    try:
        yield
    finally:
        model.train()


@contextlib.contextmanager
def _flag_off_during_backward(model: RLAN) -> Iterator[None]:
    """A staging flag kept on the module (as loops that stage by attribute do) flipped before backward."""
    saved = model.solver.solver_context
    model.solver.solver_context = None
    try:
        yield
    finally:
        model.solver.solver_context = saved


def hazards_for(model: RLAN) -> list[Hazard]:
    dropout = model.cfg.dropout > 0 and model.solver.solver_context is not None
    region = (
        "SolverCrossAttention's attention and output dropout"
        if dropout
        else "nothing random (no SolverCrossAttention, or dropout 0)"
    )
    return [
        Hazard(
            "dropout_rng_not_preserved",
            "checkpoint(..., preserve_rng_state=False) with dropout inside the region: the recompute draws new masks",
            dropout,
            False,
            f"the region holds {region}; the reference's call and the bundled trainer use the default "
            "preserve_rng_state=True",
        ),
        Hazard(
            "module_flag_changed",
            "a module flag that the checkpointed step reads (here: SolverCrossAttention switched off by attribute) "
            "changes between forward and backward",
            model.solver.solver_context is not None,
            False,
            "the bundled trainer passes staging as a Stage argument, which the checkpoint stores with the inputs; the "
            "reference sets its staging flags once per epoch, before the forward",
        ),
        Hazard(
            "train_eval_changed",
            "model.eval() between forward and backward: the recompute runs without dropout",
            dropout,
            False,
            f"the region holds {region}; the bundled trainer and the reference run forward, loss and backward back to "
            "back in train mode (evaluation comes after the optimizer step)",
        ),
    ]


# --------------------------------------------------------------------------------------------------
# The whole check
# --------------------------------------------------------------------------------------------------
@dataclass
class GradCheckReport:
    config: str
    overrides: list[str]
    dtype: str
    seed: int
    tolerance: Tolerance
    trains_with: str  # the mode the config trains with
    checkpointing_on: bool  # does the config train with checkpointing at all?
    size: dict
    baseline: dict  # two identical reference runs: their largest difference
    modes: dict[str, dict[str, Comparison]]  # mode -> case -> comparison
    cases: list[Case]
    hazards: list[Hazard]

    def mode_match(self, mode: str) -> bool:
        return all(c.match for c in self.modes[mode].values())

    def mode_error(self, mode: str) -> str | None:
        return next((c.error for c in self.modes[mode].values() if c.error), None)

    @property
    def match(self) -> bool:
        return self.mode_match(self.trains_with)

    @property
    def exit_code(self) -> int:
        return 0 if self.match else 1

    def mismatching_modules(self, mode: str) -> list[str]:
        names: list[str] = []
        for comparison in self.modes[mode].values():
            names += [m for m in comparison.mismatching_modules() if m not in names]
        return names

    def to_json(self) -> dict:
        modes = {}
        for mode, cases in self.modes.items():
            main = cases["as_configured"]
            modes[mode] = {
                "match": self.mode_match(mode),
                "error": self.mode_error(mode),
                "mismatching_modules": self.mismatching_modules(mode),
                "hyperlora_grad": main.hyperlora_grad,
                "modules": [asdict(m) for m in main.modules],
                "cases": {name: c.to_json() for name, c in cases.items()},
            }
        return {
            "config": self.config,
            "overrides": self.overrides,
            "dtype": self.dtype,
            "seed": self.seed,
            "tolerance": asdict(self.tolerance),
            "trains_with": self.trains_with,
            "checkpointing_on": self.checkpointing_on,
            "size": self.size,
            "baseline": self.baseline,
            "match": self.match,
            "exit_code": self.exit_code,
            "cases": [{"name": c.name, "description": c.description} for c in self.cases],
            **modes,
            "modes": list(self.modes),
            "hazards": [h.to_json() for h in self.hazards],
        }


def grad_check(
    loaded: LoadedConfig | None = None,
    *,
    dtype: str = "float32",
    seed: int = 0,
    data: str = "arc-agi-1",
    batch_size: int = 2,
    hazards: bool = True,
) -> GradCheckReport:
    """Run every case in both modes (and the hazards) on one real ARC batch at the tiny preset's size."""
    if dtype not in TOLERANCES:
        raise CollapseDoctorError(f"--dtype {dtype!r}: expected one of {', '.join(TOLERANCES)}")
    if loaded is None:
        loaded = load_config(None, ALL_MODULES_ON)
    setup = prepare_run(loaded, RunSettings(preset="tiny", device="cpu", data=data))
    config = setup.config
    torch.manual_seed(seed)
    model = build_model(config)
    model.solver.gradient_checkpointing = False
    batch = SampleStream(setup.tasks, config, seed).batch(0, batch_size)

    cases = seed_cases(model)
    modes: dict[str, dict[str, Comparison]] = {mode: {} for mode in MODES}
    baseline: dict = {}
    for case in cases:
        case_model = model
        if case.solver_steps is not None:
            case_model = copy.deepcopy(model)
            case_model.solver.num_steps = case.solver_steps
        reference = forward_backward(case_model, batch, case.stage, seed=seed, dtype=dtype)
        if case.name == "as_configured":
            again = forward_backward(case_model, batch, case.stage, seed=seed, dtype=dtype)
            diffs = [
                float((a - b).abs().max())
                for a, b in zip(reference.grads.values(), again.grads.values())
                if a is not None and b is not None
            ]
            baseline = {"max_abs": max(diffs, default=0.0), "bit_identical": all(d == 0 for d in diffs)}
        for mode, reentrant in MODES.items():
            modes[mode][case.name] = compare(
                case_model, batch, case.stage, reentrant=reentrant, seed=seed, dtype=dtype, reference=reference
            )

    hazard_list = hazards_for(model) if hazards else []
    trains_with = "reentrant" if config.training.checkpoint_use_reentrant else "non_reentrant"
    if hazard_list:
        reference = forward_backward(model, batch, FULL_STAGE, seed=seed, dtype=dtype)
        for hazard in hazard_list:
            if not hazard.applicable:
                continue
            kwargs = (
                {"preserve_rng_state": False}
                if hazard.name == "dropout_rng_not_preserved"
                else {
                    "between": _flag_off_during_backward
                    if hazard.name == "module_flag_changed"
                    else _eval_during_backward
                }
            )
            hazard.result = compare(
                model,
                batch,
                FULL_STAGE,
                reentrant=MODES[trains_with],
                seed=seed,
                dtype=dtype,
                reference=reference,
                **kwargs,
            )
    size = {
        "hidden_dim": config.model.hidden_dim,
        "canvas": config.model.max_grid_size,
        "solver_steps": config.model.num_solver_steps,
        "batch": batch_size,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    return GradCheckReport(
        loaded.source,
        list(loaded.overrides),
        dtype,
        seed,
        TOLERANCES[dtype],
        trains_with,
        config.training.gradient_checkpointing,
        size,
        baseline,
        modes,
        cases,
        hazard_list,
    )
