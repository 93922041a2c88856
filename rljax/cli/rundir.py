"""The run folder: what a training run leaves behind, written atomically.

    runs/ppo-CartPole-v1-20250101-120000/
      config.json          algo, seeds, seed and every config field actually used
      metrics.csv          one row per update per seed
      learning_curve.png   mean and spread of the return over seeds vs env steps
      params/              final network params [seeds, ...] (orbax)
      params.json          their sha256 and the run's config fingerprint
      checkpoints/N/       loop state + metrics after N updates (orbax), with --checkpoint-every
      checkpoints/N.json   its sha256 and the config fingerprint (written before N/)
      checkpoints/latest   the newest complete checkpoint's N
      summary.txt          the summary printed at the end

Every file is written to a temporary name in the same folder and renamed into place
(`os.replace` is atomic), and orbax commits a checkpoint folder by renaming it, so an
interrupted run never leaves a half-written file. A write that fails raises
`WriteError` naming the path (orbax's temporary folders are removed). Saved trees
carry a sha256 over their arrays (`tree_digest`), checked when they are read back: a
damaged file is reported, never loaded as garbage.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import os
import shutil
import sys
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


class WriteError(Exception):
    """A file of the run folder could not be written (disk full, read-only): one line,
    exit status 4; what was written before it stays."""


def _reason(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def atomic_write(path: Path, data: bytes | str) -> None:
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise WriteError(f"could not write {path}: {_reason(e)}") from None
        raise


def _make_dir(path: Path, *, exist_ok: bool) -> None:
    try:
        path.mkdir(parents=True, exist_ok=exist_ok)
    except FileExistsError:
        raise
    except OSError as e:
        raise UsageError(f"cannot create the run folder {path}: {_reason(e)}") from None


def new_run_dir(out: str | None, algo: str, env_id: str, root: str = "runs") -> Path:
    """A fresh folder: `out` if given (refused if it holds anything), else a new name."""
    if out is not None:
        path = Path(out)
        try:
            taken = path.exists() and (not path.is_dir() or any(path.iterdir()))
        except OSError as e:
            raise UsageError(f"cannot use {out} as the run folder: {_reason(e)}") from None
        if taken:
            raise UsageError(f"{out} already exists and is not empty; choose another --out "
                             f"(or --resume {out} to continue it)")
        _make_dir(path, exist_ok=True)
        return path
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{algo}-{env_id.replace('/', '_')}-{stamp}"
    for i in range(1000):
        path = base if i == 0 else base.with_name(f"{base.name}-{i}")
        try:
            _make_dir(path, exist_ok=False)
            return path
        except FileExistsError:
            continue
    raise UsageError(f"could not find a free run folder name next to {base}")


def check_writable(out: str | None, root: str = "runs") -> None:
    """Refuse (one line) an `--out` (or the default `runs/`) that cannot be created,
    before anything is built: the nearest existing parent must be a writable folder."""
    path = Path(out) if out is not None else Path(root)
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UsageError(f"cannot create the run folder {path}: {probe} is not a folder")
    if probe.exists() and probe != path and not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"cannot create the run folder {path}: {probe} is not writable")
    if probe == path and path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write into the run folder {path}: it is not writable")


def write_config(run_dir: Path, record: dict) -> None:
    atomic_write(run_dir / CONFIG, json.dumps(record, indent=2) + "\n")


def read_config(run_dir: Path) -> dict:
    """`config.json` of a run folder, checked for the keys the command needs."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise UsageError(f"{run_dir} is not a run folder (no {CONFIG})")
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"{path} is not a run's config (not JSON: {_reason(e)}); "
                         f"restore it or start a new run") from None
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict) \
            or not isinstance(record.get("algo"), str):
        raise UsageError(f"{path} is not a run's config (it needs \"algo\" and a \"config\" "
                         f"mapping); restore it or start a new run")
    for key, low in (("seeds", 1), ("seed", None)):
        value = record.get(key, 0 if key == "seed" else None)
        if isinstance(value, bool) or not isinstance(value, int) or (low and value < low):
            raise UsageError(f"{path}: \"{key}\" must be an integer"
                             f"{f' >= {low}' if low else ''}, got {value!r}")
    every = record.get("checkpoint_every")
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
        raise UsageError(f"{path}: \"checkpoint_every\" must be null or an integer >= 1, "
                         f"got {every!r}")
    return record


def fingerprint(algo: str, config_json: dict, seeds: int, seed: int) -> str:
    """sha256 (16 hex digits) of what decides a run's numbers: the algorithm, every
    config field (as built, so `1e-3` and `0.001` agree), the seed count and base seed."""
    core = {"algo": algo, "config": config_json, "seeds": seeds, "seed": seed}
    text = json.dumps(core, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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


class DamagedError(Exception):
    """A saved tree cannot be read back as it was written (truncated, edited, another
    run's): the message says what, in one line."""


def tree_digest(tree) -> str:
    """sha256 over a tree's arrays: each leaf's path, dtype, shape and bytes, in order."""
    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(_saveable(tree))[0]:
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{jax.tree_util.keystr(path)}|{a.dtype.str}|{a.shape}\n".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _remove_orbax_temps(path: Path) -> None:
    """Orbax's temporary folders next to `path` (`NAME.orbax-checkpoint-tmp-*`)."""
    if path.parent.is_dir():
        for p in path.parent.glob(f"{path.name}.orbax-checkpoint-tmp*"):
            shutil.rmtree(p, ignore_errors=True)


def save_tree(path: Path, tree) -> None:
    """Save `tree` at `path` (a new folder, committed by orbax's rename); a failure is a
    `WriteError` naming `path`, with orbax's temporary folder removed."""
    path = Path(path)
    ckpt = _checkpointer()
    try:
        ckpt.save(path.absolute(), _saveable(tree))
        ckpt.wait_until_finished()
    except Exception as e:
        _remove_orbax_temps(path)
        if not (path / "commit_success.txt").exists() and not (path / "_CHECKPOINT_METADATA").exists():
            shutil.rmtree(path, ignore_errors=True)
        raise WriteError(f"could not write {path}: {_reason(e)}") from None
    finally:
        try:
            ckpt.close()
        except Exception:
            pass


def _closed_loop(value) -> bool:
    return isinstance(value, RuntimeError) and "Event loop is closed" in str(value)


class _DropAbortedReads:
    """logging filter: asyncio's "Task exception was never retrieved" for orbax reads."""

    def filter(self, record) -> bool:
        return "Task exception was never retrieved" not in record.getMessage()


def _quiet_aborted_reads() -> None:
    """When orbax fails to read a damaged folder, its aborted async reads report from
    their threads ("Event loop is closed" through `sys.excepthook` or as unraisable,
    "Task exception was never retrieved" through the `asyncio` logger): dozens of
    tracebacks for the one error `load_tree` already reports. Drop just those."""
    if getattr(sys.unraisablehook, "_rljax_quiet", False):
        return
    unraisable, excepthook = sys.unraisablehook, sys.excepthook

    def on_unraisable(arg):
        if not _closed_loop(arg.exc_value):
            unraisable(arg)

    def on_exception(kind, value, tb):
        if not _closed_loop(value):
            excepthook(kind, value, tb)

    on_unraisable._rljax_quiet = True
    sys.unraisablehook, sys.excepthook = on_unraisable, on_exception
    logging.getLogger("asyncio").addFilter(_DropAbortedReads())


def load_tree(path: Path, like=None):
    """Restore a tree; `like` (abstract or concrete) gives its structure and key dtypes.
    A folder orbax cannot read raises `DamagedError`."""
    _quiet_aborted_reads()
    ckpt = _checkpointer()
    try:
        if like is None:
            return ckpt.restore(Path(path).absolute())
        target = jax.eval_shape(_saveable, like)
        return _restore_keys(ckpt.restore(Path(path).absolute(), target), like)
    except Exception as e:
        raise DamagedError(f"{path} cannot be read ({_reason(e)[:120]})") from None
    finally:
        ckpt.close()


def _read_meta(path: Path) -> dict | None:
    """A `.json` beside a saved tree: None if missing (folders of rljax <= 0.2)."""
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text())
        if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str):
            raise ValueError("no sha256")
        return meta
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise DamagedError(f"{path} is damaged ({_reason(e)})") from None


def _verify(path: Path, tree, meta: dict | None) -> None:
    if meta is not None and tree_digest(tree) != meta["sha256"]:
        raise DamagedError(f"{path} does not match its checksum ({path.name}.json): its files "
                           f"were changed or damaged")


PARAMS_META = "params.json"


def save_params(run_dir: Path, params, *, fingerprint: str | None = None) -> None:
    """`params/` and beside it `params.json` (sha256, config fingerprint), written first
    so a committed `params/` always has its checksum."""
    run_dir = Path(run_dir)
    params = jax.device_get(params)
    atomic_write(run_dir / PARAMS_META, json.dumps(
        {"sha256": tree_digest(params), "fingerprint": fingerprint}) + "\n")
    save_tree(run_dir / PARAMS, params)


def params_digest_matches(run_dir: Path, params) -> bool:
    """Whether `params/`'s recorded checksum is that of `params`."""
    try:
        meta = _read_meta(Path(run_dir) / PARAMS_META)
    except DamagedError:
        return False
    return meta is not None and meta["sha256"] == tree_digest(jax.device_get(params))


def load_params(run_dir: Path, like=None, *, fingerprint: str | None = None):
    """The saved params, checked: against their checksum, the run's config fingerprint
    and, if given, the structure and shapes of `like` (what the config's network makes).
    Any mismatch is a `UsageError` of one line."""
    run_dir = Path(run_dir)
    path = run_dir / PARAMS
    if not path.exists():
        raise UsageError(f"{run_dir} has no saved params ({PARAMS}/); did its training finish?")
    try:
        meta = _read_meta(run_dir / PARAMS_META)
        if meta is not None and fingerprint and meta.get("fingerprint") not in (None, fingerprint):
            raise DamagedError(f"{path} belongs to another run or config (its fingerprint "
                               f"differs from {CONFIG}'s)")
        params = load_tree(path)
        _verify(path, params, meta)
    except DamagedError as e:
        raise UsageError(f"{e}; refusing to use these weights") from None
    if like is not None:
        want = jax.tree_util.tree_flatten_with_path(like)[0]
        got = jax.tree_util.tree_flatten_with_path(params)[0]
        shapes = lambda leaves: [(jax.tree_util.keystr(p), tuple(np.shape(x))) for p, x in leaves]
        if shapes(want) != shapes(got):
            raise UsageError(f"{path} holds params of another network than {CONFIG} describes "
                             f"(another algorithm or network fields); refusing to use them")
        params = jax.tree.unflatten(jax.tree.structure(like), [x for _, x in got])
    return params


def save_checkpoint(run_dir: Path, update: int, state, metrics: dict, keep: int = 2, *,
                    fingerprint: str | None = None) -> None:
    """Loop state and metrics so far after `update` updates: `N.json` (sha256, config
    fingerprint), then the orbax folder `N/` (replacing one a replay meets), then
    `latest`; older checkpoints beyond the last `keep` go."""
    root = Path(run_dir) / CHECKPOINTS
    try:
        root.mkdir(exist_ok=True)
    except OSError as e:
        raise WriteError(f"could not write {root}: {_reason(e)}") from None
    tree = jax.device_get({"state": state, "metrics": metrics})
    atomic_write(root / f"{update}.json", json.dumps(
        {"update": update, "sha256": tree_digest(tree), "fingerprint": fingerprint}) + "\n")
    if (root / str(update)).exists():           # a damaged one we fell back from
        shutil.rmtree(root / str(update))
    save_tree(root / str(update), tree)
    atomic_write(root / "latest", f"{update}\n")
    done = committed_checkpoints(run_dir)
    for old in done[keep:]:
        shutil.rmtree(root / str(old), ignore_errors=True)
        (root / f"{old}.json").unlink(missing_ok=True)


def committed_checkpoints(run_dir: Path) -> list[int]:
    """Updates of the checkpoint folders orbax committed, newest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    return sorted((int(p.name) for p in root.iterdir() if p.name.isdigit() and p.is_dir()),
                  reverse=True)


def latest_checkpoint(run_dir: Path) -> int | None:
    """`checkpoints/latest` (None if absent); anything but an update number is a
    `UsageError`."""
    path = Path(run_dir) / CHECKPOINTS / "latest"
    if not path.is_file():
        return None
    text = path.read_text(errors="replace").strip()
    if not text.isdigit():
        raise UsageError(f"{path} holds {text[:40]!r}, not an update number; write the N of a "
                         f"checkpoint folder there ({', '.join(map(str, committed_checkpoints(run_dir))) or 'none'})")
    return int(text)


def clean_partial(run_dir: Path) -> None:
    """What a kill can leave half done: orbax temporary folders and temp files, a
    checkpoint's `.json` whose folder was never committed."""
    run_dir = Path(run_dir)
    _remove_orbax_temps(run_dir / PARAMS)
    for tmp in run_dir.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
    root = run_dir / CHECKPOINTS
    if root.is_dir():
        for p in list(root.iterdir()):
            if ".orbax-checkpoint-tmp" in p.name:
                shutil.rmtree(p, ignore_errors=True)
            elif p.name.endswith(".tmp"):
                p.unlink(missing_ok=True)
            elif p.suffix == ".json" and p.stem.isdigit() and not (root / p.stem).is_dir():
                p.unlink(missing_ok=True)


def checkpoint_fingerprint(run_dir: Path, update: int) -> str | None:
    """The config fingerprint a checkpoint was saved with (None: not recorded)."""
    meta = _read_meta(Path(run_dir) / CHECKPOINTS / f"{update}.json")
    return None if meta is None else meta.get("fingerprint")


def load_checkpoint(run_dir: Path, update: int, state_like, metric_like: dict):
    """`(state, metrics)`; `metric_like[name]` gives shape/dtype per update `[seeds, 1]`.
    Raises `DamagedError` if the folder cannot be read or fails its checksum."""
    metrics_like = {k: jax.ShapeDtypeStruct((v.shape[0], update, *v.shape[2:]), v.dtype)
                    for k, v in metric_like.items()}
    path = Path(run_dir) / CHECKPOINTS / str(update)
    meta = _read_meta(path.with_name(f"{update}.json"))
    tree = load_tree(path, {"state": state_like, "metrics": metrics_like})
    _verify(path, tree, meta)
    return tree["state"], tree["metrics"]
