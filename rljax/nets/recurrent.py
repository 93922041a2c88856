"""Recurrent cores with a masked reset, over whole sequences.

A core maps `(carry [B, ...], x [T, B, F], first [T, B]) -> (carry, y [T, B, H])`.
Before step `t` reads `x[t]`, the carry is replaced by the initial (zero) carry
where `first[t]` is True, so a sequence may hold several episodes and no memory
leaks across their boundaries. The rollout calls the same core with `T = 1`; the
losses call it on the stored sequence from the stored `carry0`: one function,
so recomputed outputs match the acting ones.

For speed the input projections of all `T` steps are one matmul before the scan;
only the recurrent matmul runs per step (what dominates recurrent PPO on CPU).
The GRU's recurrence has a hand-written VJP (`gru_recurrence`) that keeps the
recurrent weight gradient out of the backward loop; the LSTM uses plain autodiff
of `masked_scan`.

`make_core` / `initial_carry` also serve the linear cores trained with a parallel
scan (`mingru`, `lru`, `s5`, `ffm` in `rljax.nets.linear_recurrent`), and stacks of any kind (`layers > 1`, `StackedCore`).
"""
from __future__ import annotations

from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp

from rljax.nets.initializers import orthogonal
from rljax.nets.linear_recurrent import FFM, LRU, S5, MinGRU


def _scan(body, carry, xs, *, unroll: int = 1, reverse: bool = False):
    """`lax.scan`, or one direct call when `T == 1` (the acting path: no loop at all)."""
    if jax.tree.leaves(xs)[0].shape[0] == 1:
        carry, y = body(carry, jax.tree.map(lambda a: a[0], xs))
        return carry, jax.tree.map(lambda a: a[None], y)
    return jax.lax.scan(body, carry, xs, unroll=unroll, reverse=reverse)


def masked_scan(step, carry, xs, first, *, unroll: int = 1):
    """`lax.scan` of `step(carry, x) -> (carry, y)` with the carry zeroed where `first`.

    Args:
      step: the cell, `(carry, x_t [B, ...]) -> (carry, y_t)`.
      carry: pytree of `[B, ...]` arrays.
      xs: pytree of `[T, B, ...]` arrays.
      first: `[T, B]` bool.
    """

    def body(c, inp):
        x, f = inp
        c = jax.tree.map(lambda h: jnp.where(f.reshape(f.shape + (1,) * (h.ndim - 1)), 0.0, h), c)
        return step(c, x)

    return _scan(body, carry, (xs, first), unroll=unroll)


def _gru_loop(w_h, b_h, h0, xi, first, unroll, save):
    """The forward loop; with `save`, also every step's `(r, z, n, hh_n)` for the VJP."""
    h_size = h0.shape[-1]

    def body(h, inp):
        xi_t, first_t = inp
        h_prev = jnp.where(first_t[:, None], 0.0, h)
        hh = h_prev @ w_h + b_h
        r = jax.nn.sigmoid(xi_t[:, :h_size] + hh[:, :h_size])
        z = jax.nn.sigmoid(xi_t[:, h_size:2 * h_size] + hh[:, h_size:2 * h_size])
        hh_n = hh[:, 2 * h_size:]
        n = jnp.tanh(xi_t[:, 2 * h_size:] + r * hh_n)
        h = (1.0 - z) * n + z * h_prev
        return h, ((h, (r, z, n, hh_n)) if save else h)

    return _scan(body, h0, (xi, first), unroll=unroll)


@partial(jax.custom_vjp, nondiff_argnums=(5,))
def gru_recurrence(w_h, b_h, h0, xi, first, unroll: int = 1):
    """The GRU recurrence over a sequence, with masked reset and a hand-written VJP.

    Per step: `h_prev = where(first_t, 0, h)`; `hh = h_prev @ w_h + b_h`;
    `r = sigmoid(xi_r + hh_r)`, `z = sigmoid(xi_z + hh_z)`,
    `n = tanh(xi_n + r * hh_n)`; `h_t = (1 - z) * n + z * h_prev`; `y_t = h_t`.

    Args:
      w_h: `[H, 3H]` recurrent kernel (gates r, z, n); b_h: `[3H]`.
      h0: `[B, H]`; xi: `[T, B, 3H]` input projections; first: `[T, B]` bool.
      unroll: `lax.scan` unroll of the forward and backward loops.
    Returns `(h_T [B, H], ys [T, B, H])`. `T == 1` runs without a loop.

    Why a custom VJP: autodiff of the `lax.scan` accumulates the weight gradient
    inside the backward loop, `dW_h += h_prev^T dhh_t` (an `[H, 3H]` outer product
    plus a read-modify-write of the `[H, 3H]` accumulator every step), and on CPU
    at small batch that is a large part of each sequential step. Here the forward
    loop saves the gates `(r, z, n, hh_n)`; the backward loop carries only `dh`
    and emits the per-step gate gradients `dhh_t [B, 3H]` (and `d n-argument`);
    after the loop `dW_h = h_prev^T dhh` is ONE GEMM over all `T * B` rows,
    `db_h` one sum, and `dxi` is returned whole (so the input Dense's gradient
    is one GEMM too). `first` gets no cotangent. Gradients equal autodiff of the
    plain scan to float rounding (tests/test_nets.py). Measured on CPU at
    H = 128, B = 1, T = 128 (fwd+bwd per sequential step): the core alone
    10.0 -> 6.6 CPU-us, a 128-128(GRU)-128 actor-critic 12.8 -> 10.1 CPU-us.
    """
    return _gru_loop(w_h, b_h, h0, xi, first, unroll, save=False)


def _gru_fwd(w_h, b_h, h0, xi, first, unroll):
    h_T, (ys, gates) = _gru_loop(w_h, b_h, h0, xi, first, unroll, save=True)
    h_prev = jnp.where(first[..., None], 0.0, jnp.concatenate([h0[None], ys[:-1]], axis=0))
    return (h_T, ys), (w_h, h_prev, first, gates)


def _gru_bwd(unroll, res, cts):
    w_h, h_prev, first, gates = res
    dh_T, dys = cts

    def body(dh, inp):
        dy, first_t, h_prev_t, (r, z, n, hh_n) = inp
        dh = dh + dy                               # total cotangent of h_t
        da_n = dh * (1.0 - z) * (1.0 - n * n)      # wrt the tanh argument
        da_r = da_n * hh_n * r * (1.0 - r)         # wrt the r sigmoid argument
        da_z = dh * (h_prev_t - n) * z * (1.0 - z)
        dhh = jnp.concatenate([da_r, da_z, da_n * r], axis=-1)
        dh_prev = dh * z + dhh @ w_h.T
        return jnp.where(first_t[:, None], 0.0, dh_prev), (dhh, da_n)

    dh0, (dhh, da_n) = _scan(body, dh_T, (dys, first, h_prev, gates), unroll=unroll, reverse=True)
    h_size = h_prev.shape[-1]
    dw_h = jnp.einsum("tbh,tbg->hg", h_prev, dhh)
    db_h = dhh.sum((0, 1))
    dxi = jnp.concatenate([dhh[..., :2 * h_size], da_n], axis=-1)
    return dw_h, db_h, dh0, dxi, None


gru_recurrence.defvjp(_gru_fwd, _gru_bwd)


class MaskedGRU(nn.Module):
    """GRU (Cho et al. 2014, the cuDNN/PyTorch variant) with masked reset.

    Carry: `h [B, H]`. The recurrence is `gru_recurrence`, whose hand-written VJP
    keeps the recurrent weight gradient out of the backward loop.
    """

    features: int
    unroll: int = 1    # fastest measured on CPU with the custom VJP (1 ~ 2 ~ 4 < 8)

    @nn.compact
    def __call__(self, carry, x, first):
        h_size = self.features
        xi = nn.Dense(3 * h_size, kernel_init=orthogonal(1.0), name="input")(x)
        w_h = self.param("w_h", orthogonal(1.0), (h_size, 3 * h_size))
        b_h = self.param("b_h", nn.initializers.zeros, (3 * h_size,))
        return gru_recurrence(w_h, b_h, carry, xi, first, self.unroll)

    def initial_carry(self, batch_size: int):
        return initial_carry("gru", self.features, batch_size)


class MaskedLSTM(nn.Module):
    """LSTM (Hochreiter & Schmidhuber 1997; forget-gate bias 1) with masked reset.

    Carry: `(c [B, H], h [B, H])`.
    """

    features: int
    unroll: int = 4    # fastest measured on CPU for the autodiff'd scan (4 ~ 8 < 2 < 1)

    @nn.compact
    def __call__(self, carry, x, first):
        h_size = self.features
        forget_bias = jnp.zeros(4 * h_size).at[h_size:2 * h_size].set(1.0)
        xi = nn.Dense(4 * h_size, kernel_init=orthogonal(1.0),
                      bias_init=lambda *_: forget_bias, name="input")(x)
        w_h = self.param("w_h", orthogonal(1.0), (h_size, 4 * h_size))

        def cell(ch, xi_t):
            c, h = ch
            gates = xi_t + h @ w_h
            i, f, g, o = jnp.split(gates, 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (c, h), h

        return masked_scan(cell, carry, xi, first, unroll=self.unroll)

    def initial_carry(self, batch_size: int):
        return initial_carry("lstm", self.features, batch_size)


CORES = {"gru": MaskedGRU, "lstm": MaskedLSTM, "mingru": MinGRU, "lru": LRU, "s5": S5, "ffm": FFM}
"""Core kinds accepted by `make_core` / `initial_carry` (and `Trunk(core=...)`)."""


def _check(kind: str, layers: int) -> None:
    if kind not in CORES:
        raise ValueError(f"unknown recurrent core {kind!r}; choose from {sorted(CORES)} or None")
    if int(layers) < 1:
        raise ValueError(f"core layers must be >= 1, got {layers}")


def _zero_carry(kind: str, features: int, batch_size: int):
    if kind == "gru":
        return jnp.zeros((batch_size, features), jnp.float32)
    if kind == "lstm":
        zeros = jnp.zeros((batch_size, features), jnp.float32)
        return (zeros, zeros)
    return CORES[kind].zero_carry(features, batch_size)


def initial_carry(kind: str | None, features: int, batch_size: int, layers: int = 1):
    """The zero carry of a core kind; `()` for None.

    One layer: `[B, H]` (gru, mingru), `(c, h)` (lstm), `[B, 2, N]` (lru, s5: re/im of
    the complex state), `[B, 2, m, c]` (ffm). `layers > 1`: a tuple of one such
    carry per layer, bottom layer first.
    """
    if kind is None:
        return ()
    _check(kind, layers)
    if layers == 1:
        return _zero_carry(kind, features, batch_size)
    return tuple(_zero_carry(kind, features, batch_size) for _ in range(layers))


def _single(kind: str, features: int, unroll: int | None, name: str | None = None) -> nn.Module:
    kwargs = {} if unroll is None else dict(unroll=unroll)
    return CORES[kind](features, name=name, **kwargs)


class StackedCore(nn.Module):
    """`layers` cores of one kind, each reading the previous one's outputs.

    Carry: a tuple with one carry per layer (bottom first); every layer applies the
    masked reset itself. Linear cores (mingru, lru, s5) are whole residual GLU
    blocks, so the nonlinearity between layers is theirs; ffm mixes through its
    output gate; gru/lstm are stacked plainly.
    """

    kind: str
    features: int
    layers: int
    unroll: int | None = None

    @nn.compact
    def __call__(self, carry, x, first):
        carries = []
        for i in range(self.layers):
            c, x = _single(self.kind, self.features, self.unroll, name=f"layer_{i}")(carry[i], x, first)
            carries.append(c)
        return tuple(carries), x

    def initial_carry(self, batch_size: int):
        return initial_carry(self.kind, self.features, batch_size, self.layers)


def make_core(kind: str, features: int, unroll: int | None = None, layers: int = 1) -> nn.Module:
    """A core by kind (see `CORES`); `unroll=None` keeps that core's own default.

    `layers > 1` gives a `StackedCore` whose carry is a tuple per layer; one layer
    is the plain core (same parameter tree as before layers existed).
    """
    _check(kind, layers)
    if layers == 1:
        return _single(kind, features, unroll)
    return StackedCore(kind, features, int(layers), unroll)
