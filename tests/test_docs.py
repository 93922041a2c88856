"""The documentation site builds with `mkdocs build --strict` (no warning: every nav
entry exists, every link resolves, every `::: module` renders)."""
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_NEEDED = {"mkdocs": "mkdocs", "material": "mkdocs-material", "mkdocstrings": "mkdocstrings[python]",
           "mkdocstrings_handlers.python": "mkdocstrings[python]", "mkdocs_jupyter": "mkdocs-jupyter"}


def _missing() -> list[str]:
    out = []
    for module, package in _NEEDED.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found and package not in out:
            out.append(package)
    return out


@pytest.mark.skipif(bool(_missing()), reason=f"docs tools not installed ({', '.join(_missing())}): "
                    "pip install 'rljax[docs]'")
def test_mkdocs_build_strict(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    site = tmp_path / "site"
    for page in ("index.html", "concepts/index.html", "api/returns/index.html", "api/algos/index.html",
                 "notebooks/01_interaction_loop/index.html", "benchmarks/bench/index.html"):
        assert (site / page).is_file(), page
    api = (site / "api" / "returns" / "index.html").read_text()
    assert "rljax.returns.generalized_advantage" in api            # rendered from the docstrings
    assert time.perf_counter() - start < 120
