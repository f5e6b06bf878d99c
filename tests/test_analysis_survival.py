"""Grok time as survival data: Kaplan-Meier against hand computation and closed forms."""

import math
from fractions import Fraction as F

import numpy as np
import pytest

from grokjax import analysis

Z = 1.959963984540054  # normal quantile of 0.975


def loglog(s, gw):
  """The log-log pointwise interval of S = s with Greenwood sum gw, written out."""
  se = math.sqrt(gw) / abs(math.log(s))
  return s ** math.exp(Z * se), s ** math.exp(-Z * se)


def test_kaplan_meier_matches_the_hand_computation():
  # eight runs: grok steps 100, 200, 200, 400, 600; censored at 300, 400 (tied with an
  # event: still at risk at 400) and 700
  times = [100, 200, 200, 300, 400, 400, 600, 700]
  events = [1, 1, 1, 0, 1, 0, 1, 0]
  fit = analysis.kaplan_meier(times, events)
  # t    n at risk  d   S                               Greenwood sum d / (n (n - d))
  # 100  8          1   7/8                             1/56
  # 200  7          2   7/8 * 5/7 = 5/8                 1/56 + 2/35
  # 400  4          1   5/8 * 3/4 = 15/32               ... + 1/12
  # 600  2          1   15/32 * 1/2 = 15/64             ... + 1/2
  s = [F(7, 8), F(5, 8), F(15, 32), F(15, 64)]
  gw = np.cumsum([F(1, 56), F(2, 35), F(1, 12), F(1, 2)])
  assert fit.time.tolist() == [100, 200, 400, 600]
  assert fit.n_at_risk.tolist() == [8, 7, 4, 2] and fit.n_events.tolist() == [1, 2, 1, 1]
  np.testing.assert_allclose(fit.survival, [float(x) for x in s], rtol=1e-12)
  np.testing.assert_allclose(fit.greenwood, [float(x) for x in gw], rtol=1e-12)
  band = [loglog(float(a), float(b)) for a, b in zip(s, gw)]
  np.testing.assert_allclose(fit.ci_lo, [lo for lo, _ in band], rtol=1e-9)
  np.testing.assert_allclose(fit.ci_hi, [hi for _, hi in band], rtol=1e-9)
  # by hand: lower limits 0.387, 0.229, 0.120, 0.013; upper 0.981, 0.861, 0.763, 0.616
  assert band[0][0] == pytest.approx(0.3870, abs=1e-4) and band[3][1] == pytest.approx(
      0.6158, abs=1e-4)
  # median: S first <= 1/2 at 400 (15/32); interval: the lower limit is <= 1/2 from 100
  # on, the upper limit never reaches 1/2 (0.616 at the last event): not reached
  median, lo, hi = analysis.km_median(fit)
  assert (median, lo) == (400, 100) and np.isnan(hi)
  assert fit.censored.tolist() == [300, 400, 700]
  assert analysis.survival_at(fit, 50) == 1.0 and analysis.survival_at(fit, 399) == 5 / 8
  assert 1 - analysis.survival_at(fit, 700) == 49 / 64  # fraction grokked by the budget


def test_without_censoring_km_is_the_empirical_curve_and_greenwood_the_binomial():
  n = 40
  times = 100 * np.arange(1, n + 1)
  fit = analysis.kaplan_meier(times, np.ones(n, bool))
  k = np.arange(1, n + 1)
  s = 1 - k / n
  np.testing.assert_allclose(fit.survival, s, atol=1e-12)
  # Var S = S^2 sum 1 / (n_i (n_i - 1)) = S (1 - S) / n, below S = 0
  np.testing.assert_allclose(s[:-1] ** 2 * fit.greenwood[:-1], s[:-1] * (1 - s[:-1]) / n,
                             rtol=1e-9)
  assert np.isnan(fit.ci_lo[-1]) and np.isnan(fit.ci_hi[-1])  # S = 0: undefined
  median, lo, hi = analysis.km_median(fit)
  assert median == 2000  # S(2000) = 20/40
  # Brookmeyer-Crowley: the first steps where the lower / upper limits reach 1/2
  i_lo, i_hi = np.searchsorted(times, lo), np.searchsorted(times, hi)
  assert fit.ci_lo[i_lo] <= 0.5 < fit.ci_lo[i_lo - 1]
  assert fit.ci_hi[i_hi] <= 0.5 < fit.ci_hi[i_hi - 1]
  assert 1000 < lo < median < hi < 3000


def test_lifelines_agrees():
  lifelines = pytest.importorskip("lifelines")
  rng = np.random.default_rng(0)
  t = rng.integers(1, 30, 60) * 100.0
  e = rng.random(60) < 0.7
  fit = analysis.kaplan_meier(t, e)
  kmf = lifelines.KaplanMeierFitter().fit(t, e)
  ref = kmf.survival_function_.iloc[:, 0]
  np.testing.assert_allclose(fit.survival, ref.loc[fit.time].to_numpy(), rtol=1e-9)
  ci = kmf.confidence_interval_survival_function_.loc[fit.time].to_numpy()
  np.testing.assert_allclose(fit.ci_lo, ci[:, 0], rtol=1e-6)
  np.testing.assert_allclose(fit.ci_hi, ci[:, 1], rtol=1e-6)
  assert analysis.km_median(fit)[0] == kmf.median_survival_time_


def planted_metrics(grok):
  """metrics.csv-like table: one run per (op, lr, grok step or None = never)."""
  steps = np.arange(0, 1001, 100)
  cols = {}
  for run, (op, lr, g, last) in enumerate(grok):
    s = steps[steps <= last]
    acc = np.where(s >= g, 1.0, 0.3) if g is not None else np.full(s.size, 0.3)
    info = {"run": run, "op": op, "seed": run, "weight_decay": 1.0, "lr": lr, "train_frac": 0.5}
    for k, v in {**info, "step": s, "test_acc": acc}.items():
      cols.setdefault(k, []).append(np.broadcast_to(v, s.shape))
  return {k: np.concatenate(v) if k != "op" else np.concatenate(v).astype(object)
          for k, v in cols.items()}


def test_survival_table_and_curves_from_a_metrics_table():
  m = planted_metrics([("add", 1e-3, 300, 1000), ("add", 1e-3, 500, 1000),
                       ("add", 1e-3, None, 1000), ("add", 1e-3, None, 600),  # censored
                       ("add", 3e-3, 200, 1000), ("sub", 1e-3, 700, 1000)])
  times = {r["run"]: (r["grok_step"], r["grokked"]) for r in analysis.grok_times(m)}
  assert times == {0: (300, True), 1: (500, True), 2: (1000, False), 3: (600, False),
                   4: (200, True), 5: (700, True)}
  rows = analysis.survival_table(m)
  by = {(r["op"], r["lr"]): r for r in rows}
  assert set(rows[0]) == {"op", "weight_decay", "lr", "n", "events", "censored", "median",
                          "ci_lo", "ci_hi", "budget", "fraction_grokked"}  # lr swept, frac not
  r = by["add", 1e-3]
  assert (r["n"], r["events"], r["censored"], r["budget"]) == (4, 2, 2, 1000)
  # S: 300 -> 3/4, 500 -> 3/4 * 2/3 = 1/2 (at risk: 500, 600c, 1000c): median 500
  assert r["median"] == 500 and r["fraction_grokked"] == pytest.approx(0.5)
  assert by["add", 3e-3]["median"] == 200 and by["add", 3e-3]["fraction_grokked"] == 1.0
  curves = {(c["op"], c["lr"]): c for c in analysis.survival_curves(m)}
  c = curves["add", 1e-3]
  np.testing.assert_array_equal(c["step"], [0, 300, 500, 1000])
  np.testing.assert_allclose(c["survival"], [1, 0.75, 0.5, 0.5])
  np.testing.assert_array_equal(c["censored_step"], [600, 1000])
  np.testing.assert_allclose(c["censored_survival"], [0.5, 0.5])
  assert np.all(c["ci_lo"] <= c["survival"]) and np.all(c["survival"] <= c["ci_hi"])
  only_op = analysis.survival_table(m, fields=("op",))
  assert [(r["op"], r["n"]) for r in only_op] == [("add", 5), ("sub", 1)]
