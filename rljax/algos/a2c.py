"""A2C (Mnih et al. 2016), as SaLinA's tutorial builds it, compiled end to end.

One gradient step per rollout on actor and critic together; rollouts continue
across updates. Advantages are GAE(λ) (λ = 0: SaLinA's TD(0) error; λ = 1:
Monte-Carlo) or n-step. A recurrent core (rlstructures' recurrent agent) is one
config field away: `a2c.Config(core="gru")`.

The defaults are generic (no time limit of their own, GAE(0.95), gradient
clipping); `a2c.preset("salina")` is the SaLinA seed configuration: 8 envs x 16
steps, gamma 0.95, TD(0), entropy 0.001, critic 1.0, policy 0.1, one hidden layer
of 32, Adam lr 0.01, no clipping, episodes cut at 100 steps.
"""
from __future__ import annotations

import jax

from rljax import losses, returns
from rljax.algos import onpolicy
from rljax.algos.base import train_loop
from rljax.config import (Preset, at_least, config_class, preset_function, one_of, probability,
                          static, traced)
from rljax.types import Result, Trajectory


@config_class
class Config(onpolicy.ActorCriticConfig):
    """Generic A2C defaults (sensible on any env); presets: `PRESETS`."""

    num_envs: int = static(8, doc="parallel envs B", check=at_least(1))
    num_steps: int = static(16, doc="rollout length T per update", check=at_least(1))
    advantage: str = static("gae", doc="'gae' (lambda in gae_lambda) or 'nstep'",
                            check=one_of("gae", "nstep"))
    n_step: int = static(5, doc="n of n-step returns when advantage='nstep'", check=at_least(1))

    lr: float = traced(1e-3, doc="Adam learning rate")
    gae_lambda: float = traced(0.95, doc="GAE lambda (0: TD(0) error, 1: Monte-Carlo)",
                               check=probability)
    pg_coef: float = traced(1.0, doc="weight of the policy-gradient loss")


PRESETS = {
    "salina": Preset(
        "SaLinA's CartPole A2C tutorial: 8x16, gamma 0.95, TD(0), one hidden layer of 32, "
        "Adam 0.01 without gradient clipping, episodes cut at 100 steps. Tuned for CartPole "
        "only; it reaches the 100-step maximum, then may collapse on long runs (~5M steps)",
        dict(max_episode_steps=100, total_steps=200_000, hidden_sizes=(32,), activation="relu",
             lr=0.01, gamma=0.95, gae_lambda=0.0, ent_coef=0.001, vf_coef=1.0, pg_coef=0.1,
             max_grad_norm=float("inf"))),
}


preset = preset_function(Config, PRESETS)


make_agent = onpolicy.make_agent


def advantages(config: Config, agent, params, traj: Trajectory, value):
    """`(advantage, value_target)`, `[T, B]`, from values `value` (no gradient)."""
    v_t = onpolicy.successor_values_of(agent, params, traj, value)
    discount_t = onpolicy.discounts(config, traj)
    if config.advantage == "gae":
        adv = returns.over_envs(returns.generalized_advantage, traj.reward, discount_t, value,
                                v_t, lambda_=config.gae_lambda, truncated_t=traj.truncated)
        return adv, adv + value
    target = returns.over_envs(returns.n_step_returns, traj.reward, discount_t, v_t,
                               n=config.n_step, truncated_t=traj.truncated)
    return target - value, target


def loss_fn(config: Config, agent):
    def loss(params, traj: Trajectory):
        dist, value = onpolicy.recompute(agent, params, traj)
        adv, target = advantages(config, agent, params, traj, jax.lax.stop_gradient(value))
        pg, _ = losses.policy_gradient_loss(dist.log_prob(traj.action), adv)
        v_loss, _ = losses.value_loss(value, target)
        ent, ent_metrics = losses.entropy_loss(dist.entropy())
        total = config.pg_coef * pg + config.vf_coef * v_loss + config.ent_coef * ent
        return total, {"policy_loss": pg, "value_loss": v_loss, **ent_metrics}

    return loss


def loop(config: Config) -> onpolicy.Loop:
    """A2C as a resumable `Loop` (`init`, `run` in pieces)."""
    return onpolicy.one_update_per_rollout_loop(config, loss_fn)


def train(config: Config, rng, *, callback=None, callback_every: int = 1) -> Result:
    """Train A2C; pure and jit-able; vmap over `rng` and traced config fields."""
    return train_loop(loop(config), rng, callback=callback, callback_every=callback_every)
