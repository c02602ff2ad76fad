"""ablate: the seed's recipe ("add one module at a time", "make new modules identity until a start
epoch") as one measured command.

Variants are built from the user's config with --set-style overrides:
- the minimal base (the seed's Option C: every suspect at its harmless value: optional modules off,
  EMA on, bg_bias 0, no checkpointing), and the base plus each suspect alone;
- the full config, and the full config minus each suspect alone;
- the full config with each stageable module staged to a later epoch, abrupt and with a warm-up ramp.
Adding SolverCrossAttention, the CrossAttentionInjector or HyperLoRA also moves the ContextEncoder
from its vector to its spatial path (reference 1.1); such variants are marked, and a base variant
with the spatial path alone separates that effect.

Each variant is probed on K seeds. A culprit is named only where a variant's bad-verdict count
differs from its reference variant's with Fisher's exact p-value under --alpha; every claim shows
the counts and the p-value (3 of 3 against 0 of 3 gives p = 0.10: not a culprit at 0.05).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from collapse_doctor.config import Config, get_key, load_config
from collapse_doctor.errors import CollapseDoctorError, ConfigError
from collapse_doctor.experiments.presets import PRESETS, apply_preset
from collapse_doctor.judge.measures import PRIMARY, compare
from collapse_doctor.judge.stats import fisher_exact, smallest_p
from collapse_doctor.judge.verdict import is_good
from collapse_doctor.sweeps.autoregime import SEED_BATCH_NEEDS_REGIME, AutoRegime, choose_regime
from collapse_doctor.sweeps.calibrate import ConfigSource
from collapse_doctor.sweeps.executors import Executor, sweep_executor
from collapse_doctor.sweeps.jobs import ProbeJob, ProbeSummary
from collapse_doctor.sweeps.runner import run_jobs
from collapse_doctor.sweeps.settings import AblationSettings


@dataclass(frozen=True)
class Suspect:
    name: str
    label: str
    keys: tuple[str, ...]  # the keys that carry it (their config values are what "on" means)
    base: dict[str, Any]  # the harmless values of the minimal base
    start_key: str | None = None  # stageable: its start-epoch key
    warmup_key: str | None = None
    spatial: bool = False  # adding it moves the ContextEncoder to the spatial path


SUSPECTS: tuple[Suspect, ...] = (
    Suspect(
        "hyper_lora",
        "HyperLoRA",
        ("model.use_hyperlora",),
        {"model.use_hyperlora": False},
        "model.hyperlora_start_epoch",
        "training.hyperlora_warmup_epochs",
        True,
    ),
    Suspect(
        "solver_context",
        "SolverCrossAttention",
        ("model.use_solver_context",),
        {"model.use_solver_context": False},
        "training.solver_context_start_epoch",
        "training.solver_context_warmup_epochs",
        True,
    ),
    Suspect(
        "cross_attention",
        "CrossAttentionInjector",
        ("model.use_cross_attention_context",),
        {"model.use_cross_attention_context": False},
        "training.cross_attention_start_epoch",
        "training.cross_attention_warmup_epochs",
        True,
    ),
    Suspect(
        "hpm", "HPM", ("model.use_hpm",), {"model.use_hpm": False}, "model.hpm_start_epoch", "model.hpm_warmup_epochs"
    ),
    Suspect("loo", "LOO loss", ("training.loo_training.enabled",), {"training.loo_training.enabled": False}),
    Suspect(
        "equivariance",
        "equivariance loss",
        ("training.equivariance_training.enabled",),
        {"training.equivariance_training.enabled": False},
    ),
    Suspect(
        "checkpointing",
        "gradient checkpointing",
        ("training.gradient_checkpointing",),
        {"training.gradient_checkpointing": False},
    ),
    Suspect("ema_off", "EMA off", ("training.use_ema",), {"training.use_ema": True}),
    Suspect("bg_bias", "bg_bias", ("model.bg_bias",), {"model.bg_bias": 0.0}),
)
NOT_ABLATED = {
    "batch size": "a preset sets the batch (tiny 8, small 8 x 2); compare batch sizes with --set "
    "training.batch_size=N on the full preset",
}


def _fmt(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (bool, type(None))) else str(value)


@dataclass
class Variant:
    name: str
    overrides: tuple[str, ...]
    reference: str | None  # the variant it is compared with
    group: str  # "base", "add", "remove", "stage", "full"
    suspect: str | None = None
    changes_encoder_path: bool = False
    seeds: list[ProbeSummary] = field(default_factory=list)

    @property
    def bad(self) -> int:
        return sum(1 for s in self.seeds if is_good(s.label) is False)

    @property
    def decided(self) -> int:
        return sum(1 for s in self.seeds if is_good(s.label) is not None)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.seeds:
            out[s.label] = out.get(s.label, 0) + 1
        return out


def suspect_on(config: Config, suspect: Suspect) -> bool:
    return any(get_key(config, k) != v for k, v in suspect.base.items())


def build_variants(config: Config, *, stage_epoch: int = 3, warmup_epochs: float = 2.0) -> list[Variant]:
    present = [s for s in SUSPECTS if suspect_on(config, s)]
    base_overrides = tuple(f"{k}={_fmt(v)}" for s in SUSPECTS for k, v in s.base.items())
    on = {s.name: tuple(f"{k}={_fmt(get_key(config, k))}" for k in s.keys) for s in present}
    any_spatial = any(s.spatial for s in present)
    variants = [Variant("base", base_overrides, None, "base")]
    if any_spatial:
        variants.append(
            Variant(
                "base + spatial context path",
                base_overrides + ("model.context_path=spatial",),
                "base",
                "add",
                None,
                True,
            )
        )
    for s in present:
        variants.append(Variant(f"base + {s.label}", base_overrides + on[s.name], "base", "add", s.name, s.spatial))
    variants.append(Variant("full", (), None, "full"))
    for s in present:
        others_spatial = any(o.spatial for o in present if o is not s)
        variants.append(
            Variant(
                f"full - {s.label}",
                tuple(f"{k}={_fmt(v)}" for k, v in s.base.items()),
                "full",
                "remove",
                s.name,
                s.spatial and not others_spatial,
            )
        )
    for s in present:
        if s.start_key is None:
            continue
        start = f"{s.start_key}={stage_epoch}"
        variants.append(Variant(f"full, {s.label} from epoch {stage_epoch}", (start,), "full", "stage", s.name))
        variants.append(
            Variant(
                f"full, {s.label} from epoch {stage_epoch} + {warmup_epochs:g}-epoch ramp",
                (start, f"{s.warmup_key}={warmup_epochs}"),
                "full",
                "stage",
                s.name,
            )
        )
    return variants


def select(variants: list[Variant], only: list[str], skip: list[str]) -> list[Variant]:
    """--only / --skip match variant names by substring (case-insensitive); references are kept."""
    for flag, patterns in (("--only", only), ("--skip", skip)):
        if any(not re.sub(r"[^A-Za-z0-9]", "", p) for p in patterns):
            raise CollapseDoctorError(
                f"{flag} {next(p for p in patterns if not re.sub(r'[^A-Za-z0-9]', '', p))!r}: the name is empty; give a "
                "variant, suspect or config key (e.g. HyperLoRA, model.use_hyperlora)"
            )

    def norm(text: str) -> str:
        return re.sub(r"[^a-z0-9+\-]", "", text.lower())

    def names_of(v: Variant) -> list[str]:
        suspect = next((s for s in SUSPECTS if s.name == v.suspect), None)
        extra = [suspect.name, *suspect.keys] if suspect is not None else []
        return [norm(v.name), *(norm(x) for x in extra)]

    def hit(v: Variant, patterns: list[str]) -> bool:
        return any(norm(p) and any(norm(p) in name for name in names_of(v)) for p in patterns)

    chosen = [v for v in variants if (not only or hit(v, only)) and not hit(v, skip)]
    if only and not any(hit(v, only) for v in chosen):
        raise CollapseDoctorError(
            f"--only {', '.join(only)}: matches no variant; variants: {'; '.join(v.name for v in variants)} (suspect "
            "names and config keys match too, e.g. hyper_lora, model.use_hyperlora)"
        )
    names = {v.name for v in chosen}
    needed = {v.reference for v in chosen if v.reference and v.reference not in names}
    return [v for v in variants if v.name in names or v.name in needed]


@dataclass
class Claim:
    variant: str
    reference: str
    bad: int
    seeds: int
    reference_bad: int
    reference_seeds: int
    p_value: float
    significant: bool
    text: str
    fg_auc: list[float] = field(default_factory=list)  # the primary measure per seed (docs/validity.md)
    reference_fg_auc: list[float] = field(default_factory=list)
    rank_p: float | None = None  # two-sided exact Mann-Whitney on fg_auc
    cliffs_delta: float | None = None  # positive: the variant's fg_auc is lower (worse)


@dataclass
class AblationResult:
    config: str
    preset: str
    seeds: list[int]
    steps: int
    alpha: float
    variants: list[Variant]
    claims: list[Claim]
    smallest_possible_p: float
    not_ablated: dict[str, str]
    notes: list[str] = field(default_factory=list)
    seed_batch: bool = False  # each variant's seeds ran as one vectorised model
    auto_regime: AutoRegime | None = None  # no regime named: the one calibrated first (or none separated)

    def to_json(self) -> dict:
        return {
            "config": self.config,
            "regime": self.auto_regime.to_json() if self.auto_regime else None,
            "preset": self.preset,
            "seeds": self.seeds,
            "seed_batch": self.seed_batch,
            "steps": self.steps,
            "alpha": self.alpha,
            "smallest_possible_p": self.smallest_possible_p,
            "variants": [
                {
                    "name": v.name,
                    "group": v.group,
                    "suspect": v.suspect,
                    "reference": v.reference,
                    "overrides": list(v.overrides),
                    "changes_encoder_path": v.changes_encoder_path,
                    "bad": v.bad,
                    "counts": v.counts(),
                    "per_seed": [s.to_json(compact=True) for s in v.seeds],
                }
                for v in self.variants
            ],
            "claims": [asdict(c) for c in self.claims],
            "not_ablated": self.not_ablated,
            "notes": self.notes,
        }


def judge_claims(variants: list[Variant], alpha: float) -> list[Claim]:
    by_name = {v.name: v for v in variants}
    claims = []
    for v in variants:
        ref = by_name.get(v.reference) if v.reference else None
        if ref is None or not v.seeds or not ref.seeds:
            continue
        p = fisher_exact(v.bad, len(v.seeds), ref.bad, len(ref.seeds))
        significant = p < alpha
        counts = f"{v.bad}/{len(v.seeds)} bad vs {ref.bad}/{len(ref.seeds)} for {ref.name}, p = {p:.3g}"
        if not significant:
            text = f"no claim: {counts} (not below {alpha:g})"
        elif v.group == "add":
            text = f"{'adding it causes collapse' if v.bad > ref.bad else 'adding it prevents collapse'}: {counts}"
        elif v.group == "remove":
            text = f"{'removing it prevents collapse: culprit' if v.bad < ref.bad else 'removing it causes collapse'}: {counts}"
        else:
            text = f"{'staging it prevents collapse' if v.bad < ref.bad else 'staging it causes collapse'}: {counts}"
        c = compare([s.measures.get(PRIMARY) for s in v.seeds], [s.measures.get(PRIMARY) for s in ref.seeds])
        measured = bool(c.candidate and c.reference)
        claims.append(
            Claim(
                v.name,
                ref.name,
                v.bad,
                len(v.seeds),
                ref.bad,
                len(ref.seeds),
                p,
                significant,
                text,
                c.candidate,
                c.reference,
                c.p_two_sided if measured else None,
                c.cliffs_delta if measured else None,
            )
        )
    return claims


def late_stages(variants: list[Variant], window: int) -> list[tuple[str, int]]:
    """Staged variants whose module switches on fewer than `window` steps before the run ends (first seed)."""
    out = []
    for v in variants:
        if v.group != "stage" or not v.seeds or not v.seeds[0].series:
            continue
        s = v.seeds[0]
        on = [e["step"] for e in s.events if e.get("event") == f"{v.suspect} on"]
        left = max(r["step"] for r in s.series) - on[-1] + 1 if on else None
        if left is not None and left < window:
            out.append((v.name, left))
    return out


def run_ablation(
    config_path: str | Path | None = None,
    *,
    settings: AblationSettings | None = None,
    progress: Callable[[int, int, ProbeSummary], None] | None = None,
    executor: Executor | None = None,
    **fields,
) -> AblationResult:
    """Probe every variant of the config on every seed and judge the seed's claims: `settings`, or its fields
    as keywords. seed_batch: each variant's seeds train as one vectorised model (train/seed_batch.py); the
    variants' batches run in parallel worker processes with jobs > 1.
    auto_regime: no regime was named, so calibrate the minimal base (good) against the full config (bad)
    first (sweeps/autoregime.py) and ablate in the chosen regime; a warm one's phase 1 is the base."""
    s = settings if settings is not None else AblationSettings(config_path=config_path, **fields)
    s.check()
    config_path, seeds, user = s.config_path, list(s.seeds), s.user_overrides()
    loaded = load_config(config_path, user)
    config, _ = apply_preset(loaded, PRESETS[s.preset])
    if s.seed_batch and config.probe.warm_start_steps:
        raise ConfigError(f"{loaded.source}: probe.warm_start_steps: a seed batch does not run warm starts")
    variants = select(
        build_variants(loaded.config, stage_epoch=s.stage_epoch, warmup_epochs=s.warmup_epochs), s.only, s.skip
    )
    for v in variants:
        load_config(config_path, [*user, *v.overrides])  # every variant must be a valid config before anything runs
    minimal = tuple(f"{k}={_fmt(v)}" for suspect in SUSPECTS for k, v in suspect.base.items())
    path = str(config_path) if config_path else None
    with sweep_executor(executor, s.jobs) as executor:  # the calibration and the ablation share the workers
        chosen = None
        if s.auto_regime:
            if s.seed_batch:
                raise ConfigError(SEED_BATCH_NEEDS_REGIME)
            chosen = choose_regime(
                ConfigSource("minimal base", path=path, overrides=minimal),
                ConfigSource("full", path=path),
                seeds=max(len(seeds), 4),
                overrides=user,
                preset=s.preset,
                data=s.data,
                device=s.device,
                jobs=s.jobs,
                cache_dir=s.cache_dir,
                executor=executor,
                on_probe=progress,
            )
            if chosen.regime is None:
                result = AblationResult(
                    loaded.source, s.preset, seeds, config.probe.steps, s.alpha, [], [], 1.0, NOT_ABLATED
                )
                result.auto_regime = chosen
                result.notes.append(chosen.line())
                return result
            user = [*chosen.regime.overrides, *user]
            config, _ = apply_preset(load_config(config_path, user), PRESETS[s.preset])
        together = tuple(seeds) if s.seed_batch else None
        probe_jobs = [_variant_job(path, user, v, seed, minimal, s, together) for v in variants for seed in seeds]
        results = run_jobs(probe_jobs, jobs=s.jobs, cache_dir=s.cache_dir, progress=progress, executor=executor)
    by_variant: dict[str, list[ProbeSummary]] = {}
    for job, summary in zip(probe_jobs, results):
        by_variant.setdefault(job.tag, []).append(summary)
    for v in variants:
        v.seeds = by_variant.get(v.name, [])
    result = AblationResult(
        loaded.source,
        s.preset,
        seeds,
        config.probe.steps,
        s.alpha,
        variants,
        judge_claims(variants, s.alpha),
        smallest_p(len(seeds), len(seeds)),
        NOT_ABLATED,
    )
    result.seed_batch = s.seed_batch
    result.auto_regime = chosen
    result.notes += _ablation_notes(variants, config)
    return result


def _variant_job(path, user, variant, seed: int, minimal, settings: AblationSettings, together) -> ProbeJob:
    """One seed of one variant; a warm start's phase 1 is the minimal base for every variant, so all
    variants share its checkpoint."""
    return ProbeJob(
        path,
        (*user, *variant.overrides, f"probe.seed={seed}"),
        settings.preset,
        settings.data,
        None,
        settings.device,
        variant.name,
        base_overrides=(*user, *minimal, f"probe.seed={seed}"),
        seed_batch=together,
    )


def _ablation_notes(variants: list, config) -> list[str]:
    """What limits the answer: a staged module that switches on too late to be judged; a base that
    collapses as the full config does (no culprit can be separated in this regime)."""
    notes = []
    for name, left in late_stages(variants, config.verdict.window_after):
        notes.append(
            f"{name}: the staged module switches on {left} steps before the end of the run, fewer than the "
            f"{config.verdict.window_after} steps after an activation the verdict compares (verdict.window_after): a "
            "collapse after it may not be confirmed in time, so a 'staging prevents collapse' claim here is no "
            "evidence; test staging in a regime whose run reaches past the stage by that much (warm-b8)"
        )
    by_name = {v.name: v for v in variants}
    references = [by_name[n] for n in ("base", "full") if n in by_name and by_name[n].seeds]
    if len(references) == 2 and all(v.bad == len(v.seeds) for v in references):
        notes.append(
            "the minimal base and the full config both collapse on every seed "
            f"({references[0].bad}/{len(references[0].seeds)} and {references[1].bad}/{len(references[1].seeds)}): "
            "in this regime the verdicts cannot separate a culprit; compare fg_auc (columns), find a regime where the "
            "base learns with "
            "`collapse-doctor calibrate`, then ablate with --regime FILE, or test activations with --warm-start auto"
        )
    return notes
