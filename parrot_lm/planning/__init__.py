"""Plan a run before it starts: its parameter, FLOP, token and memory counts and a short probe
(`scripts/plan.py`), and the model shapes that fit a parameter budget (`scripts/budget.py`)."""
