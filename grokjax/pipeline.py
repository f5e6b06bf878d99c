"""The paper end to end on one run folder: train, every lens, then the report.

Stages, each skipped when its output in the folder is already complete (so re-running
resumes): train (grokjax.sweep.train_sweep; a folder with the same config is resumed,
a finished one reused), measures (spectral, Fourier, geometry, BDM -> measures.csv),
causal (patching and ablation -> causal.csv, causal_ablation.csv), llc (LLC over
training at each run's phase steps or common log-spaced steps, Plan.llc_steps -> llc.csv
with a `phase` column), invariance (LLC of each sampler on a rescaling grid ->
llc_invariance.csv), surrogate (the SFM -> surrogate/), snapshots (embeddings,
quantised matrices and Occam-gate maps at four steps -> snapshots.npz), hidden (PCA and
t-SNE maps of the embeddings and hidden states at four steps -> hidden.npz), and the report
(DIR/report/report.md, report.html, figures/, tables/), which reads the lens plan from
DIR/plan.json. `skip` leaves lens stages out; the report says which.

A run that diverged (a non-finite loss; summary.csv's `diverged_at`) is named in one
warning line after the train stage, on the first run and on every rerun; the lens
stages and the report leave it out, and `reproduce` raises DivergenceError (exit
status 3) once the report is written.

After training the folder is opened once (`runio.RunFolder`) and every lens stage
reads config, steps and parameters through that value.

>>> # from grokjax.config import PRESETS
>>> # from grokjax.plan import PLANS
>>> # paths = reproduce(PRESETS["demo"], "runs/demo", PLANS["demo"], skip=("invariance",))
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from typing import Callable

import numpy as np

from grokjax import divergence, runio
from grokjax import folder as folder_lib
from grokjax import plan as plan_lib
from grokjax.config import SweepConfig
from grokjax.errors import ConfigError, DivergenceError, RunFolderError
from grokjax.plan import Plan

TIMINGS = "reproduce_timings.json"
STAGES = ("train", "measures", "causal", "llc", "invariance", "surrogate", "snapshots", "hidden",
          "report")
# the paper's first checkpoint: the log-spaced lens steps start near it (see runio.log_spaced)
FIRST_STEP = 100


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

def _stage_table(folder: runio.RunFolder, name: str, write) -> dict | None:
  """DIR/<name>.csv of a stage that writes the whole table, or None where it is absent or
  cannot be read (truncated or edited: said in one line, and the stage recomputes it)."""
  if not folder.has_table(name):
    return None
  try:
    return folder.table(name)
  except RunFolderError as e:
    write(f"{e}; recomputing it")
    return None


def _steps_done(folder: runio.RunFolder, name: str, runs, steps, write, *,
                columns: tuple[str, ...] = (), **match) -> bool:
  """Whether the tidy table DIR/<name>.csv has a row for every run x step (with the given
  column values, and the given `columns`). `runs`: the run indices, or their number (runs
  0..n-1); `steps`: the steps of every run, or {run: its steps}."""
  runs = range(runs) if isinstance(runs, int) else runs
  t = _stage_table(folder, name, write)
  if not t or "run" not in t or "step" not in t or any(c not in t for c in columns):
    return False
  sel = np.ones(len(t["run"]), bool)
  for k, v in match.items():
    if k not in t:
      return False
    col = t[k]
    sel &= (col.astype(str) == str(v)) if col.dtype == object else np.isclose(col, v)
  have = set(zip(t["run"][sel].tolist(), t["step"][sel].tolist()))
  per_run = steps if isinstance(steps, dict) else {r: steps for r in runs}
  return all((r, s) in have for r in runs for s in per_run[r])


def _save_timings(out: pathlib.Path, clock: Clock) -> None:
  """Merges this run's stage timings into reproduce_timings.json (a stage reused now keeps
  the time it took when it was done). The file is informational only, so an unreadable
  one is replaced, with one line saying so, rather than stopping the pipeline."""
  path = out / TIMINGS
  old = {}
  if path.is_file():
    try:
      old = runio.read_json(path)
    except RunFolderError as e:
      clock(f"warning: {e}; rewriting it with this run's timings only")
    if not (isinstance(old, dict) and all(isinstance(v, dict) for v in old.values())):
      clock(f"warning: {path} is not a table of stage timings; rewriting it with this run's "
            "timings only")
      old = {}
  for k, v in clock.stages.items():
    if v["status"].startswith("done") or k not in old:
      old[k] = v
  runio.write_json(path, old)


# ---------------------------------------------------------------- stages

def stage_train(cfg: SweepConfig, out: pathlib.Path, write, devices=None) -> str:
  """Trains, resumes or reuses the sweep. A DivergenceError is not raised here: every run's
  data is written by then, and `reproduce` reads the diverged runs from the folder."""
  from grokjax import checkpoint, sweep

  if not (out / "config.json").is_file():
    return _train(lambda: sweep.train_sweep(cfg, out, write=write, devices=devices), "done")
  runio.check_same_config(out, cfg, hint="choose another --out")
  metrics = out / sweep.METRICS
  # a killed sweep can leave a cut-off last row: resuming drops it
  done = runio.read_csv(metrics, drop_partial_last=True) if metrics.is_file() else {}
  last = int(done["step"].max()) if done.get("step") is not None and done["step"].size else -1
  if last >= cfg.steps and checkpoint.list_steps(out)[-1] == cfg.steps:
    return "reused (training finished)"
  return _train(lambda: sweep.train_sweep(cfg, out, resume=True, write=write, devices=devices),
                "done (resumed)")


def _train(fn: Callable[[], object], status: str) -> str:
  try:
    fn()
  except DivergenceError:
    return f"{status}; diverged runs"
  return status


def stage_measures(folder: runio.RunFolder, plan: Plan, write, runs=None) -> str:
  """Measures every run (measure_run_dir has no run filter); reused once `runs` are done
  with the plan's options: a diverged run's NaN parameters give NaN sentinels that would
  never count as measured."""
  from grokjax.measures.apply import MeasureOptions, measure_run_dir, pending

  runs = folder.check_runs(runs)
  saved = list(folder.steps)
  common = dict(n_examples=plan.n_examples, gc_method=plan.gc_method)
  cheap = [s for s in saved if plan.measure_every is None or s % plan.measure_every == 0]
  cheap = sorted(set(cheap) | set(folder.log_spaced(8)) | {saved[-1]})
  bdm = cheap if plan.bdm_points is None else folder.log_spaced(plan.bdm_points)
  bdm = sorted(set(bdm) | {0})
  jobs = [MeasureOptions(lenses=lenses, steps=tuple(steps), **common)
          for lenses, steps in ((plan.measure_lenses, cheap), (("bdm",), bdm))]
  if not any(pending(folder, opts, runs) for opts in jobs):
    return "reused"
  for opts in jobs:
    measure_run_dir(folder, opts, write=write)
  return f"done ({len(cheap)} steps; BDM at {len(bdm)})"


def stage_causal(folder: runio.RunFolder, plan: Plan, write, runs=None) -> str:
  from grokjax.causal import apply

  runs = folder.check_runs(runs)
  steps = folder.log_spaced(plan.causal_points, FIRST_STEP)
  if _steps_done(folder, "causal", runs, steps, write):
    return "reused"
  opts = apply.CausalOptions(n_pairs=plan.causal_pairs, n_random=plan.causal_random,
                             ablation_examples=plan.causal_examples, seed=plan.seed)
  patch, ablation = apply.causal_over_training(folder, steps, runs, opts, log=write)
  runio.write_csv(folder.file("causal.csv"), patch)
  runio.write_csv(folder.file("causal_ablation.csv"), ablation)
  return f"done (steps {steps})"


def llc_steps(folder: runio.RunFolder, plan: Plan, runs: list[int]) -> dict[int, dict]:
  """{run: {step: its phase labels}}: the checkpoints the LLC stage measures per run.

  "phases": each run's phase steps (grokjax.analysis.phase_steps) among the saved ones;
  "log": the same log-spaced steps and 0 for every run, labelled with the phases they
  are nearest to (a step no label snaps to has none).
  """
  from grokjax.analysis import phase_steps

  if plan.llc_steps not in plan_lib.LLC_STEPS:
    raise ConfigError(f"unknown plan llc_steps {plan.llc_steps!r}; valid: "
                      f"{', '.join(plan_lib.LLC_STEPS)}")
  metrics = folder.metrics()
  if plan.llc_steps == "phases":
    return {r: phase_steps.run_phase_steps(metrics, r, folder.steps) for r in runs}
  steps = sorted(set(folder.log_spaced(plan.llc_points - 1, FIRST_STEP)) | {0})
  labels = {r: phase_steps.run_phase_steps(metrics, r, steps) for r in runs}
  return {r: {s: labels[r].get(s, ()) for s in steps} for r in runs}


def _same_phases(table: dict, chosen: dict[int, dict]) -> bool:
  """Whether llc.csv labels every chosen run x step as `chosen` does."""
  from grokjax.analysis.phase_steps import cell_labels

  have = {(r, s): cell_labels(p) for r, s, p in zip(table["run"].tolist(),
                                                     table["step"].tolist(), table["phase"])}
  return all(have.get((r, s)) == labels for r, d in chosen.items() for s, labels in d.items())


def stage_llc(folder: runio.RunFolder, plan: Plan, write, runs=None) -> str:
  import jax

  from grokjax.analysis.phase_steps import phase_cell
  from grokjax.slt import apply, autostep

  cfg = folder.cfg
  runs = [i for i in folder.check_runs(runs)
          if plan.llc_all_seeds or cfg.runs[i].seed == cfg.seeds[0]]
  if not runs:
    return "skipped (the runs it measures diverged)"
  chosen = llc_steps(folder, plan, runs)
  steps = {r: sorted(chosen[r]) for r in runs}
  grid = autostep.plan_grid(plan.llc_step_grid)
  step = (dict(step_size=plan.llc_step_size) if plan.llc_step_size is not None else
          dict(step_rule="auto", step_grid=apply.grid_label(grid)))
  if _steps_done(folder, "llc", runs, steps, write, columns=("phase",),
                 sampler=plan.llc_sampler, num_draws=plan.llc_draws,
                 num_chains=plan.llc_chains, **step) and \
      _same_phases(folder.table("llc"), chosen):
    return "reused"
  rows = apply.llc_over_training(
      folder, key=jax.random.key(plan.seed), sampler=plan.llc_sampler,
      step_size=plan.llc_step_size, step_grid=grid, localization=plan.llc_localization,
      num_chains=plan.llc_chains, num_draws=plan.llc_draws, num_burnin=plan.llc_burnin,
      batch_size=plan.llc_batch, runs=runs, steps=steps, log=write)
  runio.write_csv(folder.file("llc.csv"),
                  [{**row, "phase": phase_cell(chosen[row["run"]][row["step"]])}
                   for row in rows])
  n = sum(len(s) for s in steps.values())
  auto = "" if plan.llc_step_size is not None else (
      f"; ε chosen per checkpoint, {sum(not r['autostep_ok'] for r in rows)} with no accepting ε")
  return f"done ({plan.llc_steps} steps: {n} checkpoints of {len(runs)} runs{auto})"


def invariance_run(cfg: SweepConfig, runs=None) -> int:
  """The run whose final model the invariance grid rescales: largest weight decay, first op/seed
  (among `runs`, default all)."""
  runs = range(len(cfg.runs)) if runs is None else runs
  wd = max(cfg.runs[i].weight_decay for i in runs)
  return next(i for i in runs if cfg.runs[i].weight_decay == wd)


def stage_invariance(folder: runio.RunFolder, plan: Plan, write, runs=None) -> str:
  import jax

  from grokjax.slt import apply, invariance

  alphas = invariance.log_grid(plan.invariance_grid, *plan.alpha_range)
  betas = invariance.log_grid(plan.invariance_grid, *plan.beta_range)
  t = _stage_table(folder, "llc_invariance", write)
  if t:
    def same(sel, col, grid):
      have = np.unique(t[col][sel])
      return have.shape == grid.shape and np.allclose(have, grid, rtol=1e-5)

    if all(same(sel, "alpha", alphas) and same(sel, "beta", betas)
           for sel in (t["sampler"].astype(str) == s for s in plan.invariance_samplers)):
      return "reused"
  rows, _ = apply.invariance_at_checkpoint(
      folder, run=invariance_run(folder.cfg, folder.check_runs(runs)), step=folder.steps[-1],
      key=jax.random.key(plan.seed), samplers=invariance.sampler_settings(plan.invariance_samplers),
      alphas=alphas, betas=betas, num_chains=plan.invariance_chains,
      num_draws=plan.invariance_draws, num_burnin=plan.invariance_draws // 5,
      batch_size=plan.llc_batch, log=write)
  runio.write_csv(folder.file("llc_invariance.csv"), rows)
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


def stage_snapshots(folder: runio.RunFolder, plan: Plan, write) -> str:
  from grokjax.measures import snapshots

  path = folder.file(snapshots.FILE)
  steps = folder.log_spaced(plan.snapshot_points, FIRST_STEP)
  try:
    old = snapshots.load(path)
  except RunFolderError as e:  # e.g. cut off by a killed write
    write(f"{e}; recomputing it")
    old = None
  if old is not None and old.current(steps, plan.snapshot_matrix):
    return "reused"
  snapshots.save(path, snapshots.compute(folder, steps, matrix=plan.snapshot_matrix,
                                         write=write))
  return f"done (steps {steps})"


def stage_hidden(folder: runio.RunFolder, plan: Plan, write) -> str:
  from grokjax.measures import hidden_apply

  steps = folder.log_spaced(plan.hidden_points, FIRST_STEP)
  opts = hidden_apply.HiddenOptions(
      steps=tuple(steps), n_examples=plan.hidden_examples,
      tsne_examples=plan.hidden_tsne_examples, tsne_sites=plan.hidden_tsne_sites,
      perplexity=plan.hidden_perplexity, seed=plan.seed)
  path = folder.file(hidden_apply.FILE)
  try:
    old = hidden_apply.load(path)
  except RunFolderError as e:  # e.g. cut off by a killed write
    write(f"{e}; recomputing it")
    old = None
  if old is not None and old.current(opts, hidden_apply.runs_of(folder.cfg)):
    return "reused"
  hidden_apply.save(path, hidden_apply.compute(folder, opts, write=write))
  return f"done (steps {steps}; t-SNE: {hidden_apply.tsne_method(opts)})"


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
  check_out(cfg, out)  # before the lock, which creates the folder
  with folder_lib.lock(out):  # across every stage; the training sweep takes it again
    check_out(cfg, out)
    return _reproduce(cfg, out, plan, skip, write, devices)


def check_out(cfg: SweepConfig, out: pathlib.Path) -> None:
  """RunFolderError unless `out` is new, empty, or a training run folder of `cfg`."""
  folder_lib.check_target(out)
  if not folder_lib.entries(out):
    return
  found = folder_lib.kind(out)
  if found is None:
    raise RunFolderError(f"{out} holds {folder_lib.describe(out)} and is not a grokjax run "
                         "folder; reproduce writes a new folder or continues its own: choose "
                         "another --out")
  if found != "training":
    raise RunFolderError(f"{out} is a {found} run folder, not a training one; choose another "
                         "--out")
  runio.check_same_config(out, cfg, hint="choose another --out")


def _reproduce(cfg: SweepConfig, out: pathlib.Path, plan: Plan, skip, write, devices) -> dict:
  clock = Clock(write)
  clock(f"{len(cfg.runs)} runs x {cfg.steps} steps -> {out}")
  try:
    clock.stage("train", lambda: stage_train(cfg, out, clock, devices))
    diverged = divergence.diverged_runs(out)
    runs = _healthy_runs(cfg, diverged, clock)
    folder = runio.RunFolder.open(out)  # once, now that every checkpoint is saved
    lenses = {
        "measures": lambda: stage_measures(folder, plan, clock, runs),
        "causal": lambda: stage_causal(folder, plan, clock, runs),
        "llc": lambda: stage_llc(folder, plan, clock, runs),
        "invariance": lambda: stage_invariance(folder, plan, clock, runs),
        "surrogate": lambda: stage_surrogate(out, plan, clock),
        "snapshots": lambda: stage_snapshots(folder, plan, clock),
        "hidden": lambda: stage_hidden(folder, plan, clock),
    }
    for name, fn in lenses.items():
      if name in skip:
        clock(f"== {name}: skipped (--skip) ==")
        clock.stages[name] = {"status": "skipped (--skip)", "seconds": 0.0}
        continue
      clock.stage(name, fn)
  finally:
    _save_timings(out, clock)
  plan_lib.save(out, plan)
  paths: dict = {}
  clock.stage("report", lambda: _report(out, clock, paths))
  _save_timings(out, clock)
  clock(f"report: {paths['md']} and {paths['html']}")
  if diverged:
    raise DivergenceError(f"{divergence.describe(diverged)}; the report of the other runs is "
                          f"{paths['md']}")
  return paths


def _healthy_runs(cfg: SweepConfig, diverged: list[dict], write) -> list[int]:
  """The runs the lenses look at; one warning line naming the diverged ones."""
  if not diverged:
    return list(range(len(cfg.runs)))
  if len(diverged) == len(cfg.runs):
    raise DivergenceError(f"{divergence.describe(diverged)}; every run diverged, so there is "
                          "nothing to analyse")
  write(f"warning: {divergence.describe(diverged)}; the lenses and the report leave "
        f"{'it' if len(diverged) == 1 else 'them'} out")
  bad = {r["run"] for r in diverged}
  return [i for i in range(len(cfg.runs)) if i not in bad]


def _report(out: pathlib.Path, clock: Clock, paths: dict) -> str:
  from grokjax import report

  paths.update(report.build_report(out, write=clock))
  return f"done ({sum(1 for k in paths if k not in ('md', 'html'))} tables)"
