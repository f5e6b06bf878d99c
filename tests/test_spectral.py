"""Spectral lens: closed forms on diagonal matrices, group means, vmapped == looped."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grokjax.config import MODEL_PRESETS
from grokjax.measures import spectral
from grokjax.model import init_params, weight_matrices

CFG = dataclasses.replace(MODEL_PRESETS["tiny"], vocab_size=13)


def random_params(cfg, seed):
  """A parameter tree of the model's shapes filled with N(0, 0.5^2) (no init compile)."""
  shapes = jax.eval_shape(lambda: init_params(cfg, jax.random.key(0)))
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: jnp.asarray(0.5 * rng.normal(size=s.shape), s.dtype), shapes)


def test_matrix_spectrum_closed_form():
  s = np.array([3.0, 2.0, 1.0])
  w = np.zeros((3, 5))
  w[np.arange(3), np.arange(3)] = s
  q = s / s.sum()
  h = -np.sum(q * np.log(q))
  m = jax.jit(spectral.matrix_spectrum)(jnp.asarray(w))
  np.testing.assert_allclose(m["spectral_entropy"], h, rtol=1e-5)
  np.testing.assert_allclose(m["spectral_entropy_norm"], h / np.log(3), rtol=1e-5)
  np.testing.assert_allclose(m["effective_rank"], np.exp(h), rtol=1e-5)
  np.testing.assert_allclose(m["stable_rank"], 14 / 9, rtol=1e-5)


@pytest.mark.parametrize("n", [4, 8])
def test_identity_and_rank_one_extremes(n):
  eye = spectral.matrix_spectrum(jnp.eye(n))
  np.testing.assert_allclose(eye["spectral_entropy_norm"], 1.0, rtol=1e-5)
  np.testing.assert_allclose(eye["effective_rank"], n, rtol=1e-5)
  np.testing.assert_allclose(eye["stable_rank"], n, rtol=1e-5)
  u = jnp.arange(1.0, n + 1)
  one = spectral.matrix_spectrum(jnp.outer(u, u[::-1]))
  np.testing.assert_allclose(one["effective_rank"], 1.0, atol=1e-3)
  np.testing.assert_allclose(one["stable_rank"], 1.0, rtol=1e-5)


@pytest.fixture(scope="module")
def params():
  return random_params(CFG, 0)


@pytest.fixture(scope="module")
def full(params):
  return jax.jit(spectral.spectral_measures)(params)


def test_group_means_and_summary_agree(params, full):
  names = list(weight_matrices(params))
  for stat in spectral.STATS:
    for group, keep in spectral.GROUPS.items():
      want = np.mean([full[f"{stat}/{k}"] for k in names if keep(k)])
      np.testing.assert_allclose(full[f"{stat}/{group}"], want, rtol=1e-5)
  summary = jax.jit(spectral.spectral_summary)(params)
  assert set(summary) == {"param_norm", "spectral_entropy/all", "spectral_entropy/attn",
                          "spectral_entropy/embed"}
  for k, v in summary.items():
    np.testing.assert_allclose(v, full[k], rtol=1e-5)


def test_param_norm_matches_numpy(params, full):
  want = np.sqrt(sum(np.sum(np.asarray(x, np.float64) ** 2) for x in jax.tree.leaves(params)))
  np.testing.assert_allclose(full["param_norm"], want, rtol=1e-5)


def test_vmapped_equals_looped(params, full):
  other = random_params(CFG, 1)
  stacked = jax.tree.map(lambda a, b: jnp.stack([a, b]), params, other)
  vm = jax.jit(jax.vmap(spectral.spectral_measures))(stacked)
  two = jax.jit(spectral.spectral_measures)(other)
  for k in full:
    np.testing.assert_allclose(vm[k], np.stack([full[k], two[k]]), rtol=1e-5, atol=1e-6)
