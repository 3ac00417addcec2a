"""Measured speed of the paper's pruned models: the catalogue of models, their timing and the benchmark's document."""
