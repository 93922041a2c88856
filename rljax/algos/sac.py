"""SAC (Haarnoja et al. 2018): twin soft Q critics, Polyak-averaged targets, a
tanh-Gaussian actor and an automatically tuned entropy temperature, on flashbax replay.

    from rljax.algos import sac
    result = jax.jit(sac.train)(sac.Config(env_id="Pendulum-v1"), jax.random.key(0))
    seeds = jax.jit(jax.vmap(sac.train, in_axes=(None, 0)))(sac.Config(), keys)

One update (one metrics row) is `log_every` env steps: `log_every / train_every`
iterations of: act for `train_every` env steps (all envs; uniform random actions in
the action box before `learning_starts`), add them to replay, then, once
`learning_starts` steps are in, `utd_ratio * train_every` gradient steps (the
update-to-data ratio), each on a fresh batch of `batch_size` transitions:

  1. critics: `losses.sac_critic_loss`, the target from the target critics at a'
     ~ π(·|s'), where s' is the transition's successor (`final_obs`: the finished
     episode's last observation at a time-limit cut, so truncation bootstraps and
     only termination stops it);
  2. actor: `losses.sac_actor_loss` against the freshly updated critics;
  3. temperature (when `autotune`): `losses.sac_temperature_loss` towards the
     target entropy -target_entropy_scale·|A|;
  4. target critics: θ̄ ← τ θ + (1 - τ) θ̄.

Defaults are CleanRL's `sac_continuous_action.py` (critic lr 1e-3, actor lr 3e-4,
batch 256, τ 0.005, γ 0.99, 2x256 ReLU MLPs, 5k random steps, one gradient step per
env step) except the actor update every step (not every second step twice) and a
replay of 1e5 rather than 1e6 (long runs: raise `buffer_size`).

The loop state (`SACState`) holds the params (actor, critics, log α), their three Adam
states, the target critics, the replay buffer, the envs and the key, so a resumed run
is the uninterrupted one bit for bit. `train_state.params` is what `rljax eval`
plays (its actor, greedy = the squashed mean).

Recurrent SAC is not here: it needs sequence replay with stored carries and a burn-in
(as `drqn` has: `buffers.make_sequence_buffer(sequence_length=..., store_carry=True)`),
a recurrent critic that reads the same sequences and the successor's value from the
carry after each step (`qlearning.sequence_q_values` does this for Q-values), and the
actor's loss over the unrolled sequences: the pieces exist, the loop does not yet.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from rljax import agents, losses, nets, normalize
from rljax.algos import common
from rljax.algos.base import Loop, iterations_loop, train_loop
from rljax.buffers import ReplayStep, make_sequence_buffer, replay_steps
from rljax.config import (at_least, config_class, each, non_negative, one_of, positive,
                          preset_function, probability, static, traced)
from rljax.envs import EnvSpec
from rljax.learner import TrainState
from rljax.rollout import init_rollout, rollout
from rljax.types import Agent, Result

sg = jax.lax.stop_gradient


@config_class
class Config(common.EnvConfig):
    """SAC config. Defaults: CleanRL's continuous-action SAC (Pendulum-v1 by default)."""

    env_id: str = static("Pendulum-v1", doc="gymnax id, POMDP variant or brax/NAME with a Box "
                         "action space (`rljax list` shows them)")
    num_envs: int = static(1, doc="parallel envs", check=at_least(1))
    total_steps: int = static(50_000, doc="env steps per seed, all envs together",
                              check=at_least(1))
    buffer_size: int = static(100_000, doc="replay capacity in env steps", check=at_least(1))
    batch_size: int = static(256, doc="transitions per gradient step", check=at_least(1))
    learning_starts: int = static(5_000, doc="env steps of uniform random actions before the "
                                  "first gradient step", check=at_least(1))
    train_every: int = static(1, doc="env steps (all envs) between training phases",
                              check=at_least(1))
    utd_ratio: int = static(1, doc="update-to-data ratio: gradient steps per env step",
                            check=at_least(1))
    log_every: int = static(1_000, doc="env steps per update (one row of metrics)",
                            check=at_least(1))
    hidden_sizes: tuple[int, ...] = static((256, 256), doc="MLP sizes of actor and critics",
                                           check=each(positive))
    activation: str = static("relu", doc="tanh | relu | elu | gelu",
                             check=one_of(*nets.mlp.ACTIVATIONS))
    autotune: bool = static(True, doc="learn the temperature α (else keep init_alpha)")
    unroll: int = static(1, doc="lax.scan unroll of the training loop", check=at_least(1))

    lr: float = traced(1e-3, doc="Adam learning rate of the critics and the temperature",
                       check=non_negative)
    policy_lr: float = traced(3e-4, doc="Adam learning rate of the actor", check=non_negative)
    gamma: float = traced(0.99, doc="discount factor", check=non_negative)
    tau: float = traced(0.005, doc="Polyak rate of the target critics (1: hard copy)",
                        check=probability)
    init_alpha: float = traced(1.0, doc="initial entropy temperature α (fixed if not autotune)",
                               check=positive)
    target_entropy_scale: float = traced(1.0, doc="target entropy = -scale * |A| (SAC: 1)",
                                         check=non_negative)

    @property
    def num_updates(self) -> int:
        return self.total_steps // self.log_every

    def validate(self):
        common.check_divides("train_every", self.train_every, "num_envs", self.num_envs)
        common.check_divides("log_every", self.log_every, "train_every", self.train_every)
        common.check_divides("total_steps", self.total_steps, "log_every", self.log_every)
        common.check_divides("buffer_size", self.buffer_size, "num_envs", self.num_envs)
        if self.learning_starts < self.num_envs:
            raise ValueError(f"learning_starts={self.learning_starts} must be >= num_envs="
                             f"{self.num_envs} (one stored step per env before sampling)")
        spec = common.make_env(self)[2]
        if not spec.continuous:
            raise ValueError(f"sac needs a Box action space; {self.env_id} has "
                             f"{spec.num_actions} discrete actions (use dqn or ppo)")


PRESETS: dict = {}
preset = preset_function(Config, PRESETS)


# --------------------------------------------------------------------------- networks
class Actor(nn.Module):
    """`(carry, obs [T, B, F], first) -> ((), TanhGaussian [T, B])`: an MLP and a
    `TanhGaussianHead` into the action box."""

    head: nn.Module
    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"

    @nn.compact
    def __call__(self, carry, obs, first):
        return carry, self.head(nets.MLP(tuple(self.hidden_sizes), self.activation)(obs))

    def initial_carry(self, batch_size: int):
        return ()


class TwinQ(nn.Module):
    """Two independent critics Q_i(s, a) = MLP_i([s, a]); returns `(q1, q2)`, `[...]`."""

    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs, action):
        x = jnp.concatenate([obs, action], axis=-1)
        q = [nets.dense(1, 1.0, f"q{i}_out")(
            nets.MLP(tuple(self.hidden_sizes), self.activation, name=f"q{i}")(x))[..., 0]
            for i in (1, 2)]
        return q[0], q[1]


def actor_network(config: Config, spec: EnvSpec) -> nn.Module:
    """The actor (with observation normalisation when asked: it holds the statistics)."""
    head = nets.TanhGaussianHead(tuple(spec.action_low), tuple(spec.action_high))
    return normalize.observing(Actor(head, tuple(config.hidden_sizes), config.activation), config)


def critic_network(config: Config) -> TwinQ:
    return TwinQ(tuple(config.hidden_sizes), config.activation)


def make_agent(config: Config, spec: EnvSpec) -> Agent:
    """The acting agent on SAC's params `{"actor", "critic", "log_alpha"}`: samples from
    the actor (greedy: the squashed mean); `warmup=True` draws uniform actions instead."""
    inner = agents.policy(actor_network(config, spec))
    low, high = jnp.asarray(spec.action_low), jnp.asarray(spec.action_high)

    def step(params, carry, obs, first, key, *, greedy: bool = False, warmup=False):
        k_policy, k_uniform = jax.random.split(key)
        carry, out = inner.step(params["actor"], carry, obs, first, k_policy, greedy=greedy)
        uniform = jax.random.uniform(k_uniform, out.action.shape, minval=low, maxval=high)
        action = jnp.where(warmup, uniform, out.action)
        return carry, out._replace(action=action, log_prob=out.dist.log_prob(action))

    def unroll(params, carry, obs, first):
        return inner.unroll(params["actor"], carry, obs, first)

    return Agent(inner.init, inner.initial_carry, step, unroll, None)


# --------------------------------------------------------------------------- one gradient step
class SACState(NamedTuple):
    """Everything SAC carries from one update (log row) to the next."""

    train_state: TrainState   # params {"actor", "critic", "log_alpha"}, Adam states, steps
    target_critic: Any        # Polyak-averaged critic params
    buffer: Any               # flashbax trajectory-buffer state
    rollout: Any              # env states, observations, first flags
    key: jax.Array
    update: jax.Array         # updates (log rows) done, int32
    reward_scale: Any = ()    # rljax.normalize.RewardScale when config.normalize_reward


def _optimizers(config: Config):
    adam = lambda lr: optax.adam(lr)
    return {"actor": adam(config.policy_lr), "critic": adam(config.lr), "alpha": adam(config.lr)}


def make_gradient_step(config: Config, spec: EnvSpec):
    """`(train_state, target_critic, batch: ReplayStep [N], key) -> (train_state,
    target_critic, metrics)`: one critic, actor, temperature and target update."""
    actor, critic = actor_network(config, spec), critic_network(config)
    txs = _optimizers(config)
    target_entropy = -config.target_entropy_scale * spec.action_shape[0]

    def policy(actor_params, obs):
        _, dist = actor.apply(actor_params, (), obs[None], jnp.zeros(obs.shape[:1], bool)[None])
        return jax.tree.map(lambda x: x[0], dist)

    def step(ts: TrainState, target_critic, batch: ReplayStep, key):
        params = ts.params
        k_next, k_pi = jax.random.split(key)
        stats = normalize.stats_of(params["actor"])
        norm = (lambda o: o) if stats is None else (
            lambda o: normalize.apply(stats, o, clip=config.clip_obs))
        obs, next_obs = norm(batch.obs), norm(batch.final_obs)
        alpha = jnp.exp(params["log_alpha"])

        # 1. critics
        next_action, next_logp = policy(params["actor"], batch.final_obs).sample_and_log_prob(k_next)
        q1_t, q2_t = critic.apply(target_critic, next_obs, next_action)
        discount = config.gamma * (1.0 - batch.terminated.astype(jnp.float32))

        def critic_loss(cp):
            q1, q2 = critic.apply(cp, obs, batch.action)
            return losses.sac_critic_loss(q1, q2, batch.reward, discount, sg(q1_t), sg(q2_t),
                                          sg(next_logp), alpha=alpha)

        (c_loss, c_metrics), c_grads = jax.value_and_grad(critic_loss, has_aux=True)(params["critic"])
        c_updates, c_opt = txs["critic"].update(c_grads, ts.opt_state["critic"], params["critic"])
        critic_params = optax.apply_updates(params["critic"], c_updates)

        # 2. actor, against the updated critics
        def actor_loss(ap):
            action, logp = policy(ap, batch.obs).sample_and_log_prob(k_pi)
            q1, q2 = critic.apply(sg(critic_params), obs, action)
            loss, metrics = losses.sac_actor_loss(q1, q2, logp, alpha=alpha)
            return loss, (metrics, logp)

        (a_loss, (a_metrics, logp)), a_grads = jax.value_and_grad(actor_loss, has_aux=True)(
            params["actor"])
        a_updates, a_opt = txs["actor"].update(a_grads, ts.opt_state["actor"], params["actor"])
        actor_params = optax.apply_updates(params["actor"], a_updates)
        if stats is not None:     # the statistics move only with the data (observe)
            actor_params = {**actor_params, normalize.COLLECTION: params["actor"][normalize.COLLECTION]}

        # 3. temperature
        log_alpha, alpha_opt = params["log_alpha"], ts.opt_state["alpha"]
        t_loss, t_metrics = losses.sac_temperature_loss(log_alpha, sg(logp),
                                                        target_entropy=target_entropy)
        if config.autotune:
            t_grad = jax.grad(lambda la: losses.sac_temperature_loss(
                la, sg(logp), target_entropy=target_entropy)[0])(log_alpha)
            t_updates, alpha_opt = txs["alpha"].update(t_grad, alpha_opt, log_alpha)
            log_alpha = optax.apply_updates(log_alpha, t_updates)

        # 4. targets
        target_critic = optax.incremental_update(critic_params, target_critic, config.tau)
        ts = TrainState({"actor": actor_params, "critic": critic_params, "log_alpha": log_alpha},
                        {"actor": a_opt, "critic": c_opt, "alpha": alpha_opt}, ts.step + 1)
        metrics = {"critic_loss": c_loss, "actor_loss": a_loss, "alpha_loss": t_loss,
                   "q_mean": 0.5 * (c_metrics["q1_mean"] + c_metrics["q2_mean"]),
                   "entropy": a_metrics["entropy"], "alpha": jnp.exp(log_alpha)}
        return ts, target_critic, metrics

    return step


METRICS = ("critic_loss", "actor_loss", "alpha_loss", "q_mean", "entropy", "alpha")


def _summarise(per_iter: dict) -> dict:
    """Per-iteration metrics `[K]` -> one log row (episode stats weighted by count)."""
    return {**common.episode_row(per_iter), **{k: jnp.nanmean(per_iter[k]) for k in METRICS}}


# --------------------------------------------------------------------------- the loop
def loop(config: Config) -> Loop:
    """SAC as a resumable `Loop`; one update = `log_every` env steps (one metrics row)."""
    cfg = config
    env, env_params, spec = common.make_env(cfg)
    agent = make_agent(cfg, spec)
    critic = critic_network(cfg)
    txs = _optimizers(cfg)
    gradient_step = make_gradient_step(cfg, spec)
    rollout_len = cfg.train_every // cfg.num_envs
    iters_per_log = cfg.log_every // cfg.train_every
    grad_steps = cfg.utd_ratio * cfg.train_every
    buffer = make_sequence_buffer(num_envs=cfg.num_envs, capacity=cfg.buffer_size,
                                  batch_size=cfg.batch_size, sequence_length=1, period=1)

    def init(rng) -> SACState:
        k_actor, k_critic, k_reset, k_loop = jax.random.split(rng, 4)
        obs = jnp.zeros(spec.obs_shape, jnp.float32)
        action = jnp.zeros(spec.action_shape, jnp.float32)
        params = {"actor": agent.init(k_actor, obs),
                  "critic": critic.init(k_critic, obs[None], action[None]),
                  "log_alpha": jnp.log(jnp.asarray(cfg.init_alpha, jnp.float32))}
        opt_state = {name: txs[name].init(params[part])
                     for name, part in (("actor", "actor"), ("critic", "critic"),
                                        ("alpha", "log_alpha"))}
        ro_state = init_rollout(env, env_params, agent, k_reset, cfg.num_envs)
        example = ReplayStep(obs=obs, first=jnp.zeros((), bool), carry=(), action=action,
                             reward=jnp.zeros((), jnp.float32), terminated=jnp.zeros((), bool),
                             truncated=jnp.zeros((), bool), final_obs=obs)
        return SACState(TrainState(params, opt_state, jnp.zeros((), jnp.int32)), params["critic"],
                        buffer.init(example), ro_state, k_loop, jnp.zeros((), jnp.int32),
                        normalize.init_reward_scale(cfg, cfg.num_envs))

    def learn(state: SACState, key):
        def one(carry, k):
            ts, target = carry
            k_sample, k_step = jax.random.split(k)
            batch = jax.tree.map(lambda x: x[0], buffer.sample(state.buffer, k_sample))
            ts, target, metrics = gradient_step(ts, target, batch, k_step)
            return (ts, target), metrics

        (ts, target), metrics = jax.lax.scan(one, (state.train_state, state.target_critic),
                                             jax.random.split(key, grad_steps))
        return ts, target, jax.tree.map(jnp.mean, metrics)

    def skip(state: SACState, key):
        nan = jnp.full((), jnp.nan, jnp.float32)
        return state.train_state, state.target_critic, {k: nan for k in METRICS}

    def iteration(state: SACState, i):
        key, k_act, k_learn = jax.random.split(state.key, 3)
        steps_before = i * cfg.train_every
        ro_state, traj = rollout(agent, state.train_state.params, env, env_params, state.rollout,
                                 k_act, rollout_len, warmup=steps_before < cfg.learning_starts)
        reward_scale, traj = normalize.scale_rewards(cfg, state.reward_scale, traj)
        buf = buffer.add(state.buffer, replay_steps(traj, store_carry=False))
        state = state._replace(buffer=buf, rollout=ro_state, key=key, reward_scale=reward_scale)
        steps_after = steps_before + cfg.train_every
        train_state, target, metrics = jax.lax.cond(steps_after >= cfg.learning_starts, learn,
                                                    skip, state, k_learn)
        params = train_state.params
        params = {**params, "actor": normalize.observe(params["actor"], traj.obs)}
        out = {**common.trajectory_metrics(traj), **metrics,
               "env_steps": jnp.asarray(steps_after, jnp.float32)}
        return state._replace(train_state=train_state._replace(params=params),
                              target_critic=target), out

    return iterations_loop(init, iteration, _summarise, iterations_per_update=iters_per_log,
                           num_updates=cfg.num_updates, steps_per_update=cfg.log_every,
                           unroll=cfg.unroll)


def train(config: Config, rng, *, callback=None, callback_every: int = 1) -> Result:
    """Train SAC; pure, jit/vmap-able over `rng` and traced config fields.

    Returns:
      `Result(TrainState, metrics)`, metrics `[total_steps // log_every]`: env_steps,
      episode_return, episode_length, episodes, critic_loss, actor_loss, alpha_loss,
      q_mean, entropy (-mean log π of fresh actions), alpha.
    """
    return train_loop(loop(config), rng, callback=callback, callback_every=callback_every)
