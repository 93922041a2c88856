"""Where a PPO update's time goes, and how close it runs to the compute ceiling.

    python -m rljax.bench --parts          # PPO's default config, one seed
    rljax bench --parts

Each part of one update is compiled on its own and run `repeats` times inside one
`lax.scan` (so dispatch is amortised), after a warm-up:

  rollout        T env steps of B envs with the policy forward (`rollout.rollout`)
  advantages     V(last_obs), successor values and GAE (`ppo.make_batch`)
  gradient       one minibatch's loss and gradient (`jax.value_and_grad`)
  optimizer      one clipped-Adam step on those gradients (`tx.update` + apply)

An update is `rollout + advantages + E * M * (gradient + optimizer)` (E epochs of M
minibatches); the whole update, timed the same way, shows what the parts miss
(minibatch gathers, the scan, metrics).

**The compute ceiling.** XLA's cost analysis gives the FLOPs of one minibatch
gradient step; a dense-layer benchmark of the same shapes (the minibatch's matmuls,
forward and backward, as a chain of `[b, k] @ [k, n]` products) gives the FLOP rate
this CPU reaches on them, R. The ceiling is the env steps/s of an update whose
learning part ran at R and whose rollout and advantages took their measured time:

    ceiling = T·B / (t_rollout + t_advantages + E·M·FLOPs_step / R)

It is a ceiling for this algorithm's work at this config on this machine, not for
PPO in general: fewer FLOPs (smaller minibatches, fewer epochs) raise it.
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp


def _time_scan(fn, carry, repeats: int) -> float:
    """Seconds per call of `carry -> carry` run `repeats` times in one compiled scan."""
    body = lambda c, _: (fn(c), None)
    run = jax.jit(lambda c: jax.lax.scan(body, c, None, length=repeats)[0])
    jax.block_until_ready(run(carry))                     # compile + warm up
    t0 = time.perf_counter()
    jax.block_until_ready(run(carry))
    return (time.perf_counter() - t0) / repeats


def _flops(fn, *args) -> float:
    analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0]
    return float(analysis.get("flops", 0.0)) if analysis else 0.0


def dense_flop_rate(batch: int, sizes: list[tuple[int, int]], repeats: int = 2000) -> float:
    """FLOP/s of forward + backward matmuls `[batch, k] @ [k, n]` for each `(k, n)`."""
    keys = jax.random.split(jax.random.key(0), len(sizes) + 1)
    ws = [jax.random.normal(k, s) * 0.01 for k, s in zip(keys[1:], sizes)]
    x = jax.random.normal(keys[0], (batch, sizes[0][0]))

    def step(c):
        x, ws = c
        def loss(ws):
            h = x
            for w in ws:
                h = jnp.tanh(h @ w)
            return jnp.sum(h)
        g = jax.grad(loss)(ws)
        return x, [w - 1e-6 * gw for w, gw in zip(ws, g)]

    flops = 3 * sum(2.0 * batch * k * n for k, n in sizes)   # forward, and two backward GEMMs
    return flops / _time_scan(step, (x, ws), repeats)


def ppo_parts(config=None, repeats: int = 200) -> dict:
    """Seconds per part of one PPO update (one seed) and the compute ceiling."""
    from rljax.algos import onpolicy, ppo
    from rljax.algos.common import make_env
    from rljax.learner import TrainState
    from rljax.rollout import init_rollout, rollout

    config = config or ppo.Config()
    env, env_params, spec = make_env(config)
    agent = ppo.make_agent(config, spec)
    loop = ppo.loop(config)
    state = jax.jit(loop.init)(jax.random.key(0))
    params = state.train_state.params
    tx = onpolicy.adam(config, config.lr)
    loss = ppo.loss_fn(config, agent)
    collect = lambda s, k: rollout(agent, params, env, env_params, s, k, config.num_steps,
                                   unroll=config.scan_unroll)
    ro_state = init_rollout(env, env_params, agent, jax.random.key(1), config.num_envs)
    _, traj = jax.jit(collect)(ro_state, jax.random.key(2))
    data = jax.jit(lambda t: ppo.make_batch(config, agent, params, t))(traj)
    minibatch = jax.tree.map(lambda x: x[0], ppo.epoch_minibatches(config, data, jax.random.key(4)))
    mb = jax.tree.leaves(minibatch[0].action)[0].shape[0 if config.core is None else 1]
    grad_fn = jax.grad(lambda p, mb: loss(p, mb)[0])
    grads = jax.jit(grad_fn)(params, minibatch)
    ts = TrainState(params, tx.init(params), jnp.zeros((), jnp.int32))

    def optimizer(c):
        ts, g = c
        updates, opt_state = tx.update(g, ts.opt_state, ts.params)
        return TrainState(jax.tree.map(jnp.add, ts.params, updates), opt_state, ts.step + 1), g

    nudge = lambda tree, by: jax.tree.map(lambda a, b: a + 1e-30 * b, tree, by)  # keep parts
    # inside the timed loop: each call's input depends on the last call's output, so XLA
    # cannot hoist a loop-invariant part out of the scan.

    def advantages(c):
        traj, adv = c
        traj = traj._replace(reward=traj.reward + 1e-30 * adv[0])
        return traj, ppo.make_batch(config, agent, params, traj)[0].advantage

    def gradient(c):
        p, g = c
        return nudge(p, g), grad_fn(p, minibatch)

    t = {
        "rollout": _time_scan(lambda c: (collect(c[0], c[1])[0], jax.random.fold_in(c[1], 1)),
                              (ro_state, jax.random.key(3)), max(10, repeats // 10)),
        "advantages": _time_scan(advantages, (traj, data[0].advantage), repeats),
        "gradient": _time_scan(gradient, (params, grads), repeats),
        "optimizer": _time_scan(optimizer, (ts, grads), repeats),
        "update": _time_scan(lambda s: loop.run(s, 1)[0], state, max(10, repeats // 10)),
    }
    steps = config.num_epochs * config.num_minibatches
    flops_step = _flops(grad_fn, params, minibatch)
    obs = int(jnp.prod(jnp.array(spec.obs_shape)))
    sizes = [(obs, config.hidden_sizes[0])] + list(zip(config.hidden_sizes[:-1],
                                                       config.hidden_sizes[1:]))
    rate = dense_flop_rate(mb, sizes)   # the trunk's matmul chain (actor and critic alike)
    learn_floor = steps * flops_step / rate
    per_update = config.num_envs * config.num_steps
    return dict(
        seconds=t, minibatch_steps=steps, flops_per_step=flops_step, flop_rate=rate,
        steps_per_s=per_update / t["update"],
        ceiling_steps_per_s=per_update / (t["rollout"] + t["advantages"] + learn_floor),
        rollout_steps_per_s=per_update / t["rollout"],
        shares={"rollout": t["rollout"] / t["update"],
                "advantages": t["advantages"] / t["update"],
                "minibatch gradients": steps * t["gradient"] / t["update"],
                "optimizer": steps * t["optimizer"] / t["update"]},
    )


def report(parts: dict) -> str:
    t, s = parts["seconds"], parts["shares"]
    rest = 1.0 - sum(s.values())
    lines = [
        f"PPO update: {t['update'] * 1e3:.2f} ms = {parts['steps_per_s']:,.0f} env steps/s (1 seed)",
        *[f"  {name:20s} {share:6.1%}" for name, share in s.items()],
        f"  {'rest (gathers, scan)':20s} {rest:6.1%}",
        f"rollout alone: {parts['rollout_steps_per_s']:,.0f} env steps/s "
        f"(PPO runs at {parts['steps_per_s'] / parts['rollout_steps_per_s']:.1%} of it)",
        f"minibatch step: {parts['flops_per_step'] / 1e6:.2f} MFLOP x {parts['minibatch_steps']}, "
        f"dense rate here {parts['flop_rate'] / 1e9:.1f} GFLOP/s",
        f"compute ceiling: {parts['ceiling_steps_per_s']:,.0f} env steps/s "
        f"(PPO at {parts['steps_per_s'] / parts['ceiling_steps_per_s']:.1%} of it)",
    ]
    return "\n".join(lines)
