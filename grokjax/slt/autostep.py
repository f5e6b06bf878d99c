"""The step size chosen per checkpoint: the largest ε of a grid whose pilot chains accept.

One ε for every checkpoint of a run does not work on the paper model: the basin sharpens
as a run memorises and loosens as weight decay shrinks the weights, so a step that mixes
well on one checkpoint is rejected by MALA's test on another (at ε = 4e-6 every demo
estimate failed the acceptance diagnostic). `auto_llc` therefore picks ε for each
checkpoint inside the program that estimates it:

1. pilot chains (`PILOT_CHAINS` × `PILOT_DRAWS`, the MALA acceptance computed at every
   draw on the draw's own minibatch) run at every ε of the ascending grid, with the same
   keys;
2. an ε passes when the pilot's mean acceptance reaches the 0.9 target
   (`llc.DIAG_THRESHOLDS["accept_warn"]`), no pilot chain diverged and the pilot did not
   saturate; the largest passing ε is used (it mixes fastest, and the acceptance bounds its
   discretisation error), or the smallest of the grid when none passes (`autostep/ok`
   false, and the estimate's own acceptance diagnostic fails);
3. the estimate runs at that ε with the caller's chain keys, so that checkpoints of one
   run share their noise as with a fixed ε.

Stationarity is judged on the estimate's own chains (its diag/ flags): sixteen pilot draws
are too few for it. Only samplers with a fixed metric have the MALA acceptance
(`llc.METRIC_SAMPLERS`: sgld, scale_invariant), so only they can be calibrated so.

>>> import jax, jax.numpy as jnp
>>> from grokjax.slt import llc
>>> x = jax.random.normal(jax.random.key(0), (500, 3))
>>> loss = lambda w, b: 0.5 * jnp.mean((b[1] - b[0] @ w) ** 2)
>>> w = jnp.array([1.0, -2.0, 0.5])
>>> spec = llc.make_spec(sampler="sgld", num_chains=4, num_draws=400, num_burnin=100,
...                      batch_size=None, n=500)
>>> out = auto_llc(loss, w, (x, x @ w), key=jax.random.key(1), spec=spec,
...                step_sizes=jnp.array([1e-3, 3e-3, 3e-2, 1.0]), nbeta=80.0, localization=1.0)
>>> out["autostep/passed"].tolist()    # MALA rejects the larger steps; 3e-3 is used
[True, True, False, False]
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from grokjax.errors import ConfigError
from grokjax.slt import llc as llc_lib

PILOT_CHAINS = 2
PILOT_DRAWS = 16
TARGET = llc_lib.DIAG_THRESHOLDS["accept_warn"]
# the grid experiments.llc and an automatic plan search by default: from the fixed ε = 4e-6
# of the presets down to 1e-7, where a trained paper model's pilots first accept (BUILD_NOTES,
# SLT: acceptance 0.97 at 1e-7, 0.30 at 1e-6 with batch 512)
DEFAULT_GRID = (1e-7, 2.5e-7, 5e-7, 1e-6, 2e-6, 4e-6)


def plan_grid(grid) -> tuple[float, ...]:
  """A plan's `llc_step_grid`, or DEFAULT_GRID where it gives none."""
  return tuple(grid) if grid else DEFAULT_GRID


def pilot_spec(spec: llc_lib.ChainSpec) -> llc_lib.ChainSpec:
  """The pilot chains' spec: few chains and draws, no burn-in, acceptance at every draw."""
  return dataclasses.replace(spec, num_chains=min(spec.num_chains, PILOT_CHAINS),
                             num_draws=PILOT_DRAWS, num_burnin=0, acceptance="same_batch")


def pilot_draws(grid_size: int, num_chains: int) -> float:
  """The pilots' cost in draws of the estimate's `num_chains` chains (a draw with its
  acceptance costs two gradients), for the dry run's estimate."""
  return grid_size * PILOT_DRAWS * 2 * min(num_chains, PILOT_CHAINS) / num_chains


def check_grid(step_sizes, sampler) -> np.ndarray:
  """The grid as an ascending array (no repeats); ConfigError on a bad grid or sampler."""
  if sampler not in llc_lib.METRIC_SAMPLERS:
    raise ConfigError(f"an automatic step size needs the MALA acceptance, which only "
                      f"{' and '.join(llc_lib.METRIC_SAMPLERS)} have (sampler {sampler!r}); "
                      f"give the step size")
  grid = np.asarray([float(v) for v in step_sizes], np.float64)
  if grid.size == 0:
    raise ConfigError("the step-size grid is empty")
  if not all(math.isfinite(v) and v > 0 for v in grid):
    raise ConfigError(f"every step size of the grid must be > 0 and finite, got {grid.tolist()}")
  return np.unique(grid)


def auto_llc(loss_fn, params, data, *, key, spec: llc_lib.ChainSpec, step_sizes, nbeta,
             localization, init_loss=None, chance_loss=None) -> dict:
  """`llc.sample_llc` at the ε the rule of the module docstring picks (traceable).

  `step_sizes`: the ascending grid (`check_grid`). Adds `autostep/step_size` (the ε used),
  `autostep/index`, `autostep/ok` (some ε passed), and per grid point `autostep/accept`
  and `autostep/passed`.
  """
  if init_loss is None:
    init_loss = llc_lib.full_loss(loss_fn, params, data, chunk_size=spec.eval_chunk)
  pilot = pilot_spec(spec)
  pilot_key = jax.random.fold_in(key, 1)

  def one(eps):
    out = llc_lib.sample_llc(loss_fn, params, data, key=pilot_key, spec=pilot, step_size=eps,
                             nbeta=nbeta, localization=localization, init_loss=init_loss,
                             chance_loss=chance_loss)
    return out["diag/accept"], out["diverged/count"], out["diag/saturated"]

  grid = jnp.asarray(step_sizes, jnp.float32)
  accept, diverged, saturated = jax.lax.map(one, grid)
  passed = (accept >= TARGET) & (diverged == 0) & ~saturated
  index = jnp.max(jnp.where(passed, jnp.arange(grid.shape[0]), 0))
  eps = grid[index]
  out = llc_lib.sample_llc(loss_fn, params, data, key=key, spec=spec, step_size=eps,
                           nbeta=nbeta, localization=localization, init_loss=init_loss,
                           chance_loss=chance_loss)
  return {**out, "autostep/step_size": eps, "autostep/index": index,
          "autostep/ok": jnp.any(passed), "autostep/accept": accept, "autostep/passed": passed}
