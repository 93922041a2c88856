import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import envs


def _run(env, params, actions, seed=0):
    obs, state = env.reset(jax.random.key(seed), params)
    out = []
    step = jax.jit(env.step)
    for t, a in enumerate(actions):
        nobs, state, r, term, trunc, info = step(jax.random.key(100 + t), state, a, params)
        out.append((obs, nobs, r, term, trunc, info))
        obs = nobs
    return out


def test_unknown_env_id_lists_close_matches():
    with pytest.raises(ValueError, match=r"Unknown env id 'CartPol-v1'.*CartPole-v1"):
        envs.make("CartPol-v1")


def test_every_gymnax_id_is_listed_and_variants_make():
    ids = envs.list_envs()
    assert "CartPole-v1" in ids and "CartPole-P-v1" in ids
    env, params = envs.make("CartPole-P-v1")
    assert envs.spec(env, params) == envs.EnvSpec(obs_shape=(2,), num_actions=2)


def test_time_limit_reports_truncation_not_termination():
    env, params = envs.make("CartPole-v1", max_episode_steps=7)
    steps = _run(env, params, [0, 1] * 5)
    trunc = [bool(s[4]) for s in steps]
    term = [bool(s[3]) for s in steps]
    assert trunc[6] and not term[6]
    assert sum(trunc[:6]) == 0
    # the episode stats see 7 steps of reward 1 at the cut
    assert float(steps[6][5]["episode_return"]) == 7.0
    assert int(steps[6][5]["episode_length"]) == 7


def test_final_observation_is_last_obs_of_finished_episode():
    env, params = envs.make("CartPole-v1", max_episode_steps=3)
    base, bparams = envs.make("CartPole-v1", max_episode_steps=3, episode_stats=False)
    steps = _run(env, params, [1, 1, 1, 1])
    # at the cut, obs is a fresh reset (small values) while final_observation continues
    _, nobs, _, _, trunc, info = steps[2]
    assert bool(trunc)
    assert not np.allclose(nobs, info["final_observation"])
    assert np.all(np.abs(nobs) <= 0.05)


def test_observation_mask_keeps_positions():
    full, params = envs.make("CartPole-v1")
    masked, _ = envs.make("CartPole-P-v1")
    o_full, _ = full.reset(jax.random.key(3), params)
    o_mask, _ = masked.reset(jax.random.key(3), params)
    np.testing.assert_allclose(o_mask, o_full[jnp.array([0, 2])])


def test_history_pushes_once_per_step_and_clears_at_episode_start():
    env, params = envs.make("CartPole-v1", history=3, max_episode_steps=4)
    plain, _ = envs.make("CartPole-v1", max_episode_steps=4)
    actions = [1, 0, 1, 1, 0, 1]
    h = _run(env, params, actions)
    p = _run(plain, params, actions)
    zeros = np.zeros(4, np.float32)
    # reset: [0, 0, o0]
    np.testing.assert_allclose(h[0][0], np.concatenate([zeros, zeros, p[0][0]]))
    # after two steps: [o0, o1, o2]: one push per step, no duplicates
    np.testing.assert_allclose(h[2][0], np.concatenate([p[0][0], p[1][0], p[2][0]]))
    # step 3 is cut by the time limit: final_observation ends with the last obs,
    # the new obs is a cleared history holding only the reset observation
    assert bool(h[3][4])
    np.testing.assert_allclose(h[3][5]["final_observation"],
                               np.concatenate([p[2][0], p[3][0], p[3][5]["final_observation"]]))
    np.testing.assert_allclose(h[3][1], np.concatenate([zeros, zeros, p[3][1]]))


def test_previous_action_and_reward_zero_at_episode_start():
    env, params = envs.make("CartPole-v1", prev_action=True, prev_reward=True, max_episode_steps=2)
    steps = _run(env, params, [1, 0, 1])
    obs0 = steps[0][0]
    np.testing.assert_allclose(obs0[4:], [0, 0, 0])          # nothing before the start
    np.testing.assert_allclose(steps[0][1][4:], [0, 1, 1])   # a_0 = 1, r_0 = 1
    # step 1 hits the time limit: the new episode's obs is zeroed again,
    # while final_observation carries a_1 = 0, r_1 = 1
    assert bool(steps[1][4])
    np.testing.assert_allclose(steps[1][1][4:], [0, 0, 0])
    np.testing.assert_allclose(steps[1][5]["final_observation"][4:], [1, 0, 1])


def test_bad_options_give_clear_errors():
    with pytest.raises(ValueError, match="history depth"):
        envs.make("CartPole-v1", history=0)
    with pytest.raises(ValueError, match="out of range"):
        envs.make("CartPole-v1", obs_indices=(7,))
    env, params = envs.make("Pendulum-v1")   # Box actions: a spec with their bounds
    assert envs.spec(env, params) == envs.EnvSpec((3,), None, (1,), (-2.0,), (2.0,))
