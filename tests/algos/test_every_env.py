"""Every env id `rljax list` prints trains, or is refused up front with one line.

Cost is bounded: every env runs one update of ONE cheap algorithm (A2C, tiny sizes;
one compile per env), and every registered algorithm runs one update on one env of
each observation kind (flat vector, matrix, image, scalar). All algorithms x all
envs would be ~7 x 24 compiles, minutes of CI on two cores for no extra coverage:
the only env-dependent code path is the torso's input (`common.torso_kwargs`), and
it depends on the observation rank alone.
"""
import jax
import numpy as np
import pytest

from rljax import algos, envs
from rljax.algos import common
from rljax.cli import configs as cli_configs

from tests.algos.test_contract import TINY

# one env per observation kind: [F], [R, C], [H, W, C] image, [] scalar; and a Box action space
KINDS = ["CartPole-v1", "Catch-bsuite", "Breakout-MinAtar", "FrozenLake-misc", "Pendulum-v1"]

# The optional suites' envs (Brax, xminigrid, Craftax) each go through one adapter
# (rljax.envs.brax_envs, ...) and compile for tens of seconds on CPU: one env per suite
# stands for all (the others are listed by `rljax list` when the extra is installed and
# differ only in their dynamics); tests/test_env_extras.py tests xminigrid and Craftax.
SUITE_STAND_INS = {"brax/": "brax/inverted_pendulum", "xminigrid/": "xminigrid/MiniGrid-MemoryS8",
                   "craftax/": "craftax/Craftax-Classic-Symbolic-v1"}
ENV_IDS = [e for e in envs.list_envs()
           if all(not e.startswith(prefix) or e == one for prefix, one in SUITE_STAND_INS.items())]


def _one_update(name, env_id, **changes):
    """`None` after one finite update, or the one-line refusal message."""
    algo = algos.get(name)
    try:
        config = algo.Config(**{**TINY[name], "env_id": env_id, **changes})
    except ValueError as e:
        message = str(e)
        assert "\n" not in message.strip(), message
        return message
    loop = algo.loop(config)
    state, metrics = jax.jit(loop.run, static_argnums=1)(jax.jit(loop.init)(jax.random.key(0)), 1)
    for leaf in jax.tree.leaves(state.train_state.params):
        assert np.all(np.isfinite(np.asarray(leaf))), (name, env_id)
    assert float(metrics["env_steps"][0]) == loop.steps_per_update
    return None


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_every_listed_env_trains_one_update_or_is_refused_in_one_line(env_id):
    refused = _one_update("a2c", env_id)
    if refused is not None:
        # only envs that need a download may be refused, and the message must say so
        assert "download" in refused, refused


@pytest.mark.parametrize("env_id", KINDS)
@pytest.mark.parametrize("name", list(algos.REGISTRY))
def test_every_algorithm_trains_on_every_observation_kind(name, env_id):
    refused = _one_update(name, env_id)
    box = env_id == "Pendulum-v1"
    if name == "sac":                      # SAC needs a Box action space
        assert (refused is None) == box and (box or "Box action space" in refused), refused
    elif name in ("dqn", "drqn", "pqn"):   # Q-learning needs discrete actions
        assert (refused is None) != box and (not box or "discrete actions" in refused), refused
    else:
        assert refused is None, refused


def test_env_constructor_arguments_and_params_from_the_config():
    config = algos.get("a2c").Config(env_id="DeepSea-bsuite", env_kwargs=("size=12",))
    env, env_params, spec = common.make_env(config)
    assert spec.obs_shape == (12, 12)
    config = algos.get("dqn").Config(env_id="MemoryChain-bsuite",
                                     env_params=("memory_length=20",))
    assert common.make_env(config)[1].memory_length == 20
    config = algos.get("ppo").Config(env_id="CartPole-v1", obs_indices=(0, 1, 2))
    assert common.make_env(config)[2].obs_shape == (3,)
    hash(config)                                   # static fields stay hashable
    assert common.assignments(("a=1", "b=[1, 2]", "c=false", "d=x")) == dict(
        a=1, b=[1, 2], c=False, d="x")


def test_env_arguments_from_set_and_their_errors():
    algo = algos.get("a2c")
    config = cli_configs.make_config(algo, cli_configs.parse_sets(
        ["env_id=DeepSea-bsuite", "env_kwargs=[size=6]"]))
    assert config.env_kwargs == ("size=6",) and common.make_env(config)[2].obs_shape == (6, 6)
    config = cli_configs.make_config(algo, cli_configs.parse_sets(
        ["env_id=MemoryChain-bsuite", "env_params=memory_length=7"]))
    assert common.make_env(config)[1].memory_length == 7
    with pytest.raises(ValueError, match="env_kwargs"):
        algo.Config(env_kwargs=("no assignment",))
    with pytest.raises(ValueError, match="constructor arguments"):
        algo.Config(env_id="DeepSea-bsuite", env_kwargs=("sise=12",))
    with pytest.raises(ValueError, match="no env params"):
        algo.Config(env_id="MemoryChain-bsuite", env_params=("memory=3",))
