"""rljax.normalize: running statistics against numpy, reward scaling against a numpy
loop, the statistics of a training run (the stream it saw, per seed under vmap, through
a checkpoint, played back by `rljax eval`)."""
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from rljax import normalize
from rljax.algos import dqn, ppo, seed_keys

ROOT = Path(__file__).resolve().parents[1]


def test_running_stats_equal_numpy_over_a_stream_of_uneven_batches():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(n, 4, 3)).astype(np.float32) for n in (1, 7, 2, 30, 5)]
    stats = normalize.init((3,))
    update = jax.jit(normalize.update)
    for i, b in enumerate(batches):
        stats = update(stats, b)
        seen = np.concatenate(batches[:i + 1]).reshape(-1, 3).astype(np.float64)
        np.testing.assert_allclose(stats.mean, seen.mean(0), rtol=1e-5)
        np.testing.assert_allclose(stats.var, seen.var(0), rtol=1e-4)
        assert float(stats.count) == len(seen)
    x = rng.normal(size=(5, 3)).astype(np.float32) * 100
    expected = np.clip((x - seen.mean(0)) / np.sqrt(seen.var(0) + 1e-8), -5, 5)
    np.testing.assert_allclose(normalize.apply(stats, x, clip=5.0), expected, rtol=1e-4, atol=1e-5)


def test_reward_scaling_equals_a_numpy_loop():
    rng = np.random.default_rng(1)
    T, B, gamma = 50, 3, 0.9
    r = rng.normal(size=(T, B)).astype(np.float32) * 4
    done = rng.random((T, B)) < 0.1
    state = normalize.RewardScale(normalize.init(()), jnp.zeros(B))
    state, half = normalize.scale(state, r[:20], done[:20], gamma=gamma, clip=3.0)
    state, rest = normalize.scale(state, r[20:], done[20:], gamma=gamma, clip=3.0)   # continues
    g, seen, expected = np.zeros(B), [], []
    for t in range(T):
        g = g * gamma + r[t]
        seen.extend(g)
        expected.append(np.clip(r[t] / np.sqrt(np.var(seen) + 1e-8), -3, 3))
        g = np.where(done[t], 0.0, g)
    np.testing.assert_allclose(np.concatenate([half, rest]), np.array(expected), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(state.returns.var, np.var(seen), rtol=1e-4)


def _ppo_config(**changes):
    return ppo.Config(env_id="Pendulum-v1", num_envs=4, num_steps=16, total_steps=4 * 16 * 4,
                      hidden_sizes=(8,), num_minibatches=2, num_epochs=2, normalize_obs=True,
                      normalize_reward=True, **changes)


def test_training_statistics_equal_numpy_over_the_observations_collected(monkeypatch):
    seen = []
    observe = normalize.observe

    def recording(params, obs, **kw):
        jax.debug.callback(lambda o: seen.append(np.asarray(o)), obs)
        return observe(params, obs, **kw)

    monkeypatch.setattr(normalize, "observe", recording)
    result = jax.jit(ppo.train)(_ppo_config(), jax.random.key(0))
    jax.effects_barrier()
    stream = np.concatenate([s.reshape(-1, 3) for s in seen]).astype(np.float64)
    stats = result.train_state.params["obs_norm"]
    assert len(stream) == 4 * 16 * 4 == float(stats["count"])
    np.testing.assert_allclose(stats["mean"], stream.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats["var"], stream.var(0), rtol=1e-4)
    # not frozen at the identity: Pendulum's velocity has a large variance
    assert float(stats["var"][2]) > 1.0


def test_each_vmapped_seed_keeps_its_own_statistics():
    config = _ppo_config()
    both = jax.jit(jax.vmap(ppo.train, in_axes=(None, 0)))(config, seed_keys(2))
    singles = [jax.jit(ppo.train)(config, jax.random.key(s)) for s in (0, 1)]
    for s, single in enumerate(singles):
        for k in ("mean", "var", "count"):
            np.testing.assert_allclose(both.train_state.params["obs_norm"][k][s],
                                       single.train_state.params["obs_norm"][k], rtol=1e-5, atol=1e-6)
    assert not np.allclose(both.train_state.params["obs_norm"]["mean"][0],
                           both.train_state.params["obs_norm"]["mean"][1])


def test_statistics_and_reward_scale_survive_a_checkpoint(tmp_path):
    from rljax.cli import rundir
    loop = ppo.loop(_ppo_config())
    run = jax.jit(loop.run, static_argnums=1)
    state0 = jax.jit(loop.init)(jax.random.key(3))
    whole, _ = run(state0, 4)
    half, _ = run(state0, 2)
    rundir.save_tree(tmp_path / "ckpt", half)
    resumed, _ = run(rundir.load_tree(tmp_path / "ckpt", jax.eval_shape(loop.init, jax.random.key(3))), 2)
    for a, b in ((resumed.train_state.params["obs_norm"], whole.train_state.params["obs_norm"]),
                 (resumed.reward_scale, whole.reward_scale), (resumed.train_state, whole.train_state)):
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert float(whole.reward_scale.returns.count) == 4 * 16 * 4


def test_q_learning_normalises_too():
    config = dqn.Config(num_envs=2, train_every=4, log_every=40, total_steps=120, buffer_size=100,
                        batch_size=8, learning_starts=40, target_update_every=40, hidden_sizes=(8,),
                        normalize_obs=True, normalize_reward=True)
    result = jax.jit(dqn.train)(config, jax.random.key(0))
    assert float(result.train_state.params["obs_norm"]["count"]) == 120
    assert np.isfinite(np.asarray(result.metrics["loss"][-1]))


def test_rljax_eval_plays_the_saved_statistics(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(tmp_path), "COLUMNS": "100"}
    sets = ["--set", "num_envs=4", "--set", "num_steps=16", "--set", "total_steps=256",
            "--set", "hidden_sizes=[8]", "--set", "normalize_obs=True", "--set", "normalize_reward=True"]
    run = lambda *a: subprocess.run([sys.executable, "-m", "rljax", *map(str, a)], capture_output=True,
                                    text=True, env=env, timeout=300, cwd=tmp_path)
    proc = run("train", "ppo", "--env", "Pendulum-v1", "--seeds", "2", *sets, "--quiet",
               "--out", tmp_path / "run")
    assert proc.returncode == 0, proc.stderr[-3000:]
    from rljax.cli import rundir
    params = rundir.load_params(tmp_path / "run")
    np.testing.assert_array_equal(params["obs_norm"]["count"], [256, 256])
    ev = run("eval", tmp_path / "run", "--episodes", "2")
    assert ev.returncode == 0, ev.stderr[-3000:]
    # eval plays the params with their statistics: the same numbers as evaluating them here
    from rljax.algos.common import make_env
    from rljax.rollout import evaluate
    config = ppo.Config(env_id="Pendulum-v1", num_envs=4, num_steps=16, total_steps=256,
                        hidden_sizes=(8,), normalize_obs=True, normalize_reward=True)
    e, ep, spec = make_env(config)
    agent = ppo.make_agent(config, spec)
    returns, _ = jax.jit(jax.vmap(lambda p, k: evaluate(agent, p, e, ep, k, 2, greedy=True)))(
        params, seed_keys(2, start=1))   # rljax eval --seed defaults to 1
    assert f"{float(np.mean(returns)):.2f}" in ev.stdout


_DP_SCRIPT = """
import jax, numpy as np
from rljax import parallel
from rljax.algos import ppo
c = ppo.Config(env_id="Pendulum-v1", num_envs=4, num_steps=16, total_steps=4 * 16 * 3,
               hidden_sizes=(8,), num_minibatches=2, normalize_obs=True, normalize_reward=True)
out = [parallel.local_value(parallel.data_parallel(ppo, c, jax.random.key(0), devices=jax.devices()[:n],
                                                   env_groups=2).train_state.params["obs_norm"])
       for n in (1, 2)]
assert float(out[0]["count"]) == float(out[1]["count"]) == 4 * 16 * 3
for k in ("mean", "var"):
    np.testing.assert_allclose(out[0][k], out[1][k], rtol=1e-3, atol=1e-4)
print("ok")
"""


def test_statistics_pool_every_device_under_data_parallelism():
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    proc = subprocess.run([sys.executable, "-c", _DP_SCRIPT], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]
