"""rljax: JAX-functional reinforcement learning."""
__version__ = "0.2.0"
