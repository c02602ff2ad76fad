"""`collapse_doctor.judge.lightning.CollapseCallback`: the documented path of the Lightning callback, which
lives with the rest of the detector in judge/lightning.py (extra `[lightning]`)."""

from collapse_doctor.judge.lightning import CollapseCallback

__all__ = ["CollapseCallback"]
