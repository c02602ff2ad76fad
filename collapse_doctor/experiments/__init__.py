"""One run and what it measures: the set-up every run shares and the typed report a probe ends in
(run_setup), the probe (a short training ending in a verdict), its warm start, the seed batch (K seeds
as one vectorised model), presets and regimes, the cache identity of a run, and the checks that are not
trainings of their own (noise audit, gradient check, gradient noise, inspection)."""
