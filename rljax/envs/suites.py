"""Env suites outside gymnax (Brax, xminigrid, Craftax) on rljax's six-value step.

Each suite is an optional extra and a module of its own (`brax_envs`, `xminigrid_envs`,
`craftax_envs`) that defines

    PREFIX       the id prefix, e.g. "xminigrid/"
    MISSING      the one line an id of the suite raises without the extra
    available()  whether the suite's package is installed (nothing is imported)
    env_ids()    the suite's ids with PREFIX, empty without the extra
    make(name, params=None, **kwargs) -> (env, SuiteParams)

and an env class derived from `AutoResetEnv` below, which holds what the suites share:
the suite env steps WITHOUT auto-reset or time limit, and `AutoResetEnv` turns that into

    reset(key, params) -> (obs, state)
    step(key, state, action, params) -> (obs, state, reward, terminated, truncated, info)

with auto-reset, `truncated` at `params.max_steps_in_episode` steps (never where the
step also terminates) and `info["final_observation"]`, the last observation of the
finished episode at a done step (where `obs` already starts the next one).
"""
from __future__ import annotations

import dataclasses
import importlib.util
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct


def installed(package: str) -> bool:
    """Whether `package` can be imported (without importing it)."""
    return importlib.util.find_spec(package) is not None


def missing_message(suite: str, extra: str, tested: str) -> str:
    """The one line a suite's ids raise when its extra is not installed."""
    return f"{suite} envs need the optional extra: pip install 'rljax[{extra}]' ({tested})"


def replace_fields(env_id: str, params, overrides: dict | None, *, refused: dict | None = None):
    """`params` (a dataclass) with `overrides` applied; an unknown field, or one of
    `refused` (field -> what to use instead), is named in a `ValueError`."""
    if not overrides:
        return params
    for name, instead in (refused or {}).items():
        if name in overrides:
            raise ValueError(f"{env_id}: set {name!r} with {instead}, not as an env param")
    known = {f.name for f in dataclasses.fields(params)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"{env_id} has no env params {unknown}; its params are {sorted(known)}")
    return dataclasses.replace(params, **overrides)


@struct.dataclass
class SuiteParams:
    """A suite env's params: rljax's time limit and the suite's own params (`inner`)."""

    max_steps_in_episode: int = struct.field(pytree_node=False, default=1000)
    inner: Any = None


@struct.dataclass
class SuiteState:
    inner: Any         # the suite's own env state
    time: jax.Array    # steps taken in the current episode, int32 []


class AutoResetEnv:
    """Base of the suite adapters: a gymnax-style env with auto-reset and termination
    vs truncation, on top of a suite env that has neither.

    A subclass defines `_reset(key, params) -> (obs, inner)` and
    `_step(key, inner, action, params) -> (obs, inner, reward, terminated)` (the suite's
    own step with no time limit and no reset: `terminated` is a real terminal only),
    plus `action_space` / `observation_space` (gymnax spaces) and `num_actions`.
    Observations are float32 of `observation_space(params).shape`; one env, no batch
    axis (rljax's rollout `vmap`s it).
    """

    prefix = ""

    def __init__(self, name: str, default_params: SuiteParams):
        self._name, self._default_params = name, default_params

    @property
    def name(self) -> str:
        return f"{self.prefix}{self._name}"

    @property
    def default_params(self) -> SuiteParams:
        return self._default_params

    def _reset(self, key, params: SuiteParams):
        raise NotImplementedError

    def _step(self, key, inner, action, params: SuiteParams):
        raise NotImplementedError

    def reset(self, key, params: SuiteParams):
        obs, inner = self._reset(key, params)
        return jnp.asarray(obs, jnp.float32), SuiteState(inner, jnp.zeros((), jnp.int32))

    def step(self, key, state: SuiteState, action, params: SuiteParams):
        key_step, key_reset = jax.random.split(key)
        final_obs, inner, reward, terminated = self._step(key_step, state.inner, action, params)
        final_obs = jnp.asarray(final_obs, jnp.float32)
        time = state.time + 1
        terminated = jnp.asarray(terminated, bool)
        truncated = jnp.logical_and(~terminated, time >= params.max_steps_in_episode)
        done = jnp.logical_or(terminated, truncated)
        reset_obs, reset_state = self.reset(key_reset, params)
        state = jax.tree.map(lambda r, s: jnp.where(done, r, s), reset_state,
                             SuiteState(inner, time))
        obs = jnp.where(done, reset_obs, final_obs)
        info = {"final_observation": final_obs}
        return obs, state, jnp.asarray(reward, jnp.float32), terminated, truncated, info
