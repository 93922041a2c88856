"""The loop shared by the on-policy algorithms (PPO, A2C, REINFORCE).

    collect a rollout (continuing the last one) -> learn from it -> record metrics

runs as one `lax.scan` over updates, so `train(config, rng)` compiles to one
program. An algorithm supplies only its `learn` step. The acting params may lag
the learner by `behaviour_lag` updates (rlplay's parallel actors), which is what
importance weights correct for.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rljax import agents, nets
from rljax.algos.common import EnvConfig, check_divides, make_env, trajectory_metrics
from rljax.config import config_class, static
from rljax.learner import TrainState
from rljax.rollout import init_rollout, rollout, successor_values
from rljax.types import Result, RolloutState, Trajectory


@config_class
class ActorCriticConfig(EnvConfig):
    """Fields every on-policy algorithm has (static: sizes and network; traced: numbers)."""

    num_envs: int = static(4, doc="parallel envs B")
    num_steps: int = static(128, doc="rollout length T per update")
    total_steps: int = static(500_000, doc="env steps in all (num_envs * num_steps per update)")
    hidden_sizes: tuple[int, ...] = static((64, 64), doc="MLP torso sizes")
    activation: str = static("tanh", doc="tanh | relu | elu | gelu")
    core: str | None = static(None, doc="recurrent core: None, 'gru' or 'lstm'")
    core_size: int = static(128, doc="recurrent core width")
    head_sizes: tuple[int, ...] = static((), doc="MLP layers after the core")
    shared: bool = static(False, doc="one trunk for actor and critic (else two)")
    scan_unroll: int = static(4, doc="lax.scan unroll of the rollout loop")

    lr: float = 2.5e-4
    gamma: float = 0.99
    max_grad_norm: float = 0.5
    ent_coef: float = 0.01
    vf_coef: float = 0.5

    @property
    def num_updates(self) -> int:
        return self.total_steps // (self.num_envs * self.num_steps)


def validate(config: ActorCriticConfig) -> None:
    if config.num_updates < 1:
        raise ValueError(
            f"total_steps={config.total_steps} is less than one update of "
            f"num_envs * num_steps = {config.num_envs * config.num_steps} steps")
    for name in ("num_envs", "num_steps"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
    nets.initial_carry(config.core, config.core_size, 1)   # names a bad core kind
    nets.activation(config.activation)


def make_agent(config: ActorCriticConfig, num_actions: int):
    trunk = nets.Trunk(
        hidden_sizes=tuple(config.hidden_sizes), activation=config.activation,
        core=config.core, core_size=config.core_size, head_sizes=tuple(config.head_sizes))
    return agents.actor_critic(nets.ActorCritic(num_actions, trunk, shared=config.shared))


def adam(config, learning_rate) -> optax.GradientTransformation:
    """Adam after global-norm clipping, both from traced config values."""
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                       optax.adam(learning_rate, eps=1e-5))


def bootstrap_value(agent, params, traj: Trajectory) -> jax.Array:
    """V(last_obs) `[B]`, with the masked reset where `last_first`."""
    _, (_, value) = agent.unroll(params, traj.last_carry, traj.last_obs[None], traj.last_first[None])
    return value[0]


def successor_values_of(agent, params, traj: Trajectory, value_t: jax.Array) -> jax.Array:
    """`v_t [T, B]` from values `value_t [T, B]` of `traj.obs` under `params`."""
    last_value = jax.lax.stop_gradient(bootstrap_value(agent, params, traj))
    return successor_values(traj._replace(outputs=traj.outputs._replace(value=value_t)), last_value)


def discounts(config, traj: Trajectory) -> jax.Array:
    """`gamma * (1 - terminated)`, `[T, B]`: only termination stops bootstrapping."""
    return config.gamma * (1.0 - traj.terminated.astype(jnp.float32))


class LoopState(NamedTuple):
    """Everything the on-policy loop carries from one update to the next; saving it
    and continuing with `Loop.run` gives the same result as never stopping."""

    train_state: TrainState
    behaviour: object        # stacked past params [lag + 1, ...] (acting = oldest)
    rollout: RolloutState
    key: jax.Array
    update: jax.Array        # updates done so far, int32


LearnFn = Callable[[TrainState, Trajectory, jax.Array], tuple[TrainState, dict]]


class Loop(NamedTuple):
    """A training run in resumable pieces (all functions pure, jit- and vmap-able):

        state = loop.init(rng)
        state, metrics = loop.run(state, 10)                  # updates 0..9
        state, more = loop.run(state, loop.num_updates - 10)  # the rest

    `run(state, n, *, callback=None, callback_every=1)` calls `callback(metrics)` on the
    host (`jax.debug.callback`) after every `callback_every`-th update of the piece and
    after its last one; under `vmap` it is called once per batch member.
    """

    init: Callable
    run: Callable
    num_updates: int


def make_loop(config: ActorCriticConfig, *, agent, env, env_params, obs_shape,
              tx: optax.GradientTransformation, learn: LearnFn, behaviour_lag: int = 0) -> Loop:
    """The loop of `learn(train_state, traj, key) -> (train_state, metrics)` per rollout."""
    steps_per_update = config.num_envs * config.num_steps

    def init(rng) -> LoopState:
        k_init, k_env, k_loop = jax.random.split(rng, 3)
        params = agent.init(k_init, jnp.zeros(obs_shape, jnp.float32))
        train_state = TrainState(params, tx.init(params), jnp.zeros((), jnp.int32))
        behaviour = jax.tree.map(lambda p: jnp.stack([p] * (behaviour_lag + 1)), params)
        return LoopState(train_state, behaviour,
                         init_rollout(env, env_params, agent, k_env, config.num_envs), k_loop,
                         jnp.zeros((), jnp.int32))

    def update(state: LoopState):
        key, k_roll, k_learn = jax.random.split(state.key, 3)
        acting = jax.tree.map(lambda p: p[0], state.behaviour)
        rollout_state, traj = rollout(agent, acting, env, env_params, state.rollout, k_roll,
                                      config.num_steps, unroll=config.scan_unroll)
        train_state, metrics = learn(state.train_state, traj, k_learn)
        behaviour = jax.tree.map(lambda h, p: jnp.concatenate([h[1:], p[None]]),
                                 state.behaviour, train_state.params)
        metrics = {**metrics, **trajectory_metrics(traj),
                   "env_steps": (state.update + 1).astype(jnp.float32) * steps_per_update}
        return LoopState(train_state, behaviour, rollout_state, key, state.update + 1), metrics

    def run(state: LoopState, num_updates: int, *, callback=None, callback_every: int = 1):
        def body(state, i):
            state, metrics = update(state)
            if callback is not None:
                report = jnp.logical_or((i + 1) % callback_every == 0, i == num_updates - 1)
                jax.lax.cond(report, lambda m: jax.debug.callback(callback, m),
                             lambda m: None, metrics)
            return state, metrics

        return jax.lax.scan(body, state, jnp.arange(num_updates))

    return Loop(init, run, config.num_updates)


def train_loop(loop: Loop, rng, *, callback=None, callback_every: int = 1) -> Result:
    """All of `loop`'s updates from `rng`: what every on-policy `train` returns."""
    state, metrics = loop.run(loop.init(rng), loop.num_updates, callback=callback,
                              callback_every=callback_every)
    return Result(state.train_state, metrics)


def run(config: ActorCriticConfig, rng, *, agent, env, env_params, obs_shape,
        tx: optax.GradientTransformation, learn: LearnFn, behaviour_lag: int = 0) -> Result:
    """Train with `learn(train_state, traj, key) -> (train_state, metrics)` per rollout."""
    return train_loop(make_loop(config, agent=agent, env=env, env_params=env_params,
                                obs_shape=obs_shape, tx=tx, learn=learn,
                                behaviour_lag=behaviour_lag), rng)


def check_minibatches(config, num_minibatches: int) -> None:
    """Recurrent minibatches split envs; feedforward ones split all transitions."""
    if config.core is None:
        check_divides("num_envs * num_steps", config.num_envs * config.num_steps,
                      "num_minibatches", num_minibatches)
    else:
        check_divides("num_envs (recurrent minibatches split whole env sequences)",
                      config.num_envs, "num_minibatches", num_minibatches)


def one_step_per_rollout(learner) -> LearnFn:
    """A `learn` step that takes one gradient step on the whole trajectory (A2C, REINFORCE)."""

    def learn(train_state, traj, key):
        del key
        return learner.update(train_state, traj)

    return learn


def recompute(agent, params, traj: Trajectory):
    """Logits and values of the whole fragment under `params`, from the stored `carry0`
    with masked resets: `(logits [T, B, A], value [T, B])`."""
    _, (logits, value) = agent.unroll(params, traj.carry0, traj.obs, traj.first)
    return logits, value
