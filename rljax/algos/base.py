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

**Non-finite values are noticed inside the program.** `scan_updates` adds to every
update's metrics `"nonfinite"` (int32): 0 when all is well, else the sum of
`NONFINITE_PARAMS` (a parameter of `state.train_state` is NaN/inf), `NONFINITE_REWARD`
(an episode that ended has a NaN/inf return: a bad reward) and `NONFINITE_METRIC` (a
metric is ±inf). A NaN loss alone is not counted (DQN reports NaN losses before it
learns), but it reaches the params at once. A NaN `episode_return` with `episodes == 0`
only means no episode ended. `train` returns the first flagged update in
`Result.diverged_at` (-1: none). The reductions are a few `isfinite` per update; no host
callback.

**Seeds.** Seed `s` is the PRNG key `jax.random.key(s)` everywhere (`rljax.seeds`).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from rljax.seeds import seed_keys  # noqa: F401  (the seed convention, re-exported)
from rljax.types import Result


MAX_UPDATES = 2**31 - 1     # a scan length and the int32 `update` counter

NONFINITE_PARAMS, NONFINITE_REWARD, NONFINITE_METRIC = 1, 2, 4
NONFINITE_NAMES = {NONFINITE_PARAMS: "params", NONFINITE_REWARD: "reward",
                   NONFINITE_METRIC: "metric"}
_EPISODE_METRICS = ("episode_return", "episode_length")


def nonfinite_code(state, metrics: dict) -> jax.Array:
    """int32 code of what is non-finite after one update (0: nothing; see the module doc)."""
    def all_finite(leaves):
        leaves = [x for x in leaves if jnp.issubdtype(x.dtype, jnp.inexact)]
        if not leaves:
            return jnp.asarray(True)
        return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))

    params = getattr(getattr(state, "train_state", None), "params", None)
    code = jnp.zeros((), jnp.int32)
    if params is not None:
        code += jnp.where(all_finite(jax.tree.leaves(params)), 0, NONFINITE_PARAMS)
    if "episode_return" in metrics:
        ended = jnp.asarray(metrics.get("episodes", 1)) > 0
        bad = jnp.logical_and(ended, ~jnp.isfinite(metrics["episode_return"]))
        code += jnp.where(jnp.any(bad), NONFINITE_REWARD, 0)
    others = [v for k, v in metrics.items() if k not in _EPISODE_METRICS and k != "nonfinite"
              and jnp.issubdtype(jnp.asarray(v).dtype, jnp.inexact)]
    if others:
        inf = jnp.any(jnp.stack([jnp.any(jnp.isinf(v)) for v in others]))
        code += jnp.where(inf, NONFINITE_METRIC, 0)
    return code


def first_nonfinite(codes) -> jax.Array:
    """Index of the first non-zero code along the last axis (-1 if none), int32."""
    codes = jnp.asarray(codes)
    bad = codes != 0
    return jnp.where(jnp.any(bad, axis=-1), jnp.argmax(bad, axis=-1), -1).astype(jnp.int32)


def check_num_updates(num_updates: int) -> None:
    """`num_updates` must fit a scan length and the int32 update counter."""
    if num_updates > MAX_UPDATES:
        raise ValueError(f"{num_updates:.3g} updates is more than one run can hold "
                         f"({MAX_UPDATES} = 2^31 - 1, an int32 loop count); lower total_steps "
                         f"or raise the steps per update")


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
    optional host callback of `Loop.run`; returns `(state, metrics [num_updates])`.
    Every update's metrics get `"nonfinite"` (`nonfinite_code`)."""
    check_num_updates(num_updates)

    def body(state, i):
        state, metrics = update(state)
        metrics = {**metrics, "nonfinite": nonfinite_code(state, metrics)}
        if callback is not None:
            report = jnp.logical_or((i + 1) % callback_every == 0, i == num_updates - 1)
            jax.lax.cond(report, lambda m: jax.debug.callback(callback, m), lambda m: None, metrics)
        return state, metrics

    return jax.lax.scan(body, state, jnp.arange(num_updates))


def iterations_loop(init: Callable, iteration: Callable, summarise: Callable, *,
                    iterations_per_update: int, num_updates: int, steps_per_update: int,
                    unroll: int = 1) -> Loop:
    """A `Loop` whose update is `iterations_per_update` calls of `iteration(state, i) ->
    (state, metrics)` in one `lax.scan` (`i` counts iterations from the run's start, so
    schedules resume exactly), `summarise`d into one metrics row (the replay learners:
    DQN, DRQN, SAC). The state needs an `update` field."""

    def update(state):
        index = state.update * iterations_per_update + jnp.arange(iterations_per_update)
        state, per_iter = jax.lax.scan(iteration, state, index, unroll=unroll)
        return state._replace(update=state.update + 1), summarise(per_iter)

    def run(state, num_updates: int, *, callback=None, callback_every: int = 1):
        return scan_updates(update, state, num_updates, callback=callback,
                            callback_every=callback_every)

    return Loop(init, run, num_updates, steps_per_update)


def train_loop(loop: Loop, rng, *, callback=None, callback_every: int = 1) -> Result:
    """All of `loop`'s updates from `rng`: what every `train` returns, with the first
    update where something went non-finite in `Result.diverged_at` (-1: none)."""
    if isinstance(rng, int) or getattr(rng, "dtype", None) in (jnp.int32, jnp.int64):
        raise TypeError("train needs a PRNG key, not an int seed: pass jax.random.key(seed)")
    check_num_updates(loop.num_updates)
    state, metrics = loop.run(loop.init(rng), loop.num_updates, callback=callback,
                              callback_every=callback_every)
    diverged_at = first_nonfinite(metrics["nonfinite"]) if "nonfinite" in metrics else None
    return Result(state.train_state, metrics, diverged_at)


CONTRACT = ("Config", "PRESETS", "preset", "make_agent", "loop", "train")


def check_contract(module) -> None:
    """Raise `TypeError` naming what an algorithm module lacks (the registry calls it)."""
    missing = [name for name in CONTRACT if not hasattr(module, name)]
    if missing:
        raise TypeError(f"{module.__name__} lacks {missing} of the algorithm contract "
                        f"(rljax.algos.base: {', '.join(CONTRACT)})")
    if not dataclasses.is_dataclass(module.Config):
        raise TypeError(f"{module.__name__}.Config must be a config_class dataclass")
