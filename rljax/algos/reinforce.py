"""Importance-weighted REINFORCE, as in rlplay's tutorial, compiled end to end.

The acting (behaviour) policy mu may lag the learner pi by `behaviour_lag` updates,
as rlplay's parallel actors do; its log-probabilities are stored at collection.
The loss weighs each step by rho_t = min(pi(a_t|s_t) / mu(a_t|s_t), c_bar) and uses
per-decision importance-weighted returns bootstrapped by a critic at the fragment
end and at time-limit cuts:

    G_t = r_t + gamma_t * (rho_{t+1} G_{t+1}  or  V(s_{t+1}) at a cut)
    loss = -mean(rho_t * (G_t - b_t) * log pi(a_t|s_t)) - c_H * H(pi) + c_V * (V - G)^2 / 2

Defaults reproduce the rlplay seed: T = 25, B = 8, gamma 0.99, entropy 0.01, Adam
1e-2 on CartPole, with the previous action in the policy's input.
"""
from __future__ import annotations

import jax

from rljax import losses, returns
from rljax.algos import onpolicy
from rljax.config import config_class, static
from rljax.distributions import categorical_log_prob
from rljax.types import Result, Trajectory


@config_class
class Config(onpolicy.ActorCriticConfig):
    prev_action: bool = static(True, doc="append the one-hot previous action (rlplay)")
    num_envs: int = static(8, doc="parallel envs B")
    num_steps: int = static(25, doc="fragment length T")
    total_steps: int = static(300_000, doc="env steps in all")
    hidden_sizes: tuple[int, ...] = static((32,), doc="MLP torso sizes")
    activation: str = static("relu", doc="tanh | relu | elu | gelu")
    behaviour_lag: int = static(0, doc="updates by which the acting policy lags the learner")
    baseline: bool = static(True, doc="subtract V(s_t) from the return")

    lr: float = 0.01
    gamma: float = 0.99
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    c_bar: float = float("inf")
    max_grad_norm: float = float("inf")


def loss_fn(config: Config, agent):
    def loss(params, traj: Trajectory):
        logits, value = onpolicy.recompute(agent, params, traj)
        value_sg = jax.lax.stop_gradient(value)
        log_mu = traj.outputs.log_prob
        log_rho = jax.lax.stop_gradient(categorical_log_prob(logits, traj.action) - log_mu)
        v_t = onpolicy.successor_values_of(agent, params, traj, value_sg)
        g_t = returns.over_envs(
            returns.discounted_returns, traj.reward, onpolicy.discounts(config, traj), v_t,
            truncated_t=traj.truncated.astype(value.dtype), log_rho_t=log_rho, c_bar=config.c_bar)
        pg, pg_metrics = losses.importance_weighted_pg_loss(
            logits, traj.action, g_t, log_mu, c_bar=config.c_bar,
            baseline=value_sg if config.baseline else None)
        v_loss, _ = losses.value_loss(value, g_t)
        ent, ent_metrics = losses.entropy_loss(logits)
        total = pg + config.vf_coef * v_loss + config.ent_coef * ent
        return total, {"policy_loss": pg, "value_loss": v_loss, **pg_metrics, **ent_metrics}

    return loss


def loop(config: Config) -> onpolicy.Loop:
    """REINFORCE as a resumable `onpolicy.Loop` (`init`, `run` in pieces)."""
    if config.behaviour_lag < 0:
        raise ValueError(f"behaviour_lag must be >= 0, got {config.behaviour_lag}")
    return onpolicy.one_update_per_rollout_loop(config, loss_fn, behaviour_lag=config.behaviour_lag)


def train(config: Config, rng, *, callback=None, callback_every: int = 1) -> Result:
    """Train REINFORCE; pure and jit-able; vmap over `rng` and traced config fields."""
    return onpolicy.train_loop(loop(config), rng, callback=callback,
                               callback_every=callback_every)
