"""Networks (flax linen): MLP or CNN torso, masked recurrent cores (gru, lstm; linear
cores mingru, lru, s5, ffm trained with parallel scans), actor-critic and Q nets."""
from rljax.nets.cnn import CNN
from rljax.nets.heads import CategoricalHead, GaussianHead, TanhGaussianHead, policy_head
from rljax.nets.initializers import orthogonal
from rljax.nets.mlp import MLP, activation, dense
from rljax.nets.networks import ActorCritic, QNetwork, Trunk
from rljax.nets.linear_recurrent import (FFM, LINEAR_IDENTITY, LRU, RESET_IDENTITY, S5, MinGRU,
                                         linear_recurrence, linear_recurrence_op,
                                         reset_recurrence_op)
from rljax.nets.recurrent import (CORES, MaskedGRU, MaskedLSTM, StackedCore, gru_recurrence,
                                  initial_carry, make_core, masked_scan)

__all__ = [
    "CNN", "CategoricalHead", "GaussianHead", "TanhGaussianHead", "policy_head", "orthogonal",
    "MLP", "activation", "dense", "ActorCritic", "QNetwork", "Trunk",
    "gru_recurrence", "initial_carry", "MaskedGRU", "MaskedLSTM", "make_core", "masked_scan",
    "CORES", "StackedCore", "MinGRU", "LRU", "S5", "FFM", "linear_recurrence",
    "linear_recurrence_op", "reset_recurrence_op", "LINEAR_IDENTITY", "RESET_IDENTITY",
]
