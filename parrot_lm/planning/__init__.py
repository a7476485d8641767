"""Plan a run before it starts: its cost, and the model shapes that fit a budget."""
