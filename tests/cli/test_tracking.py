"""Run tracking (`rljax.tracking`, `rljax train --log`) and `rljax plot`.

The writers are checked by reading their output back: metrics.csv, TensorBoard event
files (parsed with tensorboardX's protobufs) and W&B offline run files (parsed with
wandb's protobufs). An interrupted run is simulated from a finished one by cutting its
outputs back to what a kill after the checkpoint at update 12 (of 16) can leave, with a
writer ahead of the checkpoint and torn last records; `--resume` must then leave every
step exactly once, with the values of the uninterrupted run.
"""
import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rljax import tracking
from rljax.cli import plot_command, rundir

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--seeds", "2", "--set", "total_steps=1024", "--set", "num_envs=4", "--set", "num_steps=16"]
STEPS = 64.0 * np.arange(1, 17)          # env steps per seed after each of the 16 updates
HAS_TB = importlib.util.find_spec("tensorboardX") is not None
HAS_WANDB = importlib.util.find_spec("wandb") is not None
needs_tb = pytest.mark.skipif(not HAS_TB, reason="tensorboardX not installed: pip install 'rljax[tensorboard]'")
needs_wandb = pytest.mark.skipif(not HAS_WANDB, reason="wandb not installed: pip install 'rljax[wandb]'")


def _env(cache):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(cache), "COLUMNS": "100",
           "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONFIG_DIR": str(cache / "wandb-config"),
           "WANDB_CACHE_DIR": str(cache / "wandb-cache"), "WANDB_DATA_DIR": str(cache / "wandb-data")}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    return env


def rljax(*args, cache, timeout=240):
    return subprocess.run([sys.executable, "-m", "rljax", *map(str, args)], capture_output=True,
                          text=True, env=_env(cache), timeout=timeout, cwd=cache)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def logs():
    return ["csv"] + (["tensorboard"] if HAS_TB else []) + (["wandb"] if HAS_WANDB else [])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, cache, logs):
    """a2c, 2 seeds, 16 updates, a checkpoint every 4, every installed writer."""
    out = tmp_path_factory.mktemp("runs") / "a2c"
    proc = rljax("train", "a2c", *TINY, "--checkpoint-every", "4", "--log", ",".join(logs),
                 "--out", out, cache=cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


# --- unit: the writers on their own ------------------------------------------------------

def _metrics(seeds=2, updates=8, seed=0):
    rng = np.random.default_rng(seed)
    m = {"env_steps": np.tile(64.0 * np.arange(1, updates + 1), (seeds, 1)).astype(np.float32),
         "episode_return": rng.normal(size=(seeds, updates)).astype(np.float32),
         "loss": rng.normal(size=(seeds, updates)).astype(np.float32)}
    m["episode_return"][:, 0] = np.nan                  # no episode ended in update 0
    return m


def _rows(m, lo, hi):
    return tracking.Rows.from_metrics({k: v[:, lo:hi] for k, v in m.items()}, first_update=lo)


def test_csv_writer_appends_skips_and_matches_write_metrics(tmp_path):
    m = _metrics()
    with tracking.CSVWriter(tmp_path) as w:
        w.write(_rows(m, 0, 3))
        w.write(_rows(m, 0, 5))                         # 0..2 again: skipped
    with open(tmp_path / "metrics.csv", "a") as f:
        f.write("0,5,384.0,0.5")                        # a torn last line (a kill mid-write)
    w = tracking.CSVWriter(tmp_path)
    assert w.last_update() == 4
    w.write(_rows(m, 3, 8))
    w.close()
    got = rundir.read_metrics(tmp_path)                 # rows come segment by segment
    for k in m:
        np.testing.assert_array_equal(got[k], m[k].astype(np.float64))
    ref = tmp_path / "ref"
    ref.mkdir()
    rundir.write_metrics(ref, m)                        # same columns, same values
    assert sorted((tmp_path / "metrics.csv").read_text().splitlines()) == \
        sorted((ref / "metrics.csv").read_text().splitlines())


@needs_tb
def test_tensorboard_writer_round_trip_and_resume(tmp_path):
    m = _metrics()
    with tracking.TensorBoardWriter(tmp_path) as w:
        w.hparams({"algo": "a2c", "seeds": 2, "config": {"lr": 0.01, "hidden_sizes": [32]}})
        w.write(_rows(m, 0, 5))
    with tracking.TensorBoardWriter(tmp_path) as w:     # a second process: new event file
        assert w.last_step() == 320
        w.write(_rows(m, 0, 8))
    assert len(list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))) == 2
    scalars = tracking.read_tensorboard_scalars(tmp_path / "tensorboard")
    loss0 = scalars["loss/seed_0"]
    assert [s for s, _ in loss0] == list(range(64, 513, 64))            # each step once
    np.testing.assert_allclose([v for _, v in loss0], m["loss"][0], rtol=1e-6)
    np.testing.assert_allclose([v for _, v in scalars["loss/mean"]], m["loss"].mean(0), rtol=1e-5)
    np.testing.assert_allclose([v for _, v in scalars["loss/max"]], m["loss"].max(0), rtol=1e-6)
    assert [s for s, _ in scalars["episode_return/min"]] == list(range(128, 513, 64))  # NaN: left out


@needs_wandb
def test_wandb_offline_writer_round_trip_and_resume(tmp_path, monkeypatch):
    for k, v in _env(tmp_path).items():
        if k.startswith("WANDB_"):
            monkeypatch.setenv(k, v)
    m = _metrics()
    w = tracking.WandbWriter(tmp_path / "run")
    w.hparams({"algo": "a2c", "config": {"lr": 0.01}})
    w.write(_rows(m, 0, 5))
    w.close()
    # the fallback for a resume that comes before wandb's service has written its files
    assert float((tmp_path / "run" / tracking.WANDB_DIR / tracking.STEP_FILE).read_text()) == 320
    w = tracking.WandbWriter(tmp_path / "run")          # resumes the same run id
    assert w.last_step() == 320
    w.write(_rows(m, 0, 8))
    w.close()
    for _ in range(50):   # wandb's service process writes its files after finish() returns
        history = tracking.read_wandb_history(tmp_path / "run")
        if len(history) >= 8:
            break
        time.sleep(0.2)
    assert [r["env_steps"] for r in history] == list(range(64, 513, 64))
    np.testing.assert_allclose([r["loss/seed_1"] for r in history], m["loss"][1], rtol=1e-6)
    assert len(list((tmp_path / "run" / "wandb").glob("offline-run-*"))) == 2


def test_callback_adapter_groups_seeds():
    got = []

    class Sink(tracking.Writer):
        def write(self, rows):
            got.append(rows)

    cb = tracking.Tracker([Sink()]).callback(num_seeds=2, steps_per_update=64)
    for steps in (64.0, 128.0):
        for seed in range(2):
            cb({"env_steps": np.float32(steps), "loss": np.float32(seed)})
    assert [r.update.tolist() for r in got] == [[0], [1]]
    np.testing.assert_array_equal(got[1].metrics["loss"], [[0.0], [1.0]])


def test_unknown_or_missing_logger_is_one_line_and_status_2(cache, tmp_path):
    proc = rljax("train", "a2c", "--log", "csv,tensorbored", "--out", tmp_path / "r", cache=cache, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown logger 'tensorbored'" in lines[0], proc.stderr
    assert not (tmp_path / "r").exists()


def test_missing_extra_is_reported(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(tracking.TrackingError, match=r"pip install 'rljax\[wandb\]'"):
        tracking.check_names(["csv", "wandb"])


# --- end to end: rljax train --log ... ----------------------------------------------------

def test_every_writer_holds_every_step(run_dir, logs):
    metrics = rundir.read_metrics(run_dir)
    np.testing.assert_array_equal(metrics["env_steps"][0], STEPS)
    if "tensorboard" in logs:
        scalars = tracking.read_tensorboard_scalars(run_dir / "tensorboard")
        for tag in ("episode_return/mean", "episode_return/min", "episode_return/max", "loss/seed_0",
                    "loss/seed_1", "loss/mean"):
            assert tag in scalars, sorted(scalars)
        assert [s for s, _ in scalars["loss/seed_1"]] == STEPS.astype(int).tolist()
        np.testing.assert_allclose([v for _, v in scalars["loss/seed_1"]], metrics["loss"][1], rtol=1e-6)
    if "wandb" in logs:
        history = tracking.read_wandb_history(run_dir)
        assert [r["env_steps"] for r in history] == STEPS.tolist()
        np.testing.assert_allclose([r["loss/mean"] for r in history], metrics["loss"].mean(0), rtol=1e-5)
        config = tracking.read_wandb_config(run_dir)
        assert config["algo"] == "a2c" and config["total_steps"] == 1024 and config["seeds"] == 2


def _cut_tensorboard(folder: Path, last_step: int) -> None:
    """Keep the records up to `last_step`, then a torn record (a kill mid-write)."""
    from tensorboardX.proto import event_pb2
    for path in folder.glob("events.out.tfevents.*"):
        data, at, keep = path.read_bytes(), 0, b""
        while at + 12 <= len(data):
            (n,) = struct.unpack("<Q", data[at:at + 8])
            event = event_pb2.Event.FromString(data[at + 12:at + 12 + n])
            if event.step <= last_step:
                keep += data[at:at + 12 + n + 4]
            at += 12 + n + 4
        path.write_bytes(keep + data[:20])


def _cut_wandb(run_dir: Path, last_step: float) -> None:
    """Truncate the offline run file after the history row of `last_step`, mid-record."""
    from wandb.proto import wandb_internal_pb2
    (path,) = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    end = None
    for at, raw in tracking._wandb_spans(path):
        record = wandb_internal_pb2.Record.FromString(raw)
        if record.WhichOneof("record_type") == "history":
            if tracking._history_row(record)["env_steps"] <= last_step:
                end = at
    data = path.read_bytes()
    path.write_bytes(data[:end + 5])


def test_interrupted_and_resumed_run_has_every_step_exactly_once(run_dir, cache, tmp_path, logs):
    cut = tmp_path / "cut"
    shutil.copytree(run_dir, cut)
    # a kill after the checkpoint of update 12, during the last segment:
    for name in ("params", "checkpoints/16"):
        shutil.rmtree(cut / name)
    for name in ("learning_curve.png", "summary.txt"):
        (cut / name).unlink()
    (cut / "checkpoints" / "latest").write_text("12\n")
    # metrics.csv: all of updates 0..11, seed 0 of updates 12..13 (written ahead of the
    # checkpoint), then a torn line
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    keep = [lines[0]] + [ln for ln in lines[1:] if int(ln.split(",")[1]) < 12
                         or (ln.startswith("0,") and int(ln.split(",")[1]) < 14)]
    (cut / "metrics.csv").write_text("\n".join(keep) + "\n1,12,83")
    if "tensorboard" in logs:
        _cut_tensorboard(cut / "tensorboard", 13 * 64)          # one update ahead, torn tail
        assert max(s for s, _ in tracking.read_tensorboard_scalars(cut / "tensorboard")["loss/mean"]) == 832
    if "wandb" in logs:
        (cut / tracking.WANDB_DIR / tracking.STEP_FILE).unlink()   # written by a clean close only
        _cut_wandb(cut, 11 * 64)                                # one update behind, torn tail
        assert [r["env_steps"] for r in tracking.read_wandb_history(cut)] == STEPS[:11].tolist()

    proc = rljax("train", "--resume", cut, cache=cache)         # writers found in the folder
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "from update 12/16" in proc.stdout
    assert (cut / "metrics.csv").read_text() == (run_dir / "metrics.csv").read_text()
    if "tensorboard" in logs:
        assert len(list((cut / "tensorboard").glob("events.out.tfevents.*"))) == 2
        before = tracking.read_tensorboard_scalars(run_dir / "tensorboard")
        after = tracking.read_tensorboard_scalars(cut / "tensorboard")
        assert sorted(after) == sorted(before)
        for tag, points in before.items():
            assert sorted(after[tag]) == sorted(points), tag       # each step once, same values
            steps = [s for s, _ in after[tag]]
            assert len(steps) == len(set(steps)), tag
    if "wandb" in logs:
        history = tracking.read_wandb_history(cut)
        assert [r["env_steps"] for r in history] == STEPS.tolist()
        original = tracking.read_wandb_history(run_dir)
        for a, b in zip(history, original):
            assert {k: v for k, v in a.items() if not k.startswith("_")} == \
                   {k: v for k, v in b.items() if not k.startswith("_")}
        assert len(list((cut / "wandb").glob("offline-run-*"))) == 2   # the same run id, resumed


# --- rljax plot ---------------------------------------------------------------------------

def test_plot_two_runs(run_dir, cache, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(run_dir, other, ignore=shutil.ignore_patterns("params", "checkpoints", "wandb",
                                                                  "tensorboard"))
    record = json.loads((other / "config.json").read_text())
    record["config"]["lr"] = 0.003
    (other / "config.json").write_text(json.dumps(record))
    out = tmp_path / "cmp.png"
    proc = rljax("plot", run_dir, other, "--smooth", "3", "--out", out, cache=cache, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_command.labels([json.loads((d / "config.json").read_text()) for d in (run_dir, other)]) \
        == ["a2c CartPole-v1 lr=0.001", "a2c CartPole-v1 lr=0.003"]


@pytest.mark.parametrize("bad, message", [
    ("missing", "is not a run folder (no such folder)"),
    ("empty", "is not a run folder (no config.json)"),
    ("metric", "has no metric 'nope'"),
])
def test_plot_bad_input_is_one_line_and_status_2(run_dir, cache, tmp_path, bad, message):
    (tmp_path / "empty").mkdir()
    args = {"missing": [tmp_path / "missing"], "empty": [tmp_path / "empty"],
            "metric": [run_dir, "--metric", "nope"]}[bad]
    proc = rljax("plot", *args, "--out", tmp_path / "x.png", cache=cache, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not (tmp_path / "x.png").exists()


def test_sweep_writes_a_figure(cache, tmp_path):
    out = tmp_path / "sweep"
    proc = rljax("sweep", "a2c", "--grid", "lr=3e-3,1e-2", "--seeds", "2", "--set", "total_steps=1024",
                 "--set", "num_envs=4", "--set", "num_steps=16", "--out", out, cache=cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
