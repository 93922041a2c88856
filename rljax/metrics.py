"""Reading `Result.metrics`: per-update curves where some updates saw no finished
episode (NaN), and the one definition of a run's final return."""
from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

FINAL_FRACTION = 0.1


def final_return(episode_return, fraction: float = FINAL_FRACTION) -> np.ndarray:
    """A run's final return: the mean episode return over the last `fraction` (10%) of
    its updates (at least one), skipping updates where no episode ended.

    `episode_return` is `[updates]` or `[..., updates]` (e.g. `[seeds, updates]`);
    the result drops the last axis. NaN where no episode ended in that tail. The
    command's summary, `rljax sweep`, `sweep.SweepResult`, the scripts and the tests
    all use this.
    """
    values = np.asarray(episode_return, dtype=float)
    tail = values[..., -max(1, int(round(values.shape[-1] * fraction))):]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(tail, axis=-1)


def smooth(values, window: int = 20) -> np.ndarray:
    """NaN-aware trailing mean over the last `window` updates, along the last axis.

    `values` is `[updates]` or `[..., updates]` (e.g. `[seeds, updates]`); NaN entries
    (no episode ended in that update) are skipped; a window with no finite entry is NaN.
    """
    values = np.asarray(values, dtype=float)
    finite = np.isfinite(values)
    kernel = np.ones(int(window))
    n = values.shape[-1]

    def trailing_sum(x):
        return np.apply_along_axis(lambda row: np.convolve(row, kernel)[:n], -1, x)

    total = trailing_sum(np.where(finite, values, 0.0))
    count = trailing_sum(finite.astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


class ReturnTrend(NamedTuple):
    """Best and final return of a run (means over seeds of 10%-of-updates windows)."""

    final: float          # mean over seeds of `final_return` (NaN: no episode ended)
    best: float           # the best window's mean return (NaN: no episode ended)
    best_update: int      # the last update of that window (-1 if none)
    worst: float          # the worst window's mean return
    collapsed: bool       # final fell far below best (more than half of |best|, and into
                          # the lowest quarter of the worst..best range)


def return_trend(episode_return, fraction: float = FINAL_FRACTION) -> ReturnTrend:
    """`episode_return [seeds, updates]` (or `[updates]`): best vs final return, and
    whether the run collapsed (as A2C with lr 0.01 and no gradient clipping can on
    CartPole: it reaches the maximum, then falls to ~10)."""
    values = np.asarray(episode_return, dtype=float)
    values = values[None] if values.ndim == 1 else values.reshape(-1, values.shape[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        final = float(np.nanmean(final_return(values, fraction)))
        window = max(1, int(round(values.shape[-1] * fraction)))
        curve = np.nanmean(smooth(values, window), axis=0)
    if not np.isfinite(curve).any():
        return ReturnTrend(final, float("nan"), -1, float("nan"), False)
    at = int(np.nanargmax(curve))
    best, worst = float(curve[at]), float(np.nanmin(curve))
    collapsed = bool(np.isfinite(final) and at < values.shape[-1] - window
                     and best - final > 0.5 * abs(best)
                     and final < worst + 0.25 * (best - worst))
    return ReturnTrend(final, best, at, worst, collapsed)
