"""A convolutional torso for image-like observations (MinAtar's 10x10xC, Pong-misc).

MinAtar-style by default (Young & Tian 2019): one 3x3 convolution of 16 channels,
stride 1, VALID padding, ReLU, then flattened; `channels=(32, 64, 64)` with larger
kernels and strides gives a Nature-style stack. Any leading shape: `[..., H, W, C]`
-> `[..., features]`, so the same module serves the acting path (`[1, B, ...]`) and
the sequence losses (`[T, B, ...]`).
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from rljax.nets.initializers import orthogonal


class CNN(nn.Module):
    """Conv layers over `[..., H, W, C]`, flattened to `[..., features]`."""

    channels: Sequence[int] = (16,)
    kernel_sizes: Sequence[int] = (3,)     # one per layer (the last is repeated)
    strides: Sequence[int] = (1,)          # one per layer (the last is repeated)

    @nn.compact
    def __call__(self, x):
        if x.ndim < 3:
            raise ValueError(f"the CNN torso needs [..., H, W, C] observations, got shape {x.shape}")
        lead = x.shape[:-3]
        x = x.reshape((-1, *x.shape[-3:]))
        for i, ch in enumerate(self.channels):
            k = self.kernel_sizes[min(i, len(self.kernel_sizes) - 1)]
            s = self.strides[min(i, len(self.strides) - 1)]
            x = nn.Conv(ch, (k, k), strides=(s, s), padding="VALID",
                        kernel_init=orthogonal(jnp.sqrt(2.0)),
                        bias_init=nn.initializers.zeros)(x)
            x = nn.relu(x)
        return x.reshape((*lead, -1))
