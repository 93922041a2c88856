"""Replay: windows stay inside what was written; the stored carry is the actor's."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import agents, envs, nets
from rljax.buffers import ReplayStep, example_step, make_sequence_buffer, replay_steps
from rljax.rollout import init_rollout, rollout


def _counter_steps(t0, length, num_envs):
    """Steps whose obs encode (global time, env): obs = [t, env]."""
    t = jnp.arange(t0, t0 + length, dtype=jnp.float32)[:, None] * jnp.ones((1, num_envs))
    e = jnp.ones((length, 1)) * jnp.arange(num_envs, dtype=jnp.float32)[None]
    obs = jnp.stack([t, e], -1)
    zeros = jnp.zeros((length, num_envs))
    return ReplayStep(obs=obs, first=zeros.astype(bool), carry=(), action=zeros.astype(jnp.int32),
                      reward=t, terminated=zeros.astype(bool), truncated=zeros.astype(bool),
                      final_obs=obs + jnp.array([1.0, 0.0]))


@pytest.mark.parametrize("length,period", [(1, 1), (5, 1), (5, 3), (4, 4)])
def test_windows_never_read_past_what_was_written(length, period):
    num_envs, per_env = 3, 20
    buf = make_sequence_buffer(num_envs=num_envs, capacity=num_envs * per_env, batch_size=512,
                               sequence_length=length, period=period)
    add, sample = jax.jit(buf.add), jax.jit(buf.sample)
    state = buf.init(example_step(_counter_steps(0, 1, num_envs)))
    written, key = 0, jax.random.key(0)
    assert not bool(buf.can_sample(state))
    for _ in range(10):                              # 70 steps: 3.5 laps of the ring
        state = add(state, _counter_steps(written, 7, num_envs))
        written += 7
        assert bool(buf.can_sample(state))
        key, k = jax.random.split(key)
        s = sample(state, k)
        t = np.asarray(s.obs[..., 0])               # [L, N]
        assert t.shape == (length, 512)
        np.testing.assert_array_equal(np.diff(t, axis=0), 1.0)         # consecutive, one lap
        assert np.all(np.asarray(s.obs[..., 1]) == np.asarray(s.obs[:1, :, 1]))  # one env
        oldest = max(0, written - per_env)
        assert t.min() >= oldest and t.max() <= written - 1           # written, not overwritten
        assert np.all((t[0] - oldest) % period == 0)                   # starts on the period grid
        np.testing.assert_array_equal(s.reward, t)                     # fields stay aligned
        np.testing.assert_array_equal(s.final_obs[..., 0], t + 1)
        if written >= per_env:                                         # every start reachable
            starts = np.unique(t[0])
            assert len(starts) == (per_env - length) // period + 1


def test_rejects_bad_sizes():
    with pytest.raises(ValueError, match="multiple of num_envs"):
        make_sequence_buffer(num_envs=3, capacity=10, batch_size=2)
    with pytest.raises(ValueError, match="period"):
        make_sequence_buffer(num_envs=1, capacity=10, batch_size=2, sequence_length=2, period=3)


def _recurrent_rollout(num_steps=60, num_envs=4):
    env, env_params = envs.make("CartPole-P-v1", max_episode_steps=25)
    net = nets.QNetwork(2, nets.Trunk(hidden_sizes=(16,), activation="relu", core="gru",
                                      core_size=8))
    agent = agents.q_agent(net)
    params = jax.jit(agent.init)(jax.random.key(1), jnp.zeros((2,)))
    state = init_rollout(env, env_params, agent, jax.random.key(2), num_envs)
    run = jax.jit(lambda st, k: rollout(agent, params, env, env_params, st, k, num_steps // 2,
                                        epsilon=0.5))
    state, traj1 = run(state, jax.random.key(3))
    _, traj2 = run(state, jax.random.key(4))      # continues where traj1 stopped
    return agent, params, (traj1, traj2)


def test_stored_carry_is_the_actors_carry():
    agent, params, trajs = _recurrent_rollout()
    num_envs, length = 4, 7
    buf = make_sequence_buffer(num_envs=num_envs, capacity=num_envs * 40, batch_size=64,
                               sequence_length=length, period=2)
    steps = [replay_steps(t, store_carry=True) for t in trajs]
    state = buf.init(example_step(steps[0]))
    for s in steps:                                   # 60 steps into 40 slots: wraps
        state = jax.jit(buf.add)(state, s)
    all_obs = np.concatenate([np.asarray(t.obs) for t in trajs])        # [60, B, 2]
    all_carry = np.concatenate([np.asarray(t.carry) for t in trajs])    # [60, B, H]
    all_q = np.concatenate([np.asarray(t.outputs.q) for t in trajs])
    assert np.any(np.concatenate([np.asarray(t.first[1:]) for t in trajs]))  # resets inside
    s = jax.jit(buf.sample)(state, jax.random.key(5))
    # Recompute Q over each window from its stored carry: must equal what the actor saw.
    _, q = jax.jit(agent.unroll)(params, s.carry[0], s.obs, s.first)
    for n in range(s.reward.shape[1]):
        t, b = np.argwhere(np.all(all_obs == np.asarray(s.obs[0, n]), axis=-1))[0]
        np.testing.assert_array_equal(s.carry[0, n], all_carry[t, b])
        np.testing.assert_allclose(q[:, n], all_q[t:t + length, b], rtol=1e-5, atol=1e-6)


def test_buffer_vmaps_over_seeds():
    buf = make_sequence_buffer(num_envs=2, capacity=40, batch_size=8, sequence_length=3)
    steps = _counter_steps(0, 12, 2)

    def run(key):
        state = buf.add(buf.init(example_step(steps)), steps)
        return buf.sample(state, key)

    keys = jax.random.split(jax.random.key(0), 2)
    batched = jax.jit(jax.vmap(run))(keys)
    for i in range(2):
        jax.tree.map(np.testing.assert_array_equal, jax.tree.map(lambda x: x[i], batched),
                     jax.jit(run)(keys[i]))
