"""Training-side pieces: EMA of the weights (evaluation only)."""
