"""Return and advantage estimators on one trajectory `[T]`; `jax.vmap` for batches.

Time indices follow rlax. For step t of a fragment of length T:
  r_t         reward received after acting at step t;
  discount_t  γ·(1 - terminated_t); 0 stops bootstrapping;
  v_t         value of the successor state of step t; at a time-limit truncation
              step the caller passes V(final_observation) there;
  v_tm1       value of the state acted in at step t.
A truncated step still bootstraps (from v_t); what is cut there is the trace that
would otherwise run into the next episode. Every estimator takes the truncations
the same way, as the keyword `truncated_t` (bool or 0/1, [T]); v_t at those steps
comes from `rljax.rollout.successor_values`, the one place that computes them.

The estimators do not stop gradients: the losses stop them on their targets.
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

Array = jax.Array


def _check_trajectory(*arrays: Array) -> None:
    chex.assert_rank(arrays, 1)
    chex.assert_equal_shape(arrays)
    chex.assert_type(arrays, float)


def _per_step(x, like: Array) -> Array:
    """Broadcasts a scalar-or-[T] hyperparameter to the trajectory's shape and dtype."""
    return jnp.broadcast_to(jnp.asarray(x, like.dtype), like.shape)


def _trace_lambda(lambda_, truncated_t, like: Array) -> Array:
    """λₜ·(1 - truncatedₜ), [T]: the trace stops at time limits, the bootstrap stays."""
    lambda_ = _per_step(lambda_, like)
    if truncated_t is None:
        return lambda_
    chex.assert_equal_shape([truncated_t, like])
    return jnp.where(jnp.asarray(truncated_t).astype(bool), 0.0, lambda_)


def _cut_mask(truncated_t, like: Array) -> Array:
    """True where the recursion stops and bootstraps from v_t: at truncations and at T-1."""
    if truncated_t is None:
        cut = jnp.zeros(like.shape, bool)
    else:
        chex.assert_equal_shape([truncated_t, like])
        cut = jnp.asarray(truncated_t).astype(bool)
    return cut.at[-1].set(True)


def _reverse_scan(step, init, xs):
    _, ys = jax.lax.scan(step, init, xs, reverse=True)
    return ys


def discounted_returns(r_t, discount_t, v_t, *, truncated_t=None, log_rho_t=None,
                       c_bar=jnp.inf):
    """Bootstrapped Monte-Carlo returns with optional per-decision importance weights.

    Gₜ = rₜ + γₜ [ (1 - cutₜ) ρₜ₊₁ Gₜ₊₁ + cutₜ vₜ ],
    ρₜ₊₁ = min(exp(log_ρₜ₊₁), c̄),

    where cutₜ = truncatedₜ for t < T-1 and cut_{T-1} = 1 (the fragment end
    bootstraps from v_t[T-1]). ρₜ₊₁ weighs the *next* action, so it multiplies
    the tail Gₜ₊₁ but never rₜ. Only v_t at cut steps is read (a `jnp.where`,
    so even non-finite values elsewhere do not leak in).

    This is rlplay's `pyt_returns(rew, fin, gamma, bootstrap, omega, r_bar)`
    with termination and truncation made explicit.

    Args:
      r_t: rewards, [T].
      discount_t: γ·(1 - terminated_t), [T].
      v_t: successor-state values, [T]; read only at truncations and at T-1.
      truncated_t: optional bool (or 0/1) [T], time-limit truncations.
      log_rho_t: optional log π(aₜ|sₜ) - log μ(aₜ|sₜ), [T]; ρ = 1 when None.
      c_bar: clip for the importance weights (default: no clip).

    Returns:
      Returns Gₜ, [T].

    References:
      Sutton & Barto, Reinforcement Learning: An Introduction, 2nd ed., §7.3
      (per-decision importance sampling); rlplay (ivannz/rlplay), `pyt_returns`.
    """
    _check_trajectory(r_t, discount_t, v_t)
    cut_t = _cut_mask(truncated_t, r_t)
    if log_rho_t is None:
        rho_next = jnp.ones_like(r_t)
    else:
        _check_trajectory(r_t, log_rho_t)
        rho = jnp.minimum(jnp.exp(log_rho_t), c_bar).astype(r_t.dtype)
        rho_next = jnp.concatenate([rho[1:], jnp.ones_like(rho[:1])])

    def backward(g_next, xs):
        r, discount, v, cut, rho = xs
        g = r + discount * jnp.where(cut, v, rho * g_next)
        return g, g

    return _reverse_scan(backward, jnp.zeros_like(r_t[0]),
                         (r_t, discount_t, v_t, cut_t, rho_next))


def n_step_returns(r_t, discount_t, v_t, *, n: int, truncated_t=None):
    """n-step bootstrapped returns.

    Gₜ = Σ_{k<m} (Π_{j<k} γₜ₊ⱼ) rₜ₊ₖ + (Π_{j<m} γₜ₊ⱼ) vₜ₊ₘ₋₁,

    with m = min(n, T - t, steps up to and including the first truncation at or
    after t). A zero discount (termination) zeroes everything after it.
    Computed as n vectorised applications of Gₜ ← rₜ + γₜ [cutₜ ? vₜ : Gₜ₊₁]
    (cost O(min(n, T)·T), no loop over T).

    Args:
      r_t: rewards, [T].
      discount_t: γ·(1 - terminated_t), [T].
      v_t: successor-state values, [T].
      n: number of steps, a static Python int >= 1.
      truncated_t: optional bool (or 0/1) [T], time-limit truncations.

    Returns:
      n-step returns, [T].

    References:
      Sutton & Barto, Reinforcement Learning: An Introduction, 2nd ed., §7.1.
    """
    _check_trajectory(r_t, discount_t, v_t)
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    cut_t = _cut_mask(truncated_t, r_t)
    g_t = r_t + discount_t * v_t                      # m = 1 everywhere
    for _ in range(min(int(n), r_t.shape[0]) - 1):    # a window never exceeds T
        g_next = jnp.concatenate([g_t[1:], g_t[-1:]])  # last entry is unused: cut
        g_t = r_t + discount_t * jnp.where(cut_t, v_t, g_next)
    return g_t


def lambda_returns(r_t, discount_t, v_t, *, lambda_=1.0, truncated_t=None):
    """λ-returns.

    Gₜ = rₜ + γₜ [(1 - λₜ) vₜ + λₜ Gₜ₊₁],   G_{T-1} = r_{T-1} + γ_{T-1} v_{T-1}.

    Args:
      r_t: rewards, [T].
      discount_t: γ·(1 - terminated_t), [T].
      v_t: successor-state values, [T].
      lambda_: scalar or [T].
      truncated_t: optional bool (or 0/1) [T], time-limit truncations: the trace
        is cut there (λₜ := 0) while Gₜ still bootstraps from vₜ.

    Returns:
      λ-returns, [T].

    References:
      Sutton & Barto, Reinforcement Learning: An Introduction, 2nd ed., §12.1;
      rlax `lambda_returns`.
    """
    _check_trajectory(r_t, discount_t, v_t)
    lambda_ = _trace_lambda(lambda_, truncated_t, r_t)

    def backward(g_next, xs):
        r, discount, v, lam = xs
        g = r + discount * ((1.0 - lam) * v + lam * g_next)
        return g, g

    # Starting from v_t[T-1] makes the last step r + γ v whatever λ is.
    return _reverse_scan(backward, v_t[-1], (r_t, discount_t, v_t, lambda_))


def q_lambda(r_t, discount_t, q_t, *, lambda_=0.95, truncated_t=None):
    """Peng's Q(λ) targets with a greedy bootstrap, as PQN uses them.

    Gₜ = rₜ + γₜ [max_a qₜ(a) + λₜ (Gₜ₊₁ - max_a qₜ(a))],
    G_{T-1} = r_{T-1} + γ_{T-1} max_a q_{T-1}(a),

    i.e. λ-returns of the greedy successor values vₜ = max_a qₜ(a). There is no
    cut at off-policy (exploratory) actions: that is Peng's Q(λ), not Watkins's.

    Args:
      r_t: rewards, [T].
      discount_t: γ·(1 - terminated_t), [T].
      q_t: Q-values of each step's successor state, [T, A] (at a truncation: of
        final_observation), or their maxima max_a qₜ(a), [T] (what
        `rljax.rollout.successor_values` gives from an agent whose value is max_a Q).
      lambda_: scalar or [T].
      truncated_t: optional bool (or 0/1) [T], time-limit truncations: the trace
        is cut there (λₜ := 0) while Gₜ still bootstraps from max_a qₜ.

    Returns:
      Q(λ) targets, [T].

    References:
      Peng & Williams, Incremental Multi-Step Q-Learning, ML 1996; Gallici et al.,
      Simplifying Deep Temporal Difference Learning (PQN), 2024.
    """
    v_t = jnp.max(q_t, axis=-1) if jnp.ndim(q_t) == 2 else q_t
    _check_trajectory(r_t, discount_t, v_t)
    lambda_ = _trace_lambda(lambda_, truncated_t, r_t)

    def backward(g_next, xs):
        r, discount, v, lam = xs
        g = r + discount * (v + lam * (g_next - v))
        return g, g

    return _reverse_scan(backward, v_t[-1], (r_t, discount_t, v_t, lambda_))


def generalized_advantage(r_t, discount_t, v_tm1, v_t, *, lambda_=0.95, truncated_t=None):
    """GAE(λ).

    Âₜ = δₜ + γₜ λₜ Âₜ₊₁,  δₜ = rₜ + γₜ vₜ - vₜ₋₁,  Â_T := 0.

    Args:
      r_t: rewards, [T].
      discount_t: γ·(1 - terminated_t), [T]; 0 stops bootstrapping.
      v_tm1: values of the states acted in, [T].
      v_t: values of successor states, [T] (of final_observation at truncations).
      lambda_: scalar or [T].
      truncated_t: optional bool (or 0/1) [T], time-limit truncations: the trace
        is cut there (λₜ := 0) while δₜ still bootstraps from vₜ.

    Returns:
      Advantages, [T].

    References:
      Schulman et al., High-Dimensional Continuous Control Using Generalized
      Advantage Estimation, ICLR 2016.
    """
    _check_trajectory(r_t, discount_t, v_tm1, v_t)
    lambda_ = _trace_lambda(lambda_, truncated_t, r_t)
    delta_t = r_t + discount_t * v_t - v_tm1

    def backward(acc, xs):
        delta, discount, lam = xs
        acc = delta + discount * lam * acc
        return acc, acc

    return _reverse_scan(backward, jnp.zeros_like(r_t[0]), (delta_t, discount_t, lambda_))


def vtrace(v_tm1, v_t, r_t, discount_t, log_rho_tm1, *, lambda_=1.0, clip_rho=1.0,
           clip_c=1.0, truncated_t=None):
    """V-trace value targets and policy-gradient advantages.

    ρₜ = min(ρ̄, exp(log_ρₜ)),   cₜ = λₜ min(c̄, exp(log_ρₜ)),
    δₜ = ρₜ (rₜ + γₜ vₜ - vₜ₋₁),
    vsₜ = vₜ₋₁ + δₜ + γₜ cₜ (vsₜ₊₁ - vₜ₋₁[t+1]),   (vs_T - v_{T-1}[T]) := 0,
    Aₜ = ρₜ (rₜ + γₜ [λₜ vsₜ₊₁ + (1 - λₜ) vₜ] - vₜ₋₁),   vs_T := v_t[T-1].

    The bootstrap of Aₜ mixes vsₜ₊₁ with vₜ (the successor value of step t)
    through λₜ, as rlax does with v_tm1[t+1]; using vₜ makes a λ = 0 at a
    truncation step bootstrap Aₜ from V(final_observation) instead of from the
    next episode. Where the trajectory is consistent (vₜ = vₜ₋₁[t+1] except
    at episode ends) and λ = 1 this is the paper's ρₜ (rₜ + γₜ vsₜ₊₁ - vₜ₋₁).

    Args:
      v_tm1: values of the states acted in, [T].
      v_t: values of successor states, [T] (of final_observation at truncations).
      r_t: rewards, [T].
      discount_t: γ·(1 - terminated_t), [T].
      log_rho_tm1: log π(aₜ|sₜ) - log μ(aₜ|sₜ) of the actions taken, [T].
      lambda_: scalar or [T].
      clip_rho: ρ̄, clip of the importance weights in δ and in Aₜ.
      clip_c: c̄, clip of the trace coefficients.
      truncated_t: optional bool (or 0/1) [T], time-limit truncations: the trace
        is cut there (λₜ := 0), so vsₜ and Aₜ bootstrap from vₜ.

    Returns:
      (vs, pg_advantage), each [T].

    References:
      Espeholt et al., IMPALA: Scalable Distributed Deep-RL with Importance
      Weighted Actor-Learner Architectures, ICML 2018.
    """
    _check_trajectory(v_tm1, v_t, r_t, discount_t, log_rho_tm1)
    lambda_ = _trace_lambda(lambda_, truncated_t, r_t)
    rho = jnp.exp(log_rho_tm1)
    rho_clipped = jnp.minimum(clip_rho, rho)
    c_t = lambda_ * jnp.minimum(clip_c, rho)
    delta_t = rho_clipped * (r_t + discount_t * v_t - v_tm1)

    def backward(acc, xs):
        delta, discount, c = xs
        acc = delta + discount * c * acc
        return acc, acc

    vs_minus_v = _reverse_scan(backward, jnp.zeros_like(r_t[0]), (delta_t, discount_t, c_t))
    vs = v_tm1 + vs_minus_v
    vs_next = jnp.concatenate([vs[1:], v_t[-1:]])
    bootstrap = lambda_ * vs_next + (1.0 - lambda_) * v_t
    pg_advantage = rho_clipped * (r_t + discount_t * bootstrap - v_tm1)
    return vs, pg_advantage


def over_envs(fn, *args, **kwargs):
    """Apply a one-trajectory estimator to time-major `[T, B]` inputs.

    Positional arrays and keyword arrays of rank 2 are mapped over axis 1 (envs);
    scalars and static keywords (`n=`) are shared. Returns `[T, B]` outputs.

        adv = over_envs(generalized_advantage, r, discount, v_tm1, v_t, lambda_=0.95,
                        truncated_t=truncated_tb)
    """
    mapped = {k: v for k, v in kwargs.items() if jnp.ndim(v) == 2}
    shared = {k: v for k, v in kwargs.items() if k not in mapped}
    names = list(mapped)

    def one_env(*xs):
        return fn(*xs[:len(args)], **dict(zip(names, xs[len(args):])), **shared)

    return jax.vmap(one_env, in_axes=1, out_axes=1)(*args, *mapped.values())
