"""`rljax train` and `rljax eval`: configs in, run folders out.

Training is one compiled program per segment length: `jit(vmap(loop.run))` over seeds.
Without `--checkpoint-every` the whole run is one segment; with it, segments of N
updates, a checkpoint after each. A resumed run replays the same segments from the
last checkpoint, so it computes exactly what the uninterrupted run computes.

Bad input is found before anything compiles: the config is built and coerced field by
field, `algo.loop(config)` runs the algorithm's own checks (sizes that must divide,
env ids, network kinds), and the program is traced (`.trace()`, no XLA compile) with
errors turned into one line and exit status 2.
"""
from __future__ import annotations

import functools
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from rich.console import Console
from rich.table import Table

import rljax
from rljax.algos import seed_keys
from rljax.algos.common import make_env
from rljax.cli import configs, loggers, plots, rundir
from rljax.cli.configs import UsageError
from rljax.cli.progress import Progress, reports_every
from rljax.config import StaticFieldError
from rljax.metrics import final_return
from rljax.rollout import evaluate

_INPUT_ERRORS = (ValueError, TypeError, KeyError, StaticFieldError)


def _checked(fn, *args, **kwargs):
    """Run `fn`; the algorithms' input errors become `UsageError` (one line)."""
    try:
        return fn(*args, **kwargs)
    except _INPUT_ERRORS as e:
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(message) from None


def progress_segment(num_updates: int, reports: int = 40) -> int:
    """Updates per segment when the progress bar advances between segments: a divisor
    of `num_updates` near `num_updates / reports`, so one program serves every segment."""
    target = max(1, num_updates // reports)
    divisors = [d for d in range(1, num_updates + 1) if num_updates % d == 0]
    best = min(divisors, key=lambda d: abs(d - target))
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


def build_train_record(args) -> dict:
    """What the run is: algo, seeds, checkpointing and every config field."""
    if args.resume:
        if args.set or args.config or args.env or args.algo:
            raise UsageError("--resume continues a run exactly as configured; drop ALGO, --env, "
                             "--set and --config")
        return rundir.read_config(Path(args.resume))
    file_data = configs.read_config_file(args.config) if args.config else {}
    run_keys = ("algo", "seeds", "seed", "checkpoint_every", "rljax_version", "preset",
                "steps_per_update")
    if isinstance(file_data.get("config"), dict):      # a run folder's config.json
        fields = dict(file_data["config"])
    else:                                              # a flat mapping; may name algo/seeds
        fields = {k: v for k, v in file_data.items() if k not in run_keys}
    algo_name = args.algo or file_data.get("algo") or configs.DEFAULT_ALGO
    algo = configs.get_algo(algo_name)
    changes = dict(fields)
    if args.env:
        changes["env_id"] = args.env
    changes.update(configs.parse_sets(args.set or []))
    preset = args.preset or file_data.get("preset")
    config = configs.make_config(algo, changes, preset=preset)
    loop = _checked(algo.loop, config)
    seeds = args.seeds if args.seeds is not None else int(file_data.get("seeds", 4))
    if seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {seeds}")
    every = args.checkpoint_every
    if every is not None and every < 1:
        raise UsageError(f"--checkpoint-every must be >= 1, got {every}")
    return {"algo": algo_name, "preset": preset, "seeds": seeds, "seed": args.seed,
            "checkpoint_every": every, "steps_per_update": loop.steps_per_update,
            "rljax_version": rljax.__version__, "config": configs.to_json(config)}


def train(args, console: Console) -> Path:
    record = build_train_record(args)
    algo = configs.get_algo(record["algo"])
    config = configs.make_config(algo, record["config"])
    seeds, every = record["seeds"], record["checkpoint_every"]
    keys = seed_keys(seeds, start=record["seed"])
    loop = _checked(algo.loop, config)
    record.setdefault("steps_per_update", loop.steps_per_update)   # folders of rljax 0.1.0
    init, run, num_updates = jax.vmap(loop.init), loop.run, loop.num_updates

    state_like = _checked(jax.eval_shape, init, keys)
    start, state, done_metrics = 0, None, None
    if args.resume:
        run_dir = Path(args.resume)
        if (run_dir / rundir.PARAMS).exists():
            raise UsageError(f"{run_dir} finished already (it has {rundir.PARAMS}/); "
                             f"`rljax eval {run_dir}` evaluates it")
        start = rundir.latest_checkpoint(run_dir) or 0
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
    steps_per_update = loop.steps_per_update
    progress = Progress(num_updates * steps_per_update, seeds, start_steps=start * steps_per_update,
                        console=console, enabled=not args.quiet, label=record["algo"])
    cb_every = reports_every(num_updates)

    def segment_fn(n):
        fn = functools.partial(run, num_updates=n, callback=progress.callback if live else None,
                               callback_every=cb_every)
        return jax.jit(jax.vmap(fn))

    programs = {n: segment_fn(n) for n in sorted(set(segments))}
    traced = {n: _checked(p.trace, state_like) for n, p in programs.items()}   # errors: exit 2
    metric_like = jax.tree.map(lambda x: jax.ShapeDtypeStruct((x.shape[0], 1, *x.shape[2:]), x.dtype),
                               next(iter(traced.values())).out_info[1]) if traced else None

    if args.resume:
        run_dir = Path(args.resume)
        if start:
            state, done_metrics = rundir.load_checkpoint(run_dir, start, state_like, metric_like)
            console.print(f"resuming {run_dir} from update {start}/{num_updates}", soft_wrap=True)
    else:
        run_dir = rundir.new_run_dir(args.out, record["algo"], config.env_id)
        rundir.write_config(run_dir, record)
    tracker = loggers.open_tracker(args, record, run_dir)
    if done_metrics is not None:
        tracker.write_metrics(done_metrics)

    t_start = time.perf_counter()
    with progress:
        compiled = {n: t.lower().compile() for n, t in traced.items()}
        if state is None:
            state = jax.block_until_ready(jax.jit(init)(keys))
        compile_s = time.perf_counter() - t_start
        progress.started(record["algo"])
        pieces = [] if done_metrics is None else [done_metrics]
        at = start
        for n in segments:
            state, metrics = compiled[n](state)
            pieces.append(metrics)
            at += n
            tracker.write_metrics(metrics, first_update=at - n)
            if every:
                so_far = jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=1), *pieces)
                pieces = [so_far]
                rundir.save_checkpoint(run_dir, at, state, so_far)
            if not live:
                progress.advance(at * steps_per_update, _last_return(metrics))
        jax.block_until_ready(state)
    tracker.close()
    train_s = time.perf_counter() - t_start - compile_s
    metrics = jax.tree.map(lambda *xs: np.concatenate([np.asarray(x) for x in xs], axis=1), *pieces)
    _finish(console, run_dir, record, config, state.train_state.params, metrics,
            compile_s=compile_s, train_s=train_s, updates_run=num_updates - start)
    return run_dir


def _last_return(metrics) -> float:
    """Mean over seeds of the last finite episode return of a segment (NaN if none)."""
    ret = np.asarray(metrics["episode_return"])        # [seeds, updates]
    last = [r[np.isfinite(r)][-1] for r in ret if np.isfinite(r).any()]
    return float(np.mean(last)) if last else float("nan")


def _finish(console, run_dir, record, config, params, metrics, *, compile_s, train_s, updates_run):
    rundir.write_metrics(run_dir, metrics)
    plots.learning_curve(metrics, run_dir / rundir.CURVE,
                         title=f"{record['algo']} on {config.env_id} ({record['seeds']} seeds)")
    rundir.save_params(run_dir, params)
    final = final_return(metrics["episode_return"])
    seeds, updates = np.asarray(metrics["env_steps"]).shape
    steps = float(np.asarray(metrics["env_steps"])[0, -1])
    steps_run = steps * updates_run / updates
    rows = [
        ("run folder", str(run_dir)),
        ("algorithm", f"{record['algo']} on {config.env_id}"),
        ("seeds", f"{seeds} (vmapped, base seed {record['seed']})"),
        ("updates", f"{updates} of {record['steps_per_update']:,} env steps per seed "
                    f"({steps:,.0f} in all); one row of {rundir.METRICS} each"),
        ("time", f"compile+init {compile_s:.1f} s, train {train_s:.1f} s"
                 + (f", {steps_run * seeds / train_s:,.0f} env steps/s" if train_s > 0 else "")),
        ("final return", f"{np.nanmean(final):.1f} ± {np.nanstd(final):.1f} over seeds "
                         "(last 10% of updates)" if np.isfinite(final).any() else "no episode ended"),
        ("per seed", "  ".join(f"{r:.1f}" for r in final)),
        ("files", f"{rundir.CONFIG}, {rundir.METRICS}, {rundir.CURVE}, {rundir.PARAMS}/"),
        ("next", f"rljax eval {run_dir}"),
    ]
    _print_rows(console, "rljax train", rows)
    rundir.atomic_write(run_dir / rundir.SUMMARY, "".join(f"{k:14} {v}\n" for k, v in rows))


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
    params = rundir.load_params(run_dir)
    env, env_params, spec = make_env(config)
    agent = algo.make_agent(config, spec)
    greedy = not args.stochastic

    def one(p, key):
        kwargs = {"greedy": True} if greedy else {}
        return evaluate(agent, p, env, env_params, key, args.episodes, **kwargs)

    seeds = record["seeds"]
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
