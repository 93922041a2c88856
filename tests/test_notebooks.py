"""The tutorial notebooks run top to bottom (small budget) and match their sources.

Each notebook is executed by nbclient in a fresh kernel started from this interpreter
(a kernelspec written to a temporary folder, so it works in a bare virtual
environment where no `python3` kernel is registered, or where one points at another
interpreter). The kernel runs in `notebooks/` with the repository root on PYTHONPATH,
so `import rljax` finds this checkout, and with `RLJAX_NB_BUDGET` set to a small
fraction of each notebook's full training budget.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import ipykernel.kernelspec
import nbclient
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NAMES = sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
KERNEL = "rljax-notebooks"
CI_BUDGET = "0.01"   # fraction of each notebook's full training budget


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """Register a kernel for this interpreter in a temp dir; set the kernel's env."""
    prefix = tmp_path_factory.mktemp("jupyter")
    ipykernel.kernelspec.install(kernel_name=KERNEL, prefix=str(prefix))
    saved = {k: os.environ.get(k) for k in ("JUPYTER_PATH", "PYTHONPATH", "RLJAX_NB_BUDGET",
                                             "MPLBACKEND", "JAX_PLATFORMS")}
    paths = [str(prefix / "share" / "jupyter"), os.environ.get("JUPYTER_PATH", "")]
    os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in paths if p)
    pythonpath = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in pythonpath if p)
    os.environ["RLJAX_NB_BUDGET"] = CI_BUDGET
    os.environ["MPLBACKEND"] = "Agg"
    os.environ["JAX_PLATFORMS"] = "cpu"
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_five_notebooks():
    assert NAMES == ["01_interaction_loop.ipynb", "02_a2c.ipynb", "03_reinforce_rollouts.ipynb",
                     "04_recurrent_policies.ipynb", "05_recurrent_value_and_policy.ipynb"]


def test_notebooks_match_their_sources():
    result = subprocess.run([sys.executable, str(NOTEBOOKS / "build.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs(name, kernel_env):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name=KERNEL, timeout=600, allow_errors=False,
        resources={"metadata": {"path": str(NOTEBOOKS)}})
    start = time.perf_counter()
    client.execute()   # raises CellExecutionError naming the cell on any error
    seconds = time.perf_counter() - start
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    print(f"{name}: {seconds:.1f} s")
