"""Off-policy throughput: env steps/s after compile, compile time, peak memory.

Cases (issue 4): DQN defaults (10 envs, buffer 10k, batch 128, a gradient step every
10 env steps, CartPole-v1) with 1 seed and 8 vmapped seeds; DRQN GRU-128 on
CartPole-P-v1. Each case runs in its own process so `ru_maxrss` is its own peak.
Results go to benchmarks/offpolicy.md.

  python scripts/bench_offpolicy.py [--steps 500000] [--drqn-steps 100000] [--repeats 2]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

CASES = {
    "dqn-1": "DQN CartPole-v1, 1 seed",
    "dqn-8": "DQN CartPole-v1, 8 vmapped seeds",
    "drqn-1": "DRQN GRU-128 CartPole-P-v1, 1 seed",
}


def measure(case: str, steps: int, repeats: int) -> dict:
    import jax
    from rljax.algos import dqn, drqn

    if case.startswith("dqn"):
        module, cfg = dqn, dqn.Config(total_steps=steps)
    else:
        module, cfg = drqn, drqn.Config(total_steps=steps)
    seeds = 8 if case.endswith("-8") else 1
    if seeds == 1:
        fn, key = jax.jit(module.train), jax.random.key(0)
    else:
        fn = jax.jit(jax.vmap(module.train, in_axes=(None, 0)))
        key = jax.random.split(jax.random.key(0), seeds)
    t0 = time.perf_counter()
    compiled = fn.lower(cfg, key).compile()
    compile_s = time.perf_counter() - t0
    times, cpu = [], []
    for _ in range(repeats):
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        jax.block_until_ready(compiled(cfg, key))
        times.append(time.perf_counter() - t0)
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
    best = min(times)
    return dict(case=case, steps=steps, seeds=seeds, compile_s=compile_s, run_s=times,
                env_steps_per_s=steps * seeds / best,
                steps_per_cpu_s=steps * seeds / min(cpu),
                peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=500_000)
    ap.add_argument("--drqn-steps", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--case", choices=sorted(CASES))
    ap.add_argument("--out", default="benchmarks/offpolicy.md")
    args = ap.parse_args()
    if args.case:
        steps = args.drqn_steps if args.case.startswith("drqn") else args.steps
        print(json.dumps(measure(args.case, steps, args.repeats)))
        return
    rows = []
    for case in CASES:
        out = subprocess.run([sys.executable, __file__, "--case", case, "--steps", str(args.steps),
                              "--drqn-steps", str(args.drqn_steps), "--repeats",
                              str(args.repeats)], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    import jax
    lines = [
        "# Off-policy benchmark (DQN, DRQN)", "",
        f"Machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPU cores, "
        f"jax {jax.__version__} on {jax.devices()[0].platform}. Load average when written: "
        f"{os.getloadavg()[0]:.1f} (other jobs shared these 2 cores; numbers are lower bounds "
        "of what an idle machine gives).",
        f"Produced by `python scripts/bench_offpolicy.py --steps {args.steps} --drqn-steps "
        f"{args.drqn_steps} --repeats {args.repeats}`; env steps/s use the fastest repeat "
        "after compile, all seeds counted; peak memory is the process's max RSS.", "",
        "*Steps per CPU-second* divides by the process's user+system CPU time instead of "
        "wall time: less sensitive to the other jobs (it is what one dedicated core would give "
        "if the program used one core).", "",
        "| case | env steps per seed | env steps/s (wall) | env steps per CPU-second | "
        "compile s | run s (repeats) | peak RSS MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {CASES[r['case']]} | {r['steps']} | {r['env_steps_per_s']:,.0f} | "
                     f"{r['steps_per_cpu_s']:,.0f} | "
                     f"{r['compile_s']:.1f} | {', '.join(f'{t:.1f}' for t in r['run_s'])} | "
                     f"{r['peak_rss_mb']:.0f} |")
    lines.append("")
    with open(args.out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
