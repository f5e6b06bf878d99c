"""BDM on the device (grokjax.measures.bdm) == pybdm's BDM.bdm / BDM.ent on the same codes."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grokjax.config import MODEL_PRESETS
from grokjax.errors import ConfigError
from grokjax.measures import bdm, complexity as cx
from grokjax.model import init_params

pybdm = cx.import_pybdm()
from pybdm.exceptions import BDMRuntimeWarning  # noqa: E402

RTOL = 1e-12  # sums over up to ~10^3 terms in another order: float64 rounding only


def rand_codes(shape, seed=0, levels=4):
  return np.random.default_rng(seed).integers(0, levels, shape).astype(np.int8)


def structured(shape, levels):
  """Matrices of `shape`: constant 0, constant top level, checkerboard, stripes, random."""
  i, j = np.indices(shape)
  return {"zeros": np.zeros(shape, np.int8), "top": np.full(shape, levels - 1, np.int8),
          "checker": ((i + j) % 2 * (levels - 1)).astype(np.int8),
          "stripes": (j % levels).astype(np.int8), "random": rand_codes(shape, 1, levels)}


def pybdm_matrix(x, levels):
  """(bdm, ent, missing blocks) of one matrix through pybdm itself, both encodings."""
  b2 = pybdm.BDM(ndim=2)
  planes = [p.astype(int) for p in cx.gray_planes(x, levels)]
  ok = [p for p in planes if (p.shape[0] // 4) * (p.shape[1] // 4)]  # pybdm raises on 0 blocks
  two = (sum(b2.bdm(p) for p in ok), sum(b2.ent(p) for p in ok))
  b1 = pybdm.BDM(ndim=1, nsymbols=cx.ctm_table(cx.table_1d(levels)).nsymbols)
  seq = x.reshape(-1).astype(int)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    one = (b1.bdm(seq), b1.ent(seq))
  return two, one, sum(issubclass(w.category, BDMRuntimeWarning) for w in caught)


def test_views_are_pybdms_ignore_partition():
  x = rand_codes((13, 30), seed=2)
  np.testing.assert_array_equal(bdm.blocks(bdm.view_2d(jnp.asarray(x))), cx.blocks_2d(x)[0])
  np.testing.assert_array_equal(bdm.blocks(bdm.view_1d(jnp.asarray(x))), cx.blocks_1d(x)[0])
  got = [b.reshape(4, 4) for b in np.asarray(bdm.blocks(bdm.view_2d(jnp.asarray(x))))]
  want = [p for p in pybdm.BDM(ndim=2).decompose(x)]
  assert len(got) == len(want) == 3 * 7
  for g, w in zip(got, want):
    np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("nsymbols", [2, 4, 9])
def test_normal_form_and_keys(nsymbols):
  blocks = rand_codes((400, 12), seed=3, levels=nsymbols)
  blocks[:100] %= 2  # blocks with fewer symbols
  blocks[100:150] = blocks[150:200]  # repeats
  cols = [jnp.asarray(blocks[:, j]) for j in range(12)]
  code, _ = bdm.normal_form(cols, nsymbols)
  want = cx.normalise(blocks, nsymbols) @ bdm.place_values(12, nsymbols)
  np.testing.assert_array_equal(code, want)
  keys = np.asarray(bdm.sort_keys([jnp.asarray(blocks)], kind="dense", nsymbols=nsymbols))
  assert len(np.unique(keys)) == len(np.unique(blocks, axis=0))  # key <-> block
  assert keys.max() < bdm.key_span("dense", nsymbols, 12)


@pytest.mark.parametrize("levels", [2, 3, 4, 5])
def test_equals_pybdm_on_structured_and_random_matrices(levels):
  shapes = [(16, 24), (13, 30)]  # the second is no multiple of 4 or 12
  mats = {f"{k}_{s[0]}": v for s in shapes for k, v in structured(s, levels).items()}
  codes = {k: np.stack([v, rand_codes(v.shape, 9, levels)]) for k, v in mats.items()}
  rows = bdm.bdm_rows(codes, levels=levels)
  scores = bdm.score_batch(codes, levels=levels)  # block sets by matrix name, planes within
  planes = len(cx.gray_planes(np.arange(levels), levels))
  for i, k in enumerate(sorted(mats)):
    (b2, e2), (b1, e1), missing = pybdm_matrix(mats[k], levels)
    np.testing.assert_allclose(rows[0][f"bdm/2d/matrix/{k}"], b2, rtol=RTOL)
    np.testing.assert_allclose(rows[0][f"bdm/1d/matrix/{k}"], b1, rtol=RTOL)
    ent2 = sum(scores["2d"]["ent"][0, planes * i + j] for j in range(planes))
    np.testing.assert_allclose(ent2, e2, rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(scores["1d"]["ent"][0, i], e1, rtol=RTOL, atol=1e-12)
    assert scores["1d"]["missing_blocks"][0, i] == missing
  for b in range(2):  # every key against the host scorer (itself == pybdm bit for bit)
    want = cx.bdm_measures({k: v[b] for k, v in codes.items()}, levels=levels, extras=False)
    assert set(rows[b]) == set(want)
    for key, w in want.items():
      if isinstance(w, int):
        assert rows[b][key] == w, key
      else:
        np.testing.assert_allclose(rows[b][key], w, rtol=RTOL, atol=1e-12, err_msg=key)


def test_missing_blocks_score_the_default():
  # a random 4-symbol sequence: CTM-B4-D12 lacks ~13 % of the blocks (pybdm: max + 1)
  x = rand_codes((60, 48), seed=4)
  row = bdm.bdm_rows({"w": x[None]})[0]
  (_, _), (b1, _), missing = pybdm_matrix(x, 4)
  assert missing > 0 and row["bdm/1d/missing_blocks"] == missing
  assert 0 < row["bdm/1d/missing_distinct"] <= missing
  np.testing.assert_allclose(row["bdm/1d/total"], b1, rtol=RTOL)
  table = cx.ctm_table("CTM-B4-D12")
  assert float(bdm.device_table("CTM-B4-D12").missing) == table.missing == table.values.max() + 1


def test_tiny_blocks_and_empty_matrices():
  codes = {"small": rand_codes((1, 3, 3), 5), "row": rand_codes((1, 1, 30), 6)}
  row = bdm.bdm_rows(codes)[0]
  want = cx.bdm_measures({k: v[0] for k, v in codes.items()}, extras=False)
  assert row == pytest.approx(want, rel=RTOL)
  assert row["bdm/2d/n_blocks"] == 0 and row["bdm/2d/total"] == 0
  assert row["bdm/2d/dropped_entries"] == 2 * 39


def test_vmapped_equals_looped_and_lens_rows_equal_the_host_lens():
  shapes = jax.eval_shape(lambda: init_params(MODEL_PRESETS["tiny"], jax.random.key(0)))
  rng = np.random.default_rng(7)
  params = jax.tree.map(lambda s: rng.normal(size=(3, *s.shape)).astype(np.float32), shapes)
  codes = jax.device_get(jax.jit(jax.vmap(cx.quantise_tree))(params))
  rows = bdm.lens_rows(codes)
  for b in range(3):
    single = bdm.bdm_rows({k: v[b: b + 1] for k, v in codes.items()})[0]
    want = cx.bdm_measures({k: v[b] for k, v in codes.items()})
    assert set(rows[b]) == set(want)
    assert rows[b] == pytest.approx(want, rel=RTOL)
    assert {k: rows[b][k] for k in single} == pytest.approx(single, rel=1e-14)
  assert rows[0]["bdm/1d/missing_blocks"] > 0 and rows[0]["bdm/2d/missing_blocks"] == 0


def test_errors():
  with pytest.raises(ConfigError, match="encoding"):
    bdm.bdm_rows({"w": rand_codes((1, 8, 8))}, encodings=("3d",))
  with pytest.raises(ConfigError, match="batch"):
    bdm.bdm_rows({"a": rand_codes((1, 8, 8)), "b": rand_codes((2, 8, 8))})
  with pytest.raises(ConfigError, match="1-D CTM table"):
    bdm.bdm_rows({"w": rand_codes((1, 8, 8))}, levels=10)
