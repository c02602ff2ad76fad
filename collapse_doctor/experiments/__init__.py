"""One run and what it measures: the probe (a short training ending in a verdict), its warm start, the
seed batch (K seeds as one vectorised model), presets and regimes, the cache identity of a run, and the
checks that are not trainings of their own (noise audit, gradient check, gradient noise, inspection)."""
