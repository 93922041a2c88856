"""Brax envs on gymnax's six-value step API (`envs.make("brax/inverted_pendulum")`).

Needs the optional extra: `pip install rljax[brax]`. Brax's own training wrappers fold
the time limit into `done` (with `info["truncation"]`); here, as for every rljax env:

    step(key, state, action, params) -> (obs, state, reward, terminated, truncated, info)

`terminated` is Brax's `done` (the pendulum fell), `truncated` is the time limit
(`params.max_steps_in_episode`, Brax's `episode_length`, default 1000) reached without
termination; at either the env auto-resets (with a key from `step`), `obs` starts the
next episode and `info["final_observation"]` is the last observation of the finished
one (`rljax.envs.suites.AutoResetEnv`). Actions are in Brax's box [-1, 1]^D
(`envs.make` clips them); observations are float32 `[F]`.
"""
from __future__ import annotations

import jax.numpy as jnp
from gymnax.environments import spaces

from rljax.envs.suites import AutoResetEnv, SuiteParams, installed, missing_message

PREFIX = "brax/"
# Brax's `swimmer` is left out: brax 0.14.2's fluid model calls `jnp.clip(a_min=...)`,
# which jax 0.10 removed, so it fails at trace time on rljax's pinned JAX.
ENVS = ("ant", "halfcheetah", "hopper", "humanoid", "humanoidstandup",
        "inverted_double_pendulum", "inverted_pendulum", "pusher", "reacher", "walker2d")
MISSING = missing_message("Brax", "brax", "brax 0.14 on jax 0.10")


def available() -> bool:
    """Whether the `brax` package is installed."""
    return installed("brax")


def env_ids() -> list[str]:
    """`brax/NAME` for Brax's envs; empty without the extra."""
    return [f"{PREFIX}{name}" for name in ENVS] if available() else []


class BraxEnv(AutoResetEnv):
    """A Brax env with gymnax's interface, auto-reset and termination vs truncation."""

    prefix = PREFIX

    def __init__(self, env, name: str):
        super().__init__(name, SuiteParams(max_steps_in_episode=1000))
        self.env = env

    @property
    def num_actions(self) -> int:
        return self.env.action_size

    def action_space(self, params):
        return spaces.Box(-1.0, 1.0, (self.env.action_size,), jnp.float32)

    def observation_space(self, params):
        return spaces.Box(-jnp.inf, jnp.inf, (self.env.observation_size,), jnp.float32)

    def _reset(self, key, params):
        inner = self.env.reset(key)
        return inner.obs, inner

    def _step(self, key, inner, action, params):
        inner = self.env.step(inner, jnp.asarray(action, jnp.float32))
        terminated = jnp.asarray(inner.done) > 0.5
        # Brax keeps `done` in its state; a running episode carries it cleared
        running = inner.replace(done=jnp.zeros_like(jnp.asarray(inner.done)))
        return inner.obs, running, inner.reward, terminated


def make(name: str, params: dict | None = None, **kwargs):
    """`(BraxEnv, SuiteParams)` for Brax env `name`; `kwargs` go to
    `brax.envs.get_environment` (e.g. `backend="positional"`). Brax envs take no env
    params overrides (`params`)."""
    if not available():
        raise ValueError(MISSING)
    if params:
        raise ValueError(f"{PREFIX}{name}: Brax envs take no env params overrides")
    if name not in ENVS:
        raise ValueError(f"unknown Brax env {name!r}; Brax envs: {', '.join(ENVS)}")
    from brax import envs as brax_envs
    env = BraxEnv(brax_envs.get_environment(name, **kwargs), name)
    return env, env.default_params
