import os

# Tests run on CPU; 4 forced host devices let the sharding tests run on one machine.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
