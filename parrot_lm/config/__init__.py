"""The typed schema of the composed Hydra config (the model section derives from GPTConfig)."""
