"""The init audit: how much each optional module perturbs the features it modifies, at initialisation
and after N training steps, next to the magnitudes the reference reports (section 1.10); plus two
whole-model facts: the output head's background bias against the one matching the data's prior, and
whether predictions still depend on the input.

This measures the seed's central claim ("randomly initialised Q/K/V projections and deltas inject
noise") instead of arguing it. All measurements use eval mode (no dropout) on real ARC batches, with
every built module live (the effect a module has once it is switched on).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch

from collapse_doctor.config import LoadedConfig
from collapse_doctor.config.schedule import FULL_STAGE
from collapse_doctor.data.arc import background_stats
from collapse_doctor.data.stream import Batch
from collapse_doctor.encoding import IGNORE_INDEX, PAD
from collapse_doctor.errors import CollapseDoctorError
from collapse_doctor.experiments.run_setup import RunSettings, prepare_run
from collapse_doctor.model.injection import CrossAttentionInjector
from collapse_doctor.model.rlan import RLAN
from collapse_doctor.train.losses import stablemax_log_probs
from collapse_doctor.train.trainer import Trainer

REFERENCE_MAGNITUDES = {
    "hyper_lora": "reference 1.10: ||dW||_F ~ 216 (174-263) per 256x256 target at init_scale 0.1, gain ~13.5; ~0.14 "
    "at init_scale 0.01",
    "cross_attention": "reference 1.5: post-norm attention + FFN block over support tokens; no magnitude reported",
    "solver_context": "reference 1.11: gated attention over 8x8-pooled support tokens; no magnitude reported",
    "hpm": "reference 1.6: gate tanh(0) = 0 at init in the reference",
}


@dataclass
class ModuleNoise:
    module: str
    relative_perturbation: dict[str, float | None]  # "init", "trained": ||f(x) - x|| / ||x||
    delta_fro_norm: dict[str, dict[str, float]] | None = None  # HyperLoRA: stage -> target -> ||dW||_F
    gain: dict[str, dict[str, float]] | None = None  # HyperLoRA: stage -> target -> ||dW||_F / sqrt(D) (isotropic y)
    reference: str = ""


@dataclass
class NoiseReport:
    config: str
    preset: str
    seed: int
    steps: int
    modules: list[ModuleNoise]
    background_bias: dict
    input_dependence: dict[
        str, float | None
    ]  # stage -> share of valid cells whose prediction changes when inputs are blanked
    preset_changes: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


@torch.no_grad()
def measure_modules(model: RLAN, batch: Batch) -> dict[str, dict]:
    """One eval forward with hooks: relative perturbation of each optional module on this batch."""
    captured: dict[str, list] = {}
    handles = []

    def keep(name):
        def hook(module, args, output):
            captured.setdefault(name, []).append((args, output))

        return hook

    if isinstance(model.context_injector, CrossAttentionInjector):
        handles.append(model.context_injector.register_forward_hook(keep("cross_attention")))
    if model.solver.solver_context is not None:
        handles.append(model.solver.solver_context.register_forward_hook(keep("solver_context")))
    if model.hpm is not None and model.dsc is not None:  # the DSC's input is the features HPM added to
        handles.append(model.hpm.register_forward_hook(keep("hpm")))
        handles.append(model.dsc.register_forward_hook(keep("after_hpm")))
    if model.hyper_lora is not None:
        handles.append(model.hyper_lora.register_forward_hook(keep("hyper_lora")))
    was_training = model.training
    model.eval()
    try:
        model(batch.query_input, batch.support_inputs, batch.support_outputs, batch.pair_mask, FULL_STAGE)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()

    def relative(pairs) -> float:
        return sum(float((out - args[0]).norm() / args[0].norm()) for args, out in pairs) / len(pairs)

    out: dict[str, dict] = {}
    for name in ("cross_attention", "solver_context"):
        if name in captured:
            out[name] = {"relative": relative(captured[name])}
    if "hpm" in captured:
        (_, (z, _)), (dsc_args, _) = captured["hpm"][0], captured["after_hpm"][0]
        features_after = dsc_args[0]
        added = z[:, :, None, None].expand_as(features_after)
        out["hpm"] = {"relative": float(added.norm() / (features_after - added).norm())}
    if "hyper_lora" in captured:
        deltas = captured["hyper_lora"][0][1]
        d = next(iter(deltas.values())).shape[-1]
        norms = {t: float(v.flatten(1).norm(dim=1).mean()) for t, v in deltas.items()}
        out["hyper_lora"] = {
            "relative": sum(norms.values()) / len(norms) / math.sqrt(d),
            "norms": norms,
            "gain": {t: n / math.sqrt(d) for t, n in norms.items()},
        }
    return out


def matching_background_bias(share: float, num_classes: int, softmax: bool) -> float:
    """The class-0 bias that makes P(background) equal the data's share with every other logit at 0."""
    odds = (num_classes - 1) * share / (1 - share)
    if softmax:
        return math.log(odds)
    # stablemax: s(b) / (s(b) + (C - 1) * s(0)) = share, s(0) = 1; s(b) = b + 1 (b >= 0) or 1 / (1 - b)
    return odds - 1 if odds >= 1 else 1 - 1 / odds


@torch.no_grad()
def background_at_init(model: RLAN, batch: Batch, softmax: bool) -> dict[str, float]:
    model_was = model.training
    model.eval()
    logits = model(batch.query_input, batch.support_inputs, batch.support_outputs, batch.pair_mask, FULL_STAGE).logits
    model.train(model_was)
    valid = (batch.query_target != IGNORE_INDEX) & (batch.query_target != PAD)
    probs = torch.softmax(logits.double(), dim=1) if softmax else stablemax_log_probs(logits).exp()
    return {
        "bg_argmax_share": float((logits.argmax(1) == 0)[valid].float().mean()),
        "mean_p_bg": float(probs[:, 0][valid].mean()),
    }


@torch.no_grad()
def input_dependence(model: RLAN, batch: Batch) -> float:
    """Share of valid cells whose prediction changes when every grid cell is blanked to colour 0."""
    was = model.training
    model.eval()

    def blank(grid: torch.Tensor) -> torch.Tensor:
        return torch.where(grid == PAD, grid, torch.zeros_like(grid))

    a = model(
        batch.query_input, batch.support_inputs, batch.support_outputs, batch.pair_mask, FULL_STAGE
    ).logits.argmax(1)
    b = model(
        blank(batch.query_input), blank(batch.support_inputs), blank(batch.support_outputs), batch.pair_mask, FULL_STAGE
    ).logits.argmax(1)
    model.train(was)
    valid = (batch.query_target != IGNORE_INDEX) & (batch.query_target != PAD)
    return float((a != b)[valid].float().mean())


def noise_audit(
    loaded: LoadedConfig,
    settings: RunSettings = RunSettings(),
    *,
    steps: int = 0,
    batch_size: int = 8,
) -> NoiseReport:
    """The init audit on one fixed batch, at initialisation and after `steps` training steps (on the CPU)."""
    if settings.device != "cpu":
        raise CollapseDoctorError(f"noise: --device {settings.device}: the audit runs on the CPU")
    preset = settings.preset
    setup = prepare_run(loaded, settings)
    config, tasks = setup.config, setup.tasks
    trainer = Trainer(config, tasks, seed=config.probe.seed, steps_per_epoch=max(1, steps or 1))
    # A fixed evaluation batch far from the training stream's first indices.
    batch = trainer.stream.batch(10**6, batch_size)
    softmax = config.training.loss_mode == "focal"
    share = background_stats(tasks).background_share
    at_init = measure_modules(trainer.model, batch)
    bg_init = background_at_init(trainer.model, batch, softmax)
    dependence = {"init": input_dependence(trainer.model, batch), "trained": None}
    trained = None
    if steps > 0:
        for _ in range(steps):
            trainer.train_step()
        trained = measure_modules(trainer.model, batch)
        dependence["trained"] = input_dependence(trainer.model, batch)
    modules = []
    for name, values in at_init.items():
        after = trained.get(name) if trained else None
        entry = ModuleNoise(
            name,
            {"init": values["relative"], "trained": after["relative"] if after else None},
            reference=REFERENCE_MAGNITUDES.get(name, ""),
        )
        if name == "hyper_lora":
            entry.delta_fro_norm = {"init": values["norms"], **({"trained": after["norms"]} if after else {})}
            entry.gain = {"init": values["gain"], **({"trained": after["gain"]} if after else {})}
        modules.append(entry)
    bias = {
        "configured": config.model.bg_bias,
        "data_background_share": share,
        "loss_probability": "softmax" if softmax else "stablemax",
        "matching_bias": matching_background_bias(share, config.model.num_classes, softmax),
        **bg_init,
    }
    return NoiseReport(
        loaded.source,
        preset,
        config.probe.seed,
        steps,
        modules,
        bias,
        dependence,
        [vars(c) for c in setup.preset_changes],
    )
