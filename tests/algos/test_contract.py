"""The algorithm contract, for every registered algorithm (rljax.algos.REGISTRY).

Each must: split into pieces bit for bit (run(n) then run(m) == run(n + m)), vmap over
seeds (== single runs), reproduce a sweep member as the train run of the same seed,
checkpoint and resume from the command exactly (replay buffers included), and be
evaluated from its run folder by `rljax eval`.
"""
import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from rljax import algos, config as config_lib, sweep
from rljax.cli import rundir

ROOT = Path(__file__).resolve().parents[2]

# Tiny sizes: 6 updates each, seconds to compile.
TINY = {
    "ppo": dict(num_envs=4, num_steps=16, total_steps=4 * 16 * 6, hidden_sizes=(8,),
                num_minibatches=2, num_epochs=2),
    "a2c": dict(num_envs=4, num_steps=16, total_steps=4 * 16 * 6, hidden_sizes=(8,)),
    "reinforce": dict(num_envs=4, num_steps=16, total_steps=4 * 16 * 6, hidden_sizes=(8,),
                      behaviour_lag=1),
    "dqn": dict(num_envs=2, train_every=4, log_every=40, total_steps=240, buffer_size=100,
                batch_size=8, learning_starts=40, target_update_every=40, hidden_sizes=(8,)),
    "drqn": dict(num_envs=2, train_every=4, log_every=40, total_steps=240, buffer_size=100,
                 batch_size=8, learning_starts=40, target_update_every=40, hidden_sizes=(8,),
                 core_size=8, head_sizes=(8,), burn_in=2, unroll_length=4, period=3),
    "pqn": dict(num_envs=4, num_steps=16, total_steps=4 * 16 * 6, hidden_sizes=(8,),
                num_minibatches=2, num_epochs=2),
    "impala": dict(num_envs=4, num_steps=16, total_steps=4 * 16 * 6, hidden_sizes=(8,),
                   behaviour_lag=2),
    "sac": dict(num_envs=2, train_every=4, log_every=40, total_steps=240, buffer_size=100,
                batch_size=8, learning_starts=40, utd_ratio=2, hidden_sizes=(8,)),
}
NAMES = list(algos.REGISTRY)


def test_every_registered_algorithm_has_tiny_sizes_here():
    assert set(TINY) == set(algos.REGISTRY), "add the new algorithm's tiny config to TINY"


def _config(name):
    return algos.get(name).Config(**TINY[name])


def _assert_trees_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("name", NAMES)
def test_pieces_equal_the_whole_run_bit_for_bit(name):
    loop = algos.get(name).loop(_config(name))
    assert loop.num_updates == 6 and loop.steps_per_update > 0
    run = jax.jit(loop.run, static_argnums=1)
    state0 = jax.jit(loop.init)(jax.random.key(0))
    whole_state, whole = run(state0, 6)
    state, first = run(state0, 2)
    state, rest = run(state, 4)
    _assert_trees_equal(state, whole_state)      # params, optimizer, buffer, envs, key
    for k in whole:
        np.testing.assert_array_equal(np.concatenate([first[k], rest[k]]), whole[k], err_msg=k)
    np.testing.assert_array_equal(state.update, 6)
    np.testing.assert_allclose(whole["env_steps"], loop.steps_per_update * np.arange(1, 7))


@pytest.mark.parametrize("name", NAMES)
def test_vmapped_seeds_and_a_sweep_member_equal_single_runs(name):
    algo, config = algos.get(name), _config(name)
    train = jax.jit(algo.train)
    singles = [train(config, jax.random.key(s)) for s in (0, 1)]
    both = jax.jit(jax.vmap(algo.train, in_axes=(None, 0)))(config, algos.seed_keys(2))
    for s, single in enumerate(singles):
        for k in single.metrics:
            np.testing.assert_allclose(both.metrics[k][s], single.metrics[k], rtol=1e-5, atol=1e-6,
                                       err_msg=k)
    # a sweep member (point lr, seed 1) is the train run of seed 1 with that lr
    lr = float(config.lr) * 2
    result = sweep.run(algo.train, config, sweep.grid(lr=[lr]), seeds=[1], devices=jax.devices()[:1])
    member = train(config_lib.replace(config, lr=lr), jax.random.key(1))
    assert result.members[0]["seed"] == 1
    np.testing.assert_allclose(result.metrics["episode_return"][0], member.metrics["episode_return"],
                               rtol=1e-5, atol=1e-6)


def test_int_seed_gets_a_clear_error():
    with pytest.raises(TypeError, match=r"jax.random.key\(seed\)"):
        algos.get("a2c").train(_config("a2c"), 0)


# --------------------------------------------------------------------------- the command

def _rljax(*args, cache):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(cache), "COLUMNS": "100"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    return subprocess.run([sys.executable, "-m", "rljax", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300, cwd=cache)


def _sets(name):
    return [arg for k, v in TINY[name].items()
            for arg in ("--set", f"{k}={list(v) if isinstance(v, tuple) else v}")]


@pytest.mark.parametrize("name", [n for n in NAMES if n != "a2c"])   # a2c: tests/cli/test_cli.py
def test_command_resume_and_eval(name, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    run_dir = cache / "run"
    proc = _rljax("train", name, "--seeds", "2", *_sets(name), "--checkpoint-every", "2",
                  "--quiet", "--out", run_dir, cache=cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert rundir.latest_checkpoint(run_dir) == 6
    # killed after the checkpoint of update 4: its outputs and checkpoint 6 never written
    cut = cache / "cut"
    shutil.copytree(run_dir, cut)
    shutil.rmtree(cut / "params")
    shutil.rmtree(cut / "checkpoints" / "6")
    for file in ("metrics.csv", "learning_curve.png", "summary.txt"):
        (cut / file).unlink()
    (cut / "checkpoints" / "latest").write_text("4\n")
    resumed = _rljax("train", "--resume", cut, "--quiet", cache=cache)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (cut / "metrics.csv").read_text() == (run_dir / "metrics.csv").read_text()
    _assert_trees_equal(rundir.load_params(run_dir), rundir.load_params(cut))
    ev = _rljax("eval", cut, "--episodes", "2", cache=cache)
    assert ev.returncode == 0, ev.stderr[-3000:]
    assert "greedy" in ev.stdout and "all" in ev.stdout


# --------------------------------------------------------------------------- configs

def _bad_values(name):
    """One bad value per kind of field: a size, a choice, a probability, a type."""
    common = [("env_id", "CartPol-v1", "CartPole-v1"), ("history", 0, "history"),
              ("max_episode_steps", 0, "max_episode_steps"), ("gamma", -0.5, "gamma"),
              ("activation", "sigmoid", "activation"), ("lr", float("nan"), "lr")]
    onpolicy = [("num_envs", 0, "num_envs"), ("num_envs", 2.5, "num_envs"),
                ("num_steps", -3, "num_steps"), ("hidden_sizes", (0,), "hidden_sizes"),
                ("core", "transformer", "core"), ("max_grad_norm", 0.0, "max_grad_norm")]
    own = {
        "ppo": [("num_epochs", 0, "num_epochs"), ("gae_lambda", 1.5, "gae_lambda"),
                ("num_minibatches", 3, "num_minibatches")],
        "a2c": [("advantage", "bogus", "advantage"), ("n_step", 0, "n_step")],
        "reinforce": [("behaviour_lag", -1, "behaviour_lag"), ("c_bar", 0.0, "c_bar")],
        "dqn": [("loss", "bogus", "loss"), ("n_step", 0, "n_step"), ("eps_end", 2.0, "eps_end"),
                ("train_every", 3, "train_every"), ("batch_size", 0, "batch_size")],
        "drqn": [("initial_carry", "bogus", "initial_carry"), ("burn_in", -1, "burn_in"),
                 ("core", "transformer", "core")],
        "pqn": [("num_epochs", 0, "num_epochs"), ("q_lambda", 1.5, "q_lambda"),
                ("num_minibatches", 3, "num_minibatches"), ("eps_end", 2.0, "eps_end"),
                ("core", "transformer", "core"), ("num_envs", 0, "num_envs")],
        "impala": [("behaviour_lag", -1, "behaviour_lag"), ("rho_bar", 0.0, "rho_bar"),
                   ("c_bar", -1.0, "c_bar"), ("vtrace_lambda", 2.0, "vtrace_lambda")],
        "sac": [("tau", 1.5, "tau"), ("utd_ratio", 0, "utd_ratio"), ("batch_size", 0, "batch_size"),
                ("train_every", 3, "train_every"), ("env_id", "CartPole-v1", "Box action space"),
                ("init_alpha", 0.0, "init_alpha")],
    }[name]
    return common + (onpolicy if name in ("ppo", "a2c", "reinforce", "impala") else []) + own


@pytest.mark.parametrize("name", NAMES)
def test_configs_reject_bad_values_naming_the_field(name):
    cls = algos.get(name).Config
    for field, value, message in _bad_values(name):
        with pytest.raises(ValueError, match=message):
            cls(**{field: value})


@pytest.mark.parametrize("name", NAMES)
def test_every_field_documented_and_float_fields_traced(name):
    cls = algos.get(name).Config
    for f in dataclasses.fields(cls):
        assert config_lib.field_doc(cls, f.name), f"{name}.Config.{f.name} has no doc line"
        traced = not config_lib.is_static(cls, f.name)
        assert traced == (config_lib.type_name(f) == "float"), f.name


@pytest.mark.parametrize("name", NAMES)
def test_presets_build(name):
    algo = algos.get(name)
    for preset, (doc, changes) in algo.PRESETS.items():
        config = config_lib.from_preset(algo.Config, algo.PRESETS, preset)
        assert doc and all(getattr(config, k) == v for k, v in changes.items())
