"""The CNN torso: MinAtar shapes, default by observation rank, recurrent masked reset."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax import algos, envs, nets
from rljax.algos import common

MINATAR = ["Asterix-MinAtar", "Breakout-MinAtar", "Freeway-MinAtar", "Seaquest-MinAtar",
           "SpaceInvaders-MinAtar"]


@pytest.mark.parametrize("env_id", MINATAR)
def test_shapes_for_minatar_observations(env_id):
    env, params = envs.make(env_id)
    spec = envs.spec(env, params)
    assert len(spec.obs_shape) == 3 and spec.obs_shape[:2] == (10, 10)
    obs = jnp.zeros((5, 3, *spec.obs_shape))          # [T, B, H, W, C]
    cnn = nets.CNN((16,))
    out = jax.eval_shape(lambda: cnn.init_with_output(jax.random.key(0), obs)[0])
    assert out.shape == (5, 3, 8 * 8 * 16)            # 3x3 VALID: 10 -> 8
    net = nets.QNetwork(spec.num_actions, nets.Trunk(
        hidden_sizes=(32,), **common.torso_kwargs(algos.get("pqn").Config(env_id=env_id), spec)))
    q = jax.eval_shape(lambda: net.init_with_output(
        jax.random.key(0), (), obs, jnp.zeros((5, 3), bool))[0][1])
    assert q.shape == (5, 3, spec.num_actions)


def test_torso_defaults_by_observation_rank_and_is_checked():
    ppo = algos.get("ppo")
    for env_id, torso in [("Breakout-MinAtar", "cnn"), ("CartPole-v1", "mlp"),
                          ("Catch-bsuite", "mlp")]:
        config = ppo.Config(env_id=env_id)
        assert common.torso_kwargs(config, common.make_env(config)[2])["torso"] == torso
    config = ppo.Config(env_id="Breakout-MinAtar", torso="mlp")
    assert common.torso_kwargs(config, common.make_env(config)[2])["torso"] == "mlp"
    with pytest.raises(ValueError, match="torso='cnn' needs"):
        ppo.Config(env_id="CartPole-v1", torso="cnn")
    with pytest.raises(ValueError, match="torso"):
        ppo.Config(torso="transformer")


T, B = 7, 3
FIRST = np.zeros((T, B), bool)
FIRST[[2, 5], 0] = True
FIRST[[0, 3], 1] = True


@pytest.mark.parametrize("core", ["gru", "lstm"])
def test_recurrent_cnn_agent_passes_the_masked_reset_equivalence(core):
    trunk = nets.Trunk(hidden_sizes=(16,), core=core, core_size=8, torso="cnn", cnn_channels=(4,),
                       obs_ndim=3, unroll=1)
    net = nets.ActorCritic(3, trunk, shared=True)
    x = np.random.default_rng(0).random((T, B, 10, 10, 4)).astype(np.float32)
    carry0 = jax.tree.map(lambda c: c + 0.3, net.initial_carry(B))
    params = jax.jit(net.init)(jax.random.key(0), carry0, x, FIRST)
    apply = jax.jit(net.apply)
    _, (dist, value) = apply(params, carry0, x, FIRST)
    no_reset = np.zeros((1, 1), bool)
    for b in range(B):   # one step at a time, resetting by hand, never using the mask
        carry = jax.tree.map(lambda c: c[b:b + 1], carry0)
        for t in range(T):
            if FIRST[t, b]:
                carry = net.initial_carry(1)
            carry, (d, v) = apply(params, carry, x[t:t + 1, b:b + 1], no_reset)
            np.testing.assert_allclose(v[0, 0], value[t, b], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(d.logits[0, 0], dist.logits[t, b], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kernel,stride,shape", [(3, 1, (10, 10, 4)), (4, 2, (11, 9, 3)),
                                                 (8, 4, (84, 84, 2))])
def test_conv_equals_lax_conv_values_and_gradients(kernel, stride, shape):
    """The im2col convolution (patches @ kernel) is `lax.conv_general_dilated` (VALID),
    outputs and gradients, with flax.linen.Conv's parameters."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(5, *shape)), jnp.float32)
    conv = nets.cnn.Conv(6, kernel, stride)
    params = conv.init(jax.random.key(0), x)
    assert jax.tree.map(jnp.shape, params["params"]) == {
        "kernel": (kernel, kernel, shape[-1], 6), "bias": (6,)}

    def reference(p, x):
        y = jax.lax.conv_general_dilated(x, p["params"]["kernel"], (stride, stride), "VALID",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + p["params"]["bias"]

    params = jax.tree.map(lambda a: a + 0.1, params)              # a non-zero bias too
    np.testing.assert_allclose(conv.apply(params, x), reference(params, x), rtol=1e-5, atol=1e-5)
    loss = lambda f: jax.grad(lambda p, x: jnp.sum(jnp.sin(f(p, x))), argnums=(0, 1))(params, x)
    for a, b in zip(jax.tree.leaves(loss(conv.apply)), jax.tree.leaves(loss(reference))):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_conv_that_does_not_fit_is_one_line():
    with pytest.raises(ValueError, match="does not fit 2x2"):
        nets.cnn.Conv(4, 3).init(jax.random.key(0), jnp.zeros((1, 2, 2, 1)))
