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
              eval_chunk: int | None = None, acceptance: str = "auto",
              chance_loss: float | None = None) -> dict[str, np.ndarray]:
  """estimate_llc at every (nβ, γ, ε) of the grid; arrays with a leading settings axis.

  `nbetas` entries follow estimate_llc's `nbeta` (None: n/log n, 'batch', or a
  number). Settings are ordered nβ (slowest), localisation, step size (fastest);
  the returned 'step_size', 'localization' and 'nbeta' columns name each one. Every
  setting carries estimate_llc's diag/... entries (`chance_loss` enables saturation);
  `choose_setting` picks one from them.
  """
  if not (len(step_sizes) and len(localizations) and len(nbetas)):
    raise ConfigError("step_sizes, localizations and nbetas must each have a value")
  n = llc_lib.num_examples(data)
  spec = llc_lib.make_spec(sampler=sampler, num_chains=num_chains, num_draws=num_draws,
                           num_burnin=num_burnin, batch_size=batch_size, n=n,
                           sampler_kwargs=sampler_kwargs,
                           divergence_threshold=divergence_threshold, eval_chunk=eval_chunk,
                           acceptance=acceptance)
  nbetas = [llc_lib.resolve_nbeta(b, num_examples=n, batch_size=batch_size) for b in nbetas]
  eps, gam, nb = _grid(step_sizes, localizations, nbetas)
  for e, g, b in zip(eps, gam, nb):
    llc_lib.check_hyper(step_size=e, localization=g, nbeta=b)
  llc_lib.check_loss_fn(loss_fn, params, data, spec.batch_size)
  init = llc_lib.initial_loss(loss_fn, params, data, eval_chunk=eval_chunk)
  chance = jnp.float32(np.nan if chance_loss is None else chance_loss)
  out = _calibrate(loss_fn, params, data, init, key, eps, gam, nb, chance, spec=spec)
  return {"step_size": eps, "localization": gam, "nbeta": nb,
          **{k: np.asarray(v) for k, v in out.items() if k != "nbeta"}}


def _calibrate_impl(loss_fn, params, data, init, key, eps, gam, nb, chance, *, spec):
  def one(setting):
    e, g, b = setting
    return llc_lib.sample_llc(loss_fn, params, data, key=key, spec=spec, step_size=e, nbeta=b,
                              localization=g, init_loss=init, chance_loss=chance)
  return jax.lax.map(one, (jnp.asarray(eps), jnp.asarray(gam), jnp.asarray(nb)))


_calibrate = jax.jit(_calibrate_impl, static_argnames=("loss_fn", "spec"))

RULES = ("largest_stable",)
_HOT = {"accept", "accept_warn", "diverged", "diverged_chain", "saturated", "not_finite"}
_COLD = {"trend", "rhat"}


def setting_failures(out: dict[str, np.ndarray], i: int) -> list[str]:
  """Why setting i fails the 'largest_stable' rule: flag names (empty: it passes).

  On top of diag/ok it asks for no diverged chain at all ('diverged_chain'), a finite
  λ̂ ('not_finite') and an acceptance at the 0.9 target ('accept_warn'); a NaN
  acceptance (a preconditioned sampler, where it is not computed) is not held against it.
  """
  names = [n for n in llc_lib.flag_names(out["diag/reasons"][i])]
  if int(out["diverged/count"][i]) > 0 and "diverged" not in names:
    names.append("diverged_chain")
  if not np.isfinite(out["llc/mean"][i]):
    names.append("not_finite")
  return names


def _advice(failures: list[list[str]]) -> str:
  """The one line that says what to do when no setting of the grid passes."""
  sets = [set(f) for f in failures]
  if all("not_minimum" in f for f in sets):
    return ("w* is not a minimum: at every setting most draws fall below L_n(w*) (the LLC is "
            "defined at a local minimum); train longer or choose a converged checkpoint")
  if all(f & _HOT for f in sets):
    return ("no stable setting on the grid (low acceptance, diverged or saturated chains at "
            "every step size); widen --calib_step_sizes toward smaller values or raise "
            "--calib_localizations")
  if all(f <= _COLD for f in sets):
    return ("no stationary setting on the grid (the loss still trends or the chains disagree "
            "at every step size); widen --calib_step_sizes toward larger values or raise "
            "--num_draws and --num_burnin")
  return ("no setting passes: the smaller step sizes are not stationary and the larger ones "
          "are unstable; raise --num_draws and --num_burnin, or add step sizes in between")


PLATEAU = 0.1  # λ̂ may move this much (relative) from the next smaller passing step size


def _plateau(out, i: int, passing: list[int]) -> tuple[int | None, float, bool]:
  """(next smaller passing ε of i's (γ, nβ), relative change of λ̂, whether it is flat)."""
  group = [j for j in passing if out["localization"][j] == out["localization"][i]
           and out["nbeta"][j] == out["nbeta"][i] and out["step_size"][j] < out["step_size"][i]]
  if not group:
    return None, 0.0, True
  j = max(group, key=lambda k: out["step_size"][k])
  lam, ref = float(out["llc/mean"][i]), float(out["llc/mean"][j])
  se = np.hypot(*(float(out["llc/std"][k]) / np.sqrt(out["llc/per_chain"].shape[1])
                  for k in (i, j)))
  change = (lam - ref) / max(abs(ref), 1e-12)
  flat = abs(lam - ref) <= max(PLATEAU * abs(ref), 2 * np.nan_to_num(se))
  return j, change, bool(flat)


def choose_setting(out: dict[str, np.ndarray], rule: str = "largest_stable") -> dict:
  """The (ε, γ, nβ) to use, from a `calibrate` grid, with the reason; ConfigError if none.

  Rule 'largest_stable': a setting passes when its chains are stationary (|trend z| and
  split-R̂ under llc.DIAG_THRESHOLDS), w* is a minimum (not most draws below L_n(w*)),
  the chains are not saturated, no chain diverged, λ̂ is finite and the MALA acceptance
  reaches its 0.9 target (`setting_failures`). The largest passing ε wins, provided λ̂
  sits on a plateau: within 10 % (`PLATEAU`, or two standard errors) of λ̂ at the next
  smaller passing ε of the same (γ, nβ); otherwise the next one down is tried. Why: a
  too-small step leaves chains that have not reached the posterior (the stationarity
  checks), a too-large one a discretisation bias that grows like ε; in few dimensions
  an acceptance of 0.9 still allows ~20 % of it (on the d = 3 test model), which the
  plateau check removes. Ties go to the smallest γ (the least localisation bias: γ only
  has to keep the chains in the basin), then to the nβ listed first. The reason says
  how far λ̂ moved from the smaller ε and whether a weaker γ failed at the chosen ε.

  >>> # cal = calibrate(loss, w, data, key=key, step_sizes=[1e-5, 1e-4, 1e-3],
  >>> #                 localizations=[1.0, 10.0])
  >>> # choose_setting(cal)["step_size"]
  """
  if rule not in RULES:
    raise ConfigError(f"unknown calibration rule {rule!r}; valid: {', '.join(RULES)}")
  n = len(out["step_size"])
  failures = [setting_failures(out, i) for i in range(n)]
  passing = [i for i in range(n) if not failures[i]]
  if not passing:
    raise ConfigError(_advice(failures))
  stepped_down = 0
  for best in sorted(passing, key=lambda i: (-out["step_size"][i], out["localization"][i], i)):
    prev, change, flat = _plateau(out, best, passing)
    if flat:
      break
    stepped_down += 1
  eps, gam, nb = (float(out[k][best]) for k in ("step_size", "localization", "nbeta"))
  notes = [f"largest of {len(passing)} passing settings (of {n}) with λ̂ on a plateau"]
  if stepped_down:
    notes.append(f"{stepped_down} larger passing setting(s) skipped: λ̂ off the plateau")
  if prev is None:
    notes.append("no smaller passing step size to compare λ̂ with")
  else:
    notes.append(f"λ̂ moves {100 * change:+.1f} % from ε = {out['step_size'][prev]:.3g}")
  weaker = [i for i in range(n) if out["step_size"][i] == eps and out["nbeta"][i] == nb
            and out["localization"][i] < gam]
  if weaker:
    notes.append(f"weaker γ fails ({', '.join(sorted({f for i in weaker for f in failures[i]}))})")
  if np.isnan(out["diag/accept"][best]):
    notes.append("acceptance not computed for this sampler")
  return {"step_size": eps, "localization": gam, "nbeta": nb, "index": int(best),
          "llc_mean": float(out["llc/mean"][best]), "reason": "; ".join(notes)}


def diagnostic_fields(out: dict[str, np.ndarray], i: int) -> dict:
  """The diagnostic columns of setting i (for a CSV beside `calibration_rows`)."""
  return {"slope_z": float(out["diag/slope_z"][i]), "rhat": float(out["diag/rhat"][i]),
          "accept": float(out["diag/accept"][i]), "below_init": float(out["diag/below_init"][i]),
          "diag_ok": int(out["diag/ok"][i]),
          "diag_reasons": llc_lib.describe(out["diag/reasons"][i])}


def calibration_rows(out: dict[str, np.ndarray]) -> list[dict]:
  """One tidy row per setting (for a CSV)."""
  return [{"step_size": float(out["step_size"][i]), "localization": float(out["localization"][i]),
           "nbeta": float(out["nbeta"][i]), "llc_mean": float(out["llc/mean"][i]),
           "llc_std": float(out["llc/std"][i]), "distance_mean": float(out["distance/mean"][i]),
           "diverged": int(out["diverged/count"][i]), "init_loss": float(out["loss/init"][i])}
          for i in range(len(out["step_size"]))]
