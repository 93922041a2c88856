"""Helpers for reading `Result.metrics`: per-update curves where some updates saw no
finished episode (NaN)."""
from __future__ import annotations

import numpy as np


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
