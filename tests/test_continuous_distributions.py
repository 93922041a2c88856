"""Gaussian and tanh-Gaussian distributions: closed forms, sampling, change of variables."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.distributions import Gaussian, TanhGaussian


def _np_gauss_logp(mean, log_std, x):
    std = np.exp(log_std)
    return np.sum(-0.5 * ((x - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi), -1)


def test_gaussian_log_prob_entropy_mode_closed_forms():
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(4, 3)).astype(np.float32)
    log_std = rng.normal(size=(4, 3)).astype(np.float32) * 0.5
    x = rng.normal(size=(4, 3)).astype(np.float32)
    d = Gaussian(jnp.asarray(mean), jnp.asarray(log_std))
    np.testing.assert_allclose(d.log_prob(x), _np_gauss_logp(mean, log_std, x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(d.entropy(), np.sum(log_std + 0.5 * np.log(2 * np.pi * np.e), -1),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(d.mode(), mean)


def test_gaussian_sampling_matches_moments_and_entropy():
    mean, log_std = jnp.array([0.5, -1.0]), jnp.array([0.0, -0.7])
    d = Gaussian(jnp.broadcast_to(mean, (200_000, 2)), jnp.broadcast_to(log_std, (200_000, 2)))
    x = d.sample(jax.random.key(0))
    np.testing.assert_allclose(x.mean(0), mean, atol=0.01)
    np.testing.assert_allclose(x.std(0), jnp.exp(log_std), rtol=0.01)
    np.testing.assert_allclose(-d.log_prob(x).mean(), d.entropy()[0], rtol=5e-3)


def _tanh(mean=(0.3, -0.8), log_std=(-0.5, 0.2), low=(-2.0, -1.0), high=(2.0, 3.0), n=()):
    arr = lambda v: jnp.broadcast_to(jnp.asarray(v, jnp.float32), (*n, len(mean)))
    return TanhGaussian(arr(mean), arr(log_std), arr(low), arr(high))


def test_tanh_log_prob_closed_form_and_bounds():
    d = _tanh(n=(1000,))
    a, logp = d.sample_and_log_prob(jax.random.key(1))
    low, high = np.asarray(d.low), np.asarray(d.high)
    assert np.all(a >= low) and np.all(a <= high)
    # closed form by hand: u = atanh((a - c)/h), log N(u) - Σ log(h (1 - tanh²u))
    c, h = (high + low) / 2, (high - low) / 2
    u = np.arctanh(np.clip((np.asarray(a, np.float64) - c) / h, -1 + 1e-12, 1 - 1e-12))
    ref = _np_gauss_logp(np.asarray(d.mean), np.asarray(d.log_std), u) - np.sum(
        np.log(h * (1 - np.tanh(u) ** 2)), -1)
    ok = np.all(np.abs(u) < 4, -1)                   # away from float32 saturation
    np.testing.assert_allclose(np.asarray(logp)[ok], ref[ok], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(np.asarray(d.log_prob(a))[ok], ref[ok], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(d.mode()[0], c[0] + h[0] * np.tanh(np.asarray(d.mean)[0]), rtol=1e-6)


def test_tanh_correction_matches_finite_difference_change_of_variables():
    # 1-D: p_a(a) = p_u(u) / |da/du|, da/du by central differences of the squash
    d = TanhGaussian(jnp.array([[0.4]]), jnp.array([[-0.3]]), jnp.array([[-2.0]]), jnp.array([[2.0]]))
    squash = lambda u: 2.0 * np.tanh(u)
    for u in (-2.0, -0.5, 0.0, 0.7, 1.9):
        eps = 1e-5
        dadu = (squash(u + eps) - squash(u - eps)) / (2 * eps)
        expected = _np_gauss_logp(np.array([0.4]), np.array([-0.3]), np.array([u])) - np.log(dadu)
        np.testing.assert_allclose(d.log_prob(jnp.array([[squash(u)]], jnp.float32))[0], expected,
                                   rtol=1e-4, atol=1e-4)


def test_tanh_density_integrates_to_one():
    d = TanhGaussian(jnp.array([[0.4]]), jnp.array([[0.3]]), jnp.array([[-1.0]]), jnp.array([[1.0]]))
    a = np.linspace(-1 + 1e-4, 1 - 1e-4, 200_001, dtype=np.float32)
    density = np.exp(np.asarray(jax.vmap(lambda x: d.log_prob(x[None, None])[0])(a)))
    assert abs(np.trapezoid(density, a) - 1.0) < 2e-3


@pytest.mark.parametrize("log_std", [-1.5, 0.0, 0.8])
def test_tanh_entropy_matches_sampling(log_std):
    d = _tanh(log_std=(log_std, log_std - 0.5), n=(400_000,))
    _, logp = d.sample_and_log_prob(jax.random.key(2))
    mc = -float(np.mean(logp))
    stderr = float(np.std(logp)) / math.sqrt(len(logp))
    assert abs(float(d.entropy()[0]) - mc) < 5 * stderr + 1e-3
