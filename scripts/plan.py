"""Plan a run: `python scripts/plan.py [train.py's overrides] [probe=false]`.

Parameters, FLOPs, tokens, memory against the device, and a few timed steps with the projected
wall time. Installed as `parrot-plan`; the logic lives in parrot_lm/planning/cli.py.
"""

from parrot_lm.planning.cli import main

if __name__ == "__main__":
    main()
