"""collapse-doctor: find out why a training run collapses to the background class, and which change caused it.

The public API for users' own training loops: `CollapseMonitor`, `CollapseDetected` and the
`VerdictConfig` they take (imported on first use, so the command line does not pay for torch before it
needs it), and `collapse_doctor.judge.lightning.CollapseCallback`.

Layers, bottom up: config/ (what a run is), data/, model/, train/ (one training run), judge/ (what a
collapse is: cell counts, the verdict, the monitor, scan), experiments/ (one probe and its relatives),
sweeps/ (many probes: ablate, calibrate, gate, bisect, the cache and the executors), cli/ (commands).
"""

__version__ = "0.2.0"

__all__ = ["CollapseDetected", "CollapseMonitor", "VerdictConfig", "__version__"]


def __getattr__(name: str):
    if name in ("CollapseMonitor", "CollapseDetected"):
        from collapse_doctor.judge import monitor

        return getattr(monitor, name)
    if name == "VerdictConfig":
        from collapse_doctor.config import VerdictConfig

        return VerdictConfig
    raise AttributeError(f"module 'collapse_doctor' has no attribute {name!r}")
