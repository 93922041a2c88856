"""DQN (Mnih et al. 2015) with replay, a target network, double Q and n-step
targets as options, and an observation history of depth `history` (Machin's
`history_depth`) so a feedforward Q-network can see the last k observations.

    from rljax.algos import dqn
    result = jax.jit(dqn.train)(dqn.Config(), jax.random.key(0))
    seeds = jax.jit(jax.vmap(dqn.train, in_axes=(None, 0)))(dqn.Config(), keys)

Defaults are CleanRL's CartPole DQN: 10 envs, 5e5 env steps, replay 10k, batch 128,
Adam 2.5e-4, learning starts at 10k steps, a gradient step every 10 env steps, hard
target update every 500 env steps, ε 1.0 -> 0.05 over the first 250k steps, γ 0.99,
MLP 120-84 ReLU, squared loss. Termination bootstraps 0; a time-limit truncation
bootstraps from Q(final observation).
"""
from __future__ import annotations

from rljax.algos import common
from rljax.algos.qlearning import QConfig, WindowLayout, q_network, train_q
from rljax.config import config_class
from rljax.types import Result


@config_class
class Config(QConfig):
    """DQN config: every field of `qlearning.QConfig` (env fields included)."""


def make_network(config: Config):
    """The feedforward QNetwork of `config`, for the env it names."""
    _, _, _, num_actions = common.make_env(config)
    return q_network(config, num_actions)


def layout(config: Config) -> WindowLayout:
    """DQN samples windows of `n_step` steps and trains on their first step."""
    return WindowLayout(length=config.n_step, period=1, burn_in=0, loss_steps=1,
                        stored_carry=False)


def train(config: Config, rng) -> Result:
    """Train DQN; pure, jit/vmap-able over `rng` and traced config fields.

    Returns:
      `Result(TrainState, metrics)`, metrics `[total_steps // log_every]`: env_steps,
      episode_return, episode_length, episodes, loss, q_mean, td_abs, grad_norm, epsilon.
    """
    return train_q(config, rng, make_network(config), layout(config))
