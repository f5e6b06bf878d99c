"""The diagnostics every LLC estimate carries, on cases whose answer is known."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grokjax.slt import diagnostics, llc

N, D = 1000, 4


def _regression(d=D, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(N, d))
  y = x @ rng.normal(size=d) + 0.5 * rng.normal(size=N)
  w_hat = np.linalg.lstsq(x, y, rcond=None)[0]
  return (jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)), jnp.asarray(w_hat,
                                                                                 jnp.float32)


def _mse(w, batch):
  x, y = batch
  return 0.5 * jnp.mean((y - x @ w) ** 2)


def _estimate(step_size, num_draws, num_burnin, **kw):
  data, w_hat = _regression()
  return llc.estimate_llc(_mse, w_hat, data, key=jax.random.key(0), step_size=step_size,
                          localization=1.0, num_chains=8, num_draws=num_draws,
                          num_burnin=num_burnin, **kw)


def test_good_sampler_passes_and_hot_and_cold_ones_are_flagged():
  """λ̂ = d/2 = 2 here (nβ·h ≈ 145 ≫ γ = 1); ε·nβ·h/2 < 2 keeps every chain finite."""
  good = _estimate(2e-4, 3000, 300)
  assert abs(float(good["llc/mean"]) - 2.0) < 0.1
  assert bool(good["diag/ok"]) and int(good["diag/reasons"]) == 0, llc.describe(
      good["diag/reasons"])
  assert float(good["diag/accept"]) > 0.99 and abs(float(good["diag/slope_z"])) < 3
  assert float(good["diag/below_init"]) == 0.0  # full batch at a minimum: never below

  hot = _estimate(2e-2, 3000, 300)  # stable but far too coarse: λ̂ ≈ 3.8 × d/2
  assert float(hot["llc/mean"]) > 4.0 and int(hot["diverged/count"]) == 0
  assert not bool(hot["diag/ok"])
  assert "accept" in llc.flag_names(hot["diag/reasons"])

  cold = _estimate(1e-7, 500, 50)  # relaxation time ~1e5 steps: still leaving w*
  assert float(cold["llc/mean"]) < 0.1
  assert not bool(cold["diag/ok"])
  assert {"trend", "rhat"} & set(llc.flag_names(cold["diag/reasons"]))
  assert float(cold["diag/accept"]) > 0.99  # a tiny step is accepted: acceptance alone misses it


def test_acceptance_of_a_tiny_step_on_a_quadratic_is_one():
  out = _estimate(1e-7, 200, 0)
  assert float(out["diag/accept"]) > 0.999


def test_next_draw_acceptance_equals_the_same_batch_one_with_full_batches():
  nxt = _estimate(5e-3, 100, 0, acceptance="next")
  same = _estimate(5e-3, 100, 0, acceptance="same_batch")
  a, b = np.asarray(nxt["diag/log_accept_trace"]), np.asarray(same["diag/log_accept_trace"])
  assert np.all(np.isnan(a[:, -1])) and not np.any(np.isnan(a[:, :-1]))
  np.testing.assert_allclose(a[:, :-1], b[:, :-1], rtol=1e-3, atol=1e-3)
  assert 0.5 < float(nxt["diag/accept"]) < 0.99  # a step large enough to be rejected at times


def test_minibatch_acceptance_on_every_eighth_draw():
  out = _estimate(2e-4, 400, 0, batch_size=100)  # "auto": same batch, every 8th draw
  trace = np.asarray(out["diag/log_accept_trace"])
  assert not np.any(np.isnan(trace[:, ::8])) and np.all(np.isnan(trace[:, 1::8]))
  assert float(out["diag/accept"]) > 0.99
  off = _estimate(2e-4, 50, 0, acceptance="off")
  assert np.isnan(float(off["diag/accept"])) and bool(off["diag/ok"]) in (True, False)


def test_mala_log_ratio_matches_the_proposal_densities():
  """Against log π(w1) − log π(w0) + log q(w0|w1) − log q(w1|w0) written out directly."""
  rng = np.random.default_rng(1)
  w0, w1, g0, g1 = (rng.normal(size=5) for _ in range(4))
  u0, u1, eps = 0.3, -0.2, 0.05
  log_q = lambda b, a, g: -np.sum((b - a + eps / 2 * g) ** 2) / (2 * eps)
  want = u0 - u1 + log_q(w0, w1, g1) - log_q(w1, w0, g0)
  got = diagnostics.mala_log_accept({"w": jnp.asarray(w0)}, u0, {"w": jnp.asarray(g0)},
                                    {"w": jnp.asarray(w1)}, u1, {"w": jnp.asarray(g1)}, eps)
  assert float(got) == pytest.approx(want, rel=1e-5)


def test_preconditioned_mala_log_ratio_matches_the_proposal_densities():
  """w1 ~ N(w0 − (ε/2)·G∇U(w0), ε·G) with a per-leaf G, written out directly."""
  rng = np.random.default_rng(2)
  w0, w1, g0, g1 = ({"a": rng.normal(size=3), "b": rng.normal(size=(2, 2))} for _ in range(4))
  G = {"a": 0.3, "b": 4.0}
  u0, u1, eps = 0.1, 0.4, 0.02
  log_q = lambda b, a, g: -sum(np.sum((b[k] - a[k] + eps / 2 * G[k] * g[k]) ** 2) / G[k]
                               for k in G) / (2 * eps)
  want = u0 - u1 + log_q(w0, w1, g1) - log_q(w1, w0, g0)
  tree = lambda t: jax.tree.map(jnp.asarray, t)
  got = diagnostics.mala_log_accept(tree(w0), u0, tree(g0), tree(w1), u1, tree(g1), eps,
                                    precond=G)
  assert float(got) == pytest.approx(want, rel=1e-5)


def test_scale_invariant_acceptance_is_checked_and_does_not_see_the_scale():
  """G = m = s(w*) = mean(w*²): a small ε is accepted, a large one is not, and rescaling
  the tensor (w → c·w with the loss read at w / c) leaves every log ratio unchanged."""
  data, w_hat = _regression()
  s = float(jnp.mean(w_hat**2))
  kw = dict(sampler="scale_invariant", sampler_kwargs={"eps": 0.0}, localization=1.0,
            num_chains=4, num_draws=400, num_burnin=100)
  est = lambda loss, w, eps: llc.estimate_llc(loss, w, data, key=jax.random.key(0),
                                              step_size=eps, **kw)
  small, large = est(_mse, w_hat, 2e-4 / s), est(_mse, w_hat, 2e-2 / s)
  assert float(small["diag/accept"]) > 0.99  # λ̂ against d/2: tests/test_slt_llc.py
  assert float(large["diag/accept"]) < 0.8 and "accept" in llc.flag_names(large["diag/reasons"])
  c = 7.0
  scaled = est(lambda w, b: _mse(w / c, b), c * w_hat, 2e-4 / s)
  np.testing.assert_allclose(scaled["diag/log_accept_trace"], small["diag/log_accept_trace"],
                             rtol=2e-3, atol=2e-4)
  assert float(scaled["diag/accept"]) == pytest.approx(float(small["diag/accept"]), abs=1e-4)
  riemannian = llc.estimate_llc(_mse, w_hat, data, key=jax.random.key(0), step_size=2e-4 / s,
                                **{**kw, "sampler": "riemannian", "num_draws": 20,
                                   "num_burnin": 0})
  assert np.isnan(float(riemannian["diag/accept"]))  # G moves with w: no exact ratio


def test_split_rhat_of_identical_chains_is_one_and_of_shifted_chains_is_not():
  x = jax.random.normal(jax.random.key(0), (4, 2000))
  every = jnp.ones(4, bool)
  assert abs(float(diagnostics.split_rhat(x, every)) - 1.0) < 0.01
  shifted = x + jnp.arange(4.0)[:, None]
  assert float(diagnostics.split_rhat(shifted, every)) > 1.5
  # A masked-out chain does not count, however far off it is.
  assert abs(float(diagnostics.split_rhat(shifted.at[:3].set(x[:3]),
                                          jnp.array([True, True, True, False]))) - 1) < 0.02


def test_trend_z_sees_a_ramp_and_not_noise():
  noise = jax.random.normal(jax.random.key(1), (4, 2000))
  every = jnp.ones(4, bool)
  _, z = diagnostics.trend_z(noise, every)
  assert abs(float(z)) < 3
  slope, z = diagnostics.trend_z(noise + 1e-3 * jnp.arange(2000.0), every)
  assert float(z) > 3 and float(slope) == pytest.approx(1e-3, rel=0.3)


def test_divergence_rule_keeps_healthy_chains_at_d_1_and_drops_a_blow_up():
  """d = 1 with b = 10: minibatch noise alone puts nβ·(L_m − L_n(w*)) far past 10·d."""
  data, w_hat = _regression(d=1)
  out = llc.estimate_llc(_mse, w_hat, data, key=jax.random.key(0), step_size=1e-3,
                         localization=1.0, num_chains=4, num_draws=4000, num_burnin=400,
                         batch_size=10)
  excess = float(out["nbeta"]) * (np.asarray(out["loss/trace"]) - float(out["loss/init"]))
  assert np.all(excess.max(axis=1) > 10 * 1)  # the old rule would drop every chain
  assert int(out["diverged/count"]) == 0
  assert not {"not_minimum", "diverged"} & set(llc.flag_names(out["diag/reasons"]))
  # The same healthy traces beside one that blows up geometrically (finite throughout).
  losses = np.asarray(out["loss/trace"])
  blown = losses[0] + 1e-2 * np.exp(np.linspace(0.0, 12.0, losses.shape[1]))
  traces = jnp.asarray(np.concatenate([losses, blown[None]]))
  res = llc.summarize(traces, jnp.zeros(traces.shape), out["loss/init"], out["nbeta"],
                      num_burnin=400, num_params=1)
  np.testing.assert_array_equal(res["diverged/per_chain"], [False] * 4 + [True])
  assert float(res["llc/mean"]) == pytest.approx(float(out["llc/mean"]), rel=1e-5)


def test_a_point_that_is_no_minimum_is_flagged():
  data, w_hat = _regression()
  out = llc.estimate_llc(_mse, w_hat + 0.5, data, key=jax.random.key(0), step_size=2e-4,
                         localization=1.0, num_chains=4, num_draws=600, num_burnin=100)
  assert float(out["diag/below_init"]) > 0.5 and float(out["llc/mean"]) < 0
  assert "not_minimum" in llc.flag_names(out["diag/reasons"])
  assert "not a minimum" in llc.describe(out["diag/reasons"])


def test_saturation_uses_the_rule_of_apply():
  losses = jnp.full((2, 20), 4.5)  # E[L_m] = 4.5 >= 0.9 ln 97 = 4.12 > L_n(w*) = 0.1
  kw = dict(num_burnin=5, num_params=1000)  # d/2 = 500: an excess of 44 is no blow-up
  sat = llc.summarize(losses, jnp.zeros((2, 20)), jnp.float32(0.1), 10.0,
                      chance_loss=np.log(97.0), **kw)
  assert bool(sat["diag/saturated"]) and "saturated" in llc.flag_names(sat["diag/reasons"])
  assert not bool(llc.summarize(losses, jnp.zeros((2, 20)), jnp.float32(0.1), 10.0,
                                **kw)["diag/saturated"])  # no chance level: not checked
  assert not bool(llc.summarize(losses, jnp.zeros((2, 20)), jnp.float32(4.4), 10.0,
                                chance_loss=np.log(97.0), **kw)["diag/saturated"])
