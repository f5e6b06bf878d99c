"""The SGLD-family update rules, step by step, and the properties they are built for."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from grokjax.errors import ConfigError
from grokjax.slt import samplers

EPS, NB, GAM = 1e-2, 3.0, 2.0


def _setup():
  center = {"a": jnp.array([1.0, -2.0, 0.5]), "b": jnp.array([[0.3, 0.1], [0.0, -0.4]])}
  w = jax.tree.map(lambda x: x + 0.1, center)
  g = {"a": jnp.array([0.2, -0.1, 0.3]), "b": jnp.array([[1.0, 0.0], [-0.5, 0.2]])}
  return center, w, g


def _noise(key, tree):
  """The ξ an update with state key `key` draws (from the second half of split(key))."""
  return samplers._normal_like(jax.random.split(key)[1], tree)


def _ms(x, eps=1e-6):
  return float(jnp.mean(x**2)) + eps


@pytest.mark.parametrize("name", list(samplers.SAMPLERS))
def test_one_step_matches_the_documented_formula(name):
  center, w, g = _setup()
  key = jax.random.key(3)
  tx = samplers.SAMPLERS[name](EPS, nbeta=NB, localization=GAM, key=key)
  state = tx.init(center)
  dw, state2 = tx.update(g, state, w)
  xi = _noise(key, w)
  for leaf in ("a", "b"):
    gl, wl, cl, x = (np.asarray(t[leaf], np.float64) for t in (g, w, center, xi))
    if name == "sgld":
      G, m, gam = 1.0, 1.0, 0.0
    elif name == "rmsprop_sgld":
      G, m, gam = 1.0 / (np.sqrt(0.01 * gl**2) + 0.1), 1.0, 0.0  # V = (1 − 0.99)·g² at step 1
    elif name == "scale_invariant":
      G, m, gam = _ms(cl), _ms(cl), 0.0
    else:  # riemannian: G at the current point, Γ = 2w/size
      G, m, gam = _ms(wl), _ms(cl), 2 * wl / wl.size
    want = (-0.5 * EPS * G * (NB * gl + GAM * (wl - cl) / m) + 0.5 * EPS * gam
            + np.sqrt(EPS * G) * x)
    np.testing.assert_allclose(dw[leaf], want, rtol=1e-5, atol=1e-7)
  # The key advances, so the next step draws fresh noise.
  assert not np.array_equal(jax.random.key_data(state2.key), jax.random.key_data(key))


def _run(tx, w0, grad_fn, steps):
  def step(carry, _):
    w, s = carry
    dw, s = tx.update(grad_fn(w), s, w)
    w = optax.apply_updates(w, dw)
    return (w, s), w
  return jax.lax.scan(step, (w0, tx.init(w0)), None, length=steps)[1]


def test_riemannian_drift_correction_keeps_the_target():
  """U(w) = w²/2 with G(w) = w² + eps: the chain must still have E[w²] = 1.

  Without the correction Γ = 2w the stationary law would be ∝ exp(−U)/G, which piles
  up near 0 (E[w²] ≈ 0.2 here, measured).
  """
  chains = 64
  keys = jax.random.split(jax.random.key(0), chains)

  def chain(k):
    tx = samplers.riemannian_sgld(2e-3, nbeta=1.0, localization=0.0, key=k, eps=0.1)
    return _run(tx, jnp.ones(1), lambda w: w, 20_000)[5000:, 0]

  w = jax.jit(jax.vmap(chain))(keys)
  assert float(jnp.mean(w**2)) == pytest.approx(1.0, rel=0.06)


def _invariant_loss(params, x):
  """f(x) = b·(x @ a): unchanged by a → c·a, b → b/c."""
  return jnp.mean((jnp.sin(x[:, 0]) - params["b"] * (x @ params["a"])) ** 2)


@pytest.mark.parametrize("name,invariant", [("scale_invariant", True), ("riemannian", True),
                                            ("sgld", False), ("rmsprop_sgld", False)])
def test_rescaled_chain_is_the_rescaled_chain(name, invariant):
  """With eps = 0 the scale-invariant samplers commute with per-tensor rescalings."""
  x = jax.random.normal(jax.random.key(1), (64, 3))
  w = {"a": jnp.array([0.5, -0.3, 0.2]), "b": jnp.array(1.5)}
  c = 4.0
  w_c = {"a": c * w["a"], "b": w["b"] / c}
  kw = {"eps": 0.0} if invariant else {}
  grad = jax.grad(lambda p: _invariant_loss(p, x))

  @jax.jit  # one compilation for both starting points
  def run(w0):
    tx = samplers.SAMPLERS[name](1e-3, nbeta=20.0, localization=5.0, key=jax.random.key(2), **kw)
    return _run(tx, w0, grad, 50)

  t1, t2 = run(w), run(w_c)
  back = {"a": t2["a"] / c, "b": t2["b"] * c}
  err = max(float(jnp.max(jnp.abs(back[k] - t1[k]))) for k in ("a", "b"))
  if invariant:
    assert err < 1e-5
  else:
    assert err > 1e-2


def test_unknown_sampler_is_a_config_error():
  with pytest.raises(ConfigError, match="unknown sampler"):
    samplers.get_sampler("hmc")
