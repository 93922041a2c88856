"""`rljax train` and `rljax eval`: configs in, run folders out.

Training is one compiled program per segment length: `jit(vmap(loop.run))` over seeds,
the seeds split over the devices (`parallel.over_seeds`; on a CPU the command made one
device per core before JAX started). Checkpoints hold host arrays, so a run resumes on
any device count (bit for bit on the same one). Without `--checkpoint-every` the whole
run is one segment; with it, segments of N updates, a checkpoint after each. A resumed run replays the same segments from the
last checkpoint, so it computes exactly what the uninterrupted run computes.

Bad input is found before anything compiles: the config is built and coerced field by
field, `algo.loop(config)` runs the algorithm's own checks (sizes that must divide,
env ids, network kinds), and the program is traced (`.trace()`, no XLA compile) with
errors turned into one line and exit status 2.
"""
from __future__ import annotations

import functools
import shutil
import sys
import time
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
from rich.console import Console
from rich.table import Table

import rljax
from rljax import parallel
from rljax.algos import seed_keys
from rljax.algos.base import NONFINITE_PARAMS, NONFINITE_REWARD, check_num_updates
from rljax.algos.common import make_env
from rljax.cli import configs, loggers, plots, rundir
from rljax.cli.configs import UsageError
from rljax.cli.progress import Progress, reports_every
from rljax.config import StaticFieldError
from rljax.metrics import final_return, return_trend
from rljax.rollout import evaluate

_INPUT_ERRORS = (ValueError, TypeError, KeyError, StaticFieldError)


def _checked(fn, *args, **kwargs):
    """Run `fn`; the algorithms' input errors become `UsageError` (one line)."""
    try:
        return fn(*args, **kwargs)
    except _INPUT_ERRORS as e:
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(configs.cli_message(message)) from None


def progress_segment(num_updates: int, reports: int = 40) -> int:
    """Updates per segment when the progress bar advances between segments: a divisor
    of `num_updates` near `num_updates / reports`, so one program serves every segment.
    Divisors come in pairs `(d, n // d)` with `d <= sqrt(n)`: O(sqrt n) steps."""
    target = max(1, num_updates // reports)
    best, d = 1, 1
    while d * d <= num_updates:
        if num_updates % d == 0:
            for c in (d, num_updates // d):
                if (abs(c - target), c) < (abs(best - target), best):
                    best = c
        d += 1
    return best if num_updates // best <= 4 * reports else target


def _segments(start: int, total: int, every: int | None) -> list[int]:
    """Segment lengths from update `start` to `total` (all of them: one segment)."""
    if not every:
        return [total - start] if total > start else []
    out, at = [], start
    while at < total:
        out.append(min(every, total - at))
        at += out[-1]
    return out


class Diverged(Exception):
    """Training went non-finite (NaN/inf): one line, exit status 3."""


def _int_setting(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = None
        if number is None or not number.is_integer():
            raise UsageError(f"{name} must be an integer >= {low}, got {value!r}")
        value = int(number)
    if value < low:
        raise UsageError(f"{name} must be >= {low}, got {value}")
    return value


def build_train_record(args) -> dict:
    """What the run is: algo, seeds, checkpointing and every config field."""
    if args.resume:
        if args.set or args.config or args.env or args.algo or getattr(args, "preset", None):
            raise UsageError("--resume continues a run exactly as configured; drop ALGO, --env, "
                             "--set, --preset and --config")
        return rundir.read_config(Path(args.resume))
    file_data = configs.read_config_file(args.config) if args.config else {}
    run_keys = ("algo", "seeds", "seed", "checkpoint_every", "rljax_version", "preset",
                "steps_per_update")
    if isinstance(file_data.get("config"), dict):      # a run folder's config.json
        fields = dict(file_data["config"])
    else:                                              # a flat mapping; may name algo/seeds
        fields = {k: v for k, v in file_data.items() if k not in run_keys}
    algo_name = args.algo or file_data.get("algo") or configs.DEFAULT_ALGO
    if not isinstance(algo_name, str):
        raise UsageError(f"algo must be a name ({', '.join(configs.ALGOS)}), got {algo_name!r}")
    algo = configs.get_algo(algo_name)
    changes = dict(fields)
    if args.env:
        changes["env_id"] = args.env
    changes.update(configs.parse_sets(args.set or []))
    preset = args.preset or file_data.get("preset")
    config = configs.make_config(algo, changes, preset=preset)
    loop = _checked(algo.loop, config)
    _checked(check_num_updates, loop.num_updates)
    seeds = args.seeds if args.seeds is not None else _int_setting(
        file_data.get("seeds", 4), f"seeds (in {args.config})", 1)
    if seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {seeds}")
    every = args.checkpoint_every
    if every is not None and every < 1:
        raise UsageError(f"--checkpoint-every must be >= 1, got {every}")
    rundir.check_writable(args.out)
    return {"algo": algo_name, "preset": preset, "seeds": seeds, "seed": args.seed,
            "checkpoint_every": every, "steps_per_update": loop.steps_per_update,
            "rljax_version": rljax.__version__, "config": configs.to_json(config)}


def exact_steps(metrics: dict, first_update: int, steps_per_update: int) -> dict:
    """`metrics` (`[seeds, n]` each, host arrays) with `env_steps` recomputed exactly as
    int64 from the update index: `(u + 1) * steps_per_update` (the in-program count is
    float32, approximate past 2^24)."""
    out = {k: np.asarray(v) for k, v in metrics.items()}
    if "env_steps" in out:
        seeds, n = out["env_steps"].shape[:2]
        steps = (np.arange(first_update + 1, first_update + n + 1, dtype=np.int64)
                 * np.int64(steps_per_update))
        out["env_steps"] = np.broadcast_to(steps, (seeds, n)).copy()
    return out


def _concat(pieces: list[dict]) -> dict:
    return jax.tree.map(lambda *xs: np.concatenate([np.asarray(x) for x in xs], axis=1), *pieces)


_WORTH_CHECKING = ("lr", "max_grad_norm", "clip_eps")


def _first_bad(metrics: dict, first_update: int) -> dict | None:
    """The first (update, seed) whose `nonfinite` code is set, and what went non-finite."""
    codes = np.asarray(metrics.get("nonfinite", np.zeros((1, 0))))
    bad = np.argwhere(codes != 0)
    if not len(bad):
        return None
    u = int(bad[:, 1].min())
    seeds = sorted(int(s) for s in bad[bad[:, 1] == u][:, 0])
    s = seeds[0]
    code = int(codes[s, u])
    what = []
    episodes = np.asarray(metrics["episodes"])[s, u] if "episodes" in metrics else 1
    for name in rundir.metric_names(metrics):
        if name in ("nonfinite", "env_steps") or (name in ("episode_return", "episode_length")
                                                  and episodes == 0):
            continue
        value = np.asarray(metrics[name])[s, u]
        if np.issubdtype(value.dtype, np.inexact) and not np.all(np.isfinite(value)):
            what.append("reward (episode_return)" if name == "episode_return" else name)
    if code & NONFINITE_PARAMS:
        what.append("params")
    if code & NONFINITE_REWARD and not any(w.startswith("reward") for w in what):
        what.append("reward")
    affected = int(np.any(codes != 0, axis=1).sum())
    return {"update": first_update + u, "seed": s, "what": what, "seeds": affected,
            "total_seeds": codes.shape[0]}


class Timing(NamedTuple):
    """How long a `rljax train` call took: compile (and init), training wall time, the
    CPU time of training (all threads), and the devices the seeds were split over."""

    compile_s: float
    train_s: float
    cpu_s: float
    devices: int


def train(args, console: Console) -> Path:
    record = build_train_record(args)
    algo = configs.get_algo(record["algo"])
    config = configs.make_config(algo, record["config"])
    seeds, every = record["seeds"], record["checkpoint_every"]
    keys = seed_keys(seeds, start=record["seed"])
    loop = _checked(algo.loop, config)
    _checked(check_num_updates, loop.num_updates)
    record.setdefault("steps_per_update", loop.steps_per_update)   # folders of rljax 0.1.0
    init, run, num_updates = jax.vmap(loop.init), loop.run, loop.num_updates
    steps_per_update = loop.steps_per_update
    fingerprint = rundir.fingerprint(record["algo"], configs.to_json(config), seeds, record["seed"])

    state_like = _checked(jax.eval_shape, init, keys)
    start, state, done_metrics = 0, None, None
    if args.resume:
        run_dir = Path(args.resume)
        start, state, done_metrics = _resume_point(console, run_dir, loop, state_like,
                                                   fingerprint, num_updates)
    # Segments: checkpoints when asked; else, with a progress bar, ~40 equal pieces so the
    # bar advances between them and the programs stay free of host callbacks (cacheable);
    # with --live-progress or --quiet, one piece.
    live = args.live_progress and not args.quiet
    if every:
        seg = every
    elif args.quiet or live:
        seg = None
    else:
        seg = progress_segment(num_updates)
    segments = _segments(start, num_updates, seg)
    progress = Progress(num_updates * steps_per_update, seeds, start_steps=start * steps_per_update,
                        console=console, enabled=not args.quiet, label=record["algo"])
    cb_every = reports_every(num_updates)

    mesh = parallel.seed_mesh(seeds)          # seeds split over the devices (CPU: cores)

    def segment_fn(n):
        fn = functools.partial(run, num_updates=n, callback=progress.callback if live else None,
                               callback_every=cb_every)
        return parallel.over_seeds(fn, mesh)

    state_like = jax.tree.map(lambda x: jax.ShapeDtypeStruct(
        x.shape, x.dtype, sharding=parallel.seed_sharding(mesh)), state_like)
    programs = {n: segment_fn(n) for n in sorted(set(segments))}
    traced = {n: _checked(p.trace, state_like) for n, p in programs.items()}   # errors: exit 2

    if not args.resume:
        run_dir = rundir.new_run_dir(args.out, record["algo"], config.env_id)
        rundir.write_config(run_dir, record)
    tracker = loggers.open_tracker(args, record, run_dir)
    if done_metrics is not None:
        tracker.write_metrics(exact_steps(done_metrics, 0, steps_per_update))

    t_start = time.perf_counter()
    diverged = None
    with progress:
        compiled = {n: t.lower().compile() for n, t in traced.items()}
        if state is None:
            state = jax.jit(init)(keys)
        state = jax.block_until_ready(parallel.put_seeds(state, mesh))
        compile_s = time.perf_counter() - t_start
        cpu_start = time.process_time()
        progress.started(record["algo"])
        pieces = [] if done_metrics is None else [done_metrics]
        at = start
        for n in segments:
            state, metrics = compiled[n](state)
            metrics = jax.device_get(metrics)
            pieces.append(metrics)
            at += n
            tracker.write_metrics(exact_steps(metrics, at - n, steps_per_update), first_update=at - n)
            diverged = _first_bad(metrics, at - n)
            if diverged is not None:          # keep the last finite checkpoint: save nothing
                break
            if every:
                pieces = [_concat(pieces)]
                rundir.save_checkpoint(run_dir, at, state, pieces[0], fingerprint=fingerprint)
            if not live:
                progress.advance(at * steps_per_update, _last_return(metrics))
        jax.block_until_ready(state)
    timing = Timing(compile_s, time.perf_counter() - t_start - compile_s,
                    time.process_time() - cpu_start, mesh.size)
    metrics = exact_steps(_concat(pieces), 0, steps_per_update)
    context = dict(console=console, run_dir=run_dir, record=record, config=config,
                   metrics=metrics, timing=timing,
                   updates_run=metrics["env_steps"].shape[1] - start, tracker=tracker)
    if diverged is not None:
        _finish_diverged(diverged=diverged, **context)
    else:
        _finish(params=state.train_state.params, fingerprint=fingerprint, **context)
    return run_dir


def _resume_point(console, run_dir: Path, loop, state_like, fingerprint: str, num_updates: int):
    """`(start, state, metrics so far)` to resume `run_dir` from: the newest committed
    checkpoint that reads back intact (one newer than `latest` is adopted: a kill came
    between its commit and `latest` moving; a damaged one is skipped with one line)."""
    params_done = (run_dir / rundir.PARAMS).exists()
    if params_done and (run_dir / rundir.SUMMARY).exists():
        raise UsageError(f"{run_dir} finished already (it has {rundir.PARAMS}/); "
                         f"`rljax eval {run_dir}` evaluates it")
    latest = rundir.latest_checkpoint(run_dir)              # garbage: one line, exit 2
    candidates = [n for n in rundir.committed_checkpoints(run_dir) if 0 < n <= num_updates]
    recorded = []
    for n in candidates:
        try:
            recorded.append(rundir.checkpoint_fingerprint(run_dir, n))
        except rundir.DamagedError:
            continue
    if params_done:
        try:
            recorded.append(rundir._read_meta(run_dir / rundir.PARAMS_META).get("fingerprint"))
        except (rundir.DamagedError, AttributeError):
            pass
    if any(fp is not None and fp != fingerprint for fp in recorded):
        raise UsageError(f"{run_dir / rundir.CONFIG} was changed after the run started (it no "
                         f"longer matches the fingerprint saved with its checkpoints); undo the "
                         f"edit, or start a new run: rljax train --config {run_dir / rundir.CONFIG} "
                         f"--out NEW")
    rundir.clean_partial(run_dir)                           # what a kill left half done
    if not candidates:
        return 0, None, None
    one = functools.partial(loop.run, num_updates=1)
    metric_like = _checked(jax.eval_shape, jax.vmap(one), state_like)[1]
    damaged = []
    for n in candidates:
        try:
            state, metrics = rundir.load_checkpoint(run_dir, n, state_like, metric_like)
        except rundir.DamagedError as e:
            damaged.append(str(e))
            continue
        note = ""
        if latest is not None and n > latest:
            note = (f" (checkpoint {n} is newer than checkpoints/latest = {latest}: adopted, a "
                    f"kill came between its commit and `latest` moving)")
        if damaged:
            _warn(f"{damaged[0]}{f' (and {len(damaged) - 1} more)' if len(damaged) > 1 else ''}; "
                  f"falling back to checkpoint {n}")
        console.print(f"resuming {run_dir} from update {n}/{num_updates}{note}", soft_wrap=True)
        return n, state, metrics
    _warn(f"{damaged[0]}{f' (and {len(damaged) - 1} more)' if len(damaged) > 1 else ''}; no "
          f"intact checkpoint left: starting {run_dir} over from update 0")
    return 0, None, None


def _warn(message: str) -> None:
    print(f"rljax: warning: {message}", file=sys.stderr, flush=True)


def _last_return(metrics) -> float:
    """Mean over seeds of the last finite episode return of a segment (NaN if none)."""
    ret = np.asarray(metrics["episode_return"])        # [seeds, updates]
    last = [r[np.isfinite(r)][-1] for r in ret if np.isfinite(r).any()]
    return float(np.mean(last)) if last else float("nan")


def _return_rows(metrics, steps_per_update: int) -> list[tuple[str, str]]:
    """Final and best return, a collapse flagged; "no episode ended" is not NaN."""
    if np.asarray(metrics["episode_return"]).shape[-1] == 0:
        return [("final return", "none (no finite update)")]
    trend = return_trend(metrics["episode_return"])
    final = final_return(metrics["episode_return"])
    if not np.isfinite(final).any():
        ended = int(np.asarray(metrics.get("episodes", np.zeros(1))).sum())
        return [("final return", "no episode ended" if ended == 0 else
                 "no episode ended in the last 10% of updates")]
    rows = [("final return", f"{np.nanmean(final):.1f} ± {np.nanstd(final):.1f} over seeds "
                             "(last 10% of updates)"),
            ("per seed", "  ".join(f"{r:.1f}" if np.isfinite(r) else "no episode" for r in final))]
    if np.isfinite(trend.best):
        best = (f"{trend.best:.1f} (10% window ending at update {trend.best_update}, "
                f"{(trend.best_update + 1) * steps_per_update:,} env steps)")
        if trend.collapsed:
            best += (f"; COLLAPSED: the final return {trend.final:.1f} is far below it "
                     f"(check lr and max_grad_norm, or stop earlier)")
        rows.append(("best return", best))
    return rows


def _finish(*, console, run_dir, record, config, params, metrics, timing, updates_run, tracker,
            fingerprint):
    """Outputs in order of worth: params, metrics.csv, summary.txt, the plot, then the
    tracker; a write that fails names its path and what was written before it."""
    written = []
    try:
        params_path = run_dir / rundir.PARAMS
        if params_path.exists() and not rundir.params_digest_matches(run_dir, params):
            shutil.rmtree(params_path)                    # a resumed run's own, replaced
        if not params_path.exists():
            rundir.save_params(run_dir, params, fingerprint=fingerprint)
        written.append(f"{rundir.PARAMS}/")
        rundir.write_metrics(run_dir, metrics)
        written.append(rundir.METRICS)
        rows = _summary_rows(run_dir, record, config, metrics, timing, updates_run)
        rundir.atomic_write(run_dir / rundir.SUMMARY, "".join(f"{k:14} {v}\n" for k, v in rows))
        written.append(rundir.SUMMARY)
        plots.learning_curve(metrics, run_dir / rundir.CURVE,
                             title=f"{record['algo']} on {config.env_id} ({record['seeds']} seeds)")
        written.append(rundir.CURVE)
        tracker.close()
    except rundir.WriteError as e:
        raise rundir.WriteError(f"{e} (kept: {', '.join(written) or 'nothing new'})") from None
    _print_rows(console, "rljax train", rows)


def _summary_rows(run_dir, record, config, metrics, timing, updates_run, extra=(),
                  finite_updates=None):
    seeds, updates = np.asarray(metrics["env_steps"]).shape
    steps = int(np.asarray(metrics["env_steps"])[0, -1]) if updates else 0
    steps_run = record["steps_per_update"] * updates_run
    return [
        ("run folder", str(run_dir)),
        ("algorithm", f"{record['algo']} on {config.env_id}"),
        ("seeds", f"{seeds} (vmapped{f' over {timing.devices} devices' if timing.devices > 1 else ''}"
                  f", base seed {record['seed']})"),
        ("updates", f"{updates} of {record['steps_per_update']:,} env steps per seed "
                    f"({steps:,} in all); one row of {rundir.METRICS} each"),
        ("time", f"compile+init {timing.compile_s:.1f} s, train {timing.train_s:.1f} s "
                 f"({timing.cpu_s:.1f} CPU-s)"
                 + (f", {steps_run * seeds / timing.train_s:,.0f} env steps/s, "
                    f"{steps_run * seeds / max(timing.cpu_s, 1e-9):,.0f} per CPU-s"
                    if timing.train_s > 0 else "")),
        *extra,
        *_return_rows({k: np.asarray(v)[:, :finite_updates] for k, v in metrics.items()},
                      record["steps_per_update"]),
        ("files", f"{rundir.CONFIG}, {rundir.METRICS}, {rundir.CURVE}, {rundir.PARAMS}/"
                  if not extra else f"{rundir.CONFIG}, {rundir.METRICS}, {rundir.CURVE} (no params: "
                                    f"diverged)"),
        ("next", f"rljax eval {run_dir}" if not extra else f"lower lr or max_grad_norm, then "
                                                            f"rljax train --config {run_dir / rundir.CONFIG}"),
    ]


def _finish_diverged(*, console, run_dir, record, config, metrics, timing, updates_run,
                     tracker, diverged):
    """Non-finite training: keep the metrics (and the last finite checkpoint), save no
    params, say where it went wrong in one line (exit status 3)."""
    u, s = diverged["update"], diverged["seed"]
    what = ", ".join(diverged["what"]) or "a value"
    values = ", ".join(f"{k}={getattr(config, k):g}" for k in _WORTH_CHECKING
                       if isinstance(getattr(config, k, None), (int, float)))
    seeds = (f" ({diverged['seeds']} of {diverged['total_seeds']} seeds)"
             if diverged["total_seeds"] > 1 else "")
    kept = rundir.committed_checkpoints(run_dir)
    line = (f"training diverged: seed {record['seed'] + s}{seeds}, update {u} "
            f"(env step {(u + 1) * record['steps_per_update']:,}): {what} not finite; check "
            f"{values}. Metrics kept in {run_dir}/{rundir.METRICS}"
            + (f", last finite checkpoint {kept[0]}" if kept else "") + "; no params saved")
    extra = [("diverged", f"seed {record['seed'] + s}{seeds}, update {u}: {what} not finite "
                          f"(metrics.csv column nonfinite); returns below are of updates 0..{u - 1}")]
    written = []
    try:
        rundir.write_metrics(run_dir, metrics)
        written.append(rundir.METRICS)
        rows = _summary_rows(run_dir, record, config, metrics, timing, updates_run, extra,
                             finite_updates=u)
        rundir.atomic_write(run_dir / rundir.SUMMARY, "".join(f"{k:14} {v}\n" for k, v in rows))
        written.append(rundir.SUMMARY)
        plots.learning_curve(metrics, run_dir / rundir.CURVE,
                             title=f"{record['algo']} on {config.env_id} (diverged)")
        tracker.close()
    except rundir.WriteError as e:
        raise rundir.WriteError(f"{e} (kept: {', '.join(written) or 'nothing new'})") from None
    raise Diverged(line)


def _print_rows(console, title, rows):
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold cyan")
    table.add_column()
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)


def eval_run(args, console: Console) -> dict:
    run_dir = Path(args.run_dir)
    record = rundir.read_config(run_dir)
    algo = configs.get_algo(record["algo"])
    config = configs.make_config(algo, record["config"])
    if args.episodes < 1:
        raise UsageError(f"--episodes must be >= 1, got {args.episodes}")
    seeds = record["seeds"]
    loop = _checked(algo.loop, config)
    like = _checked(jax.eval_shape, lambda k: jax.vmap(loop.init)(k).train_state.params,
                    seed_keys(seeds, start=record["seed"]))
    fingerprint = rundir.fingerprint(record["algo"], configs.to_json(config), seeds, record["seed"])
    params = rundir.load_params(run_dir, like, fingerprint=fingerprint)
    env, env_params, spec = make_env(config)
    agent = algo.make_agent(config, spec)
    greedy = not args.stochastic

    def one(p, key):
        kwargs = {"greedy": True} if greedy else {}
        return evaluate(agent, p, env, env_params, key, args.episodes, **kwargs)

    keys = seed_keys(seeds, start=args.seed)
    with console.status("evaluating"):
        returns, lengths = jax.block_until_ready(jax.jit(jax.vmap(one))(params, keys))
    returns, lengths = np.asarray(returns), np.asarray(lengths)
    table = Table(title=f"{record['algo']} on {config.env_id}: {args.episodes} "
                        f"{'greedy' if greedy else 'sampled'} episodes per seed", title_justify="left")
    for col in ("seed", "mean", "std", "min", "max", "mean length"):
        table.add_column(col, justify="right")
    for s in range(seeds):
        r = returns[s]
        table.add_row(str(s), f"{r.mean():.2f}", f"{r.std():.2f}", f"{r.min():.2f}", f"{r.max():.2f}",
                      f"{lengths[s].mean():.1f}")
    table.add_row("all", f"{returns.mean():.2f}", f"{returns.std():.2f}", f"{returns.min():.2f}",
                  f"{returns.max():.2f}", f"{lengths.mean():.1f}", style="bold")
    console.print(table)
    return {"returns": returns, "lengths": lengths}
