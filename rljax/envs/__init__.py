"""Environments: gymnax envs on the 1.0 step API, POMDP variants, POPGym memory tasks,
MemoryChain lengths, wrappers, and the optional suites behind extras (`brax/NAME`,
`xminigrid/<id>`, `craftax/<name>`; `rljax.envs.suites`)."""
from rljax.envs import popgym
from rljax.envs.popgym import POPGYM_ENVS, RETURN_BOUNDS, mmer, normalized_return
from rljax.envs.registry import MEMORY_CHAIN_VARIANTS, POMDP_VARIANTS, EnvSpec, list_envs, make, spec
from rljax.envs.wrappers import (
    EpisodeStats,
    FloatObservation,
    ObservationHistory,
    ObservationMask,
    PreviousActionReward,
    Wrapper,
)

__all__ = [
    "popgym", "POPGYM_ENVS", "RETURN_BOUNDS", "mmer", "normalized_return", "MEMORY_CHAIN_VARIANTS",
    "POMDP_VARIANTS", "EnvSpec", "list_envs", "make", "spec", "EpisodeStats", "FloatObservation",
    "ObservationHistory", "ObservationMask", "PreviousActionReward", "Wrapper",
]
