"""Pieces every algorithm shares: env config fields, the env, episode metrics."""
from __future__ import annotations

import jax.numpy as jnp

from rljax import envs, parallel
from rljax.config import at_least, config_class, each, one_of, positive, static, traced
from rljax.types import Trajectory


def _is_assignment(item: str):
    """A check: `'name=value'` (None when it is one, else what it must be)."""
    name = item.split("=", 1)[0].strip() if "=" in item else ""
    return None if name.isidentifier() else "'name=value' strings"


@config_class
class EnvConfig:
    """Env fields shared by every algorithm's Config, normalisation included."""

    env_id: str = static("CartPole-v1", doc="gymnax id or POMDP variant (`rljax list` shows them)")
    max_episode_steps: int | None = static(None, doc="time limit (reported as truncation); "
                                           "None: the env's own", check=at_least(1))
    history: int = static(1, doc="observation history depth k (1: the plain observation)",
                          check=at_least(1))
    prev_action: bool = static(False, doc="append the previous action (one-hot, or the "
                                                      "clipped Box action)")
    prev_reward: bool = static(False, doc="append the previous reward")
    # --- env arguments (issue 15) -----------------------------------------------------
    env_kwargs: tuple[str, ...] = static((), doc="env constructor arguments as 'name=value' "
                                         "(YAML values), e.g. ('size=12',) for DeepSea-bsuite",
                                         check=each(_is_assignment))
    env_params: tuple[str, ...] = static((), doc="env params overrides as 'name=value', e.g. "
                                         "('memory_length=20',) for MemoryChain-bsuite",
                                         check=each(_is_assignment))
    obs_indices: tuple[int, ...] | None = static(None, doc="keep only these observation "
                                                 "features (a custom POMDP mask); None: all")
    # --- observation torso (issue 15): decided by the observations, so it lives here ---
    torso: str | None = static(None, doc="'mlp' (flattened observations), 'cnn' (needs [H, W, C] "
                               "observations) or None: cnn for rank-3 observations, else mlp",
                               check=one_of("mlp", "cnn"))
    cnn_channels: tuple[int, ...] = static((16,), doc="channels of the cnn torso's 3x3 "
                                           "stride-1 conv layers (MinAtar: one of 16)",
                                           check=each(at_least(1)))
    normalize_obs: bool = static(False, doc="normalise observations by a running mean/variance "
                                 "(rljax.normalize; saved with the params, frozen in eval)")
    clip_obs: float = traced(10.0, doc="clip normalised observations to ±clip_obs",
                             check=positive)
    normalize_reward: bool = static(False, doc="divide rewards by the running std of the "
                                    "discounted return (rljax.normalize)")
    clip_reward: float = traced(10.0, doc="clip scaled rewards to ±clip_reward", check=positive)

    def validate(self):
        _, _, spec = make_env(self)   # an unknown env id or an option it cannot take, named here
        torso_kwargs(self, spec)      # a cnn torso on observations that are not images


# Env arguments are static `'name=value'` strings, not a dict: static fields key the jit
# cache, so they must be hashable; strings round-trip through config.json and `--set
# env_kwargs=[size=12]` with the command's tuple coercion. `assignments` parses them.
def assignments(items: tuple[str, ...]) -> dict:
    """`('size=12', 'deterministic=false')` -> `{'size': 12, 'deterministic': False}`."""
    import yaml

    out = {}
    for item in items:
        name, text = item.split("=", 1)
        out[name.strip()] = yaml.safe_load(text) if text.strip() else ""
    return out


def make_env(config: EnvConfig):
    """`(env, env_params, spec)` for a config's env fields (`spec`: `rljax.envs.EnvSpec`)."""
    env, env_params = envs.make(
        config.env_id, max_episode_steps=config.max_episode_steps, history=config.history,
        prev_action=config.prev_action, prev_reward=config.prev_reward,
        obs_indices=config.obs_indices, params=assignments(config.env_params),
        **assignments(config.env_kwargs))
    return env, env_params, envs.spec(env, env_params)


def torso_kwargs(config, spec) -> dict:
    """The `nets.Trunk` fields an env's observations decide: how many trailing axes
    form one observation (`[H, W, C]` images are flattened for the MLP torso), and the
    torso (`config.torso`; None: "cnn" for rank-3 observations, else "mlp")."""
    rank = len(spec.obs_shape)
    torso = getattr(config, "torso", None) or ("cnn" if rank == 3 else "mlp")
    if torso == "cnn" and rank != 3:
        raise ValueError(f"torso='cnn' needs [H, W, C] observations; {config.env_id} gives "
                         f"shape {spec.obs_shape} (use torso='mlp')")
    return {"obs_ndim": rank, "torso": torso,
            "cnn_channels": tuple(getattr(config, "cnn_channels", (16,)))}


def episode_metrics(episode_return, episode_length, done) -> dict:
    """Mean return/length of the episodes that ended (`done`), NaN if none did; under
    data parallelism the episodes of every device count."""
    count = parallel.psum(done.sum())
    safe = jnp.maximum(count, 1)
    nan_if_none = lambda x: jnp.where(count > 0, x, jnp.nan)
    return_sum = parallel.psum(jnp.sum(jnp.where(done, episode_return, 0.0)))
    length_sum = parallel.psum(jnp.sum(jnp.where(done, episode_length, 0)))
    return {
        "episode_return": nan_if_none(return_sum / safe),
        "episode_length": nan_if_none(length_sum / safe),
        "episodes": count.astype(jnp.int32),
    }


def episode_row(per_iter: dict) -> dict:
    """Per-iteration episode metrics `[K]` (and `env_steps`) -> one log row: the episode
    return and length averaged over the episodes that ended (weighted by their count),
    NaN if none did; the episode count; the last iteration's env steps."""
    n = per_iter["episodes"]
    total = jnp.sum(n)
    weighted = lambda x: jnp.where(total > 0, jnp.sum(jnp.where(n > 0, x * n, 0.0)) /
                                   jnp.maximum(total, 1), jnp.nan)
    return {"episode_return": weighted(per_iter["episode_return"]),
            "episode_length": weighted(per_iter["episode_length"]),
            "episodes": total, "env_steps": per_iter["env_steps"][-1]}


def trajectory_metrics(traj: Trajectory) -> dict:
    return episode_metrics(traj.episode_return, traj.episode_length, traj.done)


def check_divides(name_a: str, a: int, name_b: str, b: int) -> None:
    """Raise a clear error when `b` does not divide `a` (static sizes)."""
    if b <= 0 or a % b:
        raise ValueError(f"{name_a}={a} must be divisible by {name_b}={b}")
