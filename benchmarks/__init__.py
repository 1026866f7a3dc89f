"""Benchmarks (``make bench``): each prints a table of ratios and writes JSON."""
