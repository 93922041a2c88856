"""Many seeds on a multi-core CPU: one vmapped program on one XLA device vs the seed
axis sharded over one forced CPU device per core (`shard_map`), same total work.

    python scripts/bench_seed_sharding.py [--seeds 32] [--steps 500000] [--devices 2]

Makes one CPU device per core itself (`rljax.parallel.use_cpu_cores`, before JAX
starts); the sharded layout is `rljax.parallel.over_seeds`, what `rljax train --seeds`
runs. Prints env steps/s of both layouts (best of `--repeats` after a warm-up call)
and the first update where their episode returns differ (median over seeds): each
device runs the same per-seed program on a smaller batch, so float reductions may be
ordered differently and a long RL run amplifies that; vmapping 16 instead of 32 seeds
on one device differs from the same update range on this CPU (checked by hand).
"""
from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=32)
    p.add_argument("--steps", type=int, default=500_000, help="env steps per seed")
    p.add_argument("--devices", type=int, default=os.cpu_count())
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    from rljax import parallel
    parallel.use_cpu_cores(args.devices)

    import jax
    import numpy as np

    from rljax.algos import ppo, seed_keys
    from rljax.bench import machine

    config = ppo.Config(total_steps=args.steps)
    keys = seed_keys(args.seeds)
    returns = lambda k: ppo.train(config, k).metrics["episode_return"]
    one_device = jax.jit(jax.vmap(returns))
    mesh = parallel.seed_mesh(args.seeds)
    split = parallel.over_seeds(returns, mesh)
    sharded = lambda k: split(parallel.put_seeds(k, mesh))

    def best(fn):
        out = jax.block_until_ready(fn(keys))               # compile + warm up
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            jax.block_until_ready(fn(keys))
            times.append(time.perf_counter() - t)
        return min(times), np.asarray(out)

    t1, r1 = best(one_device)
    t2, r2 = best(sharded)
    steps = args.seeds * config.num_updates * config.num_envs * config.num_steps
    print(f"{machine()}, load {os.getloadavg()[0]:.1f}; PPO CartPole-v1 defaults, {args.seeds} seeds")
    print(f"vmap on 1 device:          {steps / t1:,.0f} env steps/s")
    print(f"sharded over {mesh.size} devices:   {steps / t2:,.0f} env steps/s  (x{t1 / t2:.2f})")
    differ = ~np.isclose(r1, r2, rtol=0.0, atol=0.0, equal_nan=True)        # [seeds, updates]
    first = np.where(differ.any(axis=1), differ.argmax(axis=1), r1.shape[1])
    print(f"returns identical for the first {int(np.median(first))} of {r1.shape[1]} updates "
          "(median over seeds; float-order differences grow after that)")


if __name__ == "__main__":
    main()
