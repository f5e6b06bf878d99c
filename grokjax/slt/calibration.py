"""Calibrating the sampler: a sweep over step size × localisation (× nβ), one program.

An LLC is only as good as its chains: too small a step and they never leave w* (λ̂
is biased low and depends on the step), too large and they blow up or drift away;
too weak a localisation lets them wander off to other basins. The usual check
(Lau et al. 2023; devinterp's calibration notebooks) is to look at the traces of
nβ·(L_m(w_t) − L_n(w*)) for a grid of settings and keep one where the traces rise
and then level off, no chain diverges, and λ̂ does not change much with the step.

`calibrate` runs every setting of the grid with the same chain keys (common random
numbers, so settings differ only by their hyperparameters) as one `lax.map` over
settings inside one `jit`; `grokjax.figures.slt.calibration` draws the traces per setting
and λ̂ against the step size, one line per localisation.

>>> import jax, jax.numpy as jnp
>>> x = jax.random.normal(jax.random.key(0), (100, 2))
>>> loss = lambda w, b: 0.5 * jnp.mean((b[1] - b[0] @ w) ** 2)
>>> out = calibrate(loss, jnp.ones(2), (x, x @ jnp.ones(2)), key=jax.random.key(1),
...                 step_sizes=[1e-4, 1e-3], localizations=[1.0], num_draws=50)
>>> out["llc/mean"].shape, out["loss/trace"].shape      # [settings], [settings, chains, draws]
((2,), (2, 4, 50))
>>> # grokjax.figures.slt.calibration(out, "calibration")
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from grokjax.errors import ConfigError
from grokjax.slt import llc as llc_lib


def _grid(step_sizes, localizations, nbetas):
  rows = list(itertools.product(nbetas, localizations, step_sizes))  # step size fastest
  nb, gam, eps = (np.asarray(c, np.float32) for c in zip(*rows))
  return eps, gam, nb


def calibrate(loss_fn, params, data, *, key, step_sizes, localizations, nbetas=(None,),
              sampler="sgld", num_chains: int = 4, num_draws: int = 200, num_burnin: int = 0,
              batch_size: int | None = None, sampler_kwargs: dict | None = None,
              divergence_threshold: float | None = None,
              eval_chunk: int | None = None) -> dict[str, np.ndarray]:
  """estimate_llc at every (nβ, γ, ε) of the grid; arrays with a leading settings axis.

  `nbetas` entries follow estimate_llc's `nbeta` (None: n/log n, 'batch', or a
  number). Settings are ordered nβ (slowest), localisation, step size (fastest);
  the returned 'step_size', 'localization' and 'nbeta' columns name each one.
  """
  if not (len(step_sizes) and len(localizations) and len(nbetas)):
    raise ConfigError("step_sizes, localizations and nbetas must each have a value")
  n = llc_lib.num_examples(data)
  spec = llc_lib.make_spec(sampler=sampler, num_chains=num_chains, num_draws=num_draws,
                           num_burnin=num_burnin, batch_size=batch_size, n=n,
                           sampler_kwargs=sampler_kwargs,
                           divergence_threshold=divergence_threshold, eval_chunk=eval_chunk)
  nbetas = [llc_lib.resolve_nbeta(b, num_examples=n, batch_size=batch_size) for b in nbetas]
  eps, gam, nb = _grid(step_sizes, localizations, nbetas)
  for e, g, b in zip(eps, gam, nb):
    llc_lib.check_hyper(step_size=e, localization=g, nbeta=b)
  llc_lib.check_loss_fn(loss_fn, params, data, spec.batch_size)
  init = llc_lib.initial_loss(loss_fn, params, data, eval_chunk=eval_chunk)
  out = _calibrate(loss_fn, params, data, init, key, eps, gam, nb, spec=spec)
  return {"step_size": eps, "localization": gam, "nbeta": nb,
          **{k: np.asarray(v) for k, v in out.items() if k != "nbeta"}}


def _calibrate_impl(loss_fn, params, data, init, key, eps, gam, nb, *, spec):
  def one(setting):
    e, g, b = setting
    return llc_lib.sample_llc(loss_fn, params, data, key=key, spec=spec, step_size=e, nbeta=b,
                              localization=g, init_loss=init)
  return jax.lax.map(one, (jnp.asarray(eps), jnp.asarray(gam), jnp.asarray(nb)))


_calibrate = jax.jit(_calibrate_impl, static_argnames=("loss_fn", "spec"))


def calibration_rows(out: dict[str, np.ndarray]) -> list[dict]:
  """One tidy row per setting (for a CSV)."""
  return [{"step_size": float(out["step_size"][i]), "localization": float(out["localization"][i]),
           "nbeta": float(out["nbeta"][i]), "llc_mean": float(out["llc/mean"][i]),
           "llc_std": float(out["llc/std"][i]), "distance_mean": float(out["distance/mean"][i]),
           "diverged": int(out["diverged/count"][i]), "init_loss": float(out["loss/init"][i])}
          for i in range(len(out["step_size"]))]
