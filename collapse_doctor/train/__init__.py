"""Training: the trainer's step (accumulation, the non-finite skip, clipping, the metric row), the losses
of the reference, the meta losses (LOO, equivariance), the seed batch's vectorised step, and EMA of the
weights (evaluation only)."""
