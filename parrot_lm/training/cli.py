"""Train a ParrotLM model: `parrot-train model=deep_narrow trainer.precision=bf16-mixed`.

The same command as `python train.py ...`: Hydra overrides, `-m` for a sweep, `--cfg job` to
print the composed config, `--help` for the groups and options.
"""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from parrot_lm.core.cli import CONF_DIR, compose_config, exit_on_user_error
from parrot_lm.core.errors import ConfigError, ParrotError
from parrot_lm.core.io import check_writable
from parrot_lm.runs.resume import check_resume_argument
from parrot_lm.runs.run_dir import (
    REFUSED_START_LEFTOVERS,
    RunDir,
    RunDirSnapshot,
    check_run_name,
    discard_refused_run,
)

# The existing run dir this command continues (resume=, or hydra.run.dir= of a run), as it was
# before Hydra started: a refused command puts back what Hydra's start rewrote there.
_continued: list[RunDirSnapshot] = []


# An absolute config_path: a relative one ("../conf") makes Hydra, for a task function in an
# imported module, look for a `parrot_lm.conf` Python package (pkg://), which conf/ is not.
# Hydra names the job after this module ("cli"); conf/hydra/default.yaml sets
# hydra.job.name=train, so the log stays <run dir>/train.log.
@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
@exit_on_user_error
def train_task(cfg: DictConfig) -> float | None:
    """Hydra's task function: one training run; returns the final val loss for sweepers.

    A refused start (a ParrotError before training, or an OSError in a run dir that holds
    nothing else yet) takes away the run dir Hydra had just made for it, or restores the
    existing run it was to continue, so a refused command leaves nothing behind
    (runs/run_dir.py discard_refused_run, RunDirSnapshot).

    A run that raised once it had started (a crash, a non-finite loss, a ParrotError after its
    first checkpoint or events) keeps its dir, marked FAILED for reports and the chat list; a
    run that finishes removes the marker (a resumed failed run). Ctrl-C and the stop signals
    are not failures: those runs resume (README "Resume, signals and faults").
    """
    from parrot_lm.training.run import run  # Lightning loads here: --help and --cfg stay fast

    out = HydraConfig.get().runtime.output_dir if HydraConfig.initialized() else None
    try:
        result = run(cfg)
    except ParrotError as e:
        removed = out is not None and discard_refused_run(out)
        for snapshot in _continued:
            snapshot.restore()
        if out is not None and not removed and not _continued:
            _mark_failed(out, e, started_only=True)
        raise
    except OSError as e:  # worded as a refusal too (core/cli.py), e.g. a read-only data dir
        # A new run dir holding only what its start wrote goes; any other is marked FAILED
        # (an existing run's own files, or what it wrote once it had started, stay).
        if out is not None and not discard_refused_run(out):
            _mark_failed(out, e)
        raise
    except Exception as e:
        if out is not None:
            _mark_failed(out, e)
        raise
    if out is not None and _rank_zero():
        RunDir(out).clear_failed()
    return result


def _rank_zero() -> bool:
    """Whether this process is rank 0 of its run (DDP ranks share the run dir)."""
    from lightning.pytorch.utilities import rank_zero_only

    return rank_zero_only.rank == 0


def _mark_failed(out: str, error: BaseException, started_only: bool = False) -> None:
    """Mark the run dir `out` FAILED when it holds a run (`started_only`: one that wrote more
    than a refused start leaves, i.e. had begun training); a marker that cannot be written
    never hides the error itself."""
    run_dir = RunDir(out)
    if not _rank_zero() or not run_dir.path.is_dir() or not run_dir.is_run():
        return
    if started_only and {p.name for p in run_dir.path.iterdir()} <= REFUSED_START_LEFTOVERS:
        return
    try:
        run_dir.mark_failed(error)
    except (OSError, ParrotError):  # a full disk may be why it failed
        pass


def check_name_argument(args: list[str]) -> None:
    """Refuse a `name=` that cannot name a run dir, with a sentence, before Hydra makes one."""
    for arg in args:
        if arg.startswith("name=") and arg != "name=null":
            check_run_name(arg.split("=", 1)[1])


# A sweep of more jobs than this has each listed value checked once (with the first value of
# every other list) instead of every combination: composing a job's config takes ~0.1 s.
MAX_CHECKED_JOBS = 64
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def check_overrides(args: list[str]) -> None:
    """Compose the config before Hydra does, so that a mistyped key or an unknown group option
    is one sentence with the closest valid names (core/cli.py compose_config), not Hydra's
    six lines. A sweep (-m) has every job's config composed and checked against the schema
    (`validate_config`, the sampling settings) before any job starts: a bad value anywhere in a
    list would otherwise stop the sweep only when its job's turn came. Hydra's own settings,
    range()/interval() sweeps and the flags (--help, --cfg) are left to Hydra."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    if any(a.startswith("--") and a != "--multirun" for a in args):
        return
    parser = OverridesParser.create()
    try:
        parsed = parser.parse_overrides([a for a in args if a[:1] != "-"])
    except HydraException as e:
        raise ConfigError(str(e).strip().splitlines()[0]) from e
    multirun = "-m" in args or "--multirun" in args
    lists = _override_lists(parsed, multirun)
    first = [values[0] for values in lists.values()]
    cfg = compose_config(str(CONF_DIR), "train", first, return_hydra_config=multirun)
    if not multirun:
        return
    sweeper = cfg.hydra.sweeper
    if sweeper.get("_target_") == BASIC_SWEEPER and sweeper.get("params"):
        # A sweep kept in a config (experiment=..._sweep): the command line's lists win.
        params = [f"{key}={value}" for key, value in sweeper.params.items()]
        lists = {**_override_lists(parser.parse_overrides(params), multirun), **lists}
    cross_checks = not any(a.startswith("resume=") and a != "resume=null" for a in args)
    for job in sweep_jobs(list(lists.values())):
        _check_job(job, [values for values in lists.values() if len(values) > 1], cross_checks)


def _override_lists(parsed: list, multirun: bool) -> dict[str, list[str]]:
    """Each override's key and the `key=value` overrides it stands for: one for a plain
    override, one per value for an a,b,c sweep. Hydra's own keys, and sweeps whose values
    Hydra's config loader alone can list (glob() of a group), are left out."""
    from hydra.errors import HydraException

    lists: dict[str, list[str]] = {}
    for override in parsed:
        key = override.get_key_element()
        if key.lstrip("+~").split("/")[0].split(".")[0] == "hydra":
            continue
        if not override.is_sweep_override():
            lists[key] = [override.input_line]
        elif not multirun:
            raise ConfigError(
                f"{override.input_line} sweeps over several values; add -m to run one job per "
                "value, or write a list as key=[a,b]."
            )
        elif override.is_discrete_sweep():
            try:
                lists[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
            except HydraException:
                continue
    return lists


def sweep_jobs(lists: list[list[str]], limit: int = MAX_CHECKED_JOBS) -> list[list[str]]:
    """The override lists to check for a sweep over `lists` (each a key's `key=value` options):
    every job, as Hydra's basic sweeper makes them (the cartesian product), when there are at
    most `limit`; else each option once, with the first option of every other list."""
    if math.prod(len(values) for values in lists) <= limit:
        return [list(job) for job in itertools.product(*lists)]
    first = [values[0] for values in lists]
    jobs = [first]
    for i, values in enumerate(lists):
        jobs += [[*first[:i], value, *first[i + 1 :]] for value in values[1:]]
    return jobs


def _check_job(job: list[str], swept: list[list[str]], cross_checks: bool) -> None:
    """Compose one sweep job's config and run the checks its start would run on it; a refusal
    names the job by its swept values."""
    from parrot_lm.config.schema import validate_config
    from parrot_lm.training.run import check_sampling

    label = " ".join(o for o in job if any(o in values for values in swept))
    try:
        cfg = compose_config(str(CONF_DIR), "train", job)
        cfg.paths.output_dir = "<sweep job dir>"  # Hydra's, made when the job starts
        check_sampling(validate_config(cfg, cross_checks=cross_checks))
    except ConfigError as e:
        raise ConfigError(f"Sweep job {label}: {e}" if label else str(e)) from e


def check_output_dirs(args: list[str]) -> None:
    """Refuse a run or sweep dir given on the command line that cannot be written, before
    Hydra creates it (its own error would be an OSError line, not ParrotLM's sentence)."""
    given = dict(arg.partition("=")[::2] for arg in args if "=" in arg)
    for key in ("resume", "hydra.run.dir", "hydra.sweep.dir", "paths.log_dir", "paths.root_dir"):
        if given.get(key) and given[key] != "null":
            check_writable(given[key])
    if not {"resume", "hydra.run.dir", "paths.log_dir", "paths.root_dir"} & set(given):
        check_writable(Path.cwd() / "outputs")  # conf/paths/default.yaml's log_dir


def continued_run_dirs(args: list[str]) -> list[str]:
    """The run dirs a (non-sweep) command line continues: `resume=<dir>`, `hydra.run.dir=<dir>`."""
    if "-m" in args or "--multirun" in args:
        return []
    keys = ("resume=", "hydra.run.dir=")
    return [a.split("=", 1)[1] for a in args if a.startswith(keys) and a != "resume=null"]


HELP_FLAGS = ("--help", "-h")
HELP = """ParrotLM train.py: python train.py [group=option] [key=value] [-m for a sweep]

== Configuration groups ==
Compose your configuration from those groups (group=option)

{groups}

== Config ==
Override anything in the config (foo.bar=value)

{config}
Powered by Hydra (https://hydra.cc)
Use --hydra-help to view Hydra specific help
"""


def config_groups(conf_dir: Path = CONF_DIR) -> dict[str, list[str]]:
    """Each config group of the conf tree (`model`, `data/source`, ...) and its options; Hydra's
    own groups (hydra/*) are left to --hydra-help."""
    groups = {}
    for folder in sorted(p for p in conf_dir.rglob("*") if p.is_dir()):
        name = folder.relative_to(conf_dir).as_posix()
        options = sorted(f.stem for f in folder.glob("*.yaml"))
        if options and name.split("/")[0] != "hydra":
            groups[name] = options
    return groups


def app_help(args: list[str]) -> str:
    """What Hydra's `--help` prints (its default template: the groups and their options, then
    the composed config with `args`' overrides), in a fraction of its time: Hydra builds a
    fresh config repository for each of its ~110 groups, 6-8 s on a busy 2-core machine."""
    from omegaconf import OmegaConf

    cfg = compose_config(str(CONF_DIR), "train", [a for a in args if a[:1] != "-"])
    groups = "\n".join(f"{name}: {', '.join(opts)}" for name, opts in config_groups().items())
    return HELP.format(groups=groups, config=OmegaConf.to_yaml(cfg))


@exit_on_user_error
def preflight(args: list[str]) -> None:
    """The checks that must refuse a command line before Hydra makes or writes any dir."""
    check_resume_argument(args)
    check_name_argument(args)
    check_output_dirs(args)
    check_overrides(args)


def main(argv: list[str] | None = None) -> None:
    """Run `parrot-train` with `argv` (default: sys.argv[1:]); Hydra parses the arguments."""
    args = sys.argv[1:] if argv is None else list(argv)
    if any(a in HELP_FLAGS for a in args):
        print(exit_on_user_error(app_help)(args), end="")
        return
    preflight(args)
    _continued[:] = [s for s in map(RunDirSnapshot.take, continued_run_dirs(args)) if s]
    if argv is None:
        train_task()
        return
    saved = sys.argv
    # Hydra reads sys.argv; a DDP launcher re-runs it for each rank, so it must hold `args`.
    sys.argv = [saved[0] if saved else "parrot-train", *args]
    try:
        train_task()
    finally:
        sys.argv = saved
