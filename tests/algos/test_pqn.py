"""PQN: targets from the rollout, recurrent recomputation from the stored carry, learning."""
import jax
import jax.numpy as jnp
import numpy as np

from rljax import returns
from rljax.algos import common, pqn
from rljax.metrics import final_return
from rljax.rollout import init_rollout, rollout

TINY = dict(num_envs=4, num_steps=16, total_steps=4 * 16 * 6, hidden_sizes=(8,),
            num_minibatches=2, num_epochs=2)


def _rollout(config, steps=40, seed=0):
    env, env_params, spec = common.make_env(config)
    agent = pqn.make_agent(config, spec)
    k_init, k_env, k_roll = jax.random.split(jax.random.key(seed), 3)
    params = agent.init(k_init, jnp.zeros(spec.obs_shape))
    state = init_rollout(env, env_params, agent, k_env, config.num_envs)
    _, traj = jax.jit(lambda p, s, k: rollout(agent, p, env, env_params, s, k, steps,
                                              epsilon=0.5))(params, state, k_roll)
    return agent, params, traj


def test_recurrent_pqn_recomputes_the_acting_q_values_from_the_stored_carry():
    config = pqn.Config(**TINY, env_id="CartPole-P-v1", core="gru", core_size=8,
                        max_episode_steps=12)          # several resets inside the fragment
    agent, params, traj = _rollout(config)
    assert traj.first[1:].any() and traj.truncated.any()
    _, q = agent.unroll(params, traj.carry0, traj.obs, traj.first)
    np.testing.assert_allclose(q, traj.outputs.q, rtol=1e-6, atol=1e-6)
    # the minibatch layout (a subset of envs, their carry0) gives the same values
    batch, carry0 = pqn.make_batch(config, agent, params, traj)
    idx = jnp.array([2, 0])
    _, q_sub = agent.unroll(params, jax.tree.map(lambda c: c[idx], carry0), batch.obs[:, idx],
                            batch.first[:, idx])
    np.testing.assert_allclose(q_sub, traj.outputs.q[:, idx], rtol=1e-6, atol=1e-6)


def test_targets_bootstrap_from_final_observation_at_truncations():
    config = pqn.Config(**TINY, max_episode_steps=9, q_lambda=0.7)
    agent, params, traj = _rollout(config)
    assert traj.truncated.any()
    y = pqn.targets(config, agent, params, traj)
    # by hand: successor max-Q, max_a Q(final_obs) at truncations, Q(last_obs) at the end
    q_final = agent.unroll(params, (), traj.final_obs, traj.first)[1].max(-1)
    q_last = agent.unroll(params, (), traj.last_obs[None], traj.last_first[None])[1][0].max(-1)
    v_next = jnp.concatenate([traj.outputs.q.max(-1)[1:], q_last[None]])
    v_t = jnp.where(traj.truncated, q_final, v_next)
    np.testing.assert_allclose(traj.final_value, jnp.where(traj.truncated, q_final, 0.0),
                               rtol=1e-5, atol=1e-6)
    discount = 0.99 * (1.0 - traj.terminated)
    expected = returns.over_envs(returns.q_lambda, traj.reward, discount, v_t, lambda_=0.7,
                                 truncated_t=traj.truncated)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_epsilon_schedule_and_metrics():
    config = pqn.Config(**TINY, eps_decay=0.5)
    assert float(pqn.epsilon(config, 0)) == 1.0
    np.testing.assert_allclose(pqn.epsilon(config, 3), 0.05, rtol=1e-6)   # 3 of 6 updates
    result = jax.jit(pqn.train)(config, jax.random.key(0))
    np.testing.assert_allclose(result.metrics["epsilon"], [pqn.epsilon(config, u) for u in range(6)],
                               rtol=1e-6)
    assert np.all(np.isfinite(result.metrics["loss"]))


def test_pqn_learns_cartpole_short():
    config = pqn.Config(total_steps=150_000)
    result = jax.jit(pqn.train)(config, jax.random.key(0))
    assert float(final_return(result.metrics["episode_return"])) >= 100   # random: ~22
