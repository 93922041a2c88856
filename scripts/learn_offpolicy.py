"""The "must learn" runs of issue 4, written to benchmarks/offpolicy_learning.md (+ PNG).

  * DQN on CartPole-v1 (defaults: CleanRL's config, 5e5 env steps);
  * on CartPole-P-v1 (velocities hidden), same budget: DQN history 1, DQN history 4,
    DRQN (GRU 128, stored carry + burn-in).

Each run trains `--seeds` seeds as one vmapped program, then plays 20 greedy episodes
per seed. Usage: python scripts/learn_offpolicy.py [--seeds 2] [--steps 500000]
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import numpy as np

from rljax.algos import common, dqn, drqn, seed_keys
from rljax.rollout import evaluate


def run(name, module, cfg, seeds):
    keys = seed_keys(seeds)
    t0 = time.time()
    result = jax.block_until_ready(jax.jit(jax.vmap(module.train, in_axes=(None, 0)))(cfg, keys))
    wall = time.time() - t0
    env, env_params, spec = common.make_env(cfg)
    agent = module.make_agent(cfg, spec)
    ev = jax.jit(jax.vmap(lambda p, k: evaluate(agent, p, env, env_params, k, 20, greedy=True)[0]))
    greedy = np.asarray(ev(result.train_state.params, seed_keys(seeds, start=1000)))
    m = {k: np.asarray(v) for k, v in result.metrics.items()}
    print(f"{name}: {wall:.0f}s, greedy {greedy.mean(1)}, last train {np.nanmean(m['episode_return'][:, -5:], 1)}",
          flush=True)
    return dict(name=name, cfg=cfg, wall=wall, greedy=greedy, metrics=m)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=500_000)
    ap.add_argument("--out", default="benchmarks")
    ap.add_argument("--plain", action="store_true",
                    help="masked-CartPole runs with the plain defaults (1-step, no double Q)")
    args = ap.parse_args()
    s = args.steps
    # On the masked CartPole all three runs share 3-step double-Q targets (with the plain
    # 1-step defaults DQN-history-4 and DRQN learned on one seed of two).
    pomdp = {} if args.plain else dict(n_step=3, double_q=True)
    runs = [
        ("DQN CartPole-P-v1 history 1", dqn, dqn.Config(env_id="CartPole-P-v1", total_steps=s,
                                                        **pomdp)),
        ("DQN CartPole-P-v1 history 4", dqn, dqn.Config(env_id="CartPole-P-v1", history=4,
                                                        total_steps=s, **pomdp)),
        ("DRQN CartPole-P-v1 GRU-128", drqn, drqn.Config(total_steps=s, **pomdp)),
        ("DQN CartPole-v1", dqn, dqn.Config(total_steps=s)),
    ]
    os.makedirs(args.out, exist_ok=True)
    results = []
    for n, mod, c in runs:          # write after every run: partial results survive a timeout
        results.append(run(n, mod, c, args.seeds))
        write(results, args)


def write(results, args):
    s = args.steps
    lines = [
        "# Off-policy learning (issue 4): DQN, DQN with history, DRQN", "",
        f"Machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPU cores, "
        f"jax {jax.__version__} on {jax.devices()[0].platform}; load average at the end "
        f"{os.getloadavg()[0]:.1f} (another job shared the cores, so wall times are upper bounds).",
        f"Produced by `python scripts/learn_offpolicy.py --seeds {args.seeds} --steps {s}"
        f"{' --plain' if args.plain else ''}`.", "",
        "Each row: one vmapped program over the seeds. *Train return*: mean return of the "
        "episodes that ended in the last 5 log rows (25k env steps, ε = 0.05). *Greedy*: "
        "mean of 20 greedy episodes per seed after training (per seed in brackets).", "",
        "| run | env steps | seeds | train return (last 25k) | greedy return | best log row | wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ret = r["metrics"]["episode_return"]
        last = np.nanmean(ret[:, -5:], 1)
        g = r["greedy"].mean(1)
        lines.append(
            f"| {r['name']} | {s} | {args.seeds} | {last.mean():.1f} "
            f"({', '.join(f'{x:.0f}' for x in last)}) | {g.mean():.1f} "
            f"({', '.join(f'{x:.0f}' for x in g)}) | {np.nanmax(np.nanmean(ret, 0)):.1f} | "
            f"{r['wall']:.0f} |")
    lines += ["", "Configs: " + "; ".join(
        f"{r['name']}: `{r['cfg']}`" for r in results), ""]
    with open(os.path.join(args.out, "offpolicy_learning.md"), "w") as f:
        f.write("\n".join(lines))

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for r in results:
        ax = axes[0] if "CartPole-v1" in r["name"] and "-P-" not in r["name"] else axes[1]
        x = r["metrics"]["env_steps"][0]
        y = r["metrics"]["episode_return"]
        ax.plot(x, np.nanmean(y, 0), label=r["name"])
        ax.fill_between(x, np.nanmin(y, 0), np.nanmax(y, 0), alpha=0.2)
    axes[0].set_title("CartPole-v1"); axes[1].set_title("CartPole-P-v1 (velocities hidden)")
    for ax in axes:
        ax.set_xlabel("env steps"); ax.set_ylabel("training episode return"); ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "offpolicy_learning.png"), dpi=100)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
