"""Benchmark: a 64-member PPO sweep (16 learning rates x 4 seeds) on CartPole-v1.

    PYTHONPATH=. python scripts/bench_sweep.py --total-steps 16384 --sequential 8

Three ways, compile included in each:
  vmapped     one `jit(vmap(ppo.train))` over all members (rljax.sweep.run)
  sequential  a fresh `jax.jit(ppo.train)` per member (a new jitted function, so each
              compiles: what separate scripts / processes do)
  loop        one `jax.jit(ppo.train)` reused in a Python loop (compiles once; the
              learning rate is a traced leaf, so it does not recompile)
`--sequential K` / `--loop K` time only the first K members and extrapolate to 64 (said
so in the output) when the full run would take too long on a small shared CPU.
"""
import argparse
import os
import platform
import subprocess
import time

import jax
import numpy as np

from rljax import config as config_lib
from rljax import sweep
from rljax.algos import ppo


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name"))
    except Exception:
        return platform.processor()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--total-steps", type=int, default=16384)
    ap.add_argument("--sequential", type=int, default=64, help="members timed (extrapolated)")
    ap.add_argument("--vmapped-seconds", type=float, default=None,
                    help="reuse a measured vmapped time instead of running it again")
    ap.add_argument("--loop", type=int, default=64, help="members timed (extrapolated)")
    args = ap.parse_args()
    base = ppo.Config(total_steps=args.total_steps)
    lrs = list(np.geomspace(1e-4, 3e-3, 16))
    space, seeds, n = sweep.grid(lr=lrs), 4, 64
    members = sweep.population(base, space, seeds).members

    res = None
    if args.vmapped_seconds is None:
        t = time.perf_counter()
        res = sweep.run(ppo.train, base, space, seeds=seeds, devices=jax.devices()[:1])
        t_vmap = time.perf_counter() - t
        assert res.ok and res.completed == n
    else:
        t_vmap = args.vmapped_seconds

    def timed(k, fresh):
        """Seconds for all n members: the first call (with its compile) measured, the
        other n - 1 extrapolated from the next k - 1."""
        jitted = jax.jit(ppo.train)
        times = []
        for m in members[:k]:
            t = time.perf_counter()
            # a new function object: jax.jit caches per function, so `jax.jit(ppo.train)`
            # again would reuse the first compile; separate scripts would not.
            fn = jax.jit(lambda c, k: ppo.train(c, k)) if fresh else jitted
            out = fn(config_lib.replace(base, lr=m["lr"]), jax.random.key(m["seed"]))
            jax.block_until_ready(out)
            times.append(time.perf_counter() - t)
        if fresh:   # every call compiles
            return float(np.mean(times)) * n
        rest = times[1:] or times
        return times[0] + float(np.mean(rest)) * (n - 1)

    t_seq = timed(args.sequential, fresh=True)
    t_loop = timed(args.loop, fresh=False)
    c = base
    print(f"machine: {os.cpu_count()} CPU cores, {cpu_model()}; jax {jax.__version__}, "
          f"backend {jax.default_backend()}, devices used: 1")
    print(f"config: ppo.Config(total_steps={c.total_steps}, num_envs={c.num_envs}, "
          f"num_steps={c.num_steps}, hidden_sizes={c.hidden_sizes}, num_epochs={c.num_epochs}, "
          f"num_minibatches={c.num_minibatches}) -> {c.num_updates} updates/member; "
          f"16 lrs geomspace(1e-4, 3e-3) x 4 seeds = {n} members")
    ext = lambda k: "" if k == n else f" (timed {k} of {n}, extrapolated)"
    print(f"vmapped (one compile):        {t_vmap:8.1f} s")
    print(f"sequential (compile each):    {t_seq:8.1f} s{ext(args.sequential)}  "
          f"speedup of vmapped: {t_seq / t_vmap:.1f}x")
    print(f"loop over one jitted train:   {t_loop:8.1f} s{ext(args.loop)}  "
          f"speedup of vmapped: {t_loop / t_vmap:.1f}x")
    if res is not None:
        print("best:", res.rank()[:3])


if __name__ == "__main__":
    main()
