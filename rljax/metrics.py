"""Reading `Result.metrics`: per-update curves where some updates saw no finished
episode (NaN), and the one definition of a run's final return."""
from __future__ import annotations

import warnings

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
