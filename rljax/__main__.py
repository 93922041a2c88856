"""`python -m rljax ...` runs the `rljax` command."""
import sys

from rljax.cli import main

sys.exit(main())
