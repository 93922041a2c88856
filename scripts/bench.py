"""Throughput benchmarks of every algorithm; see rljax/bench.py (also `rljax bench`)."""
from rljax.bench import main

if __name__ == "__main__":
    main()
