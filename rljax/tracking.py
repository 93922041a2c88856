"""Run tracking: per-update metrics to CSV, TensorBoard and Weights & Biases.

Writers run on the host, between compiled segments: they are fed the device-free numpy
metrics a segment returns (`metrics[name]` is `[seeds, updates]`), never called from
inside a compiled program. One interface, three writers:

    writer.hparams(record)   # the run's config (algo, seeds, every config field)
    writer.write(rows)       # `Rows(update=[n], metrics={name: [seeds, n]})`
    writer.close()

Each writer logs every metric per seed (`episode_return/seed_0`, ...) and its aggregate
over seeds (`episode_return/mean`, `/min`, `/max`, NaN-aware), with env steps per seed as
the x axis. A writer knows what it already holds (CSV: the `(seed, update)` rows of
`metrics.csv`; TensorBoard: the `(tag, step)` pairs of the event files in its folder;
W&B: the steps in the offline run files of its run id), and `write` skips those. So a
resumed run, which replays its segments from the last checkpoint, adds every step
exactly once, whatever a kill left behind.

From Python, without the command:

    from rljax import tracking
    from rljax.algos import ppo

    config = ppo.Config(total_steps=100_000)
    with tracking.Tracker.open("runs/mine", ["csv", "tensorboard"], record={"algo": "ppo"}) as t:
        result = jax.jit(ppo.train)(config, jax.random.key(0))
        t.write(tracking.Rows.from_metrics(result.metrics))          # after the run, or:
        ppo.train(config, jax.random.key(0), callback=t.callback(num_seeds=1),
                  callback_every=10)                                   # a host callback

`callback` puts a `jax.debug.callback` into the program (JAX does not cache such
programs); writing after the run, or between segments of `algo.loop(config).run` as the
command does, keeps the program free of host callbacks.

TensorBoard needs `pip install rljax[tensorboard]` (tensorboardX); W&B needs
`pip install rljax[wandb]` and an account, or `WANDB_MODE=offline`.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import secrets
import struct
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, NamedTuple, Sequence

import numpy as np

__all__ = ["Rows", "Writer", "CSVWriter", "TensorBoardWriter", "WandbWriter", "Tracker",
           "WRITERS", "check_names", "read_tensorboard_scalars", "read_wandb_history", "read_wandb_config",
           "TrackingError"]

METRICS_CSV = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"
WANDB_DIR = "wandb"
WANDB_ID_FILE = "rljax_run_id"
STEP_FILE = "rljax_last_step"   # in WANDB_DIR: the last env step of a cleanly closed run
X_AXIS = "env_steps"


class TrackingError(Exception):
    """A writer cannot be used (unknown name, missing extra, bad folder): one line."""


class Rows(NamedTuple):
    """Per-update metrics of all seeds for `n` updates.

    Attributes:
      update: `[n]` update indices (0-based, increasing).
      metrics: name -> `[seeds, n]` arrays; `metrics["env_steps"]` (env steps per seed)
        is the x axis.
    """
    update: np.ndarray
    metrics: dict

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, Any], first_update: int = 0) -> "Rows":
        """`metrics[name]` as `[seeds, n]` (or `[n]` for one seed) numpy arrays; updates
        numbered from `first_update`."""
        arrays = {}
        for name, value in metrics.items():
            a = np.asarray(value)
            if a.ndim == 1:
                a = a[None]
            if a.ndim != 2:
                continue                     # only scalars per update are tracked
            arrays[name] = a
        if X_AXIS not in arrays:
            raise ValueError(f"metrics need {X_AXIS!r} (the x axis); got {sorted(arrays)}")
        n = arrays[X_AXIS].shape[1]
        return cls(np.arange(first_update, first_update + n), arrays)

    @property
    def num_seeds(self) -> int:
        return self.metrics[X_AXIS].shape[0]

    def steps(self) -> np.ndarray:
        """`[n]` env steps per seed of each update (seed 0's; all seeds agree)."""
        return np.asarray(self.metrics[X_AXIS][0], dtype=np.float64)

    def names(self) -> list[str]:
        first = [k for k in (X_AXIS, "episode_return", "episode_length", "episodes") if k in self.metrics]
        return first + sorted(k for k in self.metrics if k not in first)


def _aggregate(values: np.ndarray) -> dict[str, float]:
    """mean / min / max over seeds of one update (NaN-aware; NaN when none is finite)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {"mean": math.nan, "min": math.nan, "max": math.nan}
    return {"mean": float(finite.mean()), "min": float(finite.min()), "max": float(finite.max())}


def scalars(rows: Rows, j: int, *, finite_only: bool = True) -> dict[str, float]:
    """Update `j` of `rows` as flat scalars: `name/seed_i` and `name/mean|min|max`
    (without NaN entries, e.g. the return of an update where no episode ended)."""
    out = {}
    for name in rows.names():
        if name == X_AXIS:
            continue
        column = np.asarray(rows.metrics[name][:, j], dtype=np.float64)
        for s, v in enumerate(column):
            out[f"{name}/seed_{s}"] = float(v)
        for k, v in _aggregate(column).items():
            out[f"{name}/{k}"] = v
    if finite_only:
        out = {k: v for k, v in out.items() if math.isfinite(v)}
    return out


class Writer:
    """The interface every writer implements (all methods may be called from any thread
    but not concurrently)."""

    name = "writer"

    def hparams(self, record: Mapping[str, Any]) -> None:
        """Record the run's configuration (`config.json`'s content)."""

    def write(self, rows: Rows) -> None:
        """Write the updates of `rows` not written before."""
        raise NotImplementedError

    def close(self) -> None:
        """Flush and release files (idempotent)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _flat_config(record: Mapping[str, Any]) -> dict[str, Any]:
    """`{"algo", "seeds", ..., "config": {...}}` -> one flat mapping of simple values."""
    out = {}
    for k, v in record.items():
        if k == "config" and isinstance(v, Mapping):
            out.update({f: v[f] for f in v})
        else:
            out[k] = v
    return {k: (v if isinstance(v, (int, float, str, bool)) or v is None else json.dumps(v))
            for k, v in out.items()}


# --- CSV -------------------------------------------------------------------------------

class CSVWriter(Writer):
    """`metrics.csv`: one row per (seed, update), columns `seed, update, env_steps, ...`
    (the format of `rljax.cli.rundir.write_metrics`). Rows are appended segment by
    segment and flushed; rows already in the file are skipped, a torn last line (a kill
    mid-write) is dropped on open."""

    name = "csv"

    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / METRICS_CSV
        self._header: list[str] | None = None
        self._done: set[tuple[int, int]] = set()
        self._file = None
        if self.path.is_file():
            self._load()

    def _load(self) -> None:
        text = self.path.read_text()
        if text and not text.endswith("\n"):          # torn last line
            text = text[:text.rfind("\n") + 1]
            self.path.write_text(text)
        lines = list(csv.reader(text.splitlines()))
        if lines:
            self._header = lines[0]
            for row in lines[1:]:
                if len(row) == len(self._header):
                    self._done.add((int(row[0]), int(row[1])))

    def last_update(self) -> int | None:
        return max((u for _, u in self._done), default=None)

    def write(self, rows: Rows) -> None:
        names = rows.names()
        header = ["seed", "update", *names]
        if self._header is None:
            self._header = header
        elif self._header != header:
            raise TrackingError(f"{self.path} has columns {self._header[2:]}, this run {names}")
        if self._file is None:
            new = not self.path.is_file() or self.path.stat().st_size == 0
            self._file = open(self.path, "a", newline="")
            if new:
                csv.writer(self._file).writerow(header)
        out = csv.writer(self._file)
        arrays = [np.asarray(rows.metrics[k]) for k in names]
        for s in range(rows.num_seeds):
            for j, u in enumerate(rows.update.tolist()):
                if (s, u) in self._done:
                    continue
                out.writerow([s, u, *(_fmt(a[s, j]) for a in arrays)])
                self._done.add((s, u))
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _fmt(x) -> str:
    x = x.item() if hasattr(x, "item") else x
    if isinstance(x, float):
        return "nan" if math.isnan(x) else repr(x)   # float32 -> float64 repr: exact
    return str(x)


# --- TensorBoard -----------------------------------------------------------------------

def _tfrecords(path: Path) -> Iterator[bytes]:
    """The records of a TFRecord file (TensorBoard event file); stops at a torn tail."""
    with open(path, "rb") as f:
        data = f.read()
    at = 0
    while at + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[at:at + 8])
        end = at + 12 + length + 4
        if end > len(data):
            break
        yield data[at + 12:at + 12 + length]
        at = end


def read_tensorboard_scalars(log_dir: str | os.PathLike) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of every event file under `log_dir`: tag -> [(step, value), ...] in
    file order (needs tensorboardX for the protobuf classes)."""
    from tensorboardX.proto import event_pb2

    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(Path(log_dir).glob("**/events.out.tfevents.*")):
        for raw in _tfrecords(path):
            event = event_pb2.Event()
            try:
                event.ParseFromString(raw)
            except Exception:                 # noqa: BLE001 - a damaged record
                continue
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    out.setdefault(value.tag, []).append((int(event.step), float(value.simple_value)))
    return out


class TensorBoardWriter(Writer):
    """TensorBoard event files in `RUN_DIR/tensorboard/` (tensorboardX). Scalars
    `name/seed_i`, `name/mean|min|max` at step = env steps per seed; the config as
    hparams and as a text table. Each process writes a new event file; steps already in
    the folder's event files are not written again."""

    name = "tensorboard"

    def __init__(self, run_dir: str | os.PathLike):
        from tensorboardX import SummaryWriter

        self.log_dir = Path(run_dir) / TENSORBOARD_DIR
        existing = list(self.log_dir.glob("events.out.tfevents.*"))
        self._fresh = not existing
        self._done: set[tuple[str, int]] = set()
        for tag, points in read_tensorboard_scalars(self.log_dir).items() if existing else ():
            self._done.update((tag, step) for step, _ in points)
        # a new event file per process; the suffix keeps two opened in one second apart
        self._writer = SummaryWriter(logdir=str(self.log_dir), flush_secs=5,
                                     filename_suffix=f".{os.getpid()}.{len(existing)}")

    def last_step(self) -> int | None:
        return max((s for _, s in self._done), default=None)

    def hparams(self, record: Mapping[str, Any]) -> None:
        if not self._fresh:
            return                            # written by the first process of the run
        from tensorboardX.summary import hparams

        flat = _flat_config(record)
        exp, ssi, sei = hparams(flat, {"episode_return/mean": math.nan})
        fw = self._writer._get_file_writer()
        for summary in (exp, ssi, sei):
            fw.add_summary(summary)
        table = "| field | value |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in flat.items())
        self._writer.add_text("config", table, 0)
        self._writer.flush()

    def write(self, rows: Rows) -> None:
        steps = rows.steps()
        for j in range(len(rows.update)):
            step = int(round(steps[j]))
            for tag, value in scalars(rows, j).items():
                if (tag, step) in self._done:
                    continue
                self._writer.add_scalar(tag, value, step)
                self._done.add((tag, step))
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


# --- Weights & Biases ------------------------------------------------------------------

_WANDB_HEADER = 7          # b":W&B" + uint16 magic + uint8 version
_BLOCK = 32 * 1024         # leveldb log format: 32 KiB blocks, 7-byte record headers


def _wandb_records(path: Path) -> Iterator[bytes]:
    """Raw records of a `.wandb` transaction log (leveldb log format); stops at a torn tail."""
    for _, record in _wandb_spans(path):
        yield record


def _wandb_spans(path: Path) -> Iterator[tuple[int, bytes]]:
    """`(end offset, record)` of each complete record of a `.wandb` file."""
    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        return
    at, pieces = _WANDB_HEADER, []
    while at + 7 <= len(data):
        left = _BLOCK - at % _BLOCK
        if left < 7:                         # block trailer padding
            at += left
            continue
        length, kind = struct.unpack("<HB", data[at + 4:at + 7])
        if kind == 0 and length == 0:
            at += left
            continue
        end = at + 7 + length
        if end > len(data):
            return
        chunk = data[at + 7:end]
        at = end
        if kind == 1:                        # FULL
            yield at, chunk
        elif kind == 2:                      # FIRST
            pieces = [chunk]
        elif kind == 3:                      # MIDDLE
            pieces.append(chunk)
        elif kind == 4:                      # LAST
            pieces.append(chunk)
            yield at, b"".join(pieces)
            pieces = []


def _wandb_files(run_dir: Path, run_id: str) -> list[Path]:
    return sorted((Path(run_dir) / WANDB_DIR).glob(f"*-{run_id}*/run-{run_id}.wandb"))


def read_wandb_history(run_dir: str | os.PathLike, run_id: str | None = None) -> list[dict]:
    """The history rows (`wandb.log` calls) of the offline run files of `run_id` (default:
    the id rljax stored in the run folder), oldest file first."""
    return [_history_row(record) for record in _wandb_parsed(run_dir, run_id)
            if record.WhichOneof("record_type") == "history"]


def _wandb_parsed(run_dir, run_id):
    """The parsed records of the offline run files of `run_id` (default: the id rljax
    stored in the run folder), oldest file first; unreadable records are skipped."""
    from wandb.proto import wandb_internal_pb2

    run_dir = Path(run_dir)
    run_id = run_id or (run_dir / WANDB_DIR / WANDB_ID_FILE).read_text().strip()
    for path in _wandb_files(run_dir, run_id):
        for raw in _wandb_records(path):
            record = wandb_internal_pb2.Record()
            try:
                record.ParseFromString(raw)
            except Exception:                 # noqa: BLE001
                continue
            yield record


def _history_row(record) -> dict:
    row = {}
    for item in record.history.item:
        key = item.key or "/".join(item.nested_key)
        try:
            row[key] = json.loads(item.value_json)
        except ValueError:
            row[key] = item.value_json
    return row


def read_wandb_config(run_dir: str | os.PathLike, run_id: str | None = None) -> dict:
    """The config (hyperparameters) of the offline run files of `run_id` (default: the id
    rljax stored in the run folder), later updates winning."""
    config = {}
    for record in _wandb_parsed(run_dir, run_id):
        kind = record.WhichOneof("record_type")
        items = (record.config.update if kind == "config" else
                 record.run.config.update if kind == "run" else ())
        for item in items:
            if not item.key.startswith("_"):
                config[item.key] = json.loads(item.value_json)
    return config


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class WandbWriter(Writer):
    """A Weights & Biases run in `RUN_DIR/wandb/`, with `env_steps` as every metric's x
    axis; the run id is kept in `RUN_DIR/wandb/rljax_run_id` and a resumed run resumes
    that W&B run. Offline (`WANDB_MODE=offline`), steps already in the run's local files
    are skipped; online, steps up to the run's last logged `env_steps` (W&B's summary)."""

    name = "wandb"

    def __init__(self, run_dir: str | os.PathLike, *, project: str | None = None):
        import wandb

        self.run_dir = Path(run_dir)
        folder = self.run_dir / WANDB_DIR
        folder.mkdir(parents=True, exist_ok=True)
        id_file = folder / WANDB_ID_FILE
        resuming = id_file.is_file()
        run_id = id_file.read_text().strip() if resuming else secrets.token_hex(4)
        if not resuming:
            id_file.write_text(run_id + "\n")
        self.run_id = run_id
        self._last = -math.inf
        if resuming:
            try:
                steps = [r[X_AXIS] for r in read_wandb_history(self.run_dir, run_id) if X_AXIS in r]
            except Exception:                 # noqa: BLE001 - unreadable: rely on the summary
                steps = []
            self._last = max(steps, default=-math.inf)
        try:
            self._run = wandb.init(
                project=project or os.environ.get("WANDB_PROJECT", "rljax"), id=run_id,
                name=self.run_dir.name, dir=str(self.run_dir), resume="allow",
                settings=wandb.Settings(console="off", x_disable_stats=True, silent=True))
        except Exception as e:                 # noqa: BLE001 - login, network, ...
            message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise TrackingError(f"wandb: {message} (WANDB_MODE=offline logs without an account)") from None
        if resuming and self._run.summary.get(X_AXIS) is not None:
            self._last = max(self._last, float(self._run.summary[X_AXIS]))
        # wandb writes its files from a service process, after `finish()` returns: a run
        # resumed at once may not see them yet, so a clean close also keeps its last step
        # here. Only a clean close: after a kill, what wandb's files hold is what counts.
        self._step_file = folder / STEP_FILE
        if resuming and self._step_file.is_file():
            try:
                self._last = max(self._last, float(self._step_file.read_text()))
            except ValueError:
                pass
        self._run.define_metric(X_AXIS)
        self._run.define_metric("update", step_metric=X_AXIS)
        self._run.define_metric("*", step_metric=X_AXIS)

    def last_step(self) -> float | None:
        return None if self._last == -math.inf else self._last

    def hparams(self, record: Mapping[str, Any]) -> None:
        self._run.config.update(_flat_config(record), allow_val_change=True)

    def write(self, rows: Rows) -> None:
        steps = rows.steps()
        for j, u in enumerate(rows.update.tolist()):
            if steps[j] <= self._last:
                continue
            self._run.log({X_AXIS: float(steps[j]), "update": int(u), **scalars(rows, j)})
            self._last = float(steps[j])

    def close(self) -> None:
        if self._run is not None:
            self._run.finish()                # every logged step is now wandb's to write
            self._run = None
            if self._last > -math.inf:
                _atomic_text(self._step_file, f"{self._last!r}\n")


# --- registry and fan-out -------------------------------------------------------------

# name -> (module the writer imports, extra that installs it)
WRITERS = {"csv": (None, None), "tensorboard": ("tensorboardX", "tensorboard"), "wandb": ("wandb", "wandb")}


def check_names(names: Iterable[str]) -> list[str]:
    """Validate writer names and that their extras are installed (no import, fast);
    `TrackingError` with one line otherwise. Duplicates are dropped, order kept."""
    out: list[str] = []
    for name in names:
        name = name.strip().lower()
        if not name:
            continue
        if name not in WRITERS:
            raise TrackingError(f"unknown logger {name!r}; choose from {', '.join(WRITERS)}")
        module, extra = WRITERS[name]
        if module and importlib.util.find_spec(module) is None:
            raise TrackingError(f"--log {name} needs {module}: pip install 'rljax[{extra}]'")
        if name not in out:
            out.append(name)
    return out


def make_writer(name: str, run_dir: str | os.PathLike) -> Writer:
    if name == "csv":
        return CSVWriter(run_dir)
    if name == "tensorboard":
        return TensorBoardWriter(run_dir)
    if name == "wandb":
        return WandbWriter(run_dir)
    raise TrackingError(f"unknown logger {name!r}; choose from {', '.join(WRITERS)}")


class Tracker(Writer):
    """Several writers as one; also the adapter for `train(..., callback=)`."""

    name = "tracker"

    def __init__(self, writers: Sequence[Writer]):
        self.writers = list(writers)
        self._lock = threading.Lock()
        self._pending: dict[float, list[dict]] = {}
        self._count = 0

    @classmethod
    def open(cls, run_dir: str | os.PathLike, names: Iterable[str] = ("csv",), *,
             record: Mapping[str, Any] | None = None) -> "Tracker":
        """Writers `names` for `run_dir` (created if missing); `record` as hparams."""
        names = check_names(names)
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        tracker = cls([make_writer(n, run_dir) for n in names])
        if record is not None:
            tracker.hparams(record)
        return tracker

    def hparams(self, record):
        for w in self.writers:
            w.hparams(record)

    def write(self, rows: Rows) -> None:
        for w in self.writers:
            w.write(rows)

    def write_metrics(self, metrics: Mapping[str, Any], first_update: int = 0) -> None:
        """`write(Rows.from_metrics(metrics, first_update))`."""
        self.write(Rows.from_metrics(metrics, first_update))

    def close(self) -> None:
        for w in self.writers:
            w.close()

    def callback(self, num_seeds: int = 1, steps_per_update: int | None = None):
        """A host function for `train(..., callback=)`: JAX calls it with one seed's
        scalars per reported update (once per seed under `vmap`, seeds in order); when all
        `num_seeds` have arrived, the update is written. The update index is
        `env_steps / steps_per_update - 1` if given, else a running count of reports."""
        def cb(metrics) -> None:
            row = {k: float(np.asarray(v)) for k, v in metrics.items() if np.ndim(v) == 0}
            with self._lock:
                group = self._pending.setdefault(row[X_AXIS], [])
                group.append(row)
                if len(group) < num_seeds:
                    return
                del self._pending[row[X_AXIS]]
                if steps_per_update:
                    update = int(round(row[X_AXIS] / steps_per_update)) - 1
                else:
                    update = self._count
                self._count += 1
                arrays = {k: np.array([[g[k]] for g in group]) for k in group[0]}
                self.write(Rows(np.array([update]), arrays))
        return cb
