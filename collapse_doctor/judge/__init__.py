"""Deciding from a run's signals, without training: the signals themselves, each named once (signals.py),
per-step flags, the verdict and its episodes, the continuous measures (fg_auc) and the rank statistics
that compare them, the monitor for a user's own loop, and scan for a metric log written by anyone."""
