"""The algorithm contract: what every module in `rljax.algos` exposes.

    Config                        frozen dataclass; static fields (shapes, loop lengths,
                                  network) vs traced fields (numbers; sweepable), each
                                  field checked at construction and documented
    PRESETS                       named scenario configs {name: Preset(doc, changes)}
    preset(name, **changes)       a preset's Config (`config.preset_function`)
    make_agent(config, spec)      the `Agent` for an env's `EnvSpec`
    loop(config) -> Loop          the run as resumable pieces (below)
    train(config, rng, *, callback=None, callback_every=1) -> Result
                                  the whole run: `train_loop(loop(config), rng)`

A `Loop` is `(init, run, num_updates, steps_per_update)`:

    state = loop.init(rng)                         # one pytree: params, optimizer,
    state, metrics = loop.run(state, 10)           # env and rollout state, replay
    state, more = loop.run(state, loop.num_updates - 10)   # buffer, PRNG key, counters

Its state is a NamedTuple with at least `train_state` (a `TrainState`; its params
are what `rljax eval` plays) and `update` (updates done, int32). Saving the state
and continuing with `run` gives exactly the run that never stopped. One update is
one row of metrics, `steps_per_update` env steps per seed.

**Seeds.** Seed `s` is the PRNG key `jax.random.key(s)` everywhere (`rljax.seeds`).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from rljax.seeds import seed_keys  # noqa: F401  (the seed convention, re-exported)
from rljax.types import Result


class Loop(NamedTuple):
    """A training run in resumable pieces; all functions pure, jit- and vmap-able.

    init(rng) -> state
    run(state, n, *, callback=None, callback_every=1) -> (state, metrics [n])
        `n` updates (static); `callback(metrics)` runs on the host
        (`jax.debug.callback`) after every `callback_every`-th update of the piece
        and after its last one; under `vmap` once per batch member.
    num_updates: updates in the whole run.
    steps_per_update: env steps per update (one metrics row), per seed.
    """

    init: Callable
    run: Callable
    num_updates: int
    steps_per_update: int


def scan_updates(update: Callable, state, num_updates: int, *, callback=None,
                 callback_every: int = 1):
    """`lax.scan` of `update(state) -> (state, metrics)`, `num_updates` times, with the
    optional host callback of `Loop.run`; returns `(state, metrics [num_updates])`."""

    def body(state, i):
        state, metrics = update(state)
        if callback is not None:
            report = jnp.logical_or((i + 1) % callback_every == 0, i == num_updates - 1)
            jax.lax.cond(report, lambda m: jax.debug.callback(callback, m), lambda m: None, metrics)
        return state, metrics

    return jax.lax.scan(body, state, jnp.arange(num_updates))


def train_loop(loop: Loop, rng, *, callback=None, callback_every: int = 1) -> Result:
    """All of `loop`'s updates from `rng`: what every `train` returns."""
    if isinstance(rng, int) or getattr(rng, "dtype", None) in (jnp.int32, jnp.int64):
        raise TypeError("train needs a PRNG key, not an int seed: pass jax.random.key(seed)")
    state, metrics = loop.run(loop.init(rng), loop.num_updates, callback=callback,
                              callback_every=callback_every)
    return Result(state.train_state, metrics)


CONTRACT = ("Config", "PRESETS", "preset", "make_agent", "loop", "train")


def check_contract(module) -> None:
    """Raise `TypeError` naming what an algorithm module lacks (the registry calls it)."""
    missing = [name for name in CONTRACT if not hasattr(module, name)]
    if missing:
        raise TypeError(f"{module.__name__} lacks {missing} of the algorithm contract "
                        f"(rljax.algos.base: {', '.join(CONTRACT)})")
    if not dataclasses.is_dataclass(module.Config):
        raise TypeError(f"{module.__name__}.Config must be a config_class dataclass")
