"""The LLC from the density of states: Wang–Landau sampling near w*, a second estimator.

Near a minimum w* the volume of the sublevel set {w : E(w) < ε}, E = L_n(w) − L_n(w*),
scales as V(ε) ∝ ε^λ (−log ε)^(m−1) as ε → 0, with λ the (local) learning coefficient
and m its multiplicity. `estimate_llc_dos` estimates the density of states g(E) in the
ball ‖w − w*‖ ≤ R by Wang–Landau (flat-histogram) sampling and reads λ from the slope of
log V against log ε. It shares no code path with the SGLD estimator (`llc.estimate_llc`):
no temperature, no gradients, no localisation term.

Energy bins. `bins` bins with edges [0, E_min, ..., E_max] (`edges`, bins + 1 of them):
bin 0 holds every state with E < E_min (negative E included, should w* not be exactly a
minimum); bins 1..bins−1 are log-spaced over [E_min, E_max]. States with E ≥ E_max or
outside the ball are not part of the walk (a proposal there is rejected). g_k is the
volume of bin k, so V(edges[k]) = Σ_{j<k} g_j exactly, for k = 1..bins (`log_volume`,
normalised to V(E_max) = 1). Every bin must be reachable: E_max at most about the
largest E in the ball, else the histogram is never flat.

Walk. Random-walk Metropolis in parameter space, accepted with probability
min(1, g(E_old)/g(E_new) · q(w_new → w_old)/q(w_old → w_new)). The proposal is
N(w, σ_b²) with σ_b a per-bin step size (log-spaced bins span decades of length scale:
one σ cannot both enter the lowest bin and cross the top ones), so the Hastings ratio
q is not 1; σ_b is adapted towards `target_accept` at a rate adapt_rate·min(1, ln f),
which vanishes as the walk converges. After every step ln g(E) += ln f and H(E) += 1.

Schedule. Every `check_every` steps the histogram H is tested: flat when
min_k H_k ≥ `flatness` · mean_k H_k (default 0.8); then ln f is halved and H reset.
With schedule "1/t" (the default; Belardinelli & Pereyra 2007) the halving stops once
ln f ≤ bins/t (t steps so far, so bins/t is 1/MC-time) and from then on ln f = bins/t,
which removes the saturation of the error of plain halving ("halving"). A walker stops
when ln f ≤ `final_log_f` or after `max_steps`; it is `converged` in the first case.
Walkers are independent (`vmap`ped; the whole walk is one `jit`, a `lax.while_loop`
of `check_every`-step `fori_loop`s); each ln g is normalised (Σ g = 1) and the
converged walkers' ln g are averaged into `dos/log_g`.

Full-batch loss. E uses L_n on all of `data` at every step: Metropolis needs the exact
energy difference, and a minibatch estimate of it (noisy, and biased through the
exponential in the acceptance) would make the walk sample a different, smeared
density of states, with no correction.

Fit. λ̂ is the least-squares slope of log V(ε) against log ε over the edges in
`fit_range` (default: the lower half, in log, of [E_min, E_max]: the smallest ε the
walk resolves). With m > 1 the log factor lowers the local slope below λ by about
(m−1)/log(1/ε) (so a normal crossing reads below 1/2). `dos/llc_stderr` is the jackknife
over converged walkers (leave one walker out of the average ln g).

Results: dos/llc, dos/llc_stderr, dos/llc/per_walker, dos/log_g [bins],
dos/log_g/per_walker, dos/edges [bins+1], dos/log_volume [bins] (at edges[1:]),
dos/fit_range (lo, hi), dos/flat_iterations, dos/log_f, dos/steps, dos/converged,
dos/acceptance (per walker), dos/num_converged.

>>> import jax, jax.numpy as jnp
>>> loss = lambda w, c: jnp.mean(c) * (w[0] ** 2 + 2.0 * w[1] ** 2)
>>> out = estimate_llc_dos(loss, jnp.zeros(2), jnp.ones(4), key=jax.random.key(0),
...                        radius=1.0, e_min=1e-5, e_max=1e-1, bins=16)
>>> bool(abs(out["dos/llc"] - 1.0) < 0.1)     # regular: d/2 = 1
True
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from grokjax.errors import ConfigError
from grokjax.slt.llc import LossFn, full_loss, num_examples

Array = jax.Array
SCHEDULES = ("1/t", "halving")


@dataclasses.dataclass(frozen=True)
class WalkSpec:
  """The static settings of a Wang–Landau walk; hashable for jit."""

  bins: int = 32
  num_walkers: int = 4
  max_steps: int = 200_000
  check_every: int = 1000
  flatness: float = 0.8
  final_log_f: float = 1e-4
  schedule: str = "1/t"


class Walk(NamedTuple):
  """One walker's carry: its model state, bin, ln g, histogram and schedule."""

  state: tuple
  bin: Array
  log_g: Array
  hist: Array
  log_f: Array
  t: Array
  flat_iterations: Array
  one_over_t: Array
  accepted: Array
  key: Array


def check_walk(spec: WalkSpec) -> None:
  """Raises ConfigError naming the first bad walk setting."""
  if spec.bins < 2:
    raise ConfigError(f"bins must be >= 2, got {spec.bins}")
  if spec.num_walkers < 1:
    raise ConfigError(f"num_walkers must be >= 1, got {spec.num_walkers}")
  if not 1 <= spec.check_every <= spec.max_steps:
    raise ConfigError(f"check_every must lie in [1, max_steps={spec.max_steps}], got "
                      f"{spec.check_every}")
  if not 0.0 < spec.flatness < 1.0:
    raise ConfigError(f"flatness must lie in (0, 1), got {spec.flatness}")
  if not 0.0 < spec.final_log_f < 1.0:
    raise ConfigError(f"final_log_f must lie in (0, 1), got {spec.final_log_f}")
  if spec.schedule not in SCHEDULES:
    raise ConfigError(f"schedule must be one of {SCHEDULES}, got {spec.schedule!r}")


def wang_landau(step_fn: Callable, state, bin0, mask_B: Array, *, key: Array,
                spec: WalkSpec) -> Walk:
  """One walker: `step_fn(state, bin, log_g, log_f, key) -> (state, bin, accepted)`.

  Traceable. `mask_B` marks the reachable bins, over which flatness and 1/t count.
  """
  reachable = jnp.sum(mask_B)

  def mc_step(_, w: Walk) -> Walk:
    key, sub = jax.random.split(w.key)
    state, b, acc = step_fn(w.state, w.bin, w.log_g, w.log_f, sub)
    t = w.t + 1
    log_f = jnp.where(w.one_over_t, reachable / t, w.log_f)
    return w._replace(state=state, bin=b, log_g=w.log_g.at[b].add(w.log_f),
                      hist=w.hist.at[b].add(1), log_f=log_f, t=t,
                      accepted=w.accepted + acc, key=key)

  def body(w: Walk) -> Walk:
    w = jax.lax.fori_loop(0, spec.check_every, mc_step, w)
    h = jnp.where(mask_B, w.hist, 0)
    low = jnp.min(jnp.where(mask_B, w.hist, jnp.iinfo(jnp.int32).max))
    flat = (low > 0) & (low >= spec.flatness * jnp.sum(h) / reachable) & ~w.one_over_t
    log_f = jnp.where(flat, w.log_f / 2, w.log_f)
    switch = flat & (spec.schedule == "1/t") & (log_f <= reachable / w.t)
    return w._replace(log_f=jnp.where(switch, reachable / w.t, log_f),
                      hist=jnp.where(flat, 0, w.hist), one_over_t=w.one_over_t | switch,
                      flat_iterations=w.flat_iterations + flat)

  def cond(w: Walk):
    return (w.log_f > spec.final_log_f) & (w.t < spec.max_steps)

  zeros = jnp.zeros(spec.bins, jnp.float32)
  init = Walk(state, jnp.asarray(bin0, jnp.int32), zeros, jnp.zeros(spec.bins, jnp.int32),
              jnp.float32(1.0), jnp.int32(0), jnp.int32(0), jnp.bool_(False), jnp.int32(0), key)
  return jax.lax.while_loop(cond, body, init)


def energy_edges(e_min: float, e_max: float, bins: int) -> np.ndarray:
  """[bins + 1] edges: 0, then bins log-spaced values from e_min to e_max."""
  return np.concatenate([[0.0], np.geomspace(e_min, e_max, bins)])


def log_bin(e: Array, e_min, e_max, bins: int) -> Array:
  """The bin of energy e (bin 0: e < e_min; the top edge e_max itself goes to the last)."""
  frac = jnp.log(jnp.maximum(e, e_min) / e_min) / jnp.log(e_max / e_min)
  k = 1 + jnp.floor(frac * (bins - 1)).astype(jnp.int32)
  return jnp.where(e < e_min, 0, jnp.clip(k, 1, bins - 1))


def _walk_params(loss_fn, params, data, *, key, spec, radius, e_min, e_max, step_size,
                 target_accept, adapt_rate, eval_chunk, init_loss):
  """Every walker of `estimate_llc_dos` (traceable): the final Walk, stacked [walkers]."""
  w0, unravel = ravel_pytree(params)
  d = w0.shape[0]
  energy = lambda w: full_loss(loss_fn, unravel(w), data, chunk_size=eval_chunk) - init_loss

  def step(state, b, log_g, log_f, key):
    w, e, log_sigma = state
    k_move, k_accept = jax.random.split(key)
    z = jax.random.normal(k_move, w.shape, w.dtype)
    s_old = log_sigma[b]
    w_new = w + jnp.exp(s_old) * z
    e_new = energy(w_new)
    ok = (jnp.sum((w_new - w0) ** 2) <= radius**2) & jnp.isfinite(e_new) & (e_new < e_max)
    b_new = jnp.where(ok, log_bin(e_new, e_min, e_max, spec.bins), b)
    s_new = log_sigma[b_new]
    sq = jnp.sum(z**2) * jnp.exp(2 * s_old)  # ‖w_new − w‖²
    log_q = d * (s_old - s_new) - 0.5 * sq * (jnp.exp(-2 * s_new) - jnp.exp(-2 * s_old))
    log_alpha = log_g[b] - log_g[b_new] + log_q
    acc = ok & (jnp.log(jax.random.uniform(k_accept)) < log_alpha)
    rate = adapt_rate * jnp.minimum(1.0, log_f)
    log_sigma = log_sigma.at[b].add(rate * (acc.astype(jnp.float32) - target_accept))
    return ((jnp.where(acc, w_new, w), jnp.where(acc, e_new, e), log_sigma),
            jnp.where(acc, b_new, b), acc.astype(jnp.int32))

  state = (w0, jnp.float32(0.0), jnp.full(spec.bins, jnp.log(step_size), jnp.float32))
  mask = jnp.ones(spec.bins, bool)
  walker = lambda k: wang_landau(step, state, 0, mask, key=k, spec=spec)
  return jax.vmap(walker)(jax.random.split(key, spec.num_walkers))


_walk_params_jit = jax.jit(_walk_params, static_argnames=("loss_fn", "spec", "eval_chunk"))


def normalize(log_g: np.ndarray) -> np.ndarray:
  """ln g shifted so that Σ g = 1 (over the last axis)."""
  top = np.max(log_g, axis=-1, keepdims=True)
  return log_g - top - np.log(np.sum(np.exp(log_g - top), axis=-1, keepdims=True))


def log_volume(log_g_B: np.ndarray) -> np.ndarray:
  """log V(edges[k]) = log Σ_{j<k} g_j for k = 1..bins, normalised to V(E_max) = 1."""
  cum = np.logaddexp.accumulate(log_g_B, axis=-1)
  return cum - cum[..., -1:]


def fit_slope(edges: np.ndarray, log_v: np.ndarray, lo: float, hi: float) -> float:
  """Least-squares slope of log V(ε) against log ε over the edges in [lo, hi]."""
  x = np.log(edges[1:])
  keep = (edges[1:] >= lo * (1 - 1e-6)) & (edges[1:] <= hi * (1 + 1e-6))
  return float(np.polyfit(x[keep], log_v[..., keep], 1)[0]) if log_v.ndim == 1 else np.nan


def fit_points(edges: np.ndarray, lo: float, hi: float) -> int:
  e = edges[1:]
  return int(np.sum((e >= lo * (1 - 1e-6)) & (e <= hi * (1 + 1e-6))))


def summarize(walk: Walk, edges: np.ndarray, spec: WalkSpec, fit_range) -> dict:
  """The results dict (module docstring) from the stacked final walkers."""
  lo, hi = fit_range
  log_g_KB = normalize(np.asarray(walk.log_g, np.float64))
  log_f = np.asarray(walk.log_f)
  converged = log_f <= spec.final_log_f
  per_walker = np.array([fit_slope(edges, log_volume(g), lo, hi) for g in log_g_KB])
  kept = log_g_KB[converged]
  combined = lambda g: normalize(np.mean(g, axis=0))
  k = len(kept)
  if k:
    log_g = combined(kept)
    llc = fit_slope(edges, log_volume(log_g), lo, hi)
  else:
    log_g, llc = np.full(spec.bins, np.nan), np.nan
  if k > 1:
    jack = np.array([fit_slope(edges, log_volume(combined(np.delete(kept, i, 0))), lo, hi)
                     for i in range(k)])
    stderr = float(np.sqrt((k - 1) / k * np.sum((jack - jack.mean()) ** 2)))
  else:
    stderr = np.nan
  steps = np.asarray(walk.t)
  return {
      "dos/llc": llc, "dos/llc_stderr": stderr, "dos/llc/per_walker": per_walker,
      "dos/log_g": log_g, "dos/log_g/per_walker": log_g_KB, "dos/edges": edges,
      "dos/log_volume": log_volume(log_g), "dos/fit_range": (float(lo), float(hi)),
      "dos/flat_iterations": np.asarray(walk.flat_iterations), "dos/log_f": log_f,
      "dos/steps": steps, "dos/converged": converged, "dos/num_converged": k,
      "dos/acceptance": np.asarray(walk.accepted) / np.maximum(steps, 1),
  }


def check_range(*, radius, e_min, e_max, bins, fit_range) -> tuple[np.ndarray, tuple]:
  """Raises ConfigError for a bad ball or energy range; returns the edges and fit range."""
  for name, v in (("radius", radius), ("e_min", e_min), ("e_max", e_max)):
    if not (math.isfinite(float(v)) and float(v) > 0):
      raise ConfigError(f"{name} must be positive and finite, got {v}")
  if not e_min < e_max:
    raise ConfigError(f"the energy range is empty: e_min ({e_min}) must be below e_max "
                      f"({e_max})")
  edges = energy_edges(e_min, e_max, bins)
  lo, hi = fit_range if fit_range is not None else (e_min, math.sqrt(e_min * e_max))
  if not (e_min <= lo < hi <= e_max) or fit_points(edges, lo, hi) < 3:
    raise ConfigError(f"fit_range ({lo:g}, {hi:g}) must lie in [e_min, e_max] and hold at "
                      "least 3 bin edges")
  return edges, (float(lo), float(hi))


def estimate_llc_dos(loss_fn: LossFn, params, data, *, key: Array, radius: float,
                     e_min: float, e_max: float, bins: int = 32, num_walkers: int = 4,
                     max_steps: int = 200_000, check_every: int = 1000,
                     flatness: float = 0.8, final_log_f: float = 1e-4, schedule: str = "1/t",
                     step_size: float | None = None, target_accept: float = 0.3,
                     adapt_rate: float = 0.1, fit_range: tuple[float, float] | None = None,
                     eval_chunk: int | None = None) -> dict:
  """λ̂ at w* = params from the Wang–Landau density of states (module docstring).

  `loss_fn(params, data) -> mean loss` on the full data (as in `llc.estimate_llc`).
  `step_size`: the initial proposal scale of every bin (default radius / 10), adapted
  per bin. Reuse one `loss_fn` object across calls to reuse the compilation.
  """
  spec = WalkSpec(int(bins), int(num_walkers), int(max_steps), int(check_every),
                  float(flatness), float(final_log_f), schedule)
  check_walk(spec)
  edges, lo_hi = check_range(radius=radius, e_min=e_min, e_max=e_max, bins=spec.bins,
                             fit_range=fit_range)
  step_size = radius / 10 if step_size is None else step_size
  if not (math.isfinite(step_size) and step_size > 0):
    raise ConfigError(f"step_size must be positive and finite, got {step_size}")
  num_examples(data)
  init = full_loss(loss_fn, params, data, chunk_size=eval_chunk)
  if not np.isfinite(np.asarray(init)):
    raise ConfigError(f"the loss at params (w*) is {float(init)}: the DOS needs a finite one")
  walk = _walk_params_jit(loss_fn, params, data, key=key, spec=spec,
                          radius=jnp.float32(radius), e_min=jnp.float32(e_min),
                          e_max=jnp.float32(e_max), step_size=jnp.float32(step_size),
                          target_accept=jnp.float32(target_accept),
                          adapt_rate=jnp.float32(adapt_rate), eval_chunk=eval_chunk,
                          init_loss=init)
  return summarize(walk, edges, spec, lo_hi)


def _walk_line(bin_S: Array, mask_B: Array, *, key: Array, spec: WalkSpec) -> Walk:
  """Every walker of `checkpoint_line_dos`: neighbour moves on the checkpoint indices."""
  size = bin_S.shape[0]

  def step(i, b, log_g, log_f, key):
    del log_f
    k_move, k_accept = jax.random.split(key)
    j = i + 2 * jax.random.bernoulli(k_move).astype(jnp.int32) - 1
    ok = (j >= 0) & (j < size)
    b_new = jnp.where(ok, bin_S[jnp.clip(j, 0, size - 1)], b)
    acc = ok & (jnp.log(jax.random.uniform(k_accept)) < log_g[b] - log_g[b_new])
    return jnp.where(acc, j, i), jnp.where(acc, b_new, b), acc.astype(jnp.int32)

  walker = lambda k: wang_landau(step, jnp.int32(0), bin_S[0], mask_B, key=k, spec=spec)
  return jax.vmap(walker)(jax.random.split(key, spec.num_walkers))


_walk_line_jit = jax.jit(_walk_line, static_argnames=("spec",))


def checkpoint_line_dos(log_losses_by_step, *, key: Array, bins: int = 200,
                        num_walkers: int = 4, max_steps: int = 2_000_000,
                        check_every: int = 10_000, flatness: float = 0.8,
                        final_log_f: float = 1e-4, schedule: str = "1/t") -> dict:
  """Wang–Landau over the LINE of saved checkpoints, energy log L_train: a diagnostic.

  The states are the S checkpoint indices 0..S−1 of one run, in training order; a move
  goes to a neighbour i ± 1 (rejected past either end); the energy of checkpoint i is
  `log_losses_by_step[i]`, its log training loss (e.g. np.log of metrics.csv's
  train_loss at the saved steps). The flat-histogram walk (same schedule and flatness
  test as `estimate_llc_dos`, over the bins that hold a checkpoint) estimates ln g over
  `bins` equal bins spanning [min, max] energy: g(E) is how many checkpoints have log
  training loss in that bin, i.e. how long training lingered at each loss level.

  This is NOT a sampler in parameter space and says nothing about the LLC or about the
  loss landscape off the trajectory: the state space is finite, and its exact density
  of states is the histogram of the energies (returned as `line_dos/counts`, which the
  walk reproduces; empty bins have ln g = −inf). It is offered as the authors'
  appendix diagnostic under its true name.

  Mixing: neighbour moves diffuse, so one pass along S checkpoints takes about S² steps
  and each ln f stage needs several passes; a walker that runs out of `max_steps`
  is not `converged` (the result is then NaN). Keep `check_every` well above S².

  Returns line_dos/log_g [bins] (normalised so that Σ g = S, averaged over converged
  walkers), line_dos/log_g/per_walker, line_dos/edges [bins+1], line_dos/counts,
  line_dos/flat_iterations, line_dos/log_f, line_dos/steps, line_dos/converged.

  >>> import jax, numpy as np
  >>> out = checkpoint_line_dos(np.linspace(0.0, 1.0, 40), key=jax.random.key(0), bins=4,
  ...                           check_every=500)
  >>> bool(np.all(np.abs(out["line_dos/log_g"] - np.log(10.0)) < 0.3))  # ten per bin
  True
  """
  e_S = np.asarray(log_losses_by_step, np.float64)
  if e_S.ndim != 1 or e_S.shape[0] < 2 or not np.all(np.isfinite(e_S)):
    raise ConfigError(f"log_losses_by_step must be a 1-D array of >= 2 finite values, got "
                      f"shape {e_S.shape}")
  if not e_S.max() > e_S.min():
    raise ConfigError(f"the energy range is empty: every log loss is {e_S.min():g}")
  spec = WalkSpec(int(bins), int(num_walkers), int(max_steps), int(check_every),
                  float(flatness), float(final_log_f), schedule)
  check_walk(spec)
  edges = np.linspace(e_S.min(), e_S.max(), spec.bins + 1)
  bin_S = np.clip(np.searchsorted(edges, e_S, side="right") - 1, 0, spec.bins - 1)
  counts = np.bincount(bin_S, minlength=spec.bins)
  mask = counts > 0
  walk = _walk_line_jit(jnp.asarray(bin_S, jnp.int32), jnp.asarray(mask), key=key, spec=spec)
  log_g_KB = np.where(mask, np.asarray(walk.log_g, np.float64), -np.inf)
  log_g_KB = normalize(log_g_KB) + np.log(e_S.shape[0])
  converged = np.asarray(walk.log_f) <= spec.final_log_f
  if converged.any():
    log_g = np.where(mask, normalize(np.mean(np.where(mask, log_g_KB, 0.0)[converged], 0)),
                     -np.inf)
    log_g = normalize(log_g) + np.log(e_S.shape[0])
  else:
    log_g = np.full(spec.bins, np.nan)
  return {"line_dos/log_g": log_g, "line_dos/log_g/per_walker": log_g_KB,
          "line_dos/edges": edges, "line_dos/counts": counts,
          "line_dos/flat_iterations": np.asarray(walk.flat_iterations),
          "line_dos/log_f": np.asarray(walk.log_f), "line_dos/steps": np.asarray(walk.t),
          "line_dos/converged": converged}
