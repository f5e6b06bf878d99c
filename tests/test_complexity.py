"""Complexity lens: quantisation, BDM == pybdm exactly, fallback counts, block-gzip."""

import collections
import gzip
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grokjax.config import MODEL_PRESETS
from grokjax.errors import ConfigError
from grokjax.measures import complexity as cx
from grokjax.model import init_params

pybdm = cx.import_pybdm()
from pybdm.encoding import normalize_key, string_from_array  # noqa: E402
from pybdm.exceptions import BDMRuntimeWarning  # noqa: E402


def random_params(cfg, seed):
  """A parameter tree of the model's shapes filled with N(0, 0.5^2) (no init compile)."""
  shapes = jax.eval_shape(lambda: init_params(cfg, jax.random.key(0)))
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: jnp.asarray(0.5 * rng.normal(size=s.shape), s.dtype), shapes)


def rand_codes(shape, seed=0, levels=4):
  return np.random.default_rng(seed).integers(0, levels, shape).astype(np.int8)


def test_quantise_matches_the_authors_rule():
  w = np.random.default_rng(0).normal(size=(12, 20)).astype(np.float32)
  q = np.asarray(jax.jit(cx.quantise)(jnp.asarray(w)))
  want = np.digitize(w, np.quantile(w, [0.25, 0.5, 0.75]))
  np.testing.assert_array_equal(q, want)
  assert np.bincount(q.reshape(-1)).tolist() == [60, 60, 60, 60]
  edges = np.linspace(w.min(), w.max(), 5)[1:-1]
  np.testing.assert_array_equal(cx.quantise(jnp.asarray(w), method="uniform"),
                                np.digitize(w, edges))
  np.testing.assert_array_equal(cx.quantise(jnp.full((4, 4), 0.3)), np.zeros((4, 4)))
  with pytest.raises(ConfigError, match="method"):
    cx.quantise(jnp.asarray(w), method="kmeans")


@pytest.mark.parametrize("x", [
    np.random.default_rng(2).normal(size=(13, 17)),
    np.random.default_rng(3).integers(-3, 4, size=300),  # ties
    [0.0, -0.0, 1.0, -1.0, 3.0, -5.0, 2.0, 2.0, np.inf, -np.inf, 1e-42, -1e-42],
    1e-30 * np.random.default_rng(4).normal(size=200)])
def test_order_statistics_equal_a_sort_at_every_rank(x):
  x = np.asarray(x, np.float32)
  got = jax.jit(cx.order_statistics, static_argnums=1)(jnp.asarray(x), tuple(range(x.size)))
  np.testing.assert_array_equal(got, np.sort(x.reshape(-1)))


def test_quantise_vmapped_equals_looped():
  w = jnp.asarray(np.random.default_rng(1).normal(size=(3, 8, 8)), jnp.float32)
  vm = jax.vmap(cx.quantise)(w)
  np.testing.assert_array_equal(vm, np.stack([cx.quantise(x) for x in w]))


def test_normalise_equals_pybdm_normalize_key():
  blocks = rand_codes((200, 12), seed=2)
  blocks[:50] %= 2  # some blocks with fewer symbols
  ours = cx.normalise(blocks, 4)
  for b, m in zip(blocks, ours):
    assert string_from_array(m) == normalize_key(string_from_array(b))


def test_gray_planes():
  planes = cx.gray_planes(np.arange(4))
  assert [p.tolist() for p in planes] == [[0, 0, 1, 1], [0, 1, 1, 0]]  # 00 01 11 10


@pytest.mark.parametrize("shape", [(16, 24), (13, 30)])
def test_bdm_agrees_exactly_with_pybdm(shape):
  codes = rand_codes(shape, seed=3)
  two = cx.bdm_matrix(codes, encoding="2d")
  b2 = pybdm.BDM(ndim=2)
  planes = [p.astype(int) for p in cx.gray_planes(codes)]
  assert two["bdm"] == sum(b2.bdm(p) for p in planes)
  assert two["ent"] == sum(b2.ent(p) for p in planes)
  assert two["dropped_entries"] == 2 * (codes.size - (shape[0] // 4) * (shape[1] // 4) * 16)
  one = cx.bdm_matrix(codes, encoding="1d")
  b1 = pybdm.BDM(ndim=1, nsymbols=4)
  seq = codes.reshape(-1).astype(int)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    want = b1.bdm(seq)
  assert one["bdm"] == want and one["ent"] == b1.ent(seq)
  missing = sum(issubclass(w.category, BDMRuntimeWarning) for w in caught)
  assert one["missing_blocks"] == missing and one["dropped_entries"] == codes.size % 12


def test_missing_blocks_are_counted():
  # a random 4-symbol sequence: the CTM-B4-D12 table lacks ~13 % of the blocks
  one = cx.bdm_matrix(rand_codes((60, 48), seed=4), encoding="1d")
  assert 0.05 < one["missing_blocks"] / one["n_blocks"] < 0.25
  assert one["missing_distinct"] <= one["missing_blocks"]


def test_block_constant_scores_below_random():
  coarse = rand_codes((6, 8), seed=5)
  blocky = np.kron(coarse, np.ones((4, 4), np.int8))  # [24, 32], constant 4x4 blocks
  noisy = rand_codes(blocky.shape, seed=6)
  for enc in cx.ENCODINGS:
    low, high = (cx.bdm_matrix(x, encoding=enc)["bdm"] for x in (blocky, noisy))
    assert low < 0.5 * high
  assert cx.block_gzip(blocky)["total"] < 0.5 * cx.block_gzip(noisy)["total"]
  assert cx.compressed_bits(blocky)["zlib"] < cx.compressed_bits(noisy)["zlib"]


def authors_block_gzip(matrix):
  """The authors' script, restated: zero padding, CTM for {0,1} blocks, gzip otherwise."""
  h, w = matrix.shape
  matrix = np.pad(matrix, ((0, -h % 4), (0, -w % 4)))
  blocks = matrix.reshape(matrix.shape[0] // 4, 4, -1, 4).swapaxes(1, 2).reshape(-1, 4, 4)
  solver, total = pybdm.BDM(ndim=2), 0
  for t, n in collections.Counter(tuple(b.flatten()) for b in blocks).items():
    b = np.array(t, dtype=np.int8).reshape(4, 4)
    try:
      k = solver.bdm(b)
    except ValueError:
      k = len(gzip.compress(b.tobytes()))
    total += k + np.log2(n)
  return total


def test_block_gzip_reproduces_the_authors_quantity():
  codes = rand_codes((10, 14), seed=7)
  codes[:4, :4] %= 2  # one block the binary solver accepts
  got = cx.block_gzip(codes)
  np.testing.assert_allclose(got["total"], authors_block_gzip(codes), rtol=1e-12)
  assert got["ctm_distinct"] >= 1 and got["distinct"] == 12
  pure = cx.block_gzip(codes, binary_ctm=False)
  assert pure["ctm_distinct"] == 0 and pure["total"] != got["total"]


def test_bdm_measures_of_a_tree():
  params = random_params(MODEL_PRESETS["tiny"], 0)
  m = cx.complexity_measures(params)
  codes = jax.device_get(jax.jit(cx.quantise_tree)(params))
  assert cx.bdm_measures(codes, extras=False)["bdm/1d/total"] == m["bdm/1d/total"]
  for enc in cx.ENCODINGS:
    per = [v for k, v in m.items() if k.startswith(f"bdm/{enc}/matrix/")]
    assert len(per) == len(codes)
    np.testing.assert_allclose(m[f"bdm/{enc}/total"], sum(per), rtol=1e-12)
    assert m[f"bdm/{enc}/missing_blocks"] >= m[f"bdm/{enc}/missing_distinct"]
  assert m["bdm/2d/missing_blocks"] == 0  # the binary 4x4 table is complete
  entries = 2 * sum(c.size for c in codes.values()) - m["bdm/2d/dropped_entries"]
  np.testing.assert_allclose(m["bdm/2d/per_entry"], m["bdm/2d/total"] / entries)
  assert m["block_gzip/total"] > 0 and m["compress/lzma_bits"] > 0
  assert set(m) >= {"bdm/1d/block_entropy", "compress/zlib_bits_per_entry",
                    "block_gzip/ctm_distinct"}
