"""Shared contracts every stage uses: user-facing errors, atomic file IO, devices, CLI plumbing."""
