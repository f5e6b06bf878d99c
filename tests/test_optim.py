"""Grokfast filters and the weight-norm constraint: closed forms, AdamW at lamb = 0, sweeps."""

import dataclasses
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from grokjax import optim, runio, sweep
from grokjax.cli import SWEEP_LIST_FLAGS, SWEEP_SCALAR_FLAGS, sweep_config_from_flags
from grokjax.config import PRESETS, SweepConfig
from grokjax.errors import ConfigError

STEPS = 12


def gradient_sequence(n=9, seed=0):
  rng = np.random.default_rng(seed)
  return [{"a": rng.normal(size=(3, 2)).astype(np.float32), "b": rng.normal(size=4).astype(np.float32)}
          for _ in range(n)]


def run_filter(tx, grads):
  state = tx.init(jax.tree.map(jnp.zeros_like, grads[0]))
  outs = []
  for g in grads:
    out, state = jax.jit(tx.update)(g, state)
    outs.append(out)
  return outs


def test_ema_filter_matches_its_closed_form():
  alpha, lamb = 0.8, 2.5
  grads = gradient_sequence()
  outs = run_filter(optim.grokfast_ema(alpha, lamb), grads)
  for t, out in enumerate(outs):
    # ema_t = alpha^t g_0 + sum_{k=1..t} (1 - alpha) alpha^(t-k) g_k  (ema starts at g_0)
    for name in ("a", "b"):
      g = [np.float64(x[name]) for x in grads]
      ema = alpha ** t * g[0] + sum((1 - alpha) * alpha ** (t - k) * g[k] for k in range(1, t + 1))
      np.testing.assert_allclose(out[name], g[t] + lamb * ema, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("window", [1, 3, 7])
def test_ma_filter_equals_a_numpy_moving_average(window):
  lamb, max_window = 5.0, 7
  grads = gradient_sequence(n=16, seed=1)
  outs = run_filter(optim.grokfast_ma(window, lamb, max_window), grads)
  for t, out in enumerate(outs):
    for name in ("a", "b"):
      g = np.stack([np.float64(x[name]) for x in grads])
      want = g[t] + lamb * g[t - window + 1:t + 1].mean(0) if t + 1 >= window else g[t]
      np.testing.assert_allclose(out[name], want, rtol=1e-5, atol=1e-6, err_msg=f"t={t}")


def test_ma_window_is_per_run_data_under_one_buffer():
  grads = gradient_sequence(n=10, seed=2)
  windows = jnp.array([2, 5], jnp.int32)
  tx = lambda w: optim.grokfast_ma(w, 1.0, 5)
  state = jax.vmap(lambda w: tx(w).init(grads[0]))(windows)
  for g in grads:
    out, state = jax.jit(jax.vmap(lambda w, s: tx(w).update(g, s)))(windows, state)
  for i, w in enumerate([2, 5]):
    alone = run_filter(optim.grokfast_ma(w, 1.0, w), grads)[-1]
    np.testing.assert_allclose(out["a"][i], alone["a"], rtol=1e-6)


def tiny(**changes) -> SweepConfig:
  return dataclasses.replace(PRESETS["tiny"], steps=STEPS, **changes)


def train(cfg: SweepConfig, steps: int = STEPS):
  """Final params of every run of `cfg` after `steps` steps of the sweep's one program."""
  data, state = sweep.stacked_runs(cfg)
  train_until, _ = sweep.compile_fns(cfg)
  return jax.device_get(train_until(state, data, jnp.int32(steps)).params)


def losses(cfg: SweepConfig, steps: int = STEPS) -> dict[str, np.ndarray]:
  data, state = sweep.stacked_runs(cfg)
  train_until, measure = sweep.compile_fns(cfg)
  m = measure(train_until(state, data, jnp.int32(steps)).params, data)
  return {k: np.asarray(m[k]) for k in ("train_loss", "test_loss")}


def leaves(params, i):
  return [np.asarray(x[i]) for x in jax.tree.leaves(params)]


# XLA's CPU fusion picks different loop nests for programs of different shape, which
# moves float rounding by an ulp (the gradient of an attention key bias is pure rounding
# noise, which Adam then amplifies). Without fusion the programs are bit-identical, so
# the exactness tests compile with it off.
UNFUSED = {"xla_disable_hlo_passes": "fusion,multi_output_fusion"}


def adamw(wd=1.0):
  return optax.inject_hyperparams(optax.adamw, static_args=("b1", "b2"))(
      learning_rate=3e-3, weight_decay=wd, b1=0.9, b2=0.98)


@pytest.mark.parametrize("filt", [optim.grokfast_ema(0.98, 0.0), optim.grokfast_ma(3, 0.0, 5)])
def test_lamb_zero_filter_then_adamw_is_adamw_bit_for_bit(filt):
  grads = gradient_sequence(n=20, seed=3)
  params0 = jax.tree.map(lambda g: 0.1 * g, grads[0])

  def final(tx):
    def loop(params, gs):
      def body(carry, g):
        p, s = carry
        u, s = tx.update(g, s, p)
        return (optax.apply_updates(p, u), s), None
      return jax.lax.scan(body, (params, tx.init(params)), gs)[0][0]
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *grads)
    return jax.jit(loop).lower(params0, stacked).compile(UNFUSED)(params0, stacked)

  a, b = final(optax.chain(filt, adamw())), final(adamw())
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)


def test_lamb_zero_run_trains_as_plain_adamw_bit_for_bit():
  # Two runs in each program (same shapes); run 0 is wd 1, lamb 0 in both.
  steps = 4
  filtered = tiny(grokfast_lambs=(0.0, 2.0))
  plain = tiny(weight_decays=(1.0, 0.0))
  assert [s.grokfast_lamb for s in filtered.runs] == [0.0, 2.0]

  def final(cfg):
    data, state = sweep.stacked_runs(cfg)
    step = jax.vmap(lambda s, r: sweep.train_step(cfg, s, r))
    loop = lambda st, r: jax.lax.fori_loop(0, steps, lambda _, s: step(s, r), st)
    return jax.device_get(jax.jit(loop).lower(state, data).compile(UNFUSED)(state, data).params)

  a, b = final(filtered), final(plain)
  for x, y in zip(leaves(a, 0), leaves(b, 0)):
    np.testing.assert_array_equal(x, y)
  assert any(not np.array_equal(x, y) for x, y in zip(leaves(a, 1), leaves(a, 0)))


@pytest.mark.parametrize("changes, single", [
    (dict(grokfast_alphas=(0.9, 0.98), grokfast_lambs=(0.0, 2.0)), ("grokfast_alpha", "grokfast_lamb")),
    (dict(grokfast_filter="ma", grokfast_windows=(3, 6), grokfast_lambs=(1.0, 4.0)),
     ("grokfast_window", "grokfast_lamb")),
])
def test_vmapped_filter_sweep_equals_each_run_alone(changes, single):
  # Losses, as the sweep tests compare: the attention key biases (zero gradient in exact
  # arithmetic) follow rounding noise, which differs between programs of other shapes.
  cfg = tiny(**changes)
  together = losses(cfg)
  assert len(cfg.runs) == 4
  for i, spec in enumerate(cfg.runs):
    alone = losses(dataclasses.replace(cfg, **{f"{k}s": (getattr(spec, k),) for k in single}))
    for k in together:
      np.testing.assert_allclose(together[k][i], alone[k][0], rtol=2e-5, err_msg=spec.label)
  assert abs(together["train_loss"][1] - together["train_loss"][0]) > 1e-3


def test_weight_norm_constraint_keeps_the_target_norm():
  cfg = tiny(weight_norms=(0.0, 12.0))
  data, state = sweep.stacked_runs(cfg)
  norm = lambda params, i: float(optax.tree.norm(jax.tree.map(lambda x: x[i], params)))
  assert norm(state.params, 1) == pytest.approx(12.0, rel=1e-6)
  free = norm(state.params, 0)
  params = train(cfg)
  assert norm(params, 1) == pytest.approx(12.0, rel=1e-5)
  assert abs(norm(params, 0) - free) > 1e-3  # the unconstrained run's norm moved
  np.testing.assert_allclose(losses(cfg)["train_loss"][0], losses(tiny())["train_loss"][0],
                             rtol=2e-5)


def test_run_columns_appear_only_where_the_optimizer_has_them():
  assert list(runio.run_fields(0, PRESETS["paper"].runs[0])) == list(runio.RUN_COLUMNS)
  ema = tiny(grokfast_lambs=(2.0,), weight_norms=(5.0,)).runs[0]
  assert runio.run_fields(0, ema) == {**runio.run_fields(0, PRESETS["tiny"].runs[0]),
                                           "grokfast_alpha": 0.98, "grokfast_lamb": 2.0,
                                           "weight_norm": 5.0}
  ma = tiny(grokfast_filter="ma", grokfast_lambs=(2.0,), grokfast_windows=(9,)).runs[0]
  assert ma.optimizer_fields == {"grokfast_lamb": 2.0, "grokfast_window": 9}
  assert "grokfast_window=9" in ma.label


def test_old_config_without_the_new_fields_loads_unchanged():
  d = PRESETS["tiny"].to_dict()
  for k in ("grokfast_filter", "grokfast_alphas", "grokfast_lambs", "grokfast_windows",
            "weight_norms"):
    d.pop(k)
  cfg = SweepConfig.from_dict(d)
  assert cfg == PRESETS["tiny"] and cfg.runs == PRESETS["tiny"].runs
  assert not cfg.uses_grokfast and not cfg.uses_weight_norm


def flag_values(**given):
  names = [*SWEEP_LIST_FLAGS, *SWEEP_SCALAR_FLAGS, "lr", "train_frac"]
  return types.SimpleNamespace(**{**{n: None for n in names}, **given})


@pytest.mark.parametrize("given, message", [
    (dict(grokfast_alphas=["1.0"]), "grokfast_alpha must lie in [0, 1), got 1.0"),
    (dict(grokfast_alphas=["-0.1"]), "grokfast_alpha must lie in [0, 1), got -0.1"),
    (dict(grokfast_lambs=["-2"]), "grokfast_lamb must be finite and >= 0, got -2.0"),
    (dict(grokfast_windows=["0"]), "grokfast_window must be an integer >= 1, got 0"),
    (dict(grokfast_windows=["2.5"]), "--grokfast_windows"),
    (dict(weight_norms=["-1"]), "weight_norm must be finite and >= 0 (0 or None: off), got -1.0"),
    (dict(grokfast_filter="lowpass"), "unknown grokfast_filter 'lowpass'; valid: ema, ma"),
    (dict(grokfast_windows=["10", "20"], grokfast_lambs=["2"]),
     "grokfast_windows has 2 values but only an MA filter (grokfast_filter='ma')"),
    (dict(grokfast_alphas=["0.9", "0.98"]), "grokfast_alphas has 2 values but only an EMA filter"),
    (dict(grokfast_lambs=[]), "grokfast_lambs is empty"),
])
def test_bad_optimizer_values_raise_one_line_errors(given, message):
  with pytest.raises(ConfigError) as info:
    sweep_config_from_flags(flag_values(**given), "tiny")
  assert message in str(info.value) and "\n" not in str(info.value)
