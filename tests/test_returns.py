"""rljax.returns against numpy loops written from each estimator's equation."""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import returns

VARIANTS = [pytest.param(lambda f: f, id="nojit"), pytest.param(jax.jit, id="jit")]
B, T, GAMMA = 5, 11, 0.9


def _batch(seed, *, truncations=True, consistent=False):
    """Random [B, T] fragments with terminations and truncations mixed in.

    consistent=True makes v_t[t] == v_tm1[t+1] except at episode ends, as in a
    real rollout (where v_t is V(final_obs) at truncations, arbitrary at terminations).
    """
    rng = np.random.default_rng(seed)
    r, v_tm1, v_t, log_rho = rng.normal(size=(4, B, T)).astype(np.float32)
    terminated = rng.random((B, T)) < 0.15
    truncated = (rng.random((B, T)) < 0.15) & ~terminated if truncations else np.zeros((B, T), bool)
    if consistent:
        v_next = np.concatenate([v_tm1[:, 1:], rng.normal(size=(B, 1))], axis=1)
        v_t = np.where(terminated | truncated, v_t, v_next).astype(np.float32)
    discount = (GAMMA * ~terminated).astype(np.float32)
    return dict(r=r, discount=discount, v_tm1=v_tm1, v_t=v_t, log_rho=0.5 * log_rho,
                terminated=terminated, truncated=truncated)


# ----------------------------------------------------------------- references

def _discounted_ref(r, discount, v_t, truncated, log_rho, c_bar):
    n = len(r)
    out, g = np.zeros(n), 0.0
    for t in reversed(range(n)):
        cut = t == n - 1 or truncated[t]
        rho_next = 1.0 if t == n - 1 else min(np.exp(log_rho[t + 1]), c_bar)
        g = r[t] + discount[t] * (v_t[t] if cut else rho_next * g)
        out[t] = g
    return out


def _n_step_ref(r, discount, v_t, truncated, n):
    length = len(r)
    out = np.zeros(length)
    for t in range(length):
        m = min(n, length - t)
        for j in range(t, t + m):
            if truncated[j]:
                m = j - t + 1
                break
        g, scale = 0.0, 1.0
        for k in range(m):
            g += scale * r[t + k]
            scale *= discount[t + k]
        out[t] = g + scale * v_t[t + m - 1]
    return out


def _lambda_ref(r, discount, v_t, lam):
    n = len(r)
    lam = np.broadcast_to(lam, (n,))
    out = np.zeros(n)
    out[-1] = r[-1] + discount[-1] * v_t[-1]
    for t in reversed(range(n - 1)):
        out[t] = r[t] + discount[t] * ((1 - lam[t]) * v_t[t] + lam[t] * out[t + 1])
    return out


def _gae_ref(r, discount, v_tm1, v_t, lam):
    n = len(r)
    lam = np.broadcast_to(lam, (n,))
    adv, acc = np.zeros(n), 0.0
    for t in reversed(range(n)):
        acc = r[t] + discount[t] * v_t[t] - v_tm1[t] + discount[t] * lam[t] * acc
        adv[t] = acc
    return adv


def _vtrace_ref(v_tm1, v_t, r, discount, log_rho, lam, clip_rho, clip_c):
    """Espeholt et al. eq. (1) as an explicit sum over s >= t, plus the advantage."""
    n = len(r)
    lam = np.broadcast_to(lam, (n,))
    rho = np.exp(log_rho)
    rho_bar = np.minimum(clip_rho, rho)
    c = lam * np.minimum(clip_c, rho)
    delta = rho_bar * (r + discount * v_t - v_tm1)
    vs = np.zeros(n)
    for t in range(n):
        total, trace = 0.0, 1.0
        for s in range(t, n):
            total += trace * delta[s]
            trace *= discount[s] * c[s]
        vs[t] = v_tm1[t] + total
    adv = np.zeros(n)
    for t in range(n):
        vs_next = vs[t + 1] if t < n - 1 else v_t[t]
        q = r[t] + discount[t] * (lam[t] * vs_next + (1 - lam[t]) * v_t[t])
        adv[t] = rho_bar[t] * (q - v_tm1[t])
    return vs, adv


def _rows(fn, *arrays):
    return np.stack([fn(*row) for row in zip(*arrays)])


def _close(actual, expected):
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------- matches numpy reference

@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("weighted,c_bar", [(False, np.inf), (True, np.inf), (True, 1.2)])
def test_discounted_returns_matches_reference(variant, weighted, c_bar):
    d = _batch(0)
    log_rho = d["log_rho"] if weighted else np.zeros_like(d["r"])
    kwargs = dict(log_rho_t=log_rho) if weighted else {}
    fn = variant(jax.vmap(lambda r, disc, v, tr, **kw: returns.discounted_returns(
        r, disc, v, truncated_t=tr, c_bar=c_bar, **kw)))
    got = fn(d["r"], d["discount"], d["v_t"], d["truncated"], **kwargs)
    expected = _rows(lambda *a: _discounted_ref(*a, c_bar), d["r"], d["discount"], d["v_t"],
                     d["truncated"], log_rho)
    _close(got, expected)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("n", [1, 3, 20])
def test_n_step_returns_matches_reference(variant, n):
    d = _batch(1)
    fn = variant(jax.vmap(lambda r, disc, v, tr: returns.n_step_returns(
        r, disc, v, n=n, truncated_t=tr)))
    got = fn(d["r"], d["discount"], d["v_t"], d["truncated"])
    expected = _rows(lambda *a: _n_step_ref(*a, n), d["r"], d["discount"], d["v_t"], d["truncated"])
    _close(got, expected)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("lam", [0.0, 0.8, 1.0, "cut"])
def test_lambda_returns_matches_reference(variant, lam):
    d = _batch(2)
    lam_bt = 0.8 * (1 - d["truncated"]).astype(np.float32) if lam == "cut" else np.full((B, T), lam, np.float32)
    if lam == "cut":   # the trace is cut at truncations through `truncated_t`
        fn = jax.vmap(lambda r, disc, v, tr: returns.lambda_returns(r, disc, v, lambda_=0.8,
                                                                    truncated_t=tr))
        got = variant(fn)(d["r"], d["discount"], d["v_t"], d["truncated"])
    else:
        fn = jax.vmap(partial(returns.lambda_returns, lambda_=lam))
        got = variant(fn)(d["r"], d["discount"], d["v_t"])
    _close(got, _rows(_lambda_ref, d["r"], d["discount"], d["v_t"], lam_bt))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("lam", [0.0, 0.95, 1.0, "cut"])
def test_gae_matches_reference(variant, lam):
    d = _batch(3)
    lam_bt = 0.95 * (1 - d["truncated"]).astype(np.float32) if lam == "cut" else np.full((B, T), lam, np.float32)
    lam_arg = 0.95 if lam == "cut" else lam
    fn = jax.vmap(lambda r, disc, vm, v, tr: returns.generalized_advantage(
        r, disc, vm, v, lambda_=lam_arg, truncated_t=tr if lam == "cut" else None))
    got = variant(fn)(d["r"], d["discount"], d["v_tm1"], d["v_t"], d["truncated"])
    _close(got, _rows(_gae_ref, d["r"], d["discount"], d["v_tm1"], d["v_t"], lam_bt))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("lam,clip_rho,clip_c", [(1.0, 1.0, 1.0), (0.9, 2.0, 1.0), ("cut", 1.0, 0.5)])
def test_vtrace_matches_reference(variant, lam, clip_rho, clip_c):
    d = _batch(4)
    lam_bt = 0.9 * (1 - d["truncated"]).astype(np.float32) if lam == "cut" else np.full((B, T), lam, np.float32)
    lam_arg = 0.9 if lam == "cut" else lam
    fn = jax.vmap(lambda vm, v, r, disc, lr, tr: returns.vtrace(
        vm, v, r, disc, lr, lambda_=lam_arg, clip_rho=clip_rho, clip_c=clip_c,
        truncated_t=tr if lam == "cut" else None))
    vs, adv = variant(fn)(d["v_tm1"], d["v_t"], d["r"], d["discount"], d["log_rho"], d["truncated"])
    ref = [_vtrace_ref(*a, clip_rho, clip_c) for a in
           zip(d["v_tm1"], d["v_t"], d["r"], d["discount"], d["log_rho"], lam_bt)]
    _close(vs, np.stack([x[0] for x in ref]))
    _close(adv, np.stack([x[1] for x in ref]))


def test_single_trajectory_equals_vmapped_row():
    d = _batch(5)
    batched = jax.vmap(partial(returns.generalized_advantage, lambda_=0.9))(
        d["r"], d["discount"], d["v_tm1"], d["v_t"])
    single = returns.generalized_advantage(d["r"][2], d["discount"][2], d["v_tm1"][2],
                                           d["v_t"][2], lambda_=0.9)
    _close(single, np.asarray(batched[2]))


# ------------------------------------------------------------------ properties

def test_gae_lambda_one_equals_lambda_returns_minus_values():
    d = _batch(6, consistent=True)
    tr = d["truncated"]                            # λ = 1, cut at time limits
    gae = jax.vmap(lambda *a: returns.generalized_advantage(*a[:4], lambda_=1.0, truncated_t=a[4]))(
        d["r"], d["discount"], d["v_tm1"], d["v_t"], tr)
    lr = jax.vmap(lambda *a: returns.lambda_returns(*a[:3], lambda_=1.0, truncated_t=a[3]))(
        d["r"], d["discount"], d["v_t"], tr)
    _close(gae, np.asarray(lr) - d["v_tm1"])


@pytest.mark.parametrize("truncations", [False, True])
def test_n_step_with_large_n_equals_discounted_returns(truncations):
    d = _batch(7, truncations=truncations)
    n_step = jax.vmap(lambda r, disc, v, tr: returns.n_step_returns(r, disc, v, n=T + 3, truncated_t=tr))
    mc = jax.vmap(lambda r, disc, v, tr: returns.discounted_returns(r, disc, v, truncated_t=tr))
    args = (d["r"], d["discount"], d["v_t"], d["truncated"])
    _close(n_step(*args), np.asarray(mc(*args)))


def test_gae_cut_at_time_limit_equals_pieces():
    rng = np.random.default_rng(8)
    k = 4                                                  # truncation step
    r, v_tm1 = rng.normal(size=(2, T)).astype(np.float32)
    v_final = np.float32(rng.normal())                     # V(final_obs) at step k
    v_t = np.concatenate([v_tm1[1:], rng.normal(size=1)]).astype(np.float32)
    v_t[k] = v_final
    discount = np.full(T, GAMMA, np.float32)
    truncated = np.arange(T) == k
    whole = returns.generalized_advantage(r, discount, v_tm1, v_t, lambda_=0.95, truncated_t=truncated)
    first = returns.generalized_advantage(r[:k + 1], discount[:k + 1], v_tm1[:k + 1],
                                          v_t[:k + 1], lambda_=0.95)
    second = returns.generalized_advantage(r[k + 1:], discount[k + 1:], v_tm1[k + 1:],
                                           v_t[k + 1:], lambda_=0.95)
    assert first[-1] == pytest.approx(r[k] + GAMMA * v_final - v_tm1[k], rel=1e-6)
    _close(whole, np.concatenate([first, second]))


def _all_estimators(d, v_t):
    tr = d["truncated"]
    row = lambda f: jax.vmap(f)
    return {
        "discounted": row(lambda r, disc, v, tr, lr: returns.discounted_returns(
            r, disc, v, truncated_t=tr, log_rho_t=lr))(d["r"], d["discount"], v_t, d["truncated"], d["log_rho"]),
        "n_step": row(lambda r, disc, v, tr: returns.n_step_returns(r, disc, v, n=3, truncated_t=tr))(
            d["r"], d["discount"], v_t, d["truncated"]),
        "lambda": row(lambda r, disc, v, t: returns.lambda_returns(
            r, disc, v, lambda_=0.9, truncated_t=t))(d["r"], d["discount"], v_t, tr),
        "gae": row(lambda r, disc, vm, v, t: returns.generalized_advantage(
            r, disc, vm, v, lambda_=0.9, truncated_t=t))(d["r"], d["discount"], d["v_tm1"], v_t, tr),
        "vtrace": row(lambda vm, v, r, disc, lr, t: returns.vtrace(
            vm, v, r, disc, lr, lambda_=0.9, truncated_t=t))(
            d["v_tm1"], v_t, d["r"], d["discount"], d["log_rho"], tr),
    }


def test_termination_bootstraps_nothing():
    d = _batch(9)
    assert d["terminated"].any()
    before = _all_estimators(d, d["v_t"])
    perturbed = np.where(d["terminated"], d["v_t"] + 100.0, d["v_t"]).astype(np.float32)
    after = _all_estimators(d, perturbed)
    for name in before:
        for x, y in zip(jax.tree.leaves(before[name]), jax.tree.leaves(after[name])):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=name)


def test_discounted_returns_reads_v_t_only_at_cuts():
    d = _batch(10)
    cut = d["truncated"].copy()
    cut[:, -1] = True
    v_nan = np.where(cut, d["v_t"], np.nan).astype(np.float32)
    fn = jax.vmap(lambda r, disc, v, tr: returns.discounted_returns(r, disc, v, truncated_t=tr))
    got = fn(d["r"], d["discount"], v_nan, d["truncated"])
    assert np.isfinite(np.asarray(got)).all()
    _close(got, np.asarray(fn(d["r"], d["discount"], d["v_t"], d["truncated"])))


def test_vtrace_on_policy_reduces_to_lambda_returns():
    d = _batch(11, consistent=True)
    vs, adv = jax.vmap(lambda vm, v, r, disc, t: returns.vtrace(
        vm, v, r, disc, jnp.zeros_like(r), lambda_=0.9, truncated_t=t))(
        d["v_tm1"], d["v_t"], d["r"], d["discount"], d["truncated"])
    lr = jax.vmap(lambda r, disc, v, t: returns.lambda_returns(r, disc, v, lambda_=0.9, truncated_t=t))(
        d["r"], d["discount"], d["v_t"], d["truncated"])
    _close(vs, np.asarray(lr))
    _close(adv, np.asarray(lr) - d["v_tm1"])


def test_n_step_one_is_td_target():
    d = _batch(12)
    got = jax.vmap(partial(returns.n_step_returns, n=1))(d["r"], d["discount"], d["v_t"])
    _close(got, d["r"] + d["discount"] * d["v_t"])


def test_rejects_bad_shapes():
    x = jnp.zeros(5)
    with pytest.raises(AssertionError):
        returns.generalized_advantage(x, x, x, jnp.zeros(4))
    with pytest.raises(AssertionError):
        returns.lambda_returns(jnp.zeros((2, 5)), jnp.zeros((2, 5)), jnp.zeros((2, 5)))
    with pytest.raises(ValueError):
        returns.n_step_returns(x, x, x, n=0)


# ----------------------------------------------------- Q(lambda) (PQN)

def _q_lambda_ref(r, terminated, truncated, q_next, gamma, lam):
    """purejaxql's backward loop, written with termination and truncation apart."""
    n = len(r)
    out = np.zeros(n)
    g_next = None
    for t in reversed(range(n)):
        v = q_next[t].max()
        discount = gamma * (1.0 - terminated[t])
        if t == n - 1 or truncated[t]:       # fragment end / time limit: bootstrap only
            out[t] = r[t] + discount * v
        else:
            out[t] = r[t] + discount * (v + lam * (g_next - v))
        g_next = out[t]
    return out


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("lam", [0.0, 0.65, 1.0])
def test_q_lambda_matches_reference(variant, lam):
    d = _batch(7)
    q_next = np.random.default_rng(7).normal(size=(B, T, 3)).astype(np.float32)
    fn = variant(jax.vmap(lambda r, disc, q, tr: returns.q_lambda(r, disc, q, lambda_=lam,
                                                                   truncated_t=tr)))
    got = fn(d["r"], d["discount"], q_next, d["truncated"])
    expected = np.stack([_q_lambda_ref(r, te, tr, q, GAMMA, lam) for r, te, tr, q in
                         zip(d["r"], d["terminated"], d["truncated"], q_next)])
    _close(got, expected)
    # the max can be taken by the caller: [T] greedy successor values give the same
    _close(jax.vmap(lambda r, disc, v, tr: returns.q_lambda(r, disc, v, lambda_=lam,
                                                            truncated_t=tr))(
        d["r"], d["discount"], q_next.max(-1), d["truncated"]), expected)
    # and they are the lambda-returns of the greedy values
    _close(got, jax.vmap(lambda r, disc, v, tr: returns.lambda_returns(
        r, disc, v, lambda_=lam, truncated_t=tr))(d["r"], d["discount"], q_next.max(-1),
                                                  d["truncated"]))
