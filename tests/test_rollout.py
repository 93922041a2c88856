"""Rollouts: continuity across fragments, truncation bootstrap values, GAE end to
end, and evaluation against a Python loop over the env."""
import functools
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import agents, envs, nets, returns
from rljax.rollout import evaluate, init_rollout, rollout, successor_values

T, B, MAX_STEPS = 24, 4, 14   # 2T steps see terminations (< 14 steps) and time-limit cuts
GAMMA, LAMBDA = 0.9, 0.8
close = partial(np.testing.assert_allclose, rtol=1e-6, atol=1e-6)


@functools.lru_cache(maxsize=None)
def _setup():
    """A recurrent (GRU) actor-critic on CartPole-v1 with a short time limit."""
    env, env_params = envs.make("CartPole-v1", max_episode_steps=MAX_STEPS)
    net = nets.ActorCritic(2, nets.Trunk(hidden_sizes=(16,), core="gru", core_size=16,
                                                unroll=1))
    agent = agents.actor_critic(net)
    params = jax.jit(agent.init)(jax.random.key(0), jnp.zeros(4))
    roll = jax.jit(partial(rollout, agent, params, env, env_params), static_argnames="num_steps")
    return env, env_params, agent, params, roll


@functools.lru_cache(maxsize=None)
def _fragments():
    """One rollout of 2T steps, and the same steps as two rollouts of T."""
    env, env_params, agent, params, roll = _setup()
    state0 = init_rollout(env, env_params, agent, jax.random.key(1), B)
    keys = jax.random.split(jax.random.key(2), 2 * T)
    whole_state, whole = roll(state0, keys, num_steps=2 * T)
    mid_state, first_half = roll(state0, keys[:T], num_steps=T)
    end_state, second_half = roll(mid_state, keys[T:], num_steps=T)
    return jax.device_get((whole_state, whole, first_half, second_half, end_state))


def _assert_tree_equal(a, b):
    def check(x, y):
        x, y = np.asarray(x), np.asarray(y)
        assert x.shape == y.shape and x.dtype == y.dtype
        if np.issubdtype(x.dtype, np.floating):
            close(x, y)
        else:
            np.testing.assert_array_equal(x, y)
    jax.tree.map(check, a, b)


def test_two_rollouts_continue_like_one():
    whole_state, whole, a, b, end_state = _fragments()
    per_step = [f for f in whole._fields if not f.startswith("last_")]
    for field in per_step:
        joined = jax.tree.map(lambda x, y: np.concatenate([x, y]), getattr(a, field), getattr(b, field))
        _assert_tree_equal(joined, getattr(whole, field))
    for field in ("last_obs", "last_first", "last_carry"):
        _assert_tree_equal(getattr(b, field), getattr(whole, field))
    _assert_tree_equal(end_state, whole_state)
    # The second fragment starts exactly where the first stopped.
    np.testing.assert_array_equal(b.obs[0], a.last_obs)
    np.testing.assert_array_equal(b.first[0], a.done[-1])
    np.testing.assert_array_equal(b.first[0], a.last_first)
    _assert_tree_equal(b.carry0, a.last_carry)


def test_no_transition_is_lost_or_duplicated():
    """Inside a fragment, obs[t+1] continues obs[t] unless the episode ended, and the
    env's own episode counter agrees with the `first` flags."""
    whole = _fragments()[1]
    done = whole.terminated | whole.truncated
    assert whole.first[0].all()                          # init_rollout starts episodes
    np.testing.assert_array_equal(whole.first[1:], done[:-1])
    np.testing.assert_array_equal(whole.last_first, done[-1])
    np.testing.assert_array_equal(whole.obs[1:][~done[:-1]], whole.final_obs[:-1][~done[:-1]])
    for b in range(B):
        for end in np.flatnonzero(done[:, b]):
            start = np.flatnonzero(whole.first[: end + 1, b])[-1]
            assert whole.episode_length[end, b] == end - start + 1
            np.testing.assert_allclose(whole.episode_return[end, b],
                                       whole.reward[start:end + 1, b].sum(), rtol=1e-6)
    assert whole.terminated.any() and whole.truncated.any()
    assert not (whole.terminated & whole.truncated).any()


def _post_step_carry(traj):
    """The carry after step t read obs[t]: carry[t+1], and last_carry after the last step."""
    return jax.tree.map(lambda c, last: np.concatenate([c[1:], last[None]]),
                        traj.carry, traj.last_carry)


def test_final_value_is_the_value_of_the_final_observation_at_truncations():
    _, _, agent, params, _ = _setup()
    whole = _fragments()[1]
    np.testing.assert_array_equal(whole.final_value[~whole.truncated], 0.0)
    ts, bs = np.nonzero(whole.truncated)
    assert len(ts) >= 2
    # 1) agent.value on final_obs with the post-step carry.
    post = jax.tree.map(lambda c: c[ts, bs], _post_step_carry(whole))
    close(whole.final_value[ts, bs], jax.jit(agent.value)(params, post, whole.final_obs[ts, bs]))
    # 2) independently: unroll each truncated env's column from carry0, with obs[t + 1]
    #    replaced by final_obs[t] and no reset there; read the value at t + 1.
    obs = np.concatenate([whole.obs, whole.obs[-1:]])[:, bs]            # [2T + 1, N, 4]
    first = np.concatenate([whole.first, whole.first[-1:]])[:, bs]
    cols = np.arange(len(ts))
    obs[ts + 1, cols] = whole.final_obs[ts, bs]
    first[ts + 1, cols] = False
    carry0 = jax.tree.map(lambda c: c[bs], whole.carry0)
    _, (_, value) = jax.jit(agent.unroll)(params, carry0, obs, first)
    close(whole.final_value[ts, bs], np.asarray(value)[ts + 1, cols])


def test_successor_values_bootstrap_from_final_value_at_truncations():
    whole = _fragments()[1]
    last_value = np.arange(B, dtype=np.float32)
    v_t = np.asarray(successor_values(whole, last_value))
    value = whole.outputs.value
    for t in range(2 * T):
        for b in range(B):
            expected = (whole.final_value[t, b] if whole.truncated[t, b]
                        else value[t + 1, b] if t + 1 < 2 * T else last_value[b])
            assert v_t[t, b] == expected, (t, b)


def _gae_reference(r, discount, v_tm1, v_t, lambda_):
    adv, acc = np.zeros_like(r), 0.0
    for t in reversed(range(len(r))):
        acc = r[t] + discount[t] * (v_t[t] + lambda_ * acc) - v_tm1[t]
        adv[t] = acc
    return adv


def test_gae_on_a_fragment_equals_gae_of_each_episode_alone():
    """GAE over a fragment with λ cut at truncations equals, on every complete
    episode in it, GAE of that episode computed alone: bootstrapping from
    V(final_observation) at a time-limit cut and from nothing at a termination."""
    _, _, agent, params, _ = _setup()
    whole = _fragments()[1]
    done = whole.terminated | whole.truncated
    last_value = jax.jit(agent.step)(params, whole.last_carry, whole.last_obs,
                                     whole.last_first, jax.random.key(0))[1].value
    v_t = successor_values(whole, last_value)
    discount = GAMMA * (1.0 - whole.terminated.astype(np.float32))
    lambda_ = LAMBDA * (1.0 - whole.truncated.astype(np.float32))
    gae = jax.vmap(lambda r, d, v_tm1, v_t, lam: returns.generalized_advantage(
        r, d, v_tm1, v_t, lambda_=lam), in_axes=1, out_axes=1)
    adv = np.asarray(gae(whole.reward, discount, whole.outputs.value, v_t, lambda_))

    unroll = jax.jit(agent.unroll)
    seen = {"terminated": 0, "truncated": 0}
    for b in range(B):
        starts = np.flatnonzero(whole.first[:, b])
        for s, e in zip(starts, np.flatnonzero(done[:, b])):
            # The episode alone: from the zero carry; values of its own observations,
            # then of its final observation.
            # (zero-padded to one length after the episode: one compile, no effect before.)
            n = e - s + 2
            obs = np.zeros((MAX_STEPS + 1, 1, 4), np.float32)
            obs[:n, 0] = np.concatenate([whole.obs[s:e + 1, b], whole.final_obs[e:e + 1, b]])
            first = np.zeros((MAX_STEPS + 1, 1), bool)
            _, (_, v) = unroll(params, agent.initial_carry(1), obs, first)
            v = np.asarray(v)[:n, 0]
            r = whole.reward[s:e + 1, b]
            if whole.terminated[e, b]:
                seen["terminated"] += 1
                bootstrap = np.concatenate([v[1:-1], [0.0]])   # nothing after a termination
                disc = np.full(len(r), GAMMA, np.float32)
                disc[-1] = 0.0
                close(adv[e, b], r[-1] - v[-2])
            else:
                seen["truncated"] += 1
                bootstrap = v[1:]                                # V(final_obs) at the cut
                disc = np.full(len(r), GAMMA, np.float32)
            expected = _gae_reference(r, disc, v[:-1], bootstrap, LAMBDA)
            np.testing.assert_allclose(adv[s:e + 1, b], expected, rtol=1e-5, atol=1e-5)
    assert seen["terminated"] >= 1 and seen["truncated"] >= 1, seen


# --------------------------------------------------------------------------- evaluate
def _python_episode(act, step, params, env_params, obs, state, carry):
    """One greedy episode, stepped by hand: (return, length)."""
    first = np.ones(1, bool)
    total, length = 0.0, 0
    while True:
        carry, out = act(params, carry, obs[None], first, jax.random.key(0))
        obs, state, reward, terminated, truncated, _ = step(
            jax.random.key(length), state, out.action[0], env_params)
        total, length, first = total + float(reward), length + 1, np.zeros(1, bool)
        if terminated or truncated:
            return total, length


def test_evaluate_matches_a_python_loop_and_is_jit_and_vmap_able():
    env, env_params, agent, params, _ = _setup()
    run = lambda key: evaluate(agent, params, env, env_params, key, 3, greedy=True)
    key = jax.random.key(7)
    jit_run = jax.jit(run)
    rets, lens = jit_run(key)
    # evaluate resets env i with split(split(key)[0], N)[i] (as init_rollout does).
    reset_keys = jax.random.split(jax.random.split(key)[0], 3)
    act, step = jax.jit(partial(agent.step, greedy=True)), jax.jit(env.step)
    for i in range(3):
        obs, state = env.reset(reset_keys[i], env_params)
        ret, length = _python_episode(act, step, params, env_params, obs, state,
                                      agent.initial_carry(1))
        assert lens[i] == length and rets[i] == pytest.approx(ret)
    assert (np.asarray(lens) <= MAX_STEPS).all()
    keys = jax.random.split(jax.random.key(8), 2)
    v_rets, v_lens = jax.jit(jax.vmap(run))(keys)
    for i in range(2):
        r_i, l_i = jit_run(keys[i])
        close(v_rets[i], r_i)
        np.testing.assert_array_equal(v_lens[i], l_i)
