"""PPO (Schulman et al. 2017), feedforward and recurrent through one code path.

    from rljax.algos import ppo
    result = jax.jit(ppo.train)(ppo.Config(), jax.random.key(0))
    result = jax.jit(ppo.train)(ppo.Config(env_id="CartPole-P-v1", core="gru"), key)

A recurrent network keeps the rollout's `[T, B]` layout, so minibatches split the
envs and the loss re-runs the core from the stored `carry0` with masked resets
(BPTT over whole rollout sequences); in the first epoch the recomputed
log-probabilities equal the acting ones, so the ratio is exactly 1. A feedforward
network's carry is `()`, so its minibatches are shuffled transitions, as in
CleanRL, laid out flat `[b, ...]` (a feedforward network applies to any leading
shape), which spares the transposing copies that a `[1, b]` sequence layout costs
in the weight-gradient matmuls.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from rljax import losses, parallel, returns
from rljax.algos import onpolicy
from rljax.algos.base import train_loop
from rljax.algos.common import make_env
from rljax.config import Preset, at_least, config_class, preset_function, positive, probability, static, traced
from rljax.learner import TrainState, make_learner
from rljax.types import Result, Trajectory


@config_class
class Config(onpolicy.ActorCriticConfig):
    """Defaults: the well-known CartPole PPO (CleanRL / PureJaxRL), sensible on any env."""

    num_epochs: int = static(4, doc="passes over each rollout", check=at_least(1))
    num_minibatches: int = static(4, doc="minibatches per epoch", check=at_least(1))
    anneal_lr: bool = static(True, doc="linear learning-rate decay to 0")
    normalize_advantages: bool = static(True, doc="per-minibatch advantage normalisation")
    clip_value: bool = static(True, doc="PPO value clipping (CleanRL/PureJaxRL default)")

    gae_lambda: float = traced(0.95, doc="GAE lambda", check=probability)
    clip_eps: float = traced(0.2, doc="PPO ratio clip epsilon (also the value clip)", check=positive)

    def validate(self):
        onpolicy.check_minibatches(self, self.num_minibatches)


PRESETS = {
    "recurrent": Preset(
        "Recurrent PPO: a 128-unit embedding, a GRU-128 core, separate 128-unit heads on one "
        "trunk; 16 envs and lr 2e-3, tuned on CartPole-P-v1 (velocities hidden), where it "
        "reaches 500 within 1e6 steps (benchmarks/onpolicy_learning.md)",
        dict(core="gru", core_size=128, hidden_sizes=(128,), head_sizes=(128,),
             activation="relu", shared=True, num_envs=16, lr=2e-3)),
    "pendulum": Preset(
        "Gaussian PPO for continuous control, tuned on Pendulum-v1 (benchmarks/continuous.md): "
        "16 envs x 128 steps, 10 epochs of 8 minibatches, lr 1e-3 annealed, gamma 0.95, no "
        "entropy bonus, observation and reward normalisation, 999,424 env steps (488 updates)",
        dict(env_id="Pendulum-v1", policy="gaussian", num_envs=16, num_steps=128,
             total_steps=999_424, num_epochs=10, num_minibatches=8, lr=1e-3, gamma=0.95,
             gae_lambda=0.95, ent_coef=0.0, normalize_obs=True, normalize_reward=True)),
    "pendulum_recurrent": Preset(
        "The `pendulum` preset with a GRU-64 between 64-unit layers (separate actor and critic "
        "trunks), for Pendulum-P-v1 (angular velocity hidden; benchmarks/continuous.md)",
        dict(env_id="Pendulum-P-v1", policy="gaussian", num_envs=16, num_steps=128,
             total_steps=999_424, num_epochs=10, num_minibatches=8, lr=1e-3, gamma=0.95,
             gae_lambda=0.95, ent_coef=0.0, normalize_obs=True, normalize_reward=True,
             core="gru", core_size=64, hidden_sizes=(64,), head_sizes=(64,))),
}


preset = preset_function(Config, PRESETS)


def recurrent_config(**changes) -> Config:
    """The `recurrent` preset (tuned on CartPole-P-v1), with `changes` on top."""
    return preset("recurrent", **changes)


make_agent = onpolicy.make_agent


class Batch(NamedTuple):
    """Sequences for the loss, `[T, b, ...]` (feedforward: flat transitions `[b, ...]`)."""

    obs: jax.Array
    first: jax.Array
    action: jax.Array
    log_prob: jax.Array   # behaviour log pi(a)
    value: jax.Array      # behaviour V(obs), for value clipping
    advantage: jax.Array
    target: jax.Array


def make_batch(config: Config, agent, params, traj: Trajectory) -> tuple[Batch, object]:
    """GAE advantages and value targets; returns `(batch, carry0)` in sequence layout."""
    out = traj.outputs
    v_t = onpolicy.successor_values_of(agent, params, traj, out.value)
    adv = returns.over_envs(returns.generalized_advantage, traj.reward,
                            onpolicy.discounts(config, traj), out.value, v_t,
                            lambda_=config.gae_lambda, truncated_t=traj.truncated)
    batch = Batch(traj.obs, traj.first, traj.action, out.log_prob, out.value, adv, adv + out.value)
    if config.core is None:   # transitions, not sequences: [T, B] -> [T * B]
        batch = jax.tree.map(lambda x: x.reshape((-1, *x.shape[2:])), batch)
    return batch, traj.carry0



def _normalize(adv):
    """`(adv - mean) / std` over the minibatch (over all devices' minibatches)."""
    mean = parallel.pmean(adv.mean())
    var = parallel.pmean(jnp.mean(jnp.square(adv - mean)))
    return (adv - mean) / (jnp.sqrt(var) + 1e-8)


def loss_fn(config: Config, agent):
    """`(params, (batch, carry0)) -> (loss, metrics)`: clipped surrogate + value + entropy.

    Under data parallelism advantages are normalised with statistics over the
    minibatches of all devices (the loss itself is averaged by the learner)."""

    def loss(params, data):
        batch, carry0 = data
        _, (dist, value) = agent.unroll(params, carry0, batch.obs, batch.first)
        adv = _normalize(batch.advantage) if config.normalize_advantages else batch.advantage
        pg, pg_metrics = losses.ppo_clip_loss(dist.log_prob(batch.action), batch.log_prob, adv,
                                              clip_eps=config.clip_eps)
        if config.clip_value:
            v_loss, _ = losses.clipped_value_loss(value, batch.value, batch.target,
                                                  clip_eps=config.clip_eps)
        else:
            v_loss, _ = losses.value_loss(value, batch.target)
        ent, ent_metrics = losses.entropy_loss(dist.entropy())
        total = pg + config.vf_coef * v_loss + config.ent_coef * ent
        return total, {"policy_loss": pg, "value_loss": v_loss, **pg_metrics, **ent_metrics}

    return loss


def epoch_minibatches(config: Config, data, key):
    """One epoch's `M` minibatches, stacked on a leading axis for `lax.scan`: a fresh
    permutation of the split axis (flat transitions, or the envs of recurrent
    sequences), gathered once for the whole epoch and cut into `M` equal parts.
    Returns `(batch [M, ...], carry0 [M, ...])`."""
    batch, carry0 = data
    m = config.num_minibatches
    if config.core is None:
        n = batch.action.shape[0]
        perm = jax.random.permutation(key, n)
        return jax.tree.map(lambda x: x[perm].reshape((m, n // m, *x.shape[1:])), batch), carry0
    n = batch.action.shape[1]
    perm = jax.random.permutation(key, n)
    over_envs = lambda x: jnp.moveaxis(x[:, perm].reshape((x.shape[0], m, n // m, *x.shape[2:])), 1, 0)
    return (jax.tree.map(over_envs, batch),
            jax.tree.map(lambda x: x[perm].reshape((m, n // m, *x.shape[1:])), carry0))


def loop(config: Config) -> onpolicy.Loop:
    """PPO as a resumable `Loop` (`init`, `run` in pieces)."""
    env, env_params, spec = make_env(config)
    agent = make_agent(config, spec)
    grad_steps = config.num_updates * config.num_epochs * config.num_minibatches
    lr = optax.linear_schedule(config.lr, 0.0, grad_steps) if config.anneal_lr else config.lr
    tx = onpolicy.adam(config, lr)
    learner = make_learner(loss_fn(config, agent), tx)

    def learn(train_state: TrainState, traj: Trajectory, key):
        data = make_batch(config, agent, train_state.params, traj)

        def epoch(ts, k):
            return jax.lax.scan(learner.update, ts, epoch_minibatches(config, data, k))

        train_state, metrics = jax.lax.scan(epoch, train_state,
                                            jax.random.split(key, config.num_epochs))
        return train_state, jax.tree.map(jnp.mean, metrics)

    return onpolicy.make_loop(config, agent=agent, env=env, env_params=env_params,
                              obs_shape=spec.obs_shape, tx=tx, learn=learn)


def train(config: Config, rng, *, callback=None, callback_every: int = 1) -> Result:
    """Train PPO; pure and jit-able; vmap over `rng` (seeds) and traced config fields."""
    return train_loop(loop(config), rng, callback=callback, callback_every=callback_every)
