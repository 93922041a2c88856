"""rljax.distributions against numpy."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import distributions as dist

VARIANTS = [pytest.param(lambda f: f, id="nojit"), pytest.param(jax.jit, id="jit")]


def _np_log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("shape", [(7,), (3, 4)])
def test_log_prob_and_entropy_match_numpy(variant, shape):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=shape + (5,)).astype(np.float32) * 3
    action = rng.integers(0, 5, size=shape).astype(np.int32)
    log_p = _np_log_softmax(logits)
    expected_lp = np.take_along_axis(log_p, action[..., None], -1)[..., 0]
    expected_h = -(np.exp(log_p) * log_p).sum(-1)
    np.testing.assert_allclose(variant(dist.categorical_log_prob)(logits, action), expected_lp, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(variant(dist.categorical_entropy)(logits), expected_h, rtol=1e-5, atol=1e-6)


def test_entropy_uniform_is_log_num_actions():
    np.testing.assert_allclose(dist.categorical_entropy(jnp.zeros((2, 6))), np.log(6) * np.ones(2), rtol=1e-6)


@pytest.mark.parametrize("masked", [-1e30, -jnp.inf])
def test_entropy_safe_with_very_negative_logits(masked):
    logits = jnp.array([[0.3, masked, 1.0, masked], [masked, 2.0, masked, masked]])
    h = dist.categorical_entropy(logits)
    expected0 = dist.categorical_entropy(jnp.array([0.3, 1.0]))
    np.testing.assert_allclose(h, [expected0, 0.0], atol=1e-6)
    grad = jax.grad(lambda l: dist.categorical_entropy(l).sum())(logits)
    assert np.isfinite(np.asarray(grad)).all()


def test_sample_frequencies_match_softmax():
    logits = jnp.log(jnp.array([0.1, 0.2, 0.7]))
    samples = dist.categorical_sample(jax.random.key(0), jnp.broadcast_to(logits, (20000, 3)))
    assert samples.dtype == jnp.int32 and samples.shape == (20000,)
    freq = np.bincount(np.asarray(samples), minlength=3) / 20000
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.7], atol=0.015)


@pytest.mark.parametrize("variant", VARIANTS)
def test_epsilon_greedy_zero_is_argmax(variant):
    q = jax.random.normal(jax.random.key(1), (64, 5))
    a = variant(dist.epsilon_greedy)(jax.random.key(2), q, 0.0)
    assert a.dtype == jnp.int32
    np.testing.assert_array_equal(a, np.argmax(np.asarray(q), -1))


def test_epsilon_greedy_draws_per_row():
    batch, num_actions = 4000, 100
    q = jax.random.normal(jax.random.key(3), (batch, num_actions))
    greedy = np.argmax(np.asarray(q), -1)
    # epsilon = 1: every row explores, and the random actions differ across rows.
    a1 = np.asarray(dist.epsilon_greedy(jax.random.key(4), q, 1.0))
    assert len(np.unique(a1)) > 90
    assert np.mean(a1 == greedy) < 0.05
    # epsilon = 0.5: each row decides on its own, so about half the rows explore
    # (a batch-wide decision would give 0 % or ~100 %).
    a_half = np.asarray(dist.epsilon_greedy(jax.random.key(5), q, 0.5))
    explored = np.mean(a_half != greedy)
    assert 0.4 < explored < 0.6
    # per-row epsilon
    eps = jnp.where(jnp.arange(batch) % 2 == 0, 0.0, 1.0)
    a_row = np.asarray(dist.epsilon_greedy(jax.random.key(6), q, eps))
    np.testing.assert_array_equal(a_row[::2], greedy[::2])
    assert np.mean(a_row[1::2] != greedy[1::2]) > 0.95


# ------------------------------------------------------------ the distribution value

def test_categorical_value_matches_closed_forms_and_samples():
    """`Categorical` (what policy heads return, what losses read) against closed forms,
    and its samples against its probabilities (4,000 draws per row)."""
    logits = jnp.log(jnp.array([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]]))
    d = dist.Categorical(logits)
    p = np.array([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]])
    np.testing.assert_allclose(d.log_prob(jnp.array([2, 1])), np.log([0.7, 0.25]), rtol=1e-6)
    np.testing.assert_allclose(d.entropy(), -(p * np.log(p)).sum(-1), rtol=1e-6)
    np.testing.assert_array_equal(d.mode(), [2, 0])
    draws = jax.vmap(d.sample)(jax.random.split(jax.random.key(0), 4000))   # [4000, 2]
    assert draws.dtype == jnp.int32 and draws.shape == (4000, 2)
    freq = np.stack([(np.asarray(draws) == a).mean(0) for a in range(3)], -1)
    # binomial standard error at n = 4000 is <= 0.008: 4 sigma
    np.testing.assert_allclose(freq, p, atol=0.032)


def test_categorical_is_a_pytree_through_jit_and_vmap():
    logits = jax.random.normal(jax.random.key(1), (5, 4))
    d = jax.jit(lambda l: dist.Categorical(l))(logits)
    assert isinstance(d, dist.Categorical)
    lp = jax.vmap(lambda dd, a: dd.log_prob(a))(d, jnp.arange(5) % 4)
    np.testing.assert_allclose(lp, dist.categorical_log_prob(logits, jnp.arange(5) % 4), rtol=1e-6)
