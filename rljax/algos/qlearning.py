"""Replay Q-learning shared by DQN and DRQN: config, targets, loss, training loop.

DQN is the special case of DRQN with a feedforward network, windows of `n_step`
steps, no burn-in and a loss on the first step of each window only; both
algorithms call `train_q` with the window layout that makes them what they are.

The loss for one sampled window `[L, N]` (time-major, like a rollout fragment):

  1. Start from the carry stored with the window (`carry[0]`) or from zeros
     ("bootstrapped random updates", Hausknecht & Stone 2015).
  2. Burn-in: run the first `burn_in` steps only to refresh the carry; the carry
     that leaves them is `stop_gradient`ed and they get no loss (R2D2).
  3. On the remaining steps, online and target networks give Q(s_t) and the Q
     of each step's successor, Q(s'_t) = Q(h_t, final_obs_t) from the carry h_t
     after reading obs_t (at a time-limit cut that is the finished episode's last
     observation, so truncation bootstraps correctly; at termination γ_t = 0).
  4. v_t = Q_target(s'_t, a*), a* = argmax Q_target (or argmax Q_online: double Q);
     y = n_step_returns(r, γ·(1 - terminated), v, n, truncated) along the window.
  5. L = mean over the trained steps of ½(Q(s_t, a_t) - sg(y_t))² (or Huber).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rljax import agents, losses, nets, normalize, returns
from rljax.algos import common
from rljax.algos.base import Loop, iterations_loop
from rljax.buffers import (ReplayStep, importance_weights, make_prioritised_sequence_buffer,
                           make_sequence_buffer, replay_steps)
from rljax.config import (at_least, config_class, each, non_negative, one_of, positive,
                          probability, static, traced)
from rljax.learner import TrainState, make_learner
from rljax.rollout import init_rollout, rollout

sg = jax.lax.stop_gradient


@config_class
class QConfig(common.EnvConfig):
    """Fields shared by DQN and DRQN. Defaults: CleanRL's CartPole DQN."""

    num_envs: int = static(10, doc="parallel envs", check=at_least(1))
    total_steps: int = static(500_000, doc="env steps per seed, all envs together",
                              check=at_least(1))
    buffer_size: int = static(10_000, doc="replay capacity in env steps", check=at_least(1))
    batch_size: int = static(128, doc="transitions (DQN) or sequences (DRQN) per gradient step",
                             check=at_least(1))
    learning_starts: int = static(10_000, doc="env steps collected before the first update",
                                  check=at_least(0))
    train_every: int = static(10, doc="env steps (all envs) between training phases",
                              check=at_least(1))
    gradient_steps: int = static(1, doc="gradient steps per training phase", check=at_least(1))
    target_update_every: int = static(500, doc="env steps between target updates",
                                      check=at_least(1))
    hidden_sizes: tuple[int, ...] = static((120, 84), doc="MLP torso sizes", check=each(positive))
    activation: str = static("relu", doc="tanh | relu | elu | gelu",
                             check=one_of(*nets.mlp.ACTIVATIONS))
    double_q: bool = static(False, doc="double Q-learning targets (online net picks a*)")
    n_step: int = static(1, doc="n of n-step targets", check=at_least(1))
    loss: str = static("mse", doc="'mse' or 'huber'", check=one_of("mse", "huber"))
    log_every: int = static(5_000, doc="env steps per update (one row of metrics)",
                            check=at_least(1))
    unroll: int = static(1, doc="lax.scan unroll of the training loop", check=at_least(1))

    lr: float = traced(2.5e-4, doc="Adam learning rate", check=non_negative)
    gamma: float = traced(0.99, doc="discount factor", check=non_negative)
    eps_start: float = traced(1.0, doc="initial exploration epsilon", check=probability)
    eps_end: float = traced(0.05, doc="final exploration epsilon", check=probability)
    exploration_fraction: float = traced(0.5, doc="fraction of total_steps over which epsilon "
                                         "decays linearly", check=non_negative)
    tau: float = traced(1.0, doc="target update: 1 hard copy, < 1 Polyak averaging",
                        check=probability)
    huber_delta: float = traced(1.0, doc="Huber loss delta (loss='huber')", check=positive)
    max_grad_norm: float = traced(10.0, doc="global-norm gradient clip (inf: none)",
                                  check=positive)
    # --- prioritised replay (issue 15) ---------------------------------------------------
    prioritised: bool = static(False, doc="prioritised replay (PER; DRQN: R2D2's sequence "
                               "priorities); priorities live in the loop state")
    priority_exponent: float = traced(0.6, doc="alpha: window i is sampled with probability "
                                      "p_i^alpha / sum_k p_k^alpha", check=non_negative)
    importance_beta: float = traced(0.4, doc="beta of the importance-sampling weights at the "
                                    "start, annealed linearly to 1 over total_steps",
                                    check=probability)
    priority_eta: float = traced(0.9, doc="eta of the window priority eta * max|delta| + "
                                 "(1 - eta) * mean|delta| (R2D2)", check=probability)

    @property
    def num_updates(self) -> int:
        return self.total_steps // self.log_every

    def validate(self):
        if common.make_env(self)[2].num_actions is None:
            raise ValueError(f"Q-learning needs discrete actions; {self.env_id} has a Box "
                             f"action space (use sac, or ppo with a Gaussian policy)")
        common.check_divides("train_every", self.train_every, "num_envs", self.num_envs)
        common.check_divides("log_every", self.log_every, "train_every", self.train_every)
        common.check_divides("total_steps", self.total_steps, "log_every", self.log_every)
        common.check_divides("target_update_every", self.target_update_every,
                             "train_every", self.train_every)
        common.check_divides("buffer_size", self.buffer_size, "num_envs", self.num_envs)


class WindowLayout(NamedTuple):
    """How a sampled window is used (static)."""

    length: int          # L, steps per window
    period: int          # distance between window starts
    burn_in: int         # leading steps that only refresh the carry
    loss_steps: int      # steps after the burn-in that get a loss
    stored_carry: bool   # start from the stored carry (else zeros)


# --------------------------------------------------------------------------- schedule, target
def linear_epsilon(env_steps, *, start, end, duration):
    """ε = max(end, start + (end - start) · env_steps / duration) (CleanRL)."""
    frac = jnp.clip(env_steps / jnp.maximum(duration, 1.0), 0.0, 1.0)
    return start + frac * (end - start)


def update_target(online, target, *, tau):
    """θ⁻ ← τ θ + (1 - τ) θ⁻; τ = 1 is the hard copy of DQN."""
    return optax.incremental_update(online, target, tau)


# --------------------------------------------------------------------------- values, targets, loss
def sequence_q_values(net, params, carry0, obs, first, final_obs):
    """Q of each step and of its successor along a window.

    Args:
      net: a sequence Q-network `(carry, obs [T, N, ...], first [T, N]) -> (carry, q)`.
      carry0: carry before `obs[0]` (`()` for feedforward nets).
      obs, final_obs: `[T, N, ...]`; `final_obs[t]` is the successor of `obs[t]`.
      first: `[T, N]` bool; the carry is reset before reading `obs[t]` where True.

    Returns:
      `(q_tm1, q_t)`, both `[T, N, A]`: Q(h_{t-1}, obs_t) and Q(h_t, final_obs_t),
      where h_t is the carry after reading obs_t (the successor never resets it).
    """
    not_first = jnp.zeros_like(first)
    if not jax.tree.leaves(carry0):          # feedforward: no carry; flat [T * N] rows
        t, n = first.shape
        flat = lambda x: x.reshape((t * n, *x.shape[2:]))
        _, q_tm1 = net.apply(params, carry0, flat(obs), flat(first))
        _, q_t = net.apply(params, carry0, flat(final_obs), flat(not_first))
        return q_tm1.reshape((t, n, -1)), q_t.reshape((t, n, -1))

    def step(carry, inputs):
        o, f = inputs
        carry, q = net.apply(params, carry, o[None], f[None])
        return carry, (q[0], carry)

    _, (q_tm1, carries) = jax.lax.scan(step, carry0, (obs, first))
    t, n = first.shape
    merge = lambda x: x.reshape((1, t * n, *x.shape[2:]))
    _, q_t = net.apply(params, jax.tree.map(lambda c: merge(c)[0], carries), merge(final_obs),
                       merge(not_first))
    return q_tm1, q_t.reshape(q_tm1.shape)


def q_targets(r_t, discount_t, truncated_t, q_t_value, q_t_selector, *, n: int):
    """n-step (double) Q-learning targets along one window, `[T]`; vmap for batches.

    yₜ = n_step_returns(r, γ, v, n, truncated)ₜ,  vₜ = q_t_value[t, argmax_a q_t_selector[t, a]].
    Pass `q_t_selector = q_t_value` for plain Q-learning (max), the online net's
    values for double Q. With n = 1: yₜ = rₜ + γₜ vₜ, as in `losses.q_learning_loss`.

    Args:
      r_t: rewards, [T].
      discount_t: γ·(1 - terminated_t), [T].
      truncated_t: bool [T]; an n-step sum stops at a truncation and bootstraps there.
      q_t_value, q_t_selector: Q-values of each step's successor, [T, A].
      n: static number of steps.

    Returns:
      Targets, [T] (not stop-gradiented).

    References:
      van Hasselt et al., Double Q-learning, AAAI 2016; Sutton & Barto §7.1.
    """
    best = jnp.argmax(q_t_selector, axis=-1)
    v_t = jnp.take_along_axis(q_t_value, best[:, None], axis=-1)[:, 0]
    return returns.n_step_returns(r_t, discount_t, v_t, n=n, truncated_t=truncated_t)


def _window_values(net, params, steps: ReplayStep, layout: WindowLayout):
    """Burn-in (no gradient through it), then `sequence_q_values` on the rest."""
    batch = steps.reward.shape[1]
    if layout.stored_carry:
        carry = jax.tree.map(lambda c: c[0], steps.carry)
    else:
        carry = net.initial_carry(batch)
    b = layout.burn_in
    if b:
        carry, _ = net.apply(params, carry, steps.obs[:b], steps.first[:b])
        carry = sg(carry)
    return sequence_q_values(net, params, carry, steps.obs[b:], steps.first[b:],
                             steps.final_obs[b:])


def window_q_loss(net, params, target_params, steps: ReplayStep, layout: WindowLayout, *,
                  gamma, double_q: bool, n_step: int, huber_delta=None, weights=None,
                  priority_eta=None):
    """Q-learning loss on sampled windows `[L, N]`; see the module docstring.

    With prioritised replay, `weights [N]` are the importance-sampling weights of the
    windows (each window's loss is scaled by its weight) and the metrics add
    `"priority" [N]`, R2D2's η·max_t |δ_t| + (1 - η)·mean_t |δ_t| over the window's
    trained steps (`priority_eta` = η).

    Returns:
      `(loss, {"q_mean", "td_abs"[, "priority"]})`.
    """
    q_tm1, q_t_online = _window_values(net, params, steps, layout)
    _, q_t_target = _window_values(net, sg(target_params), steps, layout)
    b = layout.burn_in
    discount_t = gamma * (1.0 - steps.terminated[b:].astype(jnp.float32))
    selector = sg(q_t_online) if double_q else q_t_target
    y = jax.vmap(lambda *xs: q_targets(*xs, n=n_step), in_axes=1, out_axes=1)(
        steps.reward[b:], discount_t, steps.truncated[b:], q_t_target, selector)
    k = layout.loss_steps
    q_a = jnp.take_along_axis(q_tm1[:k], steps.action[b:b + k, :, None], axis=-1)[..., 0]
    y = sg(y[:k])
    metrics = {"q_mean": sg(jnp.mean(q_a)), "td_abs": sg(jnp.mean(jnp.abs(y - q_a)))}
    if weights is not None:                     # prioritised replay (issue 15)
        loss, _ = losses.weighted_td_loss(q_a, y, sg(weights)[None, :], huber_delta=huber_delta)
        td_abs = sg(jnp.abs(y - q_a))           # [k, N]
        metrics["priority"] = (priority_eta * jnp.max(td_abs, 0)
                               + (1.0 - priority_eta) * jnp.mean(td_abs, 0))
        return loss, metrics
    if huber_delta is None:
        loss, _ = losses.value_loss(q_a, y)
    else:
        loss, _ = losses.huber_value_loss(q_a, y, delta=huber_delta)
    return loss, metrics


# --------------------------------------------------------------------------- training loop
def q_network(config: QConfig, num_actions: int, *, core=None, core_size=128, core_layers=1,
              head_sizes=(), spec=None):
    """The QNetwork of `config` (with observation normalisation when asked); `spec` (the
    env's `EnvSpec`) sets the torso's input."""
    if num_actions is None:
        raise ValueError("Q-learning needs discrete actions; for a Box action space use sac")
    torso = common.torso_kwargs(config, spec) if spec is not None else {}
    return normalize.observing(nets.QNetwork(num_actions, nets.Trunk(
        hidden_sizes=tuple(config.hidden_sizes), activation=config.activation, core=core,
        core_size=core_size, core_layers=core_layers, head_sizes=tuple(head_sizes), **torso)),
        config)


class QLoopState(NamedTuple):
    """Everything replay Q-learning carries from one update (log row) to the next."""

    train_state: TrainState   # online params, optimizer state, gradient steps
    target_params: Any
    buffer: Any               # flashbax trajectory-buffer state
    rollout: Any              # env states, observations, first flags, actor carry
    key: jax.Array
    update: jax.Array         # updates (log rows) done, int32; sets the ε schedule
    reward_scale: Any = ()    # rljax.normalize.RewardScale when config.normalize_reward


def _nan_metrics():
    nan = jnp.full((), jnp.nan, jnp.float32)
    return {"loss": nan, "q_mean": nan, "td_abs": nan, "grad_norm": nan}


def _summarise(per_iter: dict) -> dict:
    """Per-iteration metrics `[K]` -> one log row."""
    row = common.episode_row(per_iter)
    for name in ("loss", "q_mean", "td_abs", "grad_norm", "beta"):
        if name in per_iter:
            row[name] = jnp.nanmean(per_iter[name])
    row["epsilon"] = per_iter["epsilon"][-1]
    return row


class QParts(NamedTuple):
    """The pieces one replay Q-learning iteration is made of (`q_loop` runs them;
    `rljax.profiling.dqn_parts` times them one by one)."""

    agent: Any            # ε-greedy Q agent of the net
    env: Any
    env_params: Any
    spec: Any
    buffer: Any           # ReplayBuffer / PrioritisedReplayBuffer of windows
    loss_fn: Any          # (params, (steps, target_params, weights)) -> (loss, metrics)
    tx: Any               # optax transformation (global-norm clip + Adam)
    rollout_len: int      # steps per env acted between training phases


def q_parts(config: QConfig, net, layout: WindowLayout) -> QParts:
    """Build the agent, env, replay buffer, loss and optimizer of `config`."""
    cfg = config
    env, env_params, spec = common.make_env(cfg)
    if cfg.learning_starts < cfg.num_envs * layout.length:
        raise ValueError(f"learning_starts={cfg.learning_starts} must cover one window per env "
                         f"(num_envs * {layout.length})")
    make_buffer = make_prioritised_sequence_buffer if cfg.prioritised else make_sequence_buffer
    buffer = make_buffer(num_envs=cfg.num_envs, capacity=cfg.buffer_size,
                         batch_size=cfg.batch_size, sequence_length=layout.length,
                         period=layout.period)
    tx = optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.lr))
    huber = cfg.huber_delta if cfg.loss == "huber" else None

    def loss_fn(params, batch):
        steps, target_params, weights = batch
        return window_q_loss(net, params, target_params, steps, layout, gamma=cfg.gamma,
                             double_q=cfg.double_q, n_step=cfg.n_step, huber_delta=huber,
                             weights=weights,
                             priority_eta=cfg.priority_eta if cfg.prioritised else None)

    return QParts(agents.q_agent(net), env, env_params, spec, buffer, loss_fn, tx,
                  cfg.train_every // cfg.num_envs)


def q_loop(config: QConfig, net, layout: WindowLayout) -> Loop:
    """Replay Q-learning as a resumable `Loop`. One update is `log_every` env steps:
    `log_every / train_every` iterations of: act ε-greedily for `train_every` env
    steps, add them to replay, then (once `learning_starts` steps are in) take
    `gradient_steps` steps on sampled windows; copy/Polyak the target every
    `target_update_every` env steps. The state (`QLoopState`) holds the replay
    buffer, so a resumed run samples exactly what the uninterrupted one does.
    """
    cfg = config
    agent, env, env_params, spec, buffer, loss_fn, tx, rollout_len = q_parts(cfg, net, layout)
    iters_per_log = cfg.log_every // cfg.train_every
    learner = make_learner(loss_fn, tx)
    target_period = cfg.target_update_every // cfg.train_every

    def init(rng) -> QLoopState:
        k_init, k_reset, k_loop = jax.random.split(rng, 3)
        params = agent.init(k_init, jnp.zeros(spec.obs_shape, jnp.float32))
        ro_state = init_rollout(env, env_params, agent, k_reset, cfg.num_envs)
        example = ReplayStep(
            obs=jnp.zeros(spec.obs_shape, jnp.float32), first=jnp.zeros((), bool),
            carry=jax.tree.map(lambda c: c[0], ro_state.carry) if layout.stored_carry else (),
            action=jnp.zeros((), jnp.int32), reward=jnp.zeros((), jnp.float32),
            terminated=jnp.zeros((), bool), truncated=jnp.zeros((), bool),
            final_obs=jnp.zeros(spec.obs_shape, jnp.float32))
        return QLoopState(learner.init(params), params, buffer.init(example), ro_state, k_loop,
                          jnp.zeros((), jnp.int32),
                          normalize.init_reward_scale(cfg, cfg.num_envs))

    def learn(state: QLoopState, key, env_steps):
        """`gradient_steps` steps; returns `(train_state, buffer, metrics)`. With
        prioritised replay each step samples by priority, weighs the loss by IS weights
        (β annealed to 1) and writes the new priorities of what it sampled."""
        beta = cfg.importance_beta + (1.0 - cfg.importance_beta) * jnp.clip(
            env_steps / cfg.total_steps, 0.0, 1.0)

        def grad_step(carry, k):
            ts, buf = carry
            if not cfg.prioritised:
                ts, metrics = learner.update(ts, (buffer.sample(buf, k), state.target_params, None))
                return (ts, buf), metrics
            sample = buffer.sample(buf, k)
            weights = importance_weights(sample.probabilities, beta=beta)
            ts, metrics = learner.update(ts, (sample.steps, state.target_params, weights))
            priority = metrics.pop("priority") + 1e-6       # > 0: still sampleable
            buf = buffer.set_priorities(buf, sample.indices, priority, cfg.priority_exponent)
            return (ts, buf), {**metrics, "beta": beta}

        if cfg.gradient_steps == 1:
            (ts, buf), metrics = grad_step((state.train_state, state.buffer), key)
            return ts, buf, metrics
        (ts, buf), metrics = jax.lax.scan(grad_step, (state.train_state, state.buffer),
                                          jax.random.split(key, cfg.gradient_steps))
        return ts, buf, jax.tree.map(jnp.mean, metrics)

    def iteration(state: QLoopState, i):
        key, k_act, k_learn = jax.random.split(state.key, 3)
        steps_before = i * cfg.train_every
        eps = linear_epsilon(steps_before, start=cfg.eps_start, end=cfg.eps_end,
                             duration=cfg.exploration_fraction * cfg.total_steps)
        ro_state, traj = rollout(agent, state.train_state.params, env, env_params, state.rollout,
                                 k_act, rollout_len, epsilon=eps)
        reward_scale, traj = normalize.scale_rewards(cfg, state.reward_scale, traj)
        buf = buffer.add(state.buffer, replay_steps(traj, store_carry=layout.stored_carry))
        state = state._replace(buffer=buf, rollout=ro_state, key=key, reward_scale=reward_scale)
        steps_after = steps_before + cfg.train_every
        learning = steps_after >= cfg.learning_starts
        nan = _nan_metrics() if not cfg.prioritised else {**_nan_metrics(), "beta": jnp.nan}
        train_state, buf, metrics = jax.lax.cond(
            learning, lambda: learn(state, k_learn, steps_after),
            lambda: (state.train_state, state.buffer, nan))
        state = state._replace(buffer=buf)
        train_state = train_state._replace(params=normalize.observe(
            train_state.params, traj.obs, stats_from=state.train_state.params))
        target = jax.lax.cond(
            jnp.logical_and(learning, (i + 1) % target_period == 0),
            lambda: update_target(train_state.params, state.target_params, tau=cfg.tau),
            lambda: state.target_params)
        out = {**common.trajectory_metrics(traj), **metrics, "epsilon": eps,
               "env_steps": jnp.asarray(steps_after, jnp.float32)}
        return state._replace(train_state=train_state, target_params=target), out

    return iterations_loop(init, iteration, _summarise, iterations_per_update=iters_per_log,
                           num_updates=cfg.num_updates, steps_per_update=cfg.log_every,
                           unroll=cfg.unroll)
