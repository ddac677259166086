"""Synthetic task data: vectorized torch generators, each driven by an explicit `torch.Generator`."""
