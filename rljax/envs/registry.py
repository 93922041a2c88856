"""`make(env_id, **options)`: gymnax envs plus named POMDP variants and wrappers."""
from __future__ import annotations

import dataclasses
import difflib
import importlib
from typing import NamedTuple, Sequence

import gymnax
import numpy as np

from rljax.envs import popgym, wrappers
from rljax.envs.suites import replace_fields

# Named partially observable variants: (base id, observation indices kept, what it hides).
POMDP_VARIANTS: dict[str, tuple[str, tuple[int, ...], str]] = {
    "CartPole-P-v1": ("CartPole-v1", (0, 2), "cart position and pole angle; velocities hidden"),
    "CartPole-V-v1": ("CartPole-v1", (1, 3), "velocities only; positions hidden"),
    "Pendulum-P-v1": ("Pendulum-v1", (0, 1), "cos/sin of the angle; angular velocity hidden"),
    "Acrobot-P-v1": ("Acrobot-v1", (0, 1, 2, 3), "cos/sin of both angles; velocities hidden"),
    "MountainCar-P-v0": ("MountainCar-v0", (0,), "position; velocity hidden"),
    "MountainCarContinuous-P-v0": ("MountainCarContinuous-v0", (0,), "position; velocity hidden"),
}
# Optional env suites, one module each (`rljax.envs.suites` says what a module defines):
# `brax/NAME`, `xminigrid/<id>`, `craftax/<name>`, each behind an extra of that name.
SUITES = ("rljax.envs.brax_envs", "rljax.envs.xminigrid_envs", "rljax.envs.craftax_envs")

# bsuite MemoryChain at set memory lengths (gymnax reads `memory_length` from EnvParams).
MEMORY_CHAIN_VARIANTS: dict[str, int] = {
    f"MemoryChain-bsuite-L{n}": n for n in (5, 10, 30, 50, 100, 200)}


def _suites():
    """The optional suites' modules (cheap: a suite's package is imported only when
    one of its envs is made or listed)."""
    return [importlib.import_module(name) for name in SUITES]


def list_envs() -> list[str]:
    """Every env id `make` accepts: gymnax's registry, rljax's POMDP variants, the POPGym
    tasks (`popgym/<Task>-<Easy|Medium|Hard>`), `MemoryChain-bsuite-L<n>`, and the ids
    of the optional suites whose extra is installed: `brax/NAME` (`rljax[brax]`),
    `xminigrid/<id>` (`rljax[xminigrid]`), `craftax/<name>` (`rljax[craftax]`)."""
    suite_ids = [env_id for suite in _suites() for env_id in suite.env_ids()]
    return sorted([*gymnax.registered_envs, *POMDP_VARIANTS, *popgym.POPGYM_ENVS,
                   *MEMORY_CHAIN_VARIANTS, *suite_ids])


def _unknown(env_id: str) -> ValueError:
    close = difflib.get_close_matches(str(env_id), list_envs(), n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return ValueError(
        f"Unknown env id {env_id!r}.{hint} rljax.envs.list_envs() lists all {len(list_envs())}.")


def make(
    env_id: str,
    *,
    max_episode_steps: int | None = None,
    obs_indices: Sequence[int] | None = None,
    history: int = 1,
    prev_action: bool = False,
    prev_reward: bool = False,
    episode_stats: bool = True,
    params: dict | None = None,
    **env_kwargs,
):
    """Build an env and its params, wrapped as asked. Returns `(env, env_params)`.

    Args:
      env_id: a gymnax id (`"CartPole-v1"`), a POMDP variant (`"CartPole-P-v1"`), a POPGym
        task (`"popgym/RepeatFirst-Easy"`), a MemoryChain length (`"MemoryChain-bsuite-L30"`)
        or an env of an optional suite: Brax (`"brax/inverted_pendulum"`, needs
        `pip install rljax[brax]`), xminigrid (`"xminigrid/MiniGrid-MemoryS8"`,
        `rljax[xminigrid]`) or Craftax (`"craftax/Craftax-Classic-Symbolic-v1"`,
        `rljax[craftax]`); without its extra, such an id raises a one-line `ValueError`
        saying what to install.
      max_episode_steps: time limit; the cut is reported as `truncated`, never as
        `terminated` (sets the env params' `max_steps_in_episode`).
      obs_indices: keep only these observation features (a custom POMDP).
      history: observation history depth k (1 = the plain observation).
      prev_action / prev_reward: append the one-hot previous action and the previous
        reward to the observation, zero at an episode start.
      episode_stats: report each finished episode's return and length in `info`.
      params: overrides of the env params' fields (`{"memory_length": 20}` for
        MemoryChain-bsuite; xminigrid's and Craftax's own params for their envs); an
        unknown field is named in a `ValueError`.
      **env_kwargs: passed to the env constructor (`size=12` for DeepSea-bsuite; Brax:
        `brax.envs.get_environment`).

    Box action spaces get `ClipAction` (outermost but for the episode statistics): the
    agent's action (an unbounded Gaussian sample, say) is clipped into the bounds, so
    every wrapper and the env see an in-bound action.
    """
    for suite in _suites():
        if env_id.startswith(suite.PREFIX):
            if suite.available() and env_id not in suite.env_ids():
                raise _unknown(env_id)
            env, env_params = suite.make(env_id[len(suite.PREFIX):], params, **env_kwargs)
            return _wrap(env, env_params, env_id, max_episode_steps, obs_indices, history,
                         prev_action, prev_reward, episode_stats)
    if env_id in POMDP_VARIANTS:
        base_id, indices, _ = POMDP_VARIANTS[env_id]
        if obs_indices is not None:
            raise ValueError(f"{env_id} already masks observations; drop obs_indices")
        obs_indices = indices
    elif env_id in gymnax.registered_envs or env_id in popgym.POPGYM_ENVS:
        base_id = env_id
    elif env_id in MEMORY_CHAIN_VARIANTS:
        base_id = "MemoryChain-bsuite"
    else:
        raise _unknown(env_id)

    try:
        if base_id in popgym.POPGYM_ENVS:
            env, env_params = popgym.make_popgym(base_id, **env_kwargs)
        else:
            env, env_params = gymnax.make(base_id, **env_kwargs)
    except TypeError as e:
        raise ValueError(f"{env_id} does not take constructor arguments {sorted(env_kwargs)}: "
                         f"{e}") from None
    except OSError as e:   # MNISTBandit-bsuite downloads MNIST when it is built
        raise ValueError(f"{env_id} could not be built (it needs a download): "
                         f"{str(e).splitlines()[0]}") from None
    if env_id in MEMORY_CHAIN_VARIANTS:
        env_params = dataclasses.replace(env_params, memory_length=MEMORY_CHAIN_VARIANTS[env_id])
    env_params = replace_fields(env_id, env_params, params)
    return _wrap(env, env_params, env_id, max_episode_steps, obs_indices, history,
                 prev_action, prev_reward, episode_stats)


def _wrap(env, env_params, env_id, max_episode_steps, obs_indices, history, prev_action,
          prev_reward, episode_stats):
    if max_episode_steps is not None:
        if not hasattr(env_params, "max_steps_in_episode"):
            raise ValueError(f"{env_id} has no time limit to set")
        if int(max_episode_steps) < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
        env_params = dataclasses.replace(env_params, max_steps_in_episode=int(max_episode_steps))

    env = wrappers.FloatObservation(env)
    if obs_indices is not None:
        size = env.observation_space(env_params).shape[-1]
        bad = [i for i in obs_indices if not -size <= i < size]
        if bad:
            raise ValueError(f"obs_indices {bad} out of range for {env_id} observations of size {size}")
        env = wrappers.ObservationMask(env, obs_indices)
    if history > 1:
        env = wrappers.ObservationHistory(env, history)
    elif history < 1:
        raise ValueError(f"history depth must be >= 1, got {history}")
    if prev_action or prev_reward:
        env = wrappers.PreviousActionReward(env, action=prev_action, reward=prev_reward,
                                            action_dim=_box_dim(env, env_params))
    if _box_dim(env, env_params) is not None:
        env = wrappers.ClipAction(env)
    if episode_stats:
        env = wrappers.EpisodeStats(env)
    return env, env_params


def _box_dim(env, env_params) -> int | None:
    """The size of a flat Box action space, None for a discrete one."""
    space = env.action_space(env_params)
    if hasattr(space, "n"):
        return None
    if len(space.shape) != 1:
        raise ValueError(f"rljax needs flat Box action spaces [D], got shape {space.shape}")
    return int(space.shape[0])


class EnvSpec(NamedTuple):
    """What an agent needs to know of an env: its observation and action spaces."""

    obs_shape: tuple[int, ...]
    num_actions: int | None   # discrete actions; None for a continuous (Box) space
    action_shape: tuple[int, ...] = ()          # (D,) for a Box space, () for discrete
    action_low: tuple[float, ...] | None = None   # Box bounds, one per dimension
    action_high: tuple[float, ...] | None = None

    @property
    def continuous(self) -> bool:
        return self.num_actions is None


def spec(env, env_params) -> EnvSpec:
    """The `EnvSpec` of a made env (discrete or flat Box action space)."""
    space = env.action_space(env_params)
    obs_shape = tuple(env.observation_space(env_params).shape)
    if hasattr(space, "n"):
        return EnvSpec(obs_shape, int(space.n))
    dim = _box_dim(env, env_params)
    bound = lambda v: tuple(float(x) for x in np.broadcast_to(np.asarray(v, np.float32), (dim,)))
    return EnvSpec(obs_shape, None, (dim,), bound(space.low), bound(space.high))
