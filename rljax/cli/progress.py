"""Live progress fed from inside the compiled program.

`Progress.callback` is handed to `train(..., callback=, callback_every=)`, which calls
it through `jax.debug.callback` every `callback_every` updates. Under `vmap` over
seeds JAX calls it once per seed, one after the other, with that seed's scalars; the
host groups the calls by `env_steps` (the same for every seed at a given update).
"""
from __future__ import annotations

import math
import threading
import time

import numpy as np
from rich.console import Console
from rich.progress import (BarColumn, Progress as RichProgress, ProgressColumn, SpinnerColumn,
                           TextColumn, TimeRemainingColumn)
from rich.text import Text


def reports_every(num_updates: int, reports: int = 100) -> int:
    """Call back about `reports` times a run: a host round trip is ~0.1 ms, an update more."""
    return max(1, num_updates // reports)


class _StepsPerSecond(ProgressColumn):
    def render(self, task) -> Text:
        speed = task.fields.get("steps_per_s")
        return Text(f"{speed:,.0f} steps/s" if speed else "", style="progress.data.speed")


class Progress:
    """A rich progress bar over env steps (per seed), with steps/s over all seeds and the
    mean return of the last report."""

    def __init__(self, total_steps: int, num_seeds: int, *, start_steps: int = 0,
                 console: Console | None = None, enabled: bool = True, label: str = "train"):
        self.total_steps, self.num_seeds = total_steps, num_seeds
        self.enabled = enabled
        self._lock = threading.Lock()
        self._pending: dict[float, list[float]] = {}
        self._start_steps = start_steps
        self._t0 = None
        self.last_return = math.nan
        self.steps = start_steps
        self._bar = RichProgress(
            SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(bar_width=20),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f}"), _StepsPerSecond(),
            TextColumn("R {task.fields[ret]}"), TimeRemainingColumn(), console=console or Console(stderr=True), transient=False,
            disable=not enabled)
        self._task = self._bar.add_task(f"{label} (compiling)", total=total_steps,
                                        completed=start_steps, ret="-", steps_per_s=None)

    def __enter__(self):
        self._bar.__enter__()
        return self

    def __exit__(self, *exc):
        self._bar.__exit__(*exc)

    def started(self, label: str = "train"):
        """The program is compiled and now runs."""
        self._bar.update(self._task, description=label)

    def callback(self, metrics) -> None:
        """Host side of `jax.debug.callback`: one seed's metrics of one update."""
        steps = float(np.asarray(metrics["env_steps"]))
        ret = float(np.asarray(metrics["episode_return"]))
        with self._lock:
            if self._t0 is None:
                self._t0 = (time.perf_counter(), self.steps)
            group = self._pending.setdefault(steps, [])
            group.append(ret)
            if len(group) < self.num_seeds:
                return
            del self._pending[steps]
            finite = [r for r in group if math.isfinite(r)]
            if finite:
                self.last_return = float(np.mean(finite))
            self.advance(steps)

    def advance(self, steps: float, episode_return: float | None = None) -> None:
        """Show `steps` env steps per seed done (also used between segments)."""
        if episode_return is not None and math.isfinite(episode_return):
            self.last_return = episode_return
        now = time.perf_counter()
        if self._t0 is None:
            self._t0 = (now, self.steps)
        t0, s0 = self._t0
        rate = (steps - s0) * self.num_seeds / (now - t0) if now > t0 and steps > s0 else None
        self.steps = steps
        ret = "-" if not math.isfinite(self.last_return) else f"{self.last_return:.1f}"
        self._bar.update(self._task, completed=steps, ret=ret, steps_per_s=rate)
