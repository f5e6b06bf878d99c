"""Geometry lens: GC of a linear map, Hutchinson == exact, AGOP and PR closed forms."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from grokjax import tasks
from grokjax.config import MODEL_PRESETS
from grokjax.errors import ConfigError
from grokjax.measures import geometry
from grokjax.model import Transformer, init_params

P = 7
CFG = dataclasses.replace(MODEL_PRESETS["tiny"], vocab_size=P + 2, n_layers=1)  # small compiles


def random_params(cfg, seed):
  """A parameter tree of the model's shapes filled with N(0, 0.5^2) (no init compile)."""
  shapes = jax.eval_shape(lambda: init_params(cfg, jax.random.key(0)))
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: jnp.asarray(0.5 * rng.normal(size=s.shape), s.dtype), shapes)


def test_gc_of_a_linear_map_is_its_squared_frobenius_norm():
  w = jnp.asarray(np.random.default_rng(0).normal(size=(5, 3, 4)), jnp.float32)
  xs = jnp.asarray(np.random.default_rng(1).normal(size=(6, 3, 4)), jnp.float32)
  f = lambda x: jnp.einsum("vtd,ntd->nv", w, x)
  np.testing.assert_allclose(geometry.jacobian_sq_norm(f, xs), jnp.sum(w**2), rtol=1e-5)
  est = geometry.jacobian_sq_norm(f, xs, method="hutchinson", n_probes=2000, key=jax.random.key(0))
  np.testing.assert_allclose(est, jnp.sum(w**2), rtol=0.05)
  with pytest.raises(ConfigError, match="key"):
    geometry.jacobian_sq_norm(f, xs, method="hutchinson")


def test_gc_of_a_nonlinear_map():
  xs = jnp.asarray(np.random.default_rng(2).normal(size=(9, 4)), jnp.float32)
  np.testing.assert_allclose(geometry.jacobian_sq_norm(jnp.sin, xs, batch_size=3),
                             jnp.mean(jnp.sum(jnp.cos(xs) ** 2, axis=1)), rtol=1e-5)


def test_participation_ratio_counts_equal_variance_dimensions():
  rng = np.random.default_rng(3)
  basis = np.linalg.qr(rng.normal(size=(16, 16)))[0][:, :3]
  h = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float) @ basis.T  # cov = I_3
  np.testing.assert_allclose(geometry.participation_ratio(jnp.asarray(h)), 3.0, rtol=1e-5)


def test_agop_stats_closed_form():
  g = jnp.asarray(np.random.default_rng(4).normal(size=(10, 6)), jnp.float32)
  m = geometry.agop_stats(g, prefix="a")
  agop = np.asarray(g).T @ np.asarray(g) / 10
  np.testing.assert_allclose(m["a_trace"], np.trace(agop), rtol=1e-5)
  np.testing.assert_allclose(m["a_frob"], np.linalg.norm(agop), rtol=1e-5)
  lam = np.linalg.eigvalsh(agop)
  q = lam / lam.sum()
  np.testing.assert_allclose(m["a_eff_rank"], np.exp(-np.sum(q * np.log(q))), rtol=1e-4)


@pytest.fixture(scope="module")
def batch():
  inputs, targets = tasks.make_task("add", P)
  return jnp.asarray(inputs[::3]), jnp.asarray(targets[::3])


def test_model_measures_and_vmapped_equals_looped(batch):
  trees = [random_params(CFG, 0), random_params(CFG, 1)]
  fn = lambda q: geometry.geometry_measures(CFG, q, *batch)
  vm = jax.jit(jax.vmap(fn))(jax.tree.map(lambda *a: jnp.stack(a), *trees))
  one = [jax.jit(fn)(t) for t in trees]
  assert set(vm) == {"geometry/gc", "geometry/agop_frob", "geometry/agop_trace",
                     "geometry/agop_eff_rank", "geometry/participation/blocks.0.resid_post"}
  for k in vm:
    np.testing.assert_allclose(vm[k], np.stack([o[k] for o in one]), rtol=2e-4)
  # against per-example autodiff: GC from jacrev, AGOP trace = mean ||grad loss_i||^2
  model = Transformer(CFG)
  v = {"params": trees[0]}
  logits = lambda x: model.apply(v, x[None], method=model.from_embeddings)[0]
  loss = lambda x, y: optax.softmax_cross_entropy_with_integer_labels(logits(x), y)
  x = model.apply(v, batch[0], method=model.embed)
  jac, g = jax.jit(lambda x, y: (jax.vmap(jax.jacrev(logits))(x), jax.vmap(jax.grad(loss))(x, y)))(
      x, batch[1])
  np.testing.assert_allclose(one[0]["geometry/gc"], jnp.mean(jnp.sum(jac**2, axis=(1, 2, 3))),
                             rtol=1e-4)
  np.testing.assert_allclose(one[0]["geometry/agop_trace"], jnp.mean(jnp.sum(g**2, axis=(1, 2))),
                             rtol=1e-4)
