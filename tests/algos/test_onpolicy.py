"""PPO / A2C / REINFORCE: exact first-epoch ratio, vmap equivalences, clear errors."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.algos import a2c, onpolicy, ppo, reinforce
from rljax.algos.common import make_env
from rljax.config import StaticFieldError
from rljax.rollout import init_rollout, rollout

TINY = dict(num_envs=4, num_steps=16, total_steps=4 * 16 * 3, hidden_sizes=(16,), core_size=16)


@pytest.mark.parametrize("core", [None, "gru", "lstm"])
def test_ppo_first_epoch_ratio_is_exactly_one(core):
    config = ppo.Config(**{**TINY, "core": core}, max_episode_steps=6, shared=core is not None)
    env, env_params, spec = make_env(config)
    agent = onpolicy.make_agent(config, spec)
    obs_shape = spec.obs_shape
    params = agent.init(jax.random.key(0), jnp.zeros(obs_shape))
    state = init_rollout(env, env_params, agent, jax.random.key(1), config.num_envs)
    # two fragments, so the second starts mid-episode from a non-zero carry
    state, _ = rollout(agent, params, env, env_params, state, jax.random.key(2), 16)
    state, traj = rollout(agent, params, env, env_params, state, jax.random.key(3), 16)
    assert traj.done.any() and not traj.first[0].all()
    batch, carry0 = ppo.make_batch(config, agent, params, traj)
    _, metrics = ppo.loss_fn(config, agent)(params, (batch, carry0))
    np.testing.assert_allclose(metrics["ratio_mean"], 1.0, atol=1e-6)
    assert float(metrics["clip_frac"]) == 0.0
    assert abs(float(metrics["approx_kl"])) < 1e-6


@pytest.mark.parametrize("module", [ppo, a2c, reinforce], ids=["ppo", "a2c", "reinforce"])
def test_vmapped_seeds_equal_single_runs(module):
    config = module.Config(**TINY)
    keys = jax.random.split(jax.random.key(7), 2)
    batched = jax.jit(jax.vmap(module.train, in_axes=(None, 0)))(config, keys)
    single = jax.jit(module.train)
    for i in range(2):
        one = single(config, keys[i])
        for name in ("loss", "env_steps", "entropy"):
            np.testing.assert_allclose(batched.metrics[name][i], one.metrics[name], rtol=1e-5, atol=1e-6)
        jax.tree.map(lambda b, s: np.testing.assert_allclose(b[i], s, rtol=1e-5, atol=1e-6),
                     batched.train_state.params, one.train_state.params)


@pytest.mark.parametrize("module", [ppo, a2c], ids=["ppo", "a2c"])
def test_learning_rate_sweep_equals_single_runs(module):
    base = module.Config(**TINY)
    lrs = jnp.array([1e-3, 3e-3])
    configs = jax.vmap(lambda lr: dataclasses.replace(base, lr=lr))(lrs)
    keys = jax.random.split(jax.random.key(3), 2)
    swept = jax.jit(jax.vmap(module.train))(configs, keys)
    for i, lr in enumerate([1e-3, 3e-3]):
        one = jax.jit(module.train)(dataclasses.replace(base, lr=lr), keys[i])
        np.testing.assert_allclose(swept.metrics["loss"][i], one.metrics["loss"], rtol=1e-5, atol=1e-6)
    # and the two members really differ
    assert not np.allclose(swept.metrics["loss"][0], swept.metrics["loss"][1])


def test_batching_a_static_field_names_it():
    with pytest.raises(StaticFieldError, match="num_envs is a static field"):
        ppo.Config(num_envs=jnp.array([4, 8]))
    base = ppo.Config(**TINY)
    with pytest.raises(StaticFieldError, match="num_steps"):
        jax.vmap(lambda n: dataclasses.replace(base, num_steps=n))(jnp.array([8, 16]))


def test_bad_sizes_give_clear_errors():
    with pytest.raises(ValueError, match="num_envs.*divisible by num_minibatches"):
        ppo.train(ppo.Config(**{**TINY, "core": "gru", "num_minibatches": 3}), jax.random.key(0))
    with pytest.raises(ValueError, match="less than one update"):
        ppo.train(ppo.Config(total_steps=10), jax.random.key(0))
    with pytest.raises(ValueError, match="unknown recurrent core"):
        ppo.train(ppo.Config(**{**TINY, "core": "rnn"}), jax.random.key(0))


def test_behaviour_lag_makes_importance_weights_differ_from_one():
    config = reinforce.Config(**{**TINY, "total_steps": 4 * 16 * 6}, behaviour_lag=2)
    result = jax.jit(reinforce.train)(config, jax.random.key(0))
    rho = np.asarray(result.metrics["rho_mean"])
    # update 0: actor and learner both hold the initial params; after that the
    # actor runs params 2 updates old (the initial ones until update 2)
    np.testing.assert_allclose(rho[0], 1.0, atol=1e-6)
    assert np.abs(rho[1:] - 1.0).min() > 1e-5   # E_mu[pi/mu] = 1, so only "not exactly 1"
    lagless = jax.jit(reinforce.train)(dataclasses.replace(config, behaviour_lag=0), jax.random.key(0))
    np.testing.assert_allclose(lagless.metrics["rho_mean"], 1.0, atol=1e-6)
