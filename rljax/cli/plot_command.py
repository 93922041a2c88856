"""`rljax plot`: overlay the learning curves of several run folders.

    rljax plot runs/ppo-a runs/ppo-b [--smooth N] [--out FILE] [--metric episode_return]

Per run: the mean over seeds of the metric and its min–max band, against env steps per
seed; labels name the algorithm, the env and the config fields that differ between the
runs. Writes a PNG (default `comparison-METRIC.png` in the current folder) and prints its
path. A folder that is not a run, or a metric a run lacks, is one line and exit status 2.
"""
from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from rljax.cli import rundir
from rljax.cli.configs import UsageError


def _load(path: str, metric: str) -> dict:
    run = Path(path)
    if not run.is_dir():
        raise UsageError(f"{path} is not a run folder (no such folder)")
    for name in (rundir.CONFIG, rundir.METRICS):
        if not (run / name).is_file():
            raise UsageError(f"{path} is not a run folder (no {name})")
    try:
        record = json.loads((run / rundir.CONFIG).read_text())
        metrics = rundir.read_metrics(run)
    except (ValueError, IndexError, OSError) as e:
        raise UsageError(f"{path}: cannot read its run files ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''})") from None
    if not isinstance(record, dict) or "algo" not in record:
        raise UsageError(f"{path} is not a run folder ({rundir.CONFIG} names no algo)")
    if metric not in metrics:
        known = ", ".join(k for k in metrics if k != "env_steps")
        raise UsageError(f"{path} has no metric {metric!r}; it has {known}")
    if metrics[metric].size == 0:
        raise UsageError(f"{path} has no rows in {rundir.METRICS} yet")
    return {"path": run, "record": record, "env_steps": metrics["env_steps"], metric: metrics[metric]}


def _describe(record: dict) -> dict:
    """A run's labelled fields: algo, env, seeds and every config field."""
    config = dict(record.get("config") or {})
    out = {"algo": record.get("algo"), "env": config.pop("env_id", None), "seeds": record.get("seeds")}
    out.update(config)
    return out


def labels(records: list[dict]) -> list[str]:
    """`algo env` plus the fields that differ between the runs (`lr=0.001 gamma=0.9`)."""
    described = [_describe(r) for r in records]
    keys = list(dict.fromkeys(k for d in described for k in d))
    differ = [k for k in keys if k not in ("algo", "env", "seeds")
              and len({json.dumps(d.get(k), sort_keys=True) for d in described}) > 1]
    out = []
    for d in described:
        text = f"{d['algo']} {d['env']}"
        extra = " ".join(f"{k}={_short(d.get(k))}" for k in differ)
        out.append(f"{text} {extra}".strip())
    return out


def _short(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ",".join(_short(x) for x in v) + "]"
    return str(v)


def plot_command(args, console: Console) -> Path:
    if args.smooth is not None and args.smooth < 1:
        raise UsageError(f"--smooth must be >= 1, got {args.smooth}")
    runs = [_load(p, args.metric) for p in args.run_dirs]
    names = labels([r["record"] for r in runs])
    if len(set(names)) < len(names):           # same config twice: tell them apart by folder
        names = [f"{n} ({r['path'].name})" for n, r in zip(names, runs)]
    for run, name in zip(runs, names):
        run["label"] = name
    updates = max(r[args.metric].shape[1] for r in runs)
    window = args.smooth if args.smooth is not None else max(1, updates // 50)
    out = Path(args.out) if args.out else Path(f"comparison-{args.metric}.png")
    if out.suffix.lower() != ".png":
        raise UsageError(f"--out must name a .png file, got {args.out}")
    if not out.parent.is_dir():
        raise UsageError(f"--out {args.out}: folder {out.parent} does not exist")
    from rljax.cli import plots
    plots.compare(runs, out, metric=args.metric, smooth_window=window)
    console.print(str(out), soft_wrap=True, highlight=False)
    return out


def add_parser(sub) -> None:
    p = sub.add_parser("plot", help="overlay the learning curves of run folders in one PNG",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--smooth", type=int, metavar="N",
                   help="trailing mean over N updates (default: updates / 50)")
    p.add_argument("--out", metavar="FILE", help="PNG to write (default comparison-METRIC.png)")
    p.add_argument("--metric", default="episode_return",
                   help="metrics.csv column to plot (default episode_return)")
