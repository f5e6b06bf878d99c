"""SGLD-family samplers of the localised tempered posterior, as optax transformations.

Every sampler draws from the localised tempered posterior around a centre w*
(Lau et al. 2023, "Quantifying degeneracy in singular models via the learning
coefficient"):

    p(w) ∝ exp(−U(w)),   U(w) = nβ·L_n(w) + (γ/2)·Σ_T ‖w_T − w*_T‖² / m_T

T runs over the tensors (leaves) of the parameter pytree, nβ is the sample size times
the inverse temperature, γ the localisation strength and m_T the localisation metric
(m_T = 1 for `sgld` and `rmsprop_sgld`; m_T = s_T(w*), below, for the two
scale-invariant samplers). Each step reads the minibatch gradient g = ∇L_m(w), an
unbiased estimate of ∇L_n, and moves by an Euler–Maruyama step of the preconditioned
Langevin diffusion whose stationary law is p:

    Δw = −(ε/2)·G(w)·(nβ·g + γ·(w − w*)/m) + (ε/2)·Γ(w) + sqrt(ε·G(w))·ξ,   ξ ~ N(0, I)

with a diagonal preconditioner G and the drift correction Γ_i = Σ_j ∂G_ij/∂w_j that a
position-dependent G needs to keep p stationary:

  sgld             G = 1, Γ = 0                                        (Welling & Teh 2011)
  rmsprop_sgld     G = 1/(sqrt(V) + eps), V ← α·V + (1−α)·g² for the first `adapt_steps`
                   steps, then frozen, so Γ = 0 exactly (Li et al. 2016's pSGLD; the
                   defaults α = 0.99, eps = 0.1 are devinterp's)
  scale_invariant  G_T = s_T(w*), one scalar per tensor, fixed at the centre, Γ = 0,
                   with s_T(w) = mean_i(w_{T,i}²) + eps
  riemannian       G_T = s_T(w) at the current point, Γ_T = ∂s_T/∂w_T = 2·w_T/size(T)

Why RMSProp-SGLD freezes its preconditioner. pSGLD's G depends on the path (V averages
past gradients), not on w alone, so the chain on w has no exact Γ: Li et al. drop the
term as small when V varies slowly. It is not small enough here: on a regular model the
adapting chain reads 5–12 % above d/2 (tests/test_slt_llc.py). With G fixed after the
adaptation the step is plain preconditioned Langevin with a constant diagonal G, whose
Γ is 0 and whose stationary law is p, up to the O(ε) discretisation error every sampler
here has. `estimate_llc` passes `adapt_steps` = num_burnin, so G adapts in the burn-in
and is fixed over the draws that count; `adapt_steps=None` adapts forever (the old
behaviour, biased).

The paper names its scale-invariant preconditioner ‖W‖² + ε; we use the mean square
‖W‖²/size(W) + eps, the same up to a constant factor per tensor, so that one step size
means one relative step per element in every tensor (with ‖W‖² a 99×128 embedding
would move 12,672 / 128 ≈ 100× further, relatively, than a bias). Pass
`per_element=False` for the literal ‖W‖² + eps.

Why the two scale-invariant samplers localise in their own metric: if a per-tensor
rescaling w_T → c_T·w_T (c_T > 0) leaves the loss unchanged, as the residual-stream and
MLP rescalings of `grokjax.slt.rescaling` do, then with eps = 0 their chain started at
the rescaled centre, fed the same noise, is exactly the rescaled chain — same losses,
same λ̂. SGLD has no such property (its noise has the same size in every coordinate),
and RMSProp's G scales as c, not c², so it keeps the drift but not the noise in step.

Each transformation carries its RNG key in its state; `update(g, state, params)`
returns Δw for `optax.apply_updates`:

>>> import jax, jax.numpy as jnp, optax
>>> w = {"a": jnp.ones(3)}
>>> tx = sgld(1e-3, nbeta=10.0, localization=1.0, key=jax.random.key(0))
>>> state = tx.init(w)                    # the centre w* is the params given to init
>>> g = jax.grad(lambda p: jnp.sum(p["a"] ** 2))(w)
>>> dw, state = tx.update(g, state, w)
>>> optax.apply_updates(w, dw)["a"].shape
(3,)
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from grokjax.errors import ConfigError

Array = jax.Array


class SGLDState(NamedTuple):
  key: Array
  center: Any  # w*, the localisation centre (the params given to init)


class RMSPropSGLDState(NamedTuple):
  key: Array
  center: Any
  square_avg: Any  # V, the running mean of g² (g: the minibatch loss gradient)
  count: Array  # steps taken, to stop adapting V after `adapt_steps`


class ScaleInvariantState(NamedTuple):
  key: Array
  center: Any
  center_scale: Any  # s_T(w*) per tensor: a pytree of scalars


def _normal_like(key: Array, tree) -> Any:
  """Standard normal noise shaped like `tree`, from one draw (one RNG kernel to compile)."""
  leaves, treedef = jax.tree.flatten(tree)
  sizes = [x.size for x in leaves]
  flat = jax.random.normal(key, (sum(sizes),), jnp.result_type(*leaves))
  parts = jnp.split(flat, np.cumsum(sizes)[:-1])
  return jax.tree.unflatten(treedef, [p.reshape(x.shape).astype(x.dtype)
                                     for p, x in zip(parts, leaves)])


def _scale(x: Array, eps: float, per_element: bool) -> Array:
  """s_T(w) = mean(w²) + eps (or sum(w²) + eps): the per-tensor scalar metric."""
  sq = jnp.sum(jnp.square(x))
  return (sq / x.size if per_element else sq) + eps


def _langevin(grads, params, center, noise, *, step_size, nbeta, localization,
              precond, loc_metric, correction):
  """Δw = −(ε/2)·G·(nβ·g + γ·(w − w*)/m) + (ε/2)·Γ + sqrt(ε·G)·ξ, leaf by leaf."""

  def leaf(g, w, c, xi, G, m, gam):
    m = jnp.where(m > 0, m, 1.0)  # eps = 0 on an all-zero tensor: fall back to metric 1
    drift = nbeta * g + localization * (w - c) / m
    return -0.5 * step_size * G * drift + 0.5 * step_size * gam + jnp.sqrt(step_size * G) * xi

  return jax.tree.map(leaf, grads, params, center, noise, precond, loc_metric, correction)


def _ones_like(tree):
  return jax.tree.map(lambda _: 1.0, tree)


def _zeros_like(tree):
  return jax.tree.map(lambda _: 0.0, tree)


def sgld(step_size, *, nbeta, localization, key: Array) -> optax.GradientTransformation:
  """Plain SGLD: Δw = −(ε/2)·(nβ·g + γ·(w − w*)) + sqrt(ε)·ξ."""

  def init(params):
    return SGLDState(key, params)

  def update(grads, state, params=None):
    if params is None:
      raise ValueError("sgld needs params (the current point w) in update")
    key, sub = jax.random.split(state.key)
    noise = _normal_like(sub, params)
    ones = _ones_like(params)
    dw = _langevin(grads, params, state.center, noise, step_size=step_size, nbeta=nbeta,
                   localization=localization, precond=ones, loc_metric=ones,
                   correction=_zeros_like(params))
    return dw, SGLDState(key, state.center)

  return optax.GradientTransformation(init, update)


def rmsprop_sgld(step_size, *, nbeta, localization, key: Array, alpha: float = 0.99,
                 eps: float = 0.1, adapt_steps: int | None = None) -> optax.GradientTransformation:
  """pSGLD: G = 1/(sqrt(V) + eps) with V ← α·V + (1−α)·g², updated before the step.

  V adapts during the first `adapt_steps` steps and is fixed afterwards (None: always;
  see the module docstring for why a fixed G is exact and an adapting one is not).
  """

  def init(params):
    return RMSPropSGLDState(key, params, jax.tree.map(jnp.zeros_like, params),
                            jnp.zeros((), jnp.int32))

  def update(grads, state, params=None):
    if params is None:
      raise ValueError("rmsprop_sgld needs params (the current point w) in update")
    key, sub = jax.random.split(state.key)
    adapt = True if adapt_steps is None else state.count < adapt_steps
    v = jax.tree.map(lambda v, g: jnp.where(adapt, alpha * v + (1 - alpha) * g * g, v),
                     state.square_avg, grads)
    precond = jax.tree.map(lambda v: 1.0 / (jnp.sqrt(v) + eps), v)
    ones = _ones_like(params)
    dw = _langevin(grads, params, state.center, _normal_like(sub, params), step_size=step_size,
                   nbeta=nbeta, localization=localization, precond=precond, loc_metric=ones,
                   correction=_zeros_like(params))
    return dw, RMSPropSGLDState(key, state.center, v, state.count + 1)

  return optax.GradientTransformation(init, update)


def _scale_invariant(step_size, nbeta, localization, key, eps, per_element, moving: bool):
  def init(params):
    scale = jax.tree.map(lambda w: _scale(w, eps, per_element), params)
    return ScaleInvariantState(key, params, scale)

  def update(grads, state, params=None):
    if params is None:
      raise ValueError("the scale-invariant samplers need params (the current point w)")
    key, sub = jax.random.split(state.key)
    if moving:
      precond = jax.tree.map(lambda w: _scale(w, eps, per_element), params)
      norm = (lambda w: w.size) if per_element else (lambda w: 1)
      correction = jax.tree.map(lambda w: 2.0 * w / norm(w), params)
    else:
      precond, correction = state.center_scale, _zeros_like(params)
    dw = _langevin(grads, params, state.center, _normal_like(sub, params), step_size=step_size,
                   nbeta=nbeta, localization=localization, precond=precond,
                   loc_metric=state.center_scale, correction=correction)
    return dw, ScaleInvariantState(key, state.center, state.center_scale)

  return optax.GradientTransformation(init, update)


def scale_invariant_sgld(step_size, *, nbeta, localization, key: Array, eps: float = 1e-6,
                         per_element: bool = True) -> optax.GradientTransformation:
  """G_T = m_T = s_T(w*) per tensor, fixed.

  Δw_T = −(ε/2)·(s_T·nβ·g_T + γ·(w_T − w*_T)) + sqrt(ε·s_T)·ξ.
  """
  return _scale_invariant(step_size, nbeta, localization, key, eps, per_element, moving=False)


def riemannian_sgld(step_size, *, nbeta, localization, key: Array, eps: float = 1e-6,
                    per_element: bool = True) -> optax.GradientTransformation:
  """G_T = s_T(w) at the current point, m_T = s_T(w*), drift correction Γ_T = 2·w_T/size(T)."""
  return _scale_invariant(step_size, nbeta, localization, key, eps, per_element, moving=True)


SAMPLERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "sgld": sgld,
    "rmsprop_sgld": rmsprop_sgld,
    "scale_invariant": scale_invariant_sgld,
    "riemannian": riemannian_sgld,
}


METRIC_SAMPLERS = ("sgld", "scale_invariant")  # the samplers `constant_metric` knows


def constant_metric(sampler, params, sampler_kwargs=None):
  """Per-tensor scalars M with G = m = M held fixed, where the sampler has them: the MALA
  acceptance of its proposal is then exact (`diagnostics.mala_log_accept`). sgld: 1;
  scale_invariant: s_T(w*). None for the others (an adapting or moving G, or an unknown
  factory)."""
  if sampler == "sgld":
    return _ones_like(params)
  if sampler == "scale_invariant":
    defaults = {k: v.default for k, v in inspect.signature(scale_invariant_sgld).parameters.items()
                if k in ("eps", "per_element")}
    kw = {**defaults, **{k: v for k, v in dict(sampler_kwargs or {}).items() if k in defaults}}
    scale = lambda w: _scale(w, kw["eps"], kw["per_element"])
    return jax.tree.map(lambda w: jnp.where(scale(w) > 0, scale(w), 1.0), params)
  return None


def get_sampler(sampler: str | Callable[..., optax.GradientTransformation]):
  """A sampler factory `(step_size, *, nbeta, localization, key, **kw) -> transformation`."""
  if callable(sampler):
    return sampler
  if sampler not in SAMPLERS:
    raise ConfigError(f"unknown sampler {sampler!r}; valid: {', '.join(SAMPLERS)}")
  return SAMPLERS[sampler]
