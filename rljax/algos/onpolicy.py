"""The loop shared by the on-policy algorithms (PPO, A2C, REINFORCE).

    collect a rollout (continuing the last one) -> learn from it -> record metrics

runs as one `lax.scan` over updates, so `train(config, rng)` compiles to one
program. An algorithm supplies only its `learn` step. The acting params may lag
the learner by `behaviour_lag` updates (rlplay's parallel actors), which is what
importance weights correct for. Under `rljax.parallel.data_parallel` the same loop
runs per device; everything that depends on that layout is asked of
`rljax.parallel`.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rljax import agents, nets, normalize, parallel
from rljax.algos.base import Loop, scan_updates
from rljax.algos.common import (EnvConfig, check_divides, make_env, torso_kwargs,
                                trajectory_metrics)
from rljax.config import at_least, config_class, non_negative, one_of, positive, static, traced
from rljax.envs import EnvSpec
from rljax.learner import TrainState
from rljax.rollout import bootstrap_value, successor_values
from rljax.types import RolloutState, Trajectory

CORES = ("gru", "lstm")


@config_class
class ActorCriticConfig(EnvConfig):
    """Fields every on-policy algorithm has (static: sizes and network; traced: numbers)."""

    num_envs: int = static(4, doc="parallel envs B", check=at_least(1))
    num_steps: int = static(128, doc="rollout length T per update", check=at_least(1))
    total_steps: int = static(500_000, doc="env steps per seed (num_envs * num_steps per update)",
                              check=at_least(1))
    hidden_sizes: tuple[int, ...] = static((64, 64), doc="MLP torso sizes")
    activation: str = static("tanh", doc="tanh | relu | elu | gelu",
                             check=one_of(*nets.mlp.ACTIVATIONS))
    core: str | None = static(None, doc="recurrent core: None (feedforward), gru, lstm, mingru, "
                              "lru, s5 or ffm (rljax.nets.CORES)")
    core_size: int = static(128, doc="recurrent core width", check=at_least(1))
    core_layers: int = static(1, doc="stacked core layers", check=at_least(1))
    head_sizes: tuple[int, ...] = static((), doc="MLP layers after the core")
    shared: bool = static(False, doc="one trunk for actor and critic (else two)")
    policy: str = static("auto", doc="action distribution: auto (categorical for discrete "
                         "actions, gaussian for a Box), categorical, gaussian (state-independent "
                         "log-std; the env clips) or tanh_gaussian", check=one_of(*nets.heads.POLICIES))
    scan_unroll: int = static(1, doc="lax.scan unroll of the rollout loop (1 is fastest on CPU)",
                              check=at_least(1))

    lr: float = traced(2.5e-4, doc="Adam learning rate", check=non_negative)
    gamma: float = traced(0.99, doc="discount factor", check=non_negative)
    max_grad_norm: float = traced(0.5, doc="global-norm gradient clip (inf: none)", check=positive)
    ent_coef: float = traced(0.01, doc="weight of the entropy bonus")
    vf_coef: float = traced(0.5, doc="weight of the value loss")

    @property
    def num_updates(self) -> int:
        return self.total_steps // (self.num_envs * self.num_steps)

    def validate(self):
        check_updates(self)
        bad = [h for h in self.hidden_sizes + self.head_sizes if h < 1]
        if bad:
            raise ValueError(f"hidden_sizes and head_sizes must be >= 1, got {bad}")
        nets.initial_carry(self.core, self.core_size, 1)   # names a bad core kind
        nets.policy_head(make_env(self)[2], self.policy)  # a policy that fits the action space


def check_updates(config) -> None:
    """At least one update of `num_envs * num_steps` env steps fits in `total_steps`."""
    if config.num_updates < 1:
        raise ValueError(
            f"total_steps={config.total_steps} is less than one update of "
            f"num_envs * num_steps = {config.num_envs * config.num_steps} steps")


def make_agent(config: ActorCriticConfig, spec: EnvSpec):
    """The actor-critic `Agent` of `config` for an env's spec (its policy head)."""
    trunk = nets.Trunk(
        hidden_sizes=tuple(config.hidden_sizes), activation=config.activation,
        core=config.core, core_size=config.core_size, core_layers=config.core_layers,
        head_sizes=tuple(config.head_sizes), **torso_kwargs(config, spec))
    net = nets.ActorCritic(nets.policy_head(spec, config.policy), trunk, shared=config.shared)
    return agents.actor_critic(normalize.observing(net, config))


def adam(config, learning_rate) -> optax.GradientTransformation:
    """Adam after global-norm clipping, both from traced config values."""
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                       optax.adam(learning_rate, eps=1e-5))


def successor_values_of(agent, params, traj: Trajectory, value_t: jax.Array) -> jax.Array:
    """`v_t [T, B]` from values `value_t [T, B]` of `traj.obs` under `params`
    (`rollout.successor_values` with the bootstrap after the fragment)."""
    last_value = jax.lax.stop_gradient(bootstrap_value(agent, params, traj))
    return successor_values(traj, last_value, value_t)


def discounts(config, traj: Trajectory) -> jax.Array:
    """`gamma * (1 - terminated)`, `[T, B]`: only termination stops bootstrapping."""
    return config.gamma * (1.0 - traj.terminated.astype(jnp.float32))


def recompute(agent, params, traj: Trajectory):
    """The policy distribution and values of the whole fragment under `params`, from the
    stored `carry0` with masked resets: `(dist [T, B], value [T, B])`."""
    _, (dist, value) = agent.unroll(params, traj.carry0, traj.obs, traj.first)
    return dist, value


class LoopState(NamedTuple):
    """Everything the on-policy loop carries from one update to the next; saving it
    and continuing with `Loop.run` gives the same result as never stopping."""

    train_state: TrainState
    behaviour: object        # stacked past params [lag + 1, ...] (acting = oldest)
    rollout: RolloutState
    key: jax.Array
    update: jax.Array        # updates done so far, int32
    reward_scale: Any = ()   # rljax.normalize.RewardScale when config.normalize_reward


LearnFn = Callable[[TrainState, Trajectory, jax.Array], tuple[TrainState, dict]]


def make_loop(config: ActorCriticConfig, *, agent, env, env_params, obs_shape,
              tx: optax.GradientTransformation, learn: LearnFn, behaviour_lag: int = 0,
              step_kwargs: Callable | None = None) -> Loop:
    """The loop of `learn(train_state, traj, key) -> (train_state, metrics)` per rollout.

    `step_kwargs(update) -> dict` (optional) gives the acting agent's keyword
    arguments for the rollout of update `update` (PQN's `epsilon`); they are also
    recorded in the metrics.

    Under data parallelism `learn` must average its loss over devices
    (`rljax.learner.make_learner` does)."""
    rollouts = parallel.rollout_groups(env, env_params, agent, config.num_envs, config.num_steps,
                                       unroll=config.scan_unroll)

    def init(rng) -> LoopState:
        k_init, k_env, k_loop = jax.random.split(rng, 3)
        params = agent.init(k_init, jnp.zeros(obs_shape, jnp.float32))
        train_state = TrainState(params, tx.init(params), jnp.zeros((), jnp.int32))
        behaviour = jax.tree.map(lambda p: jnp.stack([p] * (behaviour_lag + 1)), params)
        return LoopState(train_state, behaviour, rollouts.init(k_env), k_loop,
                         jnp.zeros((), jnp.int32),
                         normalize.init_reward_scale(config, config.num_envs))  # this device's

    def update(state: LoopState):
        steps_per_update = config.num_envs * config.num_steps * parallel.num_devices()
        key, k_roll, k_learn = jax.random.split(state.key, 3)
        acting = jax.tree.map(lambda p: p[0], state.behaviour)
        kwargs = {} if step_kwargs is None else step_kwargs(state.update)
        rollout_state, traj = rollouts.collect(acting, state.rollout, k_roll, **kwargs)
        reward_scale, traj = normalize.scale_rewards(config, state.reward_scale, traj)
        train_state, metrics = learn(state.train_state, traj, parallel.device_key(k_learn))
        metrics = {**metrics, **kwargs}
        # observation statistics move only after learning (PPO's first ratio stays 1)
        train_state = train_state._replace(params=normalize.observe(
            train_state.params, traj.obs, stats_from=state.train_state.params))
        behaviour = jax.tree.map(lambda h, p: jnp.concatenate([h[1:], p[None]]),
                                 state.behaviour, train_state.params)
        metrics = {**parallel.pmean(metrics), **trajectory_metrics(traj),
                   "env_steps": (state.update + 1).astype(jnp.float32) * steps_per_update}
        return LoopState(train_state, behaviour, rollout_state, key, state.update + 1,
                         reward_scale), metrics

    def run(state: LoopState, num_updates: int, *, callback=None, callback_every: int = 1):
        return scan_updates(update, state, num_updates, callback=callback,
                            callback_every=callback_every)

    return Loop(init, run, config.num_updates, config.num_envs * config.num_steps)


def check_minibatches(config, num_minibatches: int) -> None:
    """Recurrent minibatches split envs; feedforward ones split all transitions."""
    if config.core is None:
        check_divides("num_envs * num_steps", config.num_envs * config.num_steps,
                      "num_minibatches", num_minibatches)
    else:
        check_divides("num_envs (recurrent minibatches split whole env sequences)",
                      config.num_envs, "num_minibatches", num_minibatches)


def one_update_per_rollout_loop(config: ActorCriticConfig, make_loss, *,
                                behaviour_lag: int = 0) -> Loop:
    """The loop of A2C and REINFORCE: one gradient step of `make_loss(config, agent)`
    on each whole rollout, Adam on `config.lr` after global-norm clipping."""
    from rljax.learner import make_learner

    env, env_params, spec = make_env(config)
    agent = make_agent(config, spec)
    tx = adam(config, config.lr)
    learner = make_learner(make_loss(config, agent), tx)

    def learn(train_state, traj, key):
        del key
        return learner.update(train_state, traj)

    return make_loop(config, agent=agent, env=env, env_params=env_params,
                     obs_shape=spec.obs_shape, tx=tx, learn=learn, behaviour_lag=behaviour_lag)
