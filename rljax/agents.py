"""Agents: one step interface for feedforward and recurrent networks.

An `Agent` (see `rljax.types.Agent`) wraps a sequence network
`(carry, obs [T, B, ...], first [T, B]) -> (carry, outputs)`; acting is that same
network with `T = 1`, so the rollout and the losses share one function.
Feedforward agents have carry `()`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rljax.distributions import epsilon_greedy
from rljax.types import Agent, PolicyOutput, QOutput


def _init_fn(net):
    def init(key, obs):
        """Network params for one unbatched observation `obs`."""
        carry = net.initial_carry(1)
        return net.init(key, carry, obs[None, None], jnp.ones((1, 1), bool))
    return init


def _apply_once(net, params, carry, obs, first):
    """One step of a sequence network: `obs [B, ...]`, `first [B]`."""
    carry, out = net.apply(params, carry, obs[None], first[None])
    return carry, jax.tree.map(lambda x: x[0], out)


def actor_critic(net) -> Agent:
    """An agent over an `ActorCritic` network: samples from its policy distribution,
    or takes the mode when `greedy=True` (rlstructures' stochastic/deterministic).
    Works for any distribution value (`rljax.distributions`)."""

    def step(params, carry, obs, first, key, *, greedy: bool = False):
        carry, (dist, value) = _apply_once(net, params, carry, obs, first)
        action = dist.mode() if greedy else dist.sample(key)
        return carry, PolicyOutput(action, dist.log_prob(action), value, dist)

    def unroll(params, carry, obs, first):
        return net.apply(params, carry, obs, first)

    def value(params, carry, obs):
        first = jnp.zeros(obs.shape[:1], bool)
        _, (_, v) = _apply_once(net, params, carry, obs, first)
        return v

    return Agent(_init_fn(net), net.initial_carry, step, unroll, value)


def policy(net) -> Agent:
    """An agent over a policy-only sequence network `(carry, obs, first) -> (carry, dist)`
    (SAC's actor): samples, or takes the mode when `greedy=True`; no value function
    (its `PolicyOutput.value` is 0)."""

    def step(params, carry, obs, first, key, *, greedy: bool = False):
        carry, dist = _apply_once(net, params, carry, obs, first)
        action = dist.mode() if greedy else dist.sample(key)
        value = jnp.zeros(obs.shape[:1], jnp.float32)
        return carry, PolicyOutput(action, dist.log_prob(action), value, dist)

    def unroll(params, carry, obs, first):
        return net.apply(params, carry, obs, first)

    return Agent(_init_fn(net), net.initial_carry, step, unroll, None)


def q_agent(net, *, with_value: bool = False) -> Agent:
    """An agent over a `QNetwork`: epsilon-greedy, each env drawing its own
    explore decision and random action; `greedy=True` means epsilon = 0.
    `with_value=True` gives it `value = max_a Q` (PQN's greedy bootstrap), so the
    rollout records max_a Q(final_obs) at truncations (`Trajectory.final_value`)."""

    def step(params, carry, obs, first, key, *, epsilon=0.0, greedy: bool = False):
        carry, q = _apply_once(net, params, carry, obs, first)
        if greedy:
            action = jnp.argmax(q, axis=-1).astype(jnp.int32)
        else:
            action = epsilon_greedy(key, q, epsilon)
        return carry, QOutput(action, q)

    def unroll(params, carry, obs, first):
        return net.apply(params, carry, obs, first)

    def value(params, carry, obs):
        first = jnp.zeros(obs.shape[:1], bool)
        _, q = _apply_once(net, params, carry, obs, first)
        return jnp.max(q, axis=-1)

    return Agent(_init_fn(net), net.initial_carry, step, unroll, value if with_value else None)
