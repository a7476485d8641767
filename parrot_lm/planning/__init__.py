"""Plan a run before training it: parameter, FLOP, token and memory counts, and a short probe
(`python scripts/plan.py [train.py's overrides]`)."""
