"""PyTorch side of ipt-ms: the official-keyed IPT twin, and cross-framework comparison."""
