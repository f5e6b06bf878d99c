"""Hidden-state maps: PCA recovers a planted circle, states match the model, t-SNE separates."""

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grokjax.config import MODEL_PRESETS
from grokjax.errors import ConfigError
from grokjax.measures import hidden
from grokjax.model import Transformer, init_params


def circle_points(n=24, noise=0.0, seed=0):
  angle = 2 * np.pi * np.arange(n) / n
  plane = np.stack([3 * np.cos(angle), 3 * np.sin(angle)], axis=1)
  rng = np.random.default_rng(seed)
  embed = np.concatenate([plane, noise * rng.normal(size=(n, 6))], axis=1)
  rotation = np.linalg.qr(rng.normal(size=(8, 8)))[0]
  return angle, embed @ rotation + 5.0  # rotated into 8-D and shifted off the origin


def test_pca_recovers_a_circle_up_to_rotation_and_reflection():
  angle, points = circle_points(noise=0.01)
  pc = hidden.pca(jnp.asarray(points, jnp.float32))
  coords = np.asarray(pc["coords"])
  np.testing.assert_allclose(np.linalg.norm(coords, axis=1), 3.0, rtol=2e-3)
  got = np.angle(coords[:, 0] + 1j * coords[:, 1])
  # the recovered angles are the true ones rotated (and possibly reflected)
  offsets = [np.angle(np.exp(1j * (got - s * angle))) for s in (1, -1)]
  spread = min(np.ptp(np.unwrap(o)) for o in offsets)
  assert spread < 1e-2
  shares = np.asarray(pc["explained"])
  np.testing.assert_allclose(shares, [0.5, 0.5], atol=1e-3)


def test_pca_axes_are_unit_and_sign_fixed():
  _, points = circle_points(noise=0.1, seed=3)
  pc = hidden.pca(jnp.asarray(points, jnp.float32), n_components=3)
  axes = np.asarray(pc["axes"])
  np.testing.assert_allclose(axes @ axes.T, np.eye(3), atol=1e-5)
  assert np.all(axes[np.arange(3), np.abs(axes).argmax(axis=1)] > 0)
  flipped = hidden.pca(-jnp.asarray(points, jnp.float32), n_components=3)
  np.testing.assert_allclose(np.abs(np.asarray(flipped["coords"])),
                             np.abs(np.asarray(pc["coords"])), atol=1e-4)


def test_pca_vmapped_equals_looped():
  stack = jnp.asarray(np.stack([circle_points(noise=0.2, seed=s)[1] for s in range(3)]),
                      jnp.float32)
  batched = jax.vmap(hidden.pca)(stack)
  for i in range(3):
    one = hidden.pca(stack[i])
    np.testing.assert_allclose(batched["coords"][i], one["coords"], atol=1e-5)


def test_answer_states_are_the_residual_stream_the_logits_read():
  cfg = MODEL_PRESETS["tiny"]
  params = init_params(cfg, jax.random.key(1))
  inputs, xs, answers = hidden.examples("add", cfg.vocab_size - 2, 40, seed=2)
  states = hidden.answer_states(cfg, params, jnp.asarray(inputs))
  assert sorted(states) == ["blocks.0", "blocks.1", "embed"][: cfg.n_layers + 1]
  model = Transformer(cfg)
  last = states[f"blocks.{cfg.n_layers - 1}"]
  logits = model.apply({"params": params}, last,
                       method=lambda m, x: m.unembed(m.ln_f(x)))
  np.testing.assert_allclose(logits, model.apply({"params": params}, jnp.asarray(inputs)),
                             atol=1e-5)
  np.testing.assert_array_equal(xs, inputs[:, 0])
  assert answers.shape == (40,)


def test_hidden_maps_keys_and_shapes():
  cfg = MODEL_PRESETS["tiny"]
  p = cfg.vocab_size - 2
  params = init_params(cfg, jax.random.key(0))
  inputs, _, _ = hidden.examples("sub", p, 30)
  maps = jax.jit(lambda prm: hidden.hidden_maps(cfg, prm, jnp.asarray(inputs), p))(params)
  assert maps["hidden/tok_embed/coords"].shape == (p, 2)
  for site in ["embed"] + [f"blocks.{l}" for l in range(cfg.n_layers)]:
    assert maps[f"hidden/{site}/coords"].shape == (30, 2)
    assert 0 < float(maps[f"hidden/{site}/explained"].sum()) <= 1 + 1e-6


def test_examples_rejects_a_bad_count():
  with pytest.raises(ConfigError, match="n must be in"):
    hidden.examples("add", 7, 0)


@pytest.mark.skipif(importlib.util.find_spec("sklearn") is None, reason="needs scikit-learn")
def test_tsne_separates_two_clusters_and_is_seeded():
  rng = np.random.default_rng(0)
  points = np.concatenate([rng.normal(size=(30, 5)), 20 + rng.normal(size=(30, 5))])
  a = hidden.tsne(points, seed=0, perplexity=10)
  np.testing.assert_array_equal(a, hidden.tsne(points, seed=0, perplexity=10))
  centre0, centre1 = a[:30].mean(axis=0), a[30:].mean(axis=0)
  spread = max(np.linalg.norm(a[:30] - centre0, axis=1).max(),
               np.linalg.norm(a[30:] - centre1, axis=1).max())
  assert np.linalg.norm(centre0 - centre1) > 2 * spread
  with pytest.raises(ConfigError, match="perplexity"):
    hidden.tsne(points, seed=0, perplexity=60)
