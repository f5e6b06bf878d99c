"""Worlds: many edited copies of one forward pass, run as batched, chunked passes.

A *world* is one intervention on the model, described by a boolean head mask
[L, H] (which heads it edits). Patching and ablation evaluate W worlds on B prompts by
tiling the prompts W times along the batch axis, so one compiled forward pass of
batch W*B replaces W*B single passes. `chunked_map` bounds the memory: it splits a
leading axis into equal chunks and runs them one after another with `lax.map`, so the
peak memory is set by the chunk size, not by W or B.

Exactness: on a given backend, identical rows of one batched pass give bitwise
identical outputs, while the same row in passes of different batch sizes may differ
in the last bits. Every quantity that the tests compare exactly (a baseline and its
edited copy) is therefore computed inside the same pass (see `patching.py`).

>>> import jax.numpy as jnp
>>> chunked_map(lambda x: 2 * x, jnp.arange(5.0), chunk=2).tolist()
[0.0, 2.0, 4.0, 6.0, 8.0]
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from grokjax.config import ModelConfig
from grokjax.errors import ConfigError

Array = jax.Array


MEMORY_BUDGET_MIB = 512  # activation memory one forward pass may use, for default chunking


def default_max_batch(cfg: ModelConfig, budget_mib: float = MEMORY_BUDGET_MIB) -> int:
  """Prompts per forward pass whose edit tensors and activations fit `budget_mib`.

  Per prompt and layer: the per-head edit and result [T, H, D] (twice), the residual
  stream and the MLP hidden layer, in float32 — an upper bound (GPT-2-medium's shape:
  about 17 MiB per prompt estimated, 9 MiB measured). Capped at 4096.
  """
  per_prompt = 4 * cfg.seq_len * cfg.n_layers * (
      2 * cfg.n_heads * cfg.d_model + 4 * cfg.d_model + 2 * cfg.d_mlp)
  return int(max(1, min(4096, budget_mib * 2**20 // per_prompt)))


def leading_size(xs) -> int:
  return jax.tree_util.tree_leaves(xs)[0].shape[0]


def balanced_chunk(n: int, chunk: int) -> tuple[int, int]:
  """(number of chunks, chunk size) covering n items with at most `chunk` per chunk and
  the least padding."""
  n_chunks = math.ceil(n / max(1, min(chunk, n)))
  return n_chunks, math.ceil(n / n_chunks)


def chunked_map(fn: Callable, xs, chunk: int):
  """fn over the leading axis of pytree `xs`, `chunk` items per call, results concatenated.

  `fn` maps a pytree with leading axis c to a pytree with leading axis c. The last
  chunk is padded with copies of item 0 (valid inputs, so no NaNs) and the padding is
  dropped from the result.
  """
  n = leading_size(xs)
  n_chunks, size = balanced_chunk(n, chunk)
  pad = n_chunks * size - n

  def split(a):
    a = jnp.concatenate([a, jnp.repeat(a[:1], pad, axis=0)]) if pad else a
    return a.reshape(n_chunks, size, *a.shape[1:])

  xs = jax.tree.map(split, xs)
  if n_chunks == 1:
    ys = jax.tree.map(lambda y: y[None], fn(jax.tree.map(lambda a: a[0], xs)))
  else:
    ys = jax.lax.map(fn, xs)
  return jax.tree.map(lambda y: y.reshape(n_chunks * size, *y.shape[2:])[:n], ys)


def check_heads(cfg: ModelConfig, heads: Sequence[tuple[int, int]] | None) -> list[tuple[int, int]]:
  """The (layer, head) list to analyse (all heads if None); ConfigError if out of range."""
  if heads is None:
    return [(l, h) for l in range(cfg.n_layers) for h in range(cfg.n_heads)]
  heads = [(int(l), int(h)) for l, h in heads]
  if not heads:
    raise ConfigError("the list of heads is empty")
  for l, h in heads:
    if not (0 <= l < cfg.n_layers and 0 <= h < cfg.n_heads):
      raise ConfigError(f"head ({l}, {h}) is out of range: the model has layers "
                        f"0..{cfg.n_layers - 1} and heads 0..{cfg.n_heads - 1}")
  if len(set(heads)) != len(heads):
    raise ConfigError(f"duplicate heads in {heads}")
  return heads


def single_head_masks(cfg: ModelConfig, heads: Sequence[tuple[int, int]]) -> np.ndarray:
  """[1 + K, L, H] bool: the null world (nothing edited), then one world per head."""
  masks = np.zeros((1 + len(heads), cfg.n_layers, cfg.n_heads), bool)
  for k, (l, h) in enumerate(heads):
    masks[1 + k, l, h] = True
  return masks


def to_grid(values_K: Array, cfg: ModelConfig, heads: Sequence[tuple[int, int]]) -> Array:
  """Per-head values [K, ...] scattered into [L, H, ...], NaN for heads not analysed."""
  ls, hs = np.array([l for l, _ in heads]), np.array([h for _, h in heads])
  grid = jnp.full((cfg.n_layers, cfg.n_heads, *values_K.shape[1:]), jnp.nan, values_K.dtype)
  return grid.at[ls, hs].set(values_K)


def layer_results(sites: dict, n_layers: int, last_only: bool) -> Array:
  """Per-head results of every layer, [L, B, Q, H, D]; Q = 1 (answer position) if last_only."""
  res = [sites[f"blocks.{l}.attn.result"] for l in range(n_layers)]
  if last_only:
    res = [r[:, -1:] for r in res]
  return jnp.stack(res)
