"""collapse-doctor: find out why a training run collapses to the background class, and which change caused it.

The public API for users' own training loops: `CollapseMonitor` and `CollapseDetected` (imported on
first use, so the command line does not pay for torch before it needs it).
"""

__version__ = "0.2.0"

__all__ = ["CollapseDetected", "CollapseMonitor", "__version__"]


def __getattr__(name: str):
    if name in ("CollapseMonitor", "CollapseDetected"):
        from collapse_doctor import monitor

        return getattr(monitor, name)
    raise AttributeError(f"module 'collapse_doctor' has no attribute {name!r}")
