"""POPGym tasks and MemoryChain lengths: hand-played episodes against plain-Python
references written from the task definitions, auto-reset, and the return bounds."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import envs
from rljax.envs import popgym

CARD_GAMES = [f"popgym/{t}-{lvl}" for t in ("RepeatFirst", "RepeatPrevious", "Autoencode", "CountRecall")
              for lvl in popgym.LEVELS]


@functools.lru_cache(maxsize=None)
def _player(env_id):
    """`play(key, actions [n]) -> (state0, obs0, outputs [n])`: reset, then step through
    `actions` with `lax.scan` (one compile per env); the raw env, no wrappers."""
    env, params = popgym.make_popgym(env_id)

    @jax.jit
    def play(key, actions):
        obs, state = env.reset(key, params)

        def body(state, inp):
            k, a = inp
            obs, state, r, term, trunc, info = env.step(k, state, a, params)
            return state, (obs, r, term, trunc, info["final_observation"])

        keys = jax.random.split(jax.random.fold_in(key, 1), actions.shape[0])
        _, out = jax.lax.scan(body, state, (keys, actions))
        return state, obs, out

    return env, params, play


def _onehot(i, n):
    v = np.zeros(n, np.float32)
    v[i] = 1.0
    return v


def _reference(env, cards, queries, actions):
    """The game played in plain Python from the task definitions (popgym docstring).

    `cards`, `queries`: the dealt sequence. Returns per step `t` the observation the
    agent acted on, the reward and whether the game ended after that step."""
    n = env.num_cards
    name = type(env).__name__
    obs, rewards, ends = [], [], []
    for t, a in enumerate(actions):
        if name == "RepeatFirst":
            o, r = _onehot(cards[t], 4), (1 if a == cards[0] else -1) / (n - 1)
        elif name == "RepeatPrevious":
            k = env.k
            o = _onehot(cards[t], 4)
            r = 0.0 if t < k - 1 else (1 if a == cards[t - k + 1] else -1) / (n - k)
        elif name == "Autoencode":
            o = np.concatenate([_onehot(cards[t], 4) if t < n else np.zeros(4, np.float32),
                                [float(t >= n - 1)]])
            r = 0.0 if t < n - 1 else (1 if a == cards[2 * n - 2 - t] else -1) / n
        elif name == "CountRecall":
            d = env.num_kinds
            o = np.concatenate([_onehot(cards[t], d), _onehot(queries[t], d)])
            count = sum(1 for i in range(t + 1) if cards[i] == queries[t])
            r = (1 if a == count else -1) / (n - 1)
        obs.append(o)
        rewards.append(r)
        ends.append(t + 1 == env.episode_length)
    return np.array(obs), np.array(rewards), np.array(ends)


def _optimal_actions(env, cards, queries):
    n, name = env.num_cards, type(env).__name__
    acts = []
    for t in range(env.episode_length):
        if name == "RepeatFirst":
            acts.append(cards[0])
        elif name == "RepeatPrevious":
            acts.append(cards[max(t - env.k + 1, 0)])
        elif name == "Autoencode":
            acts.append(cards[min(max(2 * n - 2 - t, 0), n - 1)])
        else:
            acts.append(sum(1 for i in range(t + 1) if cards[i] == queries[t]))
    return np.array(acts, np.int32)


@pytest.mark.parametrize("env_id", CARD_GAMES)
def test_card_game_episode_matches_the_reference(env_id):
    env, params, play = _player(env_id)
    length = env.episode_length
    key = jax.random.key(7)
    # Peek at the deal (the state after reset) to play the optimal policy.
    _, state = jax.jit(env.reset)(key, params)
    cards, queries = np.asarray(state.cards), np.asarray(state.queries)
    rng = np.random.default_rng(0)
    policies = {"optimal": _optimal_actions(env, cards, queries),
                "random": rng.integers(0, env.num_actions, length).astype(np.int32)}
    for name, actions in policies.items():
        # one step more than the episode: the last one belongs to the next episode
        state0, obs0, (obs, r, term, trunc, final) = play(key, np.append(actions, 0))
        ref_obs, ref_r, ref_end = _reference(env, cards, queries, actions)
        acted_on = np.concatenate([np.asarray(obs0)[None], np.asarray(obs)[:length - 1]])
        np.testing.assert_allclose(acted_on, ref_obs, err_msg=f"{env_id} {name} observations")
        np.testing.assert_allclose(np.asarray(r)[:length], ref_r, rtol=1e-6, err_msg=name)
        np.testing.assert_array_equal(np.asarray(term)[:length], ref_end)
        assert not np.asarray(trunc).any()          # no time limit on the card games
        # at the end: final_observation is the game's last one, obs the next episode's first
        last = _reference(env, cards, queries, np.append(actions, 0))[0][length]
        np.testing.assert_allclose(np.asarray(final)[length - 1], last)
        assert not np.allclose(np.asarray(obs)[length - 1], 0.0)
        ret = float(np.sum(np.asarray(r)[:length], dtype=np.float64))
        if name == "optimal":
            assert abs(ret - popgym.RETURN_BOUNDS[env_id].optimal) < 1e-4
        assert -1.0 - 1e-4 <= ret <= 1.0 + 1e-4


def test_hand_played_repeat_first_and_autoencode():
    """A few steps played by hand on a fixed deal (state built directly)."""
    env, params = popgym.make_popgym("popgym/RepeatFirst-Easy")
    cards = jnp.asarray(np.r_[2, 0, 3, 1, np.zeros(48, int)], jnp.int32)
    state = popgym.CardState(cards=cards, queries=jnp.zeros(1, jnp.int32), time=jnp.int32(0))
    k = jax.random.key(0)
    obs, state, r, term, trunc, _ = env.step(k, state, 2, params)   # first card was suit 2
    assert float(r) == pytest.approx(1 / 51) and not term and not trunc
    np.testing.assert_array_equal(obs, [1, 0, 0, 0])                  # dealt suit 0
    obs, state, r, *_ = env.step(k, state, 0, params)                 # wrong: still suit 2
    assert float(r) == pytest.approx(-1 / 51)
    np.testing.assert_array_equal(obs, [0, 0, 0, 1])

    env, params = popgym.make_popgym("popgym/Autoencode-Easy")
    cards = jnp.asarray(np.arange(52) % 4, jnp.int32)
    state = popgym.CardState(cards=cards, queries=jnp.zeros(1, jnp.int32), time=jnp.int32(50))
    obs, state, r, *_ = env.step(k, state, 3, params)   # still watching: no reward
    assert float(r) == 0.0
    np.testing.assert_array_equal(obs, [0, 0, 0, 1, 1])  # last card (51 % 4 = 3), play flag on
    obs, state, r, *_ = env.step(k, state, 3, params)   # recite the last card first
    assert float(r) == pytest.approx(1 / 52)
    np.testing.assert_array_equal(obs, [0, 0, 0, 0, 1])
    obs, state, r, *_ = env.step(k, state, 3, params)   # then card 50 (suit 2): wrong
    assert float(r) == pytest.approx(-1 / 52)


def test_count_recall_counts_the_query_kind():
    env, params = popgym.make_popgym("popgym/CountRecall-Easy")
    values = jnp.asarray(np.r_[1, 1, 0, 1, np.zeros(48, int)], jnp.int32)
    queries = jnp.asarray(np.r_[1, 0, 1, 0, np.zeros(48, int)], jnp.int32)
    state = popgym.CardState(cards=values, queries=queries, time=jnp.int32(0))
    k = jax.random.key(0)
    for t, (right, wrong) in enumerate([(1, 0), (0, 2), (2, 1)]):
        _, _, r_ok, *_ = env.step(k, state, right, params)
        _, state, r_bad, *_ = env.step(k, state, wrong, params)
        assert float(r_ok) == pytest.approx(1 / 51) and float(r_bad) == pytest.approx(-1 / 51), t
    assert env.num_actions == 27 and env.observation_space(params).shape == (4,)


@pytest.mark.parametrize("env_id, length, sigma", [
    ("popgym/StatelessCartPole-Easy", 200, 0.0), ("popgym/StatelessCartPole-Hard", 600, 0.0),
    ("popgym/NoisyStatelessCartPole-Medium", 200, 0.2)])
def test_stateless_cartpole_against_gymnax_cartpole(env_id, length, sigma):
    """Lockstep with gymnax CartPole-v1 (same keys and actions): observations are the
    positions (+ noise), reward 1/L per step, truncation (not termination) at L."""
    env, params = popgym.make_popgym(env_id)
    full, full_params = envs.make("CartPole-v1", max_episode_steps=length, episode_stats=False)
    key = jax.random.key(3)

    @jax.jit
    def run(key):
        obs, state = env.reset(key, params)
        fobs, fstate = full.reset(key, full_params)

        def body(carry, k):
            state, fstate, fobs = carry
            a = (state.theta + 0.5 * state.theta_dot > 0).astype(jnp.int32)   # a PD balancer
            obs, state, r, term, trunc, _ = env.step(k, state, a, params)
            fobs_next, fstate, fr, fterm, ftrunc, _ = full.step(k, fstate, a, full_params)
            return (state, fstate, fobs_next), (obs, fobs, r, term, trunc, fr, fterm, ftrunc)

        _, out = jax.lax.scan(body, (state, fstate, fobs), jax.random.split(key, length))
        return obs, out

    obs0, (obs, fobs_prev, r, term, trunc, fr, fterm, ftrunc) = jax.device_get(run(key))
    np.testing.assert_array_equal(term, fterm)
    np.testing.assert_array_equal(trunc, ftrunc)
    assert trunc[length - 1] and not term.any() and trunc.sum() == 1   # balanced to the limit
    np.testing.assert_allclose(r, fr / length, rtol=1e-6)
    assert abs(r.sum() - popgym.RETURN_BOUNDS[env_id].optimal) < 1e-4
    clean = np.concatenate([fobs_prev[1:], fobs_prev[-1:]])[:-1, [0, 2]]   # obs after step t
    noise = obs[:-1] - clean
    if sigma == 0.0:
        np.testing.assert_allclose(noise, 0.0, atol=1e-6)
    else:
        assert abs(noise.std() - sigma) < 0.05 and np.abs(obs[:, 1]).max() <= 0.42


def test_random_policy_bounds_of_cartpole_and_card_games():
    env, params = popgym.make_popgym("popgym/StatelessCartPole-Medium")

    def episode(key):
        k0, k1 = jax.random.split(key)
        _, state = env.reset(k0, params)

        def body(c, k):
            state, alive, ret = c
            ka, ks = jax.random.split(k)
            _, state, r, term, trunc, _ = env.step(ks, state, jax.random.randint(ka, (), 0, 2), params)
            return (state, alive & ~(term | trunc), ret + alive * r), None

        (_, _, ret), _ = jax.lax.scan(body, (state, True, 0.0), jax.random.split(k1, 150))
        return ret

    rets = jax.jit(jax.vmap(episode))(jax.random.split(jax.random.key(0), 3000))
    bounds = popgym.RETURN_BOUNDS["popgym/StatelessCartPole-Medium"]
    assert abs(float(rets.mean()) - bounds.random) < 4 * float(rets.std()) / np.sqrt(3000) + 1e-3
    # card games: a guess is right with probability 1/A
    assert popgym.RETURN_BOUNDS["popgym/RepeatFirst-Hard"] == (-1.0, -0.5, 1.0)
    assert popgym.RETURN_BOUNDS["popgym/CountRecall-Hard"].random == pytest.approx(2 / 17 - 1)


def test_normalized_return_and_mmer():
    curve = np.array([[np.nan, -0.5, 0.2, 0.1], [-1.0, -0.9, -0.8, np.nan]])
    np.testing.assert_allclose(popgym.mmer(curve), [0.2, -0.8])
    np.testing.assert_allclose(popgym.mmer(curve, "popgym/RepeatFirst-Easy"), [0.6, 0.1])
    np.testing.assert_allclose(popgym.mmer(curve, "popgym/RepeatFirst-Easy", baseline="random"),
                               [0.7 / 1.5, -0.3 / 1.5])
    assert popgym.normalized_return(1.0, "popgym/StatelessCartPole-Easy") == 1.0
    chain = popgym.ReturnBounds(-1.0, 0.0, 1.0)
    assert popgym.normalized_return(0.0, chain, baseline="random") == 0.0


def test_registry_lists_and_makes_every_task_and_memory_chain_length():
    ids = envs.list_envs()
    for env_id in popgym.POPGYM_ENVS:
        assert env_id in ids
    assert len(popgym.POPGYM_ENVS) == 18
    env, params = envs.make("popgym/RepeatPrevious-Medium", prev_action=True)
    assert envs.spec(env, params) == envs.EnvSpec(obs_shape=(8,), num_actions=4)
    with pytest.raises(ValueError, match="Did you mean: popgym/RepeatFirst-Easy"):
        envs.make("popgym/RepeatFirst-Eazy")


@pytest.mark.parametrize("memory_length", [30, 100])
def test_memory_chain_length_is_effective(memory_length):
    """gymnax MemoryChain reads `memory_length` from EnvParams; our ids set it. The
    context (±1) shows at the start, the reward (±1) comes on the last of L + 1 steps."""
    env, params = envs.make(f"MemoryChain-bsuite-L{memory_length}", episode_stats=False)
    assert params.memory_length == memory_length
    obs0, state = env.reset(jax.random.key(1), params)
    context = int(obs0[2] > 0)
    n = memory_length + 1

    @jax.jit
    def play(state, actions):
        def body(s, inp):
            k, a = inp
            obs, s, r, term, trunc, _ = env.step(k, s, a, params)
            return s, (obs, r, term, trunc)
        return jax.lax.scan(body, state, (jax.random.split(jax.random.key(2), n), actions))[1]

    for action, sign in ((context, 1.0), (1 - context, -1.0)):
        obs, r, term, trunc = jax.device_get(play(state, jnp.full((n,), action, jnp.int32)))
        np.testing.assert_array_equal(r[:-1], 0.0)
        assert r[-1] == sign and term[-1] and not term[:-1].any() and not trunc.any()
    assert np.all(obs[1:-1, 2] == 0.0)   # the context shows only at the start
