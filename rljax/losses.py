"""Loss functions: `loss(arrays..., *, hyperparams) -> (scalar, metrics)`.

They read no config and touch no optimizer. Each accepts any leading batch shape
(`[N]` or `[T, B]`) and averages over all elements. Targets, advantages and
importance weights are wrapped in `stop_gradient`, so only the quantity being
fitted carries gradient. Policy losses take log-probabilities and entropies (from a
distribution value, `rljax.distributions`), never logits, so they serve every
action space.
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


Array = jax.Array
sg = jax.lax.stop_gradient


def _huber(x: Array, delta) -> Array:
    """0.5 x² for |x| <= δ, δ (|x| - 0.5 δ) beyond."""
    abs_x = jnp.abs(x)
    quadratic = jnp.minimum(abs_x, delta)
    linear = abs_x - quadratic
    return 0.5 * quadratic**2 + delta * linear


def _check_logits_action(logits: Array, action: Array, *per_action: Array) -> None:
    chex.assert_rank(logits, action.ndim + 1)
    chex.assert_equal_shape_prefix([logits, action], action.ndim)
    chex.assert_equal_shape([action, *per_action])


def policy_gradient_loss(log_pi, advantage):
    """Policy-gradient (REINFORCE / A2C) loss.

    L = -mean[ log π(aₜ|sₜ) · sg(Aₜ) ].

    Args:
      log_pi: log π(aₜ|sₜ) of the actions taken, under the current params, [...].
      advantage: advantages (or returns), [...].

    Returns:
      (loss, {}).

    References:
      Williams, Simple statistical gradient-following algorithms for
      connectionist reinforcement learning, Machine Learning 1992.
    """
    chex.assert_equal_shape([log_pi, advantage])
    return -jnp.mean(log_pi * sg(advantage)), {}


def importance_weighted_pg_loss(log_pi, log_mu, returns, *, c_bar, baseline=None):
    """Off-policy REINFORCE with truncated importance weights (rlplay).

    ρₜ = sg(min(exp(log π(aₜ) - log μ(aₜ)), c̄)),
    L = -mean[ ρₜ · sg(Gₜ - bₜ) · log π(aₜ) ].

    Args:
      log_pi: log π(aₜ|sₜ) under the current params, [...].
      log_mu: log μ(aₜ|sₜ) of the behaviour policy that took aₜ, [...].
      returns: returns Gₜ, [...].
      c_bar: clip of the importance weights.
      baseline: optional baseline bₜ, [...]; 0 when None.

    Returns:
      (loss, {"rho_mean", "rho_clip_frac"}); rho_clip_frac is the fraction of
      samples whose weight exceeded c̄.

    References:
      Espeholt et al., IMPALA, ICML 2018 (truncated IS); rlplay (ivannz/rlplay).
    """
    chex.assert_equal_shape([log_pi, log_mu, returns])
    rho_raw = sg(jnp.exp(log_pi - log_mu))
    rho = jnp.minimum(rho_raw, c_bar)
    advantage = returns if baseline is None else returns - baseline
    loss = -jnp.mean(rho * sg(advantage) * log_pi)
    return loss, {"rho_mean": jnp.mean(rho), "rho_clip_frac": jnp.mean(rho_raw > c_bar)}


def ppo_clip_loss(log_prob, log_prob_old, advantage, *, clip_eps):
    """PPO clipped surrogate objective.

    rₜ = exp(log πₜ - log π_oldₜ),
    L = -mean[ min(rₜ Aₜ, clip(rₜ, 1 - ε, 1 + ε) Aₜ) ].

    Args:
      log_prob: log π(aₜ|sₜ) under the current parameters, [...].
      log_prob_old: log π_old(aₜ|sₜ) from the rollout, [...].
      advantage: advantages, [...] (normalise before calling if wanted).
      clip_eps: ε.

    Returns:
      (loss, {"clip_frac", "approx_kl", "ratio_mean"}); approx_kl is the
      (r - 1) - log r estimator of KL(π_old ‖ π).

    References:
      Schulman et al., Proximal Policy Optimization Algorithms, 2017.
    """
    chex.assert_equal_shape([log_prob, log_prob_old, advantage])
    log_ratio = log_prob - sg(log_prob_old)
    ratio = jnp.exp(log_ratio)
    advantage = sg(advantage)
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    loss = -jnp.mean(jnp.minimum(ratio * advantage, clipped * advantage))
    metrics = {
        "clip_frac": jnp.mean(jnp.abs(ratio - 1.0) > clip_eps),
        "approx_kl": sg(jnp.mean((ratio - 1.0) - log_ratio)),
        "ratio_mean": sg(jnp.mean(ratio)),
    }
    return loss, metrics


def value_loss(value, target):
    """Squared-error value loss: L = 0.5 · mean[(v - sg(target))²].

    Args:
      value: predicted values, [...].
      target: value targets, [...].

    Returns:
      (loss, {}).
    """
    chex.assert_equal_shape([value, target])
    return 0.5 * jnp.mean((value - sg(target)) ** 2), {}


def clipped_value_loss(value, value_old, target, *, clip_eps):
    """PPO clipped value loss.

    v_clip = v_old + clip(v - v_old, -ε, ε),
    L = 0.5 · mean[ max((v - y)², (v_clip - y)²) ],  y = sg(target).

    Args:
      value: predicted values, [...].
      value_old: values from the rollout, [...].
      target: value targets, [...].
      clip_eps: ε, in value units.

    Returns:
      (loss, {}).

    References:
      Schulman et al., PPO, 2017 (openai/baselines ppo2 value clipping).
    """
    chex.assert_equal_shape([value, value_old, target])
    target, value_old = sg(target), sg(value_old)
    value_clipped = value_old + jnp.clip(value - value_old, -clip_eps, clip_eps)
    squared = jnp.maximum((value - target) ** 2, (value_clipped - target) ** 2)
    return 0.5 * jnp.mean(squared), {}


def huber_value_loss(value, target, *, delta=1.0):
    """Huber value loss: L = mean[huber_δ(v - sg(target))].

    huber_δ(x) = 0.5 x² for |x| <= δ, δ (|x| - δ/2) otherwise.

    Args:
      value: predicted values, [...].
      target: value targets, [...].
      delta: δ, where the loss turns from quadratic to linear.

    Returns:
      (loss, {}).
    """
    chex.assert_equal_shape([value, target])
    return jnp.mean(_huber(value - sg(target), delta)), {}


def weighted_td_loss(value, target, weights, *, huber_delta=None):
    """Importance-weighted squared (or Huber) TD loss, for prioritised replay.

    L = mean[ wᵢ · ½ (vᵢ - sg(yᵢ))² ]   (or mean[ wᵢ · huber_δ(vᵢ - sg(yᵢ)) ]).

    Args:
      value: predicted values Q(sₜ, aₜ), [...].
      target: targets, [...].
      weights: importance-sampling weights, broadcastable to `value` (no gradient).
      huber_delta: None for the squared loss, else the Huber δ.

    Returns:
      (loss, {}).

    References:
      Schaul et al., Prioritized Experience Replay, ICLR 2016.
    """
    chex.assert_equal_shape([value, target])
    td = value - sg(target)
    per_sample = 0.5 * td**2 if huber_delta is None else _huber(td, huber_delta)
    return jnp.mean(sg(weights) * per_sample), {}


def entropy_loss(entropy):
    """Negative mean entropy, so that adding coef · L maximises entropy.

    L = -mean[ H(π(·|sₜ)) ].

    Args:
      entropy: H(π(·|sₜ)) per state (`dist.entropy()`), [...].

    Returns:
      (loss, {"entropy": mean entropy}).
    """
    entropy = jnp.mean(entropy)
    return -entropy, {"entropy": sg(entropy)}


def _q_td_loss(q_tm1, a_tm1, target, huber_delta):
    """Shared tail of the Q losses: TD error of q_tm1[a] against a stopped target."""
    q_a = jnp.take_along_axis(q_tm1, a_tm1[..., None], axis=-1)[..., 0]
    td = sg(target) - q_a
    per_sample = 0.5 * td**2 if huber_delta is None else _huber(td, huber_delta)
    metrics = {"td_abs": sg(jnp.mean(jnp.abs(td))), "q_mean": sg(jnp.mean(q_a))}
    return jnp.mean(per_sample), metrics


def _check_q(q_tm1, a_tm1, r_t, discount_t, *q_t):
    _check_logits_action(q_tm1, a_tm1, r_t, discount_t)
    chex.assert_equal_shape([q_tm1, *q_t])
    chex.assert_type(a_tm1, int)


def q_learning_loss(q_tm1, a_tm1, r_t, discount_t, q_t, *, huber_delta=None):
    """Q-learning (DQN) loss.

    yₜ = rₜ + γₜ max_a q_t(a),  δₜ = sg(yₜ) - q_tm1(aₜ₋₁),
    L = mean[0.5 δₜ²]  (or mean[huber_δ(δₜ)] when huber_delta is given).

    For n-step targets pass the n-step reward sum as r_t and γⁿ·(1 - terminated)
    as discount_t.

    Args:
      q_tm1: Q-values of the states acted in, [..., A].
      a_tm1: actions taken, int [...].
      r_t: rewards (or n-step reward sums), [...].
      discount_t: discounts, [...]; 0 at terminations.
      q_t: Q-values of the successor states (target network), [..., A].
      huber_delta: None for the squared loss, else the Huber δ.

    Returns:
      (loss, {"td_abs": mean |δ|, "q_mean": mean q_tm1(a)}).

    References:
      Watkins & Dayan, Q-learning, Machine Learning 1992; Mnih et al., Nature 2015.
    """
    _check_q(q_tm1, a_tm1, r_t, discount_t, q_t)
    target = r_t + discount_t * jnp.max(q_t, axis=-1)
    return _q_td_loss(q_tm1, a_tm1, target, huber_delta)


def double_q_learning_loss(q_tm1, a_tm1, r_t, discount_t, q_t_value, q_t_selector, *,
                           huber_delta=None):
    """Double Q-learning loss.

    a* = argmax_a q_t_selector(a),  yₜ = rₜ + γₜ q_t_value(a*),
    δₜ = sg(yₜ) - q_tm1(aₜ₋₁),  L = mean[0.5 δₜ²] (or Huber).

    Args:
      q_tm1: Q-values of the states acted in (online network), [..., A].
      a_tm1: actions taken, int [...].
      r_t: rewards (or n-step reward sums), [...].
      discount_t: discounts, [...]; 0 at terminations.
      q_t_value: successor Q-values that evaluate a* (target network), [..., A].
      q_t_selector: successor Q-values that choose a* (online network), [..., A].
      huber_delta: None for the squared loss, else the Huber δ.

    Returns:
      (loss, {"td_abs", "q_mean"}).

    References:
      van Hasselt, Guez & Silver, Deep Reinforcement Learning with Double
      Q-learning, AAAI 2016.
    """
    _check_q(q_tm1, a_tm1, r_t, discount_t, q_t_value, q_t_selector)
    best = jnp.argmax(q_t_selector, axis=-1)
    q_best = jnp.take_along_axis(q_t_value, best[..., None], axis=-1)[..., 0]
    target = r_t + discount_t * q_best
    return _q_td_loss(q_tm1, a_tm1, target, huber_delta)


# --------------------------------------------------------------------------- SAC
def sac_critic_loss(q1_tm1, q2_tm1, r_t, discount_t, q1_t, q2_t, log_pi_t, *, alpha):
    """Soft Q-learning loss of SAC's twin critics (clipped double Q).

    yₜ = rₜ + γₜ (min(Q̄₁(s'ₜ, a'ₜ), Q̄₂(s'ₜ, a'ₜ)) - α log π(a'ₜ|s'ₜ)),  a'ₜ ~ π(·|s'ₜ),
    L = mean[(Q₁(sₜ, aₜ) - sg(yₜ))²] + mean[(Q₂(sₜ, aₜ) - sg(yₜ))²]
    (CleanRL's sum of the two mean squared errors).

    Args:
      q1_tm1, q2_tm1: the online critics' Q(s_t, a_t), [N].
      r_t: rewards, [N].
      discount_t: γ·(1 - terminated_t), [N]; at a time-limit truncation the
        successor is the finished episode's last observation, so it still bootstraps.
      q1_t, q2_t: the target critics' Q(s'_t, a'_t) at a fresh policy action, [N].
      log_pi_t: log π(a'_t|s'_t), [N].
      alpha: entropy temperature α (scalar; not differentiated).

    Returns:
      `(loss, {"q1_mean", "q2_mean", "target_mean"})`.

    References:
      Haarnoja et al., Soft Actor-Critic Algorithms and Applications, 2018;
      Fujimoto et al., Addressing Function Approximation Error (TD3), ICML 2018.
    """
    chex.assert_rank([q1_tm1, q2_tm1, r_t, discount_t, q1_t, q2_t, log_pi_t], 1)
    chex.assert_equal_shape([q1_tm1, q2_tm1, r_t, discount_t, q1_t, q2_t, log_pi_t])
    v_t = jnp.minimum(q1_t, q2_t) - sg(alpha) * log_pi_t
    y = sg(r_t + discount_t * v_t)
    loss = jnp.mean(jnp.square(q1_tm1 - y)) + jnp.mean(jnp.square(q2_tm1 - y))
    return loss, {"q1_mean": sg(jnp.mean(q1_tm1)), "q2_mean": sg(jnp.mean(q2_tm1)),
                  "target_mean": jnp.mean(y)}


def sac_actor_loss(q1_pi, q2_pi, log_pi, *, alpha):
    """SAC's policy loss (reparameterised actions a ~ π(·|s)).

    L = mean[α log π(a|s) - min(Q₁(s, a), Q₂(s, a))].

    Args:
      q1_pi, q2_pi: the online critics at the sampled actions, [N] (the gradient
        flows through the actions into the policy; the critics' params are held).
      log_pi: log π(a|s) of those actions, [N].
      alpha: temperature α (not differentiated).

    Returns:
      `(loss, {"entropy": -mean log π})`.
    """
    chex.assert_rank([q1_pi, q2_pi, log_pi], 1)
    chex.assert_equal_shape([q1_pi, q2_pi, log_pi])
    loss = jnp.mean(sg(alpha) * log_pi - jnp.minimum(q1_pi, q2_pi))
    return loss, {"entropy": sg(-jnp.mean(log_pi))}


def sac_temperature_loss(log_alpha, log_pi, *, target_entropy):
    """Automatic entropy tuning: drive the policy's entropy towards a target.

    L(log α) = -mean[log α · sg(log π(a|s) + H̄)],  H̄ = target entropy (SAC: -|A|).
    Its gradient raises α while the entropy -log π is below H̄, lowers it above.

    Args:
      log_alpha: scalar log α (the trained parameter).
      log_pi: log-probabilities of fresh policy actions, [N].
      target_entropy: H̄.

    Returns:
      `(loss, {"alpha": α})`.
    """
    chex.assert_rank(log_alpha, 0)
    chex.assert_rank(log_pi, 1)
    loss = -jnp.mean(log_alpha * sg(log_pi + target_entropy))
    return loss, {"alpha": sg(jnp.exp(log_alpha))}
