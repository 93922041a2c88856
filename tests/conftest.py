import os
import tempfile

# Tests run on CPU; 4 forced host devices let the sharding tests run on one machine.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# One compilation cache for the whole test session (shared by xdist workers and the
# subprocesses the CLI tests start): identical programs compile once.
_cache = os.environ.setdefault(
    "RLJAX_TEST_COMPILATION_CACHE", os.path.join(tempfile.gettempdir(), "rljax-test-jax-cache"))
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _cache)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")
