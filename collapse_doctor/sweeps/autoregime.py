"""The regime a headline command (bisect, gate --against, ablate) uses when the user names none.

The quick default cannot tell the seed's good config from its bad one: both collapse there
(docs/validity.md). So when no `--regime` (or `regime` in [tool.collapse-doctor]) is given, the command
calibrates on its own good and bad sides over DEFAULT_GRID, cheapest first: the sharp warm regimes
(phase 1 trains the good side once per seed and is shared by every later probe), then the cold grid.
Regimes are kept on the good side alone (it must stay learned, calibrate.stays_learned) before the bad
side is probed, in the first usable regime only: it is chosen if the bad side separates there, and
nothing is chosen otherwise (one test, so the rule's false-alarm rate holds; sweeps/calibrate.py). The choice is written to
the cache directory, keyed by both configs, the settings it was measured under and the code version,
and reused by the next run.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from collapse_doctor import __version__
from collapse_doctor.experiments.identity import CACHE_FORMAT, code_fingerprint, default_cache_dir
from collapse_doctor.experiments.regimes import DEFAULT_GRID, Regime
from collapse_doctor.sweeps.calibrate import Calibration, ConfigSource, run_calibration
from collapse_doctor.sweeps.executors import Executor

# A seed batch cannot start warm (experiments/seed_batch.py), and the grid starts with warm regimes.
SEED_BATCH_NEEDS_REGIME = "--seed-batch needs --regime: the calibrated regimes start warm, which a seed batch cannot"


@dataclass
class AutoRegime:
    regime: Regime | None  # None: no regime of the grid separates (calibration says why)
    calibration: Calibration | None  # None when the choice came from the regime cache
    cached: bool
    path: Path  # where the choice is (or would be) stored
    table: dict  # calibrate's JSON, stored with the choice

    def line(self) -> str:
        if self.regime is None:
            return (
                "no regime of the default grid separates the good side from the bad one: the bad side is not worse "
                "in the first regime where the good side learns (calibrate's table below)"
            )
        how = (
            "reused from " + str(self.path)
            if self.cached
            else "chosen by calibrating first, stored in " + str(self.path)
        )
        good = next((r for r in self.table.get("regimes", []) if r["regime"] == self.regime.name), {})
        evidence = (
            f" (good side learned, bad side separated: p = {good['p']:.3g}, Cliff's delta {good['cliffs_delta']:.2f})"
            if good.get("p") is not None
            else ""
        )
        return f"no --regime given: using '{self.regime.name}' ({self.regime.summary}){evidence}; {how}"

    def to_json(self) -> dict:
        return {
            "regime": self.regime.name if self.regime else None,
            "overrides": list(self.regime.overrides) if self.regime else [],
            "cached": self.cached,
            "path": str(self.path),
            "calibration": self.table,
        }


def _key(good: ConfigSource, bad: ConfigSource, seeds: int, overrides: list[str], preset: str, data: str, device: str):
    def text(source: ConfigSource) -> str:
        if source.text is not None:
            return source.text
        return Path(source.path).read_text(encoding="utf-8") if source.path else "<embedded default config>"

    payload = {
        "good": [text(good), list(good.overrides)],
        "bad": [text(bad), list(bad.overrides)],
        "seeds": seeds,
        "overrides": list(overrides),
        "preset": preset,
        "data": str(data),
        "device": device,
        "grid": [[r.name, list(r.overrides)] for r in DEFAULT_GRID],
        "version": __version__,
        "format": CACHE_FORMAT,
        "code": code_fingerprint(),  # the package's source and torch: another code version chooses again
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def choose_regime(
    good: ConfigSource,
    bad: ConfigSource,
    *,
    seeds: int,
    overrides: list[str] | None = None,
    preset: str = "tiny",
    data: str = "arc-agi-1",
    device: str = "cpu",
    jobs: int = 1,
    cache_dir=None,
    executor: Executor | None = None,
    progress: Callable[[str], None] | None = None,
    on_probe: Callable | None = None,
    grid: tuple[Regime, ...] = DEFAULT_GRID,
) -> AutoRegime:
    """The cheapest regime of `grid` where the good side stays learned, if the bad side separates there."""
    overrides = list(overrides or [])
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = directory / "regimes" / f"{_key(good, bad, seeds, overrides, preset, data, device)}.json"
    if path.exists():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            by_name = {r.name: r for r in grid}
            if stored.get("regime") in by_name:
                return AutoRegime(by_name[stored["regime"]], None, True, path, stored.get("calibration", {}))
        except (OSError, ValueError):
            pass  # an unreadable choice is made again
    calibration = run_calibration(
        good,
        bad,
        regimes=grid,
        seeds=seeds,
        confirm=False,
        overrides=overrides,
        preset=preset,
        data=data,
        device=device,
        jobs=jobs,
        cache_dir=cache_dir,
        executor=executor,
        progress=progress,
        on_probe=on_probe,
    )
    chosen = calibration.chosen.regime if calibration.chosen is not None else None
    table = calibration.to_json()
    if chosen is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"regime": chosen.name, "overrides": list(chosen.overrides), "calibration": table}, handle)
        os.replace(tmp, path)
    return AutoRegime(chosen, calibration, False, path, table)
