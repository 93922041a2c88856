"""rljax.losses against numpy expressions written from each loss's equation."""
import jax
import numpy as np
import pytest

from rljax import losses
from rljax.distributions import Categorical

VARIANTS = [pytest.param(lambda f: f, id="nojit"), pytest.param(jax.jit, id="jit")]
SHAPES = [pytest.param((12,), id="N"), pytest.param((4, 3), id="TB")]
A = 4


def _np_log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _np_log_pi(logits, action):
    return np.take_along_axis(_np_log_softmax(logits), action[..., None], -1)[..., 0]


def _np_huber(x, delta):
    return np.where(np.abs(x) <= delta, 0.5 * x**2, delta * (np.abs(x) - 0.5 * delta))


def _data(shape, seed=0):
    rng = np.random.default_rng(seed)
    f = lambda *s: rng.normal(size=s).astype(np.float32)
    return dict(
        logits=f(*shape, A), action=rng.integers(0, A, size=shape).astype(np.int32),
        x=f(*shape), y=f(*shape), z=f(*shape),
        discount=(0.9 * (rng.random(shape) > 0.2)).astype(np.float32),
        q_tm1=f(*shape, A), q_t=f(*shape, A), q_t2=f(*shape, A),
    )


def _close(a, b, tol=1e-5):
    np.testing.assert_allclose(np.asarray(a), b, rtol=tol, atol=tol)


# ------------------------------------------------------------- policy losses

@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_policy_gradient_loss(variant, shape):
    d = _data(shape)
    fn = variant(lambda lg, adv: losses.policy_gradient_loss(
        Categorical(lg).log_prob(d["action"]), adv))
    loss, metrics = fn(d["logits"], d["x"])
    _close(loss, -np.mean(_np_log_pi(d["logits"], d["action"]) * d["x"]))
    assert metrics == {}
    g_adv = jax.grad(lambda a: fn(d["logits"], a)[0])(d["x"])
    np.testing.assert_array_equal(g_adv, 0.0)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("c_bar,baseline", [(1.0, True), (np.inf, False), (1.5, True)])
def test_importance_weighted_pg_loss(variant, shape, c_bar, baseline):
    d = _data(shape, seed=1)
    log_mu = _np_log_pi(d["logits"], d["action"]) + 0.7 * d["z"]   # behaviour differs
    b = d["y"] if baseline else None
    fn = variant(lambda lg, ret, lm, bl: losses.importance_weighted_pg_loss(
        Categorical(lg).log_prob(d["action"]), lm, ret, c_bar=c_bar, baseline=bl))
    loss, metrics = fn(d["logits"], d["x"], log_mu, b)
    log_pi = _np_log_pi(d["logits"], d["action"])
    rho_raw = np.exp(log_pi - log_mu)
    rho = np.minimum(rho_raw, c_bar)
    adv = d["x"] - (d["y"] if baseline else 0.0)
    _close(loss, -np.mean(rho * adv * log_pi))
    _close(metrics["rho_mean"], rho.mean())
    _close(metrics["rho_clip_frac"], np.mean(rho_raw > c_bar))
    # Weights and returns carry no gradient; the logits' gradient is that of
    # a plain policy gradient with advantage rho * (G - b) held constant.
    g_logits, g_ret, g_mu = jax.grad(lambda *a: fn(*a, b)[0], argnums=(0, 1, 2))(d["logits"], d["x"], log_mu)
    np.testing.assert_array_equal(g_ret, 0.0)
    np.testing.assert_array_equal(g_mu, 0.0)
    g_ref = jax.grad(lambda lg: losses.policy_gradient_loss(
        Categorical(lg).log_prob(d["action"]), rho * adv)[0])(d["logits"])
    _close(g_logits, np.asarray(g_ref))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_ppo_clip_loss(variant, shape):
    d = _data(shape, seed=2)
    eps = 0.2
    logp_old = d["y"]
    logp = logp_old + 0.3 * d["z"]
    loss, metrics = variant(lambda *a: losses.ppo_clip_loss(*a, clip_eps=eps))(logp, logp_old, d["x"])
    ratio = np.exp(logp - logp_old)
    surrogate = np.minimum(ratio * d["x"], np.clip(ratio, 1 - eps, 1 + eps) * d["x"])
    _close(loss, -np.mean(surrogate))
    _close(metrics["clip_frac"], np.mean(np.abs(ratio - 1) > eps))
    _close(metrics["approx_kl"], np.mean((ratio - 1) - np.log(ratio)))
    _close(metrics["ratio_mean"], ratio.mean())


def test_ppo_clip_gradient_zero_when_clipped_in_clipped_direction():
    eps = 0.2
    ratio = np.array([1.5, 0.5, 1.5, 0.5, 1.1, 0.9], np.float32)
    adv = np.array([1.0, -1.0, -2.0, 3.0, 0.5, -0.5], np.float32)
    logp_old = np.zeros(6, np.float32)
    grad = jax.grad(lambda lp: losses.ppo_clip_loss(lp, logp_old, adv, clip_eps=eps)[0])(np.log(ratio))
    # [0]: r > 1+ε, A > 0 and [1]: r < 1-ε, A < 0 are clipped: no gradient.
    # The others follow d/dlog r of -r·A/N = -r·A/N.
    expected = np.where([True, True, False, False, False, False], 0.0, -ratio * adv / 6)
    _close(grad, expected)
    g_old, g_adv = jax.grad(lambda lo, a: losses.ppo_clip_loss(np.log(ratio), lo, a, clip_eps=eps)[0],
                            argnums=(0, 1))(logp_old, adv)
    np.testing.assert_array_equal(g_old, 0.0)
    np.testing.assert_array_equal(g_adv, 0.0)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_entropy_loss(variant, shape):
    d = _data(shape, seed=3)
    loss, metrics = variant(lambda lg: losses.entropy_loss(Categorical(lg).entropy()))(d["logits"])
    log_p = _np_log_softmax(d["logits"])
    entropy = np.mean(-(np.exp(log_p) * log_p).sum(-1))
    _close(loss, -entropy)
    _close(metrics["entropy"], entropy)


# -------------------------------------------------------------- value losses

@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_value_losses(variant, shape):
    d = _data(shape, seed=4)
    v, target, v_old = 2 * d["x"], 2 * d["y"], 2 * d["z"]
    eps, delta = 0.5, 1.0
    _close(variant(losses.value_loss)(v, target)[0], 0.5 * np.mean((v - target) ** 2))
    v_clip = v_old + np.clip(v - v_old, -eps, eps)
    expected = 0.5 * np.mean(np.maximum((v - target) ** 2, (v_clip - target) ** 2))
    _close(variant(lambda *a: losses.clipped_value_loss(*a, clip_eps=eps))(v, v_old, target)[0], expected)
    _close(variant(lambda *a: losses.huber_value_loss(*a, delta=delta))(v, target)[0],
           np.mean(_np_huber(v - target, delta)))


@pytest.mark.parametrize("name", ["value", "clipped", "huber"])
def test_value_losses_stop_target_gradient(name):
    d = _data((8,), seed=5)
    fns = {
        "value": lambda v, t: losses.value_loss(v, t)[0],
        "clipped": lambda v, t: losses.clipped_value_loss(v, d["z"], t, clip_eps=0.2)[0],
        "huber": lambda v, t: losses.huber_value_loss(v, t, delta=0.5)[0],
    }
    g_v, g_t = jax.grad(fns[name], argnums=(0, 1))(3 * d["x"], 3 * d["y"])
    np.testing.assert_array_equal(g_t, 0.0)
    assert np.abs(np.asarray(g_v)).sum() > 0
    if name == "huber":   # linear beyond delta: gradient bounded by delta / N
        assert np.abs(np.asarray(g_v)).max() <= 0.5 / 8 + 1e-7


# ------------------------------------------------------------------ Q losses

def _np_q_loss(q_tm1, a, r, discount, q_boot, huber_delta):
    target = r + discount * q_boot
    td = target - np.take_along_axis(q_tm1, a[..., None], -1)[..., 0]
    per = 0.5 * td**2 if huber_delta is None else _np_huber(td, huber_delta)
    return per.mean(), np.abs(td).mean()


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("huber_delta", [None, 0.5])
def test_q_learning_loss(variant, shape, huber_delta):
    d = _data(shape, seed=6)
    fn = variant(lambda *a: losses.q_learning_loss(*a, huber_delta=huber_delta))
    loss, metrics = fn(d["q_tm1"], d["action"], d["x"], d["discount"], d["q_t"])
    exp_loss, exp_td = _np_q_loss(d["q_tm1"], d["action"], d["x"], d["discount"], d["q_t"].max(-1), huber_delta)
    _close(loss, exp_loss)
    _close(metrics["td_abs"], exp_td)
    _close(metrics["q_mean"], np.take_along_axis(d["q_tm1"], d["action"][..., None], -1).mean())


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("huber_delta", [None, 0.5])
def test_double_q_learning_loss(variant, shape, huber_delta):
    d = _data(shape, seed=7)
    q_value, q_selector = d["q_t"], d["q_t2"]
    best = q_selector.argmax(-1)
    assert np.any(best != q_value.argmax(-1))        # the two nets disagree somewhere
    fn = variant(lambda *a: losses.double_q_learning_loss(*a, huber_delta=huber_delta))
    loss, metrics = fn(d["q_tm1"], d["action"], d["x"], d["discount"], q_value, q_selector)
    q_boot = np.take_along_axis(q_value, best[..., None], -1)[..., 0]
    exp_loss, exp_td = _np_q_loss(d["q_tm1"], d["action"], d["x"], d["discount"], q_boot, huber_delta)
    _close(loss, exp_loss)
    _close(metrics["td_abs"], exp_td)


def test_q_losses_gradient_only_through_chosen_q_tm1():
    d = _data((10,), seed=8)
    g = jax.grad(lambda qm, qt: losses.q_learning_loss(qm, d["action"], d["x"], d["discount"], qt)[0],
                 argnums=(0, 1))(d["q_tm1"], d["q_t"])
    np.testing.assert_array_equal(g[1], 0.0)
    chosen = np.eye(A, dtype=bool)[d["action"]]
    np.testing.assert_array_equal(np.asarray(g[0])[~chosen], 0.0)
    g2 = jax.grad(lambda qv, qs: losses.double_q_learning_loss(
        d["q_tm1"], d["action"], d["x"], d["discount"], qv, qs)[0], argnums=(0, 1))(d["q_t"], d["q_t2"])
    np.testing.assert_array_equal(g2[0], 0.0)
    np.testing.assert_array_equal(g2[1], 0.0)


def test_losses_under_vmap():
    """A loss vmapped over an outer axis (e.g. sweep members) equals per-member calls."""
    d = _data((3, 6), seed=9)
    eps = 0.2
    batched = jax.vmap(lambda a, b, c: losses.ppo_clip_loss(a, b, c, clip_eps=eps)[0])(d["x"], d["y"], d["z"])
    single = [losses.ppo_clip_loss(d["x"][i], d["y"][i], d["z"][i], clip_eps=eps)[0] for i in range(3)]
    _close(batched, np.array(single))
