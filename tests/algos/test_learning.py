"""Small end-to-end learning tests with return thresholds (seed 0, CPU).

Each trains a full configuration in one compiled program (tens of seconds on 2
cores). Thresholds sit below what the runs reach (see benchmarks/onpolicy_learning.md)
so they catch a broken algorithm, not noise.
"""
import jax
import pytest

from rljax.algos import a2c, ppo, reinforce
from rljax.metrics import final_return as _final_return


def final_return(result):
    return float(_final_return(result.metrics["episode_return"]))


def test_ppo_learns_cartpole():
    result = jax.jit(ppo.train)(ppo.Config(), jax.random.key(0))
    assert final_return(result) >= 450


@pytest.mark.slow
def test_a2c_salina_config_reaches_the_time_limit():
    result = jax.jit(a2c.train)(a2c.preset("salina"), jax.random.key(0))
    assert final_return(result) >= 90   # CartPole limited to 100 steps


@pytest.mark.slow
def test_reinforce_rlplay_config_learns():
    result = jax.jit(reinforce.train)(reinforce.preset("rlplay"), jax.random.key(0))
    assert final_return(result) >= 300


@pytest.mark.slow
def test_recurrent_ppo_learns_masked_cartpole_short():
    config = ppo.recurrent_config(env_id="CartPole-P-v1", total_steps=200_000)
    result = jax.jit(ppo.train)(config, jax.random.key(0))
    assert final_return(result) >= 100   # well above random (~22); full run in benchmarks/
