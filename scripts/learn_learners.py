"""Learning results of issue 15 ("more learners"), one experiment per invocation.

    python scripts/learn_learners.py pqn-cartpole   --seeds 8 --steps 500000
    python scripts/learn_learners.py masked-cartpole --seeds 8 --steps 500000
    python scripts/learn_learners.py minatar        --seeds 2 --steps 1000000
    python scripts/learn_learners.py vtrace         --seeds 2 --steps 300000

Each run trains `--seeds` seeds as one vmapped program, then plays 20 greedy episodes
per seed; `benchmarks/learners_<experiment>.md` (+ .png, + .json) gets every seed's
final training return (`rljax.metrics.final_return`: last 10% of updates, with the
run's exploration) and its greedy return. Rows are written after every run, so a
timeout keeps what finished.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import numpy as np

from rljax import algos
from rljax.algos import common, seed_keys
from rljax.metrics import final_return
from rljax.rollout import evaluate


def experiments(name: str, steps: int) -> list[tuple[str, str, object]]:
    """`[(row name, algo name, config)]` of an experiment."""
    pqn, ppo, drqn = algos.get("pqn"), algos.get("ppo"), algos.get("drqn")
    if name == "pqn-cartpole":
        return [("PQN CartPole-v1 (defaults)", "pqn", pqn.Config(total_steps=steps))]
    if name == "masked-cartpole":
        return [("recurrent PQN CartPole-P-v1", "pqn",
                 pqn.preset("recurrent", env_id="CartPole-P-v1", total_steps=steps)),
                ("DRQN + prioritised sequence replay CartPole-P-v1 (untuned)", "drqn",
                 drqn.Config(total_steps=steps, n_step=3, double_q=True, prioritised=True,
                             period=10)),
                # drqn.preset("cartpole_p"): changed by hand from the defaults, no search
                ("DRQN CartPole-P-v1 (hand-tuned: buffer 50k, lr 1e-3, exploration 0.2)", "drqn",
                 drqn.preset("cartpole_p", total_steps=steps))]
    if name == "minatar":
        rows = []
        for env_id in ("Breakout-MinAtar", "SpaceInvaders-MinAtar"):
            for torso in ("cnn", "mlp"):
                rows.append((f"PPO {env_id} {torso}", "ppo", ppo.Config(
                    env_id=env_id, total_steps=steps, torso=torso, num_envs=64)))
                rows.append((f"PQN {env_id} {torso}", "pqn", pqn.Config(
                    env_id=env_id, total_steps=steps, torso=torso, q_lambda=0.65)))
        return rows
    if name == "vtrace":
        rows = []
        for env_id in ("CartPole-v1", "Acrobot-v1"):
            for lag in (0, 8, 32):
                for correct in (True, False):
                    rows.append((f"IMPALA {env_id} lag {lag} {'V-trace' if correct else 'no correction'}",
                                 "impala", algos.get("impala").Config(env_id=env_id, behaviour_lag=lag,
                                                         vtrace=correct, total_steps=steps)))
        return rows
    raise SystemExit(f"unknown experiment {name!r}")


def run(row: str, algo_name: str, cfg, seeds: int) -> dict:
    module = algos.get(algo_name)
    keys = seed_keys(seeds)
    t0 = time.time()
    result = jax.block_until_ready(jax.jit(jax.vmap(module.train, in_axes=(None, 0)))(cfg, keys))
    wall = time.time() - t0
    env, env_params, spec = common.make_env(cfg)
    agent = module.make_agent(cfg, spec)
    ev = jax.jit(jax.vmap(lambda p, k: evaluate(agent, p, env, env_params, k, 20, greedy=True)[0]))
    greedy = np.asarray(ev(result.train_state.params, seed_keys(seeds, start=1000))).mean(1)
    m = {k: np.asarray(v) for k, v in result.metrics.items()}
    final = final_return(m["episode_return"])
    print(f"{row}: {wall:.0f}s, final {np.round(final, 1)}, greedy {np.round(greedy, 1)}", flush=True)
    return dict(name=row, algo=algo_name, cfg=repr(cfg), wall=wall, seeds=seeds,
                steps=cfg.total_steps, load=os.getloadavg()[0], greedy=greedy.tolist(),
                final=final.tolist(), env_steps=m["env_steps"][0].tolist(),
                curve=np.nanmean(m["episode_return"], 0).tolist(),
                curve_min=np.nanmin(m["episode_return"], 0).tolist(),
                curve_max=np.nanmax(m["episode_return"], 0).tolist())


def write(experiment: str, results: list[dict], args) -> None:
    base = os.path.join(args.out, f"learners_{experiment}")
    lines = [
        f"# Issue 15 learners: {experiment}", "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores shared with other jobs, "
        f"jax {jax.__version__} on {jax.devices()[0].platform}; load average at the end "
        f"{os.getloadavg()[0]:.1f} (wall times are upper bounds).",
        f"Produced by `python scripts/learn_learners.py {experiment} --seeds {args.seeds} "
        f"--steps {args.steps}` (rows rerun alone with `--only`). *Load*: the 1-minute load "
        "average when the row ended.", "",
        "*Final*: mean training return over the last 10% of updates (`rljax.metrics."
        "final_return`, with the run's exploration). *Greedy*: 20 greedy episodes per seed "
        "after training. Every seed in brackets, seed 0 first.", "",
        "| run | env steps | seeds | final (every seed) | greedy (every seed) | wall s | load |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        fmt = lambda xs: f"{np.nanmean(xs):.1f} ({', '.join(f'{x:.0f}' for x in xs)})"
        load = f"{r['load']:.1f}" if "load" in r else ""      # rows from before it was kept
        lines.append(f"| {r['name']} | {r.get('steps', args.steps)} | {r.get('seeds', args.seeds)} | "
                     f"{fmt(r['final'])} | {fmt(r['greedy'])} | {r['wall']:.0f} | {load} |")
    lines += ["", "Configs:", ""] + [f"- {r['name']}: `{r['cfg']}`" for r in results] + [""]
    with open(base + ".md", "w") as f:
        f.write("\n".join(lines))
    with open(base + ".json", "w") as f:
        json.dump(results, f)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in results:
        x = np.asarray(r["env_steps"])
        ax.plot(x, r["curve"], label=r["name"])
        ax.fill_between(x, r["curve_min"], r["curve_max"], alpha=0.15)
    ax.set_xlabel("env steps"); ax.set_ylabel("training episode return (mean, min-max over seeds)")
    ax.legend(fontsize=7); fig.tight_layout()
    fig.savefig(base + ".png", dpi=90)
    print("\n".join(lines))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("experiment")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=500_000)
    ap.add_argument("--only", nargs="*", help="substrings of the row names to run")
    ap.add_argument("--out", default="benchmarks")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    results = []
    path = os.path.join(args.out, f"learners_{args.experiment}.json")
    if args.only and os.path.exists(path):      # keep the rows this call does not rerun
        with open(path) as f:
            results = json.load(f)
    for row, algo_name, cfg in experiments(args.experiment, args.steps):
        if args.only and not any(s in row for s in args.only):
            continue
        new = run(row, algo_name, cfg, args.seeds)
        results = [r for r in results if r["name"] != row] + [new]
        write(args.experiment, results, args)


if __name__ == "__main__":
    main()
