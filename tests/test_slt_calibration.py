"""The calibration sweep is estimate_llc at each setting, in one program."""

from __future__ import annotations

import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grokjax import runio
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


@pytest.mark.parametrize("grid,match", [
    (dict(step_sizes=[1e-3, -1.0], localizations=[1.0]), "step_size"),
    (dict(step_sizes=[1e-3, 0.0], localizations=[1.0]), "step_size"),
    (dict(step_sizes=[1e-3], localizations=[1.0, 0.0]), "localization"),
    (dict(step_sizes=[1e-3], localizations=[-5.0]), "localization"),
])
def test_bad_grid_value_is_named(grid, match):
  data, w = _problem()
  with pytest.raises(ConfigError, match=match):
    calibration.calibrate(_mse, w, data, key=jax.random.key(0), num_draws=5, **grid)


def _grid(w, step_sizes, localizations=(1.0, 10.0), draws=2000):
  data, _ = _problem()
  return calibration.calibrate(_mse, w, data, key=jax.random.key(0), step_sizes=step_sizes,
                               localizations=list(localizations), num_chains=4,
                               num_draws=draws, num_burnin=draws // 10)


def test_choose_setting_picks_a_stable_step_whose_llc_is_the_truth():
  """d = 3, nβ = n/log n ≈ 37.7: λ = Σ ½·nβh/(nβh + γ) ≈ 1.46 at γ = 1 (d/2 = 1.5)."""
  data, w = _problem()
  h = np.linalg.eigvalsh(np.asarray(data[0]).T @ np.asarray(data[0]) / 200)
  nbeta = 200 / np.log(200)
  exact = 0.5 * np.sum(nbeta * h / (nbeta * h + 1.0))
  out = _grid(w, [1e-6, 1e-3, 5e-3, 2e-2, 5e-2])
  # 1e-6 never leaves w*; 5e-2 fails the acceptance; 2e-2 accepts ~0.9 but reads ~20 %
  # high, which the plateau check catches.
  fails = [calibration.setting_failures(out, i) for i in range(5)]  # γ = 1, ε ascending
  assert fails[0] and fails[4] and not fails[3]
  choice = calibration.choose_setting(out)
  assert choice["step_size"] == pytest.approx(5e-3) and choice["localization"] == 1.0
  assert abs(choice["llc_mean"] - exact) < 0.05 * exact, (choice, exact)
  assert "plateau" in choice["reason"]
  assert abs(float(out["llc/mean"][3]) - exact) > 0.1 * exact  # what the plateau rule avoided


@pytest.mark.parametrize("steps,match", [([5e-2, 8e-2], "toward smaller values"),
                                         ([1e-7, 1e-6], "toward larger values")])
def test_choose_setting_refuses_a_grid_without_a_good_setting(steps, match):
  _, w = _problem()
  with pytest.raises(ConfigError, match=match):
    calibration.choose_setting(_grid(w, steps, localizations=[1.0], draws=600))


def test_choose_setting_refuses_a_point_that_is_no_minimum():
  _, w = _problem()
  out = _grid(w + 0.5, [1e-3, 5e-3], localizations=[1.0], draws=600)
  assert np.all(out["diag/below_init"] > 0.5)
  with pytest.raises(ConfigError, match="not a minimum"):
    calibration.choose_setting(out)


def test_cli_calibration_writes_the_diagnostics_and_a_recommendation(tiny_run_dir, tmp_path):
  run_dir = tmp_path / "run"
  shutil.copytree(tiny_run_dir, run_dir)
  res = subprocess.run([sys.executable, "-m", "experiments.llc", f"--run_dir={run_dir}",
                        "--runs=0", "--calibrate", "--calib_step_sizes=1e-6,1e-4",
                        "--calib_localizations=100", "--num_chains=2", "--num_draws=40",
                        "--num_burnin=4", "--batch_size=64"],
                       capture_output=True, text=True, timeout=600)
  assert res.returncode == 0, res.stderr[-2000:]
  table = runio.read_csv(run_dir / "llc_calibration.csv")
  assert len(table["step_size"]) == 2
  assert {"slope_z", "rhat", "accept", "below_init", "diag_ok", "diag_reasons"} <= set(table)
  assert ("recommended: --step_size=" in res.stdout) or ("no setting to recommend" in res.stdout)
