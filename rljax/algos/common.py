"""Pieces every algorithm shares: env config fields, the env, episode metrics."""
from __future__ import annotations

import jax.numpy as jnp

from rljax import envs, parallel
from rljax.config import at_least, config_class, positive, static, traced
from rljax.types import Trajectory


@config_class
class EnvConfig:
    """Env fields shared by every algorithm's Config, normalisation included."""

    env_id: str = static("CartPole-v1", doc="gymnax id or POMDP variant (`rljax list` shows them)")
    max_episode_steps: int | None = static(None, doc="time limit (reported as truncation); "
                                           "None: the env's own", check=at_least(1))
    history: int = static(1, doc="observation history depth k (1: the plain observation)",
                          check=at_least(1))
    prev_action: bool = static(False, doc="append the previous action (one-hot, or the "
                                                      "clipped Box action)")
    prev_reward: bool = static(False, doc="append the previous reward")
    normalize_obs: bool = static(False, doc="normalise observations by a running mean/variance "
                                 "(rljax.normalize; saved with the params, frozen in eval)")
    clip_obs: float = traced(10.0, doc="clip normalised observations to ±clip_obs",
                             check=positive)
    normalize_reward: bool = static(False, doc="divide rewards by the running std of the "
                                    "discounted return (rljax.normalize)")
    clip_reward: float = traced(10.0, doc="clip scaled rewards to ±clip_reward", check=positive)

    def validate(self):
        make_env(self)   # an unknown env id or an option it cannot take, named here


def make_env(config: EnvConfig):
    """`(env, env_params, spec)` for a config's env fields (`spec`: `rljax.envs.EnvSpec`)."""
    env, env_params = envs.make(
        config.env_id, max_episode_steps=config.max_episode_steps, history=config.history,
        prev_action=config.prev_action, prev_reward=config.prev_reward)
    return env, env_params, envs.spec(env, env_params)


def episode_metrics(episode_return, episode_length, done) -> dict:
    """Mean return/length of the episodes that ended (`done`), NaN if none did; under
    data parallelism the episodes of every device count."""
    count = parallel.psum(done.sum())
    safe = jnp.maximum(count, 1)
    nan_if_none = lambda x: jnp.where(count > 0, x, jnp.nan)
    return_sum = parallel.psum(jnp.sum(jnp.where(done, episode_return, 0.0)))
    length_sum = parallel.psum(jnp.sum(jnp.where(done, episode_length, 0)))
    return {
        "episode_return": nan_if_none(return_sum / safe),
        "episode_length": nan_if_none(length_sum / safe),
        "episodes": count.astype(jnp.int32),
    }


def trajectory_metrics(traj: Trajectory) -> dict:
    return episode_metrics(traj.episode_return, traj.episode_length, traj.done)


def check_divides(name_a: str, a: int, name_b: str, b: int) -> None:
    """Raise a clear error when `b` does not divide `a` (static sizes)."""
    if b <= 0 or a % b:
        raise ValueError(f"{name_a}={a} must be divisible by {name_b}={b}")
