"""DRQN (Hausknecht & Stone 2015) with R2D2's stored-state sequence replay.

A recurrent QNetwork (MLP, masked GRU/LSTM core, MLP head) acts with its carry
threaded across steps and reset where an episode starts. Replay holds fixed-length
windows of `burn_in + unroll_length` steps, starting every `period` steps (overlap
= length - period), with the carry the actor had before the window's first step.
The first `burn_in` steps only refresh that carry (no gradient, no loss); the rest
are trained with BPTT. Episode starts inside a window reset the carry (masked), so
windows may span episodes. Target network and double Q apply along the window.

`initial_carry="zero"` with `burn_in=0` gives Hausknecht & Stone's "bootstrapped
random updates" (zero initial state, no burn-in), to compare with the stored state.

    from rljax.algos import drqn
    result = jax.jit(drqn.train)(drqn.Config(env_id="CartPole-P-v1"), jax.random.key(0))

References:
  Hausknecht & Stone, Deep Recurrent Q-Learning for POMDPs, 2015;
  Kapturowski et al., Recurrent Experience Replay in Distributed RL (R2D2), ICLR 2019.
"""
from __future__ import annotations

from rljax import agents
from rljax.algos import common
from rljax.algos.base import Loop, train_loop
from rljax.algos.qlearning import QConfig, WindowLayout, q_loop, q_network
from rljax.config import (Preset, at_least, config_class, each, non_negative, one_of, positive,
                          preset_function, static)
from rljax.envs import EnvSpec
from rljax.types import Result


@config_class
class Config(QConfig):
    """DQN's fields plus the recurrent core and the sequence layout."""

    env_id: str = static("CartPole-P-v1", doc="gymnax id or POMDP variant (`rljax list`)")
    hidden_sizes: tuple[int, ...] = static((64,), doc="MLP sizes before the core",
                                           check=each(positive))
    core: str = static("gru", doc="recurrent core: gru, lstm, mingru, lru, s5 or ffm")
    core_size: int = static(128, doc="recurrent core width", check=at_least(1))
    core_layers: int = static(1, doc="stacked core layers", check=at_least(1))
    head_sizes: tuple[int, ...] = static((64,), doc="MLP sizes after the core",
                                         check=each(positive))
    batch_size: int = static(32, doc="sequences per gradient step", check=at_least(1))
    train_every: int = static(40, doc="env steps (all envs) between training phases",
                              check=at_least(1))
    target_update_every: int = static(1_000, doc="env steps between target updates",
                                      check=at_least(1))
    burn_in: int = static(10, doc="steps that only refresh the stored carry", check=non_negative)
    unroll_length: int = static(20, doc="steps trained with BPTT after the burn-in",
                                check=at_least(1))
    period: int = static(15, doc="steps between sequence starts (overlap = length - period)",
                         check=at_least(1))
    initial_carry: str = static("stored", doc="'stored' (R2D2) or 'zero' (Machin/H&S)",
                                check=one_of("stored", "zero"))

    def validate(self):
        from rljax import nets
        nets.initial_carry(self.core, self.core_size, 1)   # names a bad core kind
        if self.prioritised and (self.buffer_size // self.num_envs) % self.period:
            raise ValueError(f"prioritised replay needs buffer_size // num_envs = "
                             f"{self.buffer_size // self.num_envs} to be a multiple of "
                             f"period={self.period}")


PRESETS: dict = {
    "cartpole_p": Preset(
        "Chosen for CartPole-P-v1 (velocities hidden), by hand, no search: 3-step double Q, "
        "a 50k-step replay (100 full episodes), lr 1e-3, epsilon annealed over the first 20% "
        "of the run; 7 of 8 seeds >= 400 greedy at 5e5 steps "
        "(benchmarks/learners_masked-cartpole.md)",
        dict(env_id="CartPole-P-v1", n_step=3, double_q=True, buffer_size=50_000, lr=1e-3,
             exploration_fraction=0.2)),
}
preset = preset_function(Config, PRESETS)


def network(config: Config, spec: EnvSpec):
    return q_network(config, spec.num_actions, core=config.core, core_size=config.core_size,
                     core_layers=config.core_layers, head_sizes=config.head_sizes, spec=spec)


def make_agent(config: Config, spec: EnvSpec):
    """The recurrent ε-greedy Q agent (greedy for evaluation)."""
    return agents.q_agent(network(config, spec))


def layout(config: Config) -> WindowLayout:
    length = config.burn_in + config.unroll_length
    return WindowLayout(length=length, period=config.period, burn_in=config.burn_in,
                        loss_steps=config.unroll_length,
                        stored_carry=config.initial_carry == "stored")


def loop(config: Config) -> Loop:
    """DRQN as a resumable `Loop`; one update = `log_every` env steps (one metrics row)."""
    _, _, spec = common.make_env(config)
    return q_loop(config, network(config, spec), layout(config))


def train(config: Config, rng, *, callback=None, callback_every: int = 1) -> Result:
    """Train DRQN; pure, jit/vmap-able over `rng` and traced config fields.

    Returns:
      `Result(TrainState, metrics)`, as `dqn.train`.
    """
    return train_loop(loop(config), rng, callback=callback, callback_every=callback_every)
