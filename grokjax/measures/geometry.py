"""Geometric-complexity proxies: input-Jacobian norm, input-gradient AGOP, participation ratio.

All three read the model as a function of its input embeddings x = tok_embed + pos_embed
([T, D] per example, T = 4 positions), over a batch of examples (the caller picks them;
`experiments.measure` uses a fixed random subset of the task's table so every
checkpoint is measured on the same inputs).

  geometric complexity (Dherin et al. 2022)   GC = (1/N) sum_i ||d f(x_i) / d x_i||_F^2,
      f the answer-position logits [vocab]. The model treats examples independently,
      so one vector-Jacobian product of the batched function with a cotangent
      u [N, vocab] returns every example's u_i^T J_i at once. `method='exact'` uses the
      vocab one-hot cotangents (sum of squares = ||J_i||_F^2 exactly); `'hutchinson'`
      uses `n_probes` Gaussian ones, E ||u^T J||^2 = ||J||_F^2 for u ~ N(0, I)
      (unbiased; needs `key`; vocab / n_probes times cheaper).
  input-gradient AGOP (the authors' version)   G = (1/N) sum_i g_i g_i^T with
      g_i = d loss_i / d x_i flattened to T*D, loss the cross-entropy of the answer.
      Reported: ||G||_F, trace G = mean ||g_i||^2, and the effective rank
      exp(-sum_j l_j log l_j), l the eigenvalues of G normalised to sum to one. The
      per-example gradients are one more vector-Jacobian product of the same forward
      pass, with cotangent softmax(logits) - onehot(target).
  participation ratio   PR = (tr C)^2 / tr(C^2) of the covariance C of the residual
      stream at the answer position after each block (`blocks.{l}.resid_post`): the
      number of dimensions the representations effectively use, in [1, D].
All three share one forward pass.

>>> import jax, jax.numpy as jnp
>>> w = jnp.array([[1.0, 2.0], [0.0, 3.0]])
>>> jacobian_sq_norm(lambda xs: xs @ w.T, jnp.ones((5, 2)))   # ||w||_F^2
Array(14., dtype=float32)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from grokjax.config import ModelConfig
from grokjax.errors import ConfigError
from grokjax.model import Transformer

Array = jax.Array
METHODS = ("exact", "hutchinson")


def _sq_norm_from_vjp(vjp, y_NxV: Array, *, method: str, n_probes: int, key,
                      batch_size: int | None) -> Array:
  """mean_i ||J_i||_F^2 from the VJP of a batched, example-independent function."""
  n, v = y_NxV.shape
  if method == "exact":
    cot = jnp.broadcast_to(jnp.eye(v, dtype=y_NxV.dtype)[:, None, :], (v, n, v))
    draws = 1
  elif method == "hutchinson":
    if key is None:
      raise ConfigError("method='hutchinson' needs a key")
    cot, draws = jax.random.normal(key, (n_probes, n, v), y_NxV.dtype), n_probes
  else:
    raise ConfigError(f"unknown Jacobian method {method!r}; valid: {', '.join(METHODS)}")
  sq = lambda u: jnp.sum(vjp(u)[0].astype(jnp.float32) ** 2)
  return jnp.sum(jax.lax.map(sq, cot, batch_size=batch_size)) / (n * draws)


def jacobian_sq_norm(f, xs: Array, *, method: str = "exact", n_probes: int = 8,
                     key: Array | None = None, batch_size: int | None = None) -> Array:
  """mean_i ||d f(xs)_i / d xs_i||_F^2 for f mapping a batch [N, ...] to [N, V], each
  example on its own (a vmapped function; no batch statistics)."""
  y, vjp = jax.vjp(f, xs)
  return _sq_norm_from_vjp(vjp, y.reshape(y.shape[0], -1) if y.ndim != 2 else y,
                           method=method, n_probes=n_probes, key=key, batch_size=batch_size)


def participation_ratio(h_NxD: Array) -> Array:
  """(tr C)^2 / tr(C^2) of the covariance of the rows; k for k equal variances."""
  hc = h_NxD - h_NxD.mean(axis=0)
  c = hc.T @ hc / h_NxD.shape[0]
  return jnp.trace(c) ** 2 / jnp.sum(c * c)


def agop_stats(g_NxF: Array, *, prefix: str = "geometry/agop") -> dict[str, Array]:
  """Frobenius norm, trace and effective rank of G = g^T g / N (via g's singular values)."""
  lam = jnp.linalg.svd(g_NxF, compute_uv=False) ** 2 / g_NxF.shape[0]
  q = lam / jnp.sum(lam)
  h = -jnp.sum(jnp.where(q > 0, q * jnp.log(jnp.where(q > 0, q, 1.0)), 0.0))
  return {f"{prefix}_frob": jnp.sqrt(jnp.sum(lam**2)), f"{prefix}_trace": jnp.sum(lam),
          f"{prefix}_eff_rank": jnp.exp(h)}


def geometry_measures(cfg: ModelConfig, params, tokens_NxT: Array, targets_N: Array, *,
                      method: str = "exact", n_probes: int = 8, key: Array | None = None,
                      batch_size: int | None = None) -> dict[str, Array]:
  """GC, AGOP and per-layer participation ratios of one model on a batch of examples.

  batch_size: cotangents (vocab one-hots or probes) propagated at once (None: all)."""
  model = Transformer(cfg)
  v = {"params": params}
  x_NxTxD = model.apply(v, tokens_NxT, method=model.embed)
  forward = lambda x: model.apply(v, x, method=model.from_embeddings, return_sites=True)
  logits, vjp, sites = jax.vjp(forward, x_NxTxD, has_aux=True)
  out = {"geometry/gc": _sq_norm_from_vjp(vjp, logits, method=method, n_probes=n_probes,
                                          key=key, batch_size=batch_size)}
  dloss = jax.nn.softmax(logits) - jax.nn.one_hot(targets_N, logits.shape[-1], dtype=logits.dtype)
  g = vjp(dloss)[0]  # d (sum_i CE_i) / d x = per-example gradients
  out.update(agop_stats(g.reshape(g.shape[0], -1).astype(jnp.float32)))
  for l in range(cfg.n_layers):
    h = sites[f"blocks.{l}.resid_post"][:, -1].astype(jnp.float32)
    out[f"geometry/participation/blocks.{l}.resid_post"] = participation_ratio(h)
  return out
