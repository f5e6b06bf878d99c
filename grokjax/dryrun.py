"""A dry run: what a sweep (and the pipeline's lenses) would cost, before any real work.

Prints the runs, steps, evaluations, checkpoints (the scheduled count exactly, the
triggered one as an upper bound), their disk use, the devices, and wall times
estimated from a short calibration on this machine: a few compiled training steps
and evaluations of the sweep (compile times apart), and, with a lens plan, the
measure lens (cheap lenses and BDM), the LLC lens and the causal lens on the initial
parameters of one run, scaled to the plan's runs and checkpoints, and whether those
lens stages together fit within the training time (`lens_fit`). The run folder is
only looked at: the calibration's files go to a temporary folder elsewhere.

>>> # from grokjax.config import PRESETS
>>> # from grokjax.plan import PLANS
>>> # dry_run(PRESETS["paper"], "runs/paper", plan=PLANS["paper"])
"""

from __future__ import annotations

import dataclasses
import pathlib
import tempfile
import time
from typing import Callable

import jax
import jax.numpy as jnp

from grokjax import checkpoint, ckpt_schedule, memory, runio, sharding, sweep
from grokjax.analysis import phase_steps
from grokjax.config import RUN_AXES, SweepConfig
from grokjax.plan import Plan
from grokjax.slt import autostep

CALIBRATION_STEPS = 3
# two short chains: their time difference is the cost of the draws (both calls compile,
# so the difference must be large enough to stand above the compile times' noise)
LLC_DRAWS = (4, 36)


def check_folder(cfg: SweepConfig, out, *, resume=False, overwrite=False, reuse=False) -> str:
  """What training would do with `out` (RunFolderError where it would refuse); reads only.

  `reuse`: the pipeline's rule, a folder that holds this sweep is resumed.
  """
  out = pathlib.Path(out)
  if reuse and (out / "config.json").is_file():
    runio.check_same_config(out, cfg, hint="choose another --out")
    return "holds this sweep: would be resumed"
  if not sweep.check_folder(cfg, out, resume, overwrite):
    return "new folder"
  return "would be resumed" if resume else "would be replaced (--overwrite)"


def checkpoint_counts(cfg: SweepConfig) -> dict:
  """Stops, scheduled saves, and the most triggered saves (the budget's room, or every
  other evaluation stop)."""
  stops, ckpts = sweep.schedule(cfg)
  sizes = ckpt_schedule.Sizes.of(cfg)
  room = len(stops) - len(ckpts) if ckpt_schedule.Trigger.of(cfg).on else 0
  allowance = ckpt_schedule.trigger_allowance(cfg, sizes)
  most = room if allowance is None else min(room, allowance)
  fixed = ckpt_schedule.fixed_schedule_bytes(cfg, sizes)
  return dict(stops=len(stops), scheduled=len(ckpts), triggered_max=most, sizes=sizes,
              scheduled_bytes=fixed, max_bytes=fixed + most * sizes.params)


def calibrate_training(cfg: SweepConfig, devices=None, steps: int = CALIBRATION_STEPS) -> dict:
  """Seconds: compile of the training loop and of the evaluation, one step, one evaluation."""
  mesh = sharding.runs_mesh(devices)
  n_pad = sharding.padded_size(len(cfg.runs), mesh)
  data, state = sweep.stacked_runs(cfg)
  runs = sharding.shard_runs(sharding.pad_runs(data, n_pad), mesh)
  state = sharding.shard_runs(sharding.pad_runs(state, n_pad), mesh)
  train_until, measure = sweep.compile_fns(cfg)
  timed = lambda f: (lambda t: (jax.block_until_ready(f()), time.perf_counter() - t))(
      time.perf_counter())
  state, first = timed(lambda: train_until(state, runs, jnp.int32(1)))
  state, many = timed(lambda: train_until(state, runs, jnp.int32(steps)))
  _, eval_first = timed(lambda: measure(state.params, runs))
  _, eval_one = timed(lambda: measure(state.params, runs))
  step = many / steps
  return dict(compile_train=max(first - step, 0.0), step=step,
              compile_eval=max(eval_first - eval_one, 0.0), eval=eval_one)


def one_run(cfg: SweepConfig) -> SweepConfig:
  return dataclasses.replace(cfg, **{name: getattr(cfg, name)[:1] for name in RUN_AXES.values()})


class _Stamps:
  """A `write` callback that records when each line came (the lenses' progress lines)."""

  def __init__(self):
    self.times: list[float] = []

  def __call__(self, line: str) -> None:
    self.times.append(time.perf_counter())


def calibrate_lenses(cfg: SweepConfig, plan: Plan, folder: pathlib.Path) -> dict:
  """Seconds for ONE run: compile and per-checkpoint cost of the measure lens's two
  programs, of the LLC (per draw), and one causal checkpoint with its compile."""
  from grokjax.causal import apply as causal
  from grokjax.measures.apply import MeasureOptions, measure_run_dir
  from grokjax.slt import apply as slt

  one = one_run(cfg)
  _, state = sweep.stacked_runs(one)
  runio.write_config(folder, one, [str(d) for d in jax.devices()[:1]])
  mgr = checkpoint.manager(folder, checkpoint.PARAMS)
  steps = [0, 1]  # one checkpoint a call: the second call runs without compiling
  for s in steps:
    checkpoint.save(mgr, s, state.params)
  mgr.wait_until_finished()
  run_folder = runio.RunFolder.open(folder)
  out = {}
  for name, lenses in (("measures", plan.measure_lenses), ("bdm", ("bdm",))):
    stamps, t0 = _Stamps(), time.perf_counter()
    measure_run_dir(run_folder, MeasureOptions(lenses=lenses, steps=tuple(steps), step_batch=1,
                                               n_examples=plan.n_examples,
                                               gc_method=plan.gc_method), write=stamps)
    first, second = stamps.times[1] - t0, stamps.times[2] - stamps.times[1]
    out[name] = second
    out[f"compile_{name}"] = max(first - second, 0.0)
    run_folder.file("measures.csv").unlink()
  times = []
  for draws in LLC_DRAWS:
    t0 = time.perf_counter()
    slt.llc_over_training(
        run_folder, key=jax.random.key(0), sampler=plan.llc_sampler,
        step_size=plan.llc_step_size or max(autostep.plan_grid(plan.llc_step_grid)),
        localization=plan.llc_localization, num_chains=plan.llc_chains, num_draws=draws,
        num_burnin=0, batch_size=plan.llc_batch, runs=[0], steps=[0], log=lambda s: None)
    times.append(time.perf_counter() - t0)
  out["llc_draw"] = max(times[1] - times[0], 0.0) / (LLC_DRAWS[1] - LLC_DRAWS[0])
  out["compile_llc"] = max(times[0] - LLC_DRAWS[0] * out["llc_draw"], 0.0)
  t0 = time.perf_counter()
  opts = causal.CausalOptions(n_pairs=plan.causal_pairs, n_random=plan.causal_random,
                              ablation_examples=plan.causal_examples, seed=plan.seed)
  causal.causal_over_training(run_folder, [0], None, opts, log=lambda s: None)
  out["causal_first"] = time.perf_counter() - t0
  return out


def lens_estimates(cfg: SweepConfig, plan: Plan, lens: dict, n_saved: int) -> list[tuple]:
  """(stage, seconds, how) from the one-run calibration, for `n_saved` saved steps."""
  n = len(cfg.runs)
  cheap = n_saved if plan.measure_every is None else min(n_saved, cfg.steps // plan.measure_every)
  bdm = cheap if plan.bdm_points is None else plan.bdm_points
  llc_runs = n if plan.llc_all_seeds else n // len(cfg.seeds)
  # "phases": at most one checkpoint per label a run, known only once it has trained
  llc_points = plan.llc_points if plan.llc_steps == "log" else len(phase_steps.LABELS)
  draws, pilot = plan.llc_draws, ""
  if plan.llc_step_size is None:  # the automatic step size's pilots, in the estimate's draws
    draws += autostep.pilot_draws(len(autostep.plan_grid(plan.llc_step_grid)),
                                  plan.llc_chains)
    pilot = " (+ pilots)"
  grid = plan.invariance_grid ** 2 * len(plan.invariance_samplers)
  inv_draw = lens["llc_draw"] * plan.invariance_chains / plan.llc_chains
  return [
      ("measures", lens["compile_measures"] + lens["compile_bdm"]
       + n * (cheap * lens["measures"] + bdm * lens["bdm"]),
       f"timed: {cheap} steps x {n} runs x {lens['measures']:.2f} s + BDM {bdm} x {n} x "
       f"{lens['bdm']:.2f} s, compile {lens['compile_measures'] + lens['compile_bdm']:.0f} s"),
      ("causal", n * plan.causal_points * lens["causal_first"],
       f"timed one checkpoint with its compile ({lens['causal_first']:.1f} s) x "
       f"{plan.causal_points} steps x {n} runs: an upper bound"),
      ("llc", lens["compile_llc"] + llc_runs * llc_points * draws * lens["llc_draw"],
       f"timed: {llc_points} steps x {llc_runs} runs x {draws:.0f} draws{pilot} x "
       f"{lens['llc_draw']:.3f} s"),
      ("invariance", lens["compile_llc"] * len(plan.invariance_samplers)
       + grid * plan.invariance_draws * inv_draw,
       f"scaled from the LLC's draw time: {grid} grid points x {plan.invariance_draws} draws x "
       f"{plan.invariance_chains}/{plan.llc_chains} of its chains"),
      ("surrogate, snapshots, report", None, "not estimated (no sweep-sized program)"),
  ]


def lens_fit(train_s: float, lens_s: dict[str, float]) -> str:
  """One line: the estimated lens stages together against training, e.g. 'lenses / training:
  0.42x (lenses 1h03m, training 2h30m): fits within the training time'. The paper preset's
  lens plan must take no longer than its training; stages not estimated are left out."""
  total = sum(lens_s.values())
  ratio = total / train_s if train_s > 0 else float("inf")
  verdict = ("fits within the training time" if ratio <= 1 else
             f"exceeds training by {ratio:.3g}x")
  return (f"lenses / training: {ratio:.3g}x (lenses {_hms(total)}, training {_hms(train_s)}): "
          f"{verdict}")


def _size(b: float) -> str:
  return f"{b / 1e9:.3g} GB" if b >= 1e9 else f"{b / 1e6:.3g} MB"


def _hms(s: float) -> str:
  s = int(round(s))
  return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def dry_run(cfg: SweepConfig, out, *, plan: Plan | None = None, resume=False, overwrite=False,
            reuse=False, devices=None, write: Callable[[str], None] = print) -> dict:
  """Prints the estimate (see the module docstring) and returns its numbers."""
  cfg.validate()
  folder = check_folder(cfg, out, resume=resume, overwrite=overwrite, reuse=reuse)
  c = checkpoint_counts(cfg)
  dev = jax.devices() if devices is None else devices
  write(f"dry run: nothing is written; {out}: {folder}")
  write(f"sweep: {len(cfg.runs)} runs x {cfg.steps} steps, {c['stops']} evaluation stops, on "
        f"{len(dev)} {dev[0].platform} device(s) ({dev[0].device_kind})")
  trig = ("off" if not ckpt_schedule.Trigger.of(cfg).on else
          f"at most {c['triggered_max']} ("
          + ("the budget's room" if cfg.max_checkpoint_gb else "every other evaluation stop")
          + "; how many depends on the metrics)")
  write(f"checkpoints: {c['scheduled']} scheduled (exact) + triggered {trig}; "
        f"{c['sizes'].params / 1e6:.3g} MB a step, state {ckpt_schedule.STATE_KEPT} x "
        f"{c['sizes'].state / 1e6:.3g} MB")
  budget = f" (budget {cfg.max_checkpoint_gb:g} GB)" if cfg.max_checkpoint_gb else ""
  write(f"disk: {_size(c['scheduled_bytes'])} scheduled, at most {_size(c['max_bytes'])}{budget}")
  est = memory.estimate(cfg, host_copy=dev[0].platform == "cpu")
  write(f"memory: {_size(est.total(cfg.batch_size))} a run at batch {cfg.batch_size} (state "
        f"{_size(est.state)}, gradients {_size(est.gradients)}, activations "
        f"{_size(est.activations(cfg.batch_size))}"
        + (f", host copy {_size(est.host_copy)}" if est.host_copy else "")
        + f"), {-(-len(cfg.runs) // len(dev))} run(s) a device")
  memory.check_sweep(cfg, devices)  # a batch that cannot fit: one line, before calibrating
  t = calibrate_training(cfg, devices)
  train_s = cfg.steps * t["step"] + c["stops"] * t["eval"] + t["compile_train"] + t["compile_eval"]
  write(f"calibration: compile {t['compile_train']:.1f} s (training) + {t['compile_eval']:.1f} s "
        f"(evaluation); {t['step']:.3g} s a step of all runs, {t['eval']:.3g} s an evaluation")
  write("estimated wall times on this machine (estimates):")
  write(f"  train       {_hms(train_s):>9}  ({cfg.steps} steps + {c['stops']} evaluations; "
        "saves are asynchronous)")
  result = dict(counts=c, training=t, stages={"train": train_s})
  if plan is not None:
    with tempfile.TemporaryDirectory(prefix="grokjax-dryrun-") as tmp:
      lens = calibrate_lenses(cfg, plan, pathlib.Path(tmp))
    n_saved = c["scheduled"] + c["triggered_max"]
    for name, seconds, how in lens_estimates(cfg, plan, lens, n_saved):
      write(f"  {name:<11} {_hms(seconds) if seconds is not None else '?':>9}  ({how})")
      if seconds is not None:
        result["stages"][name] = seconds
    write(f"  total       {_hms(sum(result['stages'].values())):>9}  (lenses at the most "
          f"checkpoints, {n_saved})")
    write(lens_fit(train_s, {k: v for k, v in result["stages"].items() if k != "train"}))
    result["lenses"] = lens
  return result
