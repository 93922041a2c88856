"""`rljax sweep`: a hyperparameter sweep of traced fields as one compiled program.

    rljax sweep ppo --grid lr=1e-4,3e-4,1e-3 --seeds 4 --set total_steps=1e5
    rljax sweep a2c --samples 16 --log-uniform lr=1e-3:3e-2 --uniform gamma=0.9:0.99 --seeds 2
    rljax sweep dqn --grid lr=1e-4,3e-4 --choice double_q=... # static fields are refused

Writes DIR/sweep.json (the command's inputs), DIR/sweep.csv (one row per member),
DIR/curves.csv and DIR/sweep.png (final return against each swept value: a point per
member, the mean per value), and prints the ranking by final return (mean over seeds).
Members whose training went non-finite (NaN/inf) are marked `diverged` and ranked after
every healthy config; a NaN final return without divergence means no episode ended.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
from rich.console import Console
from rich.table import Table

from rljax import sweep
from rljax.cli import configs, plots, rundir
from rljax.cli.configs import UsageError
from rljax.config import StaticFieldError


def _pairs(items: list[str] | None, flag: str, cls) -> list[tuple[str, str]]:
    """`FIELD=VALUES` items, each naming a field of `cls`."""
    names = [f.name for f in dataclasses.fields(cls)]
    out = []
    for item in items or []:
        if "=" not in item:
            raise UsageError(f"{flag} expects FIELD=VALUES, got {item!r}")
        name, values = (x.strip() for x in item.split("=", 1))
        if name not in names:
            raise UsageError(f"unknown field {name!r} in {flag}{configs.close_match(name, names)}; "
                             "`rljax list` shows the fields")
        out.append((name, values))
    return out


def _range(text: str, flag: str) -> tuple[float, float]:
    try:
        lo, hi = (float(configs.parse_value(x)) for x in text.split(":"))
    except (TypeError, ValueError):
        raise UsageError(f"{flag} expects FIELD=LOW:HIGH, got {text!r}") from None
    return lo, hi


def build_space(args, cls) -> list[dict]:
    """The search space from --grid / --samples with --log-uniform, --uniform, --choice."""
    grid = {name: [configs.coerce(cls, name, configs.parse_value(v)) for v in values.split(",")]
            for name, values in _pairs(args.grid, "--grid", cls)}
    dists = {}
    for flag, items, make in (("--log-uniform", args.log_uniform, sweep.log_uniform),
                              ("--uniform", args.uniform, sweep.uniform)):
        for name, text in _pairs(items, flag, cls):
            lo, hi = _range(text, flag)
            try:
                dists[name] = make(lo, hi)
            except ValueError as e:
                raise UsageError(f"{flag} {name}={text}: {e}") from None
    for name, values in _pairs(args.choice, "--choice", cls):
        dists[name] = sweep.choice([configs.coerce(cls, name, configs.parse_value(v))
                                    for v in values.split(",")])
    if args.samples < 0:
        raise UsageError(f"--samples must be >= 1, got {args.samples}")
    if dists and not args.samples:
        raise UsageError("--log-uniform / --uniform / --choice need --samples N")
    if args.samples and not dists:
        raise UsageError("--samples N draws from --log-uniform / --uniform / --choice; give one")
    spaces = []
    if grid:
        spaces.append(sweep.grid(**grid))
    if dists:
        spaces.append(sweep.sample(jax.random.key(args.sample_seed), args.samples, **dists))
    if not spaces:
        raise UsageError("give a search space: --grid FIELD=V1,V2,... and/or --samples N with "
                         "--log-uniform / --uniform / --choice")
    return sweep.product(*spaces)


def sweep_command(args, console: Console) -> Path:
    algo = configs.get_algo(args.algo)
    changes = configs.read_config_file(args.config) if args.config else {}
    changes = dict(changes.get("config", changes))
    if args.env:
        changes["env_id"] = args.env
    changes.update(configs.parse_sets(args.set or []))
    base = configs.make_config(algo, changes, preset=args.preset)
    space = build_space(args, algo.Config)
    if args.seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
    if args.chunk_size is not None and args.chunk_size < 1:
        raise UsageError(f"--chunk-size must be >= 1, got {args.chunk_size}")
    if args.top < 0:
        raise UsageError(f"--top must be >= 0, got {args.top}")
    rundir.check_writable(args.out)
    try:
        sweep.check_space(base, {k for point in space for k in point})
        jax.eval_shape(algo.train, base, jax.random.key(0))   # the algorithm's own checks
    except (StaticFieldError, ValueError, TypeError) as e:
        raise UsageError(configs.cli_message(str(e).splitlines()[0])) from None
    out = rundir.new_run_dir(args.out, f"sweep-{args.algo}", base.env_id)
    rundir.atomic_write(out / "sweep.json", json.dumps(dict(
        algo=args.algo, seeds=args.seeds, space=space, config=configs.to_json(base)),
        indent=2, default=str) + "\n")
    members = len(space) * args.seeds
    with console.status(f"sweeping {args.algo}: {members} members in one compiled program"):
        result = sweep.run(algo.train, base, space, seeds=args.seeds, chunk_size=args.chunk_size,
                           csv_path=out / "sweep.csv")
    result.curves_to_csv(out / "curves.csv")
    table = Table(title=f"{args.algo} sweep: {result.completed}/{members} members, ranked by "
                        "final return (mean over seeds)", title_justify="left")
    ranking = result.rank("final_return")
    for col in ranking[0] if ranking else []:
        table.add_column(str(col))
    for row in ranking[:args.top]:
        table.add_row(*[_cell(k, v, row) for k, v in row.items()])
    console.print(table)
    drawn = result.completed and plots.sweep_figure(                 # [plots] final return per value
        result.members, result.final_return, out / "sweep.png", title=f"{args.algo} on {base.env_id}")
    console.print(f"results in {out}/ (sweep.csv, curves.csv{', sweep.png' if drawn else ''})",
                  soft_wrap=True)
    if result.error is not None:
        raise UsageError(f"a chunk failed after {result.completed} members (kept in {out}): "
                         f"{type(result.error).__name__}: {result.error}")
    return out


def _cell(key, value, row) -> str:
    if key == "final_return" and isinstance(value, float) and value != value:
        return "diverged" if row.get("diverged") else "no episode ended"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def add_parser(sub) -> None:
    s = sub.add_parser("sweep", help="one-compile hyperparameter sweep over traced fields",
                       description=__doc__.split("\n\n")[0])
    s.add_argument("algo", metavar="ALGO", help=f"one of {', '.join(configs.ALGOS)}")
    s.add_argument("--env", metavar="ID")
    s.add_argument("--set", action="append", metavar="FIELD=VALUE", help="base config field")
    s.add_argument("--preset", metavar="NAME", help="base config from a named preset of ALGO")
    s.add_argument("--config", metavar="FILE", help="base config from a YAML/JSON file")
    s.add_argument("--grid", action="append", metavar="FIELD=V1,V2", help="grid axis (repeatable)")
    s.add_argument("--samples", type=int, default=0, metavar="N", help="random points to draw")
    s.add_argument("--log-uniform", action="append", metavar="FIELD=LO:HI")
    s.add_argument("--uniform", action="append", metavar="FIELD=LO:HI")
    s.add_argument("--choice", action="append", metavar="FIELD=V1,V2")
    s.add_argument("--sample-seed", type=int, default=0)
    s.add_argument("--seeds", type=int, default=2, help="seeds per point: seeds 0..N-1, the "
                   "keys of `rljax train --seed S` (default 2)")
    s.add_argument("--chunk-size", type=int, metavar="N", help="members per compiled call")
    s.add_argument("--top", type=int, default=10, help="ranking rows to print")
    s.add_argument("--out", metavar="DIR", help="results folder (default runs/sweep-ALGO-ENV-TIME)")
