"""Policy heads: features `[..., F]` -> a distribution value (`rljax.distributions`).

The actor-critic network puts one of these on its actor trunk; the head alone
decides the action space, so agents, rollouts and losses stay the same for every
distribution. `policy_head(spec)` picks the head an env's action space needs.
"""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from rljax.distributions import Categorical, Gaussian, TanhGaussian
from rljax.nets.mlp import dense

POLICIES = ("auto", "categorical", "gaussian", "tanh_gaussian")
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0   # TanhGaussianHead's range (CleanRL's SAC)


class CategoricalHead(nn.Module):
    """Logits of `num_actions` discrete actions, small-gain init (near-uniform policy)."""

    num_actions: int

    @nn.compact
    def __call__(self, x) -> Categorical:
        return Categorical(dense(self.num_actions, 0.01, "logits")(x))


class GaussianHead(nn.Module):
    """A diagonal `Gaussian` over `action_dim` actions: a small-gain linear mean and a
    state-independent learned log-std (initialised to `log_std_init`), the PPO default
    of CleanRL / PureJaxRL. Samples are unbounded; the env clips them."""

    action_dim: int
    log_std_init: float = 0.0

    @nn.compact
    def __call__(self, x) -> Gaussian:
        mean = dense(self.action_dim, 0.01, "mean")(x)
        log_std = self.param("log_std", nn.initializers.constant(self.log_std_init),
                             (self.action_dim,))
        return Gaussian(mean, jnp.broadcast_to(log_std, mean.shape))


class TanhGaussianHead(nn.Module):
    """A `TanhGaussian` squashed into the box [low, high]: mean and state-dependent
    log-std from the features, log-std mapped into [LOG_STD_MIN, LOG_STD_MAX] by a tanh
    (CleanRL's SAC actor)."""

    low: tuple[float, ...]
    high: tuple[float, ...]

    @nn.compact
    def __call__(self, x) -> TanhGaussian:
        dim = len(self.low)
        mean = dense(dim, 0.01, "mean")(x)
        raw = dense(dim, 0.01, "log_std")(x)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (jnp.tanh(raw) + 1.0)
        bound = lambda v: jnp.broadcast_to(jnp.asarray(v, mean.dtype), mean.shape)
        return TanhGaussian(mean, log_std, bound(self.low), bound(self.high))


def policy_head(spec, policy: str = "auto") -> nn.Module:
    """The head for an env's action space (`rljax.envs.EnvSpec`).

    `policy`: "auto" (categorical for discrete actions, gaussian for a Box),
    "categorical", "gaussian" (unbounded, state-independent log-std; the env clips)
    or "tanh_gaussian" (squashed into the Box bounds).
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    continuous = spec.num_actions is None
    if policy == "auto":
        policy = "gaussian" if continuous else "categorical"
    if (policy == "categorical") == continuous:
        space = f"a Box action space {spec.action_shape}" if continuous else \
            f"{spec.num_actions} discrete actions"
        raise ValueError(f"policy {policy!r} does not fit {space}")
    if policy == "categorical":
        return CategoricalHead(spec.num_actions)
    if policy == "gaussian":
        return GaussianHead(spec.action_shape[0])
    return TanhGaussianHead(tuple(spec.action_low), tuple(spec.action_high))
