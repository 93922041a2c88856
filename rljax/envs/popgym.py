"""POPGym memory tasks (Morad et al., ICLR 2023) as gymnax environments.

Written from the paper's task definitions (and checked against the POPGym
package's episode lengths, difficulty levels and reward scales). Every env
subclasses `gymnax.environments.environment.Environment`, so `step` auto-resets
and reports `info["final_observation"]` like any gymnax 1.0 env, and rljax's
wrappers apply. Ids: `popgym/<Task>-<Easy|Medium|Hard>` (`POPGYM_ENVS`).

Rewards are scaled as in POPGym so that an episode's return lies in `[-1, 1]`
(card games) or `[0, 1]` (cart-poles). `RETURN_BOUNDS[id]` holds the lowest
possible return, the expected return of the uniformly random policy, and the
optimal return; `normalized_return` and `mmer` score a learning curve with them.

Cards: `num_decks` standard 52-card decks shuffled together, dealt without
replacement; card `c ∈ [0, 52)` has suit `c // 13`, colour `c // 26`, rank `c % 13`.
Let `N = 52 · num_decks`. At step `t` (0-based) the agent acts on observation `o_t`:

* **RepeatFirst** (1 / 8 / 16 decks): `o_t = onehot(suit c_t)`; the action should be
  the suit of the FIRST card, `r_t = ±1/(N-1)`; the game ends after `N - 1` steps.
* **RepeatPrevious** (decks, k) = (1, 4) / (2, 32) / (3, 64): `o_t = onehot(suit c_t)`;
  for `t ≥ k - 1` the action should be `suit c_{t-k+1}` (the card `k - 1` steps back),
  `r_t = ±1/(N-k)`, else `r_t = 0`; ends after `N - 1` steps.
* **Autoencode** (1 / 2 / 3 decks): watch `N` cards, then recite their suits in reverse.
  `o_t = [onehot(suit c_t), play_t]` for `t < N` (`play = 1` only at `t = N - 1`, the
  last card), then `[0, 0, 0, 0, 1]`. For `t ≥ N - 1` the action should be
  `suit c_{2N-2-t}`, `r_t = ±1/N`; ends after `2N - 1` steps.
* **CountRecall** (decks, kind) = (1, colours) / (2, suits) / (4, ranks), `D` kinds:
  a value deck and a query deck; `o_t = [onehot(v_t), onehot(q_t)]`; the action should
  be `#{i ≤ t : v_i = q_t}`, `r_t = ±1/(N-1)`; ends after `N - 1` steps.
  `N/D + 1` actions (POPGym has `N/D`, which cannot answer a count of `N/D`).
* **StatelessCartPole** (time limit L = 200 / 400 / 600): gymnax CartPole-v1 dynamics,
  `o_t = (x, θ)` (velocities hidden), `r_t = 1/L` per step alive.
* **NoisyStatelessCartPole** (σ = 0.1 / 0.2 / 0.3, L = 200): as above plus Gaussian noise
  `N(0, σ²)` on `(x, θ)`, clipped to `±(2·x_threshold, 2·θ_threshold)`.

Deviations from the POPGym package: the card games report their natural end as
`terminated` (POPGym reports RepeatFirst/RepeatPrevious's end as `truncated`; no reward
follows, so 0 is the correct bootstrap); Autoencode's play-phase observation shows no
card (POPGym shows a fixed one); CountRecall has one more action (above). A time limit
set through `rljax.envs.make(..., max_episode_steps=n)` is reported as `truncated`.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces
from gymnax.environments.classic_control.cartpole import CartPole
from gymnax.environments.classic_control.cartpole import EnvParams as CartPoleParams

NEVER = 2 ** 30   # default time limit of the card games: they end themselves


@struct.dataclass
class EnvParams(environment.EnvParams):
    max_steps_in_episode: int = NEVER


@struct.dataclass
class CardState(environment.EnvState):
    cards: jax.Array     # [N] int32: the dealt sequence (suits, or values for CountRecall)
    queries: jax.Array   # [N] int32: CountRecall's query deck; [1] otherwise
    time: int


def _shuffled(key, num_decks: int) -> jax.Array:
    """`[52 * num_decks]` card ids in `[0, 52)`, a shuffle of the decks together."""
    return (jax.random.permutation(key, 52 * num_decks) % 52).astype(jnp.int32)


def _pm(correct, scale):
    """`+scale` where correct, else `-scale` (float32)."""
    return jnp.where(correct, scale, -scale).astype(jnp.float32)


class _CardGame(environment.Environment):
    """Shared plumbing: decks, spaces, params. Subclasses define the game."""

    num_decks: int = 1
    num_obs: int = 4
    n_actions: int = 4

    @property
    def num_cards(self) -> int:
        return 52 * self.num_decks

    @property
    def episode_length(self) -> int:
        """Steps per episode: one reward per card after the first (overridden where not)."""
        return self.num_cards - 1

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    @property
    def num_actions(self) -> int:
        return self.n_actions

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(self.n_actions)

    def observation_space(self, params) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (self.num_obs,), jnp.float32)

    def _deal(self, key):
        return _shuffled(key, self.num_decks) // 13, jnp.zeros((1,), jnp.int32)   # suits

    def _obs(self, state, t):
        """The suit of card `t`, one-hot `[4]` (overridden where the game shows more)."""
        return jax.nn.one_hot(state.cards[t], 4, dtype=jnp.float32)

    def reset_env(self, key, params):
        cards, queries = self._deal(key)
        state = CardState(cards=cards, queries=queries, time=jnp.int32(0))
        return self._obs(state, state.time), state

    def step_env(self, key, state, action, params):
        t = state.time
        reward = self._reward(state, t, action)
        state = state.replace(time=t + 1)
        terminated = state.time >= self.episode_length
        obs = self._obs(state, state.time)
        return obs, state, reward, terminated, {}


class RepeatFirst(_CardGame):
    """Repeat the suit of the first card, at every step (module docstring)."""

    def __init__(self, num_decks: int = 1):
        super().__init__()
        self.num_decks = num_decks

    def _reward(self, state, t, action):
        return _pm(action == state.cards[0], 1.0 / (self.num_cards - 1))


class RepeatPrevious(_CardGame):
    """Repeat the suit of the card seen `k - 1` steps ago (module docstring)."""

    def __init__(self, num_decks: int = 1, k: int = 4):
        super().__init__()
        if not 1 <= k < 52 * num_decks:
            raise ValueError(f"k must be in [1, {52 * num_decks}), got {k}")
        self.num_decks, self.k = num_decks, k

    def _reward(self, state, t, action):
        target = state.cards[jnp.maximum(t - self.k + 1, 0)]
        scored = _pm(action == target, 1.0 / (self.num_cards - self.k))
        return jnp.where(t >= self.k - 1, scored, 0.0)


class Autoencode(_CardGame):
    """Watch the cards, then recite their suits in reverse order (module docstring)."""

    num_obs = 5

    def __init__(self, num_decks: int = 1):
        super().__init__()
        self.num_decks = num_decks

    @property
    def episode_length(self) -> int:
        return 2 * self.num_cards - 1

    def _obs(self, state, t):
        n = self.num_cards
        card = jax.nn.one_hot(state.cards[jnp.minimum(t, n - 1)], 4, dtype=jnp.float32)
        card = jnp.where(t < n, card, 0.0)
        return jnp.concatenate([card, jnp.asarray(t >= n - 1, jnp.float32)[None]])

    def _reward(self, state, t, action):
        n = self.num_cards
        target = state.cards[jnp.clip(2 * n - 2 - t, 0, n - 1)]
        return jnp.where(t >= n - 1, _pm(action == target, 1.0 / n), 0.0)


class CountRecall(_CardGame):
    """Count how often the queried kind has been dealt so far (module docstring)."""

    KINDS = {"colors": (2, 26), "suits": (4, 13), "ranks": (13, 1)}   # (D, divisor of c)

    def __init__(self, num_decks: int = 1, kind: str = "colors"):
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {sorted(self.KINDS)}, got {kind!r}")
        self.num_decks, self.kind = num_decks, kind
        self.num_kinds = self.KINDS[kind][0]
        self.num_obs = 2 * self.num_kinds
        self.n_actions = self.num_cards // self.num_kinds + 1

    def _category(self, cards):
        d, div = self.KINDS[self.kind]
        return (cards // div) % d

    def _deal(self, key):
        kv, kq = jax.random.split(key)
        return (self._category(_shuffled(kv, self.num_decks)),
                self._category(_shuffled(kq, self.num_decks)))

    def _obs(self, state, t):
        d = self.num_kinds
        return jnp.concatenate([jax.nn.one_hot(state.cards[t], d, dtype=jnp.float32),
                                jax.nn.one_hot(state.queries[t], d, dtype=jnp.float32)])

    def _reward(self, state, t, action):
        seen = jnp.arange(self.num_cards) <= t
        count = jnp.sum(seen & (state.cards == state.queries[t]))
        return _pm(action == count, 1.0 / (self.num_cards - 1))


class StatelessCartPole(CartPole):
    """CartPole-v1 with velocities hidden, `r = 1/L` per step, time limit `L`."""

    def __init__(self, max_episode_length: int = 200, noise_sigma: float = 0.0):
        super().__init__()
        self.max_episode_length, self.noise_sigma = max_episode_length, noise_sigma
        self.obs_shape = (2,)

    @property
    def default_params(self) -> CartPoleParams:
        return CartPoleParams(max_steps_in_episode=self.max_episode_length)

    def _observe(self, key, full_obs, params):
        obs = full_obs[jnp.array([0, 2])]
        if self.noise_sigma:
            high = jnp.array([2 * params.x_threshold, 2 * params.theta_threshold_radians])
            obs = jnp.clip(obs + self.noise_sigma * jax.random.normal(key, (2,)), -high, high)
        return obs

    def reset_env(self, key, params):
        obs, state = super().reset_env(key, params)   # the same start as CartPole-v1's
        return self._observe(jax.random.fold_in(key, 1), obs, params), state

    def step_env(self, key, state, action, params):
        obs, state, reward, terminated, info = super().step_env(key, state, action, params)
        reward = reward / params.max_steps_in_episode
        return self._observe(key, obs, params), state, reward, terminated, info

    def observation_space(self, params) -> spaces.Box:
        high = jnp.array([2 * params.x_threshold, 2 * params.theta_threshold_radians])
        return spaces.Box(-high, high, (2,), jnp.float32)

    @property
    def name(self) -> str:
        return "NoisyStatelessCartPole" if self.noise_sigma else "StatelessCartPole"


# --------------------------------------------------------------------------- registry
LEVELS = ("Easy", "Medium", "Hard")
_TASKS: dict[str, tuple[Any, tuple[dict, dict, dict]]] = {
    "RepeatFirst": (RepeatFirst, (dict(num_decks=1), dict(num_decks=8), dict(num_decks=16))),
    "RepeatPrevious": (RepeatPrevious, (dict(num_decks=1, k=4), dict(num_decks=2, k=32),
                                        dict(num_decks=3, k=64))),
    "Autoencode": (Autoencode, (dict(num_decks=1), dict(num_decks=2), dict(num_decks=3))),
    "CountRecall": (CountRecall, (dict(num_decks=1, kind="colors"), dict(num_decks=2, kind="suits"),
                                  dict(num_decks=4, kind="ranks"))),
    "StatelessCartPole": (StatelessCartPole, tuple(dict(max_episode_length=n) for n in (200, 400, 600))),
    "NoisyStatelessCartPole": (StatelessCartPole,
                               tuple(dict(noise_sigma=s) for s in (0.1, 0.2, 0.3))),
}
POPGYM_ENVS: dict[str, tuple[Any, dict]] = {
    f"popgym/{task}-{level}": (cls, kwargs)
    for task, (cls, levels) in _TASKS.items() for level, kwargs in zip(LEVELS, levels)
}
"""`id -> (env class, constructor kwargs)`; ids `popgym/<Task>-<Easy|Medium|Hard>`."""

# Mean episode length of the uniformly random policy on CartPole-v1 dynamics (gymnax),
# measured over 20,000 episodes: 22.36 ± 0.08 (tests/test_popgym.py re-measures it).
RANDOM_CARTPOLE_LENGTH = 22.4


class ReturnBounds(NamedTuple):
    """Episode-return landmarks of a task: lowest possible, uniform random policy
    (expected), optimal."""

    min: float
    random: float
    optimal: float


def _bounds(env_id: str) -> ReturnBounds:
    cls, kwargs = POPGYM_ENVS[env_id]
    env = cls(**kwargs)
    if isinstance(env, StatelessCartPole):
        return ReturnBounds(0.0, RANDOM_CARTPOLE_LENGTH / env.max_episode_length, 1.0)
    if isinstance(env, CountRecall):   # each scored step is right with probability 1/A
        return ReturnBounds(-1.0, 2.0 / env.num_actions - 1.0, 1.0)
    return ReturnBounds(-1.0, -0.5, 1.0)   # suit guesses: right with probability 1/4


RETURN_BOUNDS: dict[str, ReturnBounds] = {env_id: _bounds(env_id) for env_id in POPGYM_ENVS}


def normalized_return(episode_return, env_id, *, baseline: str = "min"):
    """Map returns onto `[0, 1]`: `(R - R_b) / (R_opt - R_b)`.

    `env_id` is a key of `RETURN_BOUNDS` or a `ReturnBounds` (e.g. bsuite MemoryChain:
    `ReturnBounds(-1, 0, 1)`). `baseline="min"` (POPGym's range normalisation: the
    lowest possible return maps to 0) or `"random"` (the uniform random policy maps
    to 0; below-random scores are negative).
    """
    bounds = env_id if isinstance(env_id, ReturnBounds) else RETURN_BOUNDS[env_id]
    low = {"min": bounds.min, "random": bounds.random}[baseline]
    return (np.asarray(episode_return, np.float64) - low) / (bounds.optimal - low)


def mmer(mean_returns, env_id=None, *, axis: int = -1, baseline: str = "min"):
    """Max-Mean Episodic Return (POPGym): the best mean episode return over a run.

    `MMER = max_u R̄_u`, with `R̄_u` the mean return of the episodes that ended in
    update (epoch) `u`, `mean_returns [..., U]` (NaN where none ended, ignored).
    With `env_id` (id or `ReturnBounds`), the MMER is normalised by `normalized_return`.
    """
    best = np.nanmax(np.asarray(mean_returns, np.float64), axis=axis)
    return best if env_id is None else normalized_return(best, env_id, baseline=baseline)


def make_popgym(env_id: str, **overrides):
    """`(env, env_params)` of a POPGym id (unwrapped); `overrides` change the level's
    constructor arguments (e.g. `num_decks=2`)."""
    cls, kwargs = POPGYM_ENVS[env_id]
    env = cls(**{**kwargs, **overrides})
    return env, env.default_params


__all__ = [
    "POPGYM_ENVS", "RETURN_BOUNDS", "ReturnBounds", "normalized_return", "mmer", "make_popgym",
    "RepeatFirst", "RepeatPrevious", "Autoencode", "CountRecall", "StatelessCartPole",
    "EnvParams", "CardState",
]
