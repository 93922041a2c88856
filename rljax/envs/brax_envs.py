"""Brax envs on gymnax's six-value step API (`envs.make("brax/inverted_pendulum")`).

Needs the optional extra: `pip install rljax[brax]`. Brax's own training wrappers fold
the time limit into `done` (with `info["truncation"]`); here, as for every rljax env:

    step(key, state, action, params) -> (obs, state, reward, terminated, truncated, info)

`terminated` is Brax's `done` (the pendulum fell), `truncated` is the time limit
(`params.max_steps_in_episode`, Brax's `episode_length`, default 1000) reached without
termination; at either the env auto-resets (with a key from `step`), `obs` starts the
next episode and `info["final_observation"]` is the last observation of the finished
one. Actions are in Brax's box [-1, 1]^D (`envs.make` clips them).
"""
from __future__ import annotations

import importlib.util
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces

# Brax's `swimmer` is left out: brax 0.14.2's fluid model calls `jnp.clip(a_min=...)`,
# which jax 0.10 removed, so it fails at trace time on rljax's pinned JAX.
ENVS = ("ant", "halfcheetah", "hopper", "humanoid", "humanoidstandup",
        "inverted_double_pendulum", "inverted_pendulum", "pusher", "reacher", "walker2d")
MISSING = ("Brax envs need the optional extra: pip install 'rljax[brax]' "
           "(brax 0.14 on jax 0.10)")


def available() -> bool:
    """Whether the `brax` package is installed."""
    return importlib.util.find_spec("brax") is not None


def env_ids() -> list[str]:
    """`brax/NAME` for Brax's envs; empty without the extra."""
    return [f"brax/{name}" for name in ENVS] if available() else []


@struct.dataclass
class BraxParams:
    max_steps_in_episode: int = struct.field(pytree_node=False, default=1000)


@struct.dataclass
class BraxState:
    inner: Any         # brax.envs.base.State
    time: jax.Array    # steps taken in the current episode, int32


class BraxEnv:
    """A Brax env with gymnax's interface, auto-reset and termination vs truncation."""

    def __init__(self, env, name: str):
        self.env, self._name = env, name

    @property
    def name(self) -> str:
        return f"brax/{self._name}"

    @property
    def default_params(self) -> BraxParams:
        return BraxParams()

    @property
    def num_actions(self) -> int:
        return self.env.action_size

    def action_space(self, params):
        return spaces.Box(-1.0, 1.0, (self.env.action_size,), jnp.float32)

    def observation_space(self, params):
        return spaces.Box(-jnp.inf, jnp.inf, (self.env.observation_size,), jnp.float32)

    def reset(self, key, params):
        inner = self.env.reset(key)
        return inner.obs.astype(jnp.float32), BraxState(inner, jnp.zeros((), jnp.int32))

    def step(self, key, state: BraxState, action, params):
        inner = self.env.step(state.inner, jnp.asarray(action, jnp.float32))
        time = state.time + 1
        terminated = jnp.asarray(inner.done) > 0.5
        truncated = jnp.logical_and(~terminated, time >= params.max_steps_in_episode)
        done = jnp.logical_or(terminated, truncated)
        final_obs = inner.obs.astype(jnp.float32)
        reset_obs, reset_state = self.reset(key, params)
        running = BraxState(inner.replace(done=jnp.zeros_like(jnp.asarray(inner.done))), time)
        state = jax.tree.map(lambda r, s: jnp.where(done, r, s), reset_state, running)
        obs = jnp.where(done, reset_obs, final_obs)
        info = {"final_observation": final_obs}
        return obs, state, jnp.asarray(inner.reward, jnp.float32), terminated, truncated, info


def make(name: str, **kwargs):
    """`(BraxEnv, BraxParams)` for Brax env `name`; `kwargs` go to
    `brax.envs.get_environment` (e.g. `backend="positional"`)."""
    if not available():
        raise ValueError(MISSING)
    if name not in ENVS:
        raise ValueError(f"unknown Brax env {name!r}; Brax envs: {', '.join(ENVS)}")
    from brax import envs as brax_envs
    return BraxEnv(brax_envs.get_environment(name, **kwargs), name), BraxParams()
