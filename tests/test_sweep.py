"""rljax.sweep: search spaces, one-compile sweeps, chunks, partial results, ranking, CSV."""
import csv
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import config as config_lib
from rljax import sweep
from rljax.algos import ppo
from rljax.config import StaticFieldError, config_class, static
from rljax.metrics import final_return
from rljax.types import Result

pytestmark = pytest.mark.timeout(300, method="thread")   # a hang fails loudly

TINY = ppo.Config(total_steps=256, num_envs=4, num_steps=16, hidden_sizes=(8,), num_epochs=1,
                  num_minibatches=2, scan_unroll=1)


@config_class
class FakeConfig:
    """A cheap stand-in for an algorithm: compiles in well under a second."""

    num_updates: int = static(6)
    lr: float = 0.1
    gamma: float = 0.9


TRACES = {"n": 0}


def fake_train(config, rng):
    TRACES["n"] += 1          # Python side effect: runs once per trace
    u = jnp.arange(config.num_updates, dtype=jnp.float32)
    ret = config.lr * u + config.gamma * jax.random.normal(rng, u.shape)
    ret = jnp.where(u % 3 == 0, jnp.nan, ret)   # updates where no episode ended
    return Result(train_state={"w": config.lr * 2.0},
                  metrics={"episode_return": ret, "env_steps": (u + 1) * 10.0})


# ----------------------------------------------------------------------------- spaces

def test_grid_sample_product():
    g = sweep.grid(lr=[1e-3, 1e-4], gamma=[0.9, 0.99, 0.999])
    assert len(g) == 6 and g[1] == {"lr": 1e-3, "gamma": 0.99}
    s = sweep.sample(jax.random.key(0), 50, lr=sweep.log_uniform(1e-5, 1e-2),
                     clip_eps=sweep.uniform(0.1, 0.3), ent_coef=sweep.choice([0.0, 0.01]))
    assert s == sweep.sample(jax.random.key(0), 50, lr=sweep.log_uniform(1e-5, 1e-2),
                             clip_eps=sweep.uniform(0.1, 0.3), ent_coef=sweep.choice([0.0, 0.01]))
    lrs = np.array([p["lr"] for p in s])
    assert (lrs >= 1e-5).all() and (lrs < 1e-2).all() and lrs.min() < 1e-4 < lrs.max()
    assert {p["ent_coef"] for p in s} == {0.0, 0.01}
    assert all(0.1 <= p["clip_eps"] < 0.3 for p in s)
    assert len(sweep.product(sweep.grid(gamma=[0.9, 0.99]), s[:3])) == 6


def test_static_field_in_space_fails_at_once_naming_it():
    with pytest.raises(StaticFieldError, match=r"num_envs is a static field: it changes shapes"):
        sweep.run(ppo.train, TINY, sweep.grid(lr=[1e-3], num_envs=[4, 8]))
    with pytest.raises(StaticFieldError, match="hidden_sizes"):
        sweep.population(TINY, sweep.sample(jax.random.key(0), 2,
                                            hidden_sizes=sweep.choice([(8,), (16,)])))
    with pytest.raises(ValueError, match=r"unknown field 'learning_rate'"):
        sweep.run(ppo.train, TINY, sweep.grid(learning_rate=[1e-3]))
    with pytest.raises(ValueError, match="is traced"):
        sweep.run_static(ppo.train, TINY, static={"lr": [1e-3]})


def test_population_layout():
    pop = sweep.population(FakeConfig(), sweep.grid(lr=[0.1, 0.2, 0.3]), seeds=[5, 7])
    assert pop.size == 6 and pop.configs.lr.shape == (6,) and pop.configs.gamma.shape == (6,)
    assert [m["seed"] for m in pop.members] == [5, 7] * 3
    np.testing.assert_allclose(pop.configs.lr, [0.1, 0.1, 0.2, 0.2, 0.3, 0.3], rtol=1e-6)
    assert pop.configs.num_updates == 6          # static stays a Python value
    np.testing.assert_array_equal(jax.random.key_data(pop.keys[1]),
                                  jax.random.key_data(jax.random.key(7)))


# ----------------------------------------------------------------------------- runs (fake)

def test_chunks_pad_reuse_one_compile_and_write_csv(tmp_path):
    TRACES["n"] = 0
    path = tmp_path / "chunks.csv"
    res = sweep.run(fake_train, FakeConfig(), sweep.grid(lr=[0.1, 0.2, 0.3]), seeds=3,
                    chunk_size=4, devices=jax.devices()[:1], csv_path=path)
    assert TRACES["n"] == 1, "every chunk (the last one padded) must reuse one compiled program"
    assert res.ok and res.completed == 9 and res.metrics["episode_return"].shape == (9, 6)
    # each member equals its own single run
    for i, m in enumerate(res.members):
        single = fake_train(config_lib.replace(FakeConfig(), lr=m["lr"]), jax.random.key(m["seed"]))
        np.testing.assert_allclose(res.metrics["episode_return"][i], single.metrics["episode_return"],
                                   rtol=1e-5, atol=1e-6)
        expected_final = final_return(np.asarray(single.metrics["episode_return"]))
        np.testing.assert_allclose(res.final_return[i], expected_final, rtol=1e-5, atol=1e-6)
    rows = list(csv.DictReader(open(path)))
    assert len(rows) == 9 and set(rows[0]) >= {"member", "seed", "lr", "final_return", "mean_return"}


def test_ranking_averages_over_seeds():
    res = sweep.run(fake_train, FakeConfig(), sweep.grid(lr=[0.0, 5.0, 1.0]), seeds=4,
                    devices=jax.devices()[:1],)
    ranked = res.rank("final_return")
    assert [r["lr"] for r in ranked] == [5.0, 1.0, 0.0]
    best = [i for i, m in enumerate(res.members) if m["lr"] == 5.0]
    np.testing.assert_allclose(ranked[0]["final_return"], np.mean(res.final_return[best]), rtol=1e-6)
    assert ranked[0]["seeds"] == [0, 1, 2, 3]


def test_failed_chunk_keeps_finished_ones(monkeypatch, tmp_path):
    calls = {"n": 0}
    real = sweep._execute

    def flaky(fn, configs, keys):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("RESOURCE_EXHAUSTED: out of memory (simulated)")
        return real(fn, configs, keys)

    monkeypatch.setattr(sweep, "_execute", flaky)
    path = tmp_path / "partial.csv"
    res = sweep.run(fake_train, FakeConfig(), sweep.grid(lr=[0.1, 0.2, 0.3, 0.4, 0.5]), seeds=1,
                    chunk_size=2, devices=jax.devices()[:1], csv_path=path)
    assert not res.ok and "out of memory" in str(res.error)
    assert res.completed == 4 and res.metrics["episode_return"].shape == (4, 6)
    assert len(res.rows()) == 4 and len(list(csv.DictReader(open(path)))) == 4


def test_run_static_compiles_once_per_value():
    TRACES["n"] = 0
    res = sweep.run_static(fake_train, FakeConfig(), static={"num_updates": [4, 6]},
                           space=sweep.grid(lr=[0.1, 0.2]), seeds=2, devices=jax.devices()[:1])
    assert TRACES["n"] == 2 and res.error is None
    assert [r.metrics["episode_return"].shape for r in res.runs] == [(4, 4), (4, 6)]
    rows = res.rows()
    assert len(rows) == 8 and {r["num_updates"] for r in rows} == {4, 6}
    assert len(res.rank()) == 4


def test_sharded_fake_population_pads_to_device_count():
    n_dev = len(jax.devices())
    assert n_dev == 4, "conftest forces 4 host devices"
    res = sweep.run(fake_train, FakeConfig(), sweep.grid(lr=[0.1, 0.2, 0.3]), seeds=[0, 1, 2])
    ref = sweep.run(fake_train, FakeConfig(), sweep.grid(lr=[0.1, 0.2, 0.3]), seeds=[0, 1, 2],
                    devices=jax.devices()[:1])
    assert res.completed == 9
    np.testing.assert_allclose(res.metrics["episode_return"], ref.metrics["episode_return"], rtol=1e-6)


# ----------------------------------------------------------------------------- PPO

@pytest.fixture(scope="module")
def ppo_sweeps():
    """The same 3 x 2 PPO sweep sharded over 4 devices (chunks of 4, last padded)
    and on one device in one call."""
    space = sweep.grid(lr=[3e-3, 1e-3, 3e-4])
    traced = chex.assert_max_traces(ppo.train, n=1)
    sharded = sweep.run(traced, TINY, space, seeds=2, chunk_size=4, keep_state=True)
    single_device = sweep.run(ppo.train, TINY, space, seeds=2, devices=jax.devices()[:1],
                              keep_state=True)
    return sharded, single_device


def test_ppo_sweep_member_equals_single_run(ppo_sweeps):
    sharded, _ = ppo_sweeps
    assert sharded.ok and sharded.completed == 6
    i = 3                                  # lr=1e-3, seed 1
    m = sharded.members[i]
    assert (m["lr"], m["seed"]) == (1e-3, 1)
    single = jax.jit(ppo.train)(config_lib.replace(TINY, lr=1e-3), jax.random.key(1))
    for name in ("loss", "episode_return", "env_steps"):
        np.testing.assert_allclose(sharded.metrics[name][i], single.metrics[name],
                                   rtol=1e-4, atol=1e-5, err_msg=name)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a[i], b, rtol=1e-4, atol=1e-5),
                 sharded.train_state.params, single.train_state.params)


def test_ppo_population_sharded_over_4_devices_equals_unsharded(ppo_sweeps):
    sharded, single_device = ppo_sweeps
    for name in sharded.metrics:
        np.testing.assert_allclose(sharded.metrics[name], single_device.metrics[name],
                                   rtol=1e-4, atol=1e-5, err_msg=name)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
                 sharded.train_state.params, single_device.train_state.params)
    assert all(math.isfinite(r["final_return"]) or math.isnan(r["final_return"])
               for r in sharded.rows())
