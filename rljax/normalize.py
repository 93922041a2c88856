"""Observation and reward normalisation, in one place, for every algorithm.

Config fields (on `rljax.algos.common.EnvConfig`, so every algorithm has them):
`normalize_obs`, `clip_obs`, `normalize_reward`, `clip_reward`.

**Observations** are normalised by a running mean and variance,
`clip((x - mean) / sqrt(var + 1e-8), ±clip_obs)`. The statistics are a layer of
the network: `ObsNormalized` wraps any sequence network and reads them from a
non-trainable variable collection, `params["obs_norm"] = {"mean", "var", "count"}`
(flax's `batch_stats` pattern; `stop_gradient`ed, so the optimizer's update of them
is exactly zero). Hence:

* they are part of the params, so of the loop state (saved in checkpoints, resumed
  bit for bit) and of the saved final params, which `rljax eval` plays: evaluation
  restores them and never updates them (frozen);
* everything that applies the network (acting, the losses, the truncation
  bootstrap, Q targets, eval) sees the same normalised inputs; the rollouts and
  replay keep *raw* observations;
* the loops update them with `observe(params, obs)` from the observations they
  collected, *after* the learning step: a PPO epoch recomputes log-probabilities
  with the statistics that acted, so its first-epoch ratio stays exactly 1;
* they are shared by a seed's envs (one set per params) and, under `vmap` over
  seeds or sweep members, each member keeps its own; under data parallelism the
  update merges every device's observations (they stay replicated).

**Rewards** are divided by the running standard deviation of the discounted return
`G_t = γ G_{t-1} (1 - done_{t-1}) + r_t`, kept per env and pooled over a seed's envs
(gym's `NormalizeReward`, which PPO implementations use for continuous control),
then clipped to ±clip_reward. Reward scaling only changes what the learner sees, so
it lives in the loop state (`RewardScale`, not the params) and is applied to each
collected fragment by `scale_rewards` before learning or replay. Episode returns in
the metrics stay raw (the env's `EpisodeStats` sees the env's reward).

Why here and not in an env wrapper: a wrapper's state is per env (vmapped), but the
statistics are per seed, shared by its envs; and an eval run would not get them back.
Why not in the rollout state: then `rljax eval` (which plays saved params) would
need its own copy. The statistics are `RunningMeanStd` values with pure `init` /
`update` / `apply`; the numbers equal numpy's mean and (population) variance of
everything seen so far, merged batch by batch (Chan et al. 1979).
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from rljax import parallel

Array = jax.Array
COLLECTION = "obs_norm"
EPS = 1e-8


class RunningMeanStd(NamedTuple):
    """Mean and population variance of everything seen so far, and how much."""

    mean: Array    # [*shape]
    var: Array     # [*shape]
    count: Array   # [] float32 (exact up to 2^24 items)


def init(shape=()) -> RunningMeanStd:
    """No data yet: mean 0, var 1 (so `apply` is the identity, up to clipping)."""
    return RunningMeanStd(jnp.zeros(shape, jnp.float32), jnp.ones(shape, jnp.float32),
                          jnp.zeros((), jnp.float32))


def update(stats: RunningMeanStd, x: Array) -> RunningMeanStd:
    """Merge a batch `x [N..., *shape]` (leading axes beyond the stats' shape) into `stats`.

    Chan's parallel update: with batch mean m_b, variance v_b and size n_b,
    δ = m_b - m, n' = n + n_b, m' = m + δ n_b / n', v' = (v n + v_b n_b + δ² n n_b / n') / n'.
    Under data parallelism the batch is every device's `x` together.
    """
    x = jnp.asarray(x, jnp.float32)
    axes = tuple(range(x.ndim - stats.mean.ndim))
    n_b = parallel.psum(jnp.asarray(math.prod(x.shape[:len(axes)]), jnp.float32))
    mean_b = parallel.pmean(jnp.mean(x, axis=axes))
    var_b = parallel.pmean(jnp.mean(jnp.square(x - mean_b), axis=axes))
    total = stats.count + n_b
    delta = mean_b - stats.mean
    mean = stats.mean + delta * n_b / total
    var = (stats.var * stats.count + var_b * n_b + jnp.square(delta) * stats.count * n_b / total) / total
    return RunningMeanStd(mean, var, total)


def apply(stats: RunningMeanStd, x: Array, *, clip=None) -> Array:
    """`(x - mean) / sqrt(var + 1e-8)`, clipped to ±clip when given."""
    y = (x - stats.mean) / jnp.sqrt(stats.var + EPS)
    return y if clip is None else jnp.clip(y, -clip, clip)


# --------------------------------------------------------------------------- observations
class ObsNormalized(nn.Module):
    """`net` on normalised observations; the statistics are the `obs_norm` collection.

    Same signature as every sequence network: `(carry, obs [T, B, ...], first) ->
    (carry, outputs)`; `initial_carry` is `net`'s.
    """

    net: nn.Module
    clip: Any = 10.0   # ±clip after normalising (a Python float or a traced scalar)

    @nn.compact
    def __call__(self, carry, obs, first):
        shape = obs.shape[2:]
        mean = self.variable(COLLECTION, "mean", jnp.zeros, shape, jnp.float32).value
        var = self.variable(COLLECTION, "var", jnp.ones, shape, jnp.float32).value
        count = self.variable(COLLECTION, "count", jnp.zeros, (), jnp.float32).value
        stats = jax.lax.stop_gradient(RunningMeanStd(mean, var, count))
        return self.net(carry, apply(stats, obs, clip=self.clip), first)

    def initial_carry(self, batch_size: int):
        return self.net.initial_carry(batch_size)


def observing(net: nn.Module, config) -> nn.Module:
    """`ObsNormalized(net)` when `config.normalize_obs`, else `net` itself."""
    return ObsNormalized(net, clip=config.clip_obs) if config.normalize_obs else net


def stats_of(params) -> RunningMeanStd | None:
    """The observation statistics in `params` (None when not normalising)."""
    if not isinstance(params, dict) or COLLECTION not in params:
        return None
    s = params[COLLECTION]
    return RunningMeanStd(s["mean"], s["var"], s["count"])


def observe(params, obs: Array, *, stats_from=None):
    """`params` with the observation statistics updated by `obs [T, B, ...]` (the raw
    observations collected); the statistics start from `stats_from`'s (default:
    `params`'s own). Params without statistics come back unchanged."""
    stats = stats_of(params if stats_from is None else stats_from)
    if stats is None:
        return params
    new = update(stats, obs)
    return {**params, COLLECTION: {"mean": new.mean, "var": new.var, "count": new.count}}


# --------------------------------------------------------------------------- rewards
class RewardScale(NamedTuple):
    """Reward scaling state: statistics of the discounted return, and each env's."""

    returns: RunningMeanStd   # shape (), pooled over the envs
    discounted: Array         # [B] running discounted return of each env


def init_reward_scale(config, num_envs: int):
    """`RewardScale` for `num_envs` envs when `config.normalize_reward`, else `()`."""
    if not config.normalize_reward:
        return ()
    # each device's envs have their own running returns (varying over the device axis)
    return RewardScale(init(()), parallel._varying(jnp.zeros((num_envs,), jnp.float32)))


def scale(state: RewardScale, r_t: Array, done_t: Array, *, gamma, clip) -> tuple[RewardScale, Array]:
    """Scale a fragment's rewards `[T, B]` step by step (gym's `NormalizeReward`).

    G_t = γ G_{t-1} + r_t (G restarts after a done step); the statistics take each
    step's `[B]` returns, then r_t / sqrt(var + 1e-8), clipped to ±clip.

    Returns:
      `(state, scaled rewards [T, B])`.
    """

    def step(state, inputs):
        r, done = inputs
        g = state.discounted * gamma + r
        stats = update(state.returns, g)
        scaled = jnp.clip(r / jnp.sqrt(stats.var + EPS), -clip, clip)
        return RewardScale(stats, jnp.where(done, 0.0, g)), scaled

    return jax.lax.scan(step, state, (r_t.astype(jnp.float32), done_t))


def scale_rewards(config, state, traj):
    """`(state, traj)` with `traj.reward` scaled when `config.normalize_reward` (the
    loops call it on each collected fragment); unchanged otherwise."""
    if not config.normalize_reward:
        return state, traj
    state, reward = scale(state, traj.reward, traj.done, gamma=config.gamma, clip=config.clip_reward)
    return state, traj._replace(reward=reward)
