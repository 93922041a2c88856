"""Throughput benchmarks: env steps/s after compile, compile time, peak memory.

    python scripts/bench.py                       # every case -> benchmarks/bench.md
    python scripts/bench.py --only ppo-1 ppo-32   # some cases
    rljax bench --only dqn-1

Each case runs in its own process, so its peak RSS is its own. Env steps/s counts
all seeds and uses the fastest of `--repeats` runs of the compiled program. Cases with
several seeds run them as `rljax train --seeds` does: split over one CPU device per core
(`rljax.parallel.over_seeds`), each device vmapping its share.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import subprocess
import sys
import time
from typing import Callable, NamedTuple


class Case(NamedTuple):
    title: str
    algo: str        # a name in rljax.algos.REGISTRY, or "rollout" for the no-learning ceiling
    make: Callable   # () -> Config
    seeds: int
    steps: int       # env steps per seed (defaults; --scale multiplies)


def _configs():
    from rljax.algos import a2c, dqn, drqn, ppo, pqn, reinforce

    ppo_cfg = lambda steps: ppo.Config(total_steps=steps)
    rppo_cfg = lambda steps: ppo.recurrent_config(total_steps=steps, num_envs=4, lr=2.5e-4)
    return {
        "ppo-1": Case("PPO CartPole-v1, 4x128, 4 epochs x 4 minibatches, 1 seed", "ppo", ppo_cfg, 1, 500_000),
        "ppo-32": Case("PPO, same config, 32 vmapped seeds", "ppo", ppo_cfg, 32, 500_000),
        "rppo-1": Case("recurrent PPO (GRU-128) CartPole-v1, 4x128, 1 seed", "ppo", rppo_cfg, 1, 100_000),
        "rppo-32": Case("recurrent PPO (GRU-128), 32 vmapped seeds", "ppo", rppo_cfg, 32, 20_480),
        "a2c-1": Case("A2C (SaLinA preset: 8x16), 1 seed", "a2c",
                      lambda s: a2c.preset("salina", total_steps=s), 1, 500_000),
        "a2c-32": Case("A2C, 32 vmapped seeds", "a2c", lambda s: a2c.preset("salina", total_steps=s),
                       32, 200_000),
        "reinforce-1": Case("REINFORCE (rlplay preset: 8x25), 1 seed", "reinforce",
                            lambda s: reinforce.preset("rlplay", total_steps=s), 1, 500_000),
        "reinforce-32": Case("REINFORCE, 32 vmapped seeds", "reinforce",
                             lambda s: reinforce.preset("rlplay", total_steps=s), 32, 200_000),
        "rollout-1": Case("rollout ceiling: PPO's env + policy forward, 4x128, no learning, 1 seed",
                          "rollout", ppo_cfg, 1, 500_000),
        "rollout-32": Case("rollout ceiling, 32 vmapped seeds", "rollout", ppo_cfg, 32, 500_000),
        "dqn-1": Case("DQN CartPole-v1 (10 envs, buffer 10k, batch 128, train every 10), 1 seed",
                      "dqn", lambda s: dqn.Config(total_steps=s), 1, 500_000),
        "dqn-8": Case("DQN, same config, 8 vmapped seeds", "dqn", lambda s: dqn.Config(total_steps=s), 8, 500_000),
        "drqn-1": Case("DRQN GRU-128 CartPole-P-v1, 1 seed", "drqn",
                       lambda s: drqn.Config(env_id="CartPole-P-v1", total_steps=s), 1, 100_000),
        # issue 15 learners
        "pqn-1": Case("PQN CartPole-v1 (32x64, 4 epochs x 16 minibatches, 2x128 LayerNorm), 1 seed",
                      "pqn", lambda s: pqn.Config(total_steps=s), 1, 500_000),
        "pqn-8": Case("PQN, same config, 8 vmapped seeds", "pqn",
                      lambda s: pqn.Config(total_steps=s), 8, 500_000),
        "ppo-minatar-cnn": Case("PPO Breakout-MinAtar, CNN torso (3x3x16), 64x128, 1 seed", "ppo",
                                lambda s: ppo.Config(env_id="Breakout-MinAtar", num_envs=64,
                                                     torso="cnn", total_steps=s), 1, 262_144),
        "pqn-minatar-cnn": Case("PQN Breakout-MinAtar, CNN torso (3x3x16), 32x64, 1 seed", "pqn",
                                lambda s: pqn.Config(env_id="Breakout-MinAtar", torso="cnn",
                                                     total_steps=s), 1, 262_144),
    }


def rollout_only(config, rng):
    """The ceiling: the same rollouts as `config`'s training, with fixed params."""
    import jax
    import jax.numpy as jnp

    from rljax.algos import onpolicy
    from rljax.algos.common import make_env
    from rljax.rollout import init_rollout, rollout

    env, env_params, spec = make_env(config)
    agent = onpolicy.make_agent(config, spec)
    k_init, k_env, k_loop = jax.random.split(rng, 3)
    params = agent.init(k_init, jnp.zeros(spec.obs_shape))
    state = init_rollout(env, env_params, agent, k_env, config.num_envs)

    def one(state, key):
        state, traj = rollout(agent, params, env, env_params, state, key, config.num_steps,
                              unroll=config.scan_unroll)
        return state, traj.reward.sum()

    _, rewards = jax.lax.scan(one, state, jax.random.split(k_loop, config.num_updates))
    return rewards


def measure(name: str, scale: float, repeats: int) -> dict:
    import jax

    from rljax import algos, parallel

    case = _configs()[name]
    steps = int(case.steps * scale)
    config = case.make(steps)
    train = rollout_only if case.algo == "rollout" else algos.get(case.algo).train
    if case.seeds == 1:
        fn, key, devices = jax.jit(functools.partial(train, config)), jax.random.key(0), 1
    else:       # as `rljax train --seeds`: the seeds split over the devices (CPU: cores)
        mesh = parallel.seed_mesh(case.seeds)
        fn = parallel.over_seeds(functools.partial(train, config), mesh)
        key, devices = parallel.put_seeds(algos.seed_keys(case.seeds), mesh), mesh.size
    t0 = time.perf_counter()
    compiled = fn.lower(key).compile()
    compile_s = time.perf_counter() - t0
    wall, cpu = [], []
    for _ in range(repeats):
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        jax.block_until_ready(compiled(key))
        wall.append(time.perf_counter() - t0)
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
    loop = algos.get("ppo" if case.algo == "rollout" else case.algo).loop(config)
    env_steps = loop.num_updates * loop.steps_per_update * case.seeds
    return dict(case=name, title=case.title, steps_per_seed=env_steps // case.seeds, seeds=case.seeds,
                devices=devices,
                compile_s=compile_s, run_s=wall, env_steps_per_s=env_steps / min(wall),
                steps_per_cpu_s=env_steps / min(cpu),
                peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import jax
    return f"{model}, {os.cpu_count()} cores, jax {jax.__version__} on {jax.default_backend()}"


def write_report(rows: list[dict], path: str, command: str) -> str:
    lines = [
        "# Throughput benchmark", "",
        f"Machine: {machine()}. Load average when written: {os.getloadavg()[0]:.1f}.",
        f"Produced by `{command}`. Env steps/s: all seeds, fastest repeat after compile. "
        "Steps per CPU-second divide by the process's user+system CPU time instead. "
        "Peak memory: the case's own process max RSS.", "",
        "| case | env steps per seed | seeds | env steps/s | per CPU-second | compile s | run s | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['title']} | {r['steps_per_seed']:,} | {r['seeds']}"
            f"{f' on {d} devices' if (d := r.get('devices', 1)) > 1 else ''} | {r['env_steps_per_s']:,.0f} | "
            f"{r['steps_per_cpu_s']:,.0f} | {r['compile_s']:.1f} | "
            f"{', '.join(f'{t:.2f}' for t in r['run_s'])} | {r['peak_rss_mb']:.0f} |")
    text = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    with open(os.path.splitext(path)[0] + ".json", "w") as f:
        json.dump(dict(machine=machine(), rows=rows), f, indent=1)
    return text


def main(argv=None) -> None:
    from rljax import parallel
    parallel.use_cpu_cores()      # before `_configs` imports gymnax (which starts JAX)
    names = list(_configs())
    parser = argparse.ArgumentParser(prog="rljax bench", description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=names, default=names)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every case's env steps")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/bench.md")
    parser.add_argument("--parts", nargs="?", const="ppo", choices=["ppo", "rppo", "dqn"],
                        help="where one update's time goes (PPO, recurrent PPO with PureJaxRL's "
                             "ppo_rnn config, or DQN), and its ceilings (rljax.profiling)")
    parser.add_argument("--case", choices=names, help=argparse.SUPPRESS)  # one case, in this process
    args = parser.parse_args(argv)
    if args.parts:
        from rljax import profiling
        print(f"{machine()}, load average {os.getloadavg()[0]:.1f}")
        rppo = _configs()["rppo-1"]          # PureJaxRL's ppo_rnn config
        parts = {"ppo": profiling.ppo_parts, "dqn": profiling.dqn_parts,
                 "rppo": lambda: profiling.ppo_parts(rppo.make(rppo.steps), repeats=50)}
        print(profiling.report(parts[args.parts]()))
        return
    if args.case:
        print(json.dumps(measure(args.case, args.scale, args.repeats)))
        return
    rows = []
    for name in args.only:
        out = subprocess.run([sys.executable, "-m", "rljax.bench", "--case", name, "--scale",
                              str(args.scale), "--repeats", str(args.repeats)],
                             capture_output=True, text=True)
        if out.returncode:
            print(f"{name}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"{name}: {r['env_steps_per_s']:,.0f} env steps/s, compile {r['compile_s']:.1f}s, "
              f"{r['peak_rss_mb']:.0f} MB", flush=True)
    command = "python scripts/bench.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if rows:
        print(write_report(rows, args.out, command.strip()))


if __name__ == "__main__":
    main()
