"""Action distributions as values, and the plain functions behind them.

A policy head returns a distribution *value*: a NamedTuple of arrays (so it passes
through `lax.scan`, `vmap` and `jit` as a pytree) with four methods that the agents
and losses use and nothing else:

    dist.sample(key) -> action [...]        dist.log_prob(action) -> [...]
    dist.mode() -> action [...]             dist.entropy() -> [...]

Rollouts store the sampled action and its log-probability; losses take
log-probabilities and entropies, never logits, so a new distribution (a Gaussian
for continuous actions) needs no change to the rollout, the losses, the buffers or
the command. `Categorical` is the discrete one; the functions `categorical_*` work on
logits with the action axis last, `[..., A]`, for any leading batch shape.
"""
from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

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
