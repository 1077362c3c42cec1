"""Experiments: memory (filled in by its author)."""
