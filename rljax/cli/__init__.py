"""The `rljax` command (train / eval / list); `main` is the console-script entry point."""
from rljax.cli.main import main

__all__ = ["main"]
