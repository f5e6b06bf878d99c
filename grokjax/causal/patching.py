"""Activation patching per attention head (causal mediation), batched over worlds.

For a pair (clean prompt c with answer a, corrupted prompt c' with answer a') and a
head (l, h), the patched run is the clean prompt with that head's output (its per-head
result after W_O, before the bias) at the answer position replaced by its output on
c'. With LD = logit[a'] - logit[a] (the paper's logit difference) three effects are
reported, each averaged over pairs with its standard error:

  logit_diff  LD(patched) - LD(clean)                 the paper's metric
  prob        P(a | patched) - P(a | clean)            change in the clean answer's probability
  recovered   mean_i[LD_i(patched) - LD_i(clean)] / mean_i[LD_i(corrupt) - LD_i(clean)]

`recovered` is a ratio of means (per-pair ratios explode where a pair's gap is near
zero); its standard error is the delta-method one,
SE^2 = (Var A - 2 R Cov(A, B) + R^2 Var B) / (n mean(B)^2) for R = mean A / mean B.
Standard errors of means use the sample standard deviation (ddof = 1) / sqrt(n).

How it runs: one pass over clean and corrupted prompts (the same batch) records
every head's result r and r'; the patch adds r' - r to the head's result, which is the
replacement up to float rounding and exactly nothing when r' = r. The worlds — an
unedited null world, then one world per head — and the pairs are tiled into one batch
and run in chunks (`max_batch` prompts per forward pass); the null world sits in the
same pass as the patched ones, so a patch that changes nothing has exactly zero
effect. `positions='all'` patches the head at every position instead. The default chunk
(`worlds.default_max_batch`) keeps a pass's activations near 512 MiB: all prompts of
the paper model at once, ~30 prompts per pass for GPT-2-medium's shape.

>>> import jax
>>> from grokjax.config import MODEL_PRESETS
>>> from grokjax.model import init_params
>>> from grokjax.causal.pairs import sample_pairs
>>> cfg = MODEL_PRESETS["tiny"]                      # vocab 99: p = 97
>>> params = init_params(cfg, jax.random.key(0))
>>> pairs = sample_pairs("add", 97, 16, key=jax.random.key(1))
>>> out = patch_heads(params, cfg, pairs)
>>> out["logit_diff/mean"].shape                     # [layers, heads]
(2, 2)
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp

from grokjax.causal import worlds
from grokjax.causal.pairs import Pairs
from grokjax.config import ModelConfig
from grokjax.errors import ConfigError
from grokjax.model import Intervention, Transformer

Array = jax.Array
POSITIONS = ("answer", "all")
METRICS = ("logit_diff", "prob", "recovered")


class PairValues(NamedTuple):
  """Raw per-pair values of the clean prompt in each world (world 0 unedited)."""

  logit_diff: Array  # [n, W] logit[a'] - logit[a]
  prob: Array  # [n, W] P(a)
  logit_diff_corrupt: Array  # [n] LD of the corrupted prompt, unedited


def _answer_values(logits_BxV: Array, clean_answer: Array, corrupt_answer: Array):
  """(LD, P(clean answer)) for logits [..., B, V] and answers [B]."""
  a_shape = (1,) * (logits_BxV.ndim - 1 - clean_answer.ndim) + clean_answer.shape + (1,)
  take = lambda a: jnp.take_along_axis(logits_BxV, a.reshape(a_shape), axis=-1)[..., 0]
  ld = take(corrupt_answer) - take(clean_answer)
  prob = jnp.exp(take(clean_answer) - jax.nn.logsumexp(logits_BxV, axis=-1))
  return ld, prob


def _pair_chunk(model, params, pairs: Pairs, masks_WxLxH: Array, positions: str,
                world_chunk: int):
  """PairValues for one chunk of b pairs and all W worlds."""
  b, T = pairs.clean.shape
  last_only = positions == "answer"
  both = jnp.concatenate([pairs.clean, pairs.corrupt])
  logits, sites = model.apply({"params": params}, both, return_sites=True, prune=last_only)
  res = worlds.layer_results(sites, model.cfg.n_layers, last_only)  # [L, 2b, Q, H, D]
  delta = res[:, b:] - res[:, :b]  # [L, b, Q, H, D]
  at = jnp.arange(T) == T - 1 if last_only else jnp.ones(T, bool)

  def run(m_CxLxH):
    c = m_CxLxH.shape[0]
    edit = jnp.swapaxes(m_CxLxH, 0, 1)[:, :, None, None, :, None] & at[:, None, None]
    add = jnp.where(edit, delta[:, None], 0.0)  # [L, c, b, T, H, D]
    add = add.reshape(add.shape[0], c * b, *add.shape[3:])
    out = model.apply({"params": params}, jnp.tile(pairs.clean, (c, 1)),
                      intervention=Intervention(add=add))
    ld, prob = _answer_values(out.reshape(c, b, -1), pairs.clean_answer, pairs.corrupt_answer)
    return ld, prob

  ld, prob = worlds.chunked_map(run, masks_WxLxH, world_chunk)  # [W, b] each
  ld_corrupt, _ = _answer_values(logits[b:], pairs.clean_answer, pairs.corrupt_answer)
  return PairValues(ld.T, prob.T, ld_corrupt)


def patch_pairs(params, cfg: ModelConfig, pairs: Pairs, masks_WxLxH: Array, *,
                positions: str = "answer", max_batch: int | None = None) -> PairValues:
  """Per-pair values in each world; a world patches the heads its [L, H] mask marks.

  Pure and jittable. At most `max_batch` prompts (default: `worlds.default_max_batch`)
  go through one forward pass: pairs are taken in chunks of min(n, max_batch) and
  worlds in chunks of max_batch // that.
  """
  max_batch = max_batch or worlds.default_max_batch(cfg)
  if positions not in POSITIONS:
    raise ConfigError(f"unknown positions {positions!r}; valid: {', '.join(POSITIONS)}")
  model = Transformer(cfg)
  pairs = Pairs(*(jnp.asarray(a) for a in pairs))
  masks = jnp.asarray(masks_WxLxH, bool)
  n = pairs.clean.shape[0]
  _, pair_chunk = worlds.balanced_chunk(n, max_batch)
  world_chunk = max(1, max_batch // pair_chunk)
  return worlds.chunked_map(
      lambda chunk: _pair_chunk(model, params, chunk, masks, positions, world_chunk),
      pairs, pair_chunk)


def _mean_se(x_NxK: Array) -> tuple[Array, Array]:
  n = x_NxK.shape[0]
  return x_NxK.mean(0), x_NxK.std(0, ddof=1) / jnp.sqrt(n)


def summarize(values: PairValues, cfg: ModelConfig,
              heads: Sequence[tuple[int, int]]) -> dict[str, Array]:
  """Means and standard errors over pairs, as [L, H] grids (NaN where not analysed).

  `values` must come from `worlds.single_head_masks(cfg, heads)`: world 0 unedited,
  world 1 + k patches heads[k].
  """
  ld, prob = values.logit_diff, values.prob
  eff_ld, eff_prob = ld[:, 1:] - ld[:, :1], prob[:, 1:] - prob[:, :1]  # [n, K]
  gap = (values.logit_diff_corrupt - ld[:, 0])[:, None]  # [n, 1]
  n = ld.shape[0]
  ratio = eff_ld.mean(0) / gap.mean(0)
  cov = lambda a, b: jnp.sum((a - a.mean(0)) * (b - b.mean(0)), 0) / (n - 1)
  var_r = (cov(eff_ld, eff_ld) - 2 * ratio * cov(eff_ld, gap) + ratio**2 * cov(gap, gap))
  out = {}
  for name, (mean, se) in {
      "logit_diff": _mean_se(eff_ld),
      "prob": _mean_se(eff_prob),
      "recovered": (ratio, jnp.sqrt(jnp.maximum(var_r, 0.0) / n) / jnp.abs(gap.mean(0))),
  }.items():
    out[f"{name}/mean"] = worlds.to_grid(mean, cfg, heads)
    out[f"{name}/se"] = worlds.to_grid(se, cfg, heads)
  out["baseline/logit_diff_clean"] = ld[:, 0].mean()
  out["baseline/logit_diff_corrupt"] = values.logit_diff_corrupt.mean()
  out["baseline/prob_clean"] = prob[:, 0].mean()
  return out


def patch_effects(params, cfg: ModelConfig, pairs: Pairs, *, heads=None,
                  positions: str = "answer", max_batch: int | None = None) -> dict[str, Array]:
  """All three effects per head, [L, H] means and standard errors (pure, jittable)."""
  heads = worlds.check_heads(cfg, heads)
  masks = worlds.single_head_masks(cfg, heads)
  values = patch_pairs(params, cfg, pairs, masks, positions=positions, max_batch=max_batch)
  return summarize(values, cfg, heads)


@functools.lru_cache(maxsize=32)
def _compiled(cfg_items: tuple, heads: tuple | None, positions: str, max_batch: int,
              over_runs: bool):
  cfg = ModelConfig(**dict(cfg_items))

  def fn(params, pairs):
    return patch_effects(params, cfg, pairs, heads=heads, positions=positions,
                         max_batch=max_batch)

  if over_runs:
    fn = jax.vmap(fn)
  return jax.jit(fn)


def patching_fn(cfg: ModelConfig, *, heads=None, positions: str = "answer",
                max_batch: int | None = None, over_runs: bool = False):
  """A cached, jitted `(params, pairs) -> effects`; with over_runs, vmapped over a
  leading runs axis of both params and pairs."""
  worlds.check_heads(cfg, heads)
  if positions not in POSITIONS:
    raise ConfigError(f"unknown positions {positions!r}; valid: {', '.join(POSITIONS)}")
  key_heads = None if heads is None else tuple((int(l), int(h)) for l, h in heads)
  max_batch = max_batch or worlds.default_max_batch(cfg)
  return _compiled(tuple(sorted(dataclasses.asdict(cfg).items())), key_heads, positions,
                   int(max_batch), over_runs)


def patch_heads(params, cfg: ModelConfig, pairs: Pairs, *, heads=None,
                positions: str = "answer", max_batch: int | None = None) -> dict[str, Array]:
  """`patch_effects` compiled once per (cfg, heads, positions, max_batch)."""
  fn = patching_fn(cfg, heads=heads, positions=positions, max_batch=max_batch)
  return fn(params, Pairs(*(jnp.asarray(a) for a in pairs)))
