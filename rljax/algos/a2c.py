"""A2C (Mnih et al. 2016), as SaLinA's tutorial builds it, compiled end to end.

One gradient step per rollout on actor and critic together; rollouts continue
across updates. Advantages are GAE(λ) (λ = 0: SaLinA's TD(0) error, the default;
λ = 1: Monte-Carlo) or n-step. A recurrent core (rlstructures' recurrent agent)
is one config field away: `a2c.Config(core="gru")`.

Defaults reproduce the SaLinA seed configuration: 8 envs x 16 steps, gamma 0.95,
entropy 0.001, critic 1.0, policy 0.1, one hidden layer of 32, Adam lr 0.01, on
CartPole-v1 limited to 100 steps.
"""
from __future__ import annotations

import jax

from rljax import losses, returns
from rljax.algos import onpolicy
from rljax.config import config_class, static
from rljax.types import Result, Trajectory


@config_class
class Config(onpolicy.ActorCriticConfig):
    max_episode_steps: int | None = static(100, doc="time limit (reported as truncation)")
    num_envs: int = static(8, doc="parallel envs B")
    num_steps: int = static(16, doc="rollout length T per update")
    total_steps: int = static(200_000, doc="env steps in all")
    hidden_sizes: tuple[int, ...] = static((32,), doc="MLP torso sizes")
    activation: str = static("relu", doc="tanh | relu | elu | gelu")
    advantage: str = static("gae", doc="'gae' (lambda in gae_lambda) or 'nstep'")
    n_step: int = static(5, doc="n of n-step returns when advantage='nstep'")

    lr: float = 0.01
    gamma: float = 0.95
    gae_lambda: float = 0.0
    ent_coef: float = 0.001
    vf_coef: float = 1.0
    pg_coef: float = 0.1
    max_grad_norm: float = float("inf")


def advantages(config: Config, agent, params, traj: Trajectory, value):
    """`(advantage, value_target)`, `[T, B]`, from values `value` (no gradient)."""
    v_t = onpolicy.successor_values_of(agent, params, traj, value)
    discount_t = onpolicy.discounts(config, traj)
    truncated = traj.truncated.astype(value.dtype)
    if config.advantage == "gae":
        adv = returns.over_envs(returns.generalized_advantage, traj.reward, discount_t, value,
                                v_t, lambda_=config.gae_lambda * (1.0 - truncated))
        return adv, adv + value
    target = returns.over_envs(returns.n_step_returns, traj.reward, discount_t, v_t,
                               n=config.n_step, truncated_t=truncated)
    return target - value, target


def loss_fn(config: Config, agent):
    def loss(params, traj: Trajectory):
        logits, value = onpolicy.recompute(agent, params, traj)
        adv, target = advantages(config, agent, params, traj, jax.lax.stop_gradient(value))
        pg, _ = losses.policy_gradient_loss(logits, traj.action, adv)
        v_loss, _ = losses.value_loss(value, target)
        ent, ent_metrics = losses.entropy_loss(logits)
        total = config.pg_coef * pg + config.vf_coef * v_loss + config.ent_coef * ent
        return total, {"policy_loss": pg, "value_loss": v_loss, **ent_metrics}

    return loss


def loop(config: Config) -> onpolicy.Loop:
    """A2C as a resumable `onpolicy.Loop` (`init`, `run` in pieces)."""
    if config.advantage not in ("gae", "nstep"):
        raise ValueError(f"advantage must be 'gae' or 'nstep', got {config.advantage!r}")
    return onpolicy.one_update_per_rollout_loop(config, loss_fn)


def train(config: Config, rng, *, callback=None, callback_every: int = 1) -> Result:
    """Train A2C; pure and jit-able; vmap over `rng` and traced config fields."""
    return onpolicy.train_loop(loop(config), rng, callback=callback,
                               callback_every=callback_every)
