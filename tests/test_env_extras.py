"""The optional memory suites, xminigrid and Craftax, on rljax's six-value step.

Each suite's tests are skipped, with the install line as the reason, when its extra is
missing. Per suite: the step under `jit` (termination vs truncation, the final
observation at the boundary, auto-reset, episode statistics) and one PPO update;
xminigrid also with a GRU core and from the `rljax train` command.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import algos, envs
from rljax.algos import common
from rljax.cli import main as cli_main
from rljax.envs import craftax_envs, xminigrid_envs

needs_xminigrid = pytest.mark.skipif(not xminigrid_envs.available(), reason=xminigrid_envs.MISSING)
needs_craftax = pytest.mark.skipif(not craftax_envs.available(), reason=craftax_envs.MISSING)

MEMORY = "xminigrid/MiniGrid-MemoryS8"
CRAFTAX = "craftax/Craftax-Classic-Symbolic-v1"
# one PPO update: total_steps = num_envs * num_steps
ONE_UPDATE = dict(num_envs=4, num_steps=8, total_steps=32, hidden_sizes=(8,),
                  num_minibatches=2, num_epochs=1, cnn_channels=(4,))


def _run(env, params, actions, seed=0):
    """Reset, then step `actions` [T] in one jitted scan: each step's six values [T, ...]
    plus the obs a fresh reset gives from that step's reset key (what auto-reset shows)."""

    def body(state, x):
        key, action = x
        obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)
        reset_obs, _ = env.reset(jax.random.split(key)[1], params)
        return state, (obs, reward, terminated, truncated, info, reset_obs)

    @jax.jit
    def run(key):
        obs0, state = env.reset(key, params)
        keys = jax.random.split(jax.random.fold_in(key, 1), len(actions))
        return obs0, jax.lax.scan(body, state, (keys, jnp.asarray(actions)))[1]

    obs0, out = run(jax.random.key(seed))
    return obs0, jax.tree.map(np.asarray, out)


def _one_ppo_update(env_id, **changes):
    algo = algos.get("ppo")
    config = algo.Config(env_id=env_id, **{**ONE_UPDATE, **changes})
    result = jax.jit(algo.train)(config, jax.random.key(0))
    assert result.metrics["env_steps"].shape == (1,)
    assert float(result.metrics["env_steps"][0]) == 32
    assert int(result.metrics["nonfinite"][0]) == 0 and int(result.diverged_at) == -1
    for leaf in jax.tree.leaves(result.train_state.params):
        assert np.all(np.isfinite(np.asarray(leaf))), env_id
    return result


# --------------------------------------------------------------------------- without the extras
def test_a_missing_suite_is_unlisted_and_says_what_to_install(monkeypatch):
    for suite, env_id, extra in [(xminigrid_envs, MEMORY, "rljax[xminigrid]"),
                                 (craftax_envs, CRAFTAX, "rljax[craftax]")]:
        monkeypatch.setattr(suite, "available", lambda: False)
        assert suite.env_ids() == [] and not any(e.startswith(suite.PREFIX) for e in envs.list_envs())
        with pytest.raises(ValueError) as e:
            envs.make(env_id)
        assert str(e.value) == suite.MISSING and extra in suite.MISSING and "\n" not in suite.MISSING


# --------------------------------------------------------------------------- xminigrid
@needs_xminigrid
def test_xminigrid_ids_are_listed_and_misspelt_ones_get_close_matches():
    import xminigrid
    ids = envs.list_envs()
    assert all(f"xminigrid/{name}" in ids for name in xminigrid.registered_environments())
    with pytest.raises(ValueError, match=r"Did you mean: xminigrid/MiniGrid-MemoryS8\b"):
        envs.make("xminigrid/MiniGrid-MemoryS8x8")
    with pytest.raises(ValueError, match="max_episode_steps"):
        envs.make(MEMORY, params={"max_steps": 10})


@needs_xminigrid
def test_xminigrid_memory_truncation_termination_final_observation_and_auto_reset():
    # MemoryS8: the agent starts facing east in the corridor's row (3), at a random
    # column < 6; the two objects to choose between are at (2, 6) and (4, 6).
    env, params = envs.make(MEMORY, max_episode_steps=5)
    assert envs.spec(env, params) == envs.EnvSpec(obs_shape=(3, 3, 2), num_actions=6)
    assert params.max_steps_in_episode == 5 and env.default_params.max_steps_in_episode == 320
    # forward only: never reaches an object, so the time limit truncates every 5 steps
    obs0, (obs, reward, term, trunc, info, reset_obs) = _run(env, params, [0] * 11)
    assert obs0.dtype == obs.dtype == np.float32 and obs.shape == (11, 3, 3, 2)
    assert not term.any() and list(np.flatnonzero(trunc)) == [4, 9]
    np.testing.assert_array_equal(info["episode_length"][[4, 9]], [5, 5])
    np.testing.assert_array_equal(info["episode_length"][[0, 5, 10]], [1, 1, 1])  # restarted
    np.testing.assert_array_equal(info["episode_return"][trunc], 0.0)
    # at the cut `obs` is the next episode's first (a reset from the step's reset key);
    # the final observation is the truncated episode's last: facing the east wall
    np.testing.assert_array_equal(obs[4], reset_obs[4])
    assert not np.array_equal(info["final_observation"][4], obs[4])
    np.testing.assert_array_equal(info["final_observation"][3], info["final_observation"][4])
    # elsewhere the final observation is the observation
    np.testing.assert_array_equal(info["final_observation"][~trunc], obs[~trunc])

    # to the corridor's end (6 forwards at most), turn left (north), step onto the
    # object: a real terminal, at the 8th step; with a time limit of 8 it is still
    # terminated, not truncated
    env, params = envs.make(MEMORY, max_episode_steps=8)
    _, (obs, reward, term, trunc, info, reset_obs) = _run(env, params, [0] * 6 + [2, 0] + [0])
    assert list(np.flatnonzero(term)) == [7] and not trunc.any()
    # the wrong object gives 0, the right one xminigrid's 1 - 0.9 * step / max_steps, with
    # its max_steps kept at the time limit (8)
    assert reward[7] == 0.0 or np.isclose(reward[7], 1.0 - 0.9 * 8 / 8)
    assert reward[:7].sum() == 0.0
    assert info["episode_length"][7] == 8 and info["episode_return"][7] == reward[7]
    np.testing.assert_array_equal(obs[7], reset_obs[7])
    assert not np.array_equal(info["final_observation"][7], obs[7])


@needs_xminigrid
def test_xminigrid_ppo_one_update_feedforward_and_gru():
    env, params = envs.make(MEMORY)
    assert common.torso_kwargs(algos.get("ppo").Config(env_id=MEMORY),
                                     envs.spec(env, params))["torso"] == "cnn"
    _one_ppo_update(MEMORY)
    _one_ppo_update(MEMORY, core="gru", core_size=8, head_sizes=(8,))


@needs_xminigrid
def test_xminigrid_from_the_command(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "ppo", "--env", MEMORY, "--quiet", "--out", str(out)]
    for field, value in ONE_UPDATE.items():
        value = list(value) if isinstance(value, tuple) else value
        argv += ["--set", f"{field}={value}".replace(" ", "")]
    assert cli_main(argv) == 0, capsys.readouterr().err
    assert (out / "config.json").is_file()


# --------------------------------------------------------------------------- Craftax
@needs_craftax
def test_craftax_truncation_termination_final_observation_and_auto_reset():
    assert {CRAFTAX, "craftax/Craftax-Symbolic-v1"} <= set(envs.list_envs())
    full, full_params = envs.make("craftax/Craftax-Symbolic-v1")   # built, not compiled here
    assert envs.spec(full, full_params) == envs.EnvSpec(obs_shape=(8268,), num_actions=43)
    assert full_params.max_steps_in_episode == 100000
    env, params = envs.make(CRAFTAX, max_episode_steps=3)
    assert envs.spec(env, params) == envs.EnvSpec(obs_shape=(1345,), num_actions=17)
    assert env.default_params.max_steps_in_episode == 10000
    with pytest.raises(ValueError, match="max_episode_steps"):
        envs.make(CRAFTAX, params={"max_timesteps": 10})
    # NOOP (action 0): nobody dies in 7 steps, the time limit truncates every 3
    obs0, (obs, reward, term, trunc, info, reset_obs) = _run(env, params, [0] * 7)
    assert obs0.dtype == obs.dtype == np.float32 and obs.shape == (7, 1345)
    assert not term.any() and list(np.flatnonzero(trunc)) == [2, 5]
    np.testing.assert_array_equal(info["episode_length"][[2, 3, 5]], [3, 1, 3])
    np.testing.assert_array_equal(obs[2], reset_obs[2])       # a new world
    assert not np.array_equal(info["final_observation"][2], obs[2])
    np.testing.assert_array_equal(info["final_observation"][~trunc], obs[~trunc])

    # a player with no health left dies at the next step: terminated, not truncated,
    # even where that step is also the time limit's
    env, params = envs.make(CRAFTAX, max_episode_steps=1)
    obs, state = env.reset(jax.random.key(0), params)
    craftax_state = state.inner.inner
    craftax_state = craftax_state.replace(player_health=jnp.full_like(craftax_state.player_health, -10))
    state = state.replace(inner=state.inner.replace(inner=craftax_state))
    key = jax.random.key(1)
    obs, state, reward, term, trunc, info = jax.jit(env.step)(key, state, 0, params)
    assert bool(term) and not bool(trunc) and int(info["episode_length"]) == 1
    np.testing.assert_allclose(obs, env.reset(jax.random.split(key)[1], params)[0], atol=1e-6)
    assert int(state.inner.time) == 0


@needs_craftax
def test_craftax_ppo_one_update():
    _one_ppo_update(CRAFTAX)
