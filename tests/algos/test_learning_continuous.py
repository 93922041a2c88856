"""Small continuous-control learning tests with return thresholds (seed 0, CPU).

Pendulum-v1 returns run from about -1500 (random) to about -150 (solved). Thresholds
sit well below what these runs reach (benchmarks/continuous.md has the full runs), so
they catch a broken algorithm, not noise.
"""
import jax

from rljax.algos import ppo, sac
from rljax.metrics import final_return as _final_return


def final_return(result):
    return float(_final_return(result.metrics["episode_return"]))


def test_gaussian_ppo_learns_pendulum_short():
    config = ppo.preset("pendulum", total_steps=65_536 * 4)     # a quarter of the preset's run
    result = jax.jit(ppo.train)(config, jax.random.key(0))
    assert final_return(result) >= -500      # seed 0 reached -150 (27 s on 2 busy cores)


def test_sac_learns_pendulum_short():
    config = sac.Config(env_id="Pendulum-v1", total_steps=10_000, learning_starts=1_000,
                        hidden_sizes=(64, 64), log_every=1_000)
    result = jax.jit(sac.train)(config, jax.random.key(0))
    assert final_return(result) >= -500      # seed 0 reached -169 (33 s on 2 busy cores)
