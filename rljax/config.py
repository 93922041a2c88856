"""Algorithm configs: frozen dataclasses whose fields are static or traced.

A **static** field decides a shape, a loop length, a Python branch or the network
(`num_envs`, `num_steps`, `hidden_sizes`, `env_id`); it is part of the jit cache key
and must be a hashable Python value. A **traced** field is a number used only in
arithmetic (`lr`, `gamma`, `clip_eps`); it is a pytree leaf, so `jax.vmap` can give it
a sweep axis. A field declared without `static`/`traced` is traced if its type is
`float` and static otherwise. Every field has a doc line (`rljax list` shows it) and
may carry a check that runs when the config is built, naming the field:

    @config_class
    class Config:
        num_envs: int = static(8, doc="parallel envs", check=at_least(1))
        lr: float = traced(2.5e-4, doc="Adam step size", check=positive)

        def validate(self):          # checks across fields; every class's own runs
            ...

    cfgs = jax.vmap(lambda lr: dataclasses.replace(Config(), lr=lr))(lrs)
    results = jax.jit(jax.vmap(train))(cfgs, keys)     # one compile
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, NamedTuple

import jax
import numpy as np


class StaticFieldError(TypeError):
    """A static config field got an array (it would have to be batched or traced)."""


Check = Callable[[Any], "str | None"]   # value -> None if fine, else what it must be


def static(default: Any, *, doc: str = "", check: Check | None = None):
    """A static (shape / loop / architecture) config field."""
    return dataclasses.field(default=default, metadata=dict(static=True, doc=doc, check=check))


def traced(default: Any, *, doc: str = "", check: Check | None = None):
    """A traced (numeric, sweepable) config field."""
    return dataclasses.field(default=default, metadata=dict(static=False, doc=doc, check=check))


# --- checks: value -> None when fine, else the phrase "must be ..." completes -------------

def at_least(low) -> Check:
    return lambda v: None if v >= low else f">= {low}"


positive: Check = lambda v: None if v > 0 else "> 0"
non_negative: Check = lambda v: None if v >= 0 else ">= 0"
probability: Check = lambda v: None if 0 <= v <= 1 else "in [0, 1]"


def one_of(*choices) -> Check:
    return lambda v: None if v in choices else f"one of {', '.join(map(repr, choices))}"


def each(check: Check) -> Check:
    """Apply `check` to every item of a tuple field."""
    def run(values):
        bad = [v for v in values if check(v) is not None]
        return None if not bad else f"a list whose items are each {check(bad[0])}"
    return run


def type_name(f: dataclasses.Field) -> str:
    """A field's annotation as written: 'int', 'tuple[int, ...]', 'str | None'."""
    return f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))


def _is_static_field(f: dataclasses.Field) -> bool:
    if "static" in f.metadata:
        return bool(f.metadata["static"])
    return type_name(f).replace(" ", "") != "float"    # undeclared: traced iff a float


def is_static(cls_or_obj, name: str) -> bool:
    fields = {f.name: f for f in dataclasses.fields(cls_or_obj)}
    if name not in fields:
        raise KeyError(name)
    return _is_static_field(fields[name])


def static_fields(cls_or_obj) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls_or_obj) if _is_static_field(f))


def traced_fields(cls_or_obj) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls_or_obj) if not _is_static_field(f))


def field_doc(cls_or_obj, name: str) -> str:
    return {f.name: f for f in dataclasses.fields(cls_or_obj)}[name].metadata.get("doc", "")


_KINDS = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def _kind_error(kind: str, value) -> str | None:
    """What a Python `value` must be for the annotation `kind` (None if it fits)."""
    kind = kind.replace(" ", "")
    options = kind.split("|")
    if value is None:
        return None if "None" in options else f"a {kind}"
    base = [k for k in options if k != "None"]
    if len(base) != 1:
        return None
    base = base[0]
    if base.startswith("tuple["):
        inner = base[len("tuple["):-1].split(",")[0]
        if not isinstance(value, tuple):
            return f"a tuple of {inner}"
        bad = [v for v in value if _kind_error(inner, v) is not None]
        return f"a tuple of {inner}" if bad else None
    types = _KINDS.get(base)
    if types is None:
        return None
    if isinstance(value, bool) and base != "bool":
        return f"an {base}" if base == "int" else f"a {base}"
    return None if isinstance(value, types) else (f"an {base}" if base == "int" else f"a {base}")


def _check_fields(self) -> None:
    """Kinds of Python values and each field's own check; traced arrays are skipped
    (they are batched sweep values, checked before batching)."""
    for f in dataclasses.fields(self):
        value = getattr(self, f.name)
        if isinstance(value, (jax.Array, np.ndarray)) or isinstance(value, jax.core.Tracer):
            continue
        if isinstance(value, float) and math.isnan(value):
            raise ValueError(f"{type(self).__qualname__}.{f.name} must be a number, got nan")
        problem = _kind_error(type_name(f), value)
        if problem is None and value is not None and f.metadata.get("check") is not None:
            problem = f.metadata["check"](value)
        if problem is not None:
            raise ValueError(f"{type(self).__qualname__}.{f.name} must be {problem}, got {value!r}")


def _check_static_values(self) -> None:
    for name in static_fields(self):
        value = getattr(self, name)
        if isinstance(value, (jax.Array, np.ndarray, list)) or isinstance(value, jax.core.Tracer):
            raise StaticFieldError(
                f"{type(self).__qualname__}.{name} is a static field (it decides shapes, loop "
                f"lengths or the network), so it cannot hold an array or be batched/swept "
                f"inside one compiled program; got {type(value).__name__}. Loop over its values "
                f"in Python instead (rljax.sweep does this, compiling once per value).")


def _validate_all(self) -> None:
    """Every class's own `validate` along the MRO, base classes first."""
    for klass in reversed(type(self).__mro__):
        validate = klass.__dict__.get("validate")
        if validate is not None:
            validate(self)


def config_class(cls):
    """Make `cls` a frozen, keyword-only dataclass registered as a pytree whose
    static fields are aux data and whose other fields are leaves. Construction
    checks static values (no arrays), each field's kind and `check`, then every
    class's `validate(self)`; a bad value raises `ValueError` naming the field."""
    cls = dataclasses.dataclass(frozen=True, kw_only=True)(cls)

    def __post_init__(self):
        _check_static_values(self)
        _check_fields(self)
        _validate_all(self)

    cls.__post_init__ = __post_init__
    fields = dataclasses.fields(cls)
    data = tuple(f.name for f in fields if not _is_static_field(f))
    meta = tuple(f.name for f in fields if _is_static_field(f))

    def flatten_with_keys(obj):
        return ([(jax.tree_util.GetAttrKey(n), getattr(obj, n)) for n in data],
                tuple(getattr(obj, n) for n in meta))

    def flatten(obj):
        return [getattr(obj, n) for n in data], tuple(getattr(obj, n) for n in meta)

    def unflatten(aux, children):
        # Rebuilding a config from its leaves (jit, vmap, tree.map) skips the checks:
        # they ran when it was first built, and leaves may be tracers or placeholders.
        obj = object.__new__(cls)
        for name, value in zip(data, children):
            object.__setattr__(obj, name, value)
        for name, value in zip(meta, aux):
            object.__setattr__(obj, name, value)
        return obj

    jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten)
    return cls


def replace(config, **changes):
    """`dataclasses.replace` that names an unknown field clearly."""
    names = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise ValueError(
            f"unknown field(s) {unknown} for {type(config).__qualname__}; fields are {sorted(names)}")
    return dataclasses.replace(config, **changes)


class Preset(NamedTuple):
    """A named scenario config: what it is for (tuned on which env), and its fields."""

    doc: str
    changes: dict


def from_preset(cls, presets: dict[str, Preset], name: str, **changes):
    """`cls` with preset `name`'s fields, then `changes` on top."""
    if name not in presets:
        raise ValueError(f"unknown preset {name!r} for {cls.__module__.split('.')[-1]}; "
                         f"presets: {', '.join(presets) or 'none'}")
    return cls(**{**presets[name].changes, **changes})


def preset_function(cls, presets: dict[str, Preset]):
    """`preset(name, **changes) -> cls`: the module-level `preset` of an algorithm."""
    def preset(name: str, **changes):
        """A named preset of this algorithm's `PRESETS`, with `changes` on top."""
        return from_preset(cls, presets, name, **changes)
    return preset
