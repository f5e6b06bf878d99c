"""The local learning coefficient over training, from a run folder.

  python -m experiments.llc --run_dir=runs/quick --ops=sub --weight_decays=1 --every=500
  python -m experiments.llc --run_dir=runs/quick --runs=0,1 --sampler=rmsprop_sgld \
      --step_size=1e-5 --localization=100 --steps=0,200,600,1200
  python -m experiments.llc --run_dir=runs/quick --runs=0 --calibrate \
      --calib_step_sizes=1e-6,4e-6,1e-5 --calib_localizations=1e3,1e4,3e4

Writes DIR/llc.csv (one row per run x checkpoint; replaced on each call) and DIR/llc.png
(λ̂ against step on a log axis, beside test accuracy from metrics.csv). Without
--step_size each checkpoint's ε is the largest of --step_grid whose short pilot chains
pass MALA's acceptance test (grokjax.slt.autostep); the row says which. With
--calibrate it instead runs the step size x localisation grid on one run at one
checkpoint (--calib_step, default the last) and writes DIR/llc_calibration.csv and
DIR/llc_calibration.png (the chains' traces per setting): look there before trusting
a number.
"""

from __future__ import annotations

import collections

import jax
import numpy as np
from absl import app, flags

from grokjax import runio
from grokjax import folder as folder_lib
from grokjax.cli import check_columns, check_positive, load_run_dir, parse_ints, run_main
from grokjax.errors import ConfigError
from grokjax.figures import slt as slt_figures
from grokjax.slt import apply, autostep, calibration

_RUN_DIR = flags.DEFINE_string("run_dir", None, "run folder written by experiments.train")
_SAMPLER = flags.DEFINE_enum("sampler", "sgld",
                             ["sgld", "rmsprop_sgld", "scale_invariant", "riemannian"], "sampler")
_STEP_SIZE = flags.DEFINE_float("step_size", None, "sampler step size ε for every checkpoint "
                                 "(default: per checkpoint, the largest of --step_grid whose "
                                 "pilot chains accept; sgld only)")
_STEP_GRID = flags.DEFINE_list("step_grid", [f"{v:g}" for v in autostep.DEFAULT_GRID],
                               "the automatic step size's ε grid")
_LOCALIZATION = flags.DEFINE_float("localization", 1e4, "localisation strength γ")
_NBETA = flags.DEFINE_string("nbeta", "n", "nβ: 'n' (n/log n), 'batch' (b/log b) or a number")
_CHAINS = flags.DEFINE_integer("num_chains", 4, "chains per estimate")
_DRAWS = flags.DEFINE_integer("num_draws", 200, "steps per chain, burn-in included")
_BURNIN = flags.DEFINE_integer("num_burnin", 100, "steps discarded at the start of each chain")
_BATCH = flags.DEFINE_integer("batch_size", 512, "minibatch size (capped at the train split)")
_STEPS = flags.DEFINE_string("steps", None, "comma-separated checkpoint steps")
_EVERY = flags.DEFINE_integer("every", None, "saved steps divisible by K (and the last)")
_RUNS = flags.DEFINE_string("runs", None, "comma-separated run indices (default: all)")
_OPS = flags.DEFINE_list("ops", None, "only runs with these ops")
_WDS = flags.DEFINE_list("weight_decays", None, "only runs with these weight decays")
_SEEDS = flags.DEFINE_list("seeds", None, "only runs with these seeds")
_SEED = flags.DEFINE_integer("seed", 0, "sampler seed")
_CKPT_BATCH = flags.DEFINE_integer("checkpoint_batch", 1, "checkpoints vmapped together")
_CALIBRATE = flags.DEFINE_bool("calibrate", False, "run the calibration grid instead")
_CAL_STEPS = flags.DEFINE_list("calib_step_sizes", ["1e-6", "2e-6", "4e-6", "1e-5"], "ε grid")
_CAL_LOCS = flags.DEFINE_list("calib_localizations", ["1e3", "1e4", "3e4"], "γ grid")
_CAL_STEP = flags.DEFINE_integer("calib_step", None, "checkpoint to calibrate at (default last)")


def select_runs(cfg) -> list[int]:
  runs = parse_ints(_RUNS.value, "runs") if _RUNS.value else None
  return runio.filter_runs(cfg, ops=_OPS.value, weight_decays=_WDS.value, seeds=_SEEDS.value,
                           runs=runs)


def floats(values, name) -> list[float]:
  try:
    return [float(v) for v in values]
  except ValueError as e:
    raise ConfigError(f"--{name}: {e}") from e


def sampler_settings() -> dict:
  return dict(sampler=_SAMPLER.value, nbeta=_NBETA.value, num_chains=_CHAINS.value,
              num_draws=_DRAWS.value, num_burnin=_BURNIN.value)


def run_calibration(folder: runio.RunFolder, run: int) -> None:
  run_dir, cfg = folder.path, folder.cfg
  step = _CAL_STEP.value if _CAL_STEP.value is not None else folder.steps[-1]
  params = jax.tree.map(lambda a: a[0, 0], folder.params([step], [run]))
  data = apply.train_data(cfg, run)
  out = calibration.calibrate(
      apply.make_loss_fn(cfg), params, data, key=jax.random.key(_SEED.value),
      step_sizes=floats(_CAL_STEPS.value, "calib_step_sizes"),
      localizations=floats(_CAL_LOCS.value, "calib_localizations"),
      nbetas=[_NBETA.value], batch_size=min(_BATCH.value, int(data[1].shape[0])),
      eval_chunk=cfg.eval_chunk, chance_loss=float(np.log(cfg.p)),
      **{k: v for k, v in sampler_settings().items() if k != "nbeta"})
  rows = [{**runio.run_fields(run, cfg.runs[run]), "step": step, "sampler": _SAMPLER.value, **row,
           **apply.saturation_fields(row["llc_mean"], row["init_loss"], row["nbeta"], cfg.p),
           **calibration.diagnostic_fields(out, i)}
          for i, row in enumerate(calibration.calibration_rows(out))]
  runio.write_csv(run_dir / "llc_calibration.csv", rows)
  slt_figures.calibration(out, run_dir / "llc_calibration",
                          title=f"{cfg.runs[run].label}, step {step}, {_SAMPLER.value}: "
                                "nβ·(L_m(w_t) − L_n(w*)) per chain")
  print(f"wrote {run_dir / 'llc_calibration.csv'} and llc_calibration.png")
  try:
    choice = calibration.choose_setting(out)
  except ConfigError as e:
    print(f"warning: no setting to recommend: {e}")
    return
  print(f"recommended: --step_size={choice['step_size']:.3g} "
        f"--localization={choice['localization']:.3g} (λ̂ = {choice['llc_mean']:.4g}; "
        f"{choice['reason']})")


def main(argv):
  del argv
  check_positive(checkpoint_batch=_CKPT_BATCH.value)
  folder = load_run_dir(_RUN_DIR.value)
  folder_lib.hold(folder.path)  # until this command ends: one writer per run folder
  run_dir = folder.path
  runs = select_runs(folder.cfg)
  if _CALIBRATE.value:
    run_calibration(folder, runs[0])
    return
  # the figure reads metrics.csv: a bad one is refused before the estimates, not after
  metrics = folder.metrics() if folder.has_table("metrics") else None
  check_columns(metrics, ("run", "op", "seed", "weight_decay", "step", "test_acc"),
                folder.file("metrics.csv"))
  rows = apply.llc_over_training(
      folder, key=jax.random.key(_SEED.value), step_size=_STEP_SIZE.value,
      step_grid=floats(_STEP_GRID.value, "step_grid"), localization=_LOCALIZATION.value,
      batch_size=_BATCH.value, runs=runs,
      steps=parse_ints(_STEPS.value, "steps") if _STEPS.value else None, every=_EVERY.value,
      checkpoint_batch=_CKPT_BATCH.value, **sampler_settings())
  runio.write_csv(run_dir / "llc.csv", rows)
  slt_figures.llc_over_training(folder.table("llc"), metrics, run_dir / "llc")
  print(f"wrote {run_dir / 'llc.csv'} ({len(rows)} rows) and {run_dir / 'llc.png'}")
  n_sat = sum(r["saturated"] for r in rows)
  if n_sat:
    print(f"warning: {n_sat} of {len(rows)} estimates are saturated (chains sampled near-chance "
          f"models, mean loss >= {apply.SATURATION} ln p): the step size is too large for the "
          "localisation; run --calibrate and lower --step_size or raise --localization")
  no_eps = sum(not r["autostep_ok"] for r in rows)
  if no_eps:
    print(f"warning: at {no_eps} of {len(rows)} checkpoints no step size of the grid accepted "
          "(pilot acceptance < 0.9, diverged or saturated); those ran at its smallest ε: add "
          "smaller values to --step_grid")
  failed = [r for r in rows if not r["diag_ok"]]
  why = collections.Counter(r["diag_reasons"] for r in failed)
  print(f"diagnostics: {len(failed)} of {len(rows)} estimates failed"
        + "".join(f"; {n} x {reason}" for reason, n in why.most_common()))


if __name__ == "__main__":
  app.run(run_main(main))
