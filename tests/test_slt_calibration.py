"""The calibration sweep is estimate_llc at each setting, in one program."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grokjax.errors import ConfigError
from grokjax.slt import calibration, llc


def _problem():
  x = jax.random.normal(jax.random.key(0), (200, 3))
  y = x @ jnp.array([1.0, -1.0, 2.0]) + 0.1 * jax.random.normal(jax.random.key(1), (200,))
  w = jnp.linalg.lstsq(x, y)[0]
  return (x, y), w


def _mse(w, b):
  return 0.5 * jnp.mean((b[1] - b[0] @ w) ** 2)


def test_each_setting_equals_a_single_estimate():
  data, w = _problem()
  kw = dict(key=jax.random.key(3), num_chains=2, num_draws=60, num_burnin=10, batch_size=50)
  out = calibration.calibrate(_mse, w, data, step_sizes=[1e-4, 1e-3, 10.0],
                              localizations=[1.0, 100.0], nbetas=[None, 5.0], **kw)
  assert out["llc/mean"].shape == (12,) and out["loss/trace"].shape == (12, 2, 60)
  # Order: nβ slowest, then localisation, then step size.
  np.testing.assert_allclose(out["step_size"][:3], [1e-4, 1e-3, 10.0])
  assert out["localization"][3] == 100.0 and out["nbeta"][6] == 5.0
  i = 4  # ε = 1e-3, γ = 100, nβ = n/log n
  one = llc.estimate_llc(_mse, w, data, step_size=1e-3, localization=100.0, **kw)
  np.testing.assert_allclose(out["loss/trace"][i], one["loss/trace"], rtol=1e-5, atol=1e-7)
  assert out["llc/mean"][i] == pytest.approx(float(one["llc/mean"]), rel=1e-4)
  # The huge step blows up in every nβ x γ setting, and is reported as such.
  assert np.all(out["diverged/count"][out["step_size"] == 10.0] == 2)
  assert np.all(out["diverged/count"][out["step_size"] < 1] == 0)
  rows = calibration.calibration_rows(out)
  assert len(rows) == 12 and rows[4]["llc_mean"] == pytest.approx(float(one["llc/mean"]), rel=1e-4)


def test_bad_grid_value_is_named():
  data, w = _problem()
  with pytest.raises(ConfigError, match="step_size"):
    calibration.calibrate(_mse, w, data, key=jax.random.key(0), step_sizes=[1e-3, -1.0],
                          localizations=[1.0], num_draws=5)
