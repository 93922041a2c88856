"""Rollouts: `lax.scan` of agent + batched env over T steps, and evaluation.

    state = init_rollout(env, env_params, agent, key, num_envs)
    state, traj = rollout(agent, params, env, env_params, state, key, num_steps)
    state, traj = rollout(agent, params, env, env_params, state, key2, num_steps)  # continues

A rollout starts from the env state, observation, `first` flag and carry the last
one left, so no transition is lost or repeated at fragment boundaries.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rljax.types import Agent, RolloutState, Trajectory


def init_rollout(env, env_params, agent: Agent, key, num_envs: int) -> RolloutState:
    """Reset `num_envs` envs; every env starts an episode (`first` all True)."""
    keys = jax.random.split(key, num_envs)
    obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(keys, env_params)
    return RolloutState(env_state, obs, jnp.ones((num_envs,), bool), agent.initial_carry(num_envs))


def _split_step_key(key, num_envs: int):
    """A step's key -> (key for the agent, `[B]` keys for the envs)."""
    k_act, k_env = jax.random.split(key)
    return k_act, jax.random.split(k_env, num_envs)


def _act_and_step(agent, params, env, env_params, state: RolloutState, keys, step_kwargs):
    """One agent step and one env step for the whole batch; `keys` from `_split_step_key`."""
    k_act, env_keys = keys
    carry, out = agent.step(params, state.carry, state.obs, state.first, k_act, **step_kwargs)
    obs, env_state, reward, terminated, truncated, info = jax.vmap(
        env.step, in_axes=(0, 0, 0, None))(env_keys, state.env_state, out.action, env_params)
    done = jnp.logical_or(terminated, truncated)
    next_state = RolloutState(env_state, obs, done, carry)
    return next_state, out, reward.astype(jnp.float32), terminated, truncated, info


def _flat_apply(fn, params, carry, obs):
    """Apply a batch function to `[T, B, ...]` inputs by merging T and B."""
    t, b = obs.shape[:2]
    merge = lambda x: x.reshape((t * b, *x.shape[2:]))
    out = fn(params, jax.tree.map(merge, carry), merge(obs))
    return out.reshape((t, b))


def _step_keys(key, num_steps: int):
    """The `[T]` per-step keys: `split(key, T)` for one key, `key` itself for a batch."""
    is_typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    if key.ndim == (0 if is_typed else 1):
        return jax.random.split(key, num_steps)
    if key.shape[0] != num_steps:
        raise ValueError(f"rollout got {key.shape[0]} per-step keys for num_steps={num_steps}")
    return key


def rollout(agent: Agent, params, env, env_params, state: RolloutState, key, num_steps: int,
            *, unroll: int = 1, **step_kwargs) -> tuple[RolloutState, Trajectory]:
    """Run `num_steps` steps of `agent` in the batched env.

    Args:
      agent: the acting agent; `step_kwargs` go to `agent.step` (`greedy=True`,
        `epsilon=...`).
      state: where the previous rollout stopped (or `init_rollout`).
      key: one PRNG key, split into `num_steps` per-step keys; or those `[T]`
        per-step keys themselves (so a rollout of 2T steps can be replayed as two
        of T: `rollout(..., keys[:T], T)` then `rollout(..., keys[T:], T)`).
      num_steps: T, static.
      unroll: `lax.scan` unroll factor (fewer loop iterations on CPU).

    Returns:
      The state to continue from, and the `Trajectory` `[T, B, ...]`. Where the agent
      has a value function, `final_value[t]` = V(final_obs[t]) at truncated steps,
      computed from the carry that read the episode up to `t`.
    """

    def body(state, keys):
        next_state, out, reward, terminated, truncated, info = _act_and_step(
            agent, params, env, env_params, state, keys, step_kwargs)
        zeros = jnp.zeros_like(reward)
        record = dict(
            obs=state.obs, first=state.first, carry=state.carry, action=out.action,
            reward=reward, terminated=terminated, truncated=truncated,
            final_obs=info["final_observation"], outputs=out,
            episode_return=info.get("episode_return", zeros).astype(jnp.float32),
            episode_length=info.get("episode_length", zeros.astype(jnp.int32)),
            next_carry=next_state.carry,
        )
        return next_state, record

    # All of the rollout's keys in one batched op before the loop, not two splits per step.
    keys = jax.vmap(_split_step_key, in_axes=(0, None))(_step_keys(key, num_steps), state.first.shape[0])
    last, steps = jax.lax.scan(body, state, keys, unroll=unroll)
    next_carry = steps.pop("next_carry")
    if agent.value is None:
        final_value = jnp.zeros_like(steps["reward"])
    else:
        final_value = jnp.where(
            steps["truncated"],
            _flat_apply(agent.value, params, next_carry, steps["final_obs"]), 0.0)
    traj = Trajectory(**steps, final_value=final_value, last_obs=last.obs,
                      last_first=last.first, last_carry=last.carry)
    return last, traj


def bootstrap_value(agent: Agent, params, traj: Trajectory) -> jax.Array:
    """V(last_obs) `[B]`: the value after the fragment's last step, from `last_carry`
    with the masked reset where `last_first`."""
    _, (_, value) = agent.unroll(params, traj.last_carry, traj.last_obs[None],
                                 traj.last_first[None])
    return value[0]


def successor_values(traj: Trajectory, last_value, value=None) -> jax.Array:
    """`v_t [T, B]`: the value of the state after each step, for `rljax.returns`.

    The one place the truncation bootstrap is decided: `value[t + 1]` inside the
    fragment, `last_value` (`bootstrap_value`) after its last step, and
    V(final_obs[t]) (`traj.final_value`, computed at collection from the carry that
    read the episode) where the episode was truncated at `t`. At terminations the
    value is irrelevant: the discount is 0 there. `value [T, B]` are the values of
    `traj.obs`; by default the acting ones, `traj.outputs.value`. Replay Q-learning
    has the same rule for Q (`rljax.algos.qlearning.sequence_q_values`).
    """
    value = traj.outputs.value if value is None else value
    next_value = jnp.concatenate([value[1:], last_value[None]], axis=0)
    return jnp.where(traj.truncated, traj.final_value, next_value)


def evaluate(agent: Agent, params, env, env_params, key, num_episodes: int,
             *, max_steps: int = 100_000, **step_kwargs):
    """Play `num_episodes` complete episodes in parallel, one per env.

    Pass `greedy=True` for the deterministic policy (the default of callers that
    report scores), or leave it out to sample. jit- and vmap-able.

    Returns:
      `(returns [N] float32, lengths [N] int32)` of each env's first episode
      (an episode still running after `max_steps` is cut there).
    """
    k_reset, k_run = jax.random.split(key)
    state = init_rollout(env, env_params, agent, k_reset, num_episodes)
    zeros = jnp.zeros((num_episodes,), jnp.float32)
    init = (state, k_run, jnp.zeros((num_episodes,), bool), zeros,
            jnp.zeros((num_episodes,), jnp.int32), jnp.zeros((), jnp.int32))

    def cond(c):
        _, _, finished, _, _, t = c
        return jnp.logical_and(~jnp.all(finished), t < max_steps)

    def body(c):
        state, key, finished, returns, lengths, t = c
        key, k_step = jax.random.split(key)
        state, _, reward, terminated, truncated, _ = _act_and_step(
            agent, params, env, env_params, state, _split_step_key(k_step, num_episodes),
            step_kwargs)
        active = ~finished
        returns = returns + jnp.where(active, reward, 0.0)
        lengths = lengths + active.astype(jnp.int32)
        finished = finished | terminated | truncated
        return state, key, finished, returns, lengths, t + 1

    _, _, _, returns, lengths, _ = jax.lax.while_loop(cond, body, init)
    return returns, lengths
