"""Probe configs x regimes x seeds through the package's own sweep (cache included), one worker
thread, and print verdict counts and the measures per (config, regime). Interrupt and rerun to resume.

    python bench/regime_sweep.py fixtures/seed_old_2a50f2d.yaml --regimes b8,b8-lr-sqrt --seeds 0-4
    python bench/regime_sweep.py CONFIG --regimes warm-b8-lr-sqrt --seeds 0-4 --base fixtures/seed_old_2a50f2d.yaml

Results (one JSON line per probe) are appended to --out for docs/validity.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from collapse_doctor.experiments.regimes import by_name
from collapse_doctor.sweeps.jobs import ProbeJob
from collapse_doctor.sweeps.runner import run_jobs


def seeds(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--regimes", required=True)
    parser.add_argument("--seeds", default="0-4")
    parser.add_argument("--base", default=None, help="warm-start base config (default: derived from CONFIG)")
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--out", default="bench/results/regimes.jsonl")
    args = parser.parse_args()
    base_text = Path(args.base).read_text() if args.base else None
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    for name in args.regimes.split(","):
        regime = by_name(name)
        jobs = [
            ProbeJob(
                args.config,
                (*regime.overrides, *args.set, f"probe.seed={s}"),
                "tiny",
                "arc-agi-1",
                None,
                "cpu",
                tag=name,
                base_text=base_text,
                base_source=args.base or "",
            )
            for s in seeds(args.seeds)
        ]
        started = time.time()

        def progress(done, total, summary):
            print(
                f"  {name} seed {summary.seed}: {summary.label:12} onset {summary.onset_step} fg_auc "
                f"{summary.measures.get('fg_auc')} {summary.seconds:.0f}s{' (cached)' if summary.cached else ''}",
                flush=True,
            )

        results = run_jobs(jobs, jobs=1, progress=progress)
        with open(args.out, "a", encoding="utf-8") as handle:
            for s in results:
                handle.write(
                    json.dumps(
                        {
                            "config": args.config,
                            "base": args.base,
                            "regime": name,
                            "set": args.set,
                            **s.to_json(compact=True),
                        }
                    )
                    + "\n"
                )
        labels = [s.label for s in results]
        print(f"{args.config} {name}: {labels} in {time.time() - started:.0f}s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
