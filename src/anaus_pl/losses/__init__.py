"""Losses as small pure functions, each with its equation in the docstring."""
