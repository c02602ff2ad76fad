"""Training: one step's skeleton, shared by both trainers (step.py: what a step records, the non-finite
skip, gradient norms, the metric row), the lone trainer, the seed batch's vectorised trainer, the losses
of the reference, the meta losses (LOO, equivariance), and EMA of the weights (evaluation only)."""
