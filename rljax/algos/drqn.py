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

from rljax.algos import common
from rljax.algos.qlearning import QConfig, WindowLayout, q_network, train_q
from rljax.config import config_class, static
from rljax.types import Result


@config_class
class Config(QConfig):
    """DQN's fields plus the recurrent core and the sequence layout."""

    env_id: str = static("CartPole-P-v1")
    hidden_sizes: tuple[int, ...] = static((64,))
    core: str = static("gru", doc="'gru' or 'lstm'")
    core_size: int = static(128)
    head_sizes: tuple[int, ...] = static((64,))
    batch_size: int = static(32, doc="sequences per gradient step")
    train_every: int = static(40)
    target_update_every: int = static(1_000)
    burn_in: int = static(10, doc="steps that only refresh the stored carry")
    unroll_length: int = static(20, doc="steps trained with BPTT after the burn-in")
    period: int = static(15, doc="steps between sequence starts (overlap = length - period)")
    initial_carry: str = static("stored", doc="'stored' (R2D2) or 'zero' (Machin/H&S)")

    def __post_init__(self):
        super().__post_init__()
        if self.initial_carry not in ("stored", "zero"):
            raise ValueError(f"initial_carry must be 'stored' or 'zero', got {self.initial_carry!r}")
        if self.burn_in < 0 or self.unroll_length < 1:
            raise ValueError("need burn_in >= 0 and unroll_length >= 1")


def make_network(config: Config):
    _, _, _, num_actions = common.make_env(config)
    return q_network(config, num_actions, core=config.core, core_size=config.core_size,
                     head_sizes=config.head_sizes)


def layout(config: Config) -> WindowLayout:
    length = config.burn_in + config.unroll_length
    return WindowLayout(length=length, period=config.period, burn_in=config.burn_in,
                        loss_steps=config.unroll_length,
                        stored_carry=config.initial_carry == "stored")


def train(config: Config, rng) -> Result:
    """Train DRQN; pure, jit/vmap-able over `rng` and traced config fields.

    Returns:
      `Result(TrainState, metrics)`, as `dqn.train`.
    """
    return train_q(config, rng, make_network(config), layout(config))
