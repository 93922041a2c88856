"""The run folder: what a training run leaves behind, written atomically.

    runs/ppo-CartPole-v1-20250101-120000/
      config.json          algo, seeds, seed and every config field actually used
      metrics.csv          one row per update per seed
      learning_curve.png   mean and spread of the return over seeds vs env steps
      params/              final network params [seeds, ...] (orbax)
      checkpoints/N/       loop state + metrics after N updates (orbax), with --checkpoint-every
      checkpoints/latest   the newest complete checkpoint's N
      summary.txt          the summary printed at the end

Every file is written to a temporary name in the same folder and renamed into place
(`os.replace` is atomic), and orbax commits a checkpoint folder by renaming it, so an
interrupted run never leaves a half-written file.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from rljax.cli.configs import UsageError

CONFIG, METRICS, CURVE, SUMMARY = "config.json", "metrics.csv", "learning_curve.png", "summary.txt"
PARAMS, CHECKPOINTS = "params", "checkpoints"


_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: Path, data: bytes | str) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def new_run_dir(out: str | None, algo: str, env_id: str, root: str = "runs") -> Path:
    """A fresh folder: `out` if given (refused if it holds anything), else a new name."""
    if out is not None:
        path = Path(out)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise UsageError(f"{out} already exists and is not empty; choose another --out "
                             f"(or --resume {out} to continue it)")
        path.mkdir(parents=True, exist_ok=True)
        return path
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{algo}-{env_id.replace('/', '_')}-{stamp}"
    for i in range(1000):
        path = base if i == 0 else base.with_name(f"{base.name}-{i}")
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            continue
    raise UsageError(f"could not find a free run folder name next to {base}")


def write_config(run_dir: Path, record: dict) -> None:
    atomic_write(run_dir / CONFIG, json.dumps(record, indent=2) + "\n")


def read_config(run_dir: Path) -> dict:
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise UsageError(f"{run_dir} is not a run folder (no {CONFIG})")
    return json.loads(path.read_text())


def metric_names(metrics: dict) -> list[str]:
    first = [k for k in ("env_steps", "episode_return", "episode_length", "episodes") if k in metrics]
    return first + sorted(k for k in metrics if k not in first)


def write_metrics(run_dir: Path, metrics: dict) -> None:
    """`metrics[name]` is `[seeds, updates]`; one CSV row per (seed, update)."""
    names = metric_names(metrics)
    arrays = {k: np.asarray(metrics[k]) for k in names}
    seeds, updates = arrays[names[0]].shape[:2]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["seed", "update", *names])
    for s in range(seeds):
        for u in range(updates):
            writer.writerow([s, u, *(_fmt(arrays[k][s, u]) for k in names)])
    atomic_write(run_dir / METRICS, buf.getvalue())


def _fmt(x) -> str:
    x = x.item() if hasattr(x, "item") else x
    if isinstance(x, float):
        return "nan" if math.isnan(x) else repr(x)   # float32 -> float64 repr: exact
    return str(x)


def read_metrics(run_dir: Path) -> dict[str, np.ndarray]:
    """`metrics.csv` back as `{name: [seeds, updates]}` float arrays.

    Rows may come in any order (a running or interrupted run's file is appended segment
    by segment); an update missing for some seed is NaN there, a torn last line is skipped.
    """
    with open(Path(run_dir) / METRICS) as f:
        rows = list(csv.reader(f))
    header = rows[0]
    rows = [r for r in rows[1:] if len(r) == len(header)]
    data = np.array([[float(v) for v in r] for r in rows], dtype=np.float64).reshape(-1, len(header))
    seed, update = data[:, 0].astype(int), data[:, 1].astype(int)
    seeds, updates = (int(seed.max()) + 1, int(update.max()) + 1) if len(data) else (0, 0)
    out = {}
    for i, name in enumerate(header[2:], start=2):
        values = np.full((seeds, updates), np.nan)
        values[seed, update] = data[:, i]
        out[name] = values
    return out


# --- checkpoints (orbax) --------------------------------------------------------------

def _saveable(tree):
    """Typed PRNG keys as raw uint32 data (orbax stores plain arrays)."""
    return jax.tree.map(
        lambda x: jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x,
        tree)


def _restore_keys(tree, like):
    return jax.tree.map(
        lambda x, ref: jax.random.wrap_key_data(x) if jax.dtypes.issubdtype(ref.dtype, jax.dtypes.prng_key)
        else x, tree, like)


def _checkpointer():
    import orbax.checkpoint as ocp   # imported lazily: it takes a second
    return ocp.StandardCheckpointer()


def save_tree(path: Path, tree) -> None:
    ckpt = _checkpointer()
    ckpt.save(Path(path).absolute(), _saveable(tree))
    ckpt.wait_until_finished()
    ckpt.close()


def load_tree(path: Path, like=None):
    """Restore a tree; `like` (abstract or concrete) gives its structure and key dtypes."""
    ckpt = _checkpointer()
    try:
        if like is None:
            return ckpt.restore(Path(path).absolute())
        target = jax.eval_shape(_saveable, like)
        return _restore_keys(ckpt.restore(Path(path).absolute(), target), like)
    finally:
        ckpt.close()


def save_params(run_dir: Path, params) -> None:
    save_tree(run_dir / PARAMS, params)


def load_params(run_dir: Path):
    path = Path(run_dir) / PARAMS
    if not path.exists():
        raise UsageError(f"{run_dir} has no saved params ({PARAMS}/); did its training finish?")
    return load_tree(path)


def save_checkpoint(run_dir: Path, update: int, state, metrics: dict, keep: int = 2) -> None:
    """Loop state and metrics so far after `update` updates; `latest` moves last."""
    root = run_dir / CHECKPOINTS
    root.mkdir(exist_ok=True)
    save_tree(root / str(update), {"state": state, "metrics": metrics})
    atomic_write(root / "latest", f"{update}\n")
    done = sorted(int(p.name) for p in root.iterdir() if p.name.isdigit())
    for old in done[:-keep]:
        shutil.rmtree(root / str(old), ignore_errors=True)


def latest_checkpoint(run_dir: Path) -> int | None:
    path = Path(run_dir) / CHECKPOINTS / "latest"
    return int(path.read_text()) if path.is_file() else None


def load_checkpoint(run_dir: Path, update: int, state_like, metric_like: dict):
    """`(state, metrics)`; `metric_like[name]` gives shape/dtype per update `[seeds, 1]`."""
    metrics_like = {k: jax.ShapeDtypeStruct((v.shape[0], update, *v.shape[2:]), v.dtype)
                    for k, v in metric_like.items()}
    tree = load_tree(Path(run_dir) / CHECKPOINTS / str(update),
                     {"state": state_like, "metrics": metrics_like})
    return tree["state"], tree["metrics"]
