"""How each sampler's LLC moves under function-preserving rescalings of a trained model.

  python -m experiments.llc_invariance --run_dir=runs/quick --ops=sub --weight_decays=1
  python -m experiments.llc_invariance --run_dir=runs/quick --run=0 --grid=30 \
      --alpha_range=0.1,10 --beta_range=0.1,10 \
      --samplers=sgld,scale_invariant --step_sizes=1e-4,1e-4

For one run at one checkpoint (--step, default the last), rescales the model by α on
the residual stream and β on each MLP (`grokjax.slt.rescaling`) over a
--grid x --grid log grid over --alpha_range x --beta_range (the paper uses 30 x 30) and
estimates the LLC at every point with each sampler, all points with the same chain
keys. Writes DIR/llc_invariance.csv (sampler, α, β, λ̂, the change of the initial loss,
...) and one heat map per sampler, DIR/llc_invariance_<sampler>.png. A sampler is
invariant when its map is flat. With the paper model's GELU the β direction changes
the function (see init_loss_change); train with --activation=relu for an exact β.
Small α makes LayerNorm's eps matter when the residual stream is small (weight decay
shrinks it): init_loss_change shows where the rescaled model is still the same
function, and only there is a moving λ̂ the sampler's fault.
"""

from __future__ import annotations

import jax
import numpy as np
from absl import app, flags

from grokjax import checkpoint, runio
from grokjax.cli import load_run_dir, run_main
from grokjax.errors import ConfigError
from grokjax.figures import slt as slt_figures
from grokjax.slt import apply, invariance

_RUN_DIR = flags.DEFINE_string("run_dir", None, "run folder written by experiments.train")
_RUN = flags.DEFINE_integer("run", None, "run index (default: the first matching the filters)")
_OPS = flags.DEFINE_list("ops", None, "pick the run by op")
_WDS = flags.DEFINE_list("weight_decays", None, "pick the run by weight decay")
_SEEDS = flags.DEFINE_list("seeds", None, "pick the run by seed")
_STEP = flags.DEFINE_integer("step", None, "checkpoint step (default: the last saved)")
_SAMPLERS = flags.DEFINE_list("samplers", ["sgld", "rmsprop_sgld", "scale_invariant",
                                           "riemannian"], "samplers to compare")
_STEP_SIZES = flags.DEFINE_list("step_sizes", ["4e-6", "1e-5", "0.05", "0.05"],
                                "step size ε per sampler (one value: the same for all)")
# The scale-invariant samplers localise in relative (per-tensor mean-square) units, so
# their γ is on another scale: γ = 1 allows ~100% relative moves per tensor.
_LOCALIZATIONS = flags.DEFINE_list("localizations", ["1e4", "100", "1", "1"],
                                   "localisation γ per sampler (one value: the same for all)")
_NBETA = flags.DEFINE_string("nbeta", "n", "nβ: 'n' (n/log n), 'batch' (b/log b) or a number")
_GRID = flags.DEFINE_integer("grid", 5, "grid points per axis (the paper: 30)")
_ALPHAS = flags.DEFINE_list("alpha_range", ["0.1", "10"], "α from lo to hi (log grid)")
_BETAS = flags.DEFINE_list("beta_range", ["0.1", "10"], "β from lo to hi (log grid)")
_CHAINS = flags.DEFINE_integer("num_chains", 4, "chains per estimate")
_DRAWS = flags.DEFINE_integer("num_draws", 200, "steps per chain, burn-in included")
_BURNIN = flags.DEFINE_integer("num_burnin", 50, "steps discarded at the start of each chain")
_BATCH = flags.DEFINE_integer("batch_size", 512, "minibatch size (capped at the train split)")
_SEED = flags.DEFINE_integer("seed", 0, "sampler seed")


def pick_run(cfg) -> int:
  if _RUN.value is not None:
    if not 0 <= _RUN.value < len(cfg.runs):
      raise ConfigError(f"--run={_RUN.value} out of range: the sweep has {len(cfg.runs)} runs")
    return _RUN.value
  return runio.filter_runs(cfg, ops=_OPS.value, weight_decays=_WDS.value,
                           seeds=_SEEDS.value)[0]


def floats(values: list[str], name: str) -> list[float]:
  try:
    out = [float(v) for v in values]
  except ValueError as e:
    raise ConfigError(f"--{name}: {e}") from e
  if len(out) != 2:
    raise ConfigError(f"--{name} takes two values, lo,hi; got {values}")
  return out


def per_sampler(values: list[str], name: str) -> list[float]:
  try:
    out = [float(v) for v in values]
  except ValueError as e:
    raise ConfigError(f"--{name}: {e}") from e
  if len(out) == 1:
    out *= len(_SAMPLERS.value)
  if len(out) != len(_SAMPLERS.value):
    raise ConfigError(f"--{name} has {len(out)} values for {len(_SAMPLERS.value)} samplers")
  return out


def main(argv):
  del argv
  run_dir, cfg = load_run_dir(_RUN_DIR.value)
  run = pick_run(cfg)
  step = _STEP.value if _STEP.value is not None else checkpoint.list_steps(run_dir)[-1]
  params = checkpoint.load_params(run_dir, step, index=run)
  data = apply.train_data(cfg, run)
  loss_fn = apply.make_loss_fn(cfg)
  alphas = invariance.log_grid(_GRID.value, *floats(_ALPHAS.value, "alpha_range"))
  betas = invariance.log_grid(_GRID.value, *floats(_BETAS.value, "beta_range"))
  rows = []
  settings = zip(_SAMPLERS.value, per_sampler(_STEP_SIZES.value, "step_sizes"),
                 per_sampler(_LOCALIZATIONS.value, "localizations"))
  for sampler, eps, gam in settings:
    print(f"llc_invariance: {sampler} (ε={eps:g}, γ={gam:g}) on a {len(alphas)}x{len(betas)} "
          f"grid, {cfg.runs[run].label}, step {step}")
    out = invariance.rescaling_grid(
        loss_fn, params, data, key=jax.random.key(_SEED.value), alphas=alphas, betas=betas,
        sampler=sampler, step_size=eps, localization=gam, nbeta=_NBETA.value,
        num_chains=_CHAINS.value, num_draws=_DRAWS.value, num_burnin=_BURNIN.value,
        batch_size=min(_BATCH.value, int(data[1].shape[0])), eval_chunk=cfg.eval_chunk)
    rows += invariance.invariance_rows(out, **runio.run_fields(run, cfg.runs[run]), step=step,
                                       sampler=sampler, step_size=eps, localization=gam)
    finite = out["llc/mean"][np.isfinite(out["llc/mean"])]
    if finite.size:
      print(f"  λ̂ from {finite.min():.4g} to {finite.max():.4g} "
            f"({int(np.sum(out['diverged/count']))} diverged chains)")
  runio.write_csv(run_dir / "llc_invariance.csv", rows)
  table = runio.read_csv(run_dir / "llc_invariance.csv")
  for sampler in _SAMPLERS.value:
    slt_figures.invariance(table, run_dir / f"llc_invariance_{sampler}", sampler=sampler)
  print(f"wrote {run_dir / 'llc_invariance.csv'} and {len(_SAMPLERS.value)} heat maps")


if __name__ == "__main__":
  app.run(run_main(main))
