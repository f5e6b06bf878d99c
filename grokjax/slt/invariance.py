"""The LLC of one trained model under function-preserving rescalings, on an α × β grid.

A complexity measure of a function should not change when the parameters are
rescaled without changing the function. For each (α, β) of a log grid, the model
rescaled by `grokjax.slt.rescaling.rescale(params, alpha=α, beta=β)` computes the
same function (exactly for α at LayerNorm eps → 0 and β with ReLU; approximately
otherwise), and the true LLC is the same; `rescaling_grid` estimates it at every grid
point with one sampler — every point with the same chain keys, as one `lax.map`
inside one `jit` — so the map of λ̂ over the grid shows how much the estimator (not
the model) moves. The paper draws 30 × 30 grids; `grokjax.figures.slt.invariance` draws
the rows of one sampler as heat maps.

>>> # out = rescaling_grid(loss_fn, params, data, key=jax.random.key(0),
>>> #                      alphas=log_grid(5, 0.1, 10), betas=log_grid(5, 0.1, 10),
>>> #                      sampler="scale_invariant", step_size=1e-4, localization=100.0)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from grokjax.errors import ConfigError
from grokjax.slt import llc as llc_lib
from grokjax.slt.rescaling import rescale

# Default (step size ε, localisation γ) per sampler on the rescaling grid. The
# scale-invariant samplers localise in relative (per-tensor mean-square) units, so their
# γ is on another scale: γ = 1 allows ~100% relative moves per tensor.
SAMPLER_SETTINGS = {"sgld": (4e-6, 1e4), "rmsprop_sgld": (1e-5, 100.0),
                    "scale_invariant": (0.05, 1.0), "riemannian": (0.05, 1.0)}


def sampler_settings(samplers, step_sizes=None, localizations=None) -> list[tuple[str, float, float]]:
  """(sampler, ε, γ) per sampler: the given values (one for all, or one each), else the table's.

  >>> sampler_settings(["sgld", "riemannian"], step_sizes=[1e-4])
  [('sgld', 0.0001, 10000.0), ('riemannian', 0.0001, 1.0)]
  """
  unknown = [s for s in samplers if s not in SAMPLER_SETTINGS]
  if unknown or not samplers:
    raise ConfigError(f"unknown sampler(s) {unknown or '(none given)'}; "
                      f"valid: {', '.join(SAMPLER_SETTINGS)}")

  def per_sampler(values, column: int, name: str) -> list[float]:
    if not values:
      return [SAMPLER_SETTINGS[s][column] for s in samplers]
    values = list(values) * len(samplers) if len(values) == 1 else list(values)
    if len(values) != len(samplers):
      raise ConfigError(f"--{name} has {len(values)} values for {len(samplers)} samplers")
    return [float(v) for v in values]

  return list(zip(samplers, per_sampler(step_sizes, 0, "step_sizes"),
                  per_sampler(localizations, 1, "localizations")))


def log_grid(size: int, lo: float, hi: float) -> np.ndarray:
  """`size` log-spaced factors from lo to hi (size 1: their geometric mean)."""
  if size < 1 or not 0 < lo <= hi:
    raise ConfigError(f"a rescaling grid needs size >= 1 and 0 < lo <= hi, got {size}, {lo}, {hi}")
  return np.geomspace(lo, hi, size) if size > 1 else np.array([np.sqrt(lo * hi)])


def _grid_impl(loss_fn, params, data, key, alphas, betas, step_size, nbeta, localization, *,
               spec):
  def one(ab):
    p = rescale(params, alpha=ab[0], beta=ab[1])
    return llc_lib.sample_llc(loss_fn, p, data, key=key, spec=spec, step_size=step_size,
                              nbeta=nbeta, localization=localization)
  return jax.lax.map(one, (alphas, betas))


_grid = jax.jit(_grid_impl, static_argnames=("loss_fn", "spec"))


def rescaling_grid(loss_fn, params, data, *, key, alphas, betas, sampler="sgld",
                   step_size: float, localization: float, nbeta=None, num_chains: int = 4,
                   num_draws: int = 200, num_burnin: int = 0, batch_size: int | None = None,
                   sampler_kwargs: dict | None = None, eval_chunk: int | None = None
                   ) -> dict[str, np.ndarray]:
  """λ̂ at every (α, β) (α slowest); arrays with a leading grid axis of len(α)·len(β).

  Also returns `loss/init_original`, L_n at the unrescaled params: where `loss/init`
  differs from it, the rescaled model is not the same function.
  """
  n = llc_lib.num_examples(data)
  spec = llc_lib.make_spec(sampler=sampler, num_chains=num_chains, num_draws=num_draws,
                           num_burnin=num_burnin, batch_size=batch_size, n=n,
                           sampler_kwargs=sampler_kwargs, eval_chunk=eval_chunk)
  nb = llc_lib.resolve_nbeta(nbeta, num_examples=n, batch_size=batch_size)
  llc_lib.check_hyper(step_size=step_size, localization=localization, nbeta=nb)
  llc_lib.check_loss_fn(loss_fn, params, data, spec.batch_size)
  init0 = llc_lib.initial_loss(loss_fn, params, data, eval_chunk=eval_chunk)
  a, b = (np.asarray(v, np.float32) for v in np.meshgrid(alphas, betas, indexing="ij"))
  a, b = a.reshape(-1), b.reshape(-1)
  if not (np.all(a > 0) and np.all(b > 0)):
    raise ConfigError("alphas and betas must be positive")
  out = _grid(loss_fn, params, data, key, jnp.asarray(a), jnp.asarray(b),
              jnp.float32(step_size), jnp.float32(nb), jnp.float32(localization), spec=spec)
  return {"alpha": a, "beta": b, "loss/init_original": np.asarray(init0),
          **{k: np.asarray(v) for k, v in out.items()}}


def invariance_rows(out: dict[str, np.ndarray], **fields) -> list[dict]:
  """Tidy rows (one per grid point), with `fields` (e.g. sampler=...) in every row."""
  init0 = float(out["loss/init_original"])
  return [{**fields, "alpha": float(out["alpha"][i]), "beta": float(out["beta"][i]),
           "llc_mean": float(out["llc/mean"][i]), "llc_std": float(out["llc/std"][i]),
           "init_loss": float(out["loss/init"][i]),
           "init_loss_change": float(out["loss/init"][i]) - init0,
           "distance_mean": float(out["distance/mean"][i]),
           "diverged": int(out["diverged/count"][i])} for i in range(len(out["alpha"]))]
