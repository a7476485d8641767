"""The run directory: the one place that knows what a run dir holds and where.

```
<run dir>/
  run_config.yaml     the resolved config the run executes (resume reads it back)
  .hydra/             Hydra's own record (config.yaml, overrides.yaml, hydra.yaml)
  checkpoints/        last.ckpt, step<N>.ckpt and best.ckpt (lowest val loss; never resumed
                      from), Lightning checkpoints, weights_only-loadable
  tokenizer/          the run's tokenizer (tokenizer_spec.json and its files)
  tensorboard/        TensorBoard events
  csv/                CSVLogger's metrics.csv (logger=csv)
  wandb/              Weights & Biases' run files (logger=wandb) and the run's W&B id (run_id)
  mlflow/             the run's MLflow store (logger=mlflow): mlflow.db, artifacts/, run_ids.json
  eval/               scripts/evaluate.py results, one JSON per checkpoint, eval set and stride
  export/<format>/    scripts/export.py outputs
  fit-profiler.txt    SimpleProfiler reports (debug=profiler; validate-profiler.txt too)
  FAILED              written when training raised (its first line says what); see mark_failed
```

Where run dirs go: `<log dir>/runs/<date>/<time>` or `<log dir>/runs/<name>` (name=...), and
sweeps under `<log dir>/multiruns/`; scripts find a run by that name (runs/loading.py).

Every stage asks a `RunDir` for these paths; no other module spells them.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from parrot_lm.core.errors import CheckpointError, ConfigError
from parrot_lm.core.io import atomic_write_bytes, atomic_write_text, storage_error

RUN_CONFIG = "run_config.yaml"
CHECKPOINTS = "checkpoints"
TOKENIZER = "tokenizer"
TENSORBOARD = "tensorboard"
CSV = "csv"
WANDB = "wandb"
MLFLOW = "mlflow"
EVAL = "eval"
EXPORT = "export"
HYDRA = ".hydra"
FAILED = "FAILED"
RUNS = "runs"  # <log dir>/runs/<date>/<time> or <log dir>/runs/<name>
MULTIRUNS = "multiruns"  # <log dir>/multiruns/<date>/<time>/<job number> (or <name>/<job>)
LATEST = "latest"  # ckpt=latest: a word, so never a run name
JOB_LOG = "train.log"  # Hydra's job log (conf/hydra/default.yaml names the job `train`)
LAST = "last.ckpt"
BEST = "best.ckpt"  # the lowest val loss so far (training/checkpointing.py BestCheckpoint)
STEP_RE = re.compile(r"step(\d+)\.ckpt$")


def step_of(path: Path) -> int | None:
    """The step in a `step<N>.ckpt` file name, else None."""
    match = STEP_RE.search(path.name)
    return int(match.group(1)) if match else None


def check_run_name(name: str | None) -> str | None:
    """`name=` as a dir name under runs/ (or multiruns/): one path part, not `.`/`..`, not the
    word `latest`; ConfigError otherwise. None (no name) passes."""
    if name is None:
        return None
    text = str(name)
    if not text.strip() or "/" in text or "\\" in text or ".." in text:
        raise ConfigError(
            f"name={text!r} cannot name a run dir: it must be one non-empty dir name without "
            "'/' or '..' (e.g. name=baseline-lr3e-4)."
        )
    if text.startswith(".") or text == LATEST:  # hidden dirs are skipped; `latest` is a word
        why = "ckpt=latest means the newest run" if text == LATEST else "dot dirs are hidden"
        raise ConfigError(f"name={text} cannot name a run ({why}); choose another name.")
    return text


def default_run_dir(
    resume: str | None,
    log_dir: str,
    timestamp: str,
    name: str | None = None,
    fast_dev_run: object = False,
) -> str:
    """Hydra's run dir: the resumed run's own dir, a temporary one for a fast dev run (it keeps
    nothing: `scratch_dir`), a stable per-job dir under SLURM (so a requeued job finds its
    checkpoints; `<name>-slurm-<id>` with a name), or a new dir named after `name` (else the
    start time) that this process creates itself (`claim_dir`: `-2`, `-3` ... when taken), so
    no two runs share one."""
    if resume:
        return str(resume)
    name = check_run_name(name)
    if fast_dev_run:
        return scratch_dir("fdr")
    job_id = os.environ.get("SLURM_JOB_ID")
    interactive = os.environ.get("SLURM_JOB_NAME") in ("bash", "interactive")
    if job_id and not interactive:
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        prefix = f"{name}-" if name else ""
        return f"{log_dir}/{RUNS}/{prefix}slurm-{job_id}" + (f"_{task}" if task else "")
    return claim_dir(f"{log_dir}/{RUNS}/{name or timestamp}")


def default_sweep_dir(
    log_dir: str, timestamp: str, name: str | None = None, fast_dev_run: object = False
) -> str:
    """Hydra's multirun dir: a new dir named after `name` (else the start time), claimed like
    a run dir, so two sweeps never share one (the jobs keep their numbered subdirs); a
    temporary one for fast dev runs."""
    if fast_dev_run:
        return scratch_dir("fdr-sweep")
    return claim_dir(f"{log_dir}/{MULTIRUNS}/{check_run_name(name) or timestamp}")


SCRATCH_PREFIX = "parrot-scratch-"  # every `scratch_dir`'s name, in the system's temp dir


def scratch_dir(purpose: str) -> str:
    """A new temporary dir, removed when this process exits: the run dir of a run that must
    leave nothing behind (debug=fdr), so it never shows up among the results."""
    path = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{purpose}-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def is_scratch_dir(path: str | os.PathLike) -> bool:
    """Whether `path` is, or is inside, a `scratch_dir` (made by this process or the one that
    started a sweep's jobs): gone once that process exits, so nothing can be resumed from it."""
    try:
        inside = Path(path).resolve().relative_to(Path(tempfile.gettempdir()).resolve())
    except ValueError:
        return False
    return bool(inside.parts) and inside.parts[0].startswith(SCRATCH_PREFIX)


# Dirs this process created through claim_dir (and the parents it had to create for them), so
# that a refused start can take them away again (`discard_refused_run`).
_CLAIMED: dict[Path, list[Path]] = {}


def claim_dir(base: str) -> str:
    """Create `base`, or `base-2`, `base-3`, ... when it is taken, and return the one made.

    `os.mkdir` fails when the dir exists, on every POSIX filesystem, so of two processes that
    want the same name only one gets it, whatever the timing; the other takes the next.
    Hydra resolves its run dir once per config (the resolvers are cached), so one run claims
    one dir.
    """
    path = Path(base).absolute()
    for attempt in range(1, 10_000):
        candidate = path if attempt == 1 else path.with_name(f"{path.name}-{attempt}")
        made = [p for p in (candidate.parent, *candidate.parent.parents) if not p.exists()]
        try:
            candidate.parent.mkdir(parents=True, exist_ok=True)
            os.mkdir(candidate)
        except FileExistsError:
            continue
        except FileNotFoundError:  # a refused run removed the empty parent just now
            continue
        except OSError as e:
            raise storage_error(candidate, e, "create the run dir") from e
        _CLAIMED[candidate] = made
        return str(candidate)
    raise ConfigError(f"Cannot find a free run dir name next to {path}; clean up {path.parent}.")


# What a refused start may have left in the run dir it had just created: Hydra's record and
# log, and the run config and tokenizer written before the refusal. Nothing else (a checkpoint,
# TensorBoard events, CSV metrics) is ever thrown away.
REFUSED_START_LEFTOVERS = frozenset({HYDRA, RUN_CONFIG, TOKENIZER, JOB_LOG})


SWEEP_RECORD = "multirun.yaml"  # what Hydra writes into a sweep dir before its first job


def discard_refused_run(path: str | os.PathLike) -> bool:
    """Remove the run dir `path` after a refused start (a ParrotError before training), when
    this process created it (`claim_dir`), or it is a job dir of a sweep dir this process
    created, and it holds only REFUSED_START_LEFTOVERS, plus the parents created for it that
    are now empty (a sweep dir left with only Hydra's record when its first job is refused):
    a refused command leaves nothing behind. Returns whether it was removed; a resumed run's
    dir, one given as hydra.run.dir or inside a given hydra.sweep.dir, and one with anything
    else in it are never touched."""
    path = Path(path).absolute()
    sweep_job = path.parent in _CLAIMED
    if (path not in _CLAIMED and not sweep_job) or not path.is_dir():
        return False
    if not {p.name for p in path.iterdir()} <= REFUSED_START_LEFTOVERS:
        return False
    shutil.rmtree(path, ignore_errors=True)
    if path.exists():
        return False
    if sweep_job and {p.name for p in path.parent.iterdir()} <= {SWEEP_RECORD}:
        try:
            (path.parent / SWEEP_RECORD).unlink(missing_ok=True)
            path.parent.rmdir()
        except OSError:  # another job's dir appeared: the sweep dir stays
            return True
        path = path.parent
    for parent in _CLAIMED.pop(path, []):  # innermost first; one another run uses is not empty
        try:
            parent.rmdir()
        except OSError:
            break
    return True


@dataclass(frozen=True)
class RunDirSnapshot:
    """An existing run dir as a command found it: what Hydra's start writes there before
    ParrotLM can refuse the command (its record in .hydra/ and the job log), byte for byte,
    and the names of its entries. `restore()` after a refusal: a refused command leaves an
    existing run as it was."""

    path: Path
    entries: frozenset[str]
    files: dict[Path, bytes]

    @classmethod
    def take(cls, path: str | os.PathLike) -> RunDirSnapshot | None:
        """The snapshot of `path`, or None when it is not an existing run dir."""
        run = RunDir(path)
        if not run.path.is_dir() or not run.is_run():
            return None
        watched = [*sorted(run.hydra.glob("*")), run.path / JOB_LOG]
        files = {p: p.read_bytes() for p in watched if p.is_file()}
        return cls(run.path, frozenset(p.name for p in run.path.iterdir()), files)

    def restore(self) -> None:
        """Put the watched files back as they were and remove entries that were not there."""
        run = RunDir(self.path)
        for path in [*run.hydra.glob("*"), run.path / JOB_LOG]:
            if path.is_file() and path not in self.files:
                path.unlink()
        for path, data in self.files.items():
            if not path.is_file() or path.read_bytes() != data:
                atomic_write_bytes(path, data)
        for entry in run.path.iterdir():
            if entry.name not in self.entries:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


# conf/hydra/default.yaml's run and sweep dirs. Cached per config: every later resolution of
# hydra.run.dir (Lightning's DDP launcher asks for it again) returns the dir claimed first.
def record_subdir(resume: str | None, fast_dev_run: object = False) -> str | None:
    """Hydra's output_subdir: `.hydra` for a new run; none for a resumed one, which keeps the
    record of the command that started it (reports label runs by those overrides), nor for a
    fast dev run, which keeps nothing."""
    return None if resume or fast_dev_run else HYDRA


DIR_RESOLVERS = {
    "parrot_run_dir": default_run_dir,
    "parrot_sweep_dir": default_sweep_dir,
    "parrot_record_subdir": record_subdir,
}
for _name, _resolver in DIR_RESOLVERS.items():
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _resolver, use_cache=True)


def _child(*parts: str) -> property:
    """A read-only property: the path `parts` inside the run dir."""
    return property(lambda self: self.path.joinpath(*parts))


@dataclass(frozen=True)
class RunDir:
    """A run directory (which need not exist yet) and the paths inside it."""

    path: Path

    def __init__(self, path: str | os.PathLike) -> None:
        object.__setattr__(self, "path", Path(path).expanduser())

    # -- layout (each a path inside the run dir) -------------------------------------------------
    run_config = _child(RUN_CONFIG)
    checkpoints = _child(CHECKPOINTS)
    last_checkpoint = _child(CHECKPOINTS, LAST)
    best_checkpoint = _child(CHECKPOINTS, BEST)
    tokenizer = _child(TOKENIZER)
    tensorboard = _child(TENSORBOARD)
    csv = _child(CSV)
    wandb = _child(WANDB)  # wandb.init(dir=<run dir>) writes its own wandb/ here
    wandb_run_id = _child(WANDB, "run_id")  # the W&B run a resume continues
    mlflow = _child(MLFLOW)
    mlflow_db = _child(MLFLOW, "mlflow.db")  # the run's own SQLite tracking store
    mlflow_artifacts = _child(MLFLOW, "artifacts")  # text samples and other artifacts
    mlflow_run_ids = _child(MLFLOW, "run_ids.json")  # {tracking uri: run id} a resume continues
    hydra = _child(HYDRA)
    overrides = _child(HYDRA, "overrides.yaml")  # the command-line overrides of this run
    hydra_config = _child(HYDRA, "config.yaml")  # the config Hydra composed (latest command)
    hydra_settings = _child(HYDRA, "hydra.yaml")  # Hydra's settings, config-group choices
    eval = _child(EVAL)
    failed_marker = _child(FAILED)

    def eval_result(self, ckpt: Path, eval_set: str, stride: int) -> Path:
        """Where scripts/evaluate.py writes the result of `ckpt` on `eval_set` at `stride`."""
        return self.eval / f"{ckpt.stem}-{eval_set}-stride{stride}.json"

    def eval_results(self, ckpt: Path, eval_set: str = "val") -> list[Path]:
        return sorted(self.eval.glob(f"{ckpt.stem}-{eval_set}-stride*.json"))

    def export(self, fmt: str) -> Path:
        return self.path / EXPORT / fmt

    # -- what is there ------------------------------------------------------------------------
    def is_run(self) -> bool:
        """Whether this looks like a run (or sweep job) dir: a run config, Hydra's record, or
        TensorBoard events."""
        return self.run_config.is_file() or self.overrides.is_file() or self.tensorboard.is_dir()

    def is_failed(self) -> bool:
        """Whether training in this run raised (a FAILED marker, see mark_failed)."""
        return self.failed_marker.is_file()

    def mark_failed(self, error: BaseException) -> None:
        """Write FAILED: training raised `error`. Reports and the chat list flag the run by it;
        a later resume that finishes removes it (clear_failed)."""
        atomic_write_text(self.failed_marker, f"{type(error).__name__}: {error}\n")

    def clear_failed(self) -> None:
        """Remove the FAILED marker (the run finished after all)."""
        self.failed_marker.unlink(missing_ok=True)

    def checkpoint_candidates(self) -> list[Path]:
        """last.ckpt first, then step checkpoints from newest to oldest."""
        return checkpoint_candidates(self.checkpoints)

    @classmethod
    def of_checkpoint(cls, ckpt: str | os.PathLike) -> RunDir:
        """`<run>/checkpoints/x.ckpt` -> `<run>`; a checkpoint elsewhere -> its folder."""
        parent = Path(ckpt).expanduser().parent
        return cls(parent.parent if parent.name == CHECKPOINTS else parent)

    def resolve_checkpoint(self) -> Path:
        """The newest checkpoint file of this run (or of this dir, if it is a checkpoints
        dir); CheckpointError when it holds none."""
        for ckpt_dir in (self.checkpoints, self.path):
            found = checkpoint_candidates(ckpt_dir)
            if found:
                return found[0]
        raise CheckpointError(f"{self.path} holds no checkpoint (no {LAST} or step*.ckpt).")

    # -- the run's config ---------------------------------------------------------------------
    def load_config(self, purpose: str = "resume") -> DictConfig:
        """run_config.yaml, with a sentence when this is not a run dir."""
        if not self.path.is_dir():
            raise ConfigError(f"Cannot {purpose}: run dir {self.path} does not exist.")
        if not self.run_config.is_file():
            raise ConfigError(
                f"Cannot {purpose}: {self.path} has no {RUN_CONFIG}, so it is not a ParrotLM "
                "run dir."
            )
        try:
            cfg = OmegaConf.load(self.run_config)
        except Exception as e:  # YAML errors of any kind: name the file
            raise ConfigError(
                f"{self.run_config} is not a readable run config ({type(e).__name__}); restore "
                "it from a copy or start a new run."
            ) from e
        if not isinstance(cfg, DictConfig) or not cfg:  # a YAML list, scalar or empty file
            raise ConfigError(
                f"{self.run_config} holds no run config mapping; restore it from a copy or start "
                "a new run."
            )
        return cfg

    def save_config(self, cfg: DictConfig) -> None:
        """Write the resolved config atomically."""
        atomic_write_text(self.run_config, OmegaConf.to_yaml(cfg, resolve=True))


def run_within(path: Path) -> Path | None:
    """A run dir at or under `path`, or a checkpoint file under it; None when it holds none."""
    for found in (path, *path.rglob("*")):
        if found.is_dir() and RunDir(found).is_run():
            return found
        if found.is_file() and found.suffix == ".ckpt":
            return found
    return None


def checkpoint_candidates(ckpt_dir: Path) -> list[Path]:
    """In `ckpt_dir`: last.ckpt first, then step checkpoints from newest to oldest. Never
    best.ckpt: it may be older than both, and a resume continues from the newest state."""
    steps = sorted(
        (p for p in ckpt_dir.glob("step*.ckpt") if STEP_RE.search(p.name)),
        key=lambda p: step_of(p) or 0,
        reverse=True,
    )
    last = ckpt_dir / LAST
    return ([last] if last.is_file() else []) + steps
