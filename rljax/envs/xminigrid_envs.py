"""xminigrid (XLand-MiniGrid) envs on rljax's six-value step: `envs.make("xminigrid/<id>")`.

Needs the optional extra: `pip install rljax[xminigrid]` (xminigrid 0.9.3 tested).
`<id>` is any id of `xminigrid.registered_environments()`: the MiniGrid ports
(`MiniGrid-MemoryS8`, `MiniGrid-DoorKey-5x5`, ...) and the XLand-MiniGrid envs, which
run xminigrid's default (empty) ruleset unless `params={"ruleset": ...}` gives one.

xminigrid has a dm_env-like API of its own, `env.reset(params, key)` and
`env.step(params, timestep, action)` returning a `TimeStep` (`step_type`, `reward`,
`discount`, `observation`), without auto-reset. Here:

- `terminated` is a real terminal, xminigrid's `discount == 0`;
- `truncated` is rljax's time limit, `params.max_steps_in_episode` (default xminigrid's
  `max_steps` for the env, e.g. 320 for MemoryS8), reached without termination.
  xminigrid's own `max_steps` (which also scales its success reward
  `1 - 0.9 * step / max_steps`) is kept equal to it, so `max_episode_steps=` changes both;
- the env auto-resets with a key from `step`; `info["final_observation"]` is the last
  observation of the finished episode;
- observations are xminigrid's egocentric view `[V, V, 2]` (tile id, colour id; V =
  `view_size`, 3 for the Memory envs, 5 or 7 for the others) cast to float32, so
  rljax's CNN torso is chosen for them; actions are discrete (6).
"""
from __future__ import annotations

import jax.numpy as jnp
from gymnax.environments import spaces

from rljax.envs.suites import AutoResetEnv, SuiteParams, installed, missing_message, replace_fields

PREFIX = "xminigrid/"
MISSING = missing_message("xminigrid", "xminigrid", "xminigrid 0.9.3 on jax 0.10")


def available() -> bool:
    """Whether the `xminigrid` package is installed."""
    return installed("xminigrid")


def env_ids() -> list[str]:
    """`xminigrid/<id>` for every registered xminigrid env; empty without the extra."""
    if not available():
        return []
    import xminigrid
    return [f"{PREFIX}{name}" for name in xminigrid.registered_environments()]


class XMiniGridEnv(AutoResetEnv):
    """An xminigrid env with gymnax's interface, auto-reset and termination vs truncation.

    The state's `inner` is xminigrid's `TimeStep` (its step needs the whole timestep).
    """

    prefix = PREFIX

    def __init__(self, env, inner_params, name: str):
        super().__init__(name, SuiteParams(int(inner_params.max_steps), inner_params))
        self.env = env

    @staticmethod
    def _inner(params: SuiteParams):
        """xminigrid's params with its `max_steps` set to rljax's time limit."""
        return params.inner.replace(max_steps=params.max_steps_in_episode)

    @property
    def num_actions(self) -> int:
        return int(self.env.num_actions(self._default_params.inner))

    def action_space(self, params):
        return spaces.Discrete(int(self.env.num_actions(params.inner)))

    def observation_space(self, params):
        from xminigrid.core.constants import NUM_COLORS, NUM_TILES
        shape = tuple(self.env.observation_shape(params.inner))
        return spaces.Box(0.0, float(max(NUM_TILES, NUM_COLORS) - 1), shape, jnp.float32)

    def _reset(self, key, params):
        timestep = self.env.reset(self._inner(params), key)
        return timestep.observation, timestep

    def _step(self, key, inner, action, params):
        timestep = self.env.step(self._inner(params), inner, jnp.asarray(action, jnp.int32))
        return timestep.observation, timestep, timestep.reward, timestep.discount == 0.0


def make(name: str, params: dict | None = None, **kwargs):
    """`(XMiniGridEnv, SuiteParams)` for xminigrid env `name` (no prefix).

    `params` overrides fields of xminigrid's env params (`view_size`, `ruleset` for
    XLand); the time limit is `max_episode_steps`, not `max_steps`. xminigrid envs take
    no constructor arguments (`kwargs`).
    """
    if not available():
        raise ValueError(MISSING)
    import xminigrid
    if name not in xminigrid.registered_environments():
        raise ValueError(f"unknown xminigrid env {name!r}; rljax.envs.list_envs() lists "
                         f"them as {PREFIX}<id>")
    if kwargs:
        raise ValueError(f"{PREFIX}{name} takes no constructor arguments {sorted(kwargs)}; "
                         f"xminigrid's env params go in `params`")
    env, inner = xminigrid.make(name)
    inner = replace_fields(f"{PREFIX}{name}", inner, params,
                           refused={"max_steps": "max_episode_steps"})
    wrapped = XMiniGridEnv(env, inner, name)
    return wrapped, wrapped.default_params
