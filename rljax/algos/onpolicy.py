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
from rljax.learner import TrainState, make_learner
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
    scan_unroll: int = static(1, doc="lax.scan unroll of the rollout loop (1 is fastest on CPU)")

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
    return successor_values(traj, last_value, value_t)


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


class DataParallel(NamedTuple):
    """Where this copy of the loop sits in a data-parallel (Anakin) layout.

    The loop runs once per device inside `jax.shard_map` over `axis_name`, with
    replicated params; `config.num_envs` are this device's envs, split into
    `env_groups` groups. Group `g` of the `G = env_groups * devices` groups (numbered
    across devices) rolls out with keys `fold_in(key, g)`, so the same `G` gives the
    same rollouts on 1, 2 or 4 devices. `rljax.sweep.data_parallel` builds this.
    """

    axis_name: str | None = None   # None: one device, no collectives
    env_groups: int = 1            # env groups on this device


def _axis_size(axis_name) -> int:
    return 1 if axis_name is None else jax.lax.axis_size(axis_name)


def _group_keys(key, parallel: DataParallel):
    """`[env_groups]` keys: `fold_in(key, g)` for this device's global group indices `g`."""
    base = 0 if parallel.axis_name is None else jax.lax.axis_index(parallel.axis_name)
    index = base * parallel.env_groups + jnp.arange(parallel.env_groups)
    return jax.vmap(lambda g: jax.random.fold_in(key, g))(index)


def _varying(tree, axis_name):
    """Mark per-device data as varying over `axis_name` (shard_map's scan carries must
    keep one type, and env states become device-dependent after the first step)."""
    def cast(x):
        aval = jax.typeof(x)
        vma = aval.manual_axis_type.varying if hasattr(aval, "manual_axis_type") else aval.vma
        return x if axis_name in vma else jax.lax.pcast(x, (axis_name,), to="varying")
    return tree if axis_name is None else jax.tree.map(cast, tree)


def _merge_groups(traj: Trajectory) -> Trajectory:
    """`[G, T, b, ...]` (and `last_*` `[G, b, ...]`) -> `[T, G * b, ...]` / `[G * b, ...]`."""
    over_time = lambda x: jnp.swapaxes(x, 0, 1).reshape((x.shape[1], -1, *x.shape[3:]))
    flat = lambda x: x.reshape((-1, *x.shape[2:]))
    last = {"last_obs", "last_first", "last_carry"}
    return Trajectory(**{name: jax.tree.map(flat if name in last else over_time, value)
                         for name, value in traj._asdict().items()})


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
              tx: optax.GradientTransformation, learn: LearnFn, behaviour_lag: int = 0,
              parallel: DataParallel = DataParallel()) -> Loop:
    """The loop of `learn(train_state, traj, key) -> (train_state, metrics)` per rollout.

    `parallel`: see `DataParallel` (the loop then runs per device inside `shard_map`);
    `learn` must average its loss over `parallel.axis_name`
    (`make_learner(..., axis_name=...)`).
    """
    axis_name = parallel.axis_name
    if config.num_envs % parallel.env_groups:
        raise ValueError(f"num_envs={config.num_envs} (per device) must be divisible by "
                         f"env_groups={parallel.env_groups}")
    group_envs = config.num_envs // parallel.env_groups

    def layout():   # axis sizes are known only inside shard_map, so ask at trace time
        devices = _axis_size(axis_name)
        return devices, parallel.env_groups * devices > 1

    def init(rng) -> LoopState:
        k_init, k_env, k_loop = jax.random.split(rng, 3)
        params = agent.init(k_init, jnp.zeros(obs_shape, jnp.float32))
        train_state = TrainState(params, tx.init(params), jnp.zeros((), jnp.int32))
        behaviour = jax.tree.map(lambda p: jnp.stack([p] * (behaviour_lag + 1)), params)
        if layout()[1]:
            rollout_state = jax.vmap(lambda k: init_rollout(env, env_params, agent, k, group_envs))(
                _group_keys(k_env, parallel))
        else:
            rollout_state = init_rollout(env, env_params, agent, k_env, config.num_envs)
        return LoopState(train_state, behaviour, _varying(rollout_state, axis_name), k_loop,
                         jnp.zeros((), jnp.int32))

    def collect(params, rollout_state, key):
        if not layout()[1]:
            return rollout(agent, params, env, env_params, rollout_state, key,
                           config.num_steps, unroll=config.scan_unroll)
        rollout_state, traj = jax.vmap(
            lambda s, k: rollout(agent, params, env, env_params, s, k, config.num_steps,
                                 unroll=config.scan_unroll))(rollout_state, _group_keys(key, parallel))
        return rollout_state, _merge_groups(traj)

    def update(state: LoopState):
        devices, _ = layout()
        steps_per_update = config.num_envs * config.num_steps * devices
        key, k_roll, k_learn = jax.random.split(state.key, 3)
        if axis_name is not None and devices > 1:   # each device its own minibatches
            k_learn = jax.random.fold_in(k_learn, jax.lax.axis_index(axis_name))
        acting = jax.tree.map(lambda p: p[0], state.behaviour)
        rollout_state, traj = collect(acting, state.rollout, k_roll)
        train_state, metrics = learn(state.train_state, traj, k_learn)
        if axis_name is not None:
            metrics = jax.tree.map(lambda x: jax.lax.pmean(x, axis_name), metrics)
        behaviour = jax.tree.map(lambda h, p: jnp.concatenate([h[1:], p[None]]),
                                 state.behaviour, train_state.params)
        metrics = {**metrics, **trajectory_metrics(traj, axis_name=axis_name),
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


def one_update_per_rollout_loop(config: ActorCriticConfig, make_loss, *,
                                behaviour_lag: int = 0) -> Loop:
    """The loop of A2C and REINFORCE: one gradient step of `make_loss(config, agent)`
    on each whole rollout, Adam on `config.lr` after global-norm clipping."""
    validate(config)
    env, env_params, obs_shape, num_actions = make_env(config)
    agent = make_agent(config, num_actions)
    tx = adam(config, config.lr)
    learner = make_learner(make_loss(config, agent), tx)
    return make_loop(config, agent=agent, env=env, env_params=env_params, obs_shape=obs_shape,
                     tx=tx, learn=one_step_per_rollout(learner), behaviour_lag=behaviour_lag)


def recompute(agent, params, traj: Trajectory):
    """Logits and values of the whole fragment under `params`, from the stored `carry0`
    with masked resets: `(logits [T, B, A], value [T, B])`."""
    _, (logits, value) = agent.unroll(params, traj.carry0, traj.obs, traj.first)
    return logits, value
