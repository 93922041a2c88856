"""Networks (flax linen): MLP torso, masked recurrent cores, actor-critic and Q nets."""
from rljax.nets.heads import CategoricalHead, GaussianHead, TanhGaussianHead, policy_head
from rljax.nets.initializers import orthogonal
from rljax.nets.mlp import MLP, activation, dense
from rljax.nets.networks import ActorCritic, QNetwork, Trunk
from rljax.nets.recurrent import (MaskedGRU, MaskedLSTM, gru_recurrence, initial_carry, make_core,
                                  masked_scan)

__all__ = [
    "CategoricalHead", "GaussianHead", "TanhGaussianHead", "policy_head", "orthogonal", "MLP", "activation", "dense", "ActorCritic", "QNetwork", "Trunk",
    "gru_recurrence", "initial_carry", "MaskedGRU", "MaskedLSTM", "make_core", "masked_scan",
]
