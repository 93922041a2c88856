"""rljax.profiling: every part of an update is timed, shares and ceilings are consistent."""
import pytest

from rljax import profiling
from rljax.algos import dqn, ppo


def _check(parts, names):
    assert list(parts["shares"]) == names
    assert all(v > 0 for v in parts["seconds"].values())
    # the parts' sum takes longer than acting alone (by construction; no timing compared)
    assert parts["parts_ceiling_steps_per_s"] < parts["rollout_steps_per_s"]
    text = profiling.report(parts)
    for name in names:
        assert name in text


def test_ppo_parts_feedforward_and_recurrent():
    small = dict(total_steps=4096, num_envs=4, num_steps=16, hidden_sizes=(16,))
    ff = profiling.ppo_parts(ppo.Config(**small), repeats=10)
    _check(ff, ["rollout", "advantages", "minibatch gradients", "optimizer"])
    assert ff["ceiling_steps_per_s"] > 0 and "compute ceiling" in profiling.report(ff)
    rec = profiling.ppo_parts(ppo.Config(**small, core="gru", core_size=8), repeats=10)
    _check(rec, ["rollout", "advantages", "minibatch gradients", "optimizer"])
    assert rec["ceiling_steps_per_s"] > 0 and "compute ceiling" in profiling.report(rec)
    assert rec["chain_ceiling_steps_per_s"] > 0 and "matvec chain" in profiling.report(rec)
    assert ff["chain_ceiling_steps_per_s"] is None


def test_dense_kernels_leave_out_the_recurrence():
    import jax
    config = ppo.Config(num_envs=4, num_steps=16, hidden_sizes=(16,), core="gru", core_size=8)
    params = jax.jit(ppo.loop(config).init)(jax.random.key(0)).train_state.params
    kernels = profiling._kernels(params, recurrent=False)
    assert (16, 24) in kernels and (8, 24) not in kernels      # GRU input projection, not w_h
    assert (4, 16) in kernels                                   # CartPole's 4 inputs
    assert set(profiling._kernels(params, recurrent=True)) == {(8, 24)}   # a GRU per trunk
    assert profiling.dense_flop_rate(32, kernels, 5, chain=False) > 0
    assert profiling.matvec_chain_seconds(1, (8, 24), steps=4) > 0


def test_dqn_parts():
    config = dqn.Config(total_steps=4000, learning_starts=1000, log_every=500, buffer_size=2000,
                        batch_size=32, hidden_sizes=(16,))
    parts = profiling.dqn_parts(config, repeats=20)
    _check(parts, ["act", "replay add", "replay sample", "gradient", "optimizer"])
    assert parts["flops_per_step"] > 0


@pytest.mark.parametrize("which", ["nope"])
def test_bench_parts_rejects_unknown(which, capsys):
    from rljax import bench
    with pytest.raises(SystemExit) as e:
        bench.main(["--parts", which])
    assert e.value.code == 2
