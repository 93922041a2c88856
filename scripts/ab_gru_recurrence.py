"""A/B of two GRU recurrences in one process: rljax's `gru_recurrence` ("this") against
the one in another copy of `rljax/nets/recurrent.py` ("other": an older or a candidate
commit), on PureJaxRL's ppo_rnn config (recurrent PPO, GRU-128, 4 envs x 128 steps,
4 epochs x 4 minibatches).

    git worktree add /tmp/other <commit>
    python scripts/ab_gru_recurrence.py /tmp/other/rljax/nets/recurrent.py --pairs 6

Both variants are compiled first; then one minibatch gradient, one epoch of minibatch
gradients, and the whole `train` program run alternately (A B, B A, ...), so machine
noise hits both alike. Prints medians (ms) and the ratio this / other. Across processes
this machine's noise (±10%) hides differences of a few percent; here it does not.
Result of 2026-12-05 (benchmarks/peer_purejaxrl.md): a variant whose GRU core alone ran
7.6 -> 6.2 us per step measured 0.96x on one gradient but 1.00x on an epoch and on
`train`, so it was not kept (commit ad2673e holds it).
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time

import jax

from rljax.algos import ppo
from rljax.algos.common import make_env
from rljax.nets import recurrent
from rljax.profiling import _nudge, _time_scan
from rljax.rollout import init_rollout, rollout


def load_other(path: str):
    spec = importlib.util.spec_from_file_location("other_recurrent", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["other_recurrent"] = module        # flax's dataclass transform needs it
    spec.loader.exec_module(module)
    return module.gru_recurrence


def programs(config):
    """`{what: (compiled fn, args)}` for the recurrence now installed in `recurrent`."""
    env, env_params, spec = make_env(config)
    agent = ppo.make_agent(config, spec)
    params = jax.jit(ppo.loop(config).init)(jax.random.key(0)).train_state.params
    ro = init_rollout(env, env_params, agent, jax.random.key(1), config.num_envs)
    _, traj = jax.jit(lambda s, k: rollout(agent, params, env, env_params, s, k,
                                           config.num_steps))(ro, jax.random.key(2))
    data = jax.jit(lambda t: ppo.make_batch(config, agent, params, t))(traj)
    minibatches = ppo.epoch_minibatches(config, data, jax.random.key(3))
    one = jax.tree.map(lambda x: x[0], minibatches)
    loss = ppo.loss_fn(config, agent)
    grad = jax.grad(lambda p, mb: loss(p, mb)[0])

    def epoch(p):
        step = lambda p, mb: (jax.tree.map(lambda a, g: a - 1e-6 * g, p, grad(p, mb)), None)
        return jax.lax.scan(step, p, minibatches)[0]

    g0 = jax.jit(grad)(params, one)
    train = jax.jit(lambda k: ppo.train(config, k)).lower(jax.random.key(0)).compile()
    return {
        "minibatch gradient": lambda: _time_scan(
            lambda c: (_nudge(c[0], c[1]), grad(c[0], one)), (params, g0), 100),
        f"epoch ({config.num_minibatches} gradients)": lambda: _time_scan(epoch, params, 20),
        "train (per update)": lambda: _timed(train, jax.random.key(0)) / config.num_updates,
    }


def _timed(fn, *args) -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("other", help="path of the other recurrent.py")
    p.add_argument("--pairs", type=int, default=4)
    p.add_argument("--total-steps", type=int, default=100_000)
    args = p.parse_args()
    config = ppo.recurrent_config(num_envs=4, lr=2.5e-4, total_steps=args.total_steps)
    current = recurrent.gru_recurrence
    sides = {}
    for name, fn in (("other", load_other(args.other)), ("this", current)):
        recurrent.gru_recurrence = fn                 # read when MaskedGRU is traced
        sides[name] = programs(config)
        for run in sides[name].values():              # compile + warm up now
            run()
    recurrent.gru_recurrence = current
    times = {(s, w): [] for s in sides for w in sides["this"]}
    for pair in range(args.pairs):
        for side in ("other", "this") if pair % 2 == 0 else ("this", "other"):
            for what, run in sides[side].items():
                times[(side, what)].append(run() * 1e3)
    print(f"{jax.devices()[0].device_kind}, jax {jax.__version__}, {args.pairs} pairs")
    for what in sides["this"]:
        other = statistics.median(times[("other", what)])
        this = statistics.median(times[("this", what)])
        print(f"  {what:26s} other {other:8.3f} ms  this {this:8.3f} ms  this/other "
              f"{this / other:.3f}")


if __name__ == "__main__":
    main()
