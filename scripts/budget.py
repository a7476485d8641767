"""Model shapes for a parameter budget: `python scripts/budget.py params=40e6 [vocab=50257]
[context=1024] [top=20] [write=conf/model/<name>.yaml [pick=<rank>] [force=true]]`.

More options: floor=0.75 (smallest fraction of the budget listed), min_layers=2, max_layers=32
(at most 128), width_multiple=64, ff_multiple=1, gqa=false, tie_embeddings=true, vocab_multiple=1.
params is at most 1e9 (ParrotLM builds ~1M to ~125M-parameter models); write= names a file in
conf/model/, the only place train.py's model=<name> looks.
Installed as `parrot-budget`; the logic lives in parrot_lm/planning/budget.py and budget_cli.py.
"""

from parrot_lm.planning.budget_cli import main

if __name__ == "__main__":
    main()
