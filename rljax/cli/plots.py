"""Learning-curve plot: mean and spread of the episode return over seeds vs env steps."""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np

from rljax.cli.rundir import atomic_write
from rljax.metrics import smooth


def learning_curve(metrics: dict, path: Path, *, title: str = "") -> None:
    """Save a PNG of `metrics["episode_return"] [seeds, updates]` against env steps."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.asarray(metrics["env_steps"], dtype=float)[0]
    returns = np.asarray(metrics["episode_return"], dtype=float)
    curves = smooth(returns, max(1, returns.shape[1] // 50))
    with warnings.catch_warnings():       # all-NaN columns before the first episode ends
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(curves, axis=0)
        low, high = np.nanmin(curves, axis=0), np.nanmax(curves, axis=0)
        std = np.nanstd(curves, axis=0)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    n = returns.shape[0]
    ax.fill_between(steps, low, high, alpha=0.15, label=f"min-max over {n} seeds")
    ax.fill_between(steps, mean - std, mean + std, alpha=0.3, label="mean ± std")
    ax.plot(steps, mean, lw=2, label="mean")
    ax.set_xlabel("env steps (per seed)")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write(Path(path), buf.getvalue())
