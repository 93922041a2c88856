"""The algorithms, and the one registry the command, `rljax list`, bench and sweep read.

Every module here follows the contract of `rljax.algos.base` (`Config`, `PRESETS`,
`make_agent`, `loop`, `train`). To add an algorithm, write its module and add one
line to `REGISTRY` below (the README walks through it).
"""
from __future__ import annotations

import difflib
import types

from rljax.algos import a2c, dqn, drqn, impala, ppo, pqn, reinforce, sac
from rljax.algos.base import Loop, check_contract, train_loop
from rljax.seeds import seed_keys

REGISTRY: dict[str, types.ModuleType] = {
    "ppo": ppo, "a2c": a2c, "reinforce": reinforce, "dqn": dqn, "drqn": drqn,
    "pqn": pqn, "impala": impala, "sac": sac,
}
DEFAULT = "ppo"

for _module in REGISTRY.values():
    check_contract(_module)


def get(name: str) -> types.ModuleType:
    """The algorithm module registered as `name` (a `ValueError` names close matches)."""
    if name not in REGISTRY:
        close = difflib.get_close_matches(str(name), list(REGISTRY), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"unknown algorithm {name!r}{hint}; known: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def describe(name: str) -> str:
    """The first line of the algorithm module's docstring."""
    return (get(name).__doc__ or "").strip().splitlines()[0]


__all__ = ["REGISTRY", "DEFAULT", "get", "describe", "Loop", "seed_keys", "train_loop",
           "a2c", "dqn", "drqn", "impala", "ppo", "pqn", "reinforce", "sac"]
