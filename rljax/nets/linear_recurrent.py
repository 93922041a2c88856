"""Linear recurrent cores trained with a parallel (associative) scan, with masked reset.

Every core here has a state that evolves by an element-wise linear recurrence

    h_t = a_t ⊙ h̃_{t-1} + b_t,        h̃_{t-1} = 0 where first_t else h_{t-1},

whose coefficients `a_t`, `b_t` depend on the input `x_t` only, never on `h`. Such a
recurrence composes associatively, so the whole `[T, B, ...]` sequence runs in
`O(log T)` depth with `jax.lax.associative_scan` (Blelloch 1990; Martin & Cundy 2018)
instead of `T` sequential steps. The episode-start flag travels with the elements
(Lu et al. 2023), so a sequence may hold several episodes and no memory crosses a
boundary: element `e_t = (a_t, b_t, f_t)` and

    (a_i, b_i, f_i) • (a_j, b_j, f_j) = (a_j a_i,      a_j b_i + b_j,  f_i ∨ f_j)  if not f_j
                                        (a_j,          b_j,            True)       if f_j

with identity `(1, 0, False)` (`RESET_IDENTITY`). A prefix `e_0 • ... • e_t` is the map
`h ↦ A h + B` from the carry before step 0 to `h_t`; the carry `h_{-1}` is folded into
`b_0` (`b_0 += a_0 h̃_{-1}`), so the scan's `b` component is `h_t` itself.

The acting path (`T == 1`) computes the same formula as one step, without a scan.

Cores (all map `(carry, x [T, B, F], first [T, B]) -> (carry, y [T, B, H])`, `H = features`):
  * `MinGRU` (Feng et al. 2024), real state `[B, H]`.
  * `LRU` (Orvieto et al. 2023), complex diagonal state of size `N = features`.
  * `S5` (Smith et al. 2023; resettable as in Lu et al. 2023), complex diagonal, ZOH.
  * `FFM` (Morad et al. 2023), complex `m × c` memory, its own output gating.
Complex states are carried as real arrays `[B, 2, N]` (real part, imaginary part), so
carries hold no complex dtype (checkpoints, buffers, `jnp.where` resets stay real).
Params are real too; complex numbers exist only inside the call.

The cores `MinGRU`, `LRU` and `S5` are wrapped in the residual block of the deep LRU/S5
papers: `u = x` (or a linear encoder `W_e x` when `x` is not `H` wide),
`y = core(LayerNorm(u))`, `out = u + (W_1 g) ⊙ σ(W_2 g)` with `g = GELU(y)` (a GLU).
Stacking layers (`make_core(kind, H, layers=n)`) chains these blocks.
"""
from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# --------------------------------------------------------------------------- scan operators


def linear_recurrence_op(e_i, e_j):
    """Composition of affine maps `h ↦ a h + b`: apply `e_i` first, then `e_j`.

    `(a_i, b_i) • (a_j, b_j) = (a_j a_i, a_j b_i + b_j)`; identity `(1, 0)`.
    A reset can be encoded here by `a_t = 0` where `first_t`.
    """
    a_i, b_i = e_i
    a_j, b_j = e_j
    return a_j * a_i, a_j * b_i + b_j


LINEAR_IDENTITY = (1.0, 0.0)


def reset_recurrence_op(e_i, e_j):
    """The resettable operator of Lu et al. (2023) on `(a, b, f)` elements.

    `(a_i, b_i, f_i) • (a_j, b_j, f_j) = (a_j a_i, a_j b_i + b_j, f_i ∨ f_j)`, except that
    where `f_j` (an episode starts at `j`) the left operand is dropped: `(a_j, b_j, True)`.
    Associative; identity `RESET_IDENTITY = (1, 0, False)`. `f` broadcasts against `a`.
    """
    a_i, b_i, f_i = e_i
    a_j, b_j, f_j = e_j
    a = jnp.where(f_j, a_j, a_j * a_i)
    b = jnp.where(f_j, b_j, a_j * b_i + b_j)
    return a, b, jnp.logical_or(f_i, f_j)


RESET_IDENTITY = (1.0, 0.0, False)


def _expand(first, ndim):
    """`[T, B]` flags -> `[T, B, 1, ...]` with `ndim` axes."""
    return first.reshape(first.shape + (1,) * (ndim - first.ndim))


def linear_recurrence(a, b, h0, first):
    """All states of `h_t = a_t ⊙ where(first_t, 0, h_{t-1}) + b_t` over a sequence.

    Args:
      a: `[T, B, ...]` (real or complex) decay, or anything broadcastable to `b`.
      b: `[T, B, ...]` input term.
      h0: `[B, ...]`, the state before step 0 (`h_{-1}`).
      first: `[T, B]` bool, True where step `t` starts an episode.

    Returns:
      `h [T, B, ...]`. `T == 1` is one direct step (the acting path); longer
      sequences run `jax.lax.associative_scan(reset_recurrence_op, ...)`.
    """
    a = jnp.broadcast_to(a, b.shape)
    f = _expand(first, b.ndim)
    h_prev = jnp.where(f[0], 0.0, h0).astype(b.dtype)
    b = b.at[0].add(a[0] * h_prev)          # fold the incoming carry into b_0
    if b.shape[0] == 1:
        return b
    f = jnp.broadcast_to(f, b.shape)
    _, h, _ = jax.lax.associative_scan(reset_recurrence_op, (a, b, f), axis=0)
    return h


# --------------------------------------------------------------------------- helpers


def to_complex(carry):
    """Real carry `[B, 2, ...]` (re, im) -> complex `[B, ...]`."""
    return jax.lax.complex(carry[:, 0], carry[:, 1])


def to_real(h):
    """Complex `[B, ...]` -> real carry `[B, 2, ...]`."""
    return jnp.stack([h.real, h.imag], axis=1)


def _normal(std):
    return nn.initializers.normal(stddev=std)


class ResidualGLU(nn.Module):
    """`out = u + (W_1 g) ⊙ σ(W_2 g)`, `g = GELU(y)`: the LRU/S5 block's output mixing."""

    features: int

    @nn.compact
    def __call__(self, u, y):
        g = nn.gelu(y)
        lin = nn.Dense(self.features, kernel_init=nn.initializers.lecun_normal(), name="glu_value")
        gate = nn.Dense(self.features, kernel_init=nn.initializers.lecun_normal(), name="glu_gate")
        return u + lin(g) * jax.nn.sigmoid(gate(g))


def _encode(x, features):
    """`x` if already `features` wide, else a linear encoder `W_e x` (the deep LRU's)."""
    if x.shape[-1] == features:
        return x
    return nn.Dense(features, kernel_init=nn.initializers.lecun_normal(), name="encoder")(x)


# --------------------------------------------------------------------------- minGRU


class MinGRU(nn.Module):
    """minGRU (Feng et al. 2024, "Were RNNs All We Needed?") in a residual GLU block.

    With `v_t = LayerNorm(u_t)` (see the module docstring for `u`):

        z_t = σ(W_z v_t + c_z),   h̄_t = W_h v_t + c_h,
        h_t = (1 - z_t) ⊙ h_{t-1} + z_t ⊙ h̄_t,     y_t = h_t,

    i.e. `a_t = 1 - z_t`, `b_t = z_t ⊙ h̄_t` in `linear_recurrence`. The gates read
    only the input, so training is a parallel scan. Carry `h [B, H]`. We scan in
    linear space (not the paper's log-space `g(·)` variant): products of `a ∈ (0, 1)`
    only underflow towards 0, which is harmless here.
    """

    features: int
    unroll: int = 1   # unused (parallel scan); accepted so make_core can pass it

    @nn.compact
    def __call__(self, carry, x, first):
        u = _encode(x, self.features)
        v = nn.LayerNorm(name="norm")(u)
        z = jax.nn.sigmoid(nn.Dense(self.features, name="gate")(v))
        h_bar = nn.Dense(self.features, name="candidate")(v)
        h = linear_recurrence(1.0 - z, z * h_bar, carry, first)
        return h[-1], ResidualGLU(self.features, name="block")(u, h)

    @staticmethod
    def zero_carry(features: int, batch_size: int):
        return jnp.zeros((batch_size, features), jnp.float32)


# --------------------------------------------------------------------------- LRU


def _lru_nu_log_init(r_min, r_max):
    """`ν_log = log(-½ log(U(r_min², r_max²)))`: |λ| uniform on the ring's area."""
    def init(key, shape, dtype=jnp.float32):
        u = jax.random.uniform(key, shape, dtype)
        return jnp.log(-0.5 * jnp.log(u * (r_max ** 2 - r_min ** 2) + r_min ** 2))
    return init


def _lru_theta_log_init(max_phase):
    def init(key, shape, dtype=jnp.float32):
        u = jax.random.uniform(key, shape, dtype, minval=1e-4)
        return jnp.log(max_phase * u)
    return init


class LRU(nn.Module):
    """Linear Recurrent Unit (Orvieto et al. 2023) in a residual GLU block.

    With `v_t = LayerNorm(u_t) ∈ R^H` and a complex diagonal state `h ∈ C^N`:

        λ = exp(-exp(ν_log) + i exp(θ_log))          (stable: |λ| < 1 for any params)
        γ = exp(γ_log),  γ_log initialised to log √(1 - |λ|²)   (normalisation)
        h_t = λ ⊙ h_{t-1} + γ ⊙ (B v_t),      B = B_re + i B_im ∈ C^{N×H}
        y_t = Re(C h_t) + D ⊙ v_t,            C = C_re + i C_im ∈ C^{H×N}, D ∈ R^H

    `|λ|` is initialised uniformly on the ring `[r_min, r_max]` and `arg λ` on
    `[0, max_phase]`. `B ~ N(0, 1/(2H))`, `C ~ N(0, 1/N)`, `D ~ N(0, 1)` per part.
    Carry `[B, 2, N]` (re, im), `N = state_size or features`.
    """

    features: int
    state_size: int | None = None
    r_min: float = 0.5
    r_max: float = 0.999
    max_phase: float = float(np.pi)
    unroll: int = 1

    @nn.compact
    def __call__(self, carry, x, first):
        H = self.features
        N = self.state_size or H
        u = _encode(x, H)
        v = nn.LayerNorm(name="norm")(u)
        nu_log = self.param("nu_log", _lru_nu_log_init(self.r_min, self.r_max), (N,))
        theta_log = self.param("theta_log", _lru_theta_log_init(self.max_phase), (N,))
        gamma_log = self.param(
            "gamma_log",
            lambda *_: jnp.log(jnp.sqrt(1.0 - jnp.exp(-2.0 * jnp.exp(nu_log)))), (N,))
        b_re = self.param("B_re", _normal(1.0 / np.sqrt(2 * H)), (H, N))
        b_im = self.param("B_im", _normal(1.0 / np.sqrt(2 * H)), (H, N))
        c_re = self.param("C_re", _normal(1.0 / np.sqrt(N)), (N, H))
        c_im = self.param("C_im", _normal(1.0 / np.sqrt(N)), (N, H))
        d = self.param("D", _normal(1.0), (H,))

        lam = jnp.exp(jax.lax.complex(-jnp.exp(nu_log), jnp.exp(theta_log)))
        gamma = jnp.exp(gamma_log)
        bu = jax.lax.complex(v @ b_re, v @ b_im) * gamma
        h = linear_recurrence(lam, bu, to_complex(carry), first)
        y = h.real @ c_re - h.imag @ c_im + d * v
        return to_real(h[-1]), ResidualGLU(H, name="block")(u, y)

    @staticmethod
    def zero_carry(features: int, batch_size: int):
        return jnp.zeros((batch_size, 2, features), jnp.float32)


# --------------------------------------------------------------------------- S5


@functools.lru_cache(maxsize=None)
def hippo_n_eigenvalues(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues `Λ = -½ + i ω` of HiPPO-N, the normal part of HiPPO-LegS (size `n`).

    HiPPO-LegS: `A_nk = -√(2n+1)√(2k+1)` (n > k), `-(n+1)` (n = k), 0 (n < k);
    `P_n = √(n + ½)`; the normal part `S = A + P Pᵀ = -½ I + (skew-symmetric)`, whose
    eigenvalues are `-½ + i·eig(-i·skew)` (Smith et al. 2023, Gu et al. 2022).
    Computed once in numpy (float64) at trace time: a constant, so no LAPACK in jit.
    """
    idx = np.arange(n, dtype=np.float64)
    q = np.sqrt(2 * idx + 1)
    a = -np.tril(np.outer(q, q), k=-1) - np.diag(idx + 1)
    p = np.sqrt(idx + 0.5)
    s = a + np.outer(p, p)
    skew = s - np.diag(np.diag(s))
    omega = np.linalg.eigvalsh(-1j * skew)
    re = np.full(n, np.mean(np.diag(s)))
    return re.astype(np.float32), omega.astype(np.float32)


class S5(nn.Module):
    """S5 (Smith et al. 2023), resettable as in Lu et al. (2023), in a residual GLU block.

    A continuous-time diagonal SSM `ḣ = Λ h + B̃ v`, `y = Re(C̃ h) + D ⊙ v`, with
    `v_t = LayerNorm(u_t) ∈ R^H`, `h ∈ C^N`, discretised per state by zero-order hold
    with a learnt timescale `Δ = exp(log_Δ)`:

        Λ̄ = exp(Λ Δ),   B̄ = ((Λ̄ - 1) / Λ) ⊙ B̃,
        h_t = Λ̄ ⊙ h_{t-1} + B̄ v_t,     y_t = Re(C̃ h_t) + D ⊙ v_t.

    `Λ` is initialised to the HiPPO-N eigenvalues (`hippo_n_eigenvalues`), its real
    part kept `≤ -1e-4` (S5's clipping), `log_Δ ~ U(log 1e-3, log 1e-1)`.
    Simplified against the paper: `B̃`, `C̃` are initialised as complex Gaussians
    (not `V⁻¹B`, `CV` through the HiPPO eigenvectors), and there is no conjugate
    symmetry (all `N` states are kept, output `Re(C̃ h)`). The reset is the
    flag-carrying operator of Lu et al. (`reset_recurrence_op`).
    Carry `[B, 2, N]` (re, im), `N = state_size or features`.
    """

    features: int
    state_size: int | None = None
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    unroll: int = 1

    @nn.compact
    def __call__(self, carry, x, first):
        H = self.features
        N = self.state_size or H
        u = _encode(x, H)
        v = nn.LayerNorm(name="norm")(u)
        re0, im0 = hippo_n_eigenvalues(N)
        lam_re = self.param("Lambda_re", lambda *_: jnp.asarray(re0), (N,))
        lam_im = self.param("Lambda_im", lambda *_: jnp.asarray(im0), (N,))
        log_dt = self.param(
            "log_dt", lambda k, s: jax.random.uniform(
                k, s, minval=np.log(self.dt_min), maxval=np.log(self.dt_max)), (N,))
        b_re = self.param("B_re", _normal(1.0 / np.sqrt(2 * H)), (H, N))
        b_im = self.param("B_im", _normal(1.0 / np.sqrt(2 * H)), (H, N))
        c_re = self.param("C_re", _normal(1.0 / np.sqrt(N)), (N, H))
        c_im = self.param("C_im", _normal(1.0 / np.sqrt(N)), (N, H))
        d = self.param("D", _normal(1.0), (H,))

        lam = jax.lax.complex(jnp.minimum(lam_re, -1e-4), lam_im)
        lam_bar = jnp.exp(lam * jnp.exp(log_dt))
        b_bar_scale = (lam_bar - 1.0) / lam
        bv = jax.lax.complex(v @ b_re, v @ b_im) * b_bar_scale
        h = linear_recurrence(lam_bar, bv, to_complex(carry), first)
        y = h.real @ c_re - h.imag @ c_im + d * v
        return to_real(h[-1]), ResidualGLU(H, name="block")(u, y)

    @staticmethod
    def zero_carry(features: int, batch_size: int):
        return jnp.zeros((batch_size, 2, features), jnp.float32)

# --------------------------------------------------------------------------- FFM

CONTEXT_SIZE = 4


def ffm_sizes(features: int) -> tuple[int, int]:
    """`(m, c)`: trace and context sizes of an FFM cell `features` wide."""
    return max(features // CONTEXT_SIZE, 1), CONTEXT_SIZE


class FFM(nn.Module):
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
    scan with the reset-carrying operator (`reset_recurrence_op`), not the
    paper's closed-form `γ^t` cumulative sums (same maths, `O(log T)` depth instead of
    one `O(T)` pass); `α` is initialised so that the traces' e-folding times
    `1/|α_j|` are geometric in `[1, max_horizon]` and `ω_k = π k / c`; no extra
    input/output MLPs around the cell. Stacking layers chains cells directly (the
    cell already mixes a skip path through its output gate).

    Carry: `[B, 2, m, c]` real (re, im of `S`), `m = features // 4` (at least 1),
    `c = 4`, so the memory holds `features` complex numbers like the LRU's state.

    The cell maps `(carry [B, 2, m, c], x [T, B, F], first [T, B])
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
