"""The resumable on-policy loop: pieces add up to `train`; the host callback reports."""
import jax
import numpy as np

from rljax.algos import reinforce


def test_loop_in_pieces_matches_train_and_calls_back():
    config = reinforce.Config(total_steps=1600, num_envs=4, num_steps=20, behaviour_lag=1)
    keys = jax.random.split(jax.random.key(0), 2)
    reports = []
    train = jax.jit(jax.vmap(lambda k: reinforce.train(config, k, callback=reports.append,
                                                       callback_every=5)))
    result = jax.block_until_ready(train(keys))
    jax.effects_barrier()
    # 20 updates, every 5th reported, once per seed (debug.callback runs per vmap member)
    assert len(reports) == 2 * 4
    assert sorted({float(r["env_steps"]) for r in reports}) == [400.0, 800.0, 1200.0, 1600.0]

    loop = reinforce.loop(config)
    state = jax.vmap(loop.init)(keys)
    pieces = []
    run = jax.jit(jax.vmap(lambda s: loop.run(s, 10)))   # one compile for both pieces
    for _ in range(2):
        state, metrics = run(state)
        pieces.append(metrics)
    for name, full in result.metrics.items():   # separate programs: equal up to float rounding
        np.testing.assert_allclose(np.concatenate([p[name] for p in pieces], axis=1), full,
                                   rtol=1e-3, atol=1e-5, err_msg=name)
    np.testing.assert_array_equal(state.update, [20, 20])
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                 state.train_state.params, result.train_state.params)
