"""The one seed convention of rljax.

Seed `s` is the PRNG key `jax.random.key(s)` everywhere: `rljax train --seed S --seeds N`
runs seeds S, ..., S + N - 1, `sweep.run(seeds=)` and `rljax sweep --seeds` use the
same keys, and `train(config, jax.random.key(s))` in Python is the same run, so any
member of a sweep can be re-run on its own (and the other way round).
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp


def seed_keys(seeds: int | Sequence[int], start: int = 0) -> jax.Array:
    """The PRNG keys of seeds `start, ..., start + seeds - 1` (or of a list of seeds):
    seed `s` is `jax.random.key(s)`; `[N]` keys."""
    seeds = list(range(start, start + seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    return jax.vmap(jax.random.key)(jnp.asarray(seeds, jnp.uint32))
