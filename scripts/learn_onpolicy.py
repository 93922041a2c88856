"""Learning results of the on-policy algorithms, written to benchmarks/onpolicy_learning.md.

    python scripts/learn_onpolicy.py [--seeds 3] [--only NAME ...]

Runs (each over vmapped seeds, one compile):
  ppo            PPO defaults on CartPole-v1, 5e5 steps (must reach >= 475)
  ppo_gru_pomdp  recurrent PPO (GRU-128) on CartPole-P-v1 (velocities hidden), 1e6 steps
  ppo_ff_pomdp   feedforward PPO without history on CartPole-P-v1, 1e6 steps (should fail)
  a2c            A2C, SaLinA config (CartPole-v1 limited to 100 steps)
  reinforce      REINFORCE, rlplay config
"""
from __future__ import annotations

import argparse
import json
import os
import time

import jax
import numpy as np

from rljax.algos import a2c, ppo, reinforce, seed_keys
from rljax.bench import machine
from rljax.metrics import final_return, smooth

RUNS = {
    "ppo": (ppo, lambda: ppo.Config()),
    "ppo_gru_pomdp": (ppo, lambda: ppo.recurrent_config(env_id="CartPole-P-v1", total_steps=1_000_000)),
    "ppo_ff_pomdp": (ppo, lambda: ppo.Config(env_id="CartPole-P-v1", total_steps=1_000_000)),
    "a2c": (a2c, lambda: a2c.preset("salina")),
    "reinforce": (reinforce, lambda: reinforce.preset("rlplay")),
}



def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=list(RUNS))
    parser.add_argument("--out", default="benchmarks")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rows, curves = [], {}
    for name in args.only:
        module, make = RUNS[name]
        config = make()
        keys = seed_keys(args.seeds)
        t0 = time.time()
        result = jax.block_until_ready(jax.jit(jax.vmap(module.train, in_axes=(None, 0)))(config, keys))
        wall = time.time() - t0
        ret = np.asarray(result.metrics["episode_return"])
        final = final_return(ret)
        curves[name] = dict(env_steps=np.asarray(result.metrics["env_steps"][0]).tolist(),
                            returns=[[None if np.isnan(x) else float(x) for x in row] for row in ret])
        rows.append((name, config.env_id, config.total_steps, args.seeds, final, wall))
        print(f"{name}: final returns per seed {np.round(final, 1)} ({wall:.0f}s incl. compile)", flush=True)
    with open(os.path.join(args.out, "onpolicy_learning.md"), "w") as f:
        f.write(f"# On-policy learning results\n\nMachine: {machine()}.\n"
                f"Produced by `python scripts/learn_onpolicy.py --seeds {args.seeds}`. Final return = "
                "rljax.metrics.final_return (mean episode return over the last 10% of updates), per "
                "seed (vmapped seeds 0..n-1, keys jax.random.key(s)). Wall time includes "
                "compilation.\n\n"
                "| run | env | env steps | seeds | final return per seed | mean | wall s |\n"
                "|---|---|---|---|---|---|---|\n")
        for name, env_id, steps, seeds, final, wall in rows:
            f.write(f"| {name} | {env_id} | {steps:,} | {seeds} | {', '.join(f'{x:.1f}' for x in final)} "
                    f"| {np.mean(final):.1f} | {wall:.0f} |\n")
    with open(os.path.join(args.out, "onpolicy_learning.json"), "w") as f:
        json.dump(curves, f)
    plot(curves, os.path.join(args.out, "onpolicy_learning.png"))


def plot(curves: dict, path: str) -> None:
    """Mean over seeds of the smoothed return (NaN-aware), with the min-max band."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, c in curves.items():
        r = smooth(np.array(c["returns"], dtype=float), max(1, len(c["env_steps"]) // 50))
        ax.plot(c["env_steps"], np.nanmean(r, 0), label=name)
        ax.fill_between(c["env_steps"], np.nanmin(r, 0), np.nanmax(r, 0), alpha=0.2)
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return (smoothed)")
    ax.set_title("mean over seeds; band: min-max", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
