"""IMPALA-style actor-critic with V-trace (Espeholt et al. 2018), compiled end to end.

The acting (behaviour) policy μ lags the learner π by `behaviour_lag` updates, as
IMPALA's actors (and rlplay's parallel actors) do; the rollout stores log μ(aₜ|sₜ).
One gradient step per rollout on

    L = -mean[ sg(Aₜ) log π(aₜ|sₜ) ] + c_V · ½ mean[ (V(sₜ) - sg(vsₜ))² ] - c_H · mean H(π(·|sₜ))

where `(vs, A) = returns.vtrace(V(sₜ), V(sₜ₊₁), rₜ, γₜ, log π - log μ; λ, ρ̄, c̄)`, with
γₜ = γ·(1 - terminatedₜ), the trace cut at time limits (`truncated_t`) and V(sₜ₊₁)
from `rollout.successor_values` (V(final_observation) at truncations).
`vtrace=False` drops the correction (log ρ := 0: the targets are λ-returns and the
advantages those of an on-policy actor-critic), the baseline of the lag figure.
With `behaviour_lag=0` the recomputed policy is the acting one, so ρ = 1 and the
targets are λ-returns either way. A recurrent core (`core="gru"`) re-runs from the
stored carry with masked resets.

    from rljax.algos import impala
    result = jax.jit(impala.train)(impala.Config(behaviour_lag=8), jax.random.key(0))

References:
  Espeholt et al., IMPALA: Scalable Distributed Deep-RL with Importance Weighted
  Actor-Learner Architectures, ICML 2018.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rljax import losses, returns
from rljax.algos import onpolicy
from rljax.algos.base import train_loop
from rljax.config import (Preset, at_least, config_class, non_negative, positive,
                          preset_function, probability, static, traced)
from rljax.types import Result, Trajectory

sg = jax.lax.stop_gradient


@config_class
class Config(onpolicy.ActorCriticConfig):
    """Generic defaults (16 envs x 20 steps, IMPALA's unroll length), sensible on any env."""

    num_envs: int = static(16, doc="parallel envs B", check=at_least(1))
    num_steps: int = static(20, doc="rollout (unroll) length T per update", check=at_least(1))
    behaviour_lag: int = static(0, doc="updates by which the acting policy lags the learner",
                                check=non_negative)
    vtrace: bool = static(True, doc="V-trace off-policy correction (False: treat the "
                          "behaviour policy as the learner's, log rho := 0)")

    lr: float = traced(1e-3, doc="Adam learning rate", check=non_negative)
    vtrace_lambda: float = traced(1.0, doc="lambda of the V-trace traces", check=probability)
    rho_bar: float = traced(1.0, doc="clip of the importance weights in the TD errors and "
                            "the policy advantage (rho bar)", check=positive)
    c_bar: float = traced(1.0, doc="clip of the trace coefficients (c bar)", check=positive)


PRESETS = {
    "recurrent": Preset(
        "Recurrent IMPALA: a 128-unit embedding, a GRU-128 core, 128-unit heads on one "
        "trunk (the recurrent PPO network)",
        dict(core="gru", core_size=128, hidden_sizes=(128,), head_sizes=(128,),
             activation="relu", shared=True)),
}
preset = preset_function(Config, PRESETS)

make_agent = onpolicy.make_agent


def targets(config: Config, agent, params, traj: Trajectory):
    """The V-trace pieces of a fragment under `params`.

    Returns:
      `(log_pi, value, entropy, log_rho, vs, pg_advantage)`, each `[T, B]`; `log_rho`,
      `vs` and `pg_advantage` carry no gradient.
    """
    dist, value = onpolicy.recompute(agent, params, traj)
    log_pi = dist.log_prob(traj.action)
    log_rho = sg(log_pi - traj.outputs.log_prob)
    if not config.vtrace:
        log_rho = jnp.zeros_like(log_rho)
    value_sg = sg(value)
    v_t = onpolicy.successor_values_of(agent, params, traj, value_sg)
    vs, pg_advantage = returns.over_envs(
        returns.vtrace, value_sg, v_t, traj.reward, onpolicy.discounts(config, traj), log_rho,
        lambda_=config.vtrace_lambda, clip_rho=config.rho_bar, clip_c=config.c_bar,
        truncated_t=traj.truncated)
    return log_pi, value, dist.entropy(), log_rho, sg(vs), sg(pg_advantage)


def loss_fn(config: Config, agent):
    """`(params, traj) -> (loss, metrics)`: V-trace policy gradient + value + entropy."""

    def loss(params, traj: Trajectory):
        log_pi, value, entropy, log_rho, vs, pg_adv = targets(config, agent, params, traj)
        pg, _ = losses.policy_gradient_loss(log_pi, pg_adv)
        v_loss, _ = losses.value_loss(value, vs)
        ent, ent_metrics = losses.entropy_loss(entropy)
        total = pg + config.vf_coef * v_loss + config.ent_coef * ent
        # the raw behaviour ratio of the actions taken (1 where the policies agree)
        rho = jnp.exp(sg(log_pi - traj.outputs.log_prob))
        return total, {"policy_loss": pg, "value_loss": v_loss, "rho_mean": jnp.mean(rho),
                       "rho_clip_frac": jnp.mean(rho > config.rho_bar), **ent_metrics}

    return loss


def loop(config: Config) -> onpolicy.Loop:
    """IMPALA as a resumable `Loop` (`init`, `run` in pieces)."""
    return onpolicy.one_update_per_rollout_loop(config, loss_fn, behaviour_lag=config.behaviour_lag)


def train(config: Config, rng, *, callback=None, callback_every: int = 1) -> Result:
    """Train IMPALA; pure and jit-able; vmap over `rng` and traced config fields."""
    return train_loop(loop(config), rng, callback=callback, callback_every=callback_every)
