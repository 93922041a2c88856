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

from rljax import agents
from rljax.algos import common
from rljax.algos.base import Loop, train_loop
from rljax.algos.qlearning import QConfig, WindowLayout, q_loop, q_network
from rljax.config import config_class, preset_function
from rljax.envs import EnvSpec
from rljax.types import Result


@config_class
class Config(QConfig):
    """DQN config: every field of `qlearning.QConfig` (env fields included)."""


PRESETS: dict = {}
preset = preset_function(Config, PRESETS)


def network(config: Config, spec: EnvSpec):
    """The feedforward QNetwork of `config` for an env's spec."""
    return q_network(config, spec.num_actions, spec=spec)


def make_agent(config: Config, spec: EnvSpec):
    """The ε-greedy Q agent (greedy for evaluation: `step(..., greedy=True)`)."""
    return agents.q_agent(network(config, spec))


def layout(config: Config) -> WindowLayout:
    """DQN samples windows of `n_step` steps and trains on their first step."""
    return WindowLayout(length=config.n_step, period=1, burn_in=0, loss_steps=1,
                        stored_carry=False)


def loop(config: Config) -> Loop:
    """DQN as a resumable `Loop`; one update = `log_every` env steps (one metrics row)."""
    _, _, spec = common.make_env(config)
    return q_loop(config, network(config, spec), layout(config))


def train(config: Config, rng, *, callback=None, callback_every: int = 1) -> Result:
    """Train DQN; pure, jit/vmap-able over `rng` and traced config fields.

    Returns:
      `Result(TrainState, metrics)`, metrics `[total_steps // log_every]`: env_steps,
      episode_return, episode_length, episodes, loss, q_mean, td_abs, grad_norm, epsilon.
    """
    return train_loop(loop(config), rng, callback=callback, callback_every=callback_every)
