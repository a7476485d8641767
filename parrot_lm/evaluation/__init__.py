"""Perplexity and bits per byte with strided windows."""
