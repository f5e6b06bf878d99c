"""The Wang–Landau LLC (slt.dos) against volumes known in closed form, and against SGLD.

V(ε) = vol{w : E(w) < ε, ‖w‖ ≤ R} near w* = 0, R = 1:
- regular, E = ½ Σ_i i·w_i² in d dimensions: an ellipsoid inside the ball for ε ≤ 1e-2,
  so V ∝ ε^{d/2} exactly and λ = d/2.
- normal crossing, E = (w1 w2)²: with t = √ε and s = 2t/R², the disk gives exactly
  V = 2R² asin(s) − 4t ln tan(asin(s)/2) ≈ 4t(1 + ln(R²/t)): λ = 1/2, m = 2. The local
  slope sits below 1/2 by about 1/(2 + 2 ln(R²/t)) (≈ 0.05 at ε = 1e-8), so the test
  compares with the exact least-squares slope of this V over the same edges.
- degenerate, E = w1⁴ + w2²: V ∝ ε^{1/4} ε^{1/2} while ε^{1/4} < R: λ = 3/4 exactly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grokjax.errors import ConfigError
from grokjax.slt import dos, llc

WALK = dict(radius=1.0, bins=16, num_walkers=8, max_steps=200_000, check_every=500,
            final_log_f=2e-4)


def _quadratic(w, c):
  return jnp.mean(c) * 0.5 * jnp.sum(jnp.arange(1, w.shape[0] + 1) * w**2)


def _crossing(w, c):
  return jnp.mean(c) * (w[0] * w[1]) ** 2


def _quartic(w, c):
  return jnp.mean(c) * (w[0] ** 4 + w[1] ** 2)


def _run(loss, d, e_min, e_max, seed=0):
  return dos.estimate_llc_dos(loss, jnp.zeros(d), jnp.ones(4), key=jax.random.key(seed),
                              e_min=e_min, e_max=e_max, **WALK)


@pytest.mark.parametrize("d", [2, 4])
def test_regular_quadratic_gives_half_the_dimension(d):
  out = _run(_quadratic, d, 1e-6, 1e-2)
  assert out["dos/num_converged"] == WALK["num_walkers"]
  assert abs(out["dos/llc"] - d / 2) < 0.03 * d / 2, (out["dos/llc"], out["dos/llc_stderr"])
  assert 0 < out["dos/llc_stderr"] < 0.03 * d / 2
  # the whole log-volume curve, not only its slope: log V = (d/2) log(ε / E_max)
  edges = out["dos/edges"]
  exact = d / 2 * np.log(edges[1:] / edges[-1])
  assert np.max(np.abs(out["dos/log_volume"] - exact)) < 0.1 * d
  assert out["dos/fit_range"] == pytest.approx((1e-6, 1e-4))
  assert np.all((out["dos/acceptance"] > 0.2) & (out["dos/acceptance"] < 0.4))


def _crossing_log_volume(eps, radius=1.0):
  t = np.sqrt(eps)
  a = np.arcsin(2 * t / radius**2)
  return np.log(2 * radius**2 * a - 4 * t * np.log(np.tan(a / 2)))


def test_closed_form_crossing_volume():
  eps = np.array([1e-10, 1e-8])  # the small-ε form 4t(1 + ln(R²/t))
  t = np.sqrt(eps)
  np.testing.assert_allclose(_crossing_log_volume(eps), np.log(4 * t * (1 - np.log(t))),
                             atol=1e-6)
  rng = np.random.default_rng(0)  # Monte Carlo in the disk at ε = 1e-2
  w = rng.uniform(-1, 1, size=(400_000, 2))
  w = w[np.sum(w**2, 1) <= 1]
  frac = np.mean((w[:, 0] * w[:, 1]) ** 2 < 1e-2) * np.pi
  assert frac == pytest.approx(np.exp(_crossing_log_volume(1e-2)), rel=0.01)


def test_normal_crossing_gives_one_half_with_its_log_correction():
  out = _run(_crossing, 2, 1e-8, 1e-1)
  edges, (lo, hi) = out["dos/edges"], out["dos/fit_range"]
  exact_slope = dos.fit_slope(edges, _crossing_log_volume(edges[1:]), lo, hi)
  assert 0.43 < exact_slope < 0.45  # 1/2 lowered by the (−log ε)^(m−1) factor
  assert abs(out["dos/llc"] - exact_slope) < 0.02, (out["dos/llc"], exact_slope)
  exact = _crossing_log_volume(edges[1:]) - _crossing_log_volume(edges[-1])
  assert np.max(np.abs(out["dos/log_volume"] - exact)) < 0.2


def _quartic_exact(nbeta, gamma):
  """E[nβ(w1⁴ + w2²)] under exp(−nβ·E − γ|w|²/2): the two coordinates are independent."""
  w = np.linspace(-3, 3, 200_001)
  p = np.exp(-nbeta * w**4 - gamma / 2 * w**2)
  return float(np.sum(p * nbeta * w**4) / np.sum(p)) + nbeta / (2 * nbeta + gamma)


def test_degenerate_quartic_and_sgld_agree():
  out = _run(_quartic, 2, 1e-6, 1e-2)
  assert abs(out["dos/llc"] - 0.75) < 0.03, (out["dos/llc"], out["dos/llc_stderr"])
  nbeta, gamma = 1e3, 1.0
  sgld = llc.estimate_llc(_quartic, jnp.zeros(2), jnp.ones(4), key=jax.random.key(1),
                          step_size=1e-4, localization=gamma, nbeta=nbeta, num_chains=16,
                          num_draws=6000, num_burnin=1000)
  exact = _quartic_exact(nbeta, gamma)
  assert abs(exact - 0.75) < 0.03  # the finite-nβ SGLD target is close to λ here
  assert abs(float(sgld["llc/mean"]) - exact) < 0.08 * exact, float(sgld["llc/mean"])
  assert abs(float(sgld["llc/mean"]) - out["dos/llc"]) < 0.1


def test_walkers_are_independent_and_seeded():
  a, b = _run(_quartic, 2, 1e-6, 1e-2, seed=3), _run(_quartic, 2, 1e-6, 1e-2, seed=3)
  np.testing.assert_array_equal(a["dos/log_g/per_walker"], b["dos/log_g/per_walker"])
  assert len(set(np.round(a["dos/llc/per_walker"], 6))) == WALK["num_walkers"]


def test_bin_edges_and_index():
  edges = dos.energy_edges(1e-4, 1e-1, 4)
  np.testing.assert_allclose(edges, [0, 1e-4, 1e-3, 1e-2, 1e-1])
  e = jnp.array([-1.0, 0.0, 5e-5, 1e-4, 5e-4, 2e-3, 5e-2, 1e-1])
  np.testing.assert_array_equal(dos.log_bin(e, 1e-4, 1e-1, 4), [0, 0, 0, 1, 1, 2, 3, 3])


@pytest.mark.parametrize("change,match", [
    (dict(e_min=0.0), "e_min"),
    (dict(e_min=-1.0), "e_min"),
    (dict(e_min=1e-2, e_max=1e-3), "empty"),
    (dict(e_max=float("inf")), "e_max"),
    (dict(radius=0.0), "radius"),
    (dict(radius=-1.0), "radius"),
    (dict(bins=1), "bins"),
    (dict(schedule="linear"), "schedule"),
    (dict(fit_range=(1e-3, 1e-1)), "fit_range"),
])
def test_bad_input_raises_one_line(change, match):
  args = dict(radius=1.0, e_min=1e-6, e_max=1e-2, bins=8, max_steps=100, check_every=10)
  args.update(change)
  with pytest.raises(ConfigError, match=match) as err:
    dos.estimate_llc_dos(_quadratic, jnp.zeros(2), jnp.ones(4), key=jax.random.key(0), **args)
  assert "\n" not in str(err.value)


LINE = dict(num_walkers=8, check_every=1000, final_log_f=1e-4, schedule="halving",
            max_steps=1_000_000)


def test_checkpoint_line_uniform_energies_give_a_flat_dos():
  out = dos.checkpoint_line_dos(np.linspace(0.0, 1.0, 40), key=jax.random.key(1), bins=4,
                                **LINE)
  np.testing.assert_array_equal(out["line_dos/counts"], [10, 10, 10, 10])
  assert np.all(out["line_dos/converged"])
  assert np.max(np.abs(out["line_dos/log_g"] - np.log(10.0))) < 0.1
  assert np.exp(out["line_dos/log_g"]).sum() == pytest.approx(40.0)


def test_checkpoint_line_plateau_gives_a_peak():
  # descend, linger for 30 checkpoints at one loss, descend again
  e = np.concatenate([np.linspace(1.0, 0.65, 8), np.full(20, 0.5), np.linspace(0.3, 0.0, 8)])
  out = dos.checkpoint_line_dos(e, key=jax.random.key(2), bins=5, **LINE)
  counts = out["line_dos/counts"]
  assert counts[2] >= 20 and np.argmax(counts) == 2
  assert np.sum(out["line_dos/converged"]) >= 4  # the plateau slows some walkers
  log_g = out["line_dos/log_g"]
  assert np.argmax(log_g) == 2
  np.testing.assert_allclose(log_g, np.log(counts), atol=0.25, err_msg=str(np.exp(log_g)))


def test_checkpoint_line_bad_input():
  for bad in (np.ones(5), np.array([1.0]), np.array([0.0, np.nan]), np.ones((3, 2))):
    with pytest.raises(ConfigError):
      dos.checkpoint_line_dos(bad, key=jax.random.key(0))
  with pytest.raises(ConfigError, match="bins"):
    dos.checkpoint_line_dos(np.linspace(0, 1, 5), key=jax.random.key(0), bins=1)
