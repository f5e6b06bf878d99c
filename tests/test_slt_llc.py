"""estimate_llc against models whose learning coefficient is known in closed form.

Regular model (linear regression, d = 4): L_n(w) − L_n(ŵ) = ½(w − ŵ)ᵀH(w − ŵ) exactly,
so the localised tempered posterior is Gaussian and
    E_p[nβ·(L_n(w) − L_n(ŵ))] = ½ Σ_i nβ·h_i / (nβ·h_i + γ/m)
(h_i the eigenvalues of H, m the localisation metric: 1, or s(ŵ) for the
scale-invariant samplers), which tends to λ = d/2 as γ/(nβ·h) → 0.

Normal crossing (d = 2): K(w) = u1²·u2⁴ with u = tanh(w), an analytic change of
coordinates at 0, so λ is that of the monomial: the zeta function
∫ |u1|^{2z}|u2|^{4z} b(u) du has its largest pole at z = −1/4 (the other at −1/2), so
λ = min(1/2, 1/4) = 1/4 with multiplicity 1. At finite nβ the exact posterior mean
E[nβ·K] is computed here by 2-D quadrature (it tends to 1/4 as nβ → ∞: 0.2411 at
nβ = 1e3, 0.2455 at 1e4, 0.2477 at 1e5 with γ = 1); tanh bounds the curvature so SGLD
stays stable.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grokjax.errors import ConfigError
from grokjax.slt import llc

N, D = 1000, 4


def _regression():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(N, D))
  y = x @ rng.normal(size=D) + 0.5 * rng.normal(size=N)
  w_hat = np.linalg.lstsq(x, y, rcond=None)[0]
  h = np.linalg.eigvalsh(x.T @ x / N)
  data = (jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32))
  return data, jnp.asarray(w_hat, jnp.float32), h


def _mse(w, batch):
  x, y = batch
  return 0.5 * jnp.mean((y - x @ w) ** 2)


def _exact_regular(h, nbeta, gamma):
  return 0.5 * np.sum(nbeta * h / (nbeta * h + gamma))


@pytest.mark.parametrize("sampler,step,kwargs", [
    ("sgld", 2e-4, {}),
    ("scale_invariant", 2e-4, {}),
    ("riemannian", 2e-4, {}),
    ("rmsprop_sgld", 2e-4, {"eps": 1.0}),
])
def test_regular_model_gives_half_the_dimension(sampler, step, kwargs):
  data, w_hat, h = _regression()
  nbeta = N / np.log(N)
  metric = float(jnp.mean(w_hat**2)) + 1e-6 if sampler in ("scale_invariant", "riemannian") else 1
  out = llc.estimate_llc(_mse, w_hat, data, key=jax.random.key(0), sampler=sampler,
                         step_size=step / metric, localization=1.0, num_chains=16,
                         num_draws=3000, num_burnin=300, sampler_kwargs=kwargs)
  exact = _exact_regular(h, nbeta, 1.0 / metric)
  assert abs(exact - D / 2) < 0.02 * D / 2  # γ/(nβ·h) is small: the truth is d/2 up to 2%
  assert abs(float(out["llc/mean"]) - exact) < 0.06 * exact, (float(out["llc/mean"]), exact)
  assert int(out["diverged/count"]) == 0
  assert float(out["nbeta"]) == pytest.approx(nbeta, rel=1e-6)


@pytest.mark.parametrize("adapt_steps,within", [(None, False), ("burnin", True)])
def test_rmsprop_sgld_with_a_frozen_preconditioner_is_unbiased(adapt_steps, within):
  """pSGLD at its default eps = 0.1: within 3 % of d/2 once G is fixed after burn-in.

  With G adapting at every draw (adapt_steps=None, no correction term Γ) the same chains
  read ~10 % high. 64 chains × 7,000 kept draws: the standard error is ~0.8 % of d/2,
  and ε = 5e-5 keeps the discretisation bias (~ε·nβ·h·G/4) near 1 %.
  """
  data, w_hat, h = _regression()
  kwargs = {} if adapt_steps == "burnin" else {"adapt_steps": None}
  out = llc.estimate_llc(_mse, w_hat, data, key=jax.random.key(3), sampler="rmsprop_sgld",
                         step_size=5e-5, localization=1.0, num_chains=64, num_draws=8000,
                         num_burnin=1000, sampler_kwargs=kwargs)
  est, se = float(out["llc/mean"]), float(out["llc/std"]) / 8
  assert se < 0.01 * D / 2
  assert (abs(est - D / 2) < 0.03 * D / 2) == within, (est, se)


def test_regular_model_with_minibatches():
  data, w_hat, h = _regression()
  out = llc.estimate_llc(_mse, w_hat, data, key=jax.random.key(1), step_size=2e-4,
                         localization=1.0, num_chains=16, num_draws=3000, num_burnin=300,
                         batch_size=100)
  exact = _exact_regular(h, N / np.log(N), 1.0)
  assert abs(float(out["llc/mean"]) - exact) < 0.1 * exact
  # L_n(w*) is the full-data loss, not a minibatch's.
  assert float(out["loss/init"]) == pytest.approx(float(_mse(w_hat, data)), rel=1e-6)


def _normal_crossing_exact(nbeta, gamma, n=1501):
  """E[nβ·K] under exp(−nβ·K − γ|w|²/2), K = tanh(w1)² tanh(w2)⁴, by quadrature."""
  u = np.linspace(-np.arcsinh(8e3 / np.sqrt(gamma)), np.arcsinh(8e3 / np.sqrt(gamma)), n)
  w, dw = 1e-3 * np.sinh(u), 1e-3 * np.cosh(u) * (u[1] - u[0])  # dense near the axes
  k = np.tanh(w)[:, None] ** 2 * np.tanh(w)[None, :] ** 4
  p = np.exp(-nbeta * k - gamma / 2 * (w[:, None] ** 2 + w[None, :] ** 2)) * dw[:, None] * dw
  return float((p * nbeta * k).sum() / p.sum())


def test_quadrature_tends_to_the_learning_coefficient():
  values = [_normal_crossing_exact(t, 1.0) for t in (1e3, 1e4, 1e6)]
  assert values[0] == pytest.approx(0.2411, abs=5e-4)
  assert values[0] < values[1] < values[2] < 0.25
  assert values[2] == pytest.approx(0.25, abs=0.003)


def _normal_crossing(w, c):
  return jnp.mean(c) * jnp.tanh(w[0]) ** 2 * jnp.tanh(w[1]) ** 4


@pytest.mark.slow
def test_normal_crossing_potential():
  nbeta, gamma = 1e3, 1.0
  out = llc.estimate_llc(_normal_crossing, jnp.zeros(2), jnp.ones(8), key=jax.random.key(0),
                         step_size=1e-4, localization=gamma, nbeta=nbeta, num_chains=32,
                         num_draws=100_000, num_burnin=10_000)
  exact = _normal_crossing_exact(nbeta, gamma)
  est = float(out["llc/mean"])
  assert abs(est - exact) < 0.1 * exact, (est, exact)
  assert abs(est - 0.25) < 0.15 * 0.25  # λ = 1/4, far below the regular d/2 = 1


def test_vmapped_chains_equal_looped_chains():
  data, w_hat, _ = _regression()
  kw = dict(step_size=1e-3, localization=10.0, nbeta=50.0)
  spec = llc.make_spec(sampler="rmsprop_sgld", num_chains=3, num_draws=40, num_burnin=10,
                       batch_size=64, n=N)
  key = jax.random.key(7)
  out = llc.estimate_llc(_mse, w_hat, data, key=key, sampler="rmsprop_sgld", num_chains=3,
                         num_draws=40, num_burnin=10, batch_size=64, **kw)
  one = jax.jit(lambda k: llc.sample_chain(_mse, w_hat, data, key=k, spec=spec, **kw))
  for c, k in enumerate(llc.chain_keys(key, 3)):
    losses, dists, _ = one(k)
    np.testing.assert_allclose(out["loss/trace"][c], losses, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out["distance/trace"][c], dists, rtol=1e-5, atol=1e-7)
  assert float(out["distance/trace"][0, 0]) == 0.0  # draw 0 is at w* itself
  per_chain = 50.0 * (np.asarray(out["loss/trace"])[:, 10:].mean(1) - float(out["loss/init"]))
  np.testing.assert_allclose(out["llc/per_chain"], per_chain, rtol=1e-4)


def test_diverged_chains_are_counted_not_averaged():
  data, w_hat, _ = _regression()
  out = llc.estimate_llc(_mse, w_hat, data, key=jax.random.key(0), step_size=1.0,
                         localization=1.0, num_chains=2, num_draws=50)
  assert int(out["diverged/count"]) == 2
  assert np.all(np.asarray(out["diverged/per_chain"]))
  assert np.isnan(float(out["llc/mean"]))


def test_divergence_threshold_is_in_llc_units():
  losses = jnp.array([[1.0, 1.1, 1.2], [1.0, 3.0, 1.0], [1.0, jnp.inf, 1.0]])
  out = llc.summarize(losses, jnp.zeros((3, 3)), jnp.float32(1.0), 10.0, num_burnin=1,
                      threshold=15.0)
  # nβ·(L − L0) peaks at 2, 20 and inf: the last two chains are diverged.
  np.testing.assert_array_equal(out["diverged/per_chain"], [False, True, True])
  assert float(out["llc/mean"]) == pytest.approx(10.0 * (1.15 - 1.0))
  assert np.isnan(float(out["llc/std"]))  # one healthy chain: no spread to report


def test_nbeta_conventions():
  assert llc.resolve_nbeta(None, num_examples=1000, batch_size=100) == pytest.approx(
      1000 / np.log(1000))
  assert llc.resolve_nbeta("batch", num_examples=1000, batch_size=100) == pytest.approx(
      100 / np.log(100))
  assert llc.resolve_nbeta(3.5, num_examples=1000, batch_size=None) == 3.5


@pytest.mark.parametrize("change,match", [
    (dict(step_size=0.0), "step_size"),
    (dict(step_size=-1e-3), "step_size"),
    (dict(num_draws=10, num_burnin=10), "num_draws"),
    (dict(loss_fn=lambda w, b: (b[1] - b[0] @ w) ** 2), "loss_fn"),
    (dict(params=jnp.full(D, jnp.nan)), "params"),
    (dict(nbeta=-1.0), "nbeta"),
    (dict(sampler="nuts"), "sampler"),
    (dict(batch_size=N + 1), "batch_size"),
    (dict(localization=-1.0), "localization"),
    (dict(localization=0.0), "localization"),
    (dict(acceptance="always"), "acceptance"),
])
def test_bad_input_names_the_argument(change, match):
  data, w_hat, _ = _regression()
  args = dict(loss_fn=_mse, params=w_hat, data=data, key=jax.random.key(0), step_size=1e-3,
              localization=1.0, num_draws=20, num_burnin=0)
  args.update(change)
  with pytest.raises(ConfigError, match=match):
    llc.estimate_llc(args.pop("loss_fn"), args.pop("params"), args.pop("data"), **args)


def test_data_must_share_the_example_axis():
  _, w_hat, _ = _regression()
  with pytest.raises(ConfigError, match="leading example axis"):
    llc.estimate_llc(_mse, w_hat, (jnp.ones((10, D)), jnp.ones(11)), key=jax.random.key(0),
                     step_size=1e-3, localization=1.0, num_draws=5)


def test_full_loss_in_chunks_is_the_mean_over_all_examples():
  data, w_hat, _ = _regression()
  w = w_hat + 0.3
  whole = float(_mse(w, data))
  for chunk in (300, 1000, 7):  # a remainder, no chunking, many chunks
    assert float(llc.full_loss(_mse, w, data, chunk_size=chunk)) == pytest.approx(whole, rel=1e-5)
