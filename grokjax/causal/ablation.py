"""Head ablation: zero or mean ablation of any set of heads, and cumulative curves.

Ablating head (l, h) replaces its per-head result (after W_O, before the bias) at every
position by 0 (`zero`) or by its mean over the data at that position (`mean`):
result <- (1 - m) * result + m * mean, m = 1 on the ablated heads. The mean is
computed as r_0 + mean_i(r_i - r_0), r_0 the first example's result, which is exact
when the head's output is the same on every example and better conditioned otherwise.

A cumulative ablation curve removes heads one after another in a given order and
records accuracy (and loss) after each removal: in order of causal importance
(|patching effect| descending) and in several random orders. Every ablation set is one
world; worlds and examples are run as batched, chunked passes (`worlds.py`).

>>> import jax, jax.numpy as jnp
>>> from grokjax.config import MODEL_PRESETS
>>> from grokjax.model import init_params
>>> from grokjax import tasks
>>> cfg = MODEL_PRESETS["tiny"]
>>> params = init_params(cfg, jax.random.key(0))
>>> inputs, targets = tasks.make_task("add", 97)
>>> masks = jnp.zeros((3, 2, 2), bool).at[1, 0, 0].set(True).at[2].set(True)
>>> ablate(params, cfg, inputs[:64], targets[:64], masks)["accuracy"].shape
(3,)
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import optax

from grokjax.causal import worlds
from grokjax.config import ModelConfig
from grokjax.errors import ConfigError
from grokjax.model import Intervention, Transformer

Array = jax.Array
MODES = ("zero", "mean")


def head_means(params, cfg: ModelConfig, inputs_NxT: Array, *,
               max_batch: int | None = None) -> Array:
  """Each head's mean result over the inputs at each position, [L, T, H, D].

  Computed with the pruned forward pass, so the last layer's mean is that of the answer
  position (broadcast to every position; the other positions of the last layer never
  reach the output).
  """
  model = Transformer(cfg)
  inputs = jnp.asarray(inputs_NxT)
  T = inputs.shape[1]
  max_batch = max_batch or worlds.default_max_batch(cfg)

  def results(x_BxT):
    _, sites = model.apply({"params": params}, x_BxT, return_sites=True)
    return [sites[f"blocks.{l}.attn.result"] for l in range(cfg.n_layers)]  # [B, Q, H, D]

  first = results(inputs[:1])
  shifted = worlds.chunked_map(
      lambda x: [r - f for r, f in zip(results(x), first)], inputs, max_batch)
  means = [f[0] + s.mean(0) for f, s in zip(first, shifted)]
  return jnp.stack([jnp.broadcast_to(m, (T, *m.shape[1:])) for m in means])


def _check_mode(mode: str) -> None:
  if mode not in MODES:
    raise ConfigError(f"unknown ablation mode {mode!r}; valid: {', '.join(MODES)}")


def ablation_per_example(params, cfg: ModelConfig, inputs_NxT: Array, targets_N: Array,
                         masks_WxLxH: Array, *, mode: str = "zero", means: Array | None = None,
                         max_batch: int | None = None) -> tuple[Array, Array]:
  """(loss [W, N], correct [W, N]) with the heads of each world's mask ablated.

  `means` [L, T, H, D] is required for mode 'mean' (see `head_means`). Pure, jittable.
  """
  _check_mode(mode)
  if mode == "mean" and means is None:
    raise ConfigError("mean ablation needs the heads' means (head_means)")
  max_batch = max_batch or worlds.default_max_batch(cfg)
  model = Transformer(cfg)
  masks = jnp.asarray(masks_WxLxH, bool)
  data = (jnp.asarray(inputs_NxT), jnp.asarray(targets_N))
  _, ex_chunk = worlds.balanced_chunk(data[1].shape[0], max_batch)
  world_chunk = max(1, max_batch // ex_chunk)

  def examples(xy):
    x, y = xy
    b = x.shape[0]

    def run(m_CxLxH):
      c = m_CxLxH.shape[0]
      m = jnp.swapaxes(m_CxLxH, 0, 1)[:, :, None, None, :]  # [L, c, 1, 1, H]
      scale = jnp.broadcast_to(jnp.where(m, 0.0, 1.0), (m.shape[0], c, b, 1, m.shape[-1]))
      add = None
      if mode == "mean":
        add = jnp.where(m[..., None], means[:, None, None], 0.0)  # [L, c, 1, T, H, D]
        add = jnp.broadcast_to(add, (add.shape[0], c, b, *add.shape[3:]))
        add = add.reshape(add.shape[0], c * b, *add.shape[3:])
      iv = Intervention(scale=scale.reshape(scale.shape[0], c * b, 1, -1), add=add)
      logits = model.apply({"params": params}, jnp.tile(x, (c, 1)), intervention=iv)
      yy = jnp.tile(y, c)
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, yy)
      return loss.reshape(c, b), (jnp.argmax(logits, -1) == yy).reshape(c, b)

    loss, correct = worlds.chunked_map(run, masks, world_chunk)  # [W, b]
    return loss.T, correct.T

  loss, correct = worlds.chunked_map(examples, data, ex_chunk)  # [N, W]
  return loss.T, correct.T


def ablate(params, cfg: ModelConfig, inputs_NxT, targets_N, masks_WxLxH, *, mode: str = "zero",
           means: Array | None = None, max_batch: int | None = None) -> dict[str, Array]:
  """Mean loss and accuracy for each world's ablation set: {'loss': [W], 'accuracy': [W]}."""
  loss, correct = ablation_per_example(params, cfg, inputs_NxT, targets_N, masks_WxLxH,
                                       mode=mode, means=means, max_batch=max_batch)
  return {"loss": loss.mean(1), "accuracy": correct.mean(1, dtype=jnp.float32)}


def n_ablated_grid(n_heads: int, points: int | None) -> list[int]:
  """0..n_heads, or about `points` evenly spaced counts including both ends."""
  if points is None or points >= n_heads + 1:
    return list(range(n_heads + 1))
  if points < 2:
    raise ConfigError(f"an ablation curve needs at least 2 points, got {points}")
  return sorted({round(i * n_heads / (points - 1)) for i in range(points)})


def cumulative_masks(order_K: Array, n_ablated: list[int], cfg: ModelConfig) -> Array:
  """[len(n_ablated), L, H]: mask k ablates the first n_ablated[k] heads of `order`
  (flat indices l * H + h)."""
  rank = jnp.zeros_like(order_K).at[order_K].set(jnp.arange(order_K.shape[0]))
  masks = rank[None, :] < jnp.asarray(n_ablated)[:, None]
  return masks.reshape(len(n_ablated), cfg.n_layers, cfg.n_heads)


def ablation_curves(params, cfg: ModelConfig, inputs_NxT, targets_N, importance_LxH: Array, *,
                    key: Array, n_random: int = 5, mode: str = "zero", points: int | None = None,
                    max_batch: int | None = None) -> dict[str, Array]:
  """Accuracy and loss as heads are ablated cumulatively, by importance and at random.

  Importance order: |importance| descending (ties by head index). Returns
  'n_ablated' [P], 'importance/{accuracy,loss}' [P], 'random/{accuracy,loss}' [n_random, P].
  Mean ablation uses the means over `inputs`. Pure, jittable (static: cfg, n_random,
  mode, points, max_batch).
  """
  _check_mode(mode)
  K = cfg.n_layers * cfg.n_heads
  ns = n_ablated_grid(K, points)
  order = jnp.argsort(-jnp.abs(jnp.asarray(importance_LxH).reshape(K)), stable=True)
  randoms = jax.vmap(lambda k: jax.random.permutation(k, K))(jax.random.split(key, n_random))
  masks = jnp.concatenate([cumulative_masks(o, ns, cfg) for o in [order, *randoms]])
  means = head_means(params, cfg, inputs_NxT, max_batch=max_batch) if mode == "mean" else None
  out = ablate(params, cfg, inputs_NxT, targets_N, masks, mode=mode, means=means,
               max_batch=max_batch)
  P = len(ns)
  return {
      "n_ablated": jnp.asarray(ns),
      "importance/accuracy": out["accuracy"][:P], "importance/loss": out["loss"][:P],
      "random/accuracy": out["accuracy"][P:].reshape(n_random, P),
      "random/loss": out["loss"][P:].reshape(n_random, P),
  }


@functools.lru_cache(maxsize=32)
def _compiled(cfg_items: tuple, n_random: int, mode: str, points: int | None, max_batch: int,
              over_runs: bool):
  cfg = ModelConfig(**dict(cfg_items))

  def fn(params, inputs, targets, importance, key_data):
    return ablation_curves(params, cfg, inputs, targets, importance,
                           key=jax.random.wrap_key_data(key_data), n_random=n_random,
                           mode=mode, points=points, max_batch=max_batch)

  return jax.jit(jax.vmap(fn) if over_runs else fn)


def curves_fn(cfg: ModelConfig, *, n_random: int = 5, mode: str = "zero",
              points: int | None = None, max_batch: int | None = None, over_runs: bool = False):
  """A cached, jitted `(params, inputs, targets, importance, key_data) -> curves`
  (`key_data` = jax.random.key_data(key)); with over_runs, vmapped over all five."""
  _check_mode(mode)
  n_ablated_grid(cfg.n_layers * cfg.n_heads, points)
  max_batch = max_batch or worlds.default_max_batch(cfg)
  return _compiled(tuple(sorted(dataclasses.asdict(cfg).items())), n_random, mode, points,
                   int(max_batch), over_runs)
