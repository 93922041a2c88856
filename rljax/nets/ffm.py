"""Fast and Forgetful Memory (Morad et al., NeurIPS 2023), with masked reset.

FFM keeps an `m × c` complex "memory" `S` that decays element-wise with
learnt per-trace forgetting rates `α ∈ R^m` and per-context frequencies
`ω ∈ R^c`, so the whole sequence is one `linear_recurrence` (associative scan):

    x̃_t = (W_x x_t) ⊙ σ(W_i x_t)                           input, gated     [m]
    γ   = exp(-|α|) 1_cᵀ ⊙ exp(i 1_m ωᵀ)                    decay             [m, c]
    S_t = γ ⊙ S̃_{t-1} + x̃_t 1_cᵀ,   S̃_{t-1} = 0 where first_t else S_{t-1}
    z_t = W_z [Re S_t ; Im S_t]  (flattened)                                  [H]
    g_t = σ(W_o x_t)                                          output gate     [H]
    y_t = LayerNorm(z_t) ⊙ g_t + (W_s x_t) ⊙ (1 - g_t)

What we simplified against the paper: the sequence path is a generic associative
scan with the reset-carrying operator (`rljax.nets.linear_recurrent`), not the
paper's closed-form `γ^t` cumulative sums (same maths, `O(log T)` depth instead of
one `O(T)` pass); `α` is initialised so that the traces' e-folding times
`1/|α_j|` are geometric in `[1, max_horizon]` and `ω_k = π k / c`; no extra
input/output MLPs around the cell. Stacking layers chains cells directly (the
cell already mixes a skip path through its output gate).

Carry: `[B, 2, m, c]` real (re, im of `S`), `m = features // 4` (at least 1),
`c = 4`, so the memory holds `features` complex numbers like the LRU's state.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rljax.nets.linear_recurrent import linear_recurrence, to_complex, to_real

CONTEXT_SIZE = 4


def ffm_sizes(features: int) -> tuple[int, int]:
    """`(m, c)`: trace and context sizes of an FFM cell `features` wide."""
    return max(features // CONTEXT_SIZE, 1), CONTEXT_SIZE


class FFM(nn.Module):
    """The FFM cell (module docstring). `(carry [B, 2, m, c], x [T, B, F], first [T, B])
    -> (carry, y [T, B, H])`, `H = features`."""

    features: int
    max_horizon: float = 1024.0
    unroll: int = 1   # unused (parallel scan); accepted so make_core can pass it

    @nn.compact
    def __call__(self, carry, x, first):
        H = self.features
        m, c = ffm_sizes(H)
        dense = lambda n, name: nn.Dense(n, kernel_init=nn.initializers.lecun_normal(), name=name)
        alpha = self.param(
            "alpha", lambda *_: jnp.asarray(1.0 / np.geomspace(1.0, self.max_horizon, m), jnp.float32),
            (m,))
        omega = self.param(
            "omega", lambda *_: jnp.asarray(np.pi * np.arange(c) / c, jnp.float32), (c,))
        x_in = dense(m, "trace_input")(x) * jax.nn.sigmoid(dense(m, "input_gate")(x))
        gamma = jnp.exp(jax.lax.complex(-jnp.abs(alpha)[:, None], jnp.broadcast_to(omega, (m, c))))
        drive = jnp.broadcast_to(x_in[..., None], x_in.shape + (c,)).astype(jnp.complex64)
        s = linear_recurrence(gamma, drive, to_complex(carry), first)       # [T, B, m, c]
        flat = jnp.concatenate([s.real, s.imag], axis=-2).reshape(*s.shape[:2], 2 * m * c)
        z = nn.LayerNorm(name="norm")(dense(H, "mix")(flat))
        gate = jax.nn.sigmoid(dense(H, "output_gate")(x))
        y = z * gate + dense(H, "skip")(x) * (1.0 - gate)
        return to_real(s[-1]), y

    @staticmethod
    def zero_carry(features: int, batch_size: int):
        m, c = ffm_sizes(features)
        return jnp.zeros((batch_size, 2, m, c), jnp.float32)
