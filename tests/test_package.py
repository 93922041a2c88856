"""The package builds (sdist and wheel) and the wheel works on its own.

The wheel is installed with `--no-deps` into a fresh virtual environment that sees this
environment's packages (jax, flax, ...) through a `.pth` file, so nothing is downloaded;
`.pth` lines only add folders to `sys.path` (the `.pth` files inside them, such as an
editable install's finder, are not run), and PYTHONPATH is cleared, so the `rljax` that
runs is the wheel's: the test checks `rljax.__file__`.
"""
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import venv
from pathlib import Path

import pytest

import rljax

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(importlib.util.find_spec("build") is None,
                                reason="`build` not installed: pip install build (in rljax[test])")


def _run(cmd, **kwargs):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kwargs)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def _can_build_here() -> bool:
    """setuptools >= 77 here (SPDX `license = "MIT"`, its own bdist_wheel): build without
    an isolated environment (no network); otherwise `build` fetches setuptools itself."""
    try:
        from importlib.metadata import version
        major, minor = (int(x) for x in version("setuptools").split(".")[:2])
    except Exception:                      # noqa: BLE001 - not installed, odd version
        return False
    return major >= 77


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """`python -m build` on a clean copy of the sources (the checkout stays untouched)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "CHANGELOG.md", "MANIFEST.in"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "rljax", src / "rljax", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("dist")
    offline = ["--no-isolation", "--skip-dependency-check"] if _can_build_here() else []
    _run([sys.executable, "-m", "build", *offline, "--outdir", out, src])
    return out


def test_sdist_and_wheel(dist):
    names = sorted(p.name for p in dist.iterdir())
    assert names == [f"rljax-{rljax.__version__}-py3-none-any.whl", f"rljax-{rljax.__version__}.tar.gz"], names
    with tarfile.open(dist / f"rljax-{rljax.__version__}.tar.gz") as sdist:
        files = {Path(n).relative_to(f"rljax-{rljax.__version__}").as_posix() for n in sdist.getnames()[1:]}
    assert {"README.md", "CHANGELOG.md", "pyproject.toml", "rljax/__init__.py", "rljax/tracking.py"} <= files


def test_wheel_installs_and_trains(dist, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    here = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_rljax_test_parent_env.pth").write_text("".join(f"{p}\n" for p in sorted(here)))
    (wheel,) = dist.glob("*.whl")
    _run([python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", wheel])

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), JAX_PLATFORMS="cpu")
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    where = _run([python, "-c", "import rljax; print(rljax.__file__)"], env=env, cwd=tmp_path).stdout.strip()
    assert Path(where).resolve().is_relative_to(site.resolve()), where   # the wheel's, not the checkout

    version = _run([env_dir / "bin" / "rljax", "--version"], env=env, cwd=tmp_path).stdout.strip()
    assert version == f"rljax {rljax.__version__}"
    _run([env_dir / "bin" / "rljax", "train", "--quiet", "--seeds", "1", "--set", "total_steps=1024",
          "--set", "num_envs=4", "--set", "num_steps=16", "--out", tmp_path / "run"], env=env, cwd=tmp_path)
    assert (tmp_path / "run" / "metrics.csv").is_file() and (tmp_path / "run" / "params").is_dir()
