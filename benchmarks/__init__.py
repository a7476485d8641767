"""`make bench`: measured ratios (not installed with the package)."""
