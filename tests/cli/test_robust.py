"""Nothing lost, nothing silent (issue 13): every state a kill can leave resumes to the
uninterrupted result, non-finite training stops with exit 3, a failed write keeps what
was written (exit 4), bad input and damaged run folders are one line with exit 2.

Kill points are simulated by deleting or editing the files a kill leaves. Every
subprocess shares one compilation cache (module fixture): a2c, 2 seeds, 16 updates.
"""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rljax.cli import main as cli_main, rundir
from rljax.cli.commands import exact_steps, progress_segment

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--seeds", "2", "--set", "total_steps=1024", "--set", "num_envs=4", "--set", "num_steps=16"]
OUTPUTS = ("params", "params.json", "metrics.csv", "learning_curve.png", "summary.txt")


def rljax(*args, cache, timeout=240, pythonpath=()):
    path = os.pathsep.join([*map(str, pythonpath), str(ROOT)])
    env = {**os.environ, "PYTHONPATH": path, "XDG_CACHE_HOME": str(cache), "COLUMNS": "100"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    return subprocess.run([sys.executable, "-m", "rljax", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=cache)


def assert_one_line(proc, status, *words):
    """Exit `status`, at most two lines on stderr, no traceback, `words` said."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == status, proc.stderr[-3000:]
    assert len(lines) <= 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    for word in words:
        assert word in proc.stderr, (word, proc.stderr)


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, cache):
    """The uninterrupted run: checkpoints 12 and 16 kept, latest = 16."""
    out = tmp_path_factory.mktemp("runs") / "a2c"
    proc = rljax("train", "a2c", *TINY, "--checkpoint-every", "4", "--quiet", "--out", out, cache=cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def killed_copy(run_dir, tmp_path, name="cut", *, keep=()):
    """The run folder as a kill before its outputs leaves it."""
    cut = tmp_path / name
    shutil.copytree(run_dir, cut)
    for out in OUTPUTS:
        if out not in keep:
            path = cut / out
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    return cut


def assert_same_result(cut, run_dir):
    assert (cut / "metrics.csv").read_text() == (run_dir / "metrics.csv").read_text()
    a, b = rundir.load_params(run_dir), rundir.load_params(cut)
    assert rundir.tree_digest(a) == rundir.tree_digest(b)            # bit for bit
    assert (cut / "summary.txt").is_file() and (cut / "learning_curve.png").is_file()


def test_run_folder_has_checksums_and_exact_steps(run_dir):
    meta = json.loads((run_dir / "params.json").read_text())
    assert meta["sha256"] == rundir.tree_digest(rundir.load_params(run_dir))
    assert json.loads((run_dir / "checkpoints" / "16.json").read_text())["update"] == 16
    header, first = (run_dir / "metrics.csv").read_text().splitlines()[:2]
    assert "nonfinite" in header.split(",")
    assert first.split(",")[2] == "64"                  # env_steps: an exact integer
    summary = (run_dir / "summary.txt").read_text()
    assert "best return" in summary and "final return" in summary


# 1 ---------------------------------------------------------------------------------------

def test_killed_after_the_last_checkpoint_completes_its_outputs(run_dir, cache, tmp_path):
    cut = killed_copy(run_dir, tmp_path)
    proc = rljax("train", "--resume", cut, "--quiet", cache=cache)
    assert_one_line(proc, 0)
    assert "from update 16/16" in proc.stdout
    assert_same_result(cut, run_dir)


# 2 ---------------------------------------------------------------------------------------

def test_checkpoint_committed_but_latest_not_moved_is_adopted(run_dir, cache, tmp_path):
    cut = killed_copy(run_dir, tmp_path)
    (cut / "checkpoints" / "latest").write_text("12\n")
    (cut / "checkpoints" / "16.orbax-checkpoint-tmp-123").mkdir()   # and a stray temp folder
    proc = rljax("train", "--resume", cut, "--quiet", cache=cache)
    assert_one_line(proc, 0)
    assert "from update 16/16" in proc.stdout and "adopted" in proc.stdout
    assert_same_result(cut, run_dir)
    assert not list((cut / "checkpoints").glob("*orbax-checkpoint-tmp*"))


# 6 (corrupt latest checkpoint: fall back) --------------------------------------------------

def test_damaged_latest_checkpoint_falls_back_to_the_previous_one(run_dir, cache, tmp_path):
    cut = killed_copy(run_dir, tmp_path)
    for f in (cut / "checkpoints" / "16").rglob("*"):
        if f.is_file() and f.parent.name == "d":             # flip bytes in every data file
            data = bytearray(f.read_bytes())
            data[len(data) // 2] ^= 0xFF
            f.write_bytes(bytes(data))
    proc = rljax("train", "--resume", cut, "--quiet", cache=cache)
    assert_one_line(proc, 0, "warning", "checkpoints/16", "falling back to checkpoint 12")
    assert "from update 12/16" in proc.stdout
    assert_same_result(cut, run_dir)


def test_checkpoint_failing_its_checksum_is_not_used(run_dir, cache, tmp_path):
    cut = killed_copy(run_dir, tmp_path)
    meta = cut / "checkpoints" / "16.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "sha256": "0" * 64}))
    proc = rljax("train", "--resume", cut, "--quiet", cache=cache)
    assert_one_line(proc, 0, "does not match its checksum", "falling back to checkpoint 12")
    assert_same_result(cut, run_dir)


# 3 ---------------------------------------------------------------------------------------

def test_non_finite_training_stops_with_status_3(cache, tmp_path):
    out = tmp_path / "nan"
    proc = rljax("train", "a2c", *TINY, "--set", "lr=1e30", "--checkpoint-every", "4", "--quiet",
                 "--out", out, cache=cache)
    assert_one_line(proc, 3, "diverged", "seed 0", "update 1", "params", "lr=1e+30", "max_grad_norm")
    assert not (out / "params").exists() and not (out / "checkpoints").exists()  # no NaN saved
    metrics = rundir.read_metrics(out)
    assert metrics["nonfinite"][0, 1] != 0 and metrics["nonfinite"][0, 0] == 0
    assert "diverged" in (out / "summary.txt").read_text()
    ev = rljax("eval", out, cache=cache, timeout=120)
    assert_one_line(ev, 2, "no saved params")


def test_nonfinite_code_in_the_program():
    """A NaN reward once (as from a wrapper), params going NaN, an inf metric: flagged in
    `metrics["nonfinite"]` per update and in `Result.diverged_at`; no episode ended is not."""
    import jax
    import jax.numpy as jnp

    from typing import NamedTuple

    from rljax.algos import base
    from rljax.learner import TrainState

    class S(NamedTuple):
        train_state: TrainState
        update: jax.Array

    def make(reward_nan_at, params_nan_at, inf_at):
        def update(state):
            ts, u = state
            w = jnp.where(u >= params_nan_at, jnp.nan, ts.params["w"] + 1.0)
            ts = TrainState({"w": w}, (), ts.step + 1)
            ret = jnp.where(u == reward_nan_at, jnp.nan, 1.0)
            episodes = jnp.where(u == 0, 0, 1)               # none ended at update 0
            ret = jnp.where(episodes > 0, ret, jnp.nan)
            metrics = {"episode_return": ret, "episodes": episodes, "env_steps": (u + 1.0) * 8,
                       "loss": jnp.where(u == inf_at, jnp.inf, 0.0)}
            return S(ts, u + 1), metrics
        return update

    def loop(reward_nan_at, params_nan_at, inf_at=5):
        init = lambda rng: S(TrainState({"w": jnp.zeros(2)}, (), jnp.zeros((), jnp.int32)),
                             jnp.zeros((), jnp.int32))
        run = lambda state, n, **kw: base.scan_updates(make(reward_nan_at, params_nan_at, inf_at),
                                                        state, n)
        return base.Loop(init, run, 8, 8)

    result = jax.jit(lambda k: base.train_loop(loop(3, 6), k))(jax.random.key(0))
    codes = np.asarray(result.metrics["nonfinite"])
    assert codes.tolist() == [0, 0, 0, base.NONFINITE_REWARD, 0, base.NONFINITE_METRIC,
                              base.NONFINITE_PARAMS, base.NONFINITE_PARAMS]
    assert int(result.diverged_at) == 3
    clean = jax.jit(lambda k: base.train_loop(loop(99, 99, 99), k))(jax.random.key(0))
    assert int(clean.diverged_at) == -1 and np.isnan(clean.metrics["episode_return"][0])


def test_sweep_ranks_diverged_members_last():
    from rljax import sweep

    rows = [{"member": 0, "seed": 0, "lr": 1e30, "final_return": 50.0, "mean_return": 1.0,
             "env_steps": 8.0, "diverged": True},
            {"member": 1, "seed": 0, "lr": 1e-3, "final_return": 20.0, "mean_return": 1.0,
             "env_steps": 8.0, "diverged": False},
            {"member": 2, "seed": 0, "lr": 1e-2, "final_return": float("nan"), "mean_return": 1.0,
             "env_steps": 8.0, "diverged": False}]
    ranked = sweep.rank_rows(rows)
    assert [r["lr"] for r in ranked] == [1e-3, 1e-2, 1e30]
    assert ranked[-1]["diverged"] == 1 and ranked[0]["diverged"] == 0


# 4 ---------------------------------------------------------------------------------------

_FULL_DISK = """
import errno, os
_replace = os.replace
def replace(src, dst, *a, **k):
    if str(dst).endswith({name!r}):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))
    return _replace(src, dst, *a, **k)
os.replace = replace
"""


def test_full_disk_keeps_the_params_and_names_the_path(run_dir, cache, tmp_path):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_FULL_DISK.format(name="summary.txt"))
    cut = killed_copy(run_dir, tmp_path)
    proc = rljax("train", "--resume", cut, "--quiet", cache=cache, pythonpath=[hook])
    assert_one_line(proc, 4, "summary.txt", "No space left on device", "params/", "metrics.csv")
    assert rundir.tree_digest(rundir.load_params(cut)) == rundir.tree_digest(rundir.load_params(run_dir))
    assert (cut / "metrics.csv").read_text() == (run_dir / "metrics.csv").read_text()
    assert not (cut / "summary.txt").exists()
    assert not list(cut.rglob(".*.tmp")) and not list(cut.rglob("*orbax-checkpoint-tmp*"))
    again = rljax("train", "--resume", cut, "--quiet", cache=cache)   # space again: completes
    assert_one_line(again, 0)
    assert_same_result(cut, run_dir)


# 5 ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("edit", [("num_steps", 8), ("lr", 0.5)])
def test_edited_config_is_refused(run_dir, cache, tmp_path, edit):
    cut = killed_copy(run_dir, tmp_path)
    shutil.rmtree(cut / "checkpoints" / "16")
    (cut / "checkpoints" / "16.json").unlink()
    (cut / "checkpoints" / "latest").write_text("12\n")
    record = json.loads((cut / "config.json").read_text())
    record["config"][edit[0]] = edit[1]
    (cut / "config.json").write_text(json.dumps(record))
    before = snapshot(cut)
    proc = rljax("train", "--resume", cut, "--quiet", cache=cache, timeout=120)
    assert_one_line(proc, 2, "config.json was changed")
    assert snapshot(cut) == before                          # nothing overwritten


# 6 ---------------------------------------------------------------------------------------

def _edit(cut, case):
    if case == "latest garbage":
        (cut / "checkpoints" / "latest").write_text("x7\n")
    elif case == "config not json":
        (cut / "config.json").write_text("{ nope")
    elif case == "seeds edited":
        record = json.loads((cut / "config.json").read_text())
        (cut / "config.json").write_text(json.dumps({**record, "seeds": 3}))
    elif case == "seeds not a number":
        record = json.loads((cut / "config.json").read_text())
        (cut / "config.json").write_text(json.dumps({**record, "seeds": "two"}))


@pytest.mark.parametrize("case, message", [
    ("latest garbage", "not an update number"),
    ("config not json", "not JSON"),
    ("seeds edited", "config.json was changed"),
    ("seeds not a number", '"seeds" must be an integer'),
])
def test_damaged_run_folder_is_one_line(run_dir, cache, tmp_path, case, message):
    cut = killed_copy(run_dir, tmp_path)
    _edit(cut, case)
    before = snapshot(cut)
    proc = rljax("train", "--resume", cut, "--quiet", cache=cache, timeout=120)
    assert_one_line(proc, 2, message)
    assert snapshot(cut) == before


@pytest.mark.parametrize("case, message", [
    ("flipped bytes", "refusing to use these weights"),
    ("checksum edited", "does not match its checksum"),
    ("emptied", "refusing to use these weights"),
    ("another network", "another"),
])
def test_eval_refuses_damaged_or_foreign_params(run_dir, cache, tmp_path, case, message):
    cut = tmp_path / "r"
    shutil.copytree(run_dir, cut)
    if case == "flipped bytes":
        for f in (cut / "params").rglob("*"):
            if f.is_file() and f.parent.name == "d":
                data = bytearray(f.read_bytes())
                data[len(data) // 2] ^= 0xFF
                f.write_bytes(bytes(data))
    elif case == "checksum edited":
        (cut / "params.json").write_text(json.dumps({"sha256": "0" * 64, "fingerprint": None}))
    elif case == "emptied":
        for f in (cut / "params").rglob("*"):
            if f.is_file():
                f.write_bytes(b"")
    else:       # a2c params in a run folder whose config.json says ppo, hidden (8,)
        record = json.loads((cut / "config.json").read_text())
        record["algo"] = "ppo"
        record["config"] = {"hidden_sizes": [8], "num_envs": 4, "num_steps": 16, "total_steps": 1024}
        (cut / "config.json").write_text(json.dumps(record))
        (cut / "params.json").unlink()
    proc = rljax("eval", cut, "--episodes", "1", cache=cache, timeout=120)
    assert_one_line(proc, 2, message)


# 7 - 10 ----------------------------------------------------------------------------------

def test_huge_update_count_is_refused_quickly(cache, tmp_path):
    start = time.perf_counter()
    proc = rljax("train", "a2c", "--set", "total_steps=1e30", "--quiet", "--out", tmp_path / "big",
                 cache=cache, timeout=60)
    assert_one_line(proc, 2, "2^31 - 1")
    assert not (tmp_path / "big").exists() and time.perf_counter() - start < 60


def test_progress_segment_is_fast_and_divides():
    start = time.perf_counter()
    assert progress_segment(2**31 - 1) > 0                   # a prime: no divisor near
    assert time.perf_counter() - start < 1
    assert progress_segment(16) in (1, 2) and 1000 % progress_segment(1000) == 0


@pytest.mark.parametrize("argv, message", [
    (["train", "a2c", "--set", "num_envs=0"], "num_envs must be >= 1"),
    (["train", "a2c", "--set", "num_steps=0"], "num_steps must be >= 1"),
    (["train", "a2c", "--set", "num_envs=-4"], "num_envs must be >= 1, got -4"),
    (["train", "a2c", "--set", "hidden_sizes=[0]"], "hidden_sizes"),
    (["train", "a2c", "--set", "hidden_sizes=[-5]"], "hidden_sizes"),
    (["train", "ppo", "--set", "num_epochs=0"], "num_epochs must be >= 1"),
    (["train", "ppo", "--set", "num_epochs=-1"], "num_epochs must be >= 1"),
    (["train", "ppo", "--set", "num_envs=2.5"], "num_envs must be int"),
    (["train", "a2c", "--set", "total_steps=1e30"], "2^31 - 1"),
    (["train", "a2c", "--env", "CartPol-v9"], "`rljax list`"),
    (["train", "a2c", "--config", "{seeds}"], "seeds"),
    (["train", "a2c", "--config", "{yaml}"], "line 3, column 4"),
    (["train", "a2c", "--config", "{folder}"], "without a config.json"),
    (["train", "a2c", "--out", "/dev/null/run"], "is not a folder"),
    (["sweep", "a2c", "--samples", "3", "--log-uniform", "lr=1e-2:1e-3"], "--log-uniform"),
    (["sweep", "a2c", "--samples", "3", "--log-uniform", "lr=-1:1e-3"], "0 < lo < hi"),
    (["sweep", "a2c", "--samples", "-3", "--log-uniform", "lr=1e-3:1e-2"], "--samples must be >= 1"),
    (["sweep", "a2c", "--grid", "lr=1e-3,1e-2", "--chunk-size", "0"], "--chunk-size must be >= 1"),
])
def test_bad_input_is_one_line_before_anything(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "seeds.yaml").write_text("seeds: abc\n")
    (tmp_path / "bad.yaml").write_text("lr: 1e-3\nhidden_sizes: [64, 64\nfoo: 1\n")
    (tmp_path / "empty").mkdir()
    files = {"seeds": "seeds.yaml", "yaml": "bad.yaml", "folder": "empty"}
    argv = [a.format(**files) for a in argv]
    if argv[0] == "sweep":
        argv += ["--out", str(tmp_path / "s")]
    start = time.perf_counter()
    status = cli_main(argv)
    err = capsys.readouterr().err
    assert status == 2 and message in err and err.count("\n") == 1, err
    assert time.perf_counter() - start < 15                  # nothing was compiled
    assert not (tmp_path / "runs").exists() and not (tmp_path / "s").exists()


def test_read_only_working_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "access", lambda path, mode: False)      # as if read-only (root ignores chmod)
    assert cli_main(["train", "a2c", "--set", "total_steps=1024"]) == 2
    err = capsys.readouterr().err
    assert "not writable" in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


# 10: summary flags a collapse ------------------------------------------------------------

def test_summary_shows_best_and_flags_a_collapse():
    from rljax.cli.commands import _return_rows

    up = np.concatenate([np.linspace(20, 100, 300), np.full(400, 100.0), np.linspace(100, 9.4, 100),
                         np.full(200, 9.4)])
    rows = dict(_return_rows({"episode_return": np.stack([up, up]),
                              "episodes": np.ones((2, 1000))}, 512))
    assert rows["final return"].startswith("9.4") and "100.0" in rows["best return"]
    assert "COLLAPSED" in rows["best return"]
    steady = dict(_return_rows({"episode_return": np.stack([up[:700], up[:700]]),
                                "episodes": np.ones((2, 700))}, 512))
    assert "COLLAPSED" not in steady["best return"]
    none = dict(_return_rows({"episode_return": np.full((2, 5), np.nan),
                              "episodes": np.zeros((2, 5))}, 512))
    assert none["final return"] == "no episode ended"


def test_a2c_defaults_clip_and_the_salina_preset_says_it_may_collapse():
    from rljax.algos import a2c
    assert a2c.Config().max_grad_norm == 0.5
    assert "collapse" in a2c.PRESETS["salina"].doc


# 11 --------------------------------------------------------------------------------------

def test_env_steps_exact_past_2_to_the_53():
    n, spu = 3, 3 * 2**51 + 1                                # not a power of two
    out = exact_steps({"env_steps": np.zeros((2, n), np.float32)}, 2**2, spu)
    assert out["env_steps"].dtype == np.int64
    assert [int(x) for x in out["env_steps"][1]] == [(u + 1) * spu for u in range(4, 4 + n)]
    assert int(out["env_steps"][0, -1]) > 2**53


def test_failed_orbax_write_names_the_path_and_leaves_no_temp_folder(tmp_path, monkeypatch):
    import errno

    class Full:
        def save(self, path, tree):
            Path(f"{path}.orbax-checkpoint-tmp-1").mkdir()
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            pass

    monkeypatch.setattr(rundir, "_checkpointer", Full)
    with pytest.raises(rundir.WriteError, match="params: No space left on device"):
        rundir.save_params(tmp_path, {"w": np.ones(3, np.float32)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.json"]


def test_sweep_result_marks_diverged_members():
    from rljax import sweep

    metrics = {"episode_return": np.array([[1.0, 2.0], [np.nan, np.nan], [1.0, np.nan]]),
               "env_steps": np.array([[8.0, 16.0]] * 3), "nonfinite": np.array([[0, 0], [0, 0], [0, 1]])}
    members = [{"member": i, "seed": 0, "lr": lr} for i, lr in enumerate([1e-3, 1e-2, 1e30])]
    result = sweep.SweepResult(members, metrics, 3)
    assert [r["diverged"] for r in result.rows()] == [False, False, True]
    assert [r["lr"] for r in result.rank()] == [1e-3, 1e-2, 1e30]     # no episode: NaN, not diverged
