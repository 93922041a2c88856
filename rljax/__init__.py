"""rljax: JAX-functional reinforcement learning."""
__version__ = "0.1.0"
