"""IMPALA / V-trace actor-critic: on-policy reduction, loss against numpy, learning."""
import jax
import jax.numpy as jnp
import numpy as np

from rljax import returns
from rljax.algos import common, impala
from rljax.metrics import final_return
from rljax.rollout import init_rollout, rollout

TINY = dict(num_envs=3, num_steps=24, total_steps=3 * 24 * 4, hidden_sizes=(8,),
            max_episode_steps=10)   # time limits inside the fragment


def _setup(config, seed=0):
    env, env_params, spec = common.make_env(config)
    agent = impala.make_agent(config, spec)
    k1, k2, k_env, k_roll = jax.random.split(jax.random.key(seed), 4)
    mu = agent.init(k1, jnp.zeros(spec.obs_shape))
    pi = agent.init(k2, jnp.zeros(spec.obs_shape))
    leaves, tree = jax.tree.flatten(pi)     # a learner far from the (near-uniform) actor
    noise = [0.5 * jax.random.normal(k, x.shape) for k, x in
             zip(jax.random.split(k2, len(leaves)), leaves)]
    pi = jax.tree.unflatten(tree, [x + n for x, n in zip(leaves, noise)])
    state = init_rollout(env, env_params, agent, k_env, config.num_envs)
    _, traj = jax.jit(lambda p, s, k: rollout(agent, p, env, env_params, s, k,
                                              config.num_steps))(mu, state, k_roll)
    return agent, mu, pi, traj


def _vtrace_np(v_tm1, v_t, r, discount, log_rho, truncated, lam, rho_bar, c_bar):
    """V-trace for one env from Espeholt et al. eq. (1), cut (λ = 0) at time limits."""
    n = len(r)
    rho = np.exp(log_rho)
    lam = np.where(truncated, 0.0, lam)
    vs = np.zeros(n)
    acc = 0.0
    for t in reversed(range(n)):
        delta = min(rho_bar, rho[t]) * (r[t] + discount[t] * v_t[t] - v_tm1[t])
        acc = delta + discount[t] * lam[t] * min(c_bar, rho[t]) * (acc if t < n - 1 else 0.0)
        vs[t] = v_tm1[t] + acc
    adv = np.zeros(n)
    for t in range(n):
        vs_next = vs[t + 1] if t < n - 1 else v_t[t]
        boot = lam[t] * vs_next + (1 - lam[t]) * v_t[t]
        adv[t] = min(rho_bar, rho[t]) * (r[t] + discount[t] * boot - v_tm1[t])
    return vs, adv


def test_with_lag_zero_weights_are_one_and_targets_are_lambda_returns():
    config = impala.Config(**TINY, vtrace_lambda=0.9)
    agent, mu, _, traj = _setup(config)
    _, value, _, log_rho, vs, _ = impala.targets(config, agent, mu, traj)   # pi == mu
    np.testing.assert_array_equal(log_rho, 0.0)
    loss, metrics = impala.loss_fn(config, agent)(mu, traj)
    assert float(metrics["rho_mean"]) == 1.0
    from rljax.algos import onpolicy
    v_t = onpolicy.successor_values_of(agent, mu, traj, value)
    expected = returns.over_envs(returns.lambda_returns, traj.reward,
                                 onpolicy.discounts(config, traj), v_t, lambda_=0.9,
                                 truncated_t=traj.truncated)
    np.testing.assert_allclose(vs, expected, rtol=1e-5, atol=1e-5)


def test_loss_against_numpy_with_a_lagging_behaviour_policy():
    config = impala.Config(**TINY, vtrace_lambda=0.95, rho_bar=1.0, c_bar=0.9,
                           ent_coef=0.02, vf_coef=0.7)
    agent, mu, pi, traj = _setup(config)
    loss, metrics = jax.jit(impala.loss_fn(config, agent))(pi, traj)
    # the network outputs under pi, then everything else in numpy
    from rljax.algos import onpolicy
    dist, value = onpolicy.recompute(agent, pi, traj)
    log_pi = np.asarray(dist.log_prob(traj.action), np.float64)
    value = np.asarray(value, np.float64)
    v_t = np.asarray(onpolicy.successor_values_of(agent, pi, traj, jnp.asarray(value, jnp.float32)))
    log_rho = log_pi - np.asarray(traj.outputs.log_prob)
    assert np.abs(log_rho).max() > 0.01                      # really off-policy
    r, term, trunc = (np.asarray(x) for x in (traj.reward, traj.terminated, traj.truncated))
    discount = 0.99 * (1.0 - term)
    vs, adv = zip(*[_vtrace_np(value[:, b], v_t[:, b], r[:, b], discount[:, b], log_rho[:, b],
                               trunc[:, b], 0.95, 1.0, 0.9) for b in range(r.shape[1])])
    vs, adv = np.stack(vs, 1), np.stack(adv, 1)
    entropy = np.asarray(dist.entropy())
    expected = (-np.mean(adv * log_pi) + 0.7 * 0.5 * np.mean((value - vs) ** 2)
                - 0.02 * np.mean(entropy))
    np.testing.assert_allclose(float(loss), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(float(metrics["rho_mean"]), np.mean(np.exp(log_rho)), rtol=1e-5)


def test_no_correction_ignores_the_behaviour_policy():
    config = impala.Config(**TINY, vtrace=False)
    agent, mu, pi, traj = _setup(config)
    _, _, _, log_rho, _, _ = impala.targets(config, agent, pi, traj)
    np.testing.assert_array_equal(log_rho, 0.0)


def test_recurrent_impala_recomputes_the_behaviour_log_probs_from_the_stored_carry():
    config = impala.Config(**TINY, core="gru", core_size=8)
    agent, mu, _, traj = _setup(config)
    assert traj.first[1:].any()
    _, _, _, log_rho, _, _ = impala.targets(config, agent, mu, traj)
    np.testing.assert_allclose(log_rho, 0.0, atol=1e-6)


def test_impala_learns_cartpole_short():
    result = jax.jit(impala.train)(impala.Config(total_steps=150_000, behaviour_lag=4),
                                   jax.random.key(0))
    assert float(final_return(result.metrics["episode_return"])) >= 100   # random: ~22
