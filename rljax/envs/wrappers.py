"""Pure env wrappers on gymnax's 1.0 step API.

Every wrapper keeps the contract of `gymnax.environments.environment.Environment`:

    reset(key, params) -> (obs, state)
    step(key, state, action, params)
        -> (obs, state, reward, terminated, truncated, info)

The inner env auto-resets, so at a done step (`terminated | truncated`) `obs`
already starts the next episode and `info["final_observation"]` is the last
observation of the finished one. Wrappers that change observations rewrite both,
so the contract holds at every depth of a wrapper stack. No `__getattr__` proxy:
what a wrapper offers is what it defines.
"""
from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces


class Wrapper:
    """Base wrapper: forwards everything to `env` unchanged."""

    def __init__(self, env):
        self.env = env

    @property
    def default_params(self):
        return self.env.default_params

    @property
    def name(self) -> str:
        return self.env.name

    @property
    def num_actions(self) -> int:
        return self.env.num_actions

    def action_space(self, params):
        return self.env.action_space(params)

    def observation_space(self, params):
        return self.env.observation_space(params)

    def reset(self, key, params):
        return self.env.reset(key, params)

    def step(self, key, state, action, params):
        return self.env.step(key, state, action, params)


def _where(pred, on_true, on_false):
    """`jnp.where` over matching pytrees with a scalar predicate."""
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


# --------------------------------------------------------------------------- stats
@struct.dataclass
class EpisodeStatsState:
    inner: Any
    episode_return: jax.Array  # running return of the current episode
    episode_length: jax.Array  # running length of the current episode


class EpisodeStats(Wrapper):
    """Running episode return/length that survive auto-reset.

    `info["episode_return"]` / `info["episode_length"]` hold the return and length of
    the episode that ended at this step (meaningful where `terminated | truncated`);
    the running values of the current episode live in the state (SaLinA's
    `cumulated_reward`).
    """

    def reset(self, key, params):
        obs, inner = self.env.reset(key, params)
        zero = jnp.zeros((), jnp.float32)
        return obs, EpisodeStatsState(inner, zero, jnp.zeros((), jnp.int32))

    def step(self, key, state, action, params):
        obs, inner, reward, terminated, truncated, info = self.env.step(
            key, state.inner, action, params)
        done = jnp.logical_or(terminated, truncated)
        ret = state.episode_return + reward.astype(jnp.float32)
        length = state.episode_length + 1
        info = {**info, "episode_return": ret, "episode_length": length}
        state = EpisodeStatsState(
            inner,
            jnp.where(done, 0.0, ret),
            jnp.where(done, 0, length),
        )
        return obs, state, reward, terminated, truncated, info


# --------------------------------------------------------------------------- observation transforms
class _ObservationTransform(Wrapper):
    """A wrapper whose observation is a function of the inner observation only."""

    def transform(self, obs):
        raise NotImplementedError

    def reset(self, key, params):
        obs, state = self.env.reset(key, params)
        return self.transform(obs), state

    def step(self, key, state, action, params):
        obs, state, reward, terminated, truncated, info = self.env.step(
            key, state, action, params)
        info = {**info, "final_observation": self.transform(info["final_observation"])}
        return self.transform(obs), state, reward, terminated, truncated, info

    def observation_space(self, params):
        inner = self.env.observation_space(params)
        shape = jax.eval_shape(self.transform, jnp.zeros(inner.shape, inner.dtype)).shape
        return spaces.Box(-jnp.inf, jnp.inf, shape, jnp.float32)


class ObservationMask(_ObservationTransform):
    """Keep only the observation features at `indices` (last axis): a POMDP."""

    def __init__(self, env, indices: Sequence[int]):
        super().__init__(env)
        self.indices = tuple(int(i) for i in indices)
        if not self.indices:
            raise ValueError("ObservationMask needs at least one index to keep")

    def transform(self, obs):
        return obs[..., jnp.asarray(self.indices)].astype(jnp.float32)


class FloatObservation(_ObservationTransform):
    """Cast observations to float32 (networks and buffers expect it)."""

    def transform(self, obs):
        return jnp.asarray(obs, jnp.float32)


# --------------------------------------------------------------------------- history
@struct.dataclass
class HistoryState:
    inner: Any
    history: jax.Array  # [depth, *obs_shape], oldest first


def _flatten_history(history):
    """[k, ..., F] -> [..., k*F]: observations concatenated along the last axis."""
    return jnp.concatenate(list(history), axis=-1)


class ObservationHistory(Wrapper):
    """The last `depth` observations, concatenated along the last axis, oldest first.

    Zero-padded at the start of an episode: an episode start clears the history and
    pushes its first observation once (one push per step, unlike Machin's `History`,
    which appended each state twice). `final_observation` is the history that
    ends with the finished episode's last observation.
    """

    def __init__(self, env, depth: int):
        super().__init__(env)
        if depth < 1:
            raise ValueError(f"history depth must be >= 1, got {depth}")
        self.depth = int(depth)

    @staticmethod
    def _push(history, obs):
        return jnp.concatenate([history[1:], obs[None]], axis=0)

    def reset(self, key, params):
        obs, inner = self.env.reset(key, params)
        history = self._push(jnp.zeros((self.depth, *obs.shape), jnp.float32), obs)
        return _flatten_history(history), HistoryState(inner, history)

    def step(self, key, state, action, params):
        obs, inner, reward, terminated, truncated, info = self.env.step(
            key, state.inner, action, params)
        done = jnp.logical_or(terminated, truncated)
        finished = self._push(state.history, info["final_observation"])
        restarted = self._push(jnp.zeros_like(state.history), obs)
        history = jnp.where(done, restarted, finished)
        info = {**info, "final_observation": _flatten_history(finished)}
        return (_flatten_history(history), HistoryState(inner, history), reward,
                terminated, truncated, info)

    def observation_space(self, params):
        inner = self.env.observation_space(params)
        shape = (*inner.shape[:-1], inner.shape[-1] * self.depth)
        return spaces.Box(-jnp.inf, jnp.inf, shape, jnp.float32)


# --------------------------------------------------------------------------- previous action / reward
class PreviousActionReward(Wrapper):
    """rlplay's extended observation `(x_t, onehot(a_{t-1}), r_{t-1})`.

    `a_{t-1}` is the action that led to `x_t` and `r_{t-1}` the reward received with
    it; both are zero at an episode start (there is no previous action then).
    Needs flat observations `[F]`.
    """

    def __init__(self, env, *, action: bool = True, reward: bool = True,
                 action_dim: int | None = None):
        super().__init__(env)
        if not (action or reward):
            raise ValueError("PreviousActionReward needs action=True or reward=True")
        self.with_action, self.with_reward = action, reward
        self.action_dim = action_dim   # None: discrete (one-hot); D: a Box action [D]

    def _action_size(self) -> int:
        return self.env.num_actions if self.action_dim is None else self.action_dim

    def _encode(self, action, done):
        """one-hot (discrete) or the action itself (Box); zeros where `done`/no action."""
        if self.action_dim is None:
            return jax.nn.one_hot(jnp.where(done, -1, action), self.env.num_actions,
                                  dtype=jnp.float32)
        return jnp.where(done, 0.0, jnp.broadcast_to(jnp.asarray(action, jnp.float32),
                                                  (self.action_dim,)))

    def _extend(self, obs, action, reward, done=False):
        parts = [obs.astype(jnp.float32)]
        if self.with_action:
            parts.append(self._encode(action, done))
        if self.with_reward:
            parts.append(jnp.reshape(reward, (1,)).astype(jnp.float32))
        return jnp.concatenate(parts, axis=-1)

    def reset(self, key, params):
        obs, inner = self.env.reset(key, params)
        if obs.ndim != 1:
            raise ValueError(
                f"PreviousActionReward needs flat observations, got shape {obs.shape}")
        # all zeros: "no previous action".
        return self._extend(obs, jnp.zeros((), jnp.int32), 0.0, done=True), inner

    def step(self, key, state, action, params):
        obs, state, reward, terminated, truncated, info = self.env.step(
            key, state, action, params)
        done = jnp.logical_or(terminated, truncated)
        info = {**info, "final_observation": self._extend(
            info["final_observation"], action, reward)}
        obs = self._extend(obs, action, jnp.where(done, 0.0, reward), done=done)
        return obs, state, reward, terminated, truncated, info

    def observation_space(self, params):
        (size,) = self.env.observation_space(params).shape
        size += self._action_size() * self.with_action + self.with_reward
        return spaces.Box(-jnp.inf, jnp.inf, (size,), jnp.float32)


# --------------------------------------------------------------------------- continuous actions
class ClipAction(Wrapper):
    """Clip a Box action into the action space's bounds before the env sees it.

    The agent's action (an unbounded Gaussian sample) stays what the rollout stores,
    with its log-probability; only the env receives `clip(action, low, high)`
    (CleanRL's `ClipAction`). `envs.make` adds it for every Box action space.
    """

    def step(self, key, state, action, params):
        space = self.env.action_space(params)
        action = jnp.clip(jnp.asarray(action, jnp.float32), space.low, space.high)
        return self.env.step(key, state, action, params)
