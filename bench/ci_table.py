"""The numbers that show the tool is fast enough for CI, in one table (issue 7):

- gate time-to-verdict (wall clock of `collapse-doctor gate`, torch start-up included, cold cache) on a
  healthy and on a collapsing config;
- probe steps per second per preset (tiny, small; the full preset is GPU work);
- bisect cost on a 32-commit fixture history, in probes and seconds, against the ceil(log2 N) + 1
  rounds a plain binary search needs, with every commit's config distinct, and with only the one
  commit that matters changing it;
- the cached re-run of that bisect.

    python bench/ci_table.py [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "fixtures"))
import git_history  # noqa: E402


def cli(*args, cwd=None) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "collapse_doctor", *args], capture_output=True, text=True, cwd=cwd)
    return time.perf_counter() - started, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cd-bench-"))
    rows: list[tuple[str, str, str]] = []

    class Rows(list):
        def append(self, row) -> None:  # print as we go: a long bench shows progress and survives Ctrl-C
            super().append(row)
            print(" | ".join(row), flush=True)

    rows = Rows()

    good, bad = work / "good.yaml", work / "bad.yaml"
    good.write_text(git_history._old_config(git_history.GOOD_CHANGES))
    bad.write_text(git_history._old_config(git_history.BAD_CHANGES))
    for name, path in (("healthy", good), ("collapsing", bad), ("NEW (embedded)", None)):
        seconds, done = cli(
            "gate",
            *([str(path)] if path else []),
            "--cache-dir",
            str(work / f"gate-{name[:3]}"),
            "--jobs",
            str(args.jobs),
            "--json",
            "-",
        )
        data = json.loads(done.stdout)
        steps = ", ".join(str(s["steps_run"]) for s in data["seeds"])
        rows.append(
            (
                f"gate, {name} config",
                f"{seconds:.1f} s",
                f"{data['label']} (exit {done.returncode}); {len(data['seeds'])} seeds run, steps run {steps} of "
                f"{data['steps']}",
            )
        )

    for preset, steps, config in (("tiny", 40, None), ("tiny", 40, "old"), ("small", 10, None)):
        from collapse_doctor.config import default_config_path

        path = str(default_config_path(config)) if config else None
        # steps_per_epoch far beyond the steps: nothing activates, so this is the early phase alone
        seconds, done = cli(
            "probe",
            *([path] if path else []),
            "--preset",
            preset,
            "--steps",
            str(steps),
            "--out",
            str(work / "probes"),
            "--json",
            "-",
            "--set",
            "probe.early_stop_after=null",
            "--set",
            "probe.steps_per_epoch=100000",
        )
        data = json.loads(done.stdout)
        rows.append(
            (
                f"probe steps/s, {preset}, {'OLD' if config else 'NEW'} config",
                f"{data['timing']['steps_per_second']:.2f}",
                f"{steps} steps before any meta loss, 1 thread",
            )
        )
    rows.append(("probe steps/s, full", "n/a", "GPU work; no GPU was lent to this session"))

    for distinct in (True, False):
        repo = work / f"long-{distinct}"
        git_history.build(repo, git_history.long_history(32, 21, distinct))
        cache = work / f"bisect-cache-{distinct}"
        seconds, done = cli(
            "bisect", "--from", "HEAD~31", "--jobs", str(args.jobs), "--cache-dir", str(cache), "--json", "-", cwd=repo
        )
        data = json.loads(done.stdout)
        rounds = math.ceil(math.log2(32)) + 1
        label = "every commit's config distinct" if distinct else "only the bad commit changes the config"
        found = data["first_bad_info"]["subject"] if data["first_bad"] else data["outcome"]
        rows.append(
            (
                f"bisect, 32 commits, {label}",
                f"{seconds:.0f} s",
                f"{data['probes']['run']} probes, {len(data['judgements'])} commits judged (incl. 2 endpoints) vs "
                f"ceil(log2 32)+1 = {rounds} rounds; found '{found}'",
            )
        )
        seconds, done = cli(
            "bisect", "--from", "HEAD~31", "--jobs", str(args.jobs), "--cache-dir", str(cache), "--json", "-", cwd=repo
        )
        data = json.loads(done.stdout)
        rows.append(
            (
                f"bisect re-run, cached ({'distinct' if distinct else 'shared'})",
                f"{seconds:.1f} s",
                f"{data['probes']['run']} probes run, {data['probes']['cached']} from the cache",
            )
        )

    width = max(len(r[0]) for r in rows)
    print()
    print(f"{'measure':<{width}}  {'value':>9}  detail")
    for name, value, detail in rows:
        print(f"{name:<{width}}  {value:>9}  {detail}")


if __name__ == "__main__":
    main()
