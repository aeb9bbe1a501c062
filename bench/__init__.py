"""Benchmarks; ``python -m bench`` (``make bench``) runs them all and updates BENCHMARKS.md."""
