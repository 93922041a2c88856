"""Policy heads: features `[..., F]` -> a distribution value (`rljax.distributions`).

The actor-critic network puts one of these on its actor trunk; the head alone
decides the action space, so agents, rollouts and losses stay the same for every
distribution. `policy_head(spec)` picks the head an env's action space needs.
"""
from __future__ import annotations

import flax.linen as nn

from rljax.distributions import Categorical
from rljax.nets.mlp import dense


class CategoricalHead(nn.Module):
    """Logits of `num_actions` discrete actions, small-gain init (near-uniform policy)."""

    num_actions: int

    @nn.compact
    def __call__(self, x) -> Categorical:
        return Categorical(dense(self.num_actions, 0.01, "logits")(x))


def policy_head(spec) -> nn.Module:
    """The head for an env's action space (`rljax.envs.EnvSpec`)."""
    if spec.num_actions is None:
        raise ValueError(f"no policy head for the action space of shape {spec.action_shape}")
    return CategoricalHead(spec.num_actions)
