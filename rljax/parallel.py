"""Devices in one place: data parallelism (the Anakin layout) for every algorithm with a
loop, and independent seeds split over devices (`use_cpu_cores`, `seed_mesh`,
`over_seeds`, `put_seeds`; the end of this module).

    from rljax import parallel
    from rljax.algos import a2c
    result = parallel.data_parallel(a2c, a2c.Config(num_envs=16), jax.random.key(0))

One agent trains over several devices: each device steps its share of the envs,
the loss is averaged over devices, params stay replicated. The loop is built and
traced per device inside `jax.shard_map`, under a `Layout` that this module holds
while it traces (`current()`); the loop code asks this module for what depends on
the layout (`pmean`, `psum`, `device_key`, `rollout_groups`) and nothing reaches
the algorithms' signatures. Outside `data_parallel` every helper is the plain,
one-device operation.

Envs are split into `G` groups (`env_groups`, default the device count); group `g`
rolls out with keys `fold_in(key, g)`, so the same `G` gives the same rollouts on
1, 2 or 4 devices. Under `shard_map` with replicated params, the gradient of a
`pmean`ed loss arrives already averaged (CONVENTIONS.md 8): grads are not
`pmean`ed again.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import warnings
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from rljax.config import replace


class Layout(NamedTuple):
    """Where one copy of the loop sits: the device axis and its env groups."""

    axis_name: str
    env_groups: int   # env groups on this device


_LAYOUT: contextvars.ContextVar[Layout | None] = contextvars.ContextVar("rljax_layout", default=None)


def current() -> Layout | None:
    """The layout being traced, or None on one device."""
    return _LAYOUT.get()


@contextlib.contextmanager
def layout(value: Layout):
    token = _LAYOUT.set(value)
    try:
        yield value
    finally:
        _LAYOUT.reset(token)


def axis_name() -> str | None:
    lay = current()
    return None if lay is None else lay.axis_name


def pmean(tree):
    """Mean over devices (identity on one device)."""
    name = axis_name()
    return tree if name is None else jax.tree.map(lambda x: jax.lax.pmean(x, name), tree)


def psum(tree):
    """Sum over devices (identity on one device)."""
    name = axis_name()
    return tree if name is None else jax.tree.map(lambda x: jax.lax.psum(x, name), tree)


def num_devices() -> int:
    name = axis_name()
    return 1 if name is None else jax.lax.axis_size(name)


def device_key(key):
    """A key of this device's own (minibatch order, replay samples); `key` on one device."""
    name = axis_name()
    return key if name is None else jax.random.fold_in(key, jax.lax.axis_index(name))


def _varying(tree):
    """Mark per-device data as varying over the device axis (shard_map's scan carries must
    keep one type, and env states become device-dependent after the first step)."""
    name = axis_name()

    def cast(x):
        aval = jax.typeof(x)
        vma = aval.manual_axis_type.varying if hasattr(aval, "manual_axis_type") else aval.vma
        return x if name in vma else jax.lax.pcast(x, (name,), to="varying")

    return tree if name is None else jax.tree.map(cast, tree)


def _group_keys(key, groups: int):
    """`[groups]` keys: `fold_in(key, g)` for this device's global group indices `g`."""
    name = axis_name()
    base = 0 if name is None else jax.lax.axis_index(name)
    index = base * groups + jnp.arange(groups)
    return jax.vmap(lambda g: jax.random.fold_in(key, g))(index)


def _merge_groups(traj):
    """`[G, T, b, ...]` (and `last_*` `[G, b, ...]`) -> `[T, G * b, ...]` / `[G * b, ...]`."""
    over_time = lambda x: jnp.swapaxes(x, 0, 1).reshape((x.shape[1], -1, *x.shape[3:]))
    flat = lambda x: x.reshape((-1, *x.shape[2:]))
    last = {"last_obs", "last_first", "last_carry"}
    return type(traj)(**{name: jax.tree.map(flat if name in last else over_time, value)
                         for name, value in traj._asdict().items()})


class RolloutGroups(NamedTuple):
    """`init(key) -> RolloutState` and `collect(params, state, key, **kw) -> (state, traj)`
    for this device's envs: plain `rollout.init_rollout` / `rollout.rollout` on one
    device; per env group (keys folded by the global group index) under a layout."""

    init: Callable
    collect: Callable


def rollout_groups(env, env_params, agent, num_envs: int, num_steps: int, *,
                   unroll: int = 1) -> RolloutGroups:
    """Rollouts of `num_envs` envs (this device's) for the current layout."""
    from rljax.rollout import init_rollout, rollout   # rollout sits below: import at use

    lay = current()
    groups = 1 if lay is None else lay.env_groups
    if num_envs % groups:
        raise ValueError(f"num_envs={num_envs} (per device) must be divisible by "
                         f"env_groups={groups}")
    size = num_envs // groups

    def grouped() -> bool:   # the device count is known only inside shard_map
        return groups * num_devices() > 1

    def init(key):
        if not grouped():
            return init_rollout(env, env_params, agent, key, num_envs)
        state = jax.vmap(lambda k: init_rollout(env, env_params, agent, k, size))(
            _group_keys(key, groups))
        return _varying(state)

    def collect(params, state, key, **step_kwargs):
        if not grouped():
            return rollout(agent, params, env, env_params, state, key, num_steps, unroll=unroll,
                           **step_kwargs)
        state, traj = jax.vmap(lambda s, k: rollout(
            agent, params, env, env_params, s, k, num_steps, unroll=unroll, **step_kwargs))(
            state, _group_keys(key, groups))
        return state, _merge_groups(traj)

    return RolloutGroups(init, collect)


def data_parallel(algo, config, rng, *, devices=None, env_groups: int | None = None,
                  axis: str = "data"):
    """Train one agent of `algo` (a module with `loop(config)`, or such a function) over
    `devices` (default: all devices of all processes).

    `config` describes the whole agent (`num_envs`, `total_steps` are totals); each
    device steps `num_envs / len(devices)` envs. With the same `env_groups` the
    result is the same (to float error) on 1, 2 or 4 devices, and with one group on
    one device it equals `algo.train(config, rng)`. Minibatches (PPO with
    `num_minibatches > 1`) and replay samples are drawn per device from its own
    share. Returns the `Result`, replicated over the devices (see `local_value`).
    """
    from rljax.algos.base import train_loop
    from rljax.algos.onpolicy import ActorCriticConfig

    if not isinstance(config, ActorCriticConfig):
        raise ValueError(
            f"data_parallel covers the on-policy algorithms (PPO, A2C, REINFORCE); "
            f"{type(config).__module__}.{type(config).__qualname__} counts replay and training "
            f"steps in env steps of all envs, which a per-device split would change")
    make_loop = getattr(algo, "loop", algo)
    devices = list(devices if devices is not None else jax.devices())
    d = len(devices)
    groups = d if env_groups is None else int(env_groups)
    if groups < 1 or groups % d:
        raise ValueError(f"env_groups={groups} must be a positive multiple of the device count {d}")
    if config.num_envs % groups:
        raise ValueError(f"num_envs={config.num_envs} must divide by env_groups={groups}")
    local = replace(config, num_envs=config.num_envs // d, total_steps=config.total_steps // d)
    mesh = Mesh(np.asarray(devices), (axis,))

    def per_device(key_data):
        with layout(Layout(axis, groups // d)):
            return train_loop(make_loop(local), jax.random.wrap_key_data(key_data))

    fn = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=P(), out_specs=P()))
    key_data = np.asarray(jax.random.key_data(rng))
    if jax.process_count() > 1:
        key_data = jax.make_array_from_process_local_data(NamedSharding(mesh, P()), key_data)
    return fn(key_data)


def local_value(tree: Any):
    """This process's copy of a replicated (or fully addressable) result, as numpy."""
    return jax.tree.map(lambda x: np.asarray(x.addressable_shards[0].data)
                        if isinstance(x, jax.Array) and not x.is_fully_addressable
                        else np.asarray(x), tree)


# ----------------------------------------------------------------------------- seeds over devices
#
# Independent seeds (and sweep members) need no communication: each device runs the
# vmapped program on its own share of them. On a CPU, XLA gives one program one device
# and spreads only its large ops over threads, which small RL programs barely use; one
# device per core, each running its share of the seeds on one stream, measured x1.9 on
# 2 cores for 32 PPO seeds (benchmarks/bench_seeds.md, peer_purejaxrl.md).


def use_cpu_cores(count: int | None = None) -> int:
    """Make JAX's CPU backend one device per core (default: the cores this process may
    run on), so that `over_seeds` (and `rljax train --seeds`, `sweep.run`) give every
    core its own share of the seeds. Returns the CPU device count in effect.

    Must run before JAX starts its backend (the first array or computation; importing
    `rljax.algos` or `rljax.envs` does that through gymnax). A device count the user set
    (`XLA_FLAGS=--xla_force_host_platform_device_count=N`, `JAX_NUM_CPU_DEVICES`) is
    kept. One seed runs as fast either way (a program still uses one device).
    """
    from jax._src import xla_bridge

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    want = int(count) if count is not None else max(1, cores or 1)
    if want < 1:
        raise ValueError(f"use_cpu_cores needs count >= 1, got {count}")
    user_set = ("xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")
                or jax.config.jax_num_cpu_devices != -1)
    if not xla_bridge.backends_are_initialized():
        if not user_set:
            jax.config.update("jax_num_cpu_devices", want)
        return jax.device_count("cpu")
    have = jax.device_count("cpu")
    if have != want and not user_set:
        message = (f"use_cpu_cores({'' if count is None else count}) came after JAX started "
                   f"its backend with {have} CPU device(s); call it first thing (before "
                   f"importing rljax.algos or rljax.envs)")
        if count is not None:
            raise RuntimeError(message)
        warnings.warn(message + f"; the seeds share {have} device(s)", stacklevel=2)
    return have


def seed_mesh(num_seeds: int, devices=None, axis: str = "seeds") -> Mesh:
    """A 1-D mesh of the most of `devices` (default: this process's devices) that split
    `num_seeds` evenly: 32 seeds on 2 devices -> 2, 3 seeds on 2 devices -> 1."""
    devices = list(devices if devices is not None else jax.local_devices())
    d = max(k for k in range(1, len(devices) + 1) if num_seeds % k == 0)
    return Mesh(np.asarray(devices[:d]), (axis,))


def over_seeds(fn: Callable, mesh: Mesh) -> Callable:
    """`jit(vmap(fn))` over a leading seed axis of every argument and result, that axis
    split over `mesh`'s devices by `shard_map` (each device vmaps its own seeds; nothing
    is communicated). On a one-device mesh it is `jit(vmap(fn))` itself.

    Per seed it is the same computation; the float results may differ in the last bits
    from one device vmapping all the seeds (a smaller batch can order reductions
    differently), as vmapping 16 instead of 32 seeds on one device does.
    """
    batched = jax.vmap(fn)
    if mesh.size == 1:
        return jax.jit(batched)
    spec = P(mesh.axis_names[0])
    return jax.jit(jax.shard_map(batched, mesh=mesh, in_specs=spec, out_specs=spec,
                                 check_vma=False))


def seed_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (seed) axis split over `mesh`."""
    return NamedSharding(mesh, P(mesh.axis_names[0]))


def put_seeds(tree, mesh: Mesh):
    """Place a tree whose leaves have a leading seed axis on `mesh`, split along it."""
    return jax.device_put(tree, seed_sharding(mesh))
