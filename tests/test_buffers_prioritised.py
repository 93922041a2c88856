"""Prioritised sequence replay: sampling ∝ priority^α, IS weights, updates land on samples."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.buffers import ReplayStep, importance_weights, make_prioritised_sequence_buffer


def _steps(t, b, start=0):
    """Steps whose reward is a unique id: 1000 * env + time."""
    reward = (1000 * jnp.arange(b)[None, :] + start + jnp.arange(t)[:, None]).astype(jnp.float32)
    z = jnp.zeros((t, b), bool)
    return ReplayStep(obs=reward[..., None], first=z, carry=(), action=jnp.zeros((t, b), jnp.int32),
                      reward=reward, terminated=z, truncated=z, final_obs=reward[..., None])


def _filled(alpha_priorities=None, *, num_envs=2, per_env=8, length=2, period=2, batch=4096):
    buf = make_prioritised_sequence_buffer(num_envs=num_envs, capacity=num_envs * per_env,
                                           batch_size=batch, sequence_length=length, period=period)
    state = buf.init(jax.tree.map(lambda x: x[0, 0], _steps(1, num_envs)))
    state = jax.jit(buf.add)(state, _steps(per_env, num_envs))
    return buf, state


def test_sampling_frequencies_are_proportional_to_priority_to_the_alpha():
    buf, state = _filled()
    sample = jax.jit(buf.sample)(state, jax.random.key(0))
    items = np.unique(np.asarray(sample.indices))
    assert len(items) == 8                     # 2 envs x 8 steps / period 2
    alpha = 0.7
    priorities = jnp.arange(1, 9, dtype=jnp.float32)
    state = jax.jit(buf.set_priorities)(state, jnp.asarray(items), priorities, alpha)
    counts = np.zeros(8)
    for s in range(5):
        sample = jax.jit(buf.sample)(state, jax.random.key(s + 1))
        counts += np.bincount(np.searchsorted(items, np.asarray(sample.indices)), minlength=8)
    expected = np.asarray(priorities) ** alpha / np.sum(np.asarray(priorities) ** alpha)
    # chi-square goodness of fit, 7 dof: the 99.9% quantile is 24.3
    n = counts.sum()
    chi2 = np.sum((counts - n * expected) ** 2 / (n * expected))
    assert chi2 < 24.3, (counts / n, expected)
    np.testing.assert_allclose(np.asarray(sample.probabilities),
                               expected[np.searchsorted(items, np.asarray(sample.indices))],
                               rtol=1e-5)


def test_samples_are_whole_windows_of_one_env():
    buf, state = _filled(batch=64)
    sample = buf.sample(state, jax.random.key(3))
    r = np.asarray(sample.steps.reward)                 # [L, N]
    np.testing.assert_array_equal(r[1] - r[0], 1.0)    # consecutive steps of one env
    np.testing.assert_array_equal(r[0] % 2, 0.0)       # starts on the period grid


def test_priority_updates_land_on_the_sampled_items():
    buf, state = _filled(batch=3)
    sample = buf.sample(state, jax.random.key(1))
    # set the sampled items' priorities to ~0 except one: only it can be sampled next
    keep = sample.indices[0]
    items = jnp.arange(8)
    state = buf.set_priorities(state, items, jnp.full((8,), 1e-9), 1.0)
    state = buf.set_priorities(state, keep[None], jnp.ones((1,)), 1.0)
    again = buf.sample(state, jax.random.key(2))
    np.testing.assert_array_equal(again.indices, keep)
    np.testing.assert_array_equal(again.steps.reward, sample.steps.reward[:, :1].repeat(3, 1))


def test_importance_weights():
    p = jnp.array([0.5, 0.25, 0.125, 0.125])
    np.testing.assert_allclose(importance_weights(p, beta=1.0), [0.25, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(importance_weights(p, beta=0.5), np.sqrt([0.25, 0.5, 1.0, 1.0]))
    np.testing.assert_allclose(importance_weights(p, beta=0.0), 1.0)
    # uniform sampling needs no correction
    np.testing.assert_allclose(importance_weights(jnp.full((5,), 0.2), beta=1.0), 1.0)


def test_sizes_are_checked():
    with pytest.raises(ValueError, match="period"):
        make_prioritised_sequence_buffer(num_envs=2, capacity=20, batch_size=2,
                                         sequence_length=4, period=3)
