"""What a user asks each sweep for, one typed object per command: the CLI builds it from its options,
the library function takes it (tests and scripts may pass its fields as keywords instead). The fields
every sweep shares (the overrides, the data, where probes are cached, how many run at once) are declared
once, in `SharedSettings`, and the preset and device in `SweepSettings`; bisect's settings live beside
its search (bisect/settings.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from collapse_doctor.errors import CollapseDoctorError
from collapse_doctor.experiments.presets import PRESETS
from collapse_doctor.experiments.regimes import GRID, Regime

LARGE_DELTA = 0.474  # Romano et al. 2006: |Cliff's delta| >= 0.474 is a large effect


@dataclass(frozen=True, kw_only=True)
class SharedSettings:
    """What every sweep takes, the gate included."""

    overrides: tuple[str, ...] = ()  # --set, after a regime's keys
    data: str = "arc-agi-1"
    jobs: int | None = 1  # probes at once (local worker processes, or Ray tasks)
    cache_dir: str | Path | None = None  # default: ~/.cache/collapse-doctor/cache
    seed_batch: bool = False  # each config's seeds as one vectorised model (train/seed_batch.py)
    auto_regime: bool = False  # no regime was named: calibrate first (sweeps/autoregime.py)

    def check(self) -> None:
        pass


@dataclass(frozen=True, kw_only=True)
class SweepSettings(SharedSettings):
    """A sweep whose probes' size and device the user chooses (the gate's are fixed: tiny, CPU)."""

    preset: str = "tiny"
    device: str = "cpu"

    def check(self) -> None:
        if self.preset not in PRESETS:
            raise CollapseDoctorError(f"--preset {self.preset!r}: expected one of {', '.join(PRESETS)}")


@dataclass(frozen=True, kw_only=True)
class AblationSettings(SweepSettings):
    config_path: str | Path | None = None  # default: the embedded seed NEW config
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int | None = None
    only: tuple[str, ...] = ()  # variant or suspect names to keep
    skip: tuple[str, ...] = ()
    alpha: float = 0.05
    stage_epoch: int = 3  # the staged variants' start epoch
    warmup_epochs: float = 2.0  # the ramped variants' warm-up

    def check(self) -> None:
        super().check()
        if not 0 < self.alpha < 1:
            raise CollapseDoctorError(f"--alpha {self.alpha}: must lie in (0, 1)")

    def user_overrides(self) -> list[str]:
        return [*self.overrides, *([f"probe.steps={self.steps}"] if self.steps is not None else [])]


@dataclass(frozen=True, kw_only=True)
class CalibrationSettings(SweepSettings):
    regimes: tuple[Regime, ...] = GRID
    seeds: int = 5  # per side and regime; the confirmation uses as many fresh ones
    min_good: int | None = None  # default: 80 % of the seeds
    alpha: float = 0.05
    min_delta: float = LARGE_DELTA
    warm: bool = False  # every regime of the grid as its warm-start variant
    confirm: bool = True
    budget: float | None = None  # seconds of probe time; regimes past it are listed as not run

    def check(self) -> None:
        super().check()
        if not 0 < self.alpha < 1:
            raise ValueError("alpha must lie in (0, 1)")


@dataclass(frozen=True, kw_only=True)
class GateSettings(SharedSettings):
    config_path: str | Path | None = None  # default: [tool.collapse-doctor] config, else the embedded NEW
    seeds: int | None = None  # default: [tool.collapse-doctor] seeds, else 3
    steps: int | None = None
    jobs: int | None = None  # default: [tool.collapse-doctor] jobs, else the CPU count (at most the seeds)
    against: str | Path | None = None  # a known-good config: classify every seed by the measure against it
