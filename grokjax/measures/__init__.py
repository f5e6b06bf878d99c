"""Measurements of a parameter tree: pure functions returning dicts of arrays."""
