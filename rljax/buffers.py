"""Replay buffers as pure `init / add / sample` functions, on flashbax.

One buffer shape serves DQN and DRQN: each env's steps are kept in time order
(flashbax's trajectory buffer, `[num_envs, capacity // num_envs, ...]`), and a sample
is `batch_size` windows of `sequence_length` consecutive steps of one env:

  * DQN: `sequence_length = n_step` (1 = plain transitions). A window carries
    `final_obs`, the true successor of each step (the finished episode's last
    observation where the env auto-reset), so 1-step transitions need nothing else.
  * DRQN: `sequence_length = burn_in + unroll`, windows starting every `period`
    steps (overlap = `sequence_length - period`); `carry[0]` of a window is the
    recurrent carry the actor had before it read `obs[0]` (R2D2's stored state).

Adds and samples are time-major like `rljax.types.Trajectory`: `add` takes
`[T, num_envs, ...]` and `sample` returns `[sequence_length, batch_size, ...]`.

Flashbax's trajectory buffer samples only windows that lie inside what has been
written, oldest first after wrap-around, so a window never crosses the write head
(never mixes steps from different laps of the ring) and never reads unwritten slots
(`tests/test_buffers.py` checks both). Window starts are `head + k * period`, where
`head` is the oldest slot: the period grid moves with the ring once it is full.
The state is a pytree of arrays (no Python side effects), so `init / add / sample`
jit and vmap over seeds.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import chex
import flashbax as fbx
import jax
import jax.numpy as jnp

from rljax.types import Trajectory

Array = jax.Array


class ReplayStep(NamedTuple):
    """One stored env step (any leading shape: `[T, B]` added, `[L, N]` sampled)."""

    obs: Array         # [..., *obs_shape] the observation acted on
    first: Array       # [...] bool, obs starts an episode
    carry: Any         # [..., *carry] actor's carry before reading obs; () if feedforward
    action: Array      # [...] int32, or [..., D] float32 for a Box action space
    reward: Array      # [...] float32
    terminated: Array  # [...] bool
    truncated: Array   # [...] bool
    final_obs: Array   # [..., *obs_shape] successor of obs (last obs of the episode at a done)


class ReplayBuffer(NamedTuple):
    """Pure replay functions (a `GradientTransformation`-like pair of pure functions).

    init(example: ReplayStep unbatched) -> state
    add(state, steps: ReplayStep [T, num_envs, ...]) -> state
    sample(state, key) -> ReplayStep [sequence_length, batch_size, ...]
    can_sample(state) -> bool scalar
    """

    init: Callable
    add: Callable
    sample: Callable
    can_sample: Callable


def replay_steps(traj: Trajectory, *, store_carry: bool) -> ReplayStep:
    """The fields of a rollout fragment that replay keeps, `[T, B, ...]`.

    Args:
      traj: a rollout fragment.
      store_carry: keep the per-step recurrent carry (DRQN); `()` otherwise.
    """
    return ReplayStep(
        obs=traj.obs, first=traj.first, carry=traj.carry if store_carry else (),
        action=traj.action.astype(jnp.float32 if jnp.issubdtype(traj.action.dtype, jnp.floating)
                                  else jnp.int32), reward=traj.reward.astype(jnp.float32),
        terminated=traj.terminated, truncated=traj.truncated, final_obs=traj.final_obs)


def _swap_time_batch(tree):
    return jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), tree)


def _check_sizes(num_envs: int, capacity: int, sequence_length: int, period: int) -> int:
    """Check a sequence buffer's sizes (one line naming the bad one); steps per env."""
    if capacity % num_envs:
        raise ValueError(f"capacity={capacity} must be a multiple of num_envs={num_envs}")
    per_env = capacity // num_envs
    if not 1 <= sequence_length <= per_env:
        raise ValueError(f"sequence_length={sequence_length} must be in [1, capacity // num_envs"
                         f" = {per_env}]")
    if not 1 <= period <= sequence_length:
        raise ValueError(f"period={period} must be in [1, sequence_length={sequence_length}]")
    return per_env


def make_sequence_buffer(*, num_envs: int, capacity: int, batch_size: int,
                         sequence_length: int = 1, period: int = 1,
                         min_steps: int | None = None) -> ReplayBuffer:
    """A uniform replay of fixed-length windows of consecutive steps of one env.

    Args:
      num_envs: B, envs added per `add` (each env keeps its own time-ordered row).
      capacity: total steps kept (all envs), a multiple of `num_envs`.
      batch_size: windows per sample.
      sequence_length: L, steps per window.
      period: distance between the starts of windows that may be sampled
        (1: any start; L: disjoint windows; L - overlap in R2D2 terms).
      min_steps: total steps (all envs) before `can_sample` is True; default one
        window per env.

    Returns:
      A `ReplayBuffer` of pure functions; all sizes are static.
    """
    per_env = _check_sizes(num_envs, capacity, sequence_length, period)
    min_per_env = sequence_length if min_steps is None else max(-(-min_steps // num_envs),
                                                                 sequence_length)
    inner = fbx.make_trajectory_buffer(
        add_batch_size=num_envs, sample_batch_size=batch_size,
        sample_sequence_length=sequence_length, period=period,
        min_length_time_axis=min_per_env, max_length_time_axis=per_env)

    def init(example: ReplayStep):
        return inner.init(example)

    def add(state, steps: ReplayStep):
        chex.assert_tree_shape_prefix(steps, (steps.reward.shape[0], num_envs))
        return inner.add(state, _swap_time_batch(steps))

    def sample(state, key) -> ReplayStep:
        return _swap_time_batch(inner.sample(state, key).experience)

    return ReplayBuffer(init, add, sample, inner.can_sample)


def example_step(steps: ReplayStep) -> ReplayStep:
    """An unbatched example (for `init`) from steps with leading `[T, B]` axes."""
    return jax.tree.map(lambda x: x[0, 0], steps)


# --------------------------------------------------------------------------- prioritised (issue 15)
class PrioritisedSample(NamedTuple):
    """A prioritised sample: the windows, where they live, and how likely they were."""

    steps: ReplayStep          # [sequence_length, batch_size, ...]
    indices: Array             # [batch_size] int32 item indices (for `set_priorities`)
    probabilities: Array       # [batch_size] P(i) = p_i^α / Σ_k p_k^α


class PrioritisedReplayBuffer(NamedTuple):
    """`ReplayBuffer` plus priorities (pure functions; the state is one pytree).

    init(example) -> state; add(state, steps [T, num_envs, ...]) -> state
    sample(state, key) -> PrioritisedSample
    set_priorities(state, indices [N], priorities [N], alpha) -> state   (alpha may be traced)
    can_sample(state) -> bool scalar
    """

    init: Callable
    add: Callable
    sample: Callable
    can_sample: Callable
    set_priorities: Callable


def make_prioritised_sequence_buffer(*, num_envs: int, capacity: int, batch_size: int,
                                     sequence_length: int = 1, period: int = 1,
                                     min_steps: int | None = None) -> PrioritisedReplayBuffer:
    """Prioritised replay of the same windows as `make_sequence_buffer` (Schaul et al.
    2016; R2D2's sequence replay), on flashbax's prioritised trajectory buffer.

    Windows start every `period` steps of one env's row; window i is sampled with
    probability P(i) = p_i^α / Σ_k p_k^α (a sum tree, stratified over the batch). A
    window becomes sampleable with the largest priority seen so far and gets 0 when
    the ring overwrites it. `set_priorities(state, indices, p, alpha)` stores p^α; the
    exponent is an argument (not fixed when the buffer is built) so α may be a traced,
    sweepable config value. Sizes as in `make_sequence_buffer`; additionally
    `capacity // num_envs` must be a multiple of `period`.

    References:
      Schaul et al., Prioritized Experience Replay, ICLR 2016; Kapturowski et al.,
      Recurrent Experience Replay in Distributed RL (R2D2), ICLR 2019.
    """
    from flashbax.buffers import prioritised_trajectory_buffer as pt

    per_env = _check_sizes(num_envs, capacity, sequence_length, period)
    if per_env % period:
        raise ValueError(f"capacity // num_envs = {per_env} must be a multiple of period={period} "
                         f"(prioritised replay)")
    min_per_env = sequence_length if min_steps is None else max(-(-min_steps // num_envs),
                                                                 sequence_length)
    inner = fbx.make_prioritised_trajectory_buffer(
        add_batch_size=num_envs, sample_batch_size=batch_size,
        sample_sequence_length=sequence_length, period=period,
        min_length_time_axis=min_per_env, max_length_time_axis=per_env, device="cpu")

    def add(state, steps: ReplayStep):
        chex.assert_tree_shape_prefix(steps, (steps.reward.shape[0], num_envs))
        return inner.add(state, _swap_time_batch(steps))

    def sample(state, key) -> PrioritisedSample:
        s = inner.sample(state, key)
        return PrioritisedSample(_swap_time_batch(s.experience), s.indices, s.probabilities)

    def set_priorities(state, indices, priorities, alpha):
        return pt.set_priorities(state, indices, priorities, alpha, "cpu")

    return PrioritisedReplayBuffer(inner.init, add, sample, inner.can_sample, set_priorities)


def importance_weights(probabilities, *, beta):
    """PER's importance-sampling weights normalised by the batch maximum:
    wᵢ = (P_min / Pᵢ)^β = (N Pᵢ)^-β / maxⱼ (N Pⱼ)^-β, in (0, 1]; β = 1 corrects fully.

    Args:
      probabilities: P(i) of the sampled items, [N].
      beta: the IS exponent β (annealed towards 1 over training).
    """
    chex.assert_rank(probabilities, 1)
    p = jnp.maximum(probabilities, jnp.finfo(probabilities.dtype).tiny)
    return (jnp.min(p) / p) ** beta
