"""The run directory: its layout, its config and tokenizer, finding and loading its checkpoints."""
