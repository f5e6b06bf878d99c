import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grokjax import tasks
from grokjax.config import MODEL_PRESETS
from grokjax.model import (Intervention, Transformer, init_params, shared_prefix_logits,
                           weight_matrices)

CFG = dataclasses.replace(MODEL_PRESETS["tiny"], vocab_size=13)


@pytest.fixture(scope="module")
def setup():
  params = init_params(CFG, jax.random.key(0))
  tokens = jnp.asarray(tasks.make_task("add", 11)[0][:16])
  return Transformer(CFG), params, tokens


def test_parameter_shapes_and_weight_matrices(setup):
  _, params, _ = setup
  d, h, e = CFG.d_model, CFG.n_heads, CFG.d_head
  assert params["blocks_0"]["attn"]["query"]["kernel"].shape == (d, h, e)
  assert params["blocks_1"]["attn"]["out_kernel"].shape == (h, e, d)
  mats = weight_matrices(params)
  assert mats["blocks_0/attn/out"].shape == (h * e, d)
  assert mats["tok_embed"].shape == (13, d) and mats["unembed"].shape == (d, 13)
  assert len(mats) == 3 + 6 * CFG.n_layers


def test_torch_init_matches_pytorch_defaults():
  cfg = MODEL_PRESETS["paper"]
  params = init_params(cfg, jax.random.key(1))
  emb = np.asarray(params["tok_embed"]["embedding"])
  assert abs(emb.std() - 1.0) < 0.03  # nn.Embedding: N(0, 1)
  q = np.asarray(params["blocks_0"]["attn"]["query"]["kernel"])
  assert np.abs(q).max() <= math.sqrt(6 / (4 * cfg.d_model))  # xavier over fused [3d, d]
  assert not np.asarray(params["blocks_0"]["attn"]["query"]["bias"]).any()
  assert not np.asarray(params["blocks_0"]["attn"]["out_bias"]).any()
  fc_b = np.asarray(params["blocks_0"]["fc_in"]["bias"])
  bound = 1 / math.sqrt(cfg.d_model)
  assert np.abs(fc_b).max() <= bound and np.abs(fc_b).max() > 0.9 * bound  # U(±1/sqrt(fan_in))
  assert np.abs(np.asarray(params["blocks_0"]["fc_out"]["kernel"])).max() <= 1 / math.sqrt(cfg.d_mlp)


def test_pruned_forward_equals_full_forward(setup):
  model, params, tokens = setup
  full = model.apply({"params": params}, tokens, prune=False)
  pruned = model.apply({"params": params}, tokens)
  np.testing.assert_allclose(pruned, full, atol=1e-5)


@pytest.mark.parametrize("remat", [False, True])
def test_shared_prefix_forward_equals_the_plain_one(setup, remat):
  """The task grid [x, op | y, =] with the prefix computed once per x, and a grid whose
  sequences share three tokens."""
  _, params, _ = setup
  cfg = dataclasses.replace(CFG, remat=remat)
  x, y = np.meshgrid(np.arange(11), np.arange(11), indexing="ij")
  grid = tasks.encode(x, y, 11)
  three = grid.copy()
  three[:, :, 2] = x  # [x, op, x | =]: the continuation is one token
  for tokens in (grid, three):
    plain = Transformer(cfg).apply({"params": params}, jnp.asarray(tokens.reshape(-1, 4)))
    fast = jax.jit(lambda q: shared_prefix_logits(cfg, q, tokens))(params)
    assert fast.shape == (11, 11, 13)
    np.testing.assert_allclose(fast.reshape(-1, 13), plain, atol=2e-6)
  with pytest.raises(ValueError, match="share no prefix"):
    shared_prefix_logits(cfg, params, grid.transpose(1, 0, 2))  # first token varies with b


def test_remat_and_sites_leave_logits_unchanged(setup):
  model, params, tokens = setup
  ref = model.apply({"params": params}, tokens)
  remat = Transformer(dataclasses.replace(CFG, remat=True)).apply({"params": params}, tokens)
  np.testing.assert_allclose(remat, ref, atol=1e-6)
  logits, sites = model.apply({"params": params}, tokens, return_sites=True, prune=False)
  np.testing.assert_allclose(logits, ref, atol=1e-5)
  # The residual stream adds up: resid_mid = resid_pre + sum of head results + bias.
  attn = params["blocks_1"]["attn"]
  recon = sites["blocks.1.resid_pre"] + sites["blocks.1.attn.result"].sum(2) + attn["out_bias"]
  np.testing.assert_allclose(recon, sites["blocks.1.resid_mid"], atol=1e-5)


def test_intervention_patching_with_own_activations_is_identity(setup):
  model, params, tokens = setup
  ref, sites = model.apply({"params": params}, tokens, return_sites=True, prune=False)
  L = CFG.n_layers
  add = jnp.stack([sites[f"blocks.{l}.attn.result"] for l in range(L)])
  patched = model.apply({"params": params}, tokens, prune=False,
                        intervention=Intervention(scale=jnp.zeros((L, 1, 1, 1)), add=add))
  np.testing.assert_allclose(patched, ref, atol=1e-5)
  same = model.apply({"params": params}, tokens, intervention=Intervention(scale=jnp.ones((L, 1, 1, 1))))
  np.testing.assert_allclose(same, ref, atol=1e-6)


def test_zeroing_every_head_equals_zero_output_projection(setup):
  model, params, tokens = setup
  L = CFG.n_layers
  ablated = model.apply({"params": params}, tokens,
                        intervention=Intervention(scale=jnp.zeros((L, 1, 1, 1))))
  zeroed = jax.tree_util.tree_map_with_path(
      lambda path, a: jnp.zeros_like(a) if "out_kernel" in jax.tree_util.keystr(path) else a, params)
  np.testing.assert_allclose(ablated, model.apply({"params": zeroed}, tokens), atol=1e-6)
  assert np.abs(np.asarray(ablated - model.apply({"params": params}, tokens))).max() > 1e-3


def test_gradient_through_embeddings_matches_token_path(setup):
  model, params, tokens = setup
  x = model.apply({"params": params}, tokens, method=model.embed)
  via_embed = model.apply({"params": params}, x, method=model.from_embeddings)
  np.testing.assert_allclose(via_embed, model.apply({"params": params}, tokens), atol=1e-6)
