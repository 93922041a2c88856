"""Sequence networks: `(carry, obs [T, B, ...], first [T, B]) -> (carry, outputs)`.

One signature for feedforward and recurrent networks; a feedforward network
ignores `first` and its carry is `()`. The acting path calls them with `T = 1`.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn

from rljax.nets.cnn import CNN
from rljax.nets.heads import CategoricalHead
from rljax.nets.mlp import MLP, dense
from rljax.nets.recurrent import initial_carry, make_core


class Trunk(nn.Module):
    """MLP torso, then an optional masked recurrent core, then optional MLP layers."""

    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    core: str | None = None        # None or a kind of nets.recurrent.CORES ("gru", "lru", ...)
    core_size: int = 128
    core_layers: int = 1           # stacked core layers; carry is a tuple per layer if > 1
    head_sizes: Sequence[int] = ()  # layers after the core
    obs_ndim: int = 1               # trailing observation axes to flatten
    unroll: int | None = None       # lax.scan unroll of the core; None: the core's default
    layer_norm: bool = False        # LayerNorm before every MLP activation (PQN)
    torso: str = "mlp"              # "mlp" (flattened obs) or "cnn" ([H, W, C] obs)
    cnn_channels: Sequence[int] = (16,)   # conv channels of the "cnn" torso (3x3, stride 1)

    @nn.compact
    def __call__(self, carry, obs, first):
        if self.torso == "cnn":
            obs = CNN(tuple(self.cnn_channels))(obs)
            x = MLP(tuple(self.hidden_sizes), self.activation, 1, self.layer_norm)(obs)
        else:
            x = MLP(tuple(self.hidden_sizes), self.activation, self.obs_ndim, self.layer_norm)(obs)
        if self.core is not None:
            carry, x = make_core(self.core, self.core_size, self.unroll,
                                 self.core_layers)(carry, x, first)
        x = MLP(tuple(self.head_sizes), self.activation, layer_norm=self.layer_norm)(x)
        return carry, x

    def initial_carry(self, batch_size: int):
        return initial_carry(self.core, self.core_size, batch_size, self.core_layers)


class ActorCritic(nn.Module):
    """A policy (a distribution value from `policy`, a head in `rljax.nets.heads`) and
    a state value. `policy` may be an int `A`, short for `CategoricalHead(A)`.

    `shared=False` gives the actor and the critic separate trunks (the classic
    CartPole PPO: two 2x64 tanh MLPs), and the carry is `(actor, critic)`;
    `shared=True` puts both heads on one trunk, and the carry is that trunk's.
    Without a recurrent core the carry is `()` either way.

    Returns `(carry, (dist, value [T, B]))`, `dist` with batch shape `[T, B]`.
    """

    policy: int | nn.Module
    trunk: Trunk = Trunk()
    shared: bool = False

    @nn.compact
    def __call__(self, carry, obs, first):
        if self.shared:
            carry, x = self.trunk(carry, obs, first)
            actor_x = critic_x = x
        else:
            recurrent = self.trunk.core is not None   # feedforward trunks: carry is ()
            actor_carry, critic_carry = carry if recurrent else ((), ())
            actor_carry, actor_x = self.trunk.clone(parent=self, name="actor")(actor_carry, obs, first)
            critic_carry, critic_x = self.trunk.clone(parent=self, name="critic")(critic_carry, obs, first)
            carry = (actor_carry, critic_carry) if recurrent else ()
        head = CategoricalHead(self.policy) if isinstance(self.policy, int) else self.policy
        dist = head.clone(parent=self, name="policy_head")(actor_x)
        value = dense(1, 1.0, "value_head")(critic_x)[..., 0]
        return carry, (dist, value)

    def initial_carry(self, batch_size: int):
        carry = self.trunk.initial_carry(batch_size)
        if self.shared or self.trunk.core is None:
            return carry
        return (carry, self.trunk.initial_carry(batch_size))


class QNetwork(nn.Module):
    """Q-values `[T, B, A]` on a trunk (feedforward DQN or recurrent DRQN)."""

    num_actions: int
    trunk: Trunk = Trunk(activation="relu")

    @nn.compact
    def __call__(self, carry, obs, first):
        carry, x = self.trunk(carry, obs, first)
        return carry, dense(self.num_actions, 1.0, "q_head")(x)

    def initial_carry(self, batch_size: int):
        return self.trunk.initial_carry(batch_size)
