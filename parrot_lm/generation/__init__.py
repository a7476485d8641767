"""Decoding with the KV cache, sampling settings, text samples."""
