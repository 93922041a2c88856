"""The `rljax` command end to end (subprocesses on a tiny budget) and its input checks."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rljax.cli import configs, main as cli_main, rundir
from rljax.cli.commands import _segments, build_train_record

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--seeds", "2", "--set", "total_steps=1024", "--set", "num_envs=4", "--set", "num_steps=16"]


def rljax(*args, cache, timeout=240):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(cache), "COLUMNS": "100"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)     # the command's own cache folder, under `cache`
    return subprocess.run([sys.executable, "-m", "rljax", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=cache)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, cache):
    """a2c, 2 seeds, 16 updates, a checkpoint every 4, with the progress bar on."""
    out = tmp_path_factory.mktemp("runs") / "a2c"
    proc = rljax("train", "a2c", *TINY, "--checkpoint-every", "4", "--out", out, cache=cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_run_folder_files(run_dir):
    record = json.loads((run_dir / "config.json").read_text())
    assert record["algo"] == "a2c" and record["seeds"] == 2 and record["checkpoint_every"] == 4
    assert record["config"]["total_steps"] == 1024 and record["config"]["hidden_sizes"] == [64, 64]
    metrics = rundir.read_metrics(run_dir)
    assert metrics["env_steps"].shape == (2, 16)
    np.testing.assert_array_equal(metrics["env_steps"][0], 64.0 * np.arange(1, 17))
    assert (run_dir / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run_dir / "params").is_dir() and (run_dir / "summary.txt").is_file()
    assert rundir.latest_checkpoint(run_dir) == 16
    assert not list(run_dir.glob(".*.tmp"))               # no temp files left behind
    summary = (run_dir / "summary.txt").read_text()
    assert "2 (vmapped over 2 devices" in summary         # conftest: 4 CPU devices, 2 seeds
    assert "CPU-s)" in summary and "per CPU-s" in summary


def test_eval(run_dir, cache):
    proc = rljax("eval", run_dir, "--episodes", "3", cache=cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "all" in proc.stdout and "greedy" in proc.stdout


def test_resume_gives_the_uninterrupted_result(run_dir, cache, tmp_path):
    cut = tmp_path / "cut"
    shutil.copytree(run_dir, cut)                         # as if killed after update 12
    for name in ("params", "checkpoints/16"):
        shutil.rmtree(cut / name)
    for name in ("metrics.csv", "learning_curve.png", "summary.txt"):
        (cut / name).unlink()
    (cut / "checkpoints" / "latest").write_text("12\n")
    proc = rljax("train", "--resume", cut, cache=cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "from update 12/16" in proc.stdout
    assert (cut / "metrics.csv").read_text() == (run_dir / "metrics.csv").read_text()
    a, b = rundir.load_params(run_dir), rundir.load_params(cut)
    for x, y in zip(*(sorted(_leaves(t)) for t in (a, b))):
        np.testing.assert_array_equal(x[1], y[1])
    again = rljax("train", "--resume", cut, cache=cache)  # finished: refused
    assert again.returncode == 2 and "finished already" in again.stderr


def test_resume_on_another_device_count(run_dir, cache, tmp_path, monkeypatch):
    """Checkpoints hold host arrays: a run split over 2 devices resumes on 1."""
    cut = tmp_path / "cut"
    shutil.copytree(run_dir, cut)
    for name in ("params", "checkpoints/16", "metrics.csv", "learning_curve.png", "summary.txt"):
        shutil.rmtree(cut / name) if (cut / name).is_dir() else (cut / name).unlink()
    (cut / "checkpoints" / "latest").write_text("12\n")
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    proc = rljax("train", "--resume", cut, "--quiet", cache=cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 (vmapped, base seed" in (cut / "summary.txt").read_text()
    done, uncut = rundir.read_metrics(cut), rundir.read_metrics(run_dir)
    np.testing.assert_array_equal(done["episode_return"][:, :12], uncut["episode_return"][:, :12])
    np.testing.assert_allclose(done["episode_return"], uncut["episode_return"], rtol=1e-4)


def _leaves(tree, prefix=""):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _leaves(v, f"{prefix}/{k}")
    else:
        yield prefix, np.asarray(tree)


def test_existing_out_is_refused(run_dir, capsys):
    assert cli_main(["train", "a2c", "--out", str(run_dir)]) == 2
    assert "not empty" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["train", "ppx"], "unknown algorithm 'ppx'"),
    (["train", "--env", "CartPol-v1"], "CartPole-v1"),
    (["train", "--set", "lrr=1e-3"], "unknown field 'lrr'"),
    (["train", "--set", "lr=fast"], "lr must be float"),
    (["train", "--set", "num_envs=2.5"], "num_envs must be int"),
    (["train", "--set", "hidden_sizes=[64,x]"], "hidden_sizes must be int"),
    (["train", "ppo", "--set", "num_minibatches=3"], "must be divisible by num_minibatches=3"),
    (["train", "a2c", "--set", "total_steps=10"], "less than one update"),
    (["train", "--set", "lr"], "field=value"),
    (["train", "--seeds", "0"], "--seeds must be >= 1"),
    (["train", "--nope"], "unrecognized arguments"),
    (["eval", "/nonexistent/run"], "not a run folder"),
])
def test_bad_input_is_one_line_and_status_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    status = cli_main(argv)
    err = capsys.readouterr().err
    assert status == 2
    assert message in err and err.count("\n") == 1, err
    assert time.perf_counter() - start < 15                 # nothing was compiled
    assert not (tmp_path / "runs").exists()                 # and no run folder made


def test_exit_status_of_the_process(cache):
    proc = rljax("train", "dqx", cache=cache, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["rljax: error: unknown algorithm 'dqx' (did you mean dqn?); known: "
                                                + ", ".join(configs.ALGOS)]


def _args(argv):
    return cli_main.__globals__["build_parser"]().parse_args(argv)


def test_config_file_round_trip(tmp_path):
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("algo: a2c\npreset: salina\nlr: 3e-3\nhidden_sizes: [16, 16]\ncore: gru\n"
                         "seeds: 3\n")
    record = build_train_record(_args(["train", "--config", str(yaml_file), "--set", "gamma=0.9"]))
    assert record["algo"] == "a2c" and record["seeds"] == 3 and record["preset"] == "salina"
    config = configs.make_config(configs.ALGOS["a2c"], record["config"])
    assert config.lr == 3e-3 and config.hidden_sizes == (16, 16) and config.core == "gru"
    assert config.gamma == 0.9 and config.max_grad_norm == float("inf")   # inf from the preset
    assert config.max_episode_steps == 100
    json_file = tmp_path / "config.json"
    json_file.write_text(json.dumps(record))                # a run folder's config.json
    again = build_train_record(_args(["train", "--config", str(json_file)]))
    assert again["config"] == record["config"] and again["algo"] == "a2c"
    assert configs.make_config(configs.ALGOS["a2c"], again["config"]) == config


def test_coerce():
    cls = configs.ALGOS["ppo"].Config
    assert configs.coerce(cls, "total_steps", configs.parse_value("5e5")) == 500_000
    assert configs.coerce(cls, "hidden_sizes", configs.parse_value("[64, 64]")) == (64, 64)
    assert configs.coerce(cls, "hidden_sizes", configs.parse_value("32")) == (32,)
    assert configs.coerce(cls, "core", configs.parse_value("null")) is None
    assert configs.coerce(cls, "lr", configs.parse_value("1e-3")) == 1e-3
    assert configs.coerce(cls, "anneal_lr", configs.parse_value("false")) is False
    with pytest.raises(configs.UsageError):
        configs.coerce(cls, "anneal_lr", 1)


def test_segments():
    assert _segments(0, 10, None) == [10]
    assert _segments(0, 10, 4) == [4, 4, 2]
    assert _segments(8, 10, 4) == [2]
    assert _segments(10, 10, 4) == []


def test_list(capsys):
    assert cli_main(["list"]) == 0
    out = capsys.readouterr().out
    assert "CartPole-v1" in out and "traced" in out and "static" in out and "reinforce" in out


def test_default_progress_run_is_cached_and_live_progress_also_works(tmp_path):
    """With the progress bar on (advanced between segments), the training programs hold
    no host callback, so JAX's persistent cache keeps them: a second run compiles nothing."""
    cache = tmp_path / "xdg"
    cache.mkdir()
    first = rljax("train", "a2c", *TINY, "--out", tmp_path / "one", cache=cache)
    assert first.returncode == 0, first.stderr[-3000:]
    entries = set(os.listdir(cache / "rljax" / "jax"))
    assert entries                                             # something was cached
    second = rljax("train", "a2c", *TINY, "--out", tmp_path / "two", cache=cache)
    assert second.returncode == 0, second.stderr[-3000:]
    assert set(os.listdir(cache / "rljax" / "jax")) == entries  # nothing new to compile
    np.testing.assert_array_equal(rundir.read_metrics(tmp_path / "one")["loss"],
                                  rundir.read_metrics(tmp_path / "two")["loss"])
    live = rljax("train", "a2c", *TINY, "--live-progress", "--out", tmp_path / "live", cache=cache)
    assert live.returncode == 0, live.stderr[-3000:]
    np.testing.assert_allclose(rundir.read_metrics(tmp_path / "live")["loss"],
                               rundir.read_metrics(tmp_path / "one")["loss"], rtol=1e-4, atol=1e-6)


def test_sweep_command(tmp_path):
    out = tmp_path / "sweep"
    proc = rljax("sweep", "a2c", "--grid", "lr=3e-3,1e-2", "--seeds", "2",
                 "--set", "total_steps=1024", "--out", out, cache=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = (out / "sweep.csv").read_text().splitlines()
    assert len(rows) == 1 + 4 and "lr" in rows[0]
    assert (out / "curves.csv").is_file() and json.loads((out / "sweep.json").read_text())["seeds"] == 2
    assert "final_return" in proc.stdout


@pytest.mark.parametrize("args, message", [
    (["--grid", "num_envs=4,8"], "num_envs is a static field"),
    (["--grid", "lrr=1,2"], "unknown field 'lrr' in --grid (did you mean lr?)"),
    (["--log-uniform", "lr=1e-3:1e-2"], "need --samples N"),
    (["--samples", "3", "--uniform", "lr=a:b"], "--uniform expects FIELD=LOW:HIGH"),
])
def test_sweep_command_errors(tmp_path, args, message):
    proc = rljax("sweep", "a2c", *args, "--out", tmp_path / "s", cache=tmp_path, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert not (tmp_path / "s").exists()


def test_bench_command_help(tmp_path):
    proc = rljax("bench", "--help", cache=tmp_path, timeout=120)
    assert proc.returncode == 0 and "--only" in proc.stdout and "ppo-1" in proc.stdout
