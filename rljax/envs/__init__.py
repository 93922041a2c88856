"""Environments: gymnax envs on the 1.0 step API, POMDP variants and wrappers."""
from rljax.envs.registry import POMDP_VARIANTS, EnvSpec, list_envs, make, spec
from rljax.envs.wrappers import (
    EpisodeStats,
    FloatObservation,
    ObservationHistory,
    ObservationMask,
    PreviousActionReward,
    Wrapper,
)

__all__ = [
    "POMDP_VARIANTS", "EnvSpec", "list_envs", "make", "spec", "EpisodeStats", "FloatObservation",
    "ObservationHistory", "ObservationMask", "PreviousActionReward", "Wrapper",
]
