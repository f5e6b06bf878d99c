"""A sweep of training runs as one compiled, sharded program.

The runs (`SweepConfig.runs`: ops x weight decays x seeds x lrs x train fractions)
are stacked on a leading axis and trained by one `jit` of a loop over steps of a
`vmap` of `train.train_step` over runs; the runs axis is sharded over the devices.
The host loop only moves between stop points: at each one it evaluates every run on
its full train and test split, appends to `metrics.csv`, saves checkpoints and prints
progress. Stop points are every `eval_every` steps plus `log_points` log-spaced early
steps, so curves on a log-step axis have data at the start, plus the scheduled
checkpoint steps; a checkpoint is saved where grokjax.ckpt_schedule says (fixed or
explicit `ckpt_steps`, log-spaced, or triggered by the metrics), asynchronously.

>>> # from grokjax.config import PRESETS
>>> # summary = train_sweep(PRESETS["demo"], "runs/demo")
"""

from __future__ import annotations

import pathlib
import shutil
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from grokjax import (checkpoint, ckpt_schedule, divergence, folder, memory, multihost, runio,
                     sharding)
from grokjax.analysis.tables import first_step_at
from grokjax.ckpt_schedule import log_steps
from grokjax.config import SweepConfig
from grokjax.errors import CheckpointError, DivergenceError, RunFolderError
from grokjax.measures.spectral import spectral_summary
from grokjax.train import (RunData, TrainState, evaluate, init_state, run_data, run_hypers,
                           run_keys, train_step)

METRICS = "metrics.csv"


def schedule(cfg: SweepConfig) -> tuple[list[int], set[int]]:
  """(stop points where every run is evaluated, the subset where params are always saved;
  triggers may save at the other stops)."""
  evals = {0, cfg.steps} | set(range(cfg.eval_every, cfg.steps, cfg.eval_every))
  evals |= {s for s in log_steps(cfg.eval_every, cfg.log_points) if s < cfg.steps}
  ckpts = ckpt_schedule.scheduled(cfg)
  return sorted(evals | ckpts), ckpts


def stacked_runs(cfg: SweepConfig) -> tuple[RunData, TrainState]:
  """Host (numpy) copies of every run's data and initial state, stacked on axis 0."""
  specs = cfg.runs
  data = jax.tree.map(lambda *a: np.stack(a), *[run_data(cfg, s) for s in specs])
  keys = jnp.stack([jax.random.key_data(run_keys(s.seed)[0]) for s in specs])
  init = jax.jit(jax.vmap(lambda k, h: init_state(cfg, jax.random.wrap_key_data(k), **h)))
  return data, jax.tree.map(np.asarray, init(keys, run_hypers(specs)))


def compile_fns(cfg: SweepConfig):
  """(train_until(state, runs, n_steps) -> state, measure(params, runs) -> metrics)."""
  step = jax.vmap(lambda s, r: train_step(cfg, s, r))

  def train_until(state, runs, n_steps):
    return jax.lax.fori_loop(0, n_steps, lambda _, s: step(s, runs), state)

  def measure(params, runs):
    # lax.map, not vmap, for the SVDs: jaxlib 0.10.2's batched CPU SVD deadlocks when the
    # runs are split over several host devices (seen in the demo at 0 % CPU, gdb in LAPACK).
    return {**jax.vmap(lambda p, r: evaluate(cfg, p, r))(params, runs),
            **jax.lax.map(spectral_summary, params)}

  return jax.jit(train_until, donate_argnums=0), jax.jit(measure)


def check_folder(cfg: SweepConfig, out: pathlib.Path, resume: bool, overwrite: bool, *,
                 resumable: bool = True) -> bool:
  """Raises RunFolderError unless `cfg` may be trained into `out` as asked; whether `out`
  holds anything. Reads only: run it before taking the folder's lock, which creates
  the folder, and again with the lock held. `resumable`: the command has --resume."""
  if resume and overwrite:
    raise RunFolderError("--resume and --overwrite exclude each other")
  folder.check_target(out)
  exists = bool(folder.entries(out))
  if exists and not resume and not overwrite:
    raise RunFolderError(f"{out} already exists; pass "
                         + ("--resume to continue it or " if resumable else "")
                         + "--overwrite to replace it")
  elif resume and not exists:
    raise RunFolderError(f"nothing to resume: {out} does not exist or is empty")
  elif resume:
    runio.check_same_config(out, cfg, hint="--resume needs the config it was trained with")
  elif exists:
    folder.check_replaceable(out, "training")
  return exists


def prepare_folder(cfg: SweepConfig, out: pathlib.Path, resume: bool, overwrite: bool,
                   write: Callable[[str], None] = print) -> bool:
  """Checks `out` again, with its lock (grokjax.folder) held, and makes it ready; whether
  to restore a saved state.

  --overwrite clears the folder only here, after the config and the folder were checked.
  A resumed folder whose training never saved a state (it was stopped before the
  first checkpoint) starts again from step 0, without its partial metrics.
  """
  exists = check_folder(cfg, out, resume, overwrite)
  restart = resume and not _state_steps(out)
  if restart:
    write(f"{out}: training never saved a state; starting it again from step 0")
  multihost.sync("folder-checked")  # every process looked before process 0 changes it
  if multihost.is_writer():
    if exists and overwrite:
      folder.clear(out)
    if restart:
      if (out / "checkpoints").exists():
        shutil.rmtree(out / "checkpoints")
      (out / METRICS).unlink(missing_ok=True)
  multihost.sync("folder-ready")
  return resume and not restart


def _truncate_metrics(path: pathlib.Path, upto: int) -> None:
  """Drops the rows written after the checkpoint a resumed sweep restarts from, and a last
  row cut off by a sweep killed while appending it (rewritten atomically)."""
  if not path.is_file():
    return
  table = runio.read_csv(path, drop_partial_last=True)
  if "step" not in table:  # empty, or a header cut off before any row was written
    path.unlink()
    return
  keep = np.flatnonzero(table["step"] <= upto)
  if len(keep) == len(table["step"]) and path.read_bytes().endswith((b"\n", b"\r")):
    return
  rows = [{k: v[i] for k, v in table.items()} for i in keep]
  if rows:
    runio.write_csv(path, rows)
  else:
    path.unlink()  # the resumed sweep writes the header again


def _state_steps(out: pathlib.Path) -> list[int]:
  """The saved training states of a run folder ([] when it never saved one)."""
  if not (out / "checkpoints" / checkpoint.STATE).is_dir():
    return []
  return sorted(checkpoint._existing_manager(out, checkpoint.STATE).all_steps())


def _restore_latest(out: pathlib.Path, like: TrainState,
                    write: Callable[[str], None] = print) -> TrainState:
  """The newest state checkpoint that reads back intact. Where a newer one is corrupted
  (a digest mismatch, a file orbax cannot read) it says so in one line and deletes the
  steps after the one restored, which the resumed sweep saves again."""
  bad = []
  for step in reversed(_state_steps(out)):
    try:
      state = checkpoint.restore(out, checkpoint.STATE, step, like)
    except CheckpointError as e:
      bad.append((step, e))
      continue
    if bad:
      write(f"warning: {bad[0][1]}; resuming from the older state checkpoint at step {step}")
      checkpoint.discard_after(out, step)
    return state
  why = f" ({bad[0][1]})" if bad else f": {out}/checkpoints/state holds none"
  raise CheckpointError(f"cannot resume {out}: no state checkpoint is intact{why}; "
                        "use --overwrite to start again")


def _resumed_tracker(out: pathlib.Path, tracker: ckpt_schedule.Tracker, start: int,
                     n_runs: int) -> ckpt_schedule.Tracker:
  """The trigger state after the save at `start`, from metrics.csv's rows there."""
  if not tracker.trigger.on:
    return tracker
  m = runio.read_csv(out / METRICS)
  sel = m["step"] == start
  if sorted(m["run"][sel].tolist()) != list(range(n_runs)):
    raise CheckpointError(f"cannot resume {out}: {METRICS} lacks one row per run at the "
                          f"checkpoint step {start}; use --overwrite to start again")
  order = np.argsort(m["run"][sel])
  at_start = {k: m[k][sel][order] for k in ckpt_schedule.ACC_METRICS + ckpt_schedule.LOSS_METRICS}
  return tracker.resumed(checkpoint.list_steps(out), start, at_start)


class Progress:
  """Throttled one-line progress: steps/s, ETA and best test accuracy per op."""

  def __init__(self, cfg: SweepConfig, start_step: int, write: Callable[[str], None],
               every_s: float = 5.0):
    self.cfg, self.write, self.every_s = cfg, write, every_s
    self.t0, self.step0, self.last = time.time(), start_step, 0.0
    self.best: dict[str, float] = {}

  def update(self, step: int, test_acc: np.ndarray, force: bool = False) -> None:
    for spec, acc in zip(self.cfg.runs, test_acc):
      if np.isfinite(acc):
        self.best[spec.op] = max(self.best.get(spec.op, 0.0), float(acc))
    now = time.time()
    if not force and now - self.last < self.every_s:
      return
    self.last = now
    rate = (step - self.step0) / max(now - self.t0, 1e-9)
    eta = (self.cfg.steps - step) / rate if rate > 0 else float("inf")
    best = " ".join(f"{op} {acc:.3f}" for op, acc in self.best.items())
    eta_s = time.strftime("%H:%M:%S", time.gmtime(eta)) if np.isfinite(eta) else "?"
    self.write(f"step {step:>7d}/{self.cfg.steps} | {rate:6.1f} steps/s x {len(self.cfg.runs)} "
               f"runs | ETA {eta_s} | best test acc: {best}")


def train_sweep(cfg: SweepConfig, out_dir, *, resume: bool = False, overwrite: bool = False,
                on_stop: Callable[[int], None] | None = None,
                write: Callable[[str], None] = print, devices=None) -> list[dict]:
  """Trains every run of `cfg` into `out_dir`; returns the per-run summary rows.

  `on_stop(step)` is called after each stop point has been written (used to test
  that an interrupted sweep resumes exactly). `devices` (default: all) are the devices
  the runs axis is split over. Raises DivergenceError at the end if a
  run produced a non-finite loss (summary.csv's `diverged_at` says at which step);
  every run's data is written before that. With several
  processes only process 0 writes files and messages, and the others return [].
  The folder's lock (grokjax.folder) is held while it trains; --overwrite clears the
  folder only once everything that can fail before training has been checked.
  """
  cfg.validate()
  memory.check_sweep(cfg, devices)  # before anything is allocated: a batch too large is one line
  allowance = (ckpt_schedule.trigger_allowance(cfg, ckpt_schedule.Sizes.of(cfg))
               if cfg.max_checkpoint_gb else None)  # a schedule that cannot fit: before any file
  writer = multihost.is_writer()
  write = write if writer else (lambda s: None)
  out = pathlib.Path(out_dir)
  check_folder(cfg, out, resume, overwrite)  # before the lock, which creates the folder
  with folder.lock(out):
    mesh = sharding.runs_mesh(devices)
    data, state = stacked_runs(cfg)  # may fail too: before anything is cleared
    resume = prepare_folder(cfg, out, resume, overwrite, write)
    return _train(cfg, out, mesh, data, state, resume, on_stop, write, allowance)


def _train(cfg: SweepConfig, out: pathlib.Path, mesh, data: RunData, state: TrainState,
           resume: bool, on_stop, write, allowance: int | None) -> list[dict]:
  writer = multihost.is_writer()
  n_runs = len(cfg.runs)
  n_pad = sharding.padded_size(n_runs, mesh)
  stops, ckpts = schedule(cfg)
  tracker = ckpt_schedule.Tracker(frozenset(ckpts), ckpt_schedule.Trigger.of(cfg), allowance)
  start = 0
  if resume:
    state = _restore_latest(out, state, write)
    start = int(np.asarray(state.step).reshape(-1)[0])
    tracker = _resumed_tracker(out, tracker, start, n_runs)
    multihost.sync("trigger-state-read")  # before process 0 truncates metrics.csv
    if writer:
      _truncate_metrics(out / METRICS, start)
  elif writer:
    runio.write_config(out, cfg, [str(d) for d in mesh.devices.flat])
  # asynchronous: training goes on while a thread writes; see _save for the crash guarantee.
  # One process only: with several, orbax's barrier in an async save hung until the
  # heartbeat ended the job (two gloo CPU processes, orbax 0.12.8), so saves there wait.
  async_save = jax.process_count() == 1
  params_mgr = checkpoint.manager(out, checkpoint.PARAMS, async_save=async_save)
  state_mgr = checkpoint.manager(out, checkpoint.STATE, async_save=async_save,
                                 max_to_keep=ckpt_schedule.STATE_KEPT)
  if resume and start not in params_mgr.all_steps():
    checkpoint.save(params_mgr, start, jax.tree.map(np.asarray, state.params))
  runs = sharding.shard_runs(sharding.pad_runs(data, n_pad), mesh)
  state = sharding.shard_runs(sharding.pad_runs(state, n_pad), mesh)
  train_until, measure = compile_fns(cfg)
  dev = list(mesh.devices.flat)
  write(f"grokjax: {n_runs} runs x {cfg.steps} steps on {len(dev)} {dev[0].platform} "
        f"device(s) -> {out}" + (f" (resuming at {start})" if resume else ""))
  progress = Progress(cfg, start, write)
  reported: dict[int, int] = {}  # run -> step its divergence was reported at
  current = start
  try:
    for stop in [s for s in stops if s >= start and not (resume and s == start)]:
      if stop > current:
        state = train_until(state, runs, jnp.int32(stop - current))
        current = stop
      metrics = sharding.to_host(measure(state.params, runs), n_runs)
      diverged = sharding.to_host(state.diverged_at, n_runs)
      rows = [{**runio.run_fields(i, spec), "step": stop,
               **{k: float(v[i]) for k, v in metrics.items()}} for i, spec in enumerate(cfg.runs)]
      if writer:
        runio.write_csv(out / METRICS, rows, append=True)
      _report_divergence(cfg, diverged, metrics, stop, reported, write)
      refused = tracker.refused
      if tracker.decide(stop, metrics):
        _save(params_mgr, state_mgr, stop, sharding.to_host(state, n_runs))
      elif tracker.refused and not refused:
        write(f"checkpoints: the {cfg.max_checkpoint_gb:g} GB budget is spent at step {stop} "
              f"({tracker.triggered} triggered saves); only scheduled steps are saved from here")
      progress.update(stop, metrics["test_acc"], force=stop == cfg.steps)
      if on_stop is not None:
        on_stop(stop)
  finally:  # an interrupted sweep leaves only finished checkpoints behind
    params_mgr.wait_until_finished()
    state_mgr.wait_until_finished()
  # The state's record survives a resume (it is checkpointed); `reported` covers only
  # the stops this call trained through.
  final = sharding.to_host(state.diverged_at, n_runs)
  summary = []
  if writer:
    summary = summarize(cfg, runio.read_csv(out / METRICS), diverged_at=final)
    runio.write_csv(out / "summary.csv", summary)
    write(format_summary(summary))
    from grokjax.figures import training  # matplotlib only once training is done

    training.curves(runio.read_csv(out / METRICS), out / "curves")
  # The writer names summary.csv's steps (they also see metrics.csv rows from before a
  # resume); the other processes know the state and this call's stops.
  at = ({r["run"]: r["diverged_at"] for r in summary if r["diverged_at"] != ""} if writer else
        {i: min(s for s in (reported.get(i, -1), int(final[i])) if s >= 0)
         for i in range(n_runs) if i in reported or final[i] >= 0})
  if at:
    bad = [{"run": i, "label": cfg.runs[i].label, "diverged_at": s} for i, s in sorted(at.items())]
    raise DivergenceError(f"{divergence.describe(bad)}; the other runs' results are in {out}")
  return summary


def _save(params_mgr, state_mgr, step: int, host_state: TrainState) -> None:
  """Params, then the TrainState a resume starts from, both written by orbax's threads.

  Each manager finishes its previous save before starting the next, so when the state
  at `step` exists every earlier params step does too; the params at `step` itself may
  not (a kill between the two), and a resume saves them from the restored state.
  """
  checkpoint.save(params_mgr, step, host_state.params)
  checkpoint.save(state_mgr, step, host_state)


def _report_divergence(cfg, diverged, metrics, stop, reported, write) -> None:
  for i, spec in enumerate(cfg.runs):
    bad_eval = not np.isfinite(metrics["train_loss"][i])
    if i in reported or (diverged[i] < 0 and not bad_eval):
      continue
    reported[i] = int(diverged[i]) if diverged[i] >= 0 else stop
    at = f"at step {int(diverged[i])}" if diverged[i] >= 0 else f"by step {stop}"
    write(f"error: run {i} ({spec.label}) produced a non-finite loss {at}; "
          "the other runs continue")


def summarize(cfg: SweepConfig, m: dict[str, np.ndarray], threshold: float = 0.99,
              diverged_at=None) -> list[dict]:
  """Per run: first steps with train and test accuracy >= threshold, final accuracies, and
  `diverged_at`, the first step with a non-finite loss ('' if none).

  That step is the earlier of `diverged_at[i]` (TrainState.diverged_at, -1: none; None:
  not known) and the first evaluation in `m` whose train loss is not finite.
  """
  rows = []
  for i, spec in enumerate(cfg.runs):
    sel = m["run"] == i
    order = np.argsort(m["step"][sel])
    steps = m["step"][sel][order]
    tr, te = m["train_acc"][sel][order], m["test_acc"][sel][order]
    fit, grok = first_step_at(steps, tr, threshold), first_step_at(steps, te, threshold)
    bad = divergence.diverged_step(None if diverged_at is None else int(diverged_at[i]),
                                   steps, m["train_loss"][sel][order])
    rows.append({**runio.run_fields(i, spec),
                 "train_acc_099_step": "" if fit is None else fit,
                 "test_acc_099_step": "" if grok is None else grok,
                 "final_train_acc": float(tr[-1]) if tr.size else float("nan"),
                 "final_test_acc": float(te[-1]) if te.size else float("nan"),
                 "diverged_at": "" if bad is None else bad})
  return rows


def format_summary(rows: list[dict]) -> str:
  lines = [f"{'op':<8}{'seed':>6}{'wd':>6}{'lr':>9}{'frac':>6}{'train>=.99':>12}"
           f"{'test>=.99':>14}{'final test':>12}{'diverged':>10}"]
  for r in rows:
    grok = r["test_acc_099_step"] if r["test_acc_099_step"] != "" else "not grokked"
    fit = r["train_acc_099_step"] if r["train_acc_099_step"] != "" else "-"
    bad = r.get("diverged_at", "")
    lines.append(f"{r['op']:<8}{r['seed']:>6}{r['weight_decay']:>6g}{r['lr']:>9g}"
                 f"{r['train_frac']:>6g}{fit!s:>12}{grok!s:>14}{r['final_test_acc']:>12.3f}"
                 f"{'-' if bad == '' else f'step {bad}':>10}")
  return "\n".join(lines)
