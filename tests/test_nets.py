"""Masked recurrent cores, the networks built on them, and the QR-free orthogonal init."""
import functools
import os
import subprocess
import sys
import textwrap
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import nets

T, B, F, H = 9, 3, 5, 8
# Episode starts differ per batch column; column 0 continues from carry0 at t = 0.
FIRST = np.zeros((T, B), bool)
FIRST[[3, 7], 0] = True
FIRST[[0, 2, 3, 8], 1] = True
FIRST[[0, 5], 2] = True


def _inputs(seed=0):
    """numpy inputs: slicing them in Python loops compiles nothing."""
    x = np.random.default_rng(seed).normal(size=(T, B, F)).astype(np.float32)
    return x, FIRST.copy()


def _random_carry(carry, seed=1):
    """A nonzero carry shaped like `carry`, so "continue from carry0" is visible."""
    leaves, treedef = jax.tree.flatten(carry)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    return treedef.unflatten([np.asarray(jax.random.normal(k, l.shape)) for k, l in zip(keys, leaves)])


def _column(tree, b):
    """Batch column `b` of a carry `[B, ...]`, kept as a batch of one."""
    return jax.tree.map(lambda a: a[b:b + 1], tree)


# Each case: a module mapping (carry, x [T, B, F], first [T, B]) -> (carry, outputs
# [T, B, ...]), with `initial_carry(batch_size)`.
def _cases():
    trunk = lambda core: nets.Trunk(hidden_sizes=(16,), core=core, core_size=H, head_sizes=(8,),
                                    unroll=1)   # unroll=1: cheaper to compile
    return {
        "gru": nets.MaskedGRU(H),
        "lstm": nets.MaskedLSTM(H),
        "ac-gru": nets.ActorCritic(3, trunk("gru")),                # separate actor/critic
        "ac-lstm-shared": nets.ActorCritic(3, trunk("lstm"), shared=True),
    }


CASES = list(_cases())
close = partial(np.testing.assert_allclose, rtol=1e-6, atol=1e-6)


@functools.lru_cache(maxsize=None)
def _setup(name):
    """The net, its params, a nonzero carry0, inputs, and jitted apply (shared by tests)."""
    net = _cases()[name]
    x, first = _inputs()
    carry0 = _random_carry(net.initial_carry(B))
    params = jax.jit(net.init)(jax.random.key(0), carry0, x, first)
    return net, params, carry0, x, first, jax.jit(net.apply)


@pytest.mark.parametrize("name", CASES)
def test_sequence_with_resets_equals_each_episode_run_alone(name):
    net, params, carry0, x, first, apply = _setup(name)
    carry_T, out = jax.device_get(apply(params, carry0, x, first))
    no_reset = np.zeros((1, 1), bool)
    for b in range(B):
        # Reference: a Python loop over the episodes of column b, one step at a time,
        # never using the mask: the piece before the first reset continues from
        # carry0, every episode after a reset starts from the zero carry.
        carry = _column(carry0, b)
        zero = jax.device_get(net.initial_carry(1))
        for t in range(T):
            if FIRST[t, b]:
                carry = zero
            carry, piece = apply(params, carry, x[t:t + 1, b:b + 1], no_reset)
            jax.tree.map(lambda a, p: close(a[t:t + 1, b:b + 1], p), out, piece)
        jax.tree.map(lambda a, c: close(a[b:b + 1], c), carry_T, carry)


@pytest.mark.parametrize("name", CASES)
def test_step_by_step_equals_sequence(name):
    """The acting path (T = 1 calls, carry passed by hand) equals one scan over T."""
    net, params, carry0, x, first, apply = _setup(name)
    seq_carry, seq_out = jax.device_get(apply(params, carry0, x, first))
    carry, outs = carry0, []
    for t in range(T):
        carry, out = apply(params, carry, x[t:t + 1], first[t:t + 1])
        outs.append(out)
    step_out = jax.tree.map(lambda *o: np.concatenate(o, axis=0), *outs)
    jax.tree.map(close, seq_out, step_out)
    jax.tree.map(close, seq_carry, carry)


@pytest.mark.parametrize("name", ["gru", "lstm", "ac-gru"])
def test_no_gradient_flows_across_a_reset(name):
    net, params, carry0, x, first, _ = _setup(name)

    @jax.jit
    def grads(weights):
        """d sum(weights * outputs) / d(x, carry0), `weights` [T, B]."""
        def f(x, carry0):
            _, out = net.apply(params, carry0, x, first)
            return sum(jnp.sum(weights.reshape(T, B, *(1,) * (o.ndim - 2)) * o)
                       for o in jax.tree.leaves(out))
        return jax.grad(f, argnums=(0, 1))(x, carry0)

    b, reset = 0, 3   # column 0 resets at t = 3 (and 7)
    after = np.zeros((T, B), np.float32)
    after[reset:, b] = 1.0
    g_x, _ = grads(after)
    np.testing.assert_array_equal(g_x[:reset, b], 0.0)
    # ... while within an episode the gradient does flow back in time,
    within = np.zeros((T, B), np.float32)
    within[reset + 2, b] = 1.0
    g_x, _ = grads(within)
    assert np.abs(g_x[reset, b]).sum() > 0
    # and carry0 gets no gradient through a column that resets at t = 0.
    col1 = np.zeros((T, B), np.float32)
    col1[:, 1] = 1.0
    _, g_carry = grads(col1)
    for leaf in jax.tree.leaves(g_carry):
        np.testing.assert_array_equal(leaf[1], 0.0)


def test_initial_carry_shapes_and_feedforward_carry():
    assert nets.initial_carry(None, H, B) == ()
    assert nets.initial_carry("gru", H, B).shape == (B, H)
    c, h = nets.initial_carry("lstm", H, B)
    assert c.shape == h.shape == (B, H)
    with pytest.raises(ValueError, match="unknown recurrent core 'rnn'"):
        nets.initial_carry("rnn", H, B)
    # A feedforward actor-critic (separate or shared trunks) has carry ().
    for shared in (False, True):
        net = nets.ActorCritic(2, nets.Trunk(hidden_sizes=(8,)), shared=shared)
        assert net.initial_carry(B) == ()
        x, first = _inputs()
        params = jax.jit(net.init)(jax.random.key(0), (), x, first)
        carry, (dist, value) = jax.jit(net.apply)(params, (), x, first)
        logits = dist.logits
        assert carry == () and logits.shape == (T, B, 2) and value.shape == (T, B)


# --------------------------------------------------------------------------- orthogonal init
@pytest.mark.parametrize("shape, scale", [
    ((64, 16), 1.0), ((16, 64), 0.01), ((8, 8), np.sqrt(2.0)), ((3, 3, 4, 8), 1.0), ((2, 3, 40), 2.0),
], ids=["tall", "wide", "square", "conv-tall", "3d-wide"])
def test_orthogonal_is_orthonormal_times_scale(shape, scale):
    w = nets.orthogonal(scale)(jax.random.key(3), shape)
    assert w.shape == shape and w.dtype == jnp.float32
    w = np.asarray(w, np.float64)
    m = w.reshape(-1, shape[-1]) / scale
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    np.testing.assert_allclose(gram, np.eye(len(gram)), atol=2e-5)


def test_orthogonal_dtype_keys_and_errors():
    init = nets.orthogonal()
    w = init(jax.random.key(0), (6, 4), jnp.bfloat16)
    assert w.dtype == jnp.bfloat16
    a, b = init(jax.random.key(0), (6, 4)), init(jax.random.key(1), (6, 4))
    np.testing.assert_array_equal(a, init(jax.random.key(0), (6, 4)))
    assert not np.allclose(a, b)
    with pytest.raises(ValueError, match="needs a matrix"):
        init(jax.random.key(0), (5,))


_VMAPPED_INIT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from rljax import agents, nets
    assert jax.device_count() == 4, jax.devices()
    net = nets.ActorCritic(2, nets.Trunk(hidden_sizes=(16,), core="gru", core_size=16), shared=True)
    init = agents.actor_critic(net).init
    obs = jnp.zeros(4)
    keys = jax.random.split(jax.random.key(0), 4)
    batched = jax.jit(jax.vmap(init, in_axes=(0, None)))(keys, obs)
    mesh = Mesh(np.array(jax.devices()), ("d",))
    sharded_keys = jax.device_put(keys, NamedSharding(mesh, P("d")))
    sharded = jax.jit(jax.vmap(init, in_axes=(0, None)))(sharded_keys, obs)
    single = jax.jit(init)
    for i in range(4):
        one = single(keys[i], obs)
        for tree in (batched, sharded):
            jax.tree.map(lambda a, b: np.testing.assert_allclose(a[i], b, atol=1e-5), tree, one)
    print("ok")
""")


def test_vmapped_and_sharded_init_completes_without_deadlock():
    """DESIGN.md pitfall: QR-based orthogonal init hung in jit(vmap(init)) on CPU.

    Runs in a subprocess with a timeout so a hang fails loudly instead of stalling
    the suite."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "JAX_PLATFORMS": "cpu"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        proc = subprocess.run([sys.executable, "-c", _VMAPPED_INIT], cwd=root, env=env,
                              capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("jit(vmap(network.init)) over 4 keys hung for 120 s (LAPACK deadlock?)")
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


# --------------------------------------------------------------------------- GRU custom VJP
def _gru_reference(w_h, b_h, h0, xi, first, unroll=1):
    """The plain `lax.scan` GRU (what jax autodiff differentiates), for `gru_recurrence`."""
    h_size = h0.shape[-1]

    def body(h, inp):
        xi_t, f = inp
        h = jnp.where(f[:, None], 0.0, h)
        hh = h @ w_h + b_h
        r = jax.nn.sigmoid(xi_t[:, :h_size] + hh[:, :h_size])
        z = jax.nn.sigmoid(xi_t[:, h_size:2 * h_size] + hh[:, h_size:2 * h_size])
        n = jnp.tanh(xi_t[:, 2 * h_size:] + r * hh[:, 2 * h_size:])
        h = (1.0 - z) * n + z * h
        return h, h

    return jax.lax.scan(body, h0, (xi, first), unroll=unroll)


def _gru_args(t_len, batch=3, h_size=6, seed=0):
    rng = np.random.default_rng(seed)
    w_h = rng.normal(size=(h_size, 3 * h_size)).astype(np.float32) / np.sqrt(h_size)
    b_h = rng.normal(size=3 * h_size).astype(np.float32) * 0.3
    h0 = rng.normal(size=(batch, h_size)).astype(np.float32)
    xi = rng.normal(size=(t_len, batch, 3 * h_size)).astype(np.float32)
    first = np.zeros((t_len, batch), bool)
    if t_len == 1:
        first[0, 1] = True                      # column 1 resets, the others continue
    else:                                       # mid-sequence resets, different per column
        first[[2, 5], 0] = True
        first[[0, 3], 1] = True
        first[t_len - 1, 2] = True
    # cotangent weights for a scalar function of (h_T, ys)
    w_ys = rng.normal(size=(t_len, batch, h_size)).astype(np.float32)
    w_hT = rng.normal(size=(batch, h_size)).astype(np.float32)
    return (w_h, b_h, h0, xi, first), (w_ys, w_hT)


def _gru_loss(fn, first, w_ys, w_hT, unroll):
    def loss(w_h, b_h, h0, xi):
        h_T, ys = fn(w_h, b_h, h0, xi, first, unroll)
        return jnp.sum(w_ys * jnp.tanh(ys)) + jnp.sum(w_hT * h_T)
    return loss


@pytest.mark.parametrize("t_len, unroll", [(1, 1), (7, 1), (7, 2)])
def test_gru_custom_vjp_equals_autodiff_of_the_scan(t_len, unroll):
    (w_h, b_h, h0, xi, first), (w_ys, w_hT) = _gru_args(t_len)
    for wrap in (lambda f: f, jax.jit):
        out = wrap(partial(nets.gru_recurrence, unroll=unroll))(w_h, b_h, h0, xi, first)
        ref = _gru_reference(w_h, b_h, h0, xi, first)
        jax.tree.map(partial(np.testing.assert_allclose, rtol=1e-6, atol=1e-6), out, ref)
        grads = [wrap(jax.grad(_gru_loss(fn, first, w_ys, w_hT, unroll), argnums=(0, 1, 2, 3)))(
            w_h, b_h, h0, xi) for fn in (nets.gru_recurrence, _gru_reference)]
        for g, g_ref, name in zip(*grads, ["w_h", "b_h", "h0", "xi"]):
            np.testing.assert_allclose(g, g_ref, rtol=1e-5, atol=1e-6, err_msg=name)
    # the resets cut the gradient: column 1 resets at t = 0, so h0[1] gets none
    assert np.all(np.asarray(grads[0][2])[1] == 0.0)


@pytest.mark.parametrize("t_len", [1, 7])
def test_gru_custom_vjp_under_vmap(t_len):
    """Per-example gradients (weights shared, sequences batched) and the gradient
    of a vmapped loss (the cotangent of the shared weights sums over the batch)."""
    n_seq = 2
    args = [_gru_args(t_len, seed=s) for s in range(n_seq)]
    w_h, b_h = args[0][0][:2]
    stack = lambda get: np.stack([get(a) for a in args])
    h0, xi, first = (stack(lambda a, i=i: a[0][i]) for i in (2, 3, 4))
    w_ys, w_hT = (stack(lambda a, i=i: a[1][i]) for i in (0, 1))

    def per_example(fn):
        def g(w_h, b_h, h0, xi, first, w_ys, w_hT):
            return jax.grad(_gru_loss(fn, first, w_ys, w_hT, 1), argnums=(0, 1, 2, 3))(w_h, b_h, h0, xi)
        return jax.jit(jax.vmap(g, in_axes=(None, None, 0, 0, 0, 0, 0)))

    def summed(fn):
        def total(w_h, b_h, h0, xi):
            each = jax.vmap(lambda h0, xi, first, w_ys, w_hT: _gru_loss(fn, first, w_ys, w_hT, 1)(
                w_h, b_h, h0, xi))(h0, xi, first, w_ys, w_hT)
            return each.sum()
        return jax.jit(jax.grad(total, argnums=(0, 1, 2, 3)))

    for make in (per_example, summed):
        a = make(nets.gru_recurrence)
        b = make(_gru_reference)
        call = (lambda f: f(w_h, b_h, h0, xi, first, w_ys, w_hT)) if make is per_example \
            else (lambda f: f(w_h, b_h, h0, xi))
        for g, g_ref, name in zip(call(a), call(b), ["w_h", "b_h", "h0", "xi"]):
            np.testing.assert_allclose(g, g_ref, rtol=1e-5, atol=1e-6, err_msg=f"{make.__name__} {name}")
