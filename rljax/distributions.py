"""Action distributions as values, and the plain functions behind them.

A policy head returns a distribution *value*: a NamedTuple of arrays (so it passes
through `lax.scan`, `vmap` and `jit` as a pytree) with four methods that the agents
and losses use and nothing else:

    dist.sample(key) -> action [...]        dist.log_prob(action) -> [...]
    dist.mode() -> action [...]             dist.entropy() -> [...]

Rollouts store the sampled action and its log-probability; losses take
log-probabilities and entropies, never logits, so a new distribution (a Gaussian
for continuous actions) needs no change to the rollout, the losses, the buffers or
the command. `Categorical` is the discrete one (the functions `categorical_*` work on
logits with the action axis last, `[..., A]`, for any leading batch shape);
`Gaussian` (diagonal, unbounded; the env clips) and `TanhGaussian` (squashed into
the action box, SAC) are the continuous ones, actions `[..., D]`.
"""
from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def _assert_has_action_axis(logits: Array) -> None:
    if jnp.ndim(logits) < 1:
        raise ValueError(f"logits need an action axis, got shape {jnp.shape(logits)}")


def categorical_log_prob(logits: Array, action: Array) -> Array:
    """log π(a) of a categorical policy.

    log π(a) = logits[a] - logsumexp(logits).

    Args:
      logits: unnormalised log-probabilities, [..., A].
      action: integer actions, [...].

    Returns:
      Log-probabilities of `action`, [...].
    """
    chex.assert_rank(logits, action.ndim + 1)
    chex.assert_equal_shape_prefix([logits, action], action.ndim)
    chex.assert_type(action, int)
    log_p = jax.nn.log_softmax(logits, axis=-1)
    return jnp.take_along_axis(log_p, action[..., None], axis=-1)[..., 0]


def categorical_entropy(logits: Array) -> Array:
    """Entropy of a categorical distribution.

    H(π) = -Σ_a π(a) log π(a), with 0·log 0 := 0, so logits of -inf or of very
    large negative magnitude give finite values and finite gradients.

    Args:
      logits: unnormalised log-probabilities, [..., A].

    Returns:
      Entropies, [...].
    """
    _assert_has_action_axis(logits)
    log_p = jax.nn.log_softmax(logits, axis=-1)
    p = jnp.exp(log_p)
    # Mask before the product (not after) so no 0 * -inf reaches the forward
    # pass or the backward pass.
    safe_log_p = jnp.where(p > 0, log_p, 0.0)
    return -jnp.sum(p * safe_log_p, axis=-1)


def categorical_sample(key: Array, logits: Array) -> Array:
    """Samples a ~ π = softmax(logits), independently for every leading index.

    Args:
      key: a PRNG key.
      logits: unnormalised log-probabilities, [..., A].

    Returns:
      Sampled actions, int32 [...].
    """
    _assert_has_action_axis(logits)
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def epsilon_greedy(key: Array, q: Array, epsilon) -> Array:
    """ε-greedy actions for a batch of Q-values.

    Each row b draws its own explore decision u_b ~ U[0, 1) and its own
    uniformly random action; a_b = random_b if u_b < ε_b else argmax_a q[b, a].

    Args:
      key: a PRNG key.
      q: action values, [B, A].
      epsilon: exploration probability, scalar or [B].

    Returns:
      Actions, int32 [B].

    References:
      Mnih et al., Human-level control through deep RL, Nature 2015.
    """
    chex.assert_rank(q, 2)
    batch, num_actions = q.shape
    epsilon = jnp.broadcast_to(jnp.asarray(epsilon, q.dtype), (batch,))
    explore_key, action_key = jax.random.split(key)
    explore = jax.random.uniform(explore_key, (batch,)) < epsilon
    random_action = jax.random.randint(action_key, (batch,), 0, num_actions, dtype=jnp.int32)
    greedy_action = jnp.argmax(q, axis=-1).astype(jnp.int32)
    return jnp.where(explore, random_action, greedy_action)


class Categorical(NamedTuple):
    """π(a) = softmax(logits)[a] over `A` discrete actions; batch shape `logits.shape[:-1]`."""

    logits: Array   # [..., A] unnormalised log-probabilities

    def sample(self, key: Array) -> Array:
        """Independent draws for every leading index, int32 `[...]`."""
        return categorical_sample(key, self.logits)

    def log_prob(self, action: Array) -> Array:
        """log π(action), `[...]`."""
        return categorical_log_prob(self.logits, action)

    def entropy(self) -> Array:
        """H(π), `[...]`."""
        return categorical_entropy(self.logits)

    def mode(self) -> Array:
        """argmax_a π(a), int32 `[...]` (the greedy action)."""
        return jnp.argmax(self.logits, axis=-1).astype(jnp.int32)


# --------------------------------------------------------------------------- continuous
_LOG_2PI = float(np.log(2.0 * np.pi))
# Gauss-Hermite nodes and weights for E[f(u)], u ~ N(mean, std²) (TanhGaussian.entropy).
_GH_X, _GH_W = (np.asarray(v, np.float32) for v in np.polynomial.hermite.hermgauss(16))


def gaussian_log_prob(mean: Array, log_std: Array, x: Array) -> Array:
    """log N(x; mean, diag(exp(log_std)²)), summed over the last (action) axis.

    log p(x) = Σ_d [-½((x_d - μ_d)/σ_d)² - log σ_d - ½ log 2π].

    Args:
      mean, log_std, x: `[..., D]` (log_std broadcasts).

    Returns:
      Log-densities, `[...]`.
    """
    z = (x - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * jnp.square(z) - log_std - 0.5 * _LOG_2PI, axis=-1)


def gaussian_entropy(log_std: Array) -> Array:
    """H = Σ_d (log σ_d + ½(1 + log 2π)) of a diagonal Gaussian, `[..., D] -> [...]`."""
    return jnp.sum(log_std + 0.5 * (1.0 + _LOG_2PI), axis=-1)


def tanh_log_det(u: Array) -> Array:
    """log(1 - tanh(u)²) = 2 (log 2 - u - softplus(-2u)), elementwise and stable for
    large |u| (where tanh(u)² rounds to 1)."""
    return 2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u))


class Gaussian(NamedTuple):
    """A diagonal Gaussian over actions `[..., D]`; batch shape `mean.shape[:-1]`.

    Samples are unbounded: an env with a bounded (Box) action space clips them when
    stepping (`rljax.envs.ClipAction`), while the rollout stores the sampled,
    unclipped action and its log-probability. The PPO/A2C default (state-independent
    learned log-std) is `rljax.nets.GaussianHead`.
    """

    mean: Array      # [..., D]
    log_std: Array   # [..., D] (same shape as mean)

    def sample(self, key: Array) -> Array:
        """`mean + exp(log_std) · ε`, ε ~ N(0, I) (reparameterised), `[..., D]`."""
        eps = jax.random.normal(key, jnp.shape(self.mean), jnp.result_type(self.mean))
        return self.mean + jnp.exp(self.log_std) * eps

    def log_prob(self, action: Array) -> Array:
        """log π(action), summed over D, `[...]`."""
        return gaussian_log_prob(self.mean, self.log_std, action)

    def entropy(self) -> Array:
        """The closed form Σ_d (log σ_d + ½(1 + log 2π)), `[...]`."""
        return gaussian_entropy(self.log_std)

    def mode(self) -> Array:
        """The mean (the greedy action)."""
        return self.mean

    def sample_and_log_prob(self, key: Array) -> tuple[Array, Array]:
        action = self.sample(key)
        return action, self.log_prob(action)


class TanhGaussian(NamedTuple):
    """a = c + h · tanh(u), u ~ N(mean, diag(exp(log_std)²)), with c = (high + low)/2 and
    h = (high - low)/2: a Gaussian squashed into the box [low, high] (SAC).

    log π(a) = log N(u) - Σ_d [log h_d + log(1 - tanh(u_d)²)], u = atanh((a - c)/h)
    (the change of variables; Haarnoja et al. 2018, appendix C). `log_prob(a)` inverts
    the squash (clipping (a - c)/h to ±(1 - 1e-6)); `sample_and_log_prob` uses u
    itself and is exact and stable even where tanh saturates.

    `entropy()` has no closed form; it is H[N(mean, σ)] + E[Σ_d log(h_d (1 - tanh(u_d)²))]
    with the expectation by 16-point Gauss-Hermite quadrature per dimension
    (deterministic, differentiable, tested against sampling).
    """

    mean: Array      # [..., D] of the pre-squash Gaussian
    log_std: Array   # [..., D]
    low: Array       # [..., D] action bounds (broadcast to the batch shape)
    high: Array      # [..., D]

    def _centre_half(self):
        return 0.5 * (self.high + self.low), 0.5 * (self.high - self.low)

    def _squash(self, u):
        c, h = self._centre_half()
        return c + h * jnp.tanh(u)

    def _log_prob_u(self, u):
        _, h = self._centre_half()
        return (gaussian_log_prob(self.mean, self.log_std, u)
                - jnp.sum(jnp.log(h) + tanh_log_det(u), axis=-1))

    def sample(self, key: Array) -> Array:
        return self.sample_and_log_prob(key)[0]

    def sample_and_log_prob(self, key: Array) -> tuple[Array, Array]:
        """A reparameterised sample in [low, high] and its exact log-probability."""
        eps = jax.random.normal(key, jnp.shape(self.mean), jnp.result_type(self.mean))
        u = self.mean + jnp.exp(self.log_std) * eps
        return self._squash(u), self._log_prob_u(u)

    def log_prob(self, action: Array) -> Array:
        c, h = self._centre_half()
        y = jnp.clip((action - c) / h, -1.0 + 1e-6, 1.0 - 1e-6)
        return self._log_prob_u(jnp.arctanh(y))

    def entropy(self) -> Array:
        _, h = self._centre_half()
        std = jnp.exp(self.log_std)
        u = self.mean[..., None] + jnp.sqrt(2.0) * std[..., None] * _GH_X     # [..., D, K]
        expected_log_det = jnp.sum(tanh_log_det(u) * _GH_W, axis=-1) / jnp.sqrt(jnp.pi)
        return gaussian_entropy(self.log_std) + jnp.sum(jnp.log(h) + expected_log_det, axis=-1)

    def mode(self) -> Array:
        """c + h · tanh(mean): the squashed mean (the greedy action)."""
        return self._squash(self.mean)
