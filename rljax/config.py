"""Algorithm configs: frozen dataclasses whose fields are static or traced.

A **static** field decides a shape, a loop length, a Python branch or the network
(`num_envs`, `num_steps`, `hidden_sizes`, `env_id`); it is part of the jit cache key
and must be a hashable Python value. A **traced** field is a number used only in
arithmetic (`lr`, `gamma`, `clip_eps`); it is a pytree leaf, so `jax.vmap` can give it
a sweep axis:

    @config_class
    class Config:
        num_envs: int = static(8)
        lr: float = 2.5e-4

    cfgs = jax.vmap(lambda lr: dataclasses.replace(Config(), lr=lr))(lrs)
    results = jax.jit(jax.vmap(train))(cfgs, keys)     # one compile
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np


class StaticFieldError(TypeError):
    """A static config field got an array (it would have to be batched or traced)."""


def static(default: Any, *, doc: str = ""):
    """A static (shape / loop / architecture) config field."""
    return dataclasses.field(default=default, metadata=dict(static=True, doc=doc))


def traced(default: Any, *, doc: str = ""):
    """A traced (numeric, sweepable) config field; plain defaults mean the same."""
    return dataclasses.field(default=default, metadata=dict(static=False, doc=doc))


def is_static(cls_or_obj, name: str) -> bool:
    fields = {f.name: f for f in dataclasses.fields(cls_or_obj)}
    if name not in fields:
        raise KeyError(name)
    return bool(fields[name].metadata.get("static", False))


def static_fields(cls_or_obj) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls_or_obj) if f.metadata.get("static"))


def traced_fields(cls_or_obj) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls_or_obj) if not f.metadata.get("static"))


def _check_static_values(self) -> None:
    for name in static_fields(self):
        value = getattr(self, name)
        if isinstance(value, (jax.Array, np.ndarray, list)) or isinstance(value, jax.core.Tracer):
            raise StaticFieldError(
                f"{type(self).__qualname__}.{name} is a static field (it decides shapes, loop "
                f"lengths or the network), so it cannot hold an array or be batched/swept "
                f"inside one compiled program; got {type(value).__name__}. Loop over its values "
                f"in Python instead (rljax.sweep does this, compiling once per value).")


def config_class(cls):
    """Make `cls` a frozen, keyword-only dataclass registered as a pytree whose
    static fields are aux data and whose other fields are leaves."""
    cls = dataclasses.dataclass(frozen=True, kw_only=True)(cls)
    user_post_init = getattr(cls, "__post_init__", None)

    def __post_init__(self):
        _check_static_values(self)
        if user_post_init is not None:
            user_post_init(self)

    cls.__post_init__ = __post_init__
    data = [f.name for f in dataclasses.fields(cls) if not f.metadata.get("static")]
    meta = [f.name for f in dataclasses.fields(cls) if f.metadata.get("static")]
    return jax.tree_util.register_dataclass(cls, data_fields=data, meta_fields=meta)


def replace(config, **changes):
    """`dataclasses.replace` that names an unknown field clearly."""
    names = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise ValueError(
            f"unknown field(s) {unknown} for {type(config).__qualname__}; fields are {sorted(names)}")
    return dataclasses.replace(config, **changes)
