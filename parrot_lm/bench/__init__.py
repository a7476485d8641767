"""Benchmarks behind `make bench`: ratios measured pair by pair in one run, never assertions."""
