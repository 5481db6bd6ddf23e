"""Quantizers: the math of each method, one small registered class each (forward and gradient)."""
