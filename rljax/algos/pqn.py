"""PQN (Gallici et al. 2024): Q-learning over vectorised envs, no replay, no target net.

    from rljax.algos import pqn
    result = jax.jit(pqn.train)(pqn.Config(), jax.random.key(0))
    result = jax.jit(pqn.train)(pqn.Config(env_id="CartPole-P-v1", core="gru"), key)

Each update: `num_envs` envs act ε-greedily for `num_steps` steps (the rollout of
the on-policy loop, `onpolicy.make_loop`, with ε from a linear schedule); Q(λ)
targets (`returns.q_lambda`, Peng's Q(λ) with a greedy bootstrap) are computed once
from the Q-values the actor saw; then `num_epochs` passes of `num_minibatches`
minibatches regress Q(s_t, a_t) onto them. LayerNorm in the Q-network (`layer_norm`)
is what makes this stable without a target network.

Termination vs truncation as everywhere in rljax: γₜ = γ·(1 - terminatedₜ), and the
successor value at a time-limit cut is max_a Q(final_observation), recorded at
collection (`rollout.successor_values`, the one place that bootstrap is decided).

A recurrent core (`core=`, any of `rljax.nets.CORES`) gives recurrent PQN: minibatches split the envs
and the loss re-runs the core over whole rollout sequences from the stored `carry0`
with masked resets, as recurrent PPO does; in the first epoch the recomputed
Q-values equal the acting ones.

References:
  Gallici, Fellows, Ellis, Pou, Masmitja, Foerster & Martin, Simplifying Deep Temporal
  Difference Learning, 2024 (purejaxql); Peng & Williams, Incremental Multi-Step
  Q-Learning, 1996.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from rljax import normalize, agents, losses, nets, returns
from rljax.algos import common, onpolicy
from rljax.algos.base import Loop, train_loop
from rljax.algos.qlearning import linear_epsilon
from rljax.config import (Preset, at_least, config_class, each, non_negative, one_of, positive,
                          preset_function, probability, static, traced)
from rljax.envs import EnvSpec
from rljax.learner import TrainState, make_learner
from rljax.rollout import successor_values
from rljax.types import Result, Trajectory


@config_class
class Config(common.EnvConfig):
    """Defaults: purejaxql's CartPole PQN (32 envs x 64 steps, 4 epochs x 16 minibatches,
    2x128 ReLU with LayerNorm, Adam 1e-4, λ 0.95, ε 1 -> 0.05 over 20% of the run)."""

    num_envs: int = static(32, doc="parallel envs B", check=at_least(1))
    num_steps: int = static(64, doc="rollout length T per update", check=at_least(1))
    total_steps: int = static(500_000, doc="env steps per seed (num_envs * num_steps per update)",
                              check=at_least(1))
    num_epochs: int = static(4, doc="passes over each rollout", check=at_least(1))
    num_minibatches: int = static(16, doc="minibatches per epoch (recurrent: split the envs)",
                                  check=at_least(1))
    hidden_sizes: tuple[int, ...] = static((128, 128), doc="MLP torso sizes", check=each(positive))
    activation: str = static("relu", doc="tanh | relu | elu | gelu",
                             check=one_of(*nets.mlp.ACTIVATIONS))
    layer_norm: bool = static(True, doc="LayerNorm before every activation (PQN's stabiliser)")
    core: str | None = static(None, doc="recurrent core: None (feedforward), gru, lstm, mingru, "
                              "lru, s5 or ffm (rljax.nets.CORES)")
    core_size: int = static(128, doc="recurrent core width", check=at_least(1))
    core_layers: int = static(1, doc="stacked core layers", check=at_least(1))
    head_sizes: tuple[int, ...] = static((), doc="MLP layers after the core", check=each(positive))
    anneal_lr: bool = static(False, doc="linear learning-rate decay to 0")
    scan_unroll: int = static(1, doc="lax.scan unroll of the rollout loop", check=at_least(1))

    lr: float = traced(1e-4, doc="Adam learning rate", check=non_negative)
    gamma: float = traced(0.99, doc="discount factor", check=non_negative)
    q_lambda: float = traced(0.95, doc="lambda of the Q(lambda) targets (0: one-step Q-learning)",
                             check=probability)
    eps_start: float = traced(1.0, doc="initial exploration epsilon", check=probability)
    eps_end: float = traced(0.05, doc="final exploration epsilon", check=probability)
    eps_decay: float = traced(0.2, doc="fraction of total_steps over which epsilon decays "
                              "linearly", check=non_negative)
    max_grad_norm: float = traced(10.0, doc="global-norm gradient clip (inf: none)",
                                  check=positive)

    @property
    def num_updates(self) -> int:
        return self.total_steps // (self.num_envs * self.num_steps)

    def validate(self):
        onpolicy.check_updates(self)
        nets.initial_carry(self.core, self.core_size, 1)   # names a bad core kind
        onpolicy.check_minibatches(self, self.num_minibatches)
        if common.make_env(self)[2].num_actions is None:
            raise ValueError(f"PQN needs discrete actions; {self.env_id} has a Box action "
                             f"space (use sac, or ppo with a Gaussian policy)")


PRESETS = {
    "recurrent": Preset(
        "Recurrent PQN: a 128-unit embedding, a GRU-128 core and a 128-unit head, all with "
        "LayerNorm; for partially observable envs such as CartPole-P-v1",
        dict(core="gru", core_size=128, hidden_sizes=(128,), head_sizes=(128,),
             num_minibatches=8)),
}
preset = preset_function(Config, PRESETS)


def network(config: Config, spec: EnvSpec):
    """The LayerNorm Q-network (with observation normalisation when asked)."""
    if spec.num_actions is None:
        raise ValueError("PQN needs discrete actions; for a Box action space use sac")
    return normalize.observing(nets.QNetwork(spec.num_actions, nets.Trunk(
        hidden_sizes=tuple(config.hidden_sizes), activation=config.activation,
        core=config.core, core_size=config.core_size, core_layers=config.core_layers,
        head_sizes=tuple(config.head_sizes),
        layer_norm=config.layer_norm, **common.torso_kwargs(config, spec))), config)


def make_agent(config: Config, spec: EnvSpec):
    """The ε-greedy Q agent with `value = max_a Q` (greedy for evaluation)."""
    return agents.q_agent(network(config, spec), with_value=True)


def epsilon(config: Config, update):
    """ε of the rollout of update `update` (linear in the env steps done before it)."""
    steps = update * (config.num_envs * config.num_steps)
    return linear_epsilon(steps, start=config.eps_start, end=config.eps_end,
                          duration=config.eps_decay * config.total_steps)


class Batch(NamedTuple):
    """Sequences for the loss, `[T, b, ...]` (feedforward: `[1, b, ...]`)."""

    obs: jax.Array
    first: jax.Array
    action: jax.Array
    target: jax.Array


def targets(config: Config, agent, params, traj: Trajectory) -> jax.Array:
    """Q(λ) targets `[T, B]` from the Q-values the actor saw (`traj.outputs.q`), the
    greedy value after the fragment and max_a Q(final_obs) at truncations."""
    _, q_last = agent.unroll(params, traj.last_carry, traj.last_obs[None], traj.last_first[None])
    v_t = successor_values(traj, jnp.max(q_last[0], -1), jnp.max(traj.outputs.q, -1))
    discount_t = config.gamma * (1.0 - traj.terminated.astype(jnp.float32))
    return returns.over_envs(returns.q_lambda, traj.reward, discount_t, v_t,
                             lambda_=config.q_lambda, truncated_t=traj.truncated)


def make_batch(config: Config, agent, params, traj: Trajectory):
    """`(batch, carry0)` in sequence layout (feedforward: shuffled transitions)."""
    y = jax.lax.stop_gradient(targets(config, agent, params, traj))
    batch = Batch(traj.obs, traj.first, traj.action, y)
    if config.core is None:   # [T, B] -> [1, T * B]
        batch = jax.tree.map(lambda x: x.reshape((1, -1, *x.shape[2:])), batch)
    return batch, traj.carry0


def loss_fn(agent):
    """`(params, (batch, carry0)) -> (loss, metrics)`: ½ (Q(s_t, a_t) - y_t)²."""

    def loss(params, data):
        batch, carry0 = data
        _, q = agent.unroll(params, carry0, batch.obs, batch.first)
        q_a = jnp.take_along_axis(q, batch.action[..., None].astype(jnp.int32), axis=-1)[..., 0]
        value_loss, _ = losses.value_loss(q_a, batch.target)
        return value_loss, {"q_mean": jnp.mean(q_a),
                            "td_abs": jnp.mean(jnp.abs(batch.target - q_a))}

    return loss


def _minibatch_indices(config: Config, n: int, key):
    """`[E * M, n / M]`: each epoch a fresh permutation of the sequence axis."""
    perms = jax.vmap(lambda k: jax.random.permutation(k, n))(
        jax.random.split(key, config.num_epochs))
    return perms.reshape(config.num_epochs * config.num_minibatches, n // config.num_minibatches)


def loop(config: Config) -> Loop:
    """PQN as a resumable `Loop` on the on-policy loop (`init`, `run` in pieces)."""
    env, env_params, spec = common.make_env(config)
    agent = make_agent(config, spec)
    grad_steps = config.num_updates * config.num_epochs * config.num_minibatches
    lr = optax.linear_schedule(config.lr, 0.0, grad_steps) if config.anneal_lr else config.lr
    tx = onpolicy.adam(config, lr)
    learner = make_learner(loss_fn(agent), tx)

    def learn(train_state: TrainState, traj: Trajectory, key):
        batch, carry0 = make_batch(config, agent, train_state.params, traj)

        def minibatch_step(ts, idx):
            data = (jax.tree.map(lambda x: x[:, idx], batch),
                    jax.tree.map(lambda x: x[idx], carry0))
            return learner.update(ts, data)

        idx = _minibatch_indices(config, batch.action.shape[1], key)
        train_state, metrics = jax.lax.scan(minibatch_step, train_state, idx)
        return train_state, jax.tree.map(jnp.mean, metrics)

    return onpolicy.make_loop(config, agent=agent, env=env, env_params=env_params,
                              obs_shape=spec.obs_shape, tx=tx, learn=learn,
                              step_kwargs=lambda update: {"epsilon": epsilon(config, update)})


def train(config: Config, rng, *, callback=None, callback_every: int = 1) -> Result:
    """Train PQN; pure and jit-able; vmap over `rng` (seeds) and traced config fields.

    Returns:
      `Result(TrainState, metrics)`, metrics `[num_updates]`: env_steps, episode_return,
      episode_length, episodes, loss, q_mean, td_abs, grad_norm, epsilon.
    """
    return train_loop(loop(config), rng, callback=callback, callback_every=callback_every)
