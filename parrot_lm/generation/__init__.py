"""Decoding with the KV cache, sampling settings (`SamplingParams`), text samples."""
