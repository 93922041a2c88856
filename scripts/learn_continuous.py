"""Continuous-control learning results (benchmarks/continuous.md).

    PYTHONPATH=. python scripts/learn_continuous.py sac_pendulum --seeds 4
    PYTHONPATH=. python scripts/learn_continuous.py ppo_pendulum --seeds 4
    PYTHONPATH=. python scripts/learn_continuous.py ppo_pendulum_p ppo_pendulum_p_gru
    PYTHONPATH=. python scripts/learn_continuous.py ppo_brax_inverted_pendulum --seeds 4
    PYTHONPATH=. python scripts/learn_continuous.py --plot benchmarks/continuous.png

Each experiment trains its seeds as one vmapped program and prints, and appends to
benchmarks/continuous.json: every seed's final return (`rljax.metrics.final_return`,
the mean episode return over the last 10% of updates), the env steps, the compile and
train wall times, the machine and its load average.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import numpy as np

from rljax.algos import ppo, sac, seed_keys
from rljax.metrics import final_return

ROOT = Path(__file__).resolve().parents[1]

EXPERIMENTS = {
    # SAC defaults (CleanRL's) on Pendulum, 5e4 env steps
    "sac_pendulum": lambda: (sac, sac.Config(env_id="Pendulum-v1", total_steps=50_000)),
    # PPO's tuned Pendulum preset, 1e6 env steps
    "ppo_pendulum": lambda: (ppo, ppo.preset("pendulum", env_id="Pendulum-v1")),
    # Pendulum with the angular velocity hidden: feedforward vs recurrent PPO
    "ppo_pendulum_p": lambda: (ppo, ppo.preset("pendulum", env_id="Pendulum-P-v1")),
    "ppo_pendulum_p_gru": lambda: (ppo, ppo.preset("pendulum_recurrent", env_id="Pendulum-P-v1")),
    # Brax inverted pendulum (rljax[brax])
    "ppo_brax_inverted_pendulum": lambda: (ppo, ppo.preset(
        "pendulum", env_id="brax/inverted_pendulum", total_steps=200_704)),
}


def _nanmean_seeds(values):
    values = np.asarray(values, float)
    count = np.isfinite(values).sum(0)
    return np.where(count > 0, np.nansum(values, 0) / np.maximum(count, 1), np.nan)


def run(name: str, seeds: int, total_steps: int | None) -> dict:
    algo, config = EXPERIMENTS[name]()
    if total_steps:
        config = type(config)(**{**{f: getattr(config, f) for f in config.__dataclass_fields__},
                                 "total_steps": total_steps})
    loop = algo.loop(config)
    train = jax.jit(jax.vmap(algo.train, in_axes=(None, 0)))
    keys = seed_keys(seeds)
    t0 = time.perf_counter()
    compiled = train.lower(config, keys).compile()
    t1 = time.perf_counter()
    result = jax.block_until_ready(compiled(config, keys))
    t2 = time.perf_counter()
    finals = final_return(result.metrics["episode_return"])
    steps = float(np.asarray(result.metrics["env_steps"])[0, -1])
    record = {
        "experiment": name, "algo": algo.__name__.split(".")[-1], "env_id": config.env_id,
        "seeds": seeds, "env_steps_per_seed": steps, "final_return_per_seed": finals.tolist(),
        "mean": float(np.mean(finals)), "worst": float(np.min(finals)),
        "compile_s": round(t1 - t0, 1), "train_s": round(t2 - t1, 1),
        "updates": loop.num_updates, "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "loadavg_after": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M"),
        "curve_mean": _nanmean_seeds(result.metrics["episode_return"]).tolist(),
    }
    print(f"{name}: {config.env_id} {steps:,.0f} steps/seed, train {t2 - t1:.0f} s "
          f"(compile {t1 - t0:.0f} s), load {os.getloadavg()[0]:.1f}; final return per seed "
          + ", ".join(f"{f:.1f}" for f in finals) + f"; mean {np.mean(finals):.1f}", flush=True)
    return record


def plot(records: list[dict], path: Path) -> None:
    """Mean-over-seeds learning curves of the newest record of each experiment."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    newest = {r["experiment"]: r for r in records}
    fig, axes = plt.subplots(1, len(newest), figsize=(4 * len(newest), 3.2), squeeze=False)
    for ax, r in zip(axes[0], newest.values()):
        curve = np.asarray(r["curve_mean"], float)
        steps = np.linspace(r["env_steps_per_seed"] / len(curve), r["env_steps_per_seed"], len(curve))
        ok = np.isfinite(curve)          # updates in which no episode ended are NaN
        ax.plot(steps[ok], curve[ok])
        ax.set_title(f"{r['algo']} {r['env_id']}\n{r['experiment']}", fontsize=8)
        ax.set_xlabel("env steps per seed", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("episode return (mean of seeds)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", nargs="*", help=", ".join(sorted(EXPERIMENTS)))
    parser.add_argument("--plot", metavar="PNG", help="plot the records' curves into PNG")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--total-steps", type=int, default=None)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "continuous.json"))
    args = parser.parse_args()
    unknown = sorted(set(args.experiments) - set(EXPERIMENTS))
    if unknown:
        parser.error(f"unknown experiments {unknown}; known: {', '.join(sorted(EXPERIMENTS))}")
    out = Path(args.out)
    records = json.loads(out.read_text()) if out.exists() else []
    for name in args.experiments:
        records.append(run(name, args.seeds, args.total_steps))
        out.write_text(json.dumps(records, indent=1) + "\n")
    if args.plot:
        plot(records, Path(args.plot))


if __name__ == "__main__":
    main()
