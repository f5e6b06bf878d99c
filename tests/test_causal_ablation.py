"""Head ablation: exact invariances, agreement with a plain intervention, curves."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from grokjax import tasks
from grokjax.causal import ablation
from grokjax.config import MODEL_PRESETS
from grokjax.errors import ConfigError
from grokjax.model import Intervention, Transformer
from tests.test_causal_patching import random_params

P = 11
CFG = dataclasses.replace(MODEL_PRESETS["tiny"], vocab_size=P + 2)
L, H = CFG.n_layers, CFG.n_heads
MAX_BATCH = 64  # 110 examples -> 2 chunks
MASKS = np.zeros((4, L, H), bool)  # the four worlds every test uses:
MASKS[1, 0, 1] = True  # head (0, 1)
MASKS[2, 1, 0] = True  # head (1, 0)
MASKS[3] = True  # every head


@pytest.fixture(scope="module")
def params():
  return random_params(CFG, 0)


@pytest.fixture(scope="module")
def data():
  return tuple(map(jnp.asarray, tasks.make_task("mul", P)))


@functools.lru_cache
def per_example(mode):
  return jax.jit(lambda p, x, y, means: ablation.ablation_per_example(
      p, CFG, x, y, MASKS, mode=mode, means=means, max_batch=MAX_BATCH))


means_fn = jax.jit(lambda p, x: ablation.head_means(p, CFG, x, max_batch=MAX_BATCH))


def edit(params, fn):
  """params with fn(name, leaf) applied to each leaf (name = 'blocks_0/attn/out_kernel')."""
  return jax.tree_util.tree_map_with_path(
      lambda path, a: fn("/".join(str(getattr(k, "key", k)) for k in path), a), params)


def test_head_with_zero_output_projection_costs_exactly_nothing(params, data):
  zeroed = edit(params, lambda n, a: a.at[1].set(0.0) if n == "blocks_0/attn/out_kernel" else a)
  means = means_fn(zeroed, data[0])
  np.testing.assert_array_equal(means[0, :, 1], 0.0)
  for mode in ("zero", "mean"):
    loss, correct = per_example(mode)(zeroed, *data, means)
    np.testing.assert_array_equal(loss[1], loss[0])  # world 1 ablates head (0, 1)
    np.testing.assert_array_equal(correct[1], correct[0])
    assert np.abs(loss[2] - loss[0]).max() > 1e-4  # ablating a live head does change the loss


def test_ablating_every_head_equals_removing_attention_outputs(params, data):
  no_attn = edit(params, lambda n, a: jnp.zeros_like(a) if n.endswith("attn/out_kernel") else a)
  means = means_fn(params, data[0])
  loss_all, _ = per_example("zero")(params, *data, means)
  loss_none, _ = per_example("zero")(no_attn, *data, means)
  np.testing.assert_array_equal(loss_all[3], loss_none[0])
  assert np.abs(loss_all[3] - loss_all[0]).max() > 1e-3


def test_mean_ablation_of_a_constant_head_changes_nothing(params, data):
  # Head (1, 0) ignores its input: zero query/key/value kernels (and zero query/key
  # biases) give it a uniform pattern (exactly 1/4 at the answer position) over one value
  # vector, its bias. Small integers and halves keep every sum exact in any order, so
  # its output is bitwise the same for every prompt and in every pass.
  rng = np.random.default_rng(0)
  def constant(n, a):
    if n.startswith("blocks_1/attn/") and n.endswith("kernel") and "out" not in n:
      return a.at[:, 0].set(0.0)
    if n in ("blocks_1/attn/query/bias", "blocks_1/attn/key/bias"):
      return a.at[0].set(0.0)
    if n == "blocks_1/attn/value/bias":
      return a.at[0].set(rng.integers(-2, 3, a.shape[1]).astype(np.float32))
    if n == "blocks_1/attn/out_kernel":
      return a.at[0].set(0.5 * rng.integers(-1, 2, a.shape[1:]).astype(np.float32))
    return a
  p = edit(params, constant)
  _, sites = Transformer(CFG).apply({"params": p}, data[0], return_sites=True)
  head = sites["blocks.1.attn.result"][:, -1, 0]
  np.testing.assert_array_equal(head, jnp.broadcast_to(head[0], head.shape))  # constant
  assert np.abs(head).max() >= 0.5
  means = means_fn(p, data[0])
  np.testing.assert_array_equal(means[1, -1, 0], head[0])
  loss, _ = per_example("mean")(p, *data, means)
  np.testing.assert_array_equal(loss[2], loss[0])  # world 2 mean-ablates head (1, 0)
  assert np.abs(loss[1] - loss[0]).max() > 1e-4  # a varying head is changed by its mean


def test_head_means_are_the_data_means(params, data):
  means = means_fn(params, data[0])
  _, sites = Transformer(CFG).apply({"params": params}, data[0], return_sites=True, prune=False)
  for l in range(L):
    want = np.asarray(sites[f"blocks.{l}.attn.result"]).mean(0)  # [T, H, D]
    got = np.asarray(means[l])
    if l == L - 1:  # pruned last layer: the answer position's mean, at every position
      want = np.broadcast_to(want[-1], want.shape)
    np.testing.assert_allclose(got, want, atol=1e-5)


@jax.jit
def plain_ablation(params, x, y, mask_LxH, means):
  """Loss and correctness with the masked heads replaced by `means`: one plain pass."""
  n, T = x.shape
  m = mask_LxH[:, None, None, :]  # [L, 1, 1, H]
  scale = jnp.broadcast_to(jnp.where(m, 0.0, 1.0), (L, n, T, H))
  add = jnp.where(m[..., None], means[:, None], 0.0)
  logits = Transformer(CFG).apply({"params": params}, x, intervention=Intervention(scale, add))
  return (optax.softmax_cross_entropy_with_integer_labels(logits, y),
          jnp.argmax(logits, -1) == y)


@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_batched_ablation_equals_a_plain_intervention(params, data, mode):
  means = means_fn(params, data[0])
  loss, correct = per_example(mode)(params, *data, means)
  for w in range(4):
    ref_loss, ref_correct = plain_ablation(params, *data, MASKS[w],
                                           means if mode == "mean" else jnp.zeros_like(means))
    np.testing.assert_allclose(loss[w], ref_loss, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(correct[w], ref_correct)


def test_cumulative_masks_and_grid():
  order = jnp.array([3, 0, 2, 1])
  m = np.asarray(ablation.cumulative_masks(order, [0, 1, 2, 4], CFG)).reshape(4, -1)
  np.testing.assert_array_equal(m.sum(1), [0, 1, 2, 4])
  np.testing.assert_array_equal(np.flatnonzero(m[2]), [0, 3])
  assert ablation.n_ablated_grid(4, None) == [0, 1, 2, 3, 4]
  assert ablation.n_ablated_grid(384, 5) == [0, 96, 192, 288, 384]
  with pytest.raises(ConfigError):
    ablation.n_ablated_grid(384, 1)
  with pytest.raises(ConfigError, match="unknown ablation mode"):
    ablation.curves_fn(CFG, mode="resample")


def test_curves_follow_importance_and_share_endpoints(params, data):
  importance = jnp.array([[0.1, -2.0], [0.5, 0.0]])  # order by |.|: (0,1), (1,0), (0,0), (1,1)
  fn = ablation.curves_fn(CFG, n_random=3)
  key = jax.random.key_data(jax.random.key(0))
  c = jax.tree.map(np.asarray, fn(params, *data, importance, key))
  np.testing.assert_array_equal(c["n_ablated"], [0, 1, 2, 3, 4])
  loss, correct = per_example("zero")(params, *data, None)
  np.testing.assert_allclose(c["importance/loss"][0], loss[0].mean(), rtol=1e-6)  # none ablated
  np.testing.assert_allclose(c["importance/loss"][1], loss[1].mean(), rtol=1e-6)  # head (0, 1)
  np.testing.assert_allclose(c["importance/accuracy"][-1], correct[3].mean(), rtol=1e-6)
  for kind in ("loss", "accuracy"):
    np.testing.assert_array_equal(c[f"random/{kind}"][:, 0], c[f"importance/{kind}"][0])
    np.testing.assert_array_equal(c[f"random/{kind}"][:, -1], c[f"importance/{kind}"][-1])
  assert c["random/loss"].shape == (3, 5)
  assert len({tuple(r) for r in c["random/loss"].round(6)}) > 1  # the random orders differ
