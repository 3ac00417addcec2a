"""Structured pruning: surgery (spec + weights of the smaller model), criteria and predefined targets."""
