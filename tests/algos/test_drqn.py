"""DRQN: burn-in carries no gradient, sequence values match the acting unroll,
vmap over seeds equals single runs."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.algos import common, drqn, qlearning
from rljax.buffers import ReplayStep

_SMALL = dict(hidden_sizes=(8,), core_size=8, head_sizes=())


def _window(length=6, batch=5, obs_dim=2, core_size=8):
    rng = np.random.default_rng(0)
    first = rng.random((length, batch)) < 0.15
    terminated = rng.random((length, batch)) < 0.1
    truncated = (rng.random((length, batch)) < 0.1) & ~terminated
    f = lambda *s: jnp.asarray(rng.normal(size=s), jnp.float32)
    return ReplayStep(obs=f(length, batch, obs_dim), first=jnp.asarray(first),
                      carry=f(length, batch, core_size),
                      action=jnp.asarray(rng.integers(0, 2, (length, batch)), jnp.int32),
                      reward=f(length, batch), terminated=jnp.asarray(terminated),
                      truncated=jnp.asarray(truncated), final_obs=f(length, batch, obs_dim))


def _net_and_params(cfg):
    net = drqn.network(cfg, common.make_env(cfg)[2])
    params = net.init(jax.random.key(0), net.initial_carry(1), jnp.zeros((1, 1, 2)),
                      jnp.ones((1, 1), bool))
    target = net.init(jax.random.key(1), net.initial_carry(1), jnp.zeros((1, 1, 2)),
                      jnp.ones((1, 1), bool))
    return net, params, target


@pytest.mark.parametrize("core", ["lstm"])
def test_burn_in_steps_carry_no_gradient(core):
    cfg = drqn.Config(**_SMALL, core=core, burn_in=3, unroll_length=3)
    net, params, target = _net_and_params(cfg)
    steps = _window()
    if core == "lstm":
        steps = steps._replace(carry=(steps.carry, 0.5 * steps.carry))

    def loss(obs, carry, reward, params, burn_in):
        s = steps._replace(obs=obs, carry=carry, reward=reward)
        layout = qlearning.WindowLayout(6, 1, burn_in, 6 - burn_in, True)
        return qlearning.window_q_loss(net, params, target, s, layout, gamma=0.9,
                                       double_q=True, n_step=2)[0]

    grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3)), static_argnums=4)
    g_obs, g_carry, g_reward, g_params = grads(steps.obs, steps.carry, steps.reward, params, 3)
    np.testing.assert_array_equal(g_obs[:3], 0.0)        # burn-in inputs: no gradient
    jax.tree.map(lambda g: np.testing.assert_array_equal(g, 0.0), g_carry)  # nor stored carry
    np.testing.assert_array_equal(g_reward, 0.0)         # targets are stopped
    assert np.abs(np.asarray(g_obs[3:])).sum() > 0       # trained steps do have gradient
    # Without burn-in the stored carry and the first inputs do get gradient (sanity).
    g_obs0, g_carry0, _, _ = grads(steps.obs, steps.carry, steps.reward, params, 0)
    assert np.abs(np.asarray(g_obs0[:3])).sum() > 0
    assert sum(float(np.abs(g).sum()) for g in jax.tree.leaves(g_carry0)) > 0
    # The burn-in's param gradient is only through the trained steps: changing the
    # burn-in's *rewards/actions* leaves the gradient unchanged.
    s2 = steps._replace(reward=steps.reward.at[:3].set(100.0))
    g2 = jax.jit(jax.grad(lambda p: qlearning.window_q_loss(
        net, p, target, s2, qlearning.WindowLayout(6, 1, 3, 3, True), gamma=0.9,
        double_q=True, n_step=2)[0]))(params)
    jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-7), g2, g_params)


def test_sequence_values_match_unroll_and_successors():
    """q_tm1 equals the network's unroll (masked resets included); at steps that are not
    episode ends Q(successor) equals the next step's Q, and at ends it reads final_obs
    with the episode's carry (no reset)."""
    cfg = drqn.Config(**_SMALL)
    net, params, _ = _net_and_params(cfg)
    steps = _window()
    done = np.asarray(steps.terminated | steps.truncated)
    final_obs = jnp.where(jnp.asarray(done)[..., None], steps.final_obs,
                          jnp.concatenate([steps.obs[1:], steps.final_obs[-1:]]))
    first = steps.first.at[1:].set(jnp.asarray(done[:-1]) | steps.first[1:])
    carry0 = steps.carry[0]
    q_tm1, q_t = jax.jit(functools.partial(qlearning.sequence_q_values, net))(
        params, carry0, steps.obs, first, final_obs)
    _, q_unroll = net.apply(params, carry0, steps.obs, first)
    np.testing.assert_allclose(q_tm1, q_unroll, rtol=1e-5, atol=1e-6)
    nxt = ~done[:-1] & ~np.asarray(first[1:])
    np.testing.assert_allclose(np.asarray(q_t[:-1])[nxt], np.asarray(q_tm1[1:])[nxt],
                               rtol=1e-5, atol=1e-6)
    # At a done step t: Q(final_obs[t]) from the carry after obs[0..t], computed by hand.
    t, b = np.argwhere(done)[0]
    c, _ = net.apply(params, carry0[b:b + 1], steps.obs[:t + 1, b:b + 1], first[:t + 1, b:b + 1])
    _, q_ref = net.apply(params, c, final_obs[t:t + 1, b:b + 1], jnp.zeros((1, 1), bool))
    np.testing.assert_allclose(q_t[t, b], q_ref[0, 0], rtol=1e-5, atol=1e-6)


_TINY = dict(**_SMALL, num_envs=4, total_steps=1_600, buffer_size=400, batch_size=8,
             learning_starts=400, train_every=8, target_update_every=80, log_every=400,
             burn_in=2, unroll_length=4, period=3)


@pytest.mark.parametrize("initial_carry,burn_in", [("stored", 2)])
def test_vmap_over_two_seeds_equals_single_runs(initial_carry, burn_in):
    cfg = drqn.Config(**{**_TINY, "burn_in": burn_in}, initial_carry=initial_carry,
                      double_q=True)
    keys = jax.random.split(jax.random.key(0), 2)
    batched = jax.jit(jax.vmap(drqn.train, in_axes=(None, 0)))(cfg, keys)
    for i in range(2):
        one = jax.jit(drqn.train)(cfg, keys[i])
        jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=2e-4, atol=2e-5),
                     jax.tree.map(lambda x: x[i], batched), one)
    assert np.all(np.isfinite(batched.metrics["loss"][:, -1]))


def test_zero_initial_carry_ignores_stored_carry():
    """'bootstrapped random updates': the loss does not depend on the stored carry."""
    cfg = drqn.Config(**_SMALL, burn_in=0, unroll_length=6, initial_carry="zero")
    net, params, target = _net_and_params(cfg)
    steps = _window()
    f = jax.jit(lambda s: qlearning.window_q_loss(net, params, target, s, drqn.layout(cfg),
                                                  gamma=0.9, double_q=False, n_step=1)[0])
    np.testing.assert_array_equal(f(steps), f(steps._replace(carry=steps.carry + 3.0)))


def test_config_checks():
    with pytest.raises(ValueError, match="initial_carry"):
        drqn.Config(initial_carry="learned")
    layout = drqn.layout(drqn.Config(burn_in=5, unroll_length=10, period=7))
    assert (layout.length, layout.period, layout.burn_in, layout.loss_steps) == (15, 7, 5, 10)
