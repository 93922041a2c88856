"""Feedforward torso and output heads (flax linen)."""
from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from rljax.nets.initializers import orthogonal

ACTIVATIONS: dict[str, Callable] = {"tanh": nn.tanh, "relu": nn.relu, "elu": nn.elu, "gelu": nn.gelu}


def activation(name: str) -> Callable:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(ACTIVATIONS)}") from None


def dense(features: int, scale: float, name: str | None = None) -> nn.Dense:
    """A dense layer with (QR-free) orthogonal weights of gain `scale` and zero bias."""
    return nn.Dense(features, kernel_init=orthogonal(scale),
                    bias_init=nn.initializers.zeros, name=name)


class MLP(nn.Module):
    """Dense layers over the last axis; any leading shape. The trailing `flatten_dims`
    axes form one input vector: `[..., H, W, C]` observations are flattened when it is
    3, a scalar observation `[...]` becomes `[..., 1]` when it is 0."""

    hidden_sizes: Sequence[int]
    activation: str = "tanh"
    flatten_dims: int = 1   # how many trailing axes form one input vector
    layer_norm: bool = False   # LayerNorm before each activation (PQN)

    @nn.compact
    def __call__(self, x):
        if self.flatten_dims != 1:
            x = x.reshape(*x.shape[: x.ndim - self.flatten_dims], -1)
        act = activation(self.activation)
        for size in self.hidden_sizes:
            x = dense(size, jnp.sqrt(2.0))(x)
            x = act(nn.LayerNorm()(x) if self.layer_norm else x)
        return x
