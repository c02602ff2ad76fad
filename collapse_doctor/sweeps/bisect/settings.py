"""What a user asks a bisect for, checked before anything is read or probed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from collapse_doctor.errors import CollapseDoctorError
from collapse_doctor.experiments.presets import PRESETS
from collapse_doctor.judge.measures import MeasureRule
from collapse_doctor.sweeps.bisect.judges import SeedPolicy


@dataclass(frozen=True)
class BisectSettings:
    """What the user asked a bisect for; the CLI builds one from its options."""

    good_rev: str
    bad_rev: str = "HEAD"
    repo_path: str | Path = "."
    config_path: str | None = None  # inside the repository; default: [tool.collapse-doctor] config
    overrides: tuple[str, ...] = ()
    preset: str = "tiny"
    steps: int | None = None
    policy: SeedPolicy = SeedPolicy()
    scan: bool = False
    minimize: bool = False
    command: str | None = None  # --cmd: the user's command judges each commit instead of probes
    command_timeout: float | None = None
    jobs: int = 1
    cache_dir: str | Path | None = None
    data: str = "arc-agi-1"
    device: str = "cpu"
    rule: MeasureRule | None = None  # --by measure
    auto_regime: bool = False  # no regime was named: calibrate on the two endpoints first

    def check(self) -> None:
        policy = self.policy
        if self.preset not in PRESETS:
            raise CollapseDoctorError(f"--preset {self.preset!r}: expected one of {', '.join(PRESETS)}")
        if policy.first < 1 or policy.cap < policy.first:
            raise CollapseDoctorError(
                f"--seeds {policy.first} / --max-seeds {policy.cap}: need 1 <= seeds <= max-seeds"
            )
        if self.rule is not None and policy.first < 4:
            raise CollapseDoctorError(
                f"--by measure needs --seeds 4 or more: with {policy.first} seeds a side the exact rank test cannot "
                "reach p < 0.05 (3 vs 3: p >= 0.05)"
            )
        if self.rule is not None and self.command is not None:
            raise CollapseDoctorError("--by measure judges probes; it cannot be combined with --cmd")
        if self.minimize and self.command is not None:
            raise CollapseDoctorError("--minimize works on config keys; it cannot be combined with --cmd")
