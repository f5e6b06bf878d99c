"""How each sampler's LLC moves under function-preserving rescalings of a trained model.

  python -m experiments.llc_invariance --run_dir=runs/quick --ops=sub --weight_decays=1
  python -m experiments.llc_invariance --run_dir=runs/quick --run=0 --grid=30 \
      --alpha_range=0.1,10 --beta_range=0.1,10 \
      --samplers=sgld,scale_invariant --step_sizes=1e-4,1e-4

For one run at one checkpoint (--step, default the last), rescales the model by α on
the residual stream and β on each MLP (`grokjax.slt.rescaling`) over a
--grid x --grid log grid over --alpha_range x --beta_range (the paper uses 30 x 30) and
estimates the LLC at every point with each sampler, all points with the same chain
keys (grokjax.slt.apply.invariance_at_checkpoint); a sampler's ε and γ default to
grokjax.slt.invariance.SAMPLER_SETTINGS. Writes DIR/llc_invariance.csv (sampler, α, β,
λ̂, the change of the initial loss, ...) and one heat map per sampler,
DIR/llc_invariance_<sampler>.png. A sampler is invariant when its map is flat. With the paper model's GELU the β direction changes
the function (see init_loss_change); train with --activation=relu for an exact β.
Small α makes LayerNorm's eps matter when the residual stream is small (weight decay
shrinks it): init_loss_change shows where the rescaled model is still the same
function, and only there is a moving λ̂ the sampler's fault.
"""

from __future__ import annotations

import jax
import numpy as np
from absl import app, flags

from grokjax import runio
from grokjax import folder as folder_lib
from grokjax.cli import check_unique, load_run_dir, run_main
from grokjax.errors import ConfigError
from grokjax.figures import slt as slt_figures
from grokjax.slt import apply, invariance

_RUN_DIR = flags.DEFINE_string("run_dir", None, "run folder written by experiments.train")
_RUN = flags.DEFINE_integer("run", None, "run index (default: the first matching the filters)")
_OPS = flags.DEFINE_list("ops", None, "pick the run by op")
_WDS = flags.DEFINE_list("weight_decays", None, "pick the run by weight decay")
_SEEDS = flags.DEFINE_list("seeds", None, "pick the run by seed")
_STEP = flags.DEFINE_integer("step", None, "checkpoint step (default: the last saved)")
_SAMPLERS = flags.DEFINE_list("samplers", list(invariance.SAMPLER_SETTINGS), "samplers to compare")
_STEP_SIZES = flags.DEFINE_list("step_sizes", None, "step size ε per sampler (one value: the "
                                "same for all; default: SAMPLER_SETTINGS)")
_LOCALIZATIONS = flags.DEFINE_list("localizations", None, "localisation γ per sampler (one "
                                   "value: the same for all; default: SAMPLER_SETTINGS)")
_NBETA = flags.DEFINE_string("nbeta", "n", "nβ: 'n' (n/log n), 'batch' (b/log b) or a number")
_GRID = flags.DEFINE_integer("grid", 5, "grid points per axis (the paper: 30)")
_ALPHAS = flags.DEFINE_list("alpha_range", ["0.1", "10"], "α from lo to hi (log grid)")
_BETAS = flags.DEFINE_list("beta_range", ["0.1", "10"], "β from lo to hi (log grid)")
_CHAINS = flags.DEFINE_integer("num_chains", 4, "chains per estimate")
_DRAWS = flags.DEFINE_integer("num_draws", 200, "steps per chain, burn-in included")
_BURNIN = flags.DEFINE_integer("num_burnin", 50, "steps discarded at the start of each chain")
_BATCH = flags.DEFINE_integer("batch_size", 512, "minibatch size (capped at the train split)")
_SEED = flags.DEFINE_integer("seed", 0, "sampler seed")


def pick_run(folder: runio.RunFolder) -> int:
  if _RUN.value is not None:
    return folder.check_runs([_RUN.value])[0]
  return runio.filter_runs(folder.cfg, ops=_OPS.value, weight_decays=_WDS.value,
                           seeds=_SEEDS.value)[0]


def floats(values: list[str] | None, name: str, n: int | None = None) -> list[float] | None:
  if values is None:
    return None
  try:
    out = [float(v) for v in values]
  except ValueError as e:
    raise ConfigError(f"--{name}: {e}") from e
  if n is not None and len(out) != n:
    raise ConfigError(f"--{name} takes {n} values, lo,hi; got {values}")
  return out


def main(argv):
  del argv
  check_unique("samplers", _SAMPLERS.value)
  folder = load_run_dir(_RUN_DIR.value)
  folder_lib.hold(folder.path)  # until this command ends: one writer per run folder
  run_dir, run = folder.path, pick_run(folder)
  step = _STEP.value if _STEP.value is not None else folder.steps[-1]
  alphas = invariance.log_grid(_GRID.value, *floats(_ALPHAS.value, "alpha_range", 2))
  betas = invariance.log_grid(_GRID.value, *floats(_BETAS.value, "beta_range", 2))
  settings = invariance.sampler_settings(_SAMPLERS.value, floats(_STEP_SIZES.value, "step_sizes"),
                                         floats(_LOCALIZATIONS.value, "localizations"))
  rows, outs = apply.invariance_at_checkpoint(
      folder, run=run, step=step, key=jax.random.key(_SEED.value), samplers=settings,
      alphas=alphas, betas=betas, nbeta=_NBETA.value, num_chains=_CHAINS.value,
      num_draws=_DRAWS.value, num_burnin=_BURNIN.value, batch_size=_BATCH.value)
  for sampler, eps, gam in settings:
    out = outs[sampler]
    finite = out["llc/mean"][np.isfinite(out["llc/mean"])]
    if finite.size:
      print(f"  {sampler}: λ̂ from {finite.min():.4g} to {finite.max():.4g} "
            f"({int(np.sum(out['diverged/count']))} diverged chains)")
  runio.write_csv(run_dir / "llc_invariance.csv", rows)
  table = runio.read_csv(run_dir / "llc_invariance.csv")
  for sampler, _, _ in settings:
    slt_figures.invariance(table, run_dir / f"llc_invariance_{sampler}", sampler=sampler)
  print(f"wrote {run_dir / 'llc_invariance.csv'} and {len(settings)} heat maps")


if __name__ == "__main__":
  app.run(run_main(main))
