"""Orthogonal initialisation without LAPACK.

flax's `orthogonal` runs a QR decomposition (LAPACK `geqrf`/`orgqr` on CPU). Inside a
`jit(vmap(train))` on CPU those batched LAPACK calls have deadlocked both XLA threads
(DESIGN.md, known pitfalls). This initializer orthonormalises a Gaussian matrix
with two passes of classical Gram-Schmidt written in plain `jnp` (matmuls and a
`fori_loop`), which vmaps and shards like any other array code. The result is
Haar-distributed like QR-with-sign-correction (Mezzadri 2007), up to float error.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def _orthonormal_columns(key, rows: int, cols: int, dtype) -> jax.Array:
    """A `[rows, cols]` matrix with orthonormal columns, `rows >= cols`."""
    g = jax.random.normal(key, (rows, cols), jnp.float32)

    def orthogonalise_column(j, q):
        v = q[:, j]
        mask = (jnp.arange(cols) < j).astype(q.dtype)   # the columns already done
        for _ in range(2):                               # "twice is enough" (CGS2)
            v = v - q @ (mask * (q.T @ v))
        return q.at[:, j].set(v / jnp.linalg.norm(v))

    q = jax.lax.fori_loop(0, cols, orthogonalise_column, g)
    return q.astype(dtype)


def orthogonal(scale: float = 1.0):
    """A flax-compatible initializer: `init(key, shape, dtype) -> array`.

    For a kernel of shape `[..., fan_in, fan_out]` the matrix flattened to
    `[prod(leading) * fan_in, fan_out]` has orthonormal rows or columns
    (whichever are fewer), times `scale`.
    """

    def init(key, shape, dtype=jnp.float32):
        if len(shape) < 2:
            raise ValueError(f"orthogonal init needs a matrix, got shape {shape}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        if rows >= cols:
            q = _orthonormal_columns(key, rows, cols, dtype)
        else:
            q = _orthonormal_columns(key, cols, rows, dtype).T
        return (scale * q).reshape(shape).astype(dtype)

    return init
