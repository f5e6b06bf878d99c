"""Spectral measures of the weight matrices: norms, singular-value entropy and ranks.

For a matrix W with singular values s_1 >= ... >= s_r (r = min(m, n)):
  spectral entropy   H(W) = -sum_i q_i log q_i, q_i = s_i / sum_j s_j (nats; Roy &
                     Vetterli 2007). The paper's "spectral entropy" curves.
  normalised entropy H(W) / log r, in [0, 1] (1: all singular values equal). r is the
                     number of singular values, min(m, n), not a numerical rank, so
                     the value does not jump when a tiny singular value crosses a
                     threshold.
  effective rank     exp H(W), in [1, r].
  stable rank        ||W||_F^2 / ||W||_2^2 = sum_i s_i^2 / s_1^2, in [1, r].
Each is reported per weight matrix (`effective_rank/blocks_0/attn/query`) and as the
mean over all matrices, attention matrices only and embedding matrices only
(`.../all`, `.../attn`, `.../embed`; embeddings are tok_embed, pos_embed, unembed).
`param_norm` is the L2 norm of every parameter, biases and LayerNorm included.

`spectral_summary` is the small subset the sweep records in metrics.csv at every
evaluation; `spectral_measures` is the full lens.

>>> import jax
>>> from grokjax.config import MODEL_PRESETS
>>> from grokjax.model import init_params
>>> m = spectral_summary(init_params(MODEL_PRESETS["tiny"], jax.random.key(0)))
>>> sorted(m)[:2]
['param_norm', 'spectral_entropy/all']
>>> full = spectral_measures(init_params(MODEL_PRESETS["tiny"], jax.random.key(0)))
>>> 1.0 <= float(full["stable_rank/all"]) <= float(full["effective_rank/all"])
True
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from grokjax.model import weight_matrices

STATS = ("spectral_entropy", "spectral_entropy_norm", "effective_rank", "stable_rank")


def param_norm(params) -> jax.Array:
  """Total L2 norm of every parameter, biases and LayerNorm included."""
  leaves = jax.tree_util.tree_leaves(params)
  return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in leaves))


def _entropy(q: jax.Array) -> jax.Array:
  """-sum q log q over the last axis, with 0 log 0 = 0."""
  safe = jnp.where(q > 0, q, 1.0)
  return -jnp.sum(jnp.where(q > 0, q * jnp.log(safe), 0.0), axis=-1)


def singular_value_entropy(w: jax.Array) -> jax.Array:
  """Entropy (nats) of the singular values of a 2-D matrix, normalised to sum to one."""
  s = jnp.linalg.svd(w.astype(jnp.float32), compute_uv=False)
  return _entropy(s / jnp.sum(s))


def matrix_spectrum(w: jax.Array) -> dict[str, jax.Array]:
  """The four STATS of one 2-D matrix from a single SVD."""
  s = jnp.linalg.svd(w.astype(jnp.float32), compute_uv=False)
  h = _entropy(s / jnp.sum(s, axis=-1, keepdims=True))
  return {
      "spectral_entropy": h,
      "spectral_entropy_norm": h / jnp.log(s.shape[-1]),
      "effective_rank": jnp.exp(h),
      "stable_rank": jnp.sum(s**2, axis=-1) / s[..., 0] ** 2,
  }


def is_attention(name: str) -> bool:
  return "/attn/" in name


def is_embedding(name: str) -> bool:
  return name in ("tok_embed", "pos_embed", "unembed")


GROUPS = {"all": lambda k: True, "attn": is_attention, "embed": is_embedding}


def spectral_summary(params) -> dict[str, jax.Array]:
  """param_norm and the mean singular-value entropy over all/attention/embedding matrices."""
  ent = {name: singular_value_entropy(w) for name, w in weight_matrices(params).items()}
  mean = lambda keep: jnp.mean(jnp.stack([v for k, v in ent.items() if keep(k)]))
  return {
      "param_norm": param_norm(params),
      "spectral_entropy/all": mean(lambda k: True),
      "spectral_entropy/attn": mean(is_attention),
      "spectral_entropy/embed": mean(is_embedding),
  }


def spectral_measures(params, *, per_matrix: bool = True) -> dict[str, jax.Array]:
  """param_norm, and every STAT per matrix and averaged over the GROUPS of matrices."""
  per = {name: matrix_spectrum(w) for name, w in weight_matrices(params).items()}
  out = {"param_norm": param_norm(params)}
  for stat in STATS:
    for group, keep in GROUPS.items():
      out[f"{stat}/{group}"] = jnp.mean(jnp.stack([v[stat] for k, v in per.items() if keep(k)]))
    if per_matrix:
      out.update({f"{stat}/{name}": v[stat] for name, v in per.items()})
  return out
