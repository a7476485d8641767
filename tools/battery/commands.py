"""The command lines the cases start from: the fixture run's overrides, and one builder per
entry point that names its base arguments (paths relative to a case's copy of the fixtures)."""

from __future__ import annotations

from tools.battery.faults import free_port
from tools.battery.harness import Case

TINY_MODEL = (
    "model.d_model=32",
    "model.n_layers=2",
    "model.n_heads=2",
    "model.d_ff=64",
    "model.context_length=32",
)
# The fixture corpus's config: every train case names it, so a refused run never rebuilds it.
DATA = ("data.source.num_documents=60", "data.tokenizer.vocab_size=300", "data.batch_size=8")
QUIET = (
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "sample.max_new_tokens=0",
)
# The fixture run: step checkpoints at 2 and 4, a validation at each, TensorBoard, samples.
FIXTURE_TRAIN = (
    "hydra.run.dir=runs/base",
    *TINY_MODEL,
    *DATA,
    *QUIET,
    "callbacks.text_samples.max_new_tokens=1",
    "trainer.max_steps=4",
    "val_every_n_steps=2",
    "ckpt_every_n_steps=2",
    "trainer.limit_val_batches=1",
    "optim.warmup_steps=1",
)
TRAIN = (
    "train.py",
    *TINY_MODEL,
    *DATA,
    *QUIET,
    "logger=none",
    "callbacks=none",
    "trainer.max_steps=2",
    "trainer.limit_val_batches=1",
)
# train.py on a prepared dir (data=prepared has no source: nothing to rebuild from).
TRAIN_PREPARED = (
    "train.py",
    *TINY_MODEL,
    *QUIET,
    "logger=none",
    "callbacks=none",
    "trainer.max_steps=2",
    "trainer.limit_val_batches=1",
    "data=prepared",
    "data.batch_size=8",
)
RESUME = ("train.py", "resume=runs/base", "trainer.max_steps=6", *QUIET)
LAST = "runs/base/checkpoints/last.ckpt"
TOKENIZER = "runs/base/tokenizer/tokenizer.tiktoken"
SPEC = "runs/base/tokenizer/tokenizer_spec.json"
META = "data/stories/meta.json"
SHARD = "data/stories/train_000.bin"
RUN_CONFIG = "runs/base/run_config.yaml"
CHAT_TIMEOUT = 60.0  # a chat that does not refuse serves until killed


def prepare(name: str, kind: str, *args: str, tokenizer: str = "byte", **kw) -> Case:
    """scripts/prepare.py on data=local into ./prep with a fast tokenizer, then `args`."""
    base = ("scripts/prepare.py", "data=local", "data.data_dir=prep")
    tok = (f"data.tokenizer.kind={tokenizer}",) if tokenizer else ()
    return Case(name, kind, (*base, *tok, *args), **kw)


def prepared(name: str, kind: str, *args: str, **kw) -> Case:
    """scripts/prepare.py on the fixture corpus (data=prepared), then `args`."""
    return Case(
        name,
        kind,
        ("scripts/prepare.py", "data=prepared", "data.data_dir=data/stories", *args),
        **kw,
    )


def train(name: str, kind: str, *args: str, **kw) -> Case:
    """A short train.py run on the fixture corpus, then `args`."""
    return Case(name, kind, (*TRAIN, *args), **kw)


def train_prepared(name: str, kind: str, *args: str, **kw) -> Case:
    """A short train.py run on `data=prepared` (give data.data_dir), then `args`."""
    return Case(name, kind, (*TRAIN_PREPARED, *args), **kw)


def resume(name: str, kind: str, *args: str, **kw) -> Case:
    """Resume runs/base to 6 steps, then `args`."""
    return Case(name, kind, (*RESUME, *args), **kw)


def evaluate(name: str, kind: str, *args: str, ckpt: str = "runs/base", **kw) -> Case:
    """scripts/evaluate.py on `ckpt` (None: not given), then `args`."""
    given = (f"ckpt={ckpt}",) if ckpt else ()
    return Case(name, kind, ("scripts/evaluate.py", *given, *args), **kw)


def generate(name: str, kind: str, *args: str, ckpt: str = "runs/base", **kw) -> Case:
    """scripts/generate.py on `ckpt` with 4 new tokens, then `args`."""
    given = (f"ckpt={ckpt}",) if ckpt else ()
    return Case(name, kind, ("scripts/generate.py", *given, *args), **kw)


def export(name: str, kind: str, *args: str, ckpt: str = "runs/base", **kw) -> Case:
    """scripts/export.py on `ckpt`, then `args`."""
    return Case(name, kind, ("scripts/export.py", f"ckpt={ckpt}", *args), **kw)


def chat(name: str, kind: str, *args: str, **kw) -> Case:
    """scripts/chat.py on ./runs (so a good config would serve the fixture run), then `args`;
    on a free port unless `args` or the setup names one (two cases never share a port)."""
    base = ("scripts/chat.py", "outputs_dir=runs")
    if not any(a.startswith("port=") for a in args) and "setup" not in kw:
        kw["setup"] = free_port
    return Case(name, kind, (*base, *args), timeout=CHAT_TIMEOUT, **kw)


def report(name: str, kind: str, *args: str, **kw) -> Case:
    """scripts/report.py with `args`."""
    return Case(name, kind, ("scripts/report.py", *args), **kw)
