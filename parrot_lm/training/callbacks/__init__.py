"""Every Lightning callback ParrotLM adds to a run."""
