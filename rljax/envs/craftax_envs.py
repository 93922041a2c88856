"""Craftax envs on rljax's six-value step: `envs.make("craftax/Craftax-Classic-Symbolic-v1")`.

Needs the optional extra: `pip install rljax[craftax]` (craftax 1.6.1 tested). Craftax's
envs look like gymnax's but step with the older five values
`(obs, state, reward, done, info)` and fold the time limit into `done`
(`state.timestep >= params.max_timesteps`). Here rljax builds the env without
Craftax's auto-reset (`make_craftax_env_from_name(name, auto_reset=False)`), sets
Craftax's own `max_timesteps` out of reach so its `done` is a real terminal only
(Classic: dead or in lava; Craftax: dead or the final boss beaten) and:

- `terminated` is that terminal;
- `truncated` is rljax's time limit `params.max_steps_in_episode` (default Craftax's
  `max_timesteps`: 10000 for Classic, 100000 for Craftax) reached without termination;
- the env auto-resets with a key from `step` (a new world), `info["final_observation"]`
  is the last observation of the finished episode; Craftax's achievement `info` is
  not passed on;
- observations are Craftax's symbolic vector, float32 `[1345]` (Classic) or `[8268]`
  (Craftax), so the MLP torso is chosen; actions are discrete (17 Classic, 43 Craftax).
"""
from __future__ import annotations

import jax.numpy as jnp
from gymnax.environments import spaces

from rljax.envs.suites import AutoResetEnv, SuiteParams, installed, missing_message, replace_fields

PREFIX = "craftax/"
ENVS = ("Craftax-Classic-Symbolic-v1", "Craftax-Symbolic-v1")
MISSING = missing_message("Craftax", "craftax", "craftax 1.6.1 on jax 0.10")
_NEVER = 2**31 - 1   # Craftax's `max_timesteps` here: its own time limit never ends an episode


def available() -> bool:
    """Whether the `craftax` package is installed."""
    return installed("craftax")


def env_ids() -> list[str]:
    """`craftax/<name>` for the symbolic Craftax envs; empty without the extra."""
    return [f"{PREFIX}{name}" for name in ENVS] if available() else []


class CraftaxEnv(AutoResetEnv):
    """A Craftax env with gymnax's interface, auto-reset and termination vs truncation."""

    prefix = PREFIX

    def __init__(self, env, inner_params, name: str):
        super().__init__(name, SuiteParams(int(inner_params.max_timesteps),
                                           inner_params.replace(max_timesteps=_NEVER)))
        self.env = env

    @property
    def num_actions(self) -> int:
        return int(self.env.num_actions)

    def action_space(self, params):
        return spaces.Discrete(int(self.env.num_actions))

    def observation_space(self, params):
        space = self.env.observation_space(params.inner)
        return spaces.Box(space.low, space.high, tuple(space.shape), jnp.float32)

    def _reset(self, key, params):
        return self.env.reset_env(key, params.inner)

    def _step(self, key, inner, action, params):
        obs, inner, reward, done, _ = self.env.step_env(
            key, inner, jnp.asarray(action, jnp.int32), params.inner)
        return obs, inner, reward, done


def make(name: str, params: dict | None = None, **kwargs):
    """`(CraftaxEnv, SuiteParams)` for Craftax env `name` (no prefix).

    `params` overrides fields of Craftax's env params (`day_length`, ...); the time limit
    is `max_episode_steps`, not `max_timesteps`. Craftax envs take no constructor
    arguments (`kwargs`).
    """
    if not available():
        raise ValueError(MISSING)
    if name not in ENVS:
        raise ValueError(f"unknown Craftax env {name!r}; Craftax envs here: {', '.join(ENVS)}")
    if kwargs:
        raise ValueError(f"{PREFIX}{name} takes no constructor arguments {sorted(kwargs)}")
    from craftax.craftax_env import make_craftax_env_from_name
    env = make_craftax_env_from_name(name, auto_reset=False)
    inner = replace_fields(f"{PREFIX}{name}", env.default_params, params,
                           refused={"max_timesteps": "max_episode_steps"})
    wrapped = CraftaxEnv(env, inner, name)
    return wrapped, wrapped.default_params
