"""The training stage: run(cfg), LitLM, callbacks, speed, strategies, launch, FLOPs."""
