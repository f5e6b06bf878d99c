"""The local learning coefficient (LLC), every chain in one compiled program.

For a loss L_n (the mean loss over n examples) and a point w* (a trained model), the
LLC estimator of Lau et al. (2023) is

    λ̂(w*) = nβ · (E_p[L_n(w)] − L_n(w*)),   p(w) ∝ exp(−nβ·L_n(w) − (γ/2)·‖w − w*‖²)

For a regular model at a strict minimum λ̂ → d/2 (d parameters); a singular model
has a smaller λ, and the LLC measures how degenerate the loss landscape is around w*.
E_p is estimated by SGLD-family chains (`grokjax.slt.samplers`): each chain starts at
w*, takes `num_draws` steps on minibatches (drawn uniformly with replacement, see
`batch_indices`), and the mean of its minibatch losses
L_m(w_t) after the first `num_burnin` steps estimates E_p[L_n]. L_n(w*) is computed
once on the full data (not on one chain's first minibatch).

Inverse temperature. `nbeta=None` (or "n") uses Watanabe's β = 1/log n, so nβ = n/log n
with n the number of examples in `data` — a property of the data, not of a memory
setting. `nbeta="batch"` uses devinterp's convention b/log b (b the batch size), and a
number is used as given. The value used is returned as `nbeta`.

Program shape: chains are `vmap`ped, draws `scan`ned, all under one `jit` (the
initial loss is a separate small jit so that a non-finite one is reported before
sampling). `sample_llc` is the traceable core that `calibration`, `apply` and
`invariance` map over settings, checkpoints and rescalings.

Diverged chains: a chain is diverged when any of its losses is not finite or when some
draw has e_t = nβ·(L_m(w_t) − L_n(w*)) > d/2 + k·max(s, 1) (`divergence_level`; k =
DIAG_THRESHOLDS["divergence_k"] = 20, s the chains' robust spread of e_t, the median over
chains of MAD·1.4826). Why: under the tempered posterior e has mean ≤ d/2 (an LLC never
exceeds d/2) and an exponential upper tail of unit scale (its density is ∝ e^{−e} times the
volume growth ∝ e^{λ−1}), so a healthy draw passes d/2 + 20 with probability ~e^{−20};
minibatch noise widens e by s, hence k·s. The old 10·d cut dropped healthy chains at
d = 1–3 (d = 1, b = 10: minibatch noise alone took e to 140–170 in 4,000 draws, against
a cut of 10 and a level of 640 by this rule). A blow-up grows geometrically, far past
any multiple of a median spread that the chains' first half and the other chains set
(a slow drift is left to the stationarity diagnostics). A number given as
`divergence_threshold` replaces the rule.
Diverged chains are counted in `diverged/count`, kept in `llc/per_chain` and left out of
`llc/mean`, `llc/std`, `distance/mean` and every diagnostic (NaN if every chain diverged).

Diagnostics (`diag/...`, computed in the same program over the kept draws of the healthy
chains, see `grokjax.slt.diagnostics`): `diag/slope` and `diag/slope_z` (the trend of the
chain-mean excess over the second half of the kept draws, and that over its standard
error), `diag/rhat` (split-R̂), `diag/below_init` (the fraction of draws with
L_m(w_t) < L_n(w*): 0 at a minimum with full batches), `diag/not_minimum` (above ½ and
the mean sampled loss below L_n(w*) too), `diag/accept` (the MALA acceptance),
`diag/sampled_loss` (E[L_m(w)]), `diag/saturated` (E[L_m(w)] ≥ 0.9·chance_loss >
L_n(w*), the rule of `grokjax.slt.apply.saturated`; never set without a `chance_loss`),
`diag/diverged_frac`, and `diag/reasons`, a bitmask of `FLAGS` from the thresholds of
`DIAG_THRESHOLDS`, with `diag/ok` = no failing flag. `describe(reasons)` spells the mask
out on the host. They cost a few passes over the [chains, draws] traces after sampling.

Acceptance: `spec.acceptance` ("auto", "next", "same_batch", "off") says how the MALA
acceptance is estimated and what it costs; see `grokjax.slt.diagnostics`.

>>> import jax, jax.numpy as jnp
>>> x = jax.random.normal(jax.random.key(0), (500, 3))
>>> y = x @ jnp.array([1.0, -2.0, 0.5])
>>> loss = lambda w, b: 0.5 * jnp.mean((b[1] - b[0] @ w) ** 2)
>>> out = estimate_llc(loss, jnp.array([1.0, -2.0, 0.5]), (x, y), key=jax.random.key(1),
...                    step_size=1e-3, localization=1.0, num_draws=2000, num_burnin=200)
>>> bool(abs(out["llc/mean"] - 1.5) < 0.2)     # regular: d/2 = 1.5
True
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from grokjax.errors import ConfigError
from grokjax.slt import diagnostics
from grokjax.slt import samplers as samplers_lib
from grokjax.slt.diagnostics import FLAGS, describe, flag_names  # noqa: F401  (re-exported)
from grokjax.slt.samplers import get_sampler

Array = jax.Array
LossFn = Callable[[Any, Any], Array]


@dataclasses.dataclass(frozen=True)
class ChainSpec:
  """The static (shape-determining) settings of a set of chains; hashable for jit."""

  sampler: str | Callable = "sgld"
  num_chains: int = 4
  num_draws: int = 200
  num_burnin: int = 0
  batch_size: int | None = None  # None: the full data at every draw
  sampler_kwargs: tuple = ()  # sorted (name, value) pairs passed to the sampler factory
  divergence_threshold: float | None = None  # None: `divergence_level`
  eval_chunk: int | None = None  # examples per pass for L_n(w*); None: all at once
  acceptance: str = "auto"  # MALA acceptance: auto, next, same_batch or off (module docstring)


ACCEPTANCE_MODES = ("auto", "next", "same_batch", "off")

# Every threshold the diagnostics use (module docstring); one table, so that a report can
# quote it and a calibration rule can tighten it.
DIAG_THRESHOLDS = {
    "slope_z": 3.0,        # fail: |trend z| >= 3 over the second half of the kept draws
    "rhat": 1.1,           # fail: split-R̂ >= 1.1
    "accept_fail": 0.8,    # fail: mean MALA acceptance < 0.8 (module docstring)
    "accept_warn": 0.9,    # warn: < 0.9 (the usual target; choose_setting requires it)
    "below_init": 0.5,     # fail: > half the kept draws, and their mean, below L_n(w*)
    "saturation": 0.9,     # fail: E[L_m] >= 0.9 chance_loss > L_n(w*) (= apply.SATURATION)
    "diverged_frac": 0.5,  # fail: at least half the chains diverged
    "divergence_k": 20.0,  # a chain diverges past d/2 + 20·max(spread, 1) (`divergence_level`)
}


def default_nbeta(n: int) -> float:
  """n / log n: nβ for Watanabe's inverse temperature β = 1/log n."""
  if n < 2:
    raise ConfigError(f"nbeta needs at least 2 examples (n/log n), got n={n}")
  return n / math.log(n)


def resolve_nbeta(nbeta, *, num_examples: int, batch_size: int | None) -> float:
  """The nβ that a `nbeta` argument means: None/'n' -> n/log n, 'batch' -> b/log b."""
  if nbeta is None or (isinstance(nbeta, str) and nbeta == "n"):
    return default_nbeta(num_examples)
  if isinstance(nbeta, str) and nbeta == "batch":
    return default_nbeta(batch_size or num_examples)
  try:
    value = float(nbeta)
  except (TypeError, ValueError):
    raise ConfigError(f"nbeta must be a positive number, 'n' or 'batch', got {nbeta!r}") from None
  if not (value > 0 and math.isfinite(value)):
    raise ConfigError(f"nbeta must be positive and finite, got {nbeta}")
  return value


def num_examples(data) -> int:
  """The shared leading (example) axis of every array in `data`."""
  sizes = {np.shape(x)[0] if np.ndim(x) else None for x in jax.tree.leaves(data)}
  if not sizes or None in sizes or len(sizes) != 1:
    raise ConfigError("data must be a pytree of arrays that share a leading example axis; "
                      f"got leading sizes {sorted(map(str, sizes))}")
  return sizes.pop()


def num_params(params) -> int:
  return sum(int(np.prod(np.shape(x))) for x in jax.tree.leaves(params))


def full_loss(loss_fn: LossFn, params, data, *, chunk_size: int | None = None) -> Array:
  """L_n(params): the mean loss on all of `data`, in chunks of `chunk_size` examples."""
  n = num_examples(data)
  if chunk_size is None or chunk_size >= n:
    return loss_fn(params, data)
  k, rest = divmod(n, chunk_size)
  head = jax.tree.map(lambda a: a[: k * chunk_size].reshape(k, chunk_size, *a.shape[1:]), data)
  total = jnp.sum(jax.lax.map(lambda b: loss_fn(params, b), head)) * chunk_size
  if rest:
    total = total + loss_fn(params, jax.tree.map(lambda a: a[k * chunk_size:], data)) * rest
  return total / n


def chain_keys(key: Array, num_chains: int) -> Array:
  """One key per chain; chain c of `estimate_llc` runs `sample_chain` with keys[c]."""
  return jax.random.split(key, num_chains)


def batch_indices(key: Array, n: int, batch_size: int | None, draw: Array) -> Array | None:
  """Example indices [batch] of minibatch `draw` (None: the full data every draw).

  Uniform with replacement, fresh at each draw: an unbiased estimate of L_n and of its
  gradient, as SGLD's analysis assumes. (A reshuffle per epoch, as a data loader does,
  costs a sort, and XLA's CPU sort costs more than the gradient of a small model.)
  """
  if batch_size is None or batch_size >= n:
    return None
  return jax.random.randint(jax.random.fold_in(key, draw), (batch_size,), 0, n)


def _potential(w, center, loss, grads, nbeta, localization, metric):
  """U = nβ·L_m(w) + (γ/2)·Σ_T ‖w_T − w*_T‖²/m_T and ∇U on one minibatch (m: per-tensor
  factors, `samplers.constant_metric`)."""
  diff = jax.tree.map(lambda a, b, m: (a - b) / m, w, center, metric)
  u = nbeta * loss + 0.5 * localization * sum(
      jnp.sum(d * d * m) for d, m in zip(jax.tree.leaves(diff), jax.tree.leaves(metric)))
  return u, jax.tree.map(lambda g, d: nbeta * g + localization * d, grads, diff)


def _sampler(spec: ChainSpec, step_size, nbeta, localization, key):
  """The chain's transformation; a factory that adapts (takes `adapt_steps`) adapts in burn-in."""
  factory = get_sampler(spec.sampler)
  kwargs = dict(spec.sampler_kwargs)
  if "adapt_steps" in inspect.signature(factory).parameters:
    kwargs.setdefault("adapt_steps", spec.num_burnin)
  return factory(step_size, nbeta=nbeta, localization=localization, key=key, **kwargs)


def sample_chain(loss_fn: LossFn, params, data, *, key: Array, spec: ChainSpec, step_size,
                 nbeta, localization) -> tuple[Array, Array, Array]:
  """One chain from w* = params: (losses L_m(w_t), distances ‖w_t − w*‖, log MH ratios).

  Each is [draws]. Draw t evaluates the loss and gradient at w_t on minibatch t, records
  both numbers, and then steps to w_{t+1}; so draw 0 is at w* itself. The third trace is
  the MALA log acceptance ratio of the step from w_t (NaN where not computed: the last
  draw in "next" mode, every draw with acceptance "off" or a sampler without a fixed
  metric, see `METRIC_SAMPLERS`).
  """
  batch_key, noise_key = jax.random.split(key)
  tx = _sampler(spec, step_size, nbeta, localization, noise_key)
  value_and_grad = jax.value_and_grad(loss_fn)
  n = num_examples(data)
  mode, every = acceptance_plan(spec, n)
  metric = samplers_lib.constant_metric(spec.sampler, params, spec.sampler_kwargs)
  potential = lambda w, loss, g: _potential(w, params, loss, g, nbeta, localization, metric)
  log_accept = lambda *a: diagnostics.mala_log_accept(*a, step_size, precond=metric)
  nan = jnp.full((), jnp.nan, jnp.float32)

  def step(carry, t):
    w, state, prev = carry
    idx = batch_indices(batch_key, n, spec.batch_size, t)
    batch = data if idx is None else jax.tree.map(lambda a: a[idx], data)
    loss, grads = value_and_grad(w, batch)
    sq = sum(jnp.sum(jnp.square(a - b)) for a, b in zip(jax.tree.leaves(w),
                                                         jax.tree.leaves(params)))
    updates, state = tx.update(grads, state, w)
    w_next = optax.apply_updates(w, updates)
    log_acc = nan
    if mode == "next":  # the step from w_{t-1}, from this draw's loss and gradient
      cur = (w, *potential(w, loss, grads))
      log_acc = jnp.where(t > 0, log_accept(*prev, *cur), jnp.nan)
      prev = cur
    elif mode == "same_batch":  # the step from w_t, with the proposal on minibatch t

      def same_batch(_):
        loss1, grads1 = value_and_grad(w_next, batch)
        return log_accept(w, *potential(w, loss, grads), w_next,
                          *potential(w_next, loss1, grads1)).astype(jnp.float32)

      # t is not batched over chains, so under vmap this stays a branch: the extra
      # gradient is paid on every `every`-th draw only.
      log_acc = jax.lax.cond(t % every == 0, same_batch, lambda _: nan, None)
    return (w_next, state, prev), (loss, jnp.sqrt(sq), log_acc.astype(jnp.float32))

  prev = None
  if mode == "next":
    u0, gu0 = potential(params, jnp.zeros((), jnp.float32), params)
    prev = (params, u0, gu0)
  init = (params, tx.init(params), prev)
  _, (losses, dists, log_acc) = jax.lax.scan(step, init, jnp.arange(spec.num_draws))
  if mode == "next":
    log_acc = jnp.concatenate([log_acc[1:], jnp.full((1,), jnp.nan, log_acc.dtype)])
  return losses, dists, log_acc


METRIC_SAMPLERS = samplers_lib.METRIC_SAMPLERS  # a fixed metric: the MALA acceptance exists
ACCEPT_EVERY = 8  # "auto" with minibatches: the same-batch acceptance on every 8th draw


def acceptance_plan(spec: ChainSpec, n: int) -> tuple[str, int]:
  """(mode, every): how `sample_chain` estimates the MALA acceptance (module docstring)."""
  if spec.sampler not in METRIC_SAMPLERS or spec.acceptance == "off":
    return "off", 1
  full = spec.batch_size is None or spec.batch_size >= n
  if spec.acceptance == "auto":
    return ("next", 1) if full else ("same_batch", ACCEPT_EVERY)
  return spec.acceptance, 1


def divergence_level(excess_CxT: Array, num_params: int) -> Array:
  """d/2 + k·max(s, 1), the excess e past which a chain is diverged (module docstring)."""
  spread = diagnostics.robust_spread(excess_CxT)
  spread = jnp.where(jnp.isfinite(spread), spread, 0.0)
  return 0.5 * num_params + DIAG_THRESHOLDS["divergence_k"] * jnp.maximum(spread, 1.0)


def summarize(losses: Array, dists: Array, init_loss: Array, nbeta, *, num_burnin: int,
              threshold: float | None = None, log_accept: Array | None = None,
              num_params: int | None = None, chance_loss=jnp.nan) -> dict[str, Array]:
  """The results dict from traces [chains, draws] (see the module docstring).

  `threshold`: the excess nβ·(L_m − L_n(w*)) past which a chain is diverged; None:
  `divergence_level` of the traces (needs `num_params`).
  """
  kept = losses[:, num_burnin:]
  per_chain = nbeta * (jnp.mean(kept, axis=1) - init_loss)
  excess = nbeta * (losses - init_loss)
  if threshold is None:
    threshold = divergence_level(excess, num_params)
  diverged = (~jnp.all(jnp.isfinite(losses), axis=1) | jnp.any(excess > threshold, axis=1)
              | ~jnp.isfinite(init_loss))
  ok = ~diverged
  n_ok = jnp.sum(ok)
  mean = jnp.sum(jnp.where(ok, per_chain, 0.0)) / n_ok
  var = jnp.sum(jnp.where(ok, (per_chain - mean) ** 2, 0.0)) / (n_ok - 1)
  dist = jnp.sum(jnp.where(ok, jnp.mean(dists[:, num_burnin:], axis=1), 0.0)) / n_ok
  if log_accept is None:
    log_accept = jnp.full(losses.shape, jnp.nan, jnp.float32)
  return {
      "llc/mean": mean,
      "llc/std": jnp.where(n_ok > 1, jnp.sqrt(var), jnp.nan),
      "llc/per_chain": per_chain,
      "loss/trace": losses,
      "loss/init": init_loss,
      "distance/trace": dists,
      "distance/mean": dist,
      "diverged/per_chain": diverged,
      "diverged/count": jnp.sum(diverged).astype(jnp.int32),
      "nbeta": jnp.asarray(nbeta, jnp.float32),
      "diag/log_accept_trace": log_accept,
      "diag/threshold": jnp.asarray(threshold, jnp.float32),
      **diagnostics.diagnose(losses, log_accept, init_loss, nbeta, ok, num_burnin=num_burnin,
                             chance_loss=chance_loss, thresholds=DIAG_THRESHOLDS),
  }


def sample_llc(loss_fn: LossFn, params, data, *, key: Array, spec: ChainSpec, step_size,
               nbeta, localization, init_loss=None, chance_loss=None) -> dict[str, Array]:
  """The traceable core of `estimate_llc` (no argument checks; nbeta must be a number).

  `chance_loss`: the loss of a model at chance (ln p for p classes) for the saturation
  flag; None: saturation is not checked.
  """
  if init_loss is None:
    init_loss = full_loss(loss_fn, params, data, chunk_size=spec.eval_chunk)
  chain = lambda k: sample_chain(loss_fn, params, data, key=k, spec=spec, step_size=step_size,
                                 nbeta=nbeta, localization=localization)
  losses, dists, log_accept = jax.vmap(chain)(chain_keys(key, spec.num_chains))
  return summarize(losses, dists, init_loss, nbeta, num_burnin=spec.num_burnin,
                   threshold=spec.divergence_threshold, log_accept=log_accept,
                   num_params=num_params(params),
                   chance_loss=jnp.nan if chance_loss is None else chance_loss)


_sample_llc = jax.jit(sample_llc, static_argnames=("loss_fn", "spec"))
_full_loss = jax.jit(full_loss, static_argnames=("loss_fn", "chunk_size"))


def check_hyper(*, step_size, localization, nbeta=1.0) -> None:
  """Raises ConfigError naming the first bad sampler hyperparameter."""
  for name, v, ok in (("step_size", step_size, lambda v: v > 0),
                      ("localization", localization, lambda v: v > 0),
                      ("nbeta", nbeta, lambda v: v > 0)):
    v = float(v)
    if not (math.isfinite(v) and ok(v)):
      hint = (" (the LLC's posterior is localised at w*: γ = 0 leaves it improper)"
              if name == "localization" else "")
      raise ConfigError(f"{name} must be > 0 and finite, got {v}{hint}")


def make_spec(*, sampler, num_chains, num_draws, num_burnin, batch_size, n,
              sampler_kwargs=None, divergence_threshold=None, eval_chunk=None,
              acceptance="auto") -> ChainSpec:
  """A checked ChainSpec; raises ConfigError naming the bad argument."""
  get_sampler(sampler)
  if acceptance not in ACCEPTANCE_MODES:
    raise ConfigError(f"acceptance must be one of {', '.join(ACCEPTANCE_MODES)}, got "
                      f"{acceptance!r}")
  if num_chains < 1:
    raise ConfigError(f"num_chains must be >= 1, got {num_chains}")
  if num_burnin < 0:
    raise ConfigError(f"num_burnin must be >= 0, got {num_burnin}")
  if num_draws <= num_burnin:
    raise ConfigError(f"num_draws ({num_draws}) must exceed num_burnin ({num_burnin}): "
                      "num_draws counts every step of a chain, burn-in included")
  if batch_size is not None and not 1 <= batch_size <= n:
    raise ConfigError(f"batch_size must lie in [1, {n}] (the number of examples), got "
                      f"{batch_size}")
  return ChainSpec(sampler, int(num_chains), int(num_draws), int(num_burnin),
                   None if batch_size is None else int(batch_size),
                   tuple(sorted((sampler_kwargs or {}).items())), divergence_threshold,
                   eval_chunk, acceptance)


def check_loss_fn(loss_fn: LossFn, params, data, batch_size: int | None) -> None:
  """Raises ConfigError unless loss_fn(params, minibatch) is a scalar."""
  b = batch_size or num_examples(data)
  batch = jax.tree.map(lambda a: jax.ShapeDtypeStruct((b, *np.shape(a)[1:]), a.dtype), data)
  out = jax.eval_shape(loss_fn, params, batch)
  if not (isinstance(out, jax.ShapeDtypeStruct) and out.shape == ()):
    shape = getattr(out, "shape", type(out).__name__)
    raise ConfigError(f"loss_fn must return the scalar mean loss of a minibatch, got {shape}")


def initial_loss(loss_fn: LossFn, params, data, *, eval_chunk: int | None = None) -> Array:
  """L_n(w*) on the full data; raises ConfigError if it is not finite."""
  value = _full_loss(loss_fn, params, data, chunk_size=eval_chunk)
  if not np.isfinite(np.asarray(value)):
    raise ConfigError(f"the loss at params (w*) is {float(value)} on the full data: the LLC "
                      "needs a finite initial loss")
  return value


def estimate_llc(loss_fn: LossFn, params, data, *, key: Array, sampler="sgld", step_size: float,
                 localization: float, nbeta=None, num_chains: int = 4, num_draws: int = 200,
                 num_burnin: int = 0, batch_size: int | None = None,
                 sampler_kwargs: dict | None = None, divergence_threshold: float | None = None,
                 eval_chunk: int | None = None, acceptance: str = "auto",
                 chance_loss: float | None = None) -> dict[str, Array]:
  """λ̂ at w* = params for any `loss_fn(params, batch) -> mean loss` and data pytree.

  `data` is a pytree of arrays sharing a leading example axis; minibatches of
  `batch_size` examples (uniform with replacement, see `batch_indices`) are handed to
  loss_fn in the same structure. `num_draws` steps per chain, the first `num_burnin` of them
  discarded. `sampler`: a name of `grokjax.slt.samplers.SAMPLERS` or a factory with
  the same signature; `sampler_kwargs` go to it. Returns the dict described in the
  module docstring, diagnostics included (`chance_loss`, e.g. ln p, enables the saturation
  flag). Reuse one `loss_fn` object across calls to reuse the compilation.
  """
  n = num_examples(data)
  spec = make_spec(sampler=sampler, num_chains=num_chains, num_draws=num_draws,
                   num_burnin=num_burnin, batch_size=batch_size, n=n,
                   sampler_kwargs=sampler_kwargs, divergence_threshold=divergence_threshold,
                   eval_chunk=eval_chunk, acceptance=acceptance)
  nb = resolve_nbeta(nbeta, num_examples=n, batch_size=batch_size)
  check_hyper(step_size=step_size, localization=localization, nbeta=nb)
  check_loss_fn(loss_fn, params, data, spec.batch_size)
  init = initial_loss(loss_fn, params, data, eval_chunk=eval_chunk)
  return _sample_llc(loss_fn, params, data, key=key, spec=spec,
                     step_size=jnp.float32(step_size), nbeta=jnp.float32(nb),
                     localization=jnp.float32(localization), init_loss=init,
                     chance_loss=None if chance_loss is None else jnp.float32(chance_loss))
