"""Hidden states at the answer position, and their PCA and t-SNE maps.

The residual stream at the answer (last) position is read after the embedding and
after each block (`embed`, `blocks.{l}` for l = 0..L-1: the model's
`blocks.{l}.resid_post` site) for every example of a task, and the number-token
embedding rows are taken as a second kind of point cloud. Both are mapped to two
dimensions:

  PCA    in JAX: the centred points' top principal axes by SVD, their coordinates and
         each axis's share of the variance (`explained`). Jittable and vmappable, so a
         stacked runs axis or a stack of checkpoints maps in one call.
  t-SNE  scikit-learn's `sklearn.manifold.TSNE` (the optional `tsne` extra:
         `pip install -e .[tsne]`), on the host, seeded; it is neither jittable nor
         linear, so it is offered for the figures, not as a measure.

Points are coloured in the figures by the answer and by x; `hidden_states` returns
both beside the coordinates' inputs.

>>> import jax, jax.numpy as jnp
>>> angle = 2 * jnp.pi * jnp.arange(12) / 12
>>> circle = jnp.stack([jnp.cos(angle), jnp.sin(angle), jnp.zeros(12)], axis=1)
>>> pc = pca(circle @ jax.random.orthogonal(jax.random.key(0), 3))
>>> bool(jnp.allclose(jnp.linalg.norm(pc["coords"], axis=1), 1.0, atol=1e-5))
True
"""

from __future__ import annotations

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np

from grokjax import tasks
from grokjax.config import ModelConfig
from grokjax.errors import ConfigError
from grokjax.model import Transformer

Array = jax.Array


def pca(points_NxD: Array, n_components: int = 2) -> dict[str, Array]:
  """Coordinates of the centred points on their top principal axes, and each axis's share.

  coords [N, n_components]; axes [n_components, D] (unit rows); explained
  [n_components]: the share of the total variance on each axis (summing to at most 1).
  The sign of each axis is fixed so that its largest-magnitude entry is positive, which
  makes the map deterministic across checkpoints.
  """
  centred = points_NxD - points_NxD.mean(axis=0)
  _, s, vt = jnp.linalg.svd(centred, full_matrices=False)
  axes = vt[:n_components]
  sign = jnp.sign(jnp.take_along_axis(axes, jnp.abs(axes).argmax(axis=1)[:, None], axis=1))
  axes = axes * jnp.where(sign == 0, 1.0, sign)
  power = s ** 2
  return {"coords": centred @ axes.T, "axes": axes,
          "explained": power[:n_components] / jnp.maximum(power.sum(), 1e-30)}


def answer_states(cfg: ModelConfig, params, tokens_BxT: Array) -> dict[str, Array]:
  """The residual stream at the answer position: 'embed' and 'blocks.{l}', each [B, D]."""
  _, sites = Transformer(cfg).apply({"params": params}, tokens_BxT, return_sites=True)
  out = {"embed": sites["embed"][:, -1]}
  for l in range(cfg.n_layers):
    out[f"blocks.{l}"] = sites[f"blocks.{l}.resid_post"][:, -1]
  return {k: v.astype(jnp.float32) for k, v in out.items()}


def examples(op: str, p: int, n: int | None = None, *, seed: int = 0):
  """Inputs of the task (all, or n drawn without replacement) with their x and answers."""
  inputs, targets = tasks.make_task(op, p)
  if n is not None:
    if not 0 < n <= len(inputs):
      raise ConfigError(f"n must be in 1..{len(inputs)} for {op} mod {p}, got {n}")
    keep = np.sort(np.random.default_rng(seed).choice(len(inputs), n, replace=False))
    inputs, targets = inputs[keep], targets[keep]
  return inputs, inputs[:, 0], targets


def hidden_maps(cfg: ModelConfig, params, tokens_BxT: Array, p: int,
                n_components: int = 2) -> dict[str, Array]:
  """PCA coordinates of every hidden state and of the number embedding, with their shares.

  Keys: `hidden/{site}/coords` [B, n_components] and `hidden/{site}/explained`, for
  site in embed, blocks.0, ...; `hidden/tok_embed/coords` [p, n_components] for the
  number-token embedding rows (row x is number x).
  """
  out = {}
  for site, states in answer_states(cfg, params, tokens_BxT).items():
    pc = pca(states, n_components)
    out[f"hidden/{site}/coords"], out[f"hidden/{site}/explained"] = pc["coords"], pc["explained"]
  pc = pca(params["tok_embed"]["embedding"][:p].astype(jnp.float32), n_components)
  out["hidden/tok_embed/coords"], out["hidden/tok_embed/explained"] = pc["coords"], pc["explained"]
  return out


def tsne(points_NxD, *, seed: int, perplexity: float = 30.0) -> np.ndarray:
  """scikit-learn's Barnes-Hut t-SNE map [N, 2] of the points, seeded (host numpy)."""
  if importlib.util.find_spec("sklearn") is None:
    raise ConfigError("t-SNE needs scikit-learn: pip install -e .[tsne]")
  from sklearn.manifold import TSNE

  points = np.asarray(points_NxD, dtype=np.float64)
  if not 1 <= perplexity < len(points):
    raise ConfigError(f"perplexity must be in [1, {len(points)}) for {len(points)} points, "
                      f"got {perplexity}")
  return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed
              ).fit_transform(points)
