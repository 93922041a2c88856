"""Agents: acting on one step, and `unroll` reproducing what a rollout recorded."""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import agents, envs, nets, rollout

OBS_DIM, A, B = 4, 3, 6


def _init(agent, seed=0):
    return jax.jit(agent.init)(jax.random.key(seed), jnp.zeros(OBS_DIM))


def _obs(seed=1):
    return 3.0 * np.random.default_rng(seed).normal(size=(B, OBS_DIM)).astype(np.float32)


def _log_softmax(logits):
    z = logits - logits.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_actor_critic_feedforward_acts_and_scores():
    agent = agents.actor_critic(nets.ActorCritic(A, nets.Trunk(hidden_sizes=(16,))))
    params = _init(agent)
    assert agent.initial_carry(B) == ()
    step = jax.jit(agent.step, static_argnames="greedy")
    obs, first = _obs(), np.zeros(B, bool)

    carry, greedy = step(params, (), obs, first, jax.random.key(0), greedy=True)
    assert carry == ()
    logits = np.asarray(greedy.dist.logits)
    assert logits.shape == (B, A) and greedy.value.shape == (B,)
    np.testing.assert_array_equal(greedy.action, logits.argmax(-1))
    assert greedy.action.dtype == jnp.int32

    for seed in range(3):   # sampled actions are scored by the same policy
        _, out = step(params, (), obs, first, jax.random.key(seed))
        np.testing.assert_allclose(out.dist.logits, logits, rtol=1e-6)
        expected = np.take_along_axis(_log_softmax(logits), np.asarray(out.action)[:, None], -1)[:, 0]
        np.testing.assert_allclose(out.log_prob, expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out.value, greedy.value, rtol=1e-6)
    np.testing.assert_allclose(jax.jit(agent.value)(params, (), obs), greedy.value, rtol=1e-6)


def test_q_agent_epsilon_zero_is_greedy_and_epsilon_is_per_env():
    agent = agents.q_agent(nets.QNetwork(A, nets.Trunk(hidden_sizes=(16,), activation="relu")))
    assert agent.value is None and agent.initial_carry(B) == ()
    params = _init(agent)
    step = jax.jit(agent.step, static_argnames="greedy")
    obs, first = _obs(), np.zeros(B, bool)
    carry, out = step(params, (), obs, first, jax.random.key(0), greedy=True)
    assert carry == () and out.q.shape == (B, A)
    argmax = np.asarray(out.q).argmax(-1)
    np.testing.assert_array_equal(out.action, argmax)
    for seed in range(3):
        _, eps0 = step(params, (), obs, first, jax.random.key(seed), epsilon=0.0)
        np.testing.assert_array_equal(eps0.action, argmax)
    # epsilon per env: greedy where 0; uniform over all actions where 1.
    eps = np.tile([0.0, 1.0], B // 2).astype(np.float32)
    actions = np.stack([step(params, (), obs, first, jax.random.key(s), epsilon=eps)[1].action
                        for s in range(40)])
    np.testing.assert_array_equal(actions[:, eps == 0], np.broadcast_to(argmax[eps == 0], (40, B // 2)))
    assert set(np.unique(actions[:, eps == 1])) == set(range(A))


@pytest.mark.parametrize("core, shared", [("gru", False), ("lstm", True)])
def test_unroll_from_carry0_reproduces_the_rollout(core, shared):
    """The loss path (`unroll` over the stored fragment from `carry0`, masked by
    `first`) recomputes exactly what the acting path recorded, across the episode
    ends inside the fragment: PPO's first epoch sees ratio == 1."""
    env, env_params = envs.make("CartPole-v1", max_episode_steps=5)
    net = nets.ActorCritic(2, nets.Trunk(hidden_sizes=(16,), core=core, core_size=16, unroll=1),
                           shared=shared)
    agent = agents.actor_critic(net)
    params = _init(agent)
    roll = jax.jit(partial(rollout.rollout, agent, params, env, env_params, num_steps=12))
    state = rollout.init_rollout(env, env_params, agent, jax.random.key(1), 3)
    state, _ = roll(state, key=jax.random.key(2))   # so the next carry0 is not zero
    _, traj = roll(state, key=jax.random.key(3))

    first = np.asarray(traj.first)
    assert first[1:].any(axis=0).all(), "every env should reset inside the fragment"
    assert all(np.abs(leaf).sum() > 0 for leaf in jax.tree.leaves(traj.carry0))

    carry, (dist, value) = jax.jit(agent.unroll)(params, traj.carry0, traj.obs, traj.first)
    logits = dist.logits
    close = partial(np.testing.assert_allclose, rtol=1e-6, atol=1e-6)
    close(logits, traj.outputs.dist.logits)
    close(value, traj.outputs.value)
    jax.tree.map(close, carry, traj.last_carry)
    log_prob = np.take_along_axis(_log_softmax(np.asarray(logits)),
                                  np.asarray(traj.action)[..., None], -1)[..., 0]
    close(log_prob, traj.outputs.log_prob)
