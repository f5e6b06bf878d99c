"""Reproduce the paper end to end: train, every lens, the lead-time analysis, the report.

  python -m experiments.reproduce --preset=demo --out=runs/demo          # < 10 min, 2-core CPU
  python -m experiments.reproduce --preset=cpu-quick --out=runs/quick    # < 45 min, 2-core CPU
  python -m experiments.reproduce --preset=paper --out=runs/paper        # GPU / TPU

Stages, each skipped when its output in --out is already complete (so re-running
resumes): train (grokjax.sweep.train_sweep; a folder with the same config is resumed,
a finished one reused), measures (spectral, Fourier, geometry, BDM -> measures.csv),
causal (patching and ablation -> causal.csv, causal_ablation.csv), llc (LLC over
training -> llc.csv), invariance (LLC of each sampler on a rescaling grid ->
llc_invariance.csv), surrogate (the SFM -> surrogate/), snapshots (embeddings,
quantised matrices and Occam-gate maps at four steps -> snapshots.npz), and the report
(DIR/report/report.md, report.html, figures/, tables/). --skip=llc,invariance leaves
stages out; the report says which.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import time
from typing import Callable

import numpy as np
from absl import app, flags

from grokjax import runio
from grokjax.cli import run_main, use_cpu_devices
from grokjax.config import PRESETS, SweepConfig
from grokjax.errors import ConfigError, RunFolderError
from grokjax.plan import PLANS, Plan

SNAPSHOT_FORMAT = 2  # bumped when snapshot_fn's arrays change, so old files are recomputed
STAGES = ("train", "measures", "causal", "llc", "invariance", "surrogate", "snapshots", "report")


class Clock:
  """Progress lines prefixed with the elapsed time, and per-stage timings."""

  def __init__(self, write: Callable[[str], None] = print):
    self.t0, self._write, self.stages = time.time(), write, {}

  def __call__(self, msg: str) -> None:
    e = int(time.time() - self.t0)
    self._write(f"[reproduce {e // 60:02d}:{e % 60:02d}] {msg}")

  def stage(self, name: str, fn: Callable[[], str | None]) -> None:
    self(f"== {name} ==")
    t = time.time()
    status = fn() or "done"
    self.stages[name] = {"status": status, "seconds": round(time.time() - t, 1)}
    self(f"{name}: {status} ({time.time() - t:.1f} s)")


# ---------------------------------------------------------------- helpers

def log_spaced(saved: list[int], n: int, first: int = 100) -> list[int]:
  """Up to n saved steps nearest (on a log scale) to geomspace(first, last, n).

  `first` (the paper's first checkpoint, 100) is lowered to last / 10 for short runs.
  """
  pos = [s for s in saved if s > 0]
  if not pos or n < 1:
    return saved[-1:]
  lo = min(pos, key=lambda s: abs(math.log(s / min(first, max(pos[-1] / 10, 1)))))
  targets = np.geomspace(lo, pos[-1], n)
  return sorted({min(pos, key=lambda s: abs(math.log(s / t))) for t in targets})


def _steps_done(path: pathlib.Path, runs, steps: list[int], **match) -> bool:
  """Whether a tidy CSV has a row for every run x step (with the given column values).

  `runs`: the run indices, or their number (runs 0..n-1)."""
  runs = range(runs) if isinstance(runs, int) else runs
  if not path.is_file():
    return False
  t = runio.read_csv(path)
  if not t or "run" not in t:
    return False
  sel = np.ones(len(t["run"]), bool)
  for k, v in match.items():
    if k not in t:
      return False
    col = t[k]
    sel &= (col.astype(str) == str(v)) if col.dtype == object else np.isclose(col, v)
  have = set(zip(t["run"][sel].tolist(), t["step"][sel].tolist()))
  return all((r, s) in have for r in runs for s in steps)


def _save_timings(out: pathlib.Path, clock: Clock) -> None:
  path = out / "reproduce_timings.json"
  old = json.loads(path.read_text()) if path.is_file() else {}
  for k, v in clock.stages.items():
    if v["status"].startswith("done") or k not in old:
      old[k] = v
  path.write_text(json.dumps(old, indent=2) + "\n")


# ---------------------------------------------------------------- stages

def stage_train(cfg: SweepConfig, out: pathlib.Path, write, devices=None) -> str:
  from grokjax import checkpoint, sweep

  if not (out / "config.json").is_file():
    sweep.train_sweep(cfg, out, write=write, devices=devices)
    return "done"
  saved = runio.load_config(out).to_dict()
  diff = sorted(k for k, v in cfg.to_dict().items() if saved.get(k) != v)
  if diff:
    raise RunFolderError(f"{out} holds a different sweep (differs in {', '.join(diff)}); "
                         "choose another --out")
  metrics = out / sweep.METRICS
  last = int(runio.read_csv(metrics)["step"].max()) if metrics.is_file() else -1
  if last >= cfg.steps and checkpoint.list_steps(out)[-1] == cfg.steps:
    return "reused (training finished)"
  sweep.train_sweep(cfg, out, resume=True, write=write, devices=devices)
  return "done (resumed)"


def _measured(out: pathlib.Path, n_runs: int, steps: list[int], lenses) -> bool:
  """Whether measures.csv has every lens's sentinel column at every run x step."""
  from grokjax.measures.apply import SENTINEL

  path = out / "measures.csv"
  if not path.is_file():
    return False
  t = runio.read_csv(path)
  cols = [SENTINEL[l] for l in lenses]
  if any(c not in t for c in cols):
    return False
  ok = np.all([np.isfinite(t[c]) for c in cols], axis=0)
  have = set(zip(t["run"][ok].tolist(), t["step"][ok].tolist()))
  return all((r, s) in have for r in range(n_runs) for s in steps)


def stage_measures(out: pathlib.Path, n_runs: int, plan: Plan, write) -> str:
  from grokjax import checkpoint
  from grokjax.measures.apply import MeasureOptions, measure_run_dir

  saved = checkpoint.list_steps(out)
  common = dict(n_examples=plan.n_examples, gc_method=plan.gc_method, workers=plan.workers)
  cheap = [s for s in saved if plan.measure_every is None or s % plan.measure_every == 0]
  cheap = sorted(set(cheap) | set(log_spaced(saved, 8, first=1)) | {saved[-1]})
  bdm = cheap if plan.bdm_points is None else log_spaced(saved, plan.bdm_points, first=1)
  bdm = sorted(set(bdm) | {0})
  jobs = [(plan.measure_lenses, cheap), (("bdm",), bdm)]
  if all(_measured(out, n_runs, steps, lenses) for lenses, steps in jobs):
    return "reused"
  for lenses, steps in jobs:
    measure_run_dir(out, MeasureOptions(lenses=lenses, steps=tuple(steps), **common), write=write)
  return f"done ({len(cheap)} steps; BDM at {len(bdm)})"


def stage_causal(out: pathlib.Path, cfg: SweepConfig, plan: Plan, write) -> str:
  from grokjax import checkpoint
  from grokjax.causal import apply

  steps = log_spaced(checkpoint.list_steps(out), plan.causal_points)
  if _steps_done(out / "causal.csv", len(cfg.runs), steps):
    return "reused"
  opts = apply.CausalOptions(n_pairs=plan.causal_pairs, n_random=plan.causal_random,
                             ablation_examples=plan.causal_examples, seed=plan.seed)
  patch, ablation = apply.causal_over_training(out, steps, None, opts, log=write)
  runio.write_csv(out / "causal.csv", patch)
  runio.write_csv(out / "causal_ablation.csv", ablation)
  return f"done (steps {steps})"


def stage_llc(out: pathlib.Path, cfg: SweepConfig, plan: Plan, write) -> str:
  import jax

  from grokjax import checkpoint
  from grokjax.slt import apply

  steps = sorted(set(log_spaced(checkpoint.list_steps(out), plan.llc_points - 1)) | {0})
  runs = [i for i, s in enumerate(cfg.runs) if plan.llc_all_seeds or s.seed == cfg.seeds[0]]
  if _steps_done(out / "llc.csv", runs, steps, sampler=plan.llc_sampler,
                 num_draws=plan.llc_draws, step_size=plan.llc_step_size):
    return "reused"
  rows = apply.llc_over_training(
      out, key=jax.random.key(plan.seed), sampler=plan.llc_sampler,
      step_size=plan.llc_step_size, localization=plan.llc_localization,
      num_chains=plan.llc_chains, num_draws=plan.llc_draws, num_burnin=plan.llc_burnin,
      batch_size=plan.llc_batch, runs=runs, steps=steps, log=write)
  runio.write_csv(out / "llc.csv", rows)
  return f"done (steps {steps})"


# (step size ε, localisation γ) per sampler: experiments.llc_invariance's defaults (the
# scale-invariant samplers localise in relative units, so their γ is on another scale).
SAMPLER_SETTINGS = {"sgld": (4e-6, 1e4), "rmsprop_sgld": (1e-5, 100.0),
                    "scale_invariant": (0.05, 1.0), "riemannian": (0.05, 1.0)}


def invariance_run(cfg: SweepConfig) -> int:
  """The run whose final model the invariance grid rescales: largest weight decay, first op/seed."""
  wd = max(s.weight_decay for s in cfg.runs)
  return next(i for i, s in enumerate(cfg.runs) if s.weight_decay == wd)


def stage_invariance(out: pathlib.Path, cfg: SweepConfig, plan: Plan, write) -> str:
  import jax

  from grokjax import checkpoint
  from grokjax.slt import apply, invariance

  path = out / "llc_invariance.csv"
  alphas = invariance.log_grid(plan.invariance_grid, *plan.alpha_range)
  betas = invariance.log_grid(plan.invariance_grid, *plan.beta_range)
  if path.is_file():
    t = runio.read_csv(path)
    def same(sel, col, grid):
      have = np.unique(t[col][sel])
      return have.shape == grid.shape and np.allclose(have, grid, rtol=1e-5)

    if all(same(sel, "alpha", alphas) and same(sel, "beta", betas)
           for sel in (t["sampler"].astype(str) == s for s in plan.invariance_samplers)):
      return "reused"
  run, step = invariance_run(cfg), checkpoint.list_steps(out)[-1]
  params = checkpoint.load_params(out, step, index=run)
  data = apply.train_data(cfg, run)
  rows = []
  for sampler in plan.invariance_samplers:
    eps, gam = SAMPLER_SETTINGS[sampler]
    write(f"invariance: {sampler} (ε={eps:g}, γ={gam:g}) on a {len(alphas)}x{len(betas)} "
          f"grid, run {run} step {step}")
    res = invariance.rescaling_grid(
        apply.make_loss_fn(cfg), params, data, key=jax.random.key(plan.seed), alphas=alphas,
        betas=betas, sampler=sampler, step_size=eps, localization=gam,
        num_chains=plan.invariance_chains, num_draws=plan.invariance_draws,
        num_burnin=plan.invariance_draws // 5,
        batch_size=min(plan.llc_batch, int(data[1].shape[0])), eval_chunk=cfg.eval_chunk)
    rows += invariance.invariance_rows(res, **runio.run_fields(run, cfg.runs[run]), step=step,
                                       sampler=sampler, step_size=eps, localization=gam)
  runio.write_csv(path, rows)
  return f"done ({len(plan.invariance_samplers)} samplers x {len(alphas) * len(betas)} points)"


def stage_surrogate(out: pathlib.Path, plan: Plan, write) -> str:
  from grokjax.surrogate import results
  from grokjax.surrogate import train as sfm

  folder = out / "surrogate"
  cfg = dataclasses.replace(sfm.SurrogateConfig(), **(plan.surrogate or {}))
  if (folder / "surrogate.csv").is_file() and results.load_config(folder) == cfg:
    return "reused"
  write(f"surrogate: ops {cfg.ops}, p {cfg.p}, penalties {cfg.penalties}, seeds {cfg.seeds}, "
        f"{cfg.steps} steps")
  res = sfm.train(cfg)
  results.write_run_folder(cfg, res, folder, overwrite=True)
  return f"done ({len(cfg.runs)} runs)"


def snapshot_fn(cfg: SweepConfig, op: str, matrix: str):
  """jit of params -> the arrays the report draws for one run at one step.

  embedding: [N, 2] number embeddings (op's basis) on the plane of their strongest
  Fourier frequency (freq, cyclic = share of variance on that plane); pca: the same
  rows on their top two principal components; matrix: the 4-level quartile code of
  one weight matrix (what BDM scores); occam: the 2-D DFT power of the correct-answer
  logit table (diag = share on the op's diagonal family); occam_class: the same pooled
  over the per-class logit tables (class_diag), which lack the answer table's
  per-output-token offset (see grokjax.measures.fourier).
  """
  import jax
  import jax.numpy as jnp

  from grokjax.measures import complexity, fourier
  from grokjax.model import weight_matrices

  mc, p = cfg.model_config, cfg.p
  basis = fourier.resolve_basis(op, "auto")

  def one(params):
    rows = fourier.in_basis(fourier.number_rows(params, p)[0], basis=basis)
    cyc = fourier.cyclic_structure(rows, n_planes=1)
    centred = rows - rows.mean(axis=0)
    pcs = jnp.linalg.svd(centred, full_matrices=False)[2][:2]
    out = {"embedding": cyc["fourier/coords"][0], "freq": cyc["fourier/plane_freqs"][0],
           "cyclic": cyc["fourier/cyclic_score"], "pca": centred @ pcs.T,
           "matrix": complexity.quantise(weight_matrices(params)[matrix])}
    if op in fourier.GROUP_OPS:
      table, classes = fourier.logit_tables(mc, params, p=p, op=op)
      occ = fourier.occam_gate(table, op=op, basis=basis)
      cls = fourier.occam_gate(classes, op=op, basis=basis, prefix="class")
      out.update(occam=occ["occam/power"], diag=occ["occam/diag_fraction"],
                 occam_class=cls["class/power"], class_diag=cls["class/diag_fraction"])
    return out

  return jax.jit(one)


def compute_snapshots(out: pathlib.Path, cfg: SweepConfig, steps: list[int], *, matrix: str,
                      write) -> dict[str, np.ndarray]:
  """Snapshot arrays of the first seed's runs at `steps`, keyed 'kind|run|step'."""
  import jax

  from grokjax import checkpoint

  first = cfg.seeds[0]
  runs = [i for i, s in enumerate(cfg.runs) if s.seed == first]
  fns = {op: snapshot_fn(cfg, op, matrix) for op in {cfg.runs[i].op for i in runs}}
  arrays = {"steps": np.asarray(steps), "runs": np.asarray(runs),
            "matrix_name": np.asarray(matrix), "format": np.asarray(SNAPSHOT_FORMAT)}
  for step in steps:
    stacked = checkpoint.load_stacked_params(out, step)
    for r in runs:
      res = jax.device_get(fns[cfg.runs[r].op](jax.tree.map(lambda a: a[r], stacked)))
      arrays.update({f"{k}|{r}|{step}": np.asarray(v) for k, v in res.items()})
    write(f"snapshots: step {step} ({len(runs)} runs)")
  return arrays


def stage_snapshots(out: pathlib.Path, cfg: SweepConfig, plan: Plan, write) -> str:
  from grokjax import checkpoint

  path = out / "snapshots.npz"
  steps = log_spaced(checkpoint.list_steps(out), plan.snapshot_points)
  if path.is_file():
    with np.load(path) as old:
      same = ("format" in old and int(old["format"]) == SNAPSHOT_FORMAT
              and str(old["matrix_name"]) == plan.snapshot_matrix)
      if same and set(old["steps"].tolist()) == set(steps):
        return "reused"
  arrays = compute_snapshots(out, cfg, steps, matrix=plan.snapshot_matrix, write=write)
  np.savez_compressed(path, **arrays)
  return f"done (steps {steps})"


# ---------------------------------------------------------------- the pipeline

def reproduce(cfg: SweepConfig, out, plan: Plan, *, skip=(), write=print, devices=None) -> dict:
  """Every stage into `out` (see the module docstring); returns the report's paths.

  `devices` (default: all) are the devices the training sweep's runs axis is split over.
  """
  bad = [s for s in skip if s not in STAGES or s in ("train", "report")]
  if bad:
    raise ConfigError(f"cannot skip {bad}; skippable: {', '.join(STAGES[1:-1])}")
  cfg.validate()
  out = pathlib.Path(out)
  clock = Clock(write)
  clock(f"{len(cfg.runs)} runs x {cfg.steps} steps -> {out}")
  todo = {
      "train": lambda: stage_train(cfg, out, clock, devices),
      "measures": lambda: stage_measures(out, len(cfg.runs), plan, clock),
      "causal": lambda: stage_causal(out, cfg, plan, clock),
      "llc": lambda: stage_llc(out, cfg, plan, clock),
      "invariance": lambda: stage_invariance(out, cfg, plan, clock),
      "surrogate": lambda: stage_surrogate(out, plan, clock),
      "snapshots": lambda: stage_snapshots(out, cfg, plan, clock),
  }
  try:
    for name, fn in todo.items():
      if name in skip:
        clock(f"== {name}: skipped (--skip) ==")
        clock.stages[name] = {"status": "skipped (--skip)", "seconds": 0.0}
        continue
      clock.stage(name, fn)
  finally:
    _save_timings(out, clock)
  paths: dict = {}
  clock.stage("report", lambda: _report(out, plan, clock, paths))
  _save_timings(out, clock)
  clock(f"report: {paths['md']} and {paths['html']}")
  return paths


def _report(out, plan, clock, paths) -> str:
  from grokjax import plan as plan_lib, report

  plan_lib.save(out, plan)  # the report reads the plan from the run folder
  paths.update(report.build_report(out, write=clock))
  return f"done ({sum(1 for k in paths if k not in ('md', 'html'))} tables)"


# ---------------------------------------------------------------- CLI

_PRESET = flags.DEFINE_enum("preset", "demo", list(PLANS), "sweep and lens plan")
_OUT = flags.DEFINE_string("out", None, "run folder (created, or resumed when it holds this sweep)")
_SKIP = flags.DEFINE_list("skip", [], "stages to leave out: " + ",".join(STAGES[1:-1]))
# Default 1: with the runs split over 2 host devices, jaxlib 0.10.2 deadlocked in the
# sweep's evaluation (vmapped SVDs of spectral_summary, jax::ParallelBatchMap waiting on a
# thread pool whose threads both devices hold), twice at step ~2000 of the demo; one
# device trained the demo as fast (4.0 vs 4.1 steps/s: evaluation dominates).
_CPU_DEVICES = flags.DEFINE_integer("cpu_devices", 1, "XLA host devices to split a CPU-only "
                                    "machine into (0: the largest divisor of the run count "
                                    "<= CPU cores)")
_STEPS = flags.DEFINE_integer("steps", None, "override the preset's training steps")


def cpu_device_count(n_runs: int) -> int:
  cores = os.cpu_count() or 1
  return max(d for d in range(1, min(cores, n_runs) + 1) if n_runs % d == 0)


def main(argv):
  del argv
  from absl import logging

  logging.set_verbosity(logging.ERROR)  # orbax warns on every read-only checkpoint manager
  if _OUT.value is None:
    raise ConfigError("--out is required (the run folder to write or resume)")
  cfg = PRESETS[_PRESET.value]
  if _STEPS.value is not None:
    cfg = dataclasses.replace(cfg, steps=_STEPS.value)
  use_cpu_devices(_CPU_DEVICES.value or cpu_device_count(len(cfg.runs)))  # before JAX starts
  reproduce(cfg, _OUT.value, PLANS[_PRESET.value], skip=tuple(_SKIP.value),
            write=lambda s: print(s, flush=True))


if __name__ == "__main__":
  app.run(run_main(main))
