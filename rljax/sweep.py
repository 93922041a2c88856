"""Hyperparameter sweeps as one compiled program, and spreading work over devices.

    from rljax import sweep
    from rljax.algos import ppo

    space = sweep.grid(lr=[1e-4, 3e-4, 1e-3]) + sweep.sample(
        jax.random.key(1), 4, lr=sweep.log_uniform(1e-5, 1e-2), ent_coef=sweep.choice([0.0, 0.01]))
    result = sweep.run(ppo.train, ppo.Config(total_steps=100_000), space, seeds=4)
    result.rank("final_return")[:3]          # best configs, averaged over seeds
    result.to_csv("sweep.csv")

Every member (a point of the search space times a seed) runs inside ONE
`jit(vmap(train))`: one compile. Only *traced* config fields may vary (they are
pytree leaves); a *static* field changes shapes, loop lengths or the network, so
`run` refuses it at once and `run_static` loops over its values in Python,
compiling once per value. Populations run in chunks of `chunk_size` members (the
same compiled program for every chunk, the last one padded); the member axis of
each chunk is split over the local devices, each vmapping its share
(`parallel.over_seeds`; chunks padded to a multiple of the device count).

`data_parallel` (from `rljax.parallel`, re-exported here) trains ONE agent over several
devices (the Anakin layout). `initialize_distributed` joins processes (hosts) with
`jax.distributed`; the same code then runs over all of their devices.
"""
from __future__ import annotations

import csv
import dataclasses
import itertools
import math
import os
import warnings
from typing import Any, Callable, Iterable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from rljax import config as config_lib
from rljax import parallel
from rljax.config import StaticFieldError
from rljax.metrics import final_return
from rljax.seeds import seed_keys
from rljax.parallel import data_parallel, local_value

__all__ = [
    "LogUniform", "Uniform", "Choice", "log_uniform", "uniform", "choice", "grid", "sample",
    "product", "check_space", "Population", "population", "SweepResult", "run", "run_static",
    "shard_members", "data_parallel", "initialize_distributed", "local_value", "rank_rows",
    "write_csv",
]

# ----------------------------------------------------------------------------- space


class LogUniform(NamedTuple):
    lo: float
    hi: float

    def sample(self, key, n: int) -> np.ndarray:
        u = jax.random.uniform(key, (n,), jnp.float32, math.log(self.lo), math.log(self.hi))
        return np.exp(np.asarray(u, np.float64))


class Uniform(NamedTuple):
    lo: float
    hi: float

    def sample(self, key, n: int) -> np.ndarray:
        return np.asarray(jax.random.uniform(key, (n,), jnp.float32, self.lo, self.hi), np.float64)


class Choice(NamedTuple):
    values: tuple

    def sample(self, key, n: int) -> np.ndarray:
        index = np.asarray(jax.random.randint(key, (n,), 0, len(self.values)))
        return np.asarray([self.values[i] for i in index])


def log_uniform(lo: float, hi: float) -> LogUniform:
    """Log-uniform on `[lo, hi)` (learning rates); `0 < lo < hi`."""
    if not 0 < lo < hi:
        raise ValueError(f"log_uniform needs 0 < lo < hi, got {lo}, {hi}")
    return LogUniform(float(lo), float(hi))


def uniform(lo: float, hi: float) -> Uniform:
    if not lo < hi:
        raise ValueError(f"uniform needs lo < hi, got {lo}, {hi}")
    return Uniform(float(lo), float(hi))


def choice(values: Sequence) -> Choice:
    if len(values) == 0:
        raise ValueError("choice needs at least one value")
    return Choice(tuple(values))


def grid(**axes: Sequence) -> list[dict]:
    """Every combination of the given values: `grid(lr=[1e-3, 3e-4], gamma=[.99, .995])`
    is 4 points (the last field varies fastest)."""
    for name, values in axes.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise TypeError(f"grid({name}=...) needs a sequence of values, got {values!r}")
    names = list(axes)
    return [dict(zip(names, map(_python, combo)))
            for combo in itertools.product(*(list(axes[n]) for n in names))]


def sample(key, n: int, **dists) -> list[dict]:
    """`n` random points: each field drawn independently from its distribution
    (`log_uniform`, `uniform`, `choice`); reproducible from `key`."""
    keys = jax.random.split(key, max(len(dists), 1))
    columns = {}
    for k, (name, dist) in zip(keys, dists.items()):
        if not hasattr(dist, "sample"):
            raise TypeError(f"sample({name}=...) needs log_uniform / uniform / choice, got {dist!r}")
        columns[name] = dist.sample(k, n)
    return [{name: _python(columns[name][i]) for name in dists} for i in range(n)]


def product(*spaces: list[dict]) -> list[dict]:
    """Each point of the first space combined with each point of the next ones
    (e.g. a grid over `gamma` times random `lr` samples)."""
    out = [{}]
    for space in spaces:
        out = [{**a, **b} for a in out for b in space]
    return out


def _python(x):
    return x.item() if isinstance(x, np.generic) else x


def _fields_of(space: list[dict]) -> list[str]:
    names: list[str] = []
    for point in space:
        names += [n for n in point if n not in names]
    return names


def check_space(config, names: Iterable[str]) -> None:
    """Raise at once if a name is unknown or a static field of `config`'s class."""
    fields = {f.name for f in dataclasses.fields(config)}
    for name in names:
        if name not in fields:
            raise ValueError(f"unknown field {name!r} in the search space of "
                             f"{type(config).__qualname__}; traced (sweepable) fields are "
                             f"{sorted(config_lib.traced_fields(config))}")
        if config_lib.is_static(config, name):
            raise StaticFieldError(
                f"{type(config).__qualname__}.{name} is a static field: it changes shapes, "
                f"loop lengths or the network, so it cannot vary inside one vmapped sweep "
                f"(one compiled program). Sweep it in Python with "
                f"rljax.sweep.run_static(..., static={{{name!r}: [...]}}), which compiles once "
                f"per value. Traced (sweepable) fields are "
                f"{sorted(config_lib.traced_fields(config))}")


# ----------------------------------------------------------------------------- population


class Population(NamedTuple):
    """A batched config (every leaf `[N, ...]`), `[N]` keys and each member's values."""

    configs: Any
    keys: jax.Array
    members: list[dict]   # per member: {"member", "seed", **swept values}

    @property
    def size(self) -> int:
        return len(self.members)


def _seeds(seeds) -> list[int]:
    return list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]


def population(base, space: list[dict] | None = None, seeds=1) -> Population:
    """Members = each point of `space` (default: the base config alone) x each seed
    (seed `s` uses `jax.random.key(s)`, the one seed convention of `rljax.algos.base`,
    so member `i` equals `train(replace(base, **point), jax.random.key(seed))` and the
    `rljax train --seed seed` run)."""
    space = [{}] if not space else list(space)
    names = _fields_of(space)
    check_space(base, names)
    seeds = _seeds(seeds)
    if not seeds:
        raise ValueError("need at least one seed")
    members = [{"member": i, "seed": s, **point}
               for i, (point, s) in enumerate((p, s) for p in space for s in seeds)]
    n = len(members)

    def column(name, default):
        dtype = np.asarray(default).dtype
        if dtype == np.float64:
            dtype = np.float32
        values = [m.get(name, default) for m in members]
        return np.asarray(values, dtype=dtype)

    changes = {}
    for name in config_lib.traced_fields(base):
        default = getattr(base, name)
        if name in names:
            changes[name] = column(name, default)
        else:
            changes[name] = np.broadcast_to(np.asarray(default, column(name, default).dtype),
                                            (n, *np.shape(default))).copy()
    configs = dataclasses.replace(base, **changes)
    keys = seed_keys([m["seed"] for m in members])
    members = [{"member": m["member"], "seed": m["seed"],
                **{k: m.get(k, getattr(base, k)) for k in names}} for m in members]
    return Population(configs, keys, members)


def _take(tree, index: np.ndarray):
    return jax.tree.map(lambda x: x[index], tree)


def shard_members(tree, devices=None, axis_name: str = "members"):
    """Put a tree whose leaves have a leading member axis on `devices` (default: the
    local devices), sharded along that axis; its length must divide by the count."""
    devices = list(devices if devices is not None else jax.local_devices())
    return parallel.put_seeds(tree, Mesh(np.asarray(devices), (axis_name,)))


# ----------------------------------------------------------------------------- results


def _nanmean(x, axis=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=axis)


@dataclasses.dataclass
class SweepResult:
    """What `run` returns.

    members: per member `{"member", "seed", **swept values}` (all of them, run or not).
    metrics: name -> `[completed, num_updates]` per-update curves of the members that ran.
    completed: how many members ran (fewer than `len(members)` if a chunk failed).
    error: the exception that stopped the sweep, or None.
    train_state: the members' final train states (leading member axis) if kept.
    """

    members: list[dict]
    metrics: dict[str, np.ndarray]
    completed: int
    error: BaseException | None = None
    train_state: Any = None
    static: dict = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def final_return(self) -> np.ndarray:
        """`[completed]`: each member's final return (`rljax.metrics.final_return`)."""
        return final_return(self.metrics["episode_return"])

    @property
    def mean_return(self) -> np.ndarray:
        """`[completed]`: mean episode return over the whole run (NaN-aware)."""
        return _nanmean(self.metrics["episode_return"], axis=1)

    def curve(self, metric: str = "episode_return") -> np.ndarray:
        return self.metrics[metric]

    @property
    def diverged(self) -> np.ndarray:
        """`[completed]` bool: the member's training went non-finite (`nonfinite` metric)."""
        if "nonfinite" not in self.metrics:
            return np.zeros(self.completed, bool)
        return np.any(np.asarray(self.metrics["nonfinite"]) != 0, axis=-1)

    def rows(self) -> list[dict]:
        """One summary row per completed member (`diverged`: it went NaN/inf)."""
        final, mean, diverged = self.final_return, self.mean_return, self.diverged
        return [{**self.static, **m, "final_return": float(final[i]), "mean_return": float(mean[i]),
                 "diverged": bool(diverged[i]),
                 "env_steps": float(self.metrics["env_steps"][i, -1])}
                for i, m in enumerate(self.members[:self.completed])]

    def rank(self, metric: str = "final_return") -> list[dict]:
        """Configs best first by `metric` averaged over seeds (see `rank_rows`)."""
        return rank_rows(self.rows(), metric)

    def to_csv(self, path) -> None:
        write_csv(self.rows(), path)

    def curves_to_csv(self, path, metric: str = "episode_return") -> None:
        """Long format: member, seed, values, update, env_steps, `metric`."""
        rows = []
        for i, m in enumerate(self.members[:self.completed]):
            for u in range(self.metrics[metric].shape[1]):
                rows.append({**self.static, **m, "update": u,
                             "env_steps": float(self.metrics["env_steps"][i, u]),
                             metric: float(self.metrics[metric][i, u])})
        write_csv(rows, path)


def rank_rows(rows: list[dict], metric: str = "final_return") -> list[dict]:
    """Group rows by everything but `member`, `seed` and the measured columns, average
    `metric` over the seeds (NaN-aware); best (largest) first, NaN last, and configs
    with a diverged seed (`diverged`: how many) after all others."""
    measured = {"member", "seed", "final_return", "mean_return", "env_steps", "diverged", metric}
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        key = tuple((k, v) for k, v in row.items() if k not in measured)
        groups.setdefault(key, []).append(row)
    ranked = []
    for key, members in groups.items():
        values = np.asarray([r[metric] for r in members], np.float64)
        ranked.append({**dict(key), metric: float(_nanmean(values)),
                       f"{metric}_std": float(np.nanstd(values)) if np.isfinite(values).any()
                       else float("nan"),
                       "diverged": sum(bool(r.get("diverged")) for r in members),
                       "seeds": [r["seed"] for r in members]})
    return sorted(ranked, key=lambda r: (r["diverged"] > 0, math.isnan(r[metric]), -r[metric]
                                         if not math.isnan(r[metric]) else 0.0))


def write_csv(rows: list[dict], path, *, append: bool = False) -> None:
    if not rows:
        return
    columns = list(rows[0])
    exists = append and os.path.exists(path) and os.path.getsize(path) > 0
    with open(path, "a" if append else "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        if not exists:
            writer.writeheader()
        writer.writerows(rows)


# ----------------------------------------------------------------------------- run


def _execute(fn, configs, keys):
    """Run one chunk and bring its results to the host (a hook for tests)."""
    return jax.device_get(fn(configs, keys))


def run(train: Callable, base, space: list[dict] | None = None, seeds=1, *,
        chunk_size: int | None = None, devices=None,
        keep_state: bool = False, csv_path=None, compiled: Callable | None = None,
        static: dict | None = None) -> SweepResult:
    """Run every member (point x seed) of a sweep as one `jit(vmap(train))`.

    Args:
      train: `(config, rng) -> Result`, e.g. `ppo.train`.
      base: the config every member starts from.
      space: points `{field: value}` over traced fields (`grid`, `sample`, `product`).
      seeds: a count N (seeds 0..N-1) or a list of ints.
      chunk_size: members per compiled call (default: all); the last chunk is padded,
        so every chunk reuses the one compiled program. Rounded up to a multiple of
        the device count.
      devices: where to shard the member axis (default: all local devices).
      keep_state: also return the final train states (memory!).
      csv_path: if given, each chunk's summary rows are appended there as it finishes.
      compiled: a `jit(vmap(train))` (or `parallel.over_seeds(train, mesh)`) to reuse
        across calls (default: a new `over_seeds` program over `devices`).

    Returns:
      `SweepResult`; if a chunk fails, the members of the chunks before it are kept
      and the exception is in `result.error` (it is not raised).
    """
    pop = population(base, space, seeds)
    devices = list(devices if devices is not None else jax.local_devices())
    n, d = pop.size, len(devices)
    chunk = n if chunk_size is None else int(chunk_size)
    if chunk < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    chunk = min(chunk, n)
    chunk = -(-chunk // d) * d                      # a multiple of the device count
    fn = compiled if compiled is not None else parallel.over_seeds(   # each device vmaps its share
        train, Mesh(np.asarray(devices), ("members",)))
    host_configs = jax.tree.map(np.asarray, pop.configs)
    key_data = np.asarray(jax.random.key_data(pop.keys))
    metrics: list[dict] = []
    states: list = []
    done, error = 0, None
    result = SweepResult(pop.members, {}, 0, static=dict(static or {}))
    for start in range(0, n, chunk):
        real = min(chunk, n - start)
        index = np.minimum(np.arange(start, start + chunk), n - 1)   # pad with the last member
        try:
            configs, keys = _take(host_configs, index), jax.random.wrap_key_data(key_data[index])
            if d > 1:
                configs, keys = shard_members((configs, keys), devices)
            out = _execute(fn, configs, keys)
        except Exception as e:   # keep what finished; report, don't lose it
            error = e
            break
        metrics.append({k: np.asarray(v)[:real] for k, v in out.metrics.items()})
        if keep_state:
            states.append(jax.tree.map(lambda x: np.asarray(x)[:real], out.train_state))
        done += real
        if csv_path is not None:
            part = SweepResult(pop.members[start:start + real], metrics[-1], real,
                               static=result.static)
            write_csv(part.rows(), csv_path, append=start > 0)
    if metrics:
        result.metrics = {k: np.concatenate([m[k] for m in metrics]) for k in metrics[0]}
    if states:
        result.train_state = jax.tree.map(lambda *xs: np.concatenate(xs), *states)
    result.completed, result.error = done, error
    return result


class StaticSweepResult(NamedTuple):
    """`run_static`'s result: one `SweepResult` per combination of static values."""

    runs: list[SweepResult]

    @property
    def error(self):
        return next((r.error for r in self.runs if r.error is not None), None)

    def rows(self) -> list[dict]:
        return [row for r in self.runs for row in r.rows()]

    def rank(self, metric: str = "final_return") -> list[dict]:
        return rank_rows(self.rows(), metric)

    def to_csv(self, path) -> None:
        write_csv(self.rows(), path)


def run_static(train: Callable, base, static: dict[str, Sequence], space=None, seeds=1,
               **kwargs) -> StaticSweepResult:
    """Sweep static fields in Python: for every combination of `static` values, one
    `run` (one compile each) over the traced `space`. Stops after a failed run."""
    for name in static:
        if name not in {f.name for f in dataclasses.fields(base)}:
            raise ValueError(f"unknown field {name!r} of {type(base).__qualname__}")
        if not config_lib.is_static(base, name):
            raise ValueError(f"{type(base).__qualname__}.{name} is traced: put it in the "
                             f"vmapped search space (space=...) instead of static=")
    runs = []
    for values in grid(**static):
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        result = run(train, config_lib.replace(base, **values), space, seeds, static=values,
                     **kwargs)
        runs.append(result)
        if result.error is not None:
            break
    return StaticSweepResult(runs)


# ----------------------------------------------------------------------------- devices


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None, process_id: int | None = None,
                           *, local_device_ids=None, timeout_s: int = 300) -> int:
    """Join this process to the others with `jax.distributed.initialize`.

    Arguments win over the environment variables `RLJAX_COORDINATOR_ADDRESS`
    (`host:port` of process 0), `RLJAX_NUM_PROCESSES`, `RLJAX_PROCESS_ID`. With one
    process (nothing set, or `num_processes == 1`) it does nothing, so the same script
    runs on one process or many. On managed clusters (SLURM, Cloud TPU) set
    `RLJAX_AUTO_DISTRIBUTED=1` to let JAX detect everything itself.
    Call it before anything else touches JAX devices, and before importing
    `rljax.algos` / `rljax.envs` (gymnax creates arrays at import). Returns
    `jax.process_index()`.
    """
    env = os.environ
    coordinator_address = coordinator_address or env.get("RLJAX_COORDINATOR_ADDRESS")
    if num_processes is None and env.get("RLJAX_NUM_PROCESSES"):
        num_processes = int(env["RLJAX_NUM_PROCESSES"])
    if process_id is None and env.get("RLJAX_PROCESS_ID"):
        process_id = int(env["RLJAX_PROCESS_ID"])
    if jax.distributed.is_initialized():
        return jax.process_index()
    if coordinator_address is None and num_processes is None:
        if env.get("RLJAX_AUTO_DISTRIBUTED") == "1":
            jax.distributed.initialize(initialization_timeout=timeout_s)
        return jax.process_index()
    if num_processes == 1:
        return jax.process_index()
    if coordinator_address is None or num_processes is None or process_id is None:
        raise ValueError("multi-process needs coordinator_address, num_processes and "
                         "process_id (arguments or RLJAX_* environment variables)")
    from jax._src import xla_bridge
    if xla_bridge.backends_are_initialized():
        raise RuntimeError(
            "initialize_distributed must run before anything touches the XLA backend; "
            "note that importing rljax.algos or rljax.envs imports gymnax, which does. "
            "Import rljax.sweep, call initialize_distributed(), then import the rest.")
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id,
                               local_device_ids=local_device_ids,
                               initialization_timeout=timeout_s)
    return jax.process_index()
