"""Devices: data-parallel PPO, A2C and REINFORCE (shard_map, Anakin layout, from
rljax.parallel) and two processes joined by jax.distributed. (Population sharding is in
tests/test_sweep.py.)"""
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from rljax import parallel, sweep
from rljax.algos import a2c, dqn, ppo, reinforce

pytestmark = pytest.mark.timeout(420, method="thread")   # a hang fails loudly

# num_minibatches=1: the loss is a mean over the whole batch, so the order of
# transitions (which device holds which) changes only float summation order.
DP_CONFIG = ppo.Config(total_steps=512, num_envs=8, num_steps=16, hidden_sizes=(8,),
                       num_epochs=2, num_minibatches=1, scan_unroll=1)
DP_CONFIGS = {
    "ppo": (ppo, DP_CONFIG),
    "a2c": (a2c, a2c.Config(total_steps=512, num_envs=8, num_steps=16, hidden_sizes=(8,))),
    "reinforce": (reinforce, reinforce.Config(total_steps=512, num_envs=8, num_steps=16,
                                              hidden_sizes=(8,), behaviour_lag=1)),
}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _leaves(result):
    return [np.asarray(x) for x in jax.tree.leaves(sweep.local_value(result.train_state.params))]


def _assert_in_sync(result):
    """Every device holds the same params (checked on the per-device buffers)."""
    for leaf in jax.tree.leaves(result.train_state.params):
        shards = [np.asarray(s.data) for s in leaf.addressable_shards]
        for s in shards[1:]:
            np.testing.assert_array_equal(shards[0], s)


@pytest.fixture(scope="module", params=list(DP_CONFIGS))
def dp_results(request):
    algo, config = DP_CONFIGS[request.param]
    key = jax.random.key(0)
    return {d: parallel.data_parallel(algo, config, key, devices=jax.devices()[:d], env_groups=4)
            for d in (1, 2, 4)}


@pytest.mark.parametrize("name", list(DP_CONFIGS))
def test_one_group_on_one_device_is_the_plain_run(name):
    algo, config = DP_CONFIGS[name]
    key = jax.random.key(3)
    dp = parallel.data_parallel(algo, config, key, devices=jax.devices()[:1], env_groups=1)
    plain = jax.jit(algo.train)(config, key)
    np.testing.assert_allclose(dp.metrics["loss"], plain.metrics["loss"], rtol=1e-5, atol=1e-6)
    for a, b in zip(_leaves(dp), jax.tree.leaves(plain.train_state.params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("devices", [2, 4])
def test_data_parallel_equals_single_device(dp_results, devices):
    """Same 8 envs in 4 key groups: on 1 device (groups vmapped) or split over 2 / 4
    (PPO, A2C and REINFORCE: the fixture is parametrized over them)."""
    ref, got = dp_results[1], dp_results[devices]
    _assert_in_sync(got)
    leaf = jax.tree.leaves(got.train_state.params)[0]
    assert len(leaf.addressable_shards) == devices
    for name in ("loss", "episode_return", "episodes", "env_steps", "grad_norm", "entropy"):
        if name in ref.metrics:
            np.testing.assert_allclose(np.asarray(got.metrics[name]), np.asarray(ref.metrics[name]),
                                       rtol=1e-4, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(np.asarray(got.metrics["env_steps"])[-1], 512)
    for a, b in zip(_leaves(got), _leaves(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_data_parallel_rejects_bad_layouts():
    with pytest.raises(ValueError, match="multiple of the device count"):
        parallel.data_parallel(ppo, DP_CONFIG, jax.random.key(0), devices=jax.devices()[:4],
                               env_groups=2)
    with pytest.raises(ValueError, match="must divide by env_groups"):
        parallel.data_parallel(ppo, DP_CONFIG, jax.random.key(0), devices=jax.devices()[:1],
                               env_groups=3)
    with pytest.raises(ValueError, match="on-policy"):
        parallel.data_parallel(dqn, dqn.Config(), jax.random.key(0), devices=jax.devices()[:2])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("dp_results", ["ppo"], indirect=True)   # the worker trains PPO
def test_two_processes_train_one_agent_and_agree(dp_results, tmp_path):
    port = _free_port()
    procs, outs = [], []
    for pid in range(2):
        out = tmp_path / f"p{pid}.npz"
        env = {**os.environ, "PYTHONPATH": ROOT, "RLJAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
               "RLJAX_NUM_PROCESSES": "2", "RLJAX_PROCESS_ID": str(pid)}
        procs.append(subprocess.Popen([sys.executable, "-m", "tests._dp_worker", str(out)], cwd=ROOT,
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        outs.append(out)
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=300)[0].decode())
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    a, b = (np.load(o) for o in outs)
    assert a.files == b.files
    for name in a.files:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    # 2 processes x 2 devices, 4 groups == one process over 4 devices
    ref = _leaves(dp_results[4])
    for i, leaf in enumerate(ref):
        np.testing.assert_allclose(a[f"arr_{i}"], leaf, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a["loss"], np.asarray(dp_results[4].metrics["loss"]), rtol=1e-4, atol=1e-5)


def test_initialize_distributed_single_process_is_a_no_op(monkeypatch):
    for name in ("RLJAX_COORDINATOR_ADDRESS", "RLJAX_NUM_PROCESSES", "RLJAX_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    assert sweep.initialize_distributed() == 0
    assert sweep.initialize_distributed(num_processes=1) == 0
    with pytest.raises(ValueError, match="coordinator_address"):
        sweep.initialize_distributed(num_processes=2)


# ----------------------------------------------------------------------------- seeds over devices

SEED_CONFIG = ppo.Config(total_steps=2048, num_envs=4, num_steps=16, hidden_sizes=(8,))


def test_seed_mesh_takes_the_most_devices_that_split_the_seeds():
    assert parallel.seed_mesh(8).size == 4            # conftest: 4 forced CPU devices
    assert parallel.seed_mesh(6).size == 3
    assert parallel.seed_mesh(2).size == 2
    assert parallel.seed_mesh(7).size == 1


def test_seeds_split_over_devices_equal_one_device(seeds=8):
    """over_seeds runs each seed's own program: the same results as jit(vmap) on one
    device (to float order), every seed on the device the mesh gives it."""
    keys = jax.random.split(jax.random.key(3), seeds)
    train = lambda k: ppo.train(SEED_CONFIG, k)
    mesh = parallel.seed_mesh(seeds)
    split = parallel.over_seeds(train, mesh)(parallel.put_seeds(keys, mesh))
    one = jax.jit(jax.vmap(train))(keys)
    leaf = jax.tree.leaves(split.train_state.params)[0]
    assert len(leaf.sharding.device_set) == 4
    for name in ("episode_return", "loss", "env_steps"):
        np.testing.assert_allclose(split.metrics[name], one.metrics[name], rtol=1e-5, atol=1e-6,
                                   err_msg=name)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 split.train_state.params, one.train_state.params)


def _python(code: str, env=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in {**os.environ, **(env or {})}.items()
           if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES") or (env and k in env)}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_use_cpu_cores_before_and_after_the_backend_starts():
    done = _python("from rljax import parallel; print(parallel.use_cpu_cores(3)); "
                   "import jax; print(jax.device_count())")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3", "3"]
    kept = _python("from rljax import parallel; print(parallel.use_cpu_cores(3))",
                   env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    assert kept.stdout.split() == ["2"], kept.stderr      # the user's count wins
    late = _python("import jax, jax.numpy as jnp; jnp.zeros(1); from rljax import parallel; "
                   "print(parallel.use_cpu_cores()); parallel.use_cpu_cores(3)")
    assert late.stdout.split() == ["1"]                 # no count asked: what is in effect
    if len(os.sched_getaffinity(0)) > 1:                # and a warning that it came too late
        assert "UserWarning: use_cpu_cores() came after JAX started" in late.stderr
    assert "RuntimeError: use_cpu_cores(3) came after JAX started its backend with 1" in late.stderr
