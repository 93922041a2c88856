"""Importance-weighted REINFORCE, as in rlplay's tutorial, compiled end to end.

The acting (behaviour) policy mu may lag the learner pi by `behaviour_lag` updates,
as rlplay's parallel actors do; its log-probabilities are stored at collection.
The loss weighs each step by rho_t = min(pi(a_t|s_t) / mu(a_t|s_t), c_bar) and uses
per-decision importance-weighted returns bootstrapped by a critic at the fragment
end and at time-limit cuts:

    G_t = r_t + gamma_t * (rho_{t+1} G_{t+1}  or  V(s_{t+1}) at a cut)
    loss = -mean(rho_t * (G_t - b_t) * log pi(a_t|s_t)) - c_H * H(pi) + c_V * (V - G)^2 / 2

The defaults are generic; `reinforce.preset("rlplay")` is the rlplay seed: T = 25,
B = 8, gamma 0.99, entropy 0.01, Adam 1e-2 without clipping, one hidden layer of 32,
with the previous action in the policy's input.
"""
from __future__ import annotations

import jax

from rljax import losses, returns
from rljax.algos import onpolicy
from rljax.algos.base import train_loop
from rljax.config import (Preset, at_least, config_class, preset_function, non_negative, positive,
                          static, traced)
from rljax.types import Result, Trajectory


@config_class
class Config(onpolicy.ActorCriticConfig):
    """Generic REINFORCE defaults (sensible on any env); presets: `PRESETS`."""

    num_envs: int = static(8, doc="parallel envs B", check=at_least(1))
    num_steps: int = static(25, doc="fragment length T", check=at_least(1))
    behaviour_lag: int = static(0, doc="updates by which the acting policy lags the learner",
                                check=non_negative)
    baseline: bool = static(True, doc="subtract V(s_t) from the return")

    lr: float = traced(1e-3, doc="Adam learning rate")
    c_bar: float = traced(float("inf"), doc="clip of the importance weights (inf: none)",
                          check=positive)


PRESETS = {
    "rlplay": Preset(
        "rlplay's CartPole REINFORCE tutorial: 8x25, gamma 0.99, entropy 0.01, Adam 0.01 "
        "without gradient clipping, one hidden layer of 32 (ReLU), the one-hot previous "
        "action in the input. Tuned for CartPole",
        dict(prev_action=True, total_steps=300_000, hidden_sizes=(32,), activation="relu",
             lr=0.01, max_grad_norm=float("inf"))),
}


preset = preset_function(Config, PRESETS)


make_agent = onpolicy.make_agent


def loss_fn(config: Config, agent):
    def loss(params, traj: Trajectory):
        dist, value = onpolicy.recompute(agent, params, traj)
        value_sg = jax.lax.stop_gradient(value)
        log_pi = dist.log_prob(traj.action)
        log_mu = traj.outputs.log_prob
        log_rho = jax.lax.stop_gradient(log_pi - log_mu)
        v_t = onpolicy.successor_values_of(agent, params, traj, value_sg)
        g_t = returns.over_envs(
            returns.discounted_returns, traj.reward, onpolicy.discounts(config, traj), v_t,
            truncated_t=traj.truncated, log_rho_t=log_rho, c_bar=config.c_bar)
        pg, pg_metrics = losses.importance_weighted_pg_loss(
            log_pi, log_mu, g_t, c_bar=config.c_bar,
            baseline=value_sg if config.baseline else None)
        v_loss, _ = losses.value_loss(value, g_t)
        ent, ent_metrics = losses.entropy_loss(dist.entropy())
        total = pg + config.vf_coef * v_loss + config.ent_coef * ent
        return total, {"policy_loss": pg, "value_loss": v_loss, **pg_metrics, **ent_metrics}

    return loss


def loop(config: Config) -> onpolicy.Loop:
    """REINFORCE as a resumable `Loop` (`init`, `run` in pieces)."""
    return onpolicy.one_update_per_rollout_loop(config, loss_fn, behaviour_lag=config.behaviour_lag)


def train(config: Config, rng, *, callback=None, callback_every: int = 1) -> Result:
    """Train REINFORCE; pure and jit-able; vmap over `rng` and traced config fields."""
    return train_loop(loop(config), rng, callback=callback, callback_every=callback_every)
