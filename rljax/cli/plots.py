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


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: Path) -> None:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write(Path(path), buf.getvalue())


def compare(curves: list[dict], path: Path, *, metric: str = "episode_return", smooth_window: int = 1,
            title: str = "") -> None:
    """Overlay learning curves: per run, the mean over seeds of `metric` and its min–max
    band against env steps. `curves[i]` is `{"label", "env_steps": [seeds, updates],
    metric: [seeds, updates]}`."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for i, run in enumerate(curves):
        steps = np.asarray(run["env_steps"], dtype=float)
        values = smooth(np.asarray(run[metric], dtype=float), max(1, smooth_window))
        x = np.nanmax(steps, axis=0)              # the same for every seed
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(values, axis=0)
            low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
        color = f"C{i % 10}"
        n = values.shape[0]
        ax.plot(x, mean, lw=2, color=color, label=f"{run['label']} ({n} seed{'s' if n != 1 else ''})")
        if n > 1:
            ax.fill_between(x, low, high, color=color, alpha=0.15, lw=0)
    ax.set_xlabel("env steps (per seed)")
    ax.set_ylabel(metric.replace("_", " ") + (f" (mean of last {smooth_window} updates)"
                                              if smooth_window > 1 else ""))
    ax.set_title(title or f"{metric}: mean over seeds, band = min–max")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    _save(fig, path)


def _numeric(values: list) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def sweep_figure(members: list[dict], final_return: np.ndarray, path: Path, *, title: str = "") -> bool:
    """Final return against each swept value: one panel per swept field, a point per
    member (jittered a little along x when seeds share a value) and the mean per value.
    `members[i]` is `{"member", "seed", **swept values}`; returns False when nothing was
    swept or no member ran."""
    final_return = np.asarray(final_return, dtype=float)
    members = members[:len(final_return)]
    fields = [k for k in (members[0] if members else {}) if k not in ("member", "seed")]
    if not fields:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(fields), figsize=(4.5 * len(fields), 4), dpi=100, squeeze=False)
    for ax, field in zip(axes[0], fields):
        values = [m[field] for m in members]
        distinct = sorted(set(values), key=lambda v: (str(type(v)), v))
        numeric = _numeric(distinct)
        if numeric:
            x = np.array(values, dtype=float)
            xs = np.array(distinct, dtype=float)
            if np.all(xs > 0) and xs.max() / xs.min() >= 10:
                ax.set_xscale("log")
        else:
            pos = {v: i for i, v in enumerate(distinct)}
            x = np.array([pos[v] for v in values], dtype=float)
            xs = np.arange(len(distinct), dtype=float)
            ax.set_xticks(xs, [str(v) for v in distinct])
        ax.scatter(x, final_return, s=18, alpha=0.6, color="C0", label="member (point x seed)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            means = np.array([np.nanmean(final_return[[v == d for v in values]]) for d in distinct])
        ax.plot(xs, means, "o-", color="C3", lw=1.5, label="mean per value")
        ax.set_xlabel(field)
        ax.set_ylabel("final return")
        ax.grid(alpha=0.3)
    axes[0][0].legend(loc="best", fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)
    return True
