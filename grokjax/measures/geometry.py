"""Geometric-complexity proxies: input-Jacobian norm, input-gradient AGOP, participation ratio.

All three read the model as a function of its input embeddings x = tok_embed + pos_embed
([T, D] per example, T = 4 positions), over a batch of examples (the caller picks them;
`experiments.measure` uses a fixed random subset of the task's table so every
checkpoint is measured on the same inputs).

  geometric complexity (Dherin et al. 2022)   GC = (1/N) sum_i ||d f(x_i) / d x_i||_F^2,
      f the answer-position logits [vocab]. `method='exact'` builds each Jacobian with
      reverse mode (vocab vector-Jacobian products per example); `'hutchinson'`
      estimates ||J||_F^2 = E_v ||v^T J||^2, v ~ N(0, I), with `n_probes` draws (unbiased;
      needs `key`).
  input-gradient AGOP (the authors' version)   G = (1/N) sum_i g_i g_i^T with
      g_i = d loss_i / d x_i flattened to T*D, loss the cross-entropy of the answer.
      Reported: ||G||_F, trace G = mean ||g_i||^2, and the effective rank
      exp(-sum_j l_j log l_j), l the eigenvalues of G normalised to sum to one. The
      per-example gradients come from one backward pass of the summed loss (example
      i's loss depends on x_i only).
  participation ratio   PR = (tr C)^2 / tr(C^2) of the covariance C of the residual
      stream at the answer position after each block (`blocks.{l}.resid_post`): the
      number of dimensions the representations effectively use, in [1, D].

>>> import jax, jax.numpy as jnp
>>> jacobian_sq_norm(lambda x: jnp.array([[1.0, 2.0], [0.0, 3.0]]) @ x, jnp.ones((5, 2)))
Array(14., dtype=float32)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from grokjax.config import ModelConfig
from grokjax.errors import ConfigError
from grokjax.model import Transformer

Array = jax.Array
METHODS = ("exact", "hutchinson")


def jacobian_sq_norm(f, xs: Array, *, method: str = "exact", n_probes: int = 8,
                     key: Array | None = None, batch_size: int | None = None) -> Array:
  """mean_i ||J_f(x_i)||_F^2 over xs [N, ...]; f maps one input to a vector."""
  if method == "exact":
    one = lambda x: jnp.sum(jax.jacrev(f)(x) ** 2)
    return jnp.mean(jax.lax.map(one, xs, batch_size=batch_size))
  if method != "hutchinson":
    raise ConfigError(f"unknown Jacobian method {method!r}; valid: {', '.join(METHODS)}")
  if key is None:
    raise ConfigError("method='hutchinson' needs a key")

  def probe(xk):
    x, k = xk
    y, vjp = jax.vjp(f, x)
    g = jax.vmap(vjp)(jax.random.normal(k, (n_probes, *y.shape), y.dtype))[0]
    return jnp.mean(jnp.sum(g.reshape(n_probes, -1) ** 2, axis=-1))

  keys = jax.random.split(key, xs.shape[0])
  return jnp.mean(jax.lax.map(probe, (xs, keys), batch_size=batch_size))


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
                      batch_size: int | None = 32) -> dict[str, Array]:
  """GC, AGOP and per-layer participation ratios of one model on a batch of examples."""
  model = Transformer(cfg)
  v = {"params": params}
  x_NxTxD = model.apply(v, tokens_NxT, method=model.embed)
  logits = lambda x: model.apply(v, x[None], method=model.from_embeddings)[0]
  out = {"geometry/gc": jacobian_sq_norm(logits, x_NxTxD, method=method, n_probes=n_probes,
                                         key=key, batch_size=batch_size)}

  def total_loss(x):
    z = model.apply(v, x, method=model.from_embeddings)
    return jnp.sum(optax.softmax_cross_entropy_with_integer_labels(z, targets_N))

  g = jax.grad(total_loss)(x_NxTxD)
  out.update(agop_stats(g.reshape(g.shape[0], -1)))
  _, sites = model.apply(v, x_NxTxD, method=model.from_embeddings, return_sites=True)
  for l in range(cfg.n_layers):
    h = sites[f"blocks.{l}.resid_post"][:, -1].astype(jnp.float32)
    out[f"geometry/participation/blocks.{l}.resid_post"] = participation_ratio(h)
  return out
