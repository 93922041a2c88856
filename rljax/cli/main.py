"""The `rljax` command: argument parsing and dispatch.

    rljax train [ALGO] [--env ID] [--seeds N] [--set field=value ...] [--config FILE]
                [--out DIR] [--quiet] [--checkpoint-every N] [--resume RUN_DIR]
    rljax eval RUN_DIR [--episodes N] [--stochastic]
    rljax sweep ALGO --grid FIELD=V1,V2 [--samples N --log-uniform FIELD=LO:HI ...] [--seeds N]
    rljax bench [--only CASE ...] [--scale X]
    rljax list [ALGO]
    rljax plot RUN_DIR [RUN_DIR ...] [--smooth N] [--out FILE] [--metric NAME]
    rljax --version

Exit status (one line on stderr for every status but 0):
    0    success
    2    bad input: flags, config values or files, a run folder that cannot be resumed
         (found before anything compiles; nothing is created)
    3    training diverged (a NaN/inf in params, a reward or a metric): metrics and the
         last finite checkpoint are kept, no params are saved
    4    a file could not be written (disk full, read-only): what was written before stays
    130  interrupted (Ctrl-C); `rljax train --resume RUN_DIR` continues from the last checkpoint
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

import rljax
from rljax import parallel

# Before anything starts JAX's backend (the imports below do, through gymnax): one CPU
# device per core, so that many seeds run on all cores (rljax.parallel.use_cpu_cores;
# a count set in XLA_FLAGS or JAX_NUM_CPU_DEVICES is kept).
parallel.use_cpu_cores()

from rljax.cli import loggers, plot_command, sweep_command
from rljax.cli.configs import ALGOS, DEFAULT_ALGO, UsageError

EXIT_USAGE, EXIT_DIVERGED, EXIT_WRITE, EXIT_INTERRUPTED = 2, 3, 4, 130

TRAIN_HELP = """\
Train ALGO (default ppo) on vmapped seeds as one compiled program (the seeds split over
the CPU cores or devices), with a live progress bar, and write a run folder
(config.json, metrics.csv, learning_curve.png, params/).
With no arguments: PPO on CartPole-v1 with 4 seeds, 500k env steps each (the PPO
defaults): under 20 s on a 2-core CPU (8 s of it compiling; ~1.5 s when cached).

  rljax train
  rljax train a2c --env CartPole-P-v1 --seeds 8 --set core=gru --set lr=3e-3
  rljax train ppo --set hidden_sizes=[128,128] --set total_steps=2e5 --out runs/big
  rljax train ppo --config my.yaml --checkpoint-every 50
  rljax train --resume runs/big            # continue from its last checkpoint

Exit status: 0 done, 2 bad input, 3 training diverged (NaN/inf; metrics kept, no
params), 4 a file could not be written, 130 interrupted (--resume continues).
"""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rljax" / "jax"


def enable_compilation_cache() -> None:
    """JAX's persistent compilation cache in the user cache folder (RLJAX_NO_CACHE=1: off;
    a JAX_COMPILATION_CACHE_DIR set by the user is used as it is)."""
    if os.environ.get("RLJAX_NO_CACHE") or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    import jax
    path = cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


class _Parser(argparse.ArgumentParser):
    def error(self, message):          # one line, exit status 2
        self.exit(2, f"rljax: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rljax", description="JAX-functional reinforcement learning.")
    parser.add_argument("--version", action="version", version=f"rljax {rljax.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{train,eval,sweep,plot,bench,list}",
                                parser_class=_Parser)
    sub.required = True

    t = sub.add_parser("train", help="train an algorithm on vmapped seeds", description=TRAIN_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("algo", nargs="?", metavar="ALGO", help=f"one of {', '.join(ALGOS)} "
                   f"(default {DEFAULT_ALGO})")
    t.add_argument("--env", metavar="ID", help="env id (`rljax list` shows them)")
    t.add_argument("--seeds", type=int, metavar="N", help="seeds vmapped in one program (default 4)")
    t.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    t.add_argument("--preset", metavar="NAME", help="start from a named preset of ALGO "
                   "(`rljax list ALGO` shows them), e.g. a2c --preset salina")
    t.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help="config field, value parsed as YAML (repeatable): lr=1e-3, "
                        "hidden_sizes=[64,64], core=gru")
    t.add_argument("--config", metavar="FILE", help="YAML or JSON file of config fields "
                   "(or a run folder's config.json); --env and --set override it")
    t.add_argument("--out", metavar="DIR", help="run folder (must not exist or be empty; "
                   "default runs/ALGO-ENV-TIME)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--live-progress", action="store_true",
                   help="feed the progress bar from inside the compiled program (a host "
                        "callback every ~1%% of the run) instead of between segments of it; "
                        "JAX's persistent cache cannot keep programs with host callbacks, so "
                        "such a run always compiles")
    t.add_argument("--checkpoint-every", type=int, metavar="N",
                   help="save a resumable checkpoint every N updates")
    t.add_argument("--resume", metavar="RUN_DIR",
                   help="continue RUN_DIR from its last checkpoint (same result as never stopping)")
    loggers.add_argument(t)

    e = sub.add_parser("eval", help="evaluate a run folder's saved params on fresh episodes")
    e.add_argument("run_dir", metavar="RUN_DIR")
    e.add_argument("--episodes", type=int, default=20, help="episodes per seed (default 20)")
    e.add_argument("--stochastic", action="store_true", help="sample actions (default: greedy)")
    e.add_argument("--seed", type=int, default=1, help="evaluation seed (default 1)")

    sweep_command.add_parser(sub)
    plot_command.add_parser(sub)
    sub.add_parser("bench", help="throughput benchmarks (env steps/s, compile time, memory); "
                   "`rljax bench --help` for its options", add_help=False)

    ls = sub.add_parser("list", help="algorithms, envs and config fields (static vs traced)")
    ls.add_argument("algo", nargs="?", metavar="ALGO", help="show only this algorithm's fields")
    return parser


def list_command(args, console: Console) -> None:
    from rljax import algos, envs
    from rljax.cli import configs

    names = [args.algo] if args.algo else list(ALGOS)
    for name in names:
        configs.get_algo(name)
    if not args.algo:
        table = Table(title="algorithms", title_justify="left")
        table.add_column("name", style="bold")
        table.add_column("description")
        for name, module in ALGOS.items():
            presets = ", ".join(module.PRESETS) or "-"
            table.add_row(name, algos.describe(name) + f" [dim](presets: {presets})[/dim]")
        console.print(table)
        console.print("[bold]envs:[/bold] " + ", ".join(envs.list_envs()))
    for name in names:
        table = Table(title=f"{name} config fields (static: shape/loop/network, one compile "
                            f"per value; traced: numbers, sweepable)", title_justify="left")
        for col in ("field", "type", "default", "kind", "doc"):
            table.add_column(col)
        for field, kind, default, static, doc in configs.describe_fields(ALGOS[name].Config):
            table.add_row(field, kind, default, "static" if static else "[green]traced[/green]", doc)
        console.print(table)
        for preset, (doc, changes) in ALGOS[name].PRESETS.items():
            fields = ", ".join(f"{k}={v}" for k, v in changes.items())
            console.print(f"[bold]preset {preset}[/bold] (`--preset {preset}`): {doc}. "
                          f"[dim]{fields}[/dim]")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:          # its own parser (rljax.bench)
        from rljax import bench
        try:
            bench.main(argv[1:])
        except SystemExit as e:
            return e.code
        return 0
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:            # --help (0) or a usage error (2)
        return e.code
    console = Console()
    try:
        if args.command == "list":
            list_command(args, console)
            return 0
        if args.command == "plot":
            plot_command.plot_command(args, console)
            return 0
        enable_compilation_cache()
        from rljax.cli import commands
        if args.command == "train":
            commands.train(args, console)
        elif args.command == "eval":
            commands.eval_run(args, console)
        elif args.command == "sweep":
            sweep_command.sweep_command(args, console)
        return 0
    except UsageError as e:
        print(f"rljax: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("rljax: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        status = _known_failure(e)
        if status is None:
            raise
        print(f"rljax: error: {_one_line(e)}", file=sys.stderr)
        return status


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError):
        where = f": {e.filename}" if e.filename else ""
        return f"{e.strerror or type(e).__name__}{where}"
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _known_failure(e: BaseException) -> int | None:
    """Exit status of a failure that is one line, not a traceback (None: a bug)."""
    from rljax.cli.rundir import WriteError
    commands = sys.modules.get("rljax.cli.commands")
    if commands is not None and isinstance(e, commands.Diverged):
        return EXIT_DIVERGED
    if isinstance(e, (WriteError, OSError)):
        return EXIT_WRITE
    return None
