"""`rljax train --log csv,tensorboard,wandb`: the command's side of `rljax.tracking`.

`--log` is checked while the arguments are parsed (an unknown name, or a writer whose
extra is not installed, is a one-line usage error, exit status 2, before anything is
built or compiled). `metrics.csv` is always written (the run folder needs it: `rljax
plot`, `rljax eval`); `csv` in the list is accepted and is the default. A resumed run
(`--resume`) without `--log` uses the writers whose output the run folder holds.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from rljax import tracking
from rljax.cli.configs import UsageError

HELP = ("where metrics go, comma-separated: csv (metrics.csv, always written), tensorboard "
        "(RUN_DIR/tensorboard/, needs rljax[tensorboard]), wandb (RUN_DIR/wandb/, needs "
        "rljax[wandb]; WANDB_MODE=offline needs no account). Default csv; with --resume, the "
        "writers the run folder already has")


def parse_log(text: str) -> list[str]:
    """argparse `type=` for `--log`: the writer names, or `ArgumentTypeError` (one line)."""
    try:
        names = tracking.check_names(text.split(","))
    except tracking.TrackingError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if not names:
        raise argparse.ArgumentTypeError("give at least one of " + ", ".join(tracking.WRITERS))
    return names


def add_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log", type=parse_log, metavar="NAMES", help=HELP)


def writer_names(args, run_dir: Path) -> list[str]:
    """`--log`, or on a resume without it the writers the folder holds output of."""
    names = list(getattr(args, "log", None) or [])
    if not names and getattr(args, "resume", None):
        if (run_dir / tracking.TENSORBOARD_DIR).is_dir():
            names.append("tensorboard")
        if (run_dir / tracking.WANDB_DIR / tracking.WANDB_ID_FILE).is_file():
            names.append("wandb")
    if "csv" not in names:
        names.insert(0, "csv")
    return names


def open_tracker(args, record: dict, run_dir: Path) -> tracking.Tracker:
    """The run's writers, opened (W&B connects or starts its offline run here, before
    compiling), with `record` (config.json) as hyperparameters."""
    try:
        return tracking.Tracker.open(run_dir, writer_names(args, Path(run_dir)), record=record)
    except tracking.TrackingError as e:
        raise UsageError(str(e)) from None
