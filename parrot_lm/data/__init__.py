"""Data: sources, tokenizers, shard writer, memmap windows, the Lightning DataModule."""
