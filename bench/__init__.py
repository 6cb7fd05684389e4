"""Benchmarks: `make bench` runs `python -m bench.webchat_roundtrip` (see docs/benchmarks.md).

Nothing here is imported by the product: the bench-only routes live in the bench's own child servers.
"""
