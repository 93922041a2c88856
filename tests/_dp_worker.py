"""One process of the two-process data-parallel test (run by tests/test_devices.py).

Env: RLJAX_COORDINATOR_ADDRESS, RLJAX_NUM_PROCESSES, RLJAX_PROCESS_ID; argv[1]: output .npz.
"""
import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402
import numpy as np  # noqa: E402

from rljax import sweep  # noqa: E402

# before importing rljax.algos / rljax.envs: gymnax touches the XLA backend at import
index = sweep.initialize_distributed(timeout_s=120)

from rljax.algos import ppo  # noqa: E402
from tests.test_devices import DP_CONFIG  # noqa: E402
assert jax.process_count() == 2 and len(jax.devices()) == 4 and len(jax.local_devices()) == 2
result = sweep.data_parallel(ppo, DP_CONFIG, jax.random.key(0), env_groups=4)
params = jax.tree.leaves(result.train_state.params)
# every local device holds the same params
for leaf in params:
    shards = [np.asarray(s.data) for s in leaf.addressable_shards]
    assert all(np.array_equal(shards[0], s) for s in shards[1:])
local = sweep.local_value(result)
np.savez(sys.argv[1], *jax.tree.leaves(local.train_state.params), loss=local.metrics["loss"])
print("process", index, "done", flush=True)
