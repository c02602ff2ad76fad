"""The path of one probe job through the package, from its key (sweeps/jobs.py: ProbeJob.key, which the
sweep computes first) and sweeps/jobs.py:execute to its verdict (issue 23, item 7): which modules it
passes, how often it comes back to a module it had already left, and how many times a config is parsed
and the preset applied.

A profiler hook records every call into a collapse_doctor function, in one process (a warm-start
job of the fixture pair, one phase-1 step and one phase-2 step, so the training loop is short). The
leaf layers (config/: parsing, data/: tasks and batches, model/: the forward pass) are followed to
their entry only: a call into one of them from outside is one visit to the module it entered, and
the calls it makes inside its own layer are its business. Consecutive calls within one module are one
visit. "Returns" counts the visits to a module that an earlier visit had already left.

    python bench/probe_path.py             # the code installed (or on PYTHONPATH)

Run it on two checkouts (PYTHONPATH=/path/to/other/checkout) to compare them.
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LEAF_LAYERS = ("config", "data", "model")


def trace_job() -> tuple[list[str], Counter]:
    from collapse_doctor.sweeps.jobs import ProbeJob, execute

    old = (ROOT / "fixtures" / "seed_old_2a50f2d.yaml").read_text()
    overrides = (
        "probe.warm_start_steps=1",
        "probe.warm_start_until_learned=false",
        "probe.steps=1",
        "probe.early_stop_after=null",
        "probe.seed=0",
    )
    job = ProbeJob(
        None,
        overrides,
        "tiny",
        "arc-agi-1",
        None,
        "cpu",
        "path",
        config_text=old,
        source="old.yaml",
        base_text=old,
        base_source="old.yaml",
    )
    visits: list[str] = []
    counted: Counter = Counter()
    watched = {"parse_config", "parse_config_text", "load_config", "apply_preset", "probe_key"}
    leaf = [None, 0]  # the leaf layer being visited, and the depth of calls inside it

    def layer(module: str) -> str | None:
        parts = module.split(".")
        return parts[1] if len(parts) > 2 and parts[1] in LEAF_LAYERS else None

    def hook(frame, event, arg):
        module = frame.f_globals.get("__name__", "")
        if not module.startswith("collapse_doctor"):
            return
        if frame.f_code.co_name in watched and event == "call":
            counted[frame.f_code.co_name] += 1
        here = layer(module)
        if event == "call":
            if leaf[1]:
                leaf[1] += here == leaf[0]
                return
            if here is not None:
                leaf[0], leaf[1] = here, 1
            if not visits or visits[-1] != module:
                visits.append(module)
        elif event == "return" and leaf[1] and here == leaf[0]:
            leaf[1] -= 1

    with tempfile.TemporaryDirectory() as tmp:
        sys.setprofile(hook)
        try:
            key = job.key()  # the sweep keys the job, then a worker runs it (here in one process)
            execute(job, key, str(Path(tmp) / "metrics"))
        finally:
            sys.setprofile(None)
    return visits, counted


def main() -> None:
    visits, counted = trace_job()
    seen: set[str] = set()
    returns = 0
    for module in visits:
        if module in seen:
            returns += 1
        seen.add(module)
    import collapse_doctor

    print(f"code: {Path(collapse_doctor.__file__).parent}")
    print(f"modules passed: {len(seen)}")
    print(f"visits: {len(visits)}, returns to a module already left: {returns}")
    for name in ("load_config", "parse_config_text", "parse_config", "apply_preset", "probe_key"):
        print(f"  calls to {name}: {counted.get(name, 0)}")
    by_module = Counter(visits)
    print(
        "visits per module: "
        + ", ".join(f"{m.removeprefix('collapse_doctor.')} {n}" for m, n in by_module.most_common())
    )


if __name__ == "__main__":
    main()
