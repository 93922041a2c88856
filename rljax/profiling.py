"""Where an update's time goes, and how close it runs to its ceilings.

    rljax bench --parts             # PPO's default config, one seed
    rljax bench --parts rppo        # recurrent PPO (GRU-128, PureJaxRL's ppo_rnn config)
    rljax bench --parts dqn         # DQN's default config (one iteration)

Each part is compiled on its own and run `repeats` times inside one `lax.scan` (so
dispatch is amortised), after a warm-up. PPO (`ppo_parts`):

  rollout        T env steps of B envs with the policy forward (`rollout.rollout`)
  advantages     V(last_obs), successor values and GAE (`ppo.make_batch`)
  gradient       one minibatch's loss and gradient (`jax.value_and_grad`)
  optimizer      one clipped-Adam step on those gradients (`tx.update` + apply)

An update is `rollout + advantages + E * M * (gradient + optimizer)` (E epochs of M
minibatches). DQN (`dqn_parts`), one iteration after `learning_starts`: act
`train_every` env steps ε-greedily, add them to replay, sample a batch, one gradient
step, one optimizer step. The whole update (iteration), timed the same way, shows what
the parts miss, the "rest": glue (minibatch gathers, the scans, ε, target copies,
metrics) and the parts running slower in place than alone. For DQN it is nearly all the
latter: removing its metrics and conds changes nothing beyond ±5%, while its learning
step takes ~189 us in place and 143 us alone (benchmarks/peer_purejaxrl.md).

**Ceilings.** The rollout-only ceiling is acting alone (env + policy forward, no
learning). The parts ceiling is the update with no glue: the sum of its parts' times.
The compute ceiling (feedforward nets) also sets the learning parts at the FLOP rate
of plain matmuls: XLA's cost analysis gives the FLOPs of one gradient step, and a
dense-layer benchmark of the same shapes (the trunk's matmuls, forward and backward,
as a chain of `[b, k] @ [k, n]` products) gives the rate R this CPU reaches on them:

    compute ceiling = T·B / (t_rollout + t_advantages + E·M·FLOPs_step / R)

It is a ceiling for this algorithm's work at this config on this machine, not for
the algorithm in general: fewer FLOPs (smaller minibatches, fewer epochs) raise it.
The loss's elementwise work (softmax, clipping, the optimizer) is outside R, so no
program reaches it. Recurrent PPO: R is the rate of the net's dense kernels (the core's
input projection, the trunk and the heads, each on its own `[T * b, k]` input), and the
recurrence's FLOPs are counted at that rate too, though a recurrent step is a chain of
batch-`b` matrix-vector products that runs far below it: an upper bound, loose by design.
A tighter one (GRU, LSTM) times the recurrence instead as a bare chain of its
matrix-vector products (`matvec_chain_seconds`, forward and backward: 2 T sequential
products per minibatch), the rest of the gradient's FLOPs at R; it still leaves no
time for the gates, the loss or the optimizer.
"""
from __future__ import annotations

import math
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


def dense_flop_rate(batch: int, sizes: list[tuple[int, int]], repeats: int = 2000, *,
                    chain: bool = True) -> float:
    """FLOP/s of forward + backward matmuls `[batch, k] @ [k, n]` for each `(k, n)`:
    as one chain of layers (`chain`: each output feeds the next; weight gradients), or
    each on its own input (any shapes; weight and input gradients)."""
    keys = jax.random.split(jax.random.key(0), 2 * len(sizes))
    ws = [jax.random.normal(k, s) * 0.01 for k, s in zip(keys[:len(sizes)], sizes)]
    inputs = sizes[:1] if chain else sizes
    xs = [jax.random.normal(k, (batch, s[0])) for k, s in zip(keys[len(sizes):], inputs)]

    def loss(ws, xs):
        if chain:
            h = xs[0]
            for w in ws:
                h = jnp.tanh(h @ w)
            return jnp.sum(h)
        return sum(jnp.sum(jnp.tanh(x @ w)) for x, w in zip(xs, ws))

    def step(c):
        sgd = lambda tree, g: jax.tree.map(lambda a, b: a - 1e-6 * b, tree, g)
        if chain:
            return sgd(c[0], jax.grad(loss)(*c)), c[1]
        return tuple(map(sgd, c, jax.grad(loss, argnums=(0, 1))(*c)))

    flops = 3 * sum(2.0 * batch * k * n for k, n in sizes)   # forward, and two backward GEMMs
    return flops / _time_scan(step, (ws, xs), repeats)


def matvec_chain_seconds(batch: int, size: tuple[int, int], steps: int = 128) -> float:
    """Seconds per step of a bare chain `h <- tanh(h @ W)[:, :H]`, `h [batch, H]`,
    `W [H, G * H]`: the sequential floor of one recurrent step's matrix-vector product."""
    h_size = size[0]
    w = jax.random.normal(jax.random.key(0), size) / math.sqrt(h_size)

    def chain(h):
        body = lambda h, _: (jnp.tanh(h @ w)[:, :h_size], None)
        return jax.lax.scan(body, h, None, length=steps)[0]

    return _time_scan(chain, jnp.ones((batch, h_size)) * 0.1, 200) / steps


def _kernels(params, *, recurrent: bool) -> list[tuple[int, int]]:
    """Shapes of the 2-D kernels in a parameter tree: the dense layers' `(fan_in, fan_out)`,
    or (`recurrent`) the GRU/LSTM recurrent kernels `w_h [H, G * H]`."""
    leaves = jax.tree_util.tree_leaves_with_path(params)
    return [tuple(x.shape) for path, x in leaves
            if x.ndim == 2 and (getattr(path[-1], "key", None) == "w_h") == recurrent]


def _nudge(tree, by):
    """`tree + 1e-30 * by`: makes each timed call's input depend on the last call's output,
    so XLA cannot hoist a loop-invariant part out of the timing scan."""
    return jax.tree.map(lambda a, b: a + 1e-30 * b, tree, by)


def _trunk_sizes(spec, hidden_sizes) -> list[tuple[int, int]]:
    """`(fan_in, fan_out)` of the torso's dense layers for an env's observations."""
    obs = math.prod(spec.obs_shape)
    return [(obs, hidden_sizes[0])] + list(zip(hidden_sizes[:-1], hidden_sizes[1:]))


def _optimizer_step(tx):
    """`(train_state, grads) -> same`: one optimizer step (for `_time_scan`)."""
    from rljax.learner import TrainState

    def step(c):
        ts, g = c
        updates, opt_state = tx.update(g, ts.opt_state, ts.params)
        return TrainState(jax.tree.map(jnp.add, ts.params, updates), opt_state, ts.step + 1), g

    return step


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

    def advantages(c):
        traj, adv = c
        traj = traj._replace(reward=traj.reward + 1e-30 * adv[0])
        return traj, ppo.make_batch(config, agent, params, traj)[0].advantage

    def gradient(c):
        p, g = c
        return _nudge(p, g), grad_fn(p, minibatch)

    t = {
        "rollout": _time_scan(lambda c: (collect(c[0], c[1])[0], jax.random.fold_in(c[1], 1)),
                              (ro_state, jax.random.key(3)), max(10, repeats // 10)),
        "advantages": _time_scan(advantages, (traj, data[0].advantage), repeats),
        "gradient": _time_scan(gradient, (params, grads), repeats),
        "optimizer": _time_scan(_optimizer_step(tx), (ts, grads), repeats),
        "update": _time_scan(lambda s: loop.run(s, 1)[0], state, max(10, repeats // 10)),
    }
    steps = config.num_epochs * config.num_minibatches
    flops_step = _flops(grad_fn, params, minibatch)
    per_update = config.num_envs * config.num_steps
    parts = t["rollout"] + t["advantages"] + steps * (t["gradient"] + t["optimizer"])
    if config.core is None:   # the trunk's matmul chain (actor and critic alike)
        rate = dense_flop_rate(mb, _trunk_sizes(spec, config.hidden_sizes))
    else:   # every dense kernel at the minibatch's T * b rows; the recurrence counted as dense
        rate = dense_flop_rate(config.num_steps * mb, _kernels(params, recurrent=False), chain=False)
    ceiling = per_update / (t["rollout"] + t["advantages"] + steps * flops_step / rate)
    chain_ceiling = None
    recurrent = _kernels(params, recurrent=True)
    if recurrent:   # gru/lstm: each kernel's T sequential batch-b matvecs, forward and backward
        per_step = {size: matvec_chain_seconds(mb, size, config.num_steps) for size in set(recurrent)}
        chain_s = 2 * config.num_steps * sum(per_step[size] for size in recurrent)
        chain_flops = 2 * config.num_steps * sum(2.0 * mb * h * g for h, g in recurrent)
        chain_ceiling = per_update / (t["rollout"] + t["advantages"] + steps * (
            chain_s + max(flops_step - chain_flops, 0.0) / rate))
    return dict(
        title="PPO update" if config.core is None else f"recurrent PPO update ({config.core})",
        whole=t["update"], rest="rest (gathers, scan)",
        seconds=t, minibatch_steps=steps, flops_per_step=flops_step, flop_rate=rate,
        steps_per_s=per_update / t["update"], parts_ceiling_steps_per_s=per_update / parts,
        ceiling_steps_per_s=ceiling, chain_ceiling_steps_per_s=chain_ceiling,
        rollout_steps_per_s=per_update / t["rollout"],
        shares={"rollout": t["rollout"] / t["update"],
                "advantages": t["advantages"] / t["update"],
                "minibatch gradients": steps * t["gradient"] / t["update"],
                "optimizer": steps * t["optimizer"] / t["update"]},
    )


def dqn_parts(config=None, repeats: int = 500) -> dict:
    """Seconds per part of one DQN iteration (act `train_every` env steps, add them to
    replay, sample a batch, one gradient step, one optimizer step) and its compute
    ceiling, one seed, timed after `learning_starts` (every iteration learns)."""
    from rljax.algos import dqn
    from rljax.algos.common import make_env
    from rljax.algos.qlearning import q_parts
    from rljax.buffers import replay_steps
    from rljax.learner import TrainState
    from rljax.rollout import rollout

    config = config or dqn.Config()
    env_spec = make_env(config)[2]
    agent, env, env_params, _, buffer, loss_fn, tx, rollout_len = q_parts(
        config, dqn.network(config, env_spec), dqn.layout(config))
    loop = dqn.loop(config)
    warm = -(-config.learning_starts // config.log_every) + 1       # updates until learning
    state = jax.jit(lambda k: loop.run(loop.init(k), warm)[0])(jax.random.key(0))
    params, target = state.train_state.params, state.target_params
    act = lambda ro, k: rollout(agent, params, env, env_params, ro, k, rollout_len, epsilon=0.1)
    _, traj = jax.jit(act)(state.rollout, jax.random.key(1))
    steps = replay_steps(traj, store_carry=False)
    sample = jax.jit(buffer.sample)(state.buffer, jax.random.key(2))
    batch = (sample, target, None)
    grad_fn = jax.grad(lambda p: loss_fn(p, batch)[0])
    grads = jax.jit(grad_fn)(params)
    ts = TrainState(params, tx.init(params), jnp.zeros((), jnp.int32))

    def sampling(c):
        key, acc = c
        s = buffer.sample(state.buffer, key)
        return jax.random.fold_in(key, 1), acc + 1e-30 * jnp.sum(s.reward)

    def gradient(c):
        p, g = c
        return _nudge(p, g), grad_fn(p)

    iters = config.log_every // config.train_every
    t = {
        "act": _time_scan(lambda c: (act(c[0], c[1])[0], jax.random.fold_in(c[1], 1)),
                          (state.rollout, jax.random.key(3)), repeats),
        "replay add": _time_scan(lambda b: buffer.add(b, steps), state.buffer, repeats),
        "replay sample": _time_scan(sampling, (jax.random.key(4), jnp.zeros(())), repeats),
        "gradient": _time_scan(gradient, (params, grads), repeats),
        "optimizer": _time_scan(_optimizer_step(tx), (ts, grads), repeats),
        "iteration": _time_scan(lambda s: loop.run(s, 1)[0], state, 3) / iters,
    }
    flops = _flops(grad_fn, params)
    rate = dense_flop_rate(config.batch_size, _trunk_sizes(env_spec, config.hidden_sizes))
    floor = t["act"] + t["replay add"] + t["replay sample"] + flops / rate
    per_iter = config.train_every
    parts_s = sum(v for k, v in t.items() if k != "iteration")
    return dict(
        title=f"DQN iteration ({config.train_every} env steps, 1 gradient step)",
        seconds=t, whole=t["iteration"], minibatch_steps=1,
        flops_per_step=flops, flop_rate=rate, steps_per_s=per_iter / t["iteration"],
        parts_ceiling_steps_per_s=per_iter / parts_s, ceiling_steps_per_s=per_iter / floor,
        rollout_steps_per_s=per_iter / t["act"],
        shares={name: t[name] / t["iteration"] for name in
                ("act", "replay add", "replay sample", "gradient", "optimizer")},
        rest="rest (glue; slower in place)")


def report(parts: dict) -> str:
    t, s = parts["seconds"], parts["shares"]
    rest = 1.0 - sum(s.values())
    lines = [
        f"{parts['title']}: {parts['whole'] * 1e3:.3f} ms = {parts['steps_per_s']:,.0f} env steps/s "
        f"(1 seed)",
        *[f"  {name:20s} {share:6.1%}" for name, share in s.items()],
        f"  {parts['rest']:20s} {rest:6.1%}",
        f"acting alone (rollout-only ceiling): {parts['rollout_steps_per_s']:,.0f} env steps/s "
        f"(runs at {parts['steps_per_s'] / parts['rollout_steps_per_s']:.1%} of it)",
        f"parts ceiling (the parts' sum, no glue): {parts['parts_ceiling_steps_per_s']:,.0f} env "
        f"steps/s (runs at {parts['steps_per_s'] / parts['parts_ceiling_steps_per_s']:.1%} of it)",
        f"gradient step: {parts['flops_per_step'] / 1e6:.2f} MFLOP x {parts['minibatch_steps']}",
    ]
    if parts["ceiling_steps_per_s"]:
        lines += [
            f"dense rate here {parts['flop_rate'] / 1e9:.1f} GFLOP/s; compute ceiling (acting at "
            f"its measured time, learning at that rate): {parts['ceiling_steps_per_s']:,.0f} env "
            f"steps/s (runs at {parts['steps_per_s'] / parts['ceiling_steps_per_s']:.1%} of it)"]
    if parts.get("chain_ceiling_steps_per_s"):
        lines += [
            f"with the recurrence at the speed of a bare matvec chain (forward and backward, "
            f"the rest at the dense rate): {parts['chain_ceiling_steps_per_s']:,.0f} env steps/s "
            f"(runs at {parts['steps_per_s'] / parts['chain_ceiling_steps_per_s']:.1%} of it)"]
    return "\n".join(lines)
