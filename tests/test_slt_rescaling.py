"""The α (residual stream) and β (MLP) rescalings preserve the logits where the maths says.

Tolerances (relative to the largest logit, float32):
  α, LayerNorm eps = 0           exact: < 1e-5 (rounding)
  α, eps = 1e-5                  ≤ eps·(1/α² − 1): the normalised vector moves by
                                 ≈ eps·(1 − 1/α²)/(2σ²), σ² ≥ 1/2 here (measured
                                 3.6e-4 at α = 0.1, 3.5e-2 at α = 0.01)
  β, ReLU                        exact: < 1e-5
  β, GELU                        not preserved: measured 4e-2 at β = 2 on this model
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grokjax.config import MODEL_PRESETS
from grokjax.model import Transformer, init_params
from grokjax.slt.rescaling import function_change, rescale, rescale_factors
from grokjax.tasks import make_task

P = 23


@functools.lru_cache(maxsize=None)  # one compilation per model variant
def _model(activation, ln_eps):
  cfg = dataclasses.replace(MODEL_PRESETS["tiny"], vocab_size=P + 2, activation=activation,
                            ln_eps=ln_eps)
  model = Transformer(cfg)
  params = init_params(cfg, jax.random.key(0))
  apply_fn = jax.jit(lambda p, t: model.apply({"params": p}, t))
  return apply_fn, params, jnp.asarray(make_task("add", P)[0])


def _change(activation, ln_eps, alpha, beta):
  apply_fn, params, tokens = _model(activation, ln_eps)
  return float(function_change(apply_fn, params, tokens, alpha=alpha, beta=beta)[
      "logits/rel_change"])


@pytest.mark.parametrize("alpha,beta", [(0.1, 1.0), (10.0, 1.0), (0.01, 1.0), (1.0, 0.1),
                                        (1.0, 7.0), (0.2, 5.0)])
def test_exact_for_relu_without_layernorm_eps(alpha, beta):
  assert _change("relu", 0.0, alpha, beta) < 1e-5


@pytest.mark.parametrize("alpha", [0.01, 0.1, 0.5, 2.0, 10.0])
def test_alpha_is_approximate_through_layernorm_eps(alpha):
  eps = 1e-5
  change = _change("relu", eps, alpha, 1.0)
  assert change <= eps * max(1.0 / alpha**2 - 1.0, 0.0) + 1e-5
  if alpha <= 0.1:
    assert change > 1e-4  # the eps effect is real, and measured, not rounding


def test_beta_breaks_gelu_but_not_relu():
  assert _change("relu", 1e-5, 1.0, 2.0) < 1e-5
  assert _change("gelu", 1e-5, 1.0, 2.0) > 1e-2
  assert _change("gelu", 1e-5, 1.0, 1.0) == 0.0


def test_factors_touch_exactly_the_documented_tensors():
  _, params, _ = _model("relu", 1e-5)
  f = rescale_factors(params, alpha=2.0, beta=3.0)
  assert f["tok_embed"]["embedding"] == 2.0 and f["pos_embed"] == 2.0
  for l in range(2):
    b = f[f"blocks_{l}"]
    assert b["attn"]["out_kernel"] == b["attn"]["out_bias"] == b["fc_out"]["bias"] == 2.0
    assert b["fc_in"]["kernel"] == b["fc_in"]["bias"] == 3.0
    assert b["fc_out"]["kernel"] == pytest.approx(2.0 / 3.0)
    assert b["attn"]["query"]["kernel"] == b["ln1"]["scale"] == b["ln2"]["bias"] == 1.0
  assert f["unembed"]["kernel"] == f["ln_f"]["scale"] == 1.0
  # Works on stacked trees and traced factors.
  stacked = jax.tree.map(lambda x: jnp.stack([x, x]), params)
  out = jax.jit(lambda p, a: rescale(p, alpha=a))(stacked, 3.0)
  np.testing.assert_allclose(out["pos_embed"][1], 3.0 * params["pos_embed"], rtol=1e-6)
