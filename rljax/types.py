"""Shared data structures of rljax. NamedTuples only: no logic lives here.

Layouts are time-major: `[T, B, ...]` for a rollout of `T` steps over `B` envs.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax

Array = jax.Array
PRNGKey = jax.Array
Params = Any   # a pytree of network parameters
Carry = Any    # a recurrent carry pytree; `()` for feedforward agents


class PolicyOutput(NamedTuple):
    """What an actor-critic agent emits at each step, `[B]` (or `[T, B]`)."""

    action: Array    # [B] (int32 for discrete actions), the action taken
    log_prob: Array  # [B] log pi(action | obs), of the policy that acted (behaviour)
    value: Array     # [B] V(obs)
    dist: Any        # the policy's distribution value, batch shape [B] (rljax.distributions)


class QOutput(NamedTuple):
    """What a Q agent emits at each step."""

    action: Array  # [B] int32, epsilon-greedy (or greedy) action
    q: Array       # [B, A] Q(obs, .)


class RolloutState(NamedTuple):
    """Everything a rollout needs to continue where the last one stopped."""

    env_state: Any  # batched env state, [B, ...]
    obs: Array      # [B, ...] the observation the agent acts on next
    first: Array    # [B] bool, True where `obs` starts an episode
    carry: Carry    # the agent's carry before it reads `obs`


class Trajectory(NamedTuple):
    """A time-major rollout fragment (rlplay's fragment, made a pytree).

    Per step `t` in `[0, T)`: the agent read `obs[t]` (with `first[t]` telling it
    whether that starts an episode, and `carry[t]` its carry before the read),
    took `action[t]`, received `reward[t]`; the env then reported `terminated[t]`
    / `truncated[t]`. At a done step the env auto-reset, so the next `obs` starts a
    new episode and `final_obs[t]` is the last observation of the finished one
    (equal to the next `obs` otherwise). `final_value[t]` is V(final_obs[t]) where
    `truncated[t]` (0 elsewhere, and 0 for agents without a value function).

    The `last_*` fields hold the state after step `T - 1`, to bootstrap from.
    """

    obs: Array             # [T, B, ...]
    first: Array           # [T, B] bool
    carry: Carry           # [T, B, ...] carry before reading obs[t]
    action: Array          # [T, B]
    reward: Array          # [T, B] float32
    terminated: Array      # [T, B] bool
    truncated: Array       # [T, B] bool
    final_obs: Array       # [T, B, ...]
    final_value: Array     # [T, B] float32
    outputs: Any           # agent outputs (PolicyOutput / QOutput), [T, B, ...]
    episode_return: Array  # [T, B] return of the episode that ended at t (where done)
    episode_length: Array  # [T, B] int32, its length (where done)
    last_obs: Array        # [B, ...]
    last_first: Array      # [B] bool
    last_carry: Carry      # [B, ...]

    @property
    def carry0(self) -> Carry:
        """The recurrent carry before step 0, `[B, ...]`."""
        return jax.tree.map(lambda x: x[0], self.carry)

    @property
    def done(self) -> Array:
        """`terminated | truncated`, `[T, B]`: where an episode ended."""
        return self.terminated | self.truncated


class Agent(NamedTuple):
    """One interface for feedforward and recurrent agents.

    init(key, obs) -> params                      obs: one unbatched observation
    initial_carry(batch_size) -> carry            `()` when feedforward
    step(params, carry, obs, first, key, **kw) -> (carry, outputs)
        one step for a batch: obs [B, ...], first [B] bool; the carry is reset
        where `first` before the network reads `obs`.
    unroll(params, carry0, obs, first) -> (carry, net_outputs)
        the same network over a sequence, obs [T, B, ...], first [T, B];
        the function the losses use to recompute the rollout's outputs.
    value(params, carry, obs) -> [B] or None
        V(obs) for a carry that already read the episode so far (no reset);
        used for the value of `final_obs` at truncations.
    """

    init: Callable
    initial_carry: Callable
    step: Callable
    unroll: Callable
    value: Callable | None = None


class Result(NamedTuple):
    """What `algos.X.train(config, rng)` returns.

    `metrics` maps names to per-update arrays `[num_updates]` (with leading axes
    added by `vmap` over seeds / sweep members). Always present:
      "env_steps"       env steps taken so far (all envs), float32: approximate past 2^24
                        steps; the exact count after update `u` (0-based) is
                        `(u + 1) * loop.steps_per_update` (the command computes it so);
      "episode_return"  mean return of the episodes that ended during the update
                        (NaN where none ended);
      "episode_length"  their mean length (NaN where none ended);
      "episodes"        how many ended (0: `episode_return` is NaN for that reason);
      "nonfinite"       int32, 0 unless something went NaN/inf in that update
                        (`rljax.algos.base.nonfinite_code`: 1 params, 2 reward, 4 a metric).
    plus the algorithm's losses and diagnostics.

    `diverged_at`: the first update whose `nonfinite` is not 0, -1 if none (int32, per
    seed under `vmap`); None in a Result built without it.
    """

    train_state: Any
    metrics: dict
    diverged_at: Any = None
