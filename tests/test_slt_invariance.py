"""The LLC on a rescaling grid: the scale-invariant samplers do not move, SGLD does."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from grokjax.config import MODEL_PRESETS
from grokjax.errors import ConfigError
from grokjax.model import Transformer, init_params
from grokjax.slt import invariance
from grokjax.tasks import make_task

P = 11


@pytest.fixture(scope="module")
def relu_model():
  # ReLU and LayerNorm eps = 0: both rescalings are exact, so any movement of λ̂ over
  # the grid comes from the sampler.
  cfg = dataclasses.replace(MODEL_PRESETS["tiny"], vocab_size=P + 2, activation="relu",
                            ln_eps=0.0)
  model = Transformer(cfg)

  def loss_fn(params, batch):
    logits = model.apply({"params": params}, batch[0])
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch[1]).mean()

  inputs, targets = make_task("add", P)
  return loss_fn, init_params(cfg, jax.random.key(0)), (jnp.asarray(inputs), jnp.asarray(targets))


def test_grid_is_flat_for_the_scale_invariant_sampler(relu_model):
  """Exact rescalings + eps = 0: every grid point runs the rescaled chain of (1, 1).

  (That SGLD has no such property is tested on a toy loss in test_slt_samplers.)
  """
  loss_fn, params, data = relu_model
  out = invariance.rescaling_grid(
      loss_fn, params, data, key=jax.random.key(1), alphas=[1.0, 4.0], betas=[0.5, 1.0],
      sampler="scale_invariant", sampler_kwargs={"eps": 0.0}, step_size=1e-3,
      localization=10.0, nbeta=20.0, num_chains=2, num_draws=20, num_burnin=5, batch_size=32)
  np.testing.assert_allclose(out["alpha"], [1.0, 1.0, 4.0, 4.0])
  np.testing.assert_allclose(out["loss/init"], out["loss/init"][1], rtol=1e-5)  # same function
  assert np.all(np.abs(out["llc/mean"]) > 1e-3)
  np.testing.assert_allclose(out["llc/mean"], out["llc/mean"][1], rtol=1e-3)
  rows = invariance.invariance_rows(out, sampler="scale_invariant")
  assert rows[1]["alpha"] == rows[1]["beta"] == 1.0
  assert abs(rows[1]["init_loss_change"]) < 1e-5


def test_log_grid():
  g = invariance.log_grid(5, 0.1, 10.0)
  np.testing.assert_allclose(g, [0.1, 10**-0.5, 1.0, 10**0.5, 10.0], rtol=1e-6)
  with pytest.raises(ConfigError):
    invariance.log_grid(0, 0.1, 10.0)
  with pytest.raises(ConfigError):
    invariance.log_grid(3, 0.0, 10.0)
