"""Continuous actions on the contract: Gaussian PPO (feedforward and recurrent), clipping
into the action box, SAC's losses against numpy, SAC resume, Brax envs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import envs, losses
from rljax.algos import onpolicy, ppo, sac
from rljax.algos.common import make_env
from rljax.envs import brax_envs
from rljax.rollout import init_rollout, rollout

TINY = dict(num_envs=4, num_steps=16, total_steps=4 * 16 * 3, hidden_sizes=(16,), core_size=16)


@pytest.mark.parametrize("core,policy,normalize_obs", [
    (None, "gaussian", False), (None, "tanh_gaussian", True), ("gru", "gaussian", True),
    ("lstm", "tanh_gaussian", False)])
def test_ppo_first_epoch_ratio_is_exactly_one_with_a_gaussian(core, policy, normalize_obs):
    config = ppo.Config(**{**TINY, "core": core}, env_id="Pendulum-v1", max_episode_steps=6,
                        policy=policy, normalize_obs=normalize_obs, shared=core is not None)
    env, env_params, spec = make_env(config)
    agent = onpolicy.make_agent(config, spec)
    params = agent.init(jax.random.key(0), jnp.zeros(spec.obs_shape))
    if normalize_obs:   # non-trivial statistics
        params = {**params, "obs_norm": {"mean": jnp.array([0.1, -0.2, 0.5]),
                                         "var": jnp.array([0.5, 0.4, 3.0]), "count": jnp.array(9.0)}}
    state = init_rollout(env, env_params, agent, jax.random.key(1), config.num_envs)
    state, _ = rollout(agent, params, env, env_params, state, jax.random.key(2), 16)
    state, traj = rollout(agent, params, env, env_params, state, jax.random.key(3), 16)
    assert traj.done.any() and not traj.first[0].all()
    assert traj.action.shape == (16, 4, 1) and traj.action.dtype == jnp.float32
    batch, carry0 = ppo.make_batch(config, agent, params, traj)
    _, metrics = ppo.loss_fn(config, agent)(params, (batch, carry0))
    np.testing.assert_allclose(metrics["ratio_mean"], 1.0, atol=1e-6)
    assert float(metrics["clip_frac"]) == 0.0
    assert abs(float(metrics["approx_kl"])) < 1e-6


def test_env_gets_in_bound_actions_and_log_probs_are_of_the_sampled_action():
    # prev_action shows what the env received (ClipAction wraps it); a wide Gaussian
    config = ppo.Config(**TINY, env_id="Pendulum-v1", prev_action=True)
    env, env_params, spec = make_env(config)
    agent = onpolicy.make_agent(config, spec)
    params = agent.init(jax.random.key(0), jnp.zeros(spec.obs_shape))
    params = jax.tree_util.tree_map_with_path(
        lambda path, x: x + 1.5 if "log_std" in jax.tree_util.keystr(path) else x, params)
    state = init_rollout(env, env_params, agent, jax.random.key(1), 4)
    _, traj = rollout(agent, params, env, env_params, state, jax.random.key(2), 32)
    action = np.asarray(traj.action)[..., 0]
    assert (np.abs(action) > 2.0).mean() > 0.2, "the test needs out-of-bound samples"
    np.testing.assert_allclose(traj.outputs.log_prob, traj.outputs.dist.log_prob(traj.action),
                               rtol=1e-6)
    received = np.asarray(traj.final_obs)[..., 3]      # previous action appended to the obs
    np.testing.assert_allclose(received, np.clip(action, -2.0, 2.0), rtol=1e-6)
    assert np.all(np.abs(received) <= 2.0)


def test_tanh_gaussian_policy_actions_lie_in_the_box():
    config = ppo.Config(**TINY, env_id="MountainCarContinuous-v0", policy="tanh_gaussian")
    env, env_params, spec = make_env(config)
    agent = onpolicy.make_agent(config, spec)
    params = agent.init(jax.random.key(0), jnp.zeros(spec.obs_shape))
    state = init_rollout(env, env_params, agent, jax.random.key(1), 4)
    _, traj = rollout(agent, params, env, env_params, state, jax.random.key(2), 32)
    assert np.all(np.abs(np.asarray(traj.action)) <= 1.0)
    greedy = agent.step(params, state.carry, state.obs, state.first, jax.random.key(3), greedy=True)[1]
    np.testing.assert_allclose(greedy.action, greedy.dist.mode())


def test_policy_choice_is_checked_against_the_action_space():
    with pytest.raises(ValueError, match="policy"):
        ppo.Config(env_id="CartPole-v1", policy="gaussian")
    with pytest.raises(ValueError, match="policy"):
        ppo.Config(env_id="Pendulum-v1", policy="categorical")
    with pytest.raises(ValueError, match="policy"):
        ppo.Config(env_id="Pendulum-v1", policy="beta")


# --------------------------------------------------------------------------- SAC losses
def _np_sac(q1, q2, r, disc, q1_t, q2_t, logp_t, alpha, q1_pi, q2_pi, logp_pi, log_alpha, h):
    y = r + disc * (np.minimum(q1_t, q2_t) - alpha * logp_t)
    critic = np.mean((q1 - y) ** 2) + np.mean((q2 - y) ** 2)
    actor = np.mean(alpha * logp_pi - np.minimum(q1_pi, q2_pi))
    temperature = -np.mean(log_alpha * (logp_pi + h))
    return critic, actor, temperature


def test_sac_losses_match_numpy_and_their_gradients_flow_where_they_should():
    rng = np.random.default_rng(0)
    q1, q2, r, q1_t, q2_t, logp_t, q1_pi, q2_pi, logp_pi = rng.normal(size=(9, 32)).astype(np.float32)
    disc = (0.99 * (rng.random(32) > 0.1)).astype(np.float32)
    alpha, log_alpha, h = 0.3, np.float32(np.log(0.3)), -1.0
    critic, actor, temperature = _np_sac(q1, q2, r, disc, q1_t, q2_t, logp_t, alpha, q1_pi, q2_pi,
                                         logp_pi, log_alpha, h)
    got_c, m = losses.sac_critic_loss(q1, q2, r, disc, q1_t, q2_t, logp_t, alpha=alpha)
    got_a, _ = losses.sac_actor_loss(q1_pi, q2_pi, logp_pi, alpha=alpha)
    got_t, tm = losses.sac_temperature_loss(jnp.asarray(log_alpha), logp_pi, target_entropy=h)
    np.testing.assert_allclose([got_c, got_a, got_t], [critic, actor, temperature], rtol=1e-5)
    np.testing.assert_allclose(tm["alpha"], 0.3, rtol=1e-6)
    # the target is held: d/dq1 = 2 (q1 - y) / N, no gradient into the target's inputs
    y = r + disc * (np.minimum(q1_t, q2_t) - alpha * logp_t)
    g = jax.grad(lambda a, b: losses.sac_critic_loss(a, q2, r, disc, b, q2_t, logp_t, alpha=alpha)[0],
                 argnums=(0, 1))(q1, q1_t)
    np.testing.assert_allclose(g[0], 2 * (q1 - y) / 32, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(g[1], 0.0)
    # the temperature rises while the entropy (-log pi) is below the target
    g_alpha = jax.grad(lambda la: losses.sac_temperature_loss(la, logp_pi, target_entropy=h)[0])(
        jnp.asarray(log_alpha))
    np.testing.assert_allclose(g_alpha, -np.mean(logp_pi + h), rtol=1e-5)


def test_sac_resume_from_a_saved_state_is_bit_for_bit(tmp_path):
    from rljax.cli import rundir
    config = sac.Config(num_envs=2, train_every=4, log_every=40, total_steps=240, buffer_size=100,
                        batch_size=8, learning_starts=40, utd_ratio=2, hidden_sizes=(8,),
                        normalize_obs=True, normalize_reward=True)
    loop = sac.loop(config)
    run = jax.jit(loop.run, static_argnums=1)
    state0 = jax.jit(loop.init)(jax.random.key(0))
    whole, whole_m = run(state0, 6)
    half, _ = run(state0, 3)
    rundir.save_tree(tmp_path / "ckpt", half)
    restored = rundir.load_tree(tmp_path / "ckpt", jax.eval_shape(loop.init, jax.random.key(0)))
    resumed, rest_m = run(restored, 3)
    for x, y in zip(jax.tree.leaves(resumed), jax.tree.leaves(whole), strict=True):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    np.testing.assert_array_equal(rest_m["critic_loss"], whole_m["critic_loss"][3:])
    assert float(resumed.train_state.params["actor"]["obs_norm"]["count"]) == 240


# --------------------------------------------------------------------------- Brax
@pytest.mark.skipif(not brax_envs.available(), reason=brax_envs.MISSING)
def test_brax_env_steps_with_termination_truncation_and_final_observation():
    env, params = envs.make("brax/inverted_pendulum", max_episode_steps=5)
    spec = envs.spec(env, params)
    assert spec.obs_shape == (4,) and spec.action_shape == (1,) and spec.action_low == (-1.0,)
    obs, state = env.reset(jax.random.key(0), params)
    step = jax.jit(env.step)
    # zero torque: the pole does not fall within 5 steps, so the time limit truncates
    rows = []
    for t in range(6):
        prev = obs
        obs, state, reward, term, trunc, info = step(jax.random.key(t + 1), state, jnp.zeros(1), params)
        rows.append((prev, obs, float(reward), bool(term), bool(trunc), info))
    assert [r[4] for r in rows] == [False] * 4 + [True, False]
    assert not any(r[3] for r in rows)
    assert rows[4][5]["episode_length"] == 5 and rows[4][5]["episode_return"] == 5.0
    # at the cut: obs starts a new episode, final_observation continues the old one
    assert not np.allclose(rows[4][5]["final_observation"], rows[4][1])
    np.testing.assert_allclose(rows[3][5]["final_observation"], rows[3][1])
    # full torque one way: the pole falls -> terminated, not truncated
    env, params = envs.make("brax/inverted_pendulum")
    obs, state = env.reset(jax.random.key(0), params)

    def push(state, key):
        obs, state, _, term, trunc, info = env.step(key, state, jnp.ones(1) * 3.0, params)
        return state, (term, trunc, info["final_observation"])

    _, (term, trunc, final) = jax.jit(lambda s: jax.lax.scan(
        push, s, jax.random.split(jax.random.key(1), 200)))(state)
    t = int(np.argmax(np.asarray(term)))
    assert bool(term[t]) and not np.asarray(trunc).any() and 0 < t < 199
    assert abs(float(final[t][1])) > 0.2     # the fallen pole's angle
