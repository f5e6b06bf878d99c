"""Fourier lens: planted frequencies, discrete-log re-indexing, Occam gate, circulants."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grokjax import tasks
from grokjax.config import MODEL_PRESETS
from grokjax.errors import ConfigError
from grokjax.measures import fourier
from grokjax.model import Transformer, init_params

P = 11
CFG = dataclasses.replace(MODEL_PRESETS["tiny"], vocab_size=P + 2, n_layers=1)  # small compiles


def random_params(cfg, seed):
  """A parameter tree of the model's shapes filled with N(0, 0.5^2) (no init compile)."""
  shapes = jax.eval_shape(lambda: init_params(cfg, jax.random.key(0)))
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: jnp.asarray(0.5 * rng.normal(size=s.shape), s.dtype), shapes)


def test_gini_and_ipr_extremes():
  n = 7
  np.testing.assert_allclose(fourier.gini(jnp.ones(n)), 0.0, atol=1e-6)
  one_hot = jnp.zeros(n).at[3].set(2.5)
  np.testing.assert_allclose(fourier.gini(one_hot), (n - 1) / n, rtol=1e-6)
  np.testing.assert_allclose(fourier.ipr(one_hot), 1.0, rtol=1e-6)
  np.testing.assert_allclose(fourier.ipr(jnp.ones(n)), 1 / n, rtol=1e-6)
  np.testing.assert_allclose(fourier.entropy(jnp.ones(n)), np.log(n), rtol=1e-6)


def planted(n, k, d=6, seed=0):
  """rows[j] = u cos(2 pi k j / n) + v sin(...), u and v orthogonal with equal norm."""
  u, v = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, 2)))[0].T * 3.0
  j = np.arange(n)[:, None]
  return u * np.cos(2 * np.pi * k * j / n) + v * np.sin(2 * np.pi * k * j / n) + 0.7


def test_planted_frequency_is_found():
  rows = jnp.asarray(planted(P, 3))
  m = jax.jit(lambda r: fourier.localisation(r, prefix="e", top_k=(1,), n_key=2))(rows)
  assert int(m["e_key_freq_0"]) == 3
  np.testing.assert_allclose(m["e_ipr"], 1.0, atol=1e-5)
  np.testing.assert_allclose(m["e_top1"], 1.0, atol=1e-5)
  np.testing.assert_allclose(m["e_gini"], (5 - 1) / 5, atol=1e-5)  # K = 5 folded frequencies
  np.testing.assert_allclose(m["e_entropy"], 0.0, atol=1e-4)
  c = jax.jit(lambda r: fourier.cyclic_structure(r, n_planes=1))(rows)
  assert int(c["fourier/plane_freqs"][0]) == 3
  np.testing.assert_allclose(c["fourier/cyclic_score"], 1.0, atol=1e-5)
  np.testing.assert_allclose(c["fourier/circularity"], 1.0, atol=1e-4)
  radius = np.linalg.norm(np.asarray(c["fourier/coords"][0]), axis=-1)
  np.testing.assert_allclose(radius, radius[0], rtol=1e-4)  # the numbers lie on a circle


def test_noise_is_not_localised():
  rows = jnp.asarray(np.random.default_rng(1).normal(size=(97, 64)))
  m = fourier.localisation(rows, prefix="e")
  assert float(m["e_ipr"]) < 0.05 and float(m["e_gini"]) < 0.35


def test_dlog_structure_found_only_after_reindexing():
  """rows[x] = plane at frequency 2 over Z_{p-1} in log_g(x): only mul's basis sees it."""
  log = tasks.discrete_log(P)
  rows = np.zeros((P, 16))
  rows[1:] = planted(P - 1, 2, d=16)[log[1:]]
  rows[0] = np.random.default_rng(2).normal(size=16)

  @jax.jit
  def both(r):
    return [fourier.localisation(fourier.in_basis(r, basis=fourier.resolve_basis(op, "auto")),
                                 prefix="e") for op in ("mul", "add")]

  mul, add = both(jnp.asarray(rows))
  assert int(mul["e_key_freq_0"]) == 2
  np.testing.assert_allclose(mul["e_ipr"], 1.0, atol=1e-4)
  assert float(add["e_ipr"]) < 0.5


def test_resolve_basis():
  assert [fourier.resolve_basis(op, "auto") for op in ("add", "sub", "mul", "div", "x3_plus_xy")] \
      == ["natural", "natural", "dlog", "dlog", "natural"]
  assert fourier.resolve_basis("mul", "natural") == "natural"
  with pytest.raises(ConfigError, match="basis"):
    fourier.resolve_basis("add", "log")


def _table(op, f):
  x, y = np.meshgrid(np.arange(P), np.arange(P), indexing="ij")
  return jnp.asarray(f[tasks.apply_op(op, x, y, P)])


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_occam_diagonal_fraction_of_exact_group_tables(op):
  f = np.random.default_rng(3).normal(size=P)
  m = fourier.occam_gate(_table(op, f), op=op)
  np.testing.assert_allclose(m["occam/diag_fraction"], 1.0, atol=1e-5)
  n = P - 1 if op in ("mul", "div") else P
  assert m["occam/power"].shape == (n, n)


def test_occam_pools_class_tables():
  """L_c[x, y] = f_c(x + y): every class's table is on the diagonal family."""
  f = np.random.default_rng(5).normal(size=(P, 3))
  x, y = np.meshgrid(np.arange(P), np.arange(P), indexing="ij")
  tables = jnp.asarray(f[(x + y) % P])  # [P, P, 3]
  m = fourier.occam_gate(tables, op="add", prefix="c")
  np.testing.assert_allclose(m["c/diag_fraction"], 1.0, atol=1e-5)
  assert m["c/power"].shape == (P, P)
  noise = jnp.asarray(np.random.default_rng(6).normal(size=(P, P, 3)))
  assert float(fourier.occam_gate(noise, op="add")["occam/diag_fraction"]) < 0.3


@pytest.mark.parametrize("op,shape", [("add", (P, P)), ("sub", (P, P, 3)), ("div", (P, P))])
def test_occam_fractions_equal_the_fft_power_map(op, shape):
  """The closed forms against the bins of the [n, n] 2-D DFT power map itself."""
  m = fourier.occam_gate(jnp.asarray(np.random.default_rng(7).normal(size=shape)), op=op)
  power = np.asarray(m["occam/power"], np.float64)
  n, sign = power.shape[0], fourier.GROUP_OPS[op][1]
  kx, ky = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
  diag = (kx - sign * ky) % n == 0
  axes = ((kx == 0) | (ky == 0)) & ~((kx == 0) & (ky == 0))
  np.testing.assert_allclose(m["occam/diag_fraction"], power[diag].sum() / power.sum(), rtol=1e-4)
  np.testing.assert_allclose(m["occam/axis_fraction"], power[axes].sum() / power.sum(), rtol=1e-4)


def test_occam_wrong_family_or_basis_is_low():
  f = np.random.default_rng(4).normal(size=P)
  assert float(fourier.occam_gate(_table("add", f), op="sub")["occam/diag_fraction"]) < 0.3
  nat = fourier.occam_gate(_table("mul", f), op="mul", basis="natural")
  assert float(nat["occam/diag_fraction"]) < 0.5
  with pytest.raises(ConfigError, match="diagonal family"):
    fourier.occam_gate(_table("add", f), op="x2_plus_y2")


def test_answer_logit_table_matches_model():
  params = random_params(CFG, 5)
  tables = jax.jit(lambda q: [fourier.answer_logit_table(CFG, q, p=P, op="sub", y0=y0)
                              for y0 in ("model", "mean")])
  table, mean = map(np.asarray, tables(params))
  x, y = np.array([0, 4, 10]), np.array([0, 7, 3])
  logits = jax.jit(Transformer(CFG).apply)({"params": params}, jnp.asarray(tasks.encode(x, y, P)))
  want = np.asarray(logits)[np.arange(3), (x - y) % P]
  np.testing.assert_allclose(table[x, y], want, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(mean[:, 0], table[:, 1:].mean(), rtol=1e-5)
  np.testing.assert_allclose(mean[:, 1:], table[:, 1:], rtol=1e-6)


def test_circulant_score():
  c = np.random.default_rng(6).normal(size=8)
  circ = np.stack([np.roll(c, i) for i in range(8)])
  np.testing.assert_allclose(fourier.circulant_score(jnp.asarray(circ)), 1.0, atol=1e-6)
  noise = np.random.default_rng(7).normal(size=(64, 64))
  assert float(fourier.circulant_score(jnp.asarray(noise))) < 0.1


def test_fft2_of_constant_matrix_is_one_spike():
  m = fourier.fft2_localisation(jnp.ones((6, 4)), prefix="x")
  np.testing.assert_allclose(m["x_ipr"], 1.0, rtol=1e-6)
  np.testing.assert_allclose(m["x_gini"], 23 / 24, rtol=1e-6)


def test_vmapped_equals_looped():
  trees = [random_params(CFG, 8), random_params(CFG, 9)]
  fn = lambda q: fourier.fourier_measures(CFG, q, p=P, op="div")
  vm = jax.jit(jax.vmap(fn))(jax.tree.map(lambda *a: jnp.stack(a), *trees))
  one = [jax.jit(fn)(t) for t in trees]
  assert "occam/diag_fraction" in vm and "circulant/mean" in vm
  np.testing.assert_array_equal(vm["fourier/dlog_basis"], [1.0, 1.0])
  assert vm["fourier/embed_power"].shape == (2, (P - 1) // 2)
  for k in vm:
    np.testing.assert_allclose(vm[k], np.stack([o[k] for o in one]), rtol=2e-4, atol=1e-5)
