"""What one NEW probe costs in the chosen sharp regime (warm-b8-p10) with its phase 1 cached, on one
core (probe.threads is 1), and where that time goes (cProfile, cumulative).

    python bench/probe_cost.py [--regime warm-b8-p10] [--cache-dir DIR] [--top 20]

Runs the probe once to train (or load) phase 1, drops the probe's cache entry but keeps the phase-1
checkpoint, and times the probe again in this process, as a sweep's worker runs it (tasks loaded, model
built, phase 1 loaded and transplanted, phase 2 trained, judged). Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

from collapse_doctor.experiments.regimes import by_name
from collapse_doctor.sweeps.jobs import ProbeJob
from collapse_doctor.sweeps.runner import run_jobs

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regime", default="warm-b8-p10")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--sort", default="cumulative", help="cProfile sort key: cumulative or tottime")
    args = parser.parse_args()
    cache = Path(args.cache_dir or tempfile.mkdtemp(prefix="probe-cost-"))
    regime = by_name(args.regime)
    job = ProbeJob(
        str(ROOT / "fixtures" / "seed_new_main.yaml"),
        (*regime.overrides, "probe.seed=0"),
        "tiny",
        "arc-agi-1",
        None,
        "cpu",
        "new",
        base_text=(ROOT / "fixtures" / "seed_old_2a50f2d.yaml").read_text(),
        base_source="seed_old_2a50f2d.yaml",
    )
    started = time.perf_counter()
    run_jobs([job], cache_dir=cache)
    print(f"first run (phase 1 trained or loaded, then phase 2): {time.perf_counter() - started:.1f} s")
    for entry in cache.glob("*.json"):
        entry.unlink()  # the probe runs again; its phase-1 checkpoint (cache/warm) stays
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    (summary,) = run_jobs([job], cache_dir=cache)
    profile.disable()
    wall = time.perf_counter() - started
    print(
        f"NEW probe in {regime.name}, phase 1 cached, one thread: {wall:.1f} s ({summary.label}, {summary.steps_run} steps)"
    )
    pstats.Stats(profile).sort_stats(args.sort).print_stats(args.top)


if __name__ == "__main__":
    main()
