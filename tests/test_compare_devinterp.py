"""experiments.torch_convert: the PyTorch reference model computes grokjax's logits.

Needs torch (the bench / devinterp extras); skipped without it.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from experiments import torch_convert  # noqa: E402
from grokjax.config import MODEL_PRESETS  # noqa: E402
from grokjax.errors import ConfigError  # noqa: E402
from grokjax.model import Transformer, init_params  # noqa: E402


def _params(cfg, key):
  """Initial parameters with every leaf moved, so that zero-initialised biases count too."""
  params = init_params(cfg, jax.random.key(key))
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(key + 1), len(leaves))
  return jax.tree.unflatten(treedef, [x + 0.1 * jax.random.normal(k, x.shape)
                                     for x, k in zip(leaves, keys)])


@pytest.mark.parametrize("preset", ["tiny", "paper"])
def test_torch_model_gives_the_same_logits(preset):
  cfg = MODEL_PRESETS[preset]
  params = _params(cfg, 0)
  tokens = np.array(jax.random.randint(jax.random.key(2), (64, cfg.seq_len), 0,
                                         cfg.vocab_size))
  want = np.asarray(Transformer(cfg).apply({"params": params}, tokens))
  model = torch_convert.torch_model(params, cfg)
  with torch.no_grad():
    got = model(torch.as_tensor(tokens, dtype=torch.long)).numpy()
  assert got.shape == want.shape == (64, cfg.vocab_size)
  np.testing.assert_allclose(got, want, atol=1e-5 * max(1.0, np.abs(want).max()), rtol=0)
  assert np.abs(want).max() > 1.0  # logits of a size where a swapped head would show


def test_a_swapped_head_is_caught():
  cfg = MODEL_PRESETS["tiny"]
  params = _params(cfg, 3)
  q = params["blocks_0"]["attn"]["query"]["kernel"]
  swapped = jax.tree.map(lambda x: x, params)
  swapped["blocks_0"]["attn"]["query"]["kernel"] = q[:, ::-1]
  tokens = torch.randint(0, cfg.vocab_size, (16, cfg.seq_len))
  with torch.no_grad():
    a = torch_convert.torch_model(params, cfg)(tokens).numpy()
    b = torch_convert.torch_model(swapped, cfg)(tokens).numpy()
  assert np.abs(a - b).max() > 1e-3


@pytest.mark.parametrize("change", [dict(activation="relu"), dict(ln_eps=0.0)])
def test_other_model_functions_are_refused(change):
  cfg = dataclasses.replace(MODEL_PRESETS["tiny"], **change)
  with pytest.raises(ConfigError, match="PyTorch reference"):
    torch_convert.state_dict(init_params(cfg, jax.random.key(0)), cfg)
