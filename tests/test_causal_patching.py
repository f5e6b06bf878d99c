"""Activation patching: exact zeros where nothing changes, batched == one head at a time."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grokjax.causal import patching, worlds
from grokjax.causal.pairs import Pairs, sample_pairs
from grokjax.config import MODEL_PRESETS
from grokjax.errors import ConfigError
from grokjax.model import Intervention, Transformer, init_params

P = 11
CFG = dataclasses.replace(MODEL_PRESETS["tiny"], vocab_size=P + 2)
HEADS = worlds.check_heads(CFG, None)
MAX_BATCH = 8  # per_pair_fn: small, so that pairs (12 -> 2 chunks) and worlds are chunked




def random_params(cfg, seed: int):
  """Random parameters of the model's shapes (numpy; avoids compiling the initialiser)."""
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(lambda: init_params(cfg, jax.random.key(0)))

  def draw(path, s):
    name = str(getattr(path[-1], "key", path[-1]))
    if name == "scale":
      return jnp.asarray(1.0 + 0.1 * rng.standard_normal(s.shape), jnp.float32)
    std = 1.0 if name in ("embedding", "pos_embed") else 0.4
    return jnp.asarray(std * rng.standard_normal(s.shape), jnp.float32)

  return jax.tree_util.tree_map_with_path(draw, shapes)


@pytest.fixture(scope="module")
def params():
  return random_params(CFG, 0)


@pytest.fixture(scope="module")
def pairs():
  return sample_pairs("add", P, 12, key=jax.random.key(1))


@functools.lru_cache
def per_pair_fn(positions):
  masks = worlds.single_head_masks(CFG, HEADS)
  return jax.jit(lambda p, pr: patching.patch_pairs(p, CFG, pr, masks, positions=positions,
                                                    max_batch=MAX_BATCH))


def effects(params, pairs, positions="answer", heads=None):
  fn = patching.patching_fn(CFG, heads=heads, positions=positions)  # one chunk: fast compile
  return jax.tree.map(np.asarray, fn(params, Pairs(*map(jnp.asarray, pairs))))


def zero_head(params, l, h):
  """The same params with head (l, h)'s output projection W_O[h] set to zero."""
  def edit(path, a):
    name = "/".join(str(getattr(k, "key", k)) for k in path)
    return a.at[h].set(0.0) if name == f"blocks_{l}/attn/out_kernel" else a
  return jax.tree_util.tree_map_with_path(edit, params)


@pytest.mark.parametrize("positions", ["answer", "all"])
def test_clean_equals_corrupted_gives_exactly_zero_effect(params, pairs, positions):
  same = Pairs(pairs.clean, pairs.clean, pairs.clean_answer, pairs.corrupt_answer)
  v = per_pair_fn(positions)(params, same)
  np.testing.assert_array_equal(v.logit_diff,
                                np.broadcast_to(v.logit_diff[:, :1], v.logit_diff.shape))
  np.testing.assert_array_equal(v.prob, np.broadcast_to(v.prob[:, :1], v.prob.shape))
  assert np.ptp(np.asarray(v.logit_diff[:, 0])) > 0  # the measured quantity is not trivially 0
  e = patching.summarize(v, CFG, HEADS)
  np.testing.assert_array_equal(e["logit_diff/mean"], 0.0)
  np.testing.assert_array_equal(e["prob/mean"], 0.0)


def test_head_with_zero_output_projection_has_exactly_zero_effect(params, pairs):
  e = effects(zero_head(zero_head(params, 0, 1), 1, 0), pairs)
  for name in ("logit_diff", "prob", "recovered"):
    assert e[f"{name}/mean"][0, 1] == 0.0 and e[f"{name}/mean"][1, 0] == 0.0
    assert e[f"{name}/mean"][0, 0] != 0.0 and e[f"{name}/mean"][1, 1] != 0.0


@jax.jit
def reference_one_head(params, pairs, l, h, at_T):
  """Patch head (l, h) at the positions `at_T` marks by replacement (scale 0, add the
  corrupted result): one plain forward pass per head."""
  model = Transformer(CFG)
  _, sites = model.apply({"params": params}, pairs.corrupt, return_sites=True, prune=False)
  corrupt = jnp.stack([sites[f"blocks.{i}.attn.result"] for i in range(CFG.n_layers)])
  hit = ((jnp.arange(CFG.n_layers) == l)[:, None, None, None] & at_T[None, None, :, None]
         & (jnp.arange(CFG.n_heads) == h))  # [L, 1, T, H]
  scale = jnp.where(hit, 0.0, 1.0)
  add = jnp.where(hit[..., None], corrupt, 0.0)
  logits = model.apply({"params": params}, pairs.clean, intervention=Intervention(scale, add))
  rows = jnp.arange(logits.shape[0])
  prob = jax.nn.softmax(logits)[rows, pairs.clean_answer]
  return logits[rows, pairs.corrupt_answer] - logits[rows, pairs.clean_answer], prob


@pytest.mark.parametrize("positions", ["answer", "all"])
def test_batched_equals_one_head_at_a_time(params, pairs, positions):
  v = per_pair_fn(positions)(params, pairs)
  T = pairs.clean.shape[1]
  at = jnp.arange(T) == T - 1 if positions == "answer" else jnp.ones(T, bool)
  for k, (l, h) in enumerate(HEADS):
    ld, prob = reference_one_head(params, Pairs(*map(jnp.asarray, pairs)), l, h, at)
    np.testing.assert_allclose(v.logit_diff[:, 1 + k], ld, atol=2e-5)
    np.testing.assert_allclose(v.prob[:, 1 + k], prob, rtol=1e-4, atol=1e-7)
    assert np.abs(v.logit_diff[:, 1 + k] - v.logit_diff[:, 0]).max() > 1e-4  # the patch acts


def test_summary_is_mean_se_and_ratio_of_means(params, pairs):
  # per_pair_fn runs in chunks, `effects` in one pass: chunking changes nothing either
  v = jax.tree.map(np.asarray, per_pair_fn("answer")(params, pairs))
  e = effects(params, pairs)
  eff = v.logit_diff[:, 1:] - v.logit_diff[:, :1]
  gap = v.logit_diff_corrupt - v.logit_diff[:, 0]
  n = eff.shape[0]
  grid = lambda x: x.reshape(CFG.n_layers, CFG.n_heads)
  np.testing.assert_allclose(e["logit_diff/mean"], grid(eff.mean(0)), rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(e["logit_diff/se"], grid(eff.std(0, ddof=1) / np.sqrt(n)), rtol=1e-4)
  ratio = eff.mean(0) / gap.mean()
  np.testing.assert_allclose(e["recovered/mean"], grid(ratio), rtol=1e-4)
  # delta-method SE equals the SE of the linearised per-pair values (A - R B) / mean B
  lin = (eff - ratio * gap[:, None]) / gap.mean()
  np.testing.assert_allclose(e["recovered/se"], grid(lin.std(0, ddof=1) / np.sqrt(n)), rtol=1e-3)
  prob_eff = v.prob[:, 1:] - v.prob[:, :1]
  np.testing.assert_allclose(e["prob/mean"], grid(prob_eff.mean(0)), rtol=1e-4, atol=1e-6)


def test_last_layer_patched_everywhere_equals_answer_position_only(params, pairs):
  a, b = per_pair_fn("answer")(params, pairs), per_pair_fn("all")(params, pairs)
  last = 1 + np.array([k for k, (l, _) in enumerate(HEADS) if l == CFG.n_layers - 1])
  np.testing.assert_allclose(a.logit_diff[:, last], b.logit_diff[:, last], atol=1e-5)
  assert np.abs(a.logit_diff[:, 1:last[0]] - b.logit_diff[:, 1:last[0]]).max() > 1e-4


def test_vmapped_over_runs_equals_each_run_and_subsets_of_heads(params, pairs):
  params2 = random_params(CFG, 7)
  pairs2 = sample_pairs("sub", P, 12, key=jax.random.key(8))
  stack = lambda *t: jax.tree.map(lambda *a: jnp.stack([jnp.asarray(x) for x in a]), *t)
  fn = patching.patching_fn(CFG, heads=((1, 0), (0, 1)), over_runs=True)
  both = fn(stack(params, params2), stack(Pairs(*pairs), Pairs(*pairs2)))
  for k, (p, pr) in enumerate([(params, pairs), (params2, pairs2)]):
    full = effects(p, pr)
    for name, val in full.items():
      got = np.asarray(both[name][k])
      if val.ndim == 2:  # [L, H] grids: NaN where not analysed, equal elsewhere
        assert np.isnan(got[0, 0]) and np.isnan(got[1, 1])
        got, val = got[[1, 0], [0, 1]], val[[1, 0], [0, 1]]
      np.testing.assert_allclose(got, val, rtol=1e-4, atol=1e-6, err_msg=name)


def test_bad_heads_and_positions_raise():
  with pytest.raises(ConfigError, match="out of range"):
    patching.patching_fn(CFG, heads=((2, 0),))
  with pytest.raises(ConfigError, match="out of range"):
    patching.patching_fn(CFG, heads=((0, -1),))
  with pytest.raises(ConfigError, match="duplicate"):
    patching.patching_fn(CFG, heads=((0, 1), (0, 1)))
  with pytest.raises(ConfigError, match="unknown positions"):
    patching.patching_fn(CFG, positions="first")
