"""Spectral measures of the weight matrices: norms and singular-value entropy.

For a matrix W with singular values s_i, the spectral entropy is
H(W) = -sum_i q_i log q_i with q_i = s_i / sum_j s_j (Roy & Vetterli 2007); its
exponential is the effective rank, and H / log(rank) lies in [0, 1]. The sweep
records three aggregates of H (mean over matrices) in metrics.csv — all matrices,
attention matrices only, embedding matrices only — the paper's three curves.

>>> import jax
>>> from grokjax.config import MODEL_PRESETS
>>> from grokjax.model import init_params
>>> m = spectral_summary(init_params(MODEL_PRESETS["tiny"], jax.random.key(0)))
>>> sorted(m)[:2]
['param_norm', 'spectral_entropy/all']
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from grokjax.model import weight_matrices


def param_norm(params) -> jax.Array:
  """Total L2 norm of every parameter, biases and LayerNorm included."""
  leaves = jax.tree_util.tree_leaves(params)
  return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in leaves))


def singular_value_entropy(w: jax.Array) -> jax.Array:
  """Entropy (nats) of the singular values of a 2-D matrix, normalised to sum to one."""
  s = jnp.linalg.svd(w.astype(jnp.float32), compute_uv=False)
  q = s / jnp.sum(s)
  return -jnp.sum(jnp.where(q > 0, q * jnp.log(jnp.where(q > 0, q, 1.0)), 0.0))


def is_attention(name: str) -> bool:
  return "/attn/" in name


def is_embedding(name: str) -> bool:
  return name in ("tok_embed", "pos_embed", "unembed")


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
