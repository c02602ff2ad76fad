"""collapse-doctor: find out why a training run collapses to the background class, and which change caused it."""

__version__ = "0.1.0"
