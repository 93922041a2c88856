"""Recurrent cores with a masked reset, over whole sequences.

A core maps `(carry [B, ...], x [T, B, F], first [T, B]) -> (carry, y [T, B, H])`.
Before step `t` reads `x[t]`, the carry is replaced by the initial (zero) carry
where `first[t]` is True, so a sequence may hold several episodes and no memory
leaks across their boundaries. The rollout calls the same core with `T = 1`; the
losses call it on the stored sequence from the stored `carry0`: one function,
so recomputed outputs match the acting ones.

For speed the input projections of all `T` steps are one matmul before the scan;
only the recurrent matmul runs per step (what dominates recurrent PPO on CPU).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from rljax.nets.initializers import orthogonal


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

    if first.shape[0] == 1:   # the acting path: no loop at all
        carry, y = body(carry, jax.tree.map(lambda a: a[0], (xs, first)))
        return carry, jax.tree.map(lambda a: a[None], y)
    return jax.lax.scan(body, carry, (xs, first), unroll=unroll)


class MaskedGRU(nn.Module):
    """GRU (Cho et al. 2014, the cuDNN/PyTorch variant) with masked reset.

    Carry: `h [B, H]`.
    """

    features: int
    unroll: int = 8

    @nn.compact
    def __call__(self, carry, x, first):
        h_size = self.features
        xi = nn.Dense(3 * h_size, kernel_init=orthogonal(1.0), name="input")(x)
        w_h = self.param("w_h", orthogonal(1.0), (h_size, 3 * h_size))
        b_h = self.param("b_h", nn.initializers.zeros, (3 * h_size,))

        def cell(h, xi_t):
            hh = h @ w_h + b_h
            r = jax.nn.sigmoid(xi_t[:, :h_size] + hh[:, :h_size])
            z = jax.nn.sigmoid(xi_t[:, h_size:2 * h_size] + hh[:, h_size:2 * h_size])
            n = jnp.tanh(xi_t[:, 2 * h_size:] + r * hh[:, 2 * h_size:])
            h = (1.0 - z) * n + z * h
            return h, h

        return masked_scan(cell, carry, xi, first, unroll=self.unroll)

    def initial_carry(self, batch_size: int):
        return initial_carry("gru", self.features, batch_size)


class MaskedLSTM(nn.Module):
    """LSTM (Hochreiter & Schmidhuber 1997; forget-gate bias 1) with masked reset.

    Carry: `(c [B, H], h [B, H])`.
    """

    features: int
    unroll: int = 8

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


CORES = {"gru": MaskedGRU, "lstm": MaskedLSTM}


def initial_carry(kind: str | None, features: int, batch_size: int):
    """The zero carry of a core kind, `[B, H]` (GRU) or `(c, h)` (LSTM); `()` for None."""
    if kind is None:
        return ()
    zeros = jnp.zeros((batch_size, features), jnp.float32)
    if kind == "gru":
        return zeros
    if kind == "lstm":
        return (zeros, zeros)
    raise ValueError(f"unknown recurrent core {kind!r}; choose from {sorted(CORES)} or None")


def make_core(kind: str, features: int, unroll: int = 8) -> nn.Module:
    try:
        return CORES[kind](features, unroll=unroll)
    except KeyError:
        raise ValueError(f"unknown recurrent core {kind!r}; choose from {sorted(CORES)} or None") from None
