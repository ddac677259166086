"""The training engine: per-model random streams and the vectorized ensemble training loop."""
