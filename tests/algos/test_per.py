"""Prioritised replay in DQN / DRQN: resumable bit for bit, weighted loss, R2D2 priorities."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import algos
from rljax.algos import common, drqn, qlearning
from rljax.buffers import ReplayStep

from tests.algos.test_contract import TINY, _assert_trees_equal

PER = {"dqn": dict(TINY["dqn"], prioritised=True),
       "drqn": dict(TINY["drqn"], prioritised=True, period=5)}


@pytest.mark.parametrize("name", ["dqn", "drqn"])
def test_prioritised_pieces_equal_the_whole_run_bit_for_bit(name):
    loop = algos.get(name).loop(algos.get(name).Config(**PER[name]))
    run = jax.jit(loop.run, static_argnums=1)
    state0 = jax.jit(loop.init)(jax.random.key(0))
    whole_state, whole = run(state0, 6)
    state, first = run(state0, 2)
    state, rest = run(state, 4)
    _assert_trees_equal(state, whole_state)          # sum tree of priorities included
    for k in whole:
        np.testing.assert_array_equal(np.concatenate([first[k], rest[k]]), whole[k], err_msg=k)
    # priorities were written: the tree is no longer "every item at the max priority"
    leaves = np.asarray(whole_state.buffer.sum_tree_state.nodes[-(2 ** 5):])
    assert len(np.unique(np.round(leaves[leaves > 0], 6))) > 2
    beta = whole["beta"][np.isfinite(whole["beta"])]
    assert np.all(np.diff(beta) > 0) and beta[-1] <= 1.0         # annealed towards 1


def test_window_priority_and_importance_weighted_loss():
    config = drqn.Config(**PER["drqn"])
    _, _, spec = common.make_env(config)
    net = drqn.network(config, spec)
    layout = drqn.layout(config)
    params = net.init(jax.random.key(0), net.initial_carry(1), jnp.zeros((1, 1, *spec.obs_shape)),
                      jnp.ones((1, 1), bool))
    rng = np.random.default_rng(0)
    L, N = layout.length, 5
    obs = jnp.asarray(rng.normal(size=(L, N, *spec.obs_shape)), jnp.float32)
    steps = ReplayStep(obs=obs, first=jnp.zeros((L, N), bool), carry=net.initial_carry(N)[None].repeat(L, 0),
                       action=jnp.asarray(rng.integers(0, 2, (L, N)), jnp.int32),
                       reward=jnp.ones((L, N)), terminated=jnp.zeros((L, N), bool),
                       truncated=jnp.zeros((L, N), bool), final_obs=obs)
    kw = dict(gamma=0.99, double_q=True, n_step=3)
    plain, m_plain = qlearning.window_q_loss(net, params, params, steps, layout, **kw)
    ones, m = qlearning.window_q_loss(net, params, params, steps, layout, **kw,
                                      weights=jnp.ones(N), priority_eta=0.9)
    np.testing.assert_allclose(ones, plain, rtol=1e-6)       # weights 1: the plain loss
    w = jnp.asarray(rng.random(N), jnp.float32)
    weighted, _ = qlearning.window_q_loss(net, params, params, steps, layout, **kw,
                                          weights=w, priority_eta=0.9)
    # per-window losses, by hand from the |δ| the loss reports through its priorities
    zero = jnp.zeros(N).at[0].set(1.0)
    per_window = [float(qlearning.window_q_loss(net, params, params, steps, layout, **kw,
                                                weights=jnp.roll(zero, i), priority_eta=0.9)[0])
                  for i in range(N)]
    np.testing.assert_allclose(weighted, np.dot(np.asarray(w), per_window), rtol=1e-5)
    # R2D2 priority: 0.9 max + 0.1 mean of |δ| over the trained steps of each window
    q_tm1, q_t = qlearning._window_values(net, params, steps, layout)
    b = layout.burn_in
    y = jax.vmap(lambda *xs: qlearning.q_targets(*xs, n=3), in_axes=1, out_axes=1)(
        steps.reward[b:], 0.99 * jnp.ones((L - b, N)), steps.truncated[b:], q_t, q_t)
    q_a = jnp.take_along_axis(q_tm1, steps.action[b:, :, None], -1)[..., 0]
    td = np.abs(np.asarray(y - q_a))[:layout.loss_steps]
    np.testing.assert_allclose(m["priority"], 0.9 * td.max(0) + 0.1 * td.mean(0), rtol=1e-5)
